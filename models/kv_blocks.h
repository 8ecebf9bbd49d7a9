/* kv_blocks.h: the host side of a paged KV cache (models/kv_blocks.c): a pool of fixed-size blocks of
 * cache positions, sequences that each own a block table (logical block i of the sequence -> physical
 * block), reference counts so that forked sequences share blocks (copy on write), and a prefix cache:
 * every full block is registered under a hash of all tokens up to its end, so that a new sequence
 * whose tokens start the same way (a shared system prompt, the earlier turns of a chat) takes the
 * blocks instead of computing them again. Unreferenced registered blocks stay cached, in least-
 * recently-used order, until the pool needs them.
 *
 * The device side (the cache buffers [n_blocks * block_size][kv_dim] per layer, and the copies that
 * copy on write asks for) belongs to the caller: kvb_append says which physical rows the new tokens
 * go to, and kvb_take_copies which whole blocks must be copied before the next pass writes them.
 * Not thread-safe: one owner calls it. */
#ifndef VKLLM_KV_BLOCKS_H
#define VKLLM_KV_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kvb_pool kvb_pool;

typedef struct kvb_stats {
    int32_t n_blocks, block_size;
    int32_t used;          /* blocks referenced by a sequence */
    int32_t cached;        /* unreferenced blocks kept for the prefix cache */
    int32_t free;          /* neither */
    int64_t prefix_queries, prefix_hits; /* blocks looked up by kvb_match_prefix, and found */
    int32_t n_seqs;
    int64_t tokens;        /* tokens the live sequences hold, all together */
} kvb_stats;

/* A block copy that copy on write needs: rows [0, rows) of block src to block dst. */
typedef struct kvb_copy {
    int32_t src, dst, rows;
} kvb_copy;

/* CONSTRUCTOR: n_blocks blocks of block_size positions; NULL when out of memory or arguments bad. */
kvb_pool *kvb_create(int32_t n_blocks, int32_t block_size);
void kvb_destroy(kvb_pool *p);

/* A new empty sequence: its id (>= 0), or -1 when out of host memory. */
int32_t kvb_seq_new(kvb_pool *p);
/* Frees the sequence; its blocks lose a reference (full registered ones become cached). */
void kvb_seq_free(kvb_pool *p, int32_t seq);
/* A new sequence with the tokens and blocks of src, shared (the partial last block is copied when
 * either sequence next writes it). -1 when out of host memory. */
int32_t kvb_seq_fork(kvb_pool *p, int32_t src);
/* Keeps the first n tokens of the sequence (n <= its length). */
void kvb_seq_truncate(kvb_pool *p, int32_t seq, int64_t n);
/* The same after a pass that failed: the rows from n on were never written, so the blocks that hold
 * them leave the prefix cache too. */
void kvb_seq_rollback(kvb_pool *p, int32_t seq, int64_t n);
/* Whether seq is a live sequence. */
bool kvb_seq_valid(const kvb_pool *p, int32_t seq);
/* The sequence's tokens (valid until the next call that changes it) and their number. */
const int32_t *kvb_seq_tokens(const kvb_pool *p, int32_t seq, int64_t *n);
/* The sequence's block table (physical block of each logical block) and its length. */
const int32_t *kvb_seq_table(const kvb_pool *p, int32_t seq, int32_t *n);
/* The physical cache row of position pos of the sequence (pos < its length), -1 if none. */
int64_t kvb_seq_row(const kvb_pool *p, int32_t seq, int64_t pos);

/* Appends n tokens to the sequence and reserves their cache rows: rows[i] gets the physical row of
 * position len + i. Blocks come from the free list, then from the cached ones (least recently used
 * first). Returns 0, or -1 when the pool has not blocks enough (then nothing changed). */
int kvb_append(kvb_pool *p, int32_t seq, const int32_t *tokens, int64_t n, int64_t *rows);
/* Blocks needed to append n tokens to seq now (copy on write included). */
int32_t kvb_blocks_needed(const kvb_pool *p, int32_t seq, int64_t n);

/* For an empty sequence: takes the cached blocks whose tokens start tokens[0..n), whole blocks only,
 * and at most n - 1 tokens (so that one token is left to evaluate for its logits). Returns the
 * number of tokens taken (they are the sequence's tokens then; their cache rows hold their keys and
 * values already). */
int64_t kvb_match_prefix(kvb_pool *p, int32_t seq, const int32_t *tokens, int64_t n);

/* The block copies asked for since the last call (copy on write); *n of them, valid until the next
 * call that changes the pool. The caller performs them before the pass that writes the new rows. */
const kvb_copy *kvb_take_copies(kvb_pool *p, int32_t *n);

void kvb_get_stats(const kvb_pool *p, kvb_stats *s);

#endif
