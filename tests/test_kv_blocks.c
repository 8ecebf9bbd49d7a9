/* test_kv_blocks.c: the paged KV cache's bookkeeping (models/kv_blocks.c) against a simulated device.
 * The simulated cache row of a token holds what its keys and values depend on: a hash of the whole
 * sequence up to and including it. Thousands of seeded random operations (new sequences that first
 * look up the prefix cache with one of a few shared prompts, appends, forks, truncations, frees, on a
 * pool small enough to run out and evict) are applied to the pool and the simulated device (copy on
 * write performed as asked); after each, every position of every live sequence must read the right
 * value through its block table, the block counts must add up (used + cached + free = all), and the
 * references must equal the blocks in tables. Also: prefix hits are counted, a pool that is full
 * refuses an append without changing anything, and freeing everything leaves no block used. */
#include <stdlib.h>
#include <string.h>

#include "kv_blocks.h"
#include "util.h"

#define N_BLOCKS 48
#define BS 4
#define MAX_SEQS 12
#define MAX_LEN 64

static uint64_t row_value(const int32_t *tokens, int64_t n) /* what row n - 1 holds */
{
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < n; i++)
        h = (h ^ (uint32_t)tokens[i]) * 1099511628211ull;
    return h;
}

static uint64_t dev[N_BLOCKS * BS];

static void apply_copies(kvb_pool *p)
{
    int32_t n;
    const kvb_copy *c = kvb_take_copies(p, &n);
    for (int32_t i = 0; i < n; i++)
        memcpy(dev + (int64_t)c[i].dst * BS, dev + (int64_t)c[i].src * BS, (size_t)c[i].rows * sizeof *dev);
}

static int append(kvb_pool *p, int32_t s, const int32_t *tok, int64_t n)
{
    int64_t rows[MAX_LEN];
    int64_t before;
    const int32_t *t0 = kvb_seq_tokens(p, s, &before);
    int32_t all[MAX_LEN * 2];
    memcpy(all, t0, (size_t)before * sizeof *all);
    if (kvb_append(p, s, tok, n, rows))
        return -1;
    apply_copies(p); /* before the pass writes the new rows */
    memcpy(all + before, tok, (size_t)n * sizeof *all);
    for (int64_t i = 0; i < n; i++)
        dev[rows[i]] = row_value(all, before + i + 1);
    return 0;
}

static void check_all(kvb_pool *p, const int32_t *live, int n_live, int step)
{
    kvb_stats st;
    kvb_get_stats(p, &st);
    CHECK(st.used + st.cached + st.free == N_BLOCKS, "step %d: %d used + %d cached + %d free", step, st.used, st.cached,
          st.free);
    int32_t refs[N_BLOCKS] = { 0 };
    for (int i = 0; i < n_live; i++) {
        int64_t n;
        int32_t nt;
        const int32_t *tok = kvb_seq_tokens(p, live[i], &n);
        const int32_t *tab = kvb_seq_table(p, live[i], &nt);
        CHECK(nt == (n + BS - 1) / BS, "step %d: seq %d has %lld tokens in %d blocks", step, live[i], (long long)n, nt);
        for (int32_t b = 0; b < nt; b++)
            refs[tab[b]]++;
        for (int64_t j = 0; j < n; j++) {
            int64_t r = kvb_seq_row(p, live[i], j);
            if (r < 0 || dev[r] != row_value(tok, j + 1)) {
                CHECK(0, "step %d: seq %d position %lld reads a wrong row", step, live[i], (long long)j);
                return;
            }
        }
    }
    int32_t used = 0;
    for (int b = 0; b < N_BLOCKS; b++)
        used += refs[b] > 0;
    CHECK(used == st.used, "step %d: %d blocks in tables, %d counted used", step, used, st.used);
}

int main(void)
{
    tu_rng R = { tu_seed("test_kv_blocks") };
    kvb_pool *p = kvb_create(N_BLOCKS, BS);
    CHECK(p != NULL, "kvb_create");
    if (!p)
        return tu_finish("test_kv_blocks");
    CHECK(kvb_create(0, 16) == NULL && kvb_create(16, 0) == NULL, "bad sizes accepted");
    /* shared prompts: sequences that start with one of them find its blocks cached */
    int32_t prompts[3][24];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 24; j++)
            prompts[i][j] = (int32_t)(tu_u32(&R) % 50);
    int32_t live[MAX_SEQS];
    int n_live = 0;
    int64_t reused = 0, refused = 0;
    for (int step = 0; step < 4000; step++) {
        uint32_t op = tu_u32(&R) % 10;
        if ((op < 3 || n_live == 0) && n_live < MAX_SEQS) { /* a new sequence: prefix cache, then the rest */
            int32_t s = kvb_seq_new(p);
            const int32_t *pr = prompts[tu_u32(&R) % 3];
            int64_t len = 5 + tu_u32(&R) % 20;
            int64_t got = kvb_match_prefix(p, s, pr, len);
            CHECK(got % BS == 0 && got < len, "prefix of %lld gave %lld", (long long)len, (long long)got);
            reused += got;
            if (append(p, s, pr + got, len - got)) {
                refused++;
                kvb_seq_free(p, s);
            } else {
                live[n_live++] = s;
            }
        } else if (op < 6) { /* append a few tokens */
            int32_t s = live[tu_u32(&R) % n_live];
            int64_t n;
            kvb_seq_tokens(p, s, &n);
            int32_t tok[8];
            int64_t k = 1 + tu_u32(&R) % 8;
            for (int i = 0; i < k; i++)
                tok[i] = (int32_t)(tu_u32(&R) % 50);
            if (n + k <= MAX_LEN) {
                kvb_stats before, after;
                kvb_get_stats(p, &before);
                int need = kvb_blocks_needed(p, s, k);
                if (append(p, s, tok, k)) {
                    refused++;
                    kvb_get_stats(p, &after);
                    int64_t n2;
                    kvb_seq_tokens(p, s, &n2);
                    CHECK(need > before.free + before.cached && n2 == n && after.free == before.free &&
                              after.cached == before.cached,
                          "step %d: a refused append changed the pool", step);
                }
            }
        } else if (op < 7 && n_live < MAX_SEQS) { /* fork */
            int32_t s = kvb_seq_fork(p, live[tu_u32(&R) % n_live]);
            CHECK(s >= 0, "fork failed");
            if (s >= 0)
                live[n_live++] = s;
        } else if (op < 8) { /* truncate */
            int32_t s = live[tu_u32(&R) % n_live];
            int64_t n;
            kvb_seq_tokens(p, s, &n);
            if (n)
                kvb_seq_truncate(p, s, tu_u32(&R) % (uint32_t)n);
        } else { /* free */
            int i = (int)(tu_u32(&R) % (uint32_t)n_live);
            kvb_seq_free(p, live[i]);
            live[i] = live[--n_live];
        }
        check_all(p, live, n_live, step);
        if (tu_failures)
            break;
    }
    kvb_stats st;
    kvb_get_stats(p, &st);
    printf("4000 operations: %lld tokens taken from the prefix cache, %lld of %lld blocks looked up found, %lld "
           "appends refused for want of blocks\n",
           (long long)reused, (long long)st.prefix_hits, (long long)st.prefix_queries, (long long)refused);
    CHECK(st.prefix_hits > 0 && refused > 0, "the run hit no prefix or never ran out of blocks");
    while (n_live)
        kvb_seq_free(p, live[--n_live]);
    kvb_get_stats(p, &st);
    CHECK(st.used == 0 && st.n_seqs == 0, "after freeing all: %d blocks used, %d sequences", st.used, st.n_seqs);
    /* a prompt run, freed, then run again: all its whole blocks but the last token's come from the cache */
    int32_t s = kvb_seq_new(p);
    append(p, s, prompts[0], 24);
    kvb_seq_free(p, s);
    s = kvb_seq_new(p);
    CHECK(kvb_match_prefix(p, s, prompts[0], 24) == 20, "a freed prompt's blocks are not reused");
    kvb_seq_free(p, s);
    kvb_destroy(p);
    return tu_finish("test_kv_blocks");
}
