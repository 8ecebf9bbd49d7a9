/* kv_blocks.c: the paged KV cache's bookkeeping (kv_blocks.h). Blocks are reference-counted; a
 * block with no reference is either free or, when it is full and registered in the prefix table,
 * cached in a least-recently-used list. A full block is registered under the chain hash of its
 * sequence's tokens up to its end (hash of the previous block's chain hash and this block's tokens),
 * and a hit is verified against the block's own copy of its tokens and its parent's chain hash, so a
 * hash collision never hands out wrong keys and values. */
#include <stdlib.h>
#include <string.h>

#include "kv_blocks.h"

typedef struct block {
    int32_t ref;
    bool registered;        /* in the prefix table under `hash` */
    uint64_t hash, parent;  /* chain hash through this block, and through the one before it (0: first) */
    int32_t prev, next;     /* LRU links while cached (ref 0, registered); free-list link otherwise */
} block;

typedef struct seq {
    bool live;
    int32_t *tokens;
    int64_t n, cap;
    int32_t *table;         /* physical block of each logical block */
    uint64_t *chain;        /* chain hash through each full block */
    int32_t nt, tcap;
} seq;

struct kvb_pool {
    int32_t n_blocks, bs;
    block *b;
    int32_t *btokens;       /* [n_blocks][bs]: the tokens of each registered block */
    int32_t free_head, n_free;
    int32_t lru_head, lru_tail, n_cached; /* head: least recently used */
    int32_t *ht;            /* prefix table: block ids, -1 empty, -2 deleted; capacity ht_cap (power of 2) */
    int32_t ht_cap;
    seq *s;
    int32_t n_s, cap_s;
    kvb_copy *copies;
    int32_t n_copies, cap_copies;
    int64_t queries, hits;
};

/* ---------------------------------------------------------------- hashing */

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t chain_hash(uint64_t parent, const int32_t *tokens, int32_t n)
{
    uint64_t h = mix(parent + 0x9e3779b97f4a7c15ull);
    for (int32_t i = 0; i < n; i++)
        h = mix(h ^ (uint32_t)tokens[i]);
    return h ? h : 1; /* 0 means "no parent" */
}

static int32_t ht_find(const kvb_pool *p, uint64_t h)
{
    for (int32_t i = (int32_t)(h & (uint64_t)(p->ht_cap - 1)), k = 0; k < p->ht_cap; k++, i = (i + 1) & (p->ht_cap - 1)) {
        int32_t id = p->ht[i];
        if (id == -1)
            return -1;
        if (id >= 0 && p->b[id].hash == h)
            return id;
    }
    return -1;
}

static void ht_insert(kvb_pool *p, int32_t id)
{
    uint64_t h = p->b[id].hash;
    for (int32_t i = (int32_t)(h & (uint64_t)(p->ht_cap - 1));; i = (i + 1) & (p->ht_cap - 1))
        if (p->ht[i] < 0) {
            p->ht[i] = id;
            p->b[id].registered = true;
            return;
        }
}

static void ht_remove(kvb_pool *p, int32_t id)
{
    uint64_t h = p->b[id].hash;
    for (int32_t i = (int32_t)(h & (uint64_t)(p->ht_cap - 1)), k = 0; k < p->ht_cap; k++, i = (i + 1) & (p->ht_cap - 1)) {
        if (p->ht[i] == -1)
            break;
        if (p->ht[i] == id) {
            p->ht[i] = -2;
            break;
        }
    }
    p->b[id].registered = false;
}

/* ---------------------------------------------------------------- lists */

static void lru_unlink(kvb_pool *p, int32_t id)
{
    block *b = &p->b[id];
    if (b->prev >= 0)
        p->b[b->prev].next = b->next;
    else
        p->lru_head = b->next;
    if (b->next >= 0)
        p->b[b->next].prev = b->prev;
    else
        p->lru_tail = b->prev;
    b->prev = b->next = -1;
    p->n_cached--;
}

static void lru_push(kvb_pool *p, int32_t id)
{
    block *b = &p->b[id];
    b->prev = p->lru_tail;
    b->next = -1;
    if (p->lru_tail >= 0)
        p->b[p->lru_tail].next = id;
    else
        p->lru_head = id;
    p->lru_tail = id;
    p->n_cached++;
}

static void free_push(kvb_pool *p, int32_t id)
{
    p->b[id].next = p->free_head;
    p->free_head = id;
    p->n_free++;
}

/* A block for new rows: a free one, else the least recently used cached one (unregistered). -1: none. */
static int32_t take_block(kvb_pool *p)
{
    int32_t id = p->free_head;
    if (id >= 0) {
        p->free_head = p->b[id].next;
        p->n_free--;
    } else if ((id = p->lru_head) >= 0) {
        lru_unlink(p, id);
        ht_remove(p, id);
    } else {
        return -1;
    }
    p->b[id] = (block){ .ref = 1, .prev = -1, .next = -1 };
    return id;
}

static void ref(kvb_pool *p, int32_t id)
{
    if (p->b[id].ref++ == 0 && p->b[id].registered)
        lru_unlink(p, id);
}

static void unref(kvb_pool *p, int32_t id)
{
    if (--p->b[id].ref > 0)
        return;
    if (p->b[id].registered)
        lru_push(p, id);
    else
        free_push(p, id);
}

/* ---------------------------------------------------------------- pool */

kvb_pool *kvb_create(int32_t n_blocks, int32_t block_size)
{
    if (n_blocks <= 0 || block_size <= 0 || n_blocks > (1 << 28) / block_size)
        return NULL;
    kvb_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_blocks = n_blocks;
    p->bs = block_size;
    p->ht_cap = 16;
    while (p->ht_cap < 2 * n_blocks)
        p->ht_cap *= 2;
    p->b = calloc((size_t)n_blocks, sizeof *p->b);
    p->btokens = malloc((size_t)n_blocks * (size_t)block_size * sizeof *p->btokens);
    p->ht = malloc((size_t)p->ht_cap * sizeof *p->ht);
    if (!p->b || !p->btokens || !p->ht) {
        kvb_destroy(p);
        return NULL;
    }
    for (int32_t i = 0; i < p->ht_cap; i++)
        p->ht[i] = -1;
    p->free_head = p->lru_head = p->lru_tail = -1;
    for (int32_t i = n_blocks - 1; i >= 0; i--) {
        p->b[i].prev = -1;
        free_push(p, i);
    }
    return p;
}

void kvb_destroy(kvb_pool *p)
{
    if (!p)
        return;
    for (int32_t i = 0; i < p->n_s; i++) {
        free(p->s[i].tokens);
        free(p->s[i].table);
        free(p->s[i].chain);
    }
    free(p->s);
    free(p->b);
    free(p->btokens);
    free(p->ht);
    free(p->copies);
    free(p);
}

void kvb_get_stats(const kvb_pool *p, kvb_stats *st)
{
    int32_t live = 0;
    int64_t tokens = 0;
    for (int32_t i = 0; i < p->n_s; i++) {
        live += p->s[i].live;
        tokens += p->s[i].live ? p->s[i].n : 0;
    }
    *st = (kvb_stats){ .n_blocks = p->n_blocks, .block_size = p->bs, .cached = p->n_cached, .free = p->n_free,
                       .used = p->n_blocks - p->n_cached - p->n_free, .prefix_queries = p->queries,
                       .prefix_hits = p->hits, .n_seqs = live, .tokens = tokens };
}

/* ---------------------------------------------------------------- sequences */

static seq *get(const kvb_pool *p, int32_t id)
{
    return id >= 0 && id < p->n_s && p->s[id].live ? &p->s[id] : NULL;
}

static bool grow(void **ptr, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    int64_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*ptr, (size_t)c * elem);
    if (!q)
        return false;
    *ptr = q;
    *cap = c;
    return true;
}

/* room for nt table entries (and their chain hashes) */
static bool grow_table(seq *s, int32_t nt)
{
    if (nt <= s->tcap)
        return true;
    int32_t c = s->tcap ? s->tcap : 8;
    while (c < nt)
        c *= 2;
    int32_t *t = realloc(s->table, (size_t)c * sizeof *t);
    if (!t)
        return false;
    s->table = t;
    uint64_t *h = realloc(s->chain, (size_t)c * sizeof *h);
    if (!h)
        return false;
    s->chain = h;
    s->tcap = c;
    return true;
}

int32_t kvb_seq_new(kvb_pool *p)
{
    int32_t id = 0;
    while (id < p->n_s && p->s[id].live)
        id++;
    if (id == p->n_s) {
        if (p->n_s == p->cap_s) {
            int32_t c = p->cap_s ? 2 * p->cap_s : 8;
            seq *q = realloc(p->s, (size_t)c * sizeof *q);
            if (!q)
                return -1;
            memset(q + p->cap_s, 0, (size_t)(c - p->cap_s) * sizeof *q);
            p->s = q;
            p->cap_s = c;
        }
        p->n_s++;
    }
    seq *s = &p->s[id];
    s->live = true;
    s->n = 0;
    s->nt = 0;
    return id;
}

void kvb_seq_free(kvb_pool *p, int32_t id)
{
    seq *s = get(p, id);
    if (!s)
        return;
    for (int32_t i = s->nt - 1; i >= 0; i--) /* the last blocks first: they leave the cache first */
        unref(p, s->table[i]);
    s->nt = 0;
    s->n = 0;
    s->live = false;
}

int32_t kvb_seq_fork(kvb_pool *p, int32_t src)
{
    if (!get(p, src))
        return -1;
    int32_t id = kvb_seq_new(p);
    if (id < 0)
        return -1;
    seq *s = &p->s[src], *d = &p->s[id]; /* after kvb_seq_new: p->s may have moved */
    if (!grow((void **)&d->tokens, &d->cap, s->n, sizeof *d->tokens) || !grow_table(d, s->nt)) {
        d->live = false;
        return -1;
    }
    memcpy(d->tokens, s->tokens, (size_t)s->n * sizeof *d->tokens);
    memcpy(d->table, s->table, (size_t)s->nt * sizeof *d->table);
    memcpy(d->chain, s->chain, (size_t)s->nt * sizeof *d->chain);
    d->n = s->n;
    d->nt = s->nt;
    for (int32_t i = 0; i < d->nt; i++)
        ref(p, d->table[i]);
    return id;
}

void kvb_seq_truncate(kvb_pool *p, int32_t id, int64_t n)
{
    seq *s = get(p, id);
    if (!s || n < 0 || n >= s->n)
        return;
    int32_t keep = (int32_t)((n + p->bs - 1) / p->bs);
    for (int32_t i = s->nt - 1; i >= keep; i--)
        unref(p, s->table[i]);
    s->nt = keep;
    s->n = n;
    /* a kept partial block of ours alone is written again: it no longer holds what it is registered as */
    if (n % p->bs && keep > 0) {
        int32_t last = s->table[keep - 1];
        if (p->b[last].ref == 1 && p->b[last].registered)
            ht_remove(p, last);
    }
}

void kvb_seq_rollback(kvb_pool *p, int32_t id, int64_t n)
{
    seq *s = get(p, id);
    if (!s || n < 0 || n >= s->n)
        return;
    for (int32_t i = (int32_t)(n / p->bs); i < s->nt; i++)
        if (p->b[s->table[i]].registered && p->b[s->table[i]].ref == 1)
            ht_remove(p, s->table[i]);
    kvb_seq_truncate(p, id, n);
}

bool kvb_seq_valid(const kvb_pool *p, int32_t id) { return get(p, id) != NULL; }

const int32_t *kvb_seq_tokens(const kvb_pool *p, int32_t id, int64_t *n)
{
    seq *s = get(p, id);
    *n = s ? s->n : 0;
    return s ? s->tokens : NULL;
}

const int32_t *kvb_seq_table(const kvb_pool *p, int32_t id, int32_t *n)
{
    seq *s = get(p, id);
    *n = s ? s->nt : 0;
    return s ? s->table : NULL;
}

int64_t kvb_seq_row(const kvb_pool *p, int32_t id, int64_t pos)
{
    seq *s = get(p, id);
    if (!s || pos < 0 || pos >= s->n)
        return -1;
    return (int64_t)s->table[pos / p->bs] * p->bs + pos % p->bs;
}

/* whether writing position s->n needs a copy of the partial last block first: another sequence, or
 * the prefix cache through another sequence, holds it too (a registered block of this sequence alone is
 * unregistered instead) */
static bool needs_cow(const kvb_pool *p, const seq *s)
{
    return s->n % p->bs && p->b[s->table[s->nt - 1]].ref > 1;
}

int32_t kvb_blocks_needed(const kvb_pool *p, int32_t id, int64_t n)
{
    seq *s = get(p, id);
    if (!s || n <= 0)
        return 0;
    int64_t blocks = (s->n + n + p->bs - 1) / p->bs - s->nt;
    return (int32_t)blocks + (needs_cow(p, s) ? 1 : 0);
}

static bool add_copy(kvb_pool *p, int32_t src, int32_t dst, int32_t rows)
{
    if (p->n_copies == p->cap_copies) {
        int32_t c = p->cap_copies ? 2 * p->cap_copies : 8;
        kvb_copy *q = realloc(p->copies, (size_t)c * sizeof *q);
        if (!q)
            return false;
        p->copies = q;
        p->cap_copies = c;
    }
    p->copies[p->n_copies++] = (kvb_copy){ src, dst, rows };
    return true;
}

/* registers the sequence's block i, now full, unless a block in use holds the same tokens already (a
 * cached one of the same tokens is freed: the new one is the more recently used) */
static void register_full(kvb_pool *p, seq *s, int32_t i)
{
    uint64_t parent = i ? s->chain[i - 1] : 0;
    uint64_t h = chain_hash(parent, s->tokens + (int64_t)i * p->bs, p->bs);
    s->chain[i] = h;
    int32_t id = s->table[i], other = ht_find(p, h);
    if (p->b[id].registered)
        return;
    if (other >= 0) { /* the same tokens in another block: an unused one gives way, a used one stays */
        if (p->b[other].ref > 0)
            return;
        lru_unlink(p, other);
        ht_remove(p, other);
        free_push(p, other);
    }
    p->b[id].hash = h;
    p->b[id].parent = parent;
    memcpy(p->btokens + (int64_t)id * p->bs, s->tokens + (int64_t)i * p->bs, (size_t)p->bs * sizeof *p->btokens);
    ht_insert(p, id);
}

int kvb_append(kvb_pool *p, int32_t id, const int32_t *tokens, int64_t n, int64_t *rows)
{
    seq *s = get(p, id);
    if (!s || n < 0)
        return -1;
    if (n == 0)
        return 0;
    int32_t need = kvb_blocks_needed(p, id, n);
    int32_t nt_after = (int32_t)((s->n + n + p->bs - 1) / p->bs);
    if (need > p->n_free + p->n_cached || !grow((void **)&s->tokens, &s->cap, s->n + n, sizeof *s->tokens) ||
        !grow_table(s, nt_after) || p->n_copies + 1 > INT32_MAX / 2)
        return -1;
    int32_t last = s->n % p->bs ? s->table[s->nt - 1] : -1;
    if (last >= 0 && p->b[last].ref == 1 && p->b[last].registered) /* ours alone: it stops being cached */
        ht_remove(p, last);
    if (needs_cow(p, s)) {
        int32_t old = s->table[s->nt - 1], nb = take_block(p);
        if (!add_copy(p, old, nb, (int32_t)(s->n % p->bs))) {
            unref(p, nb);
            return -1;
        }
        unref(p, old);
        s->table[s->nt - 1] = nb;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t pos = s->n;
        if (pos % p->bs == 0) /* a new block (there are enough: counted above) */
            s->table[s->nt++] = take_block(p);
        s->tokens[s->n++] = tokens[i];
        if (rows)
            rows[i] = (int64_t)s->table[pos / p->bs] * p->bs + pos % p->bs;
        if (s->n % p->bs == 0)
            register_full(p, s, s->nt - 1);
    }
    return 0;
}

int64_t kvb_match_prefix(kvb_pool *p, int32_t id, const int32_t *tokens, int64_t n)
{
    seq *s = get(p, id);
    if (!s || s->n || n <= 1)
        return 0;
    int32_t max_blocks = (int32_t)((n - 1) / p->bs);
    if (!grow((void **)&s->tokens, &s->cap, (int64_t)max_blocks * p->bs, sizeof *s->tokens) ||
        !grow_table(s, max_blocks))
        return 0;
    uint64_t parent = 0;
    for (int32_t i = 0; i < max_blocks; i++) {
        const int32_t *t = tokens + (int64_t)i * p->bs;
        uint64_t h = chain_hash(parent, t, p->bs);
        p->queries++;
        int32_t b = ht_find(p, h);
        if (b < 0 || p->b[b].parent != parent ||
            memcmp(p->btokens + (int64_t)b * p->bs, t, (size_t)p->bs * sizeof *t))
            break;
        p->hits++;
        ref(p, b);
        s->table[s->nt] = b;
        s->chain[s->nt++] = h;
        memcpy(s->tokens + s->n, t, (size_t)p->bs * sizeof *t);
        s->n += p->bs;
        parent = h;
    }
    return s->n;
}

const kvb_copy *kvb_take_copies(kvb_pool *p, int32_t *n)
{
    *n = p->n_copies;
    p->n_copies = 0;
    return p->copies;
}
