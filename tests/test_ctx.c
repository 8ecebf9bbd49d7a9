/* test_ctx.c: the batched context (lm_ctx) on stories260K, f32 KV cache:
 * - batched decoding: four sequences prefilled in one batch (their rows mixed) and decoded together,
 *   one row each per pass, give each sequence the same greedy tokens as decoding it alone;
 * - a fork continues as the original would, and the original is not disturbed (copy on write);
 * - prefix reuse: a sequence that starts like a freed one takes its cached blocks, and its logits equal
 *   a fresh evaluation's (nmse < 1e-9);
 * - a pool too small: LM_ERR_KV_FULL with nothing changed, and it works after a sequence is freed;
 * - bad rows (an unknown sequence, a token out of range) and a sequence past n_ctx are refused;
 * - lm_ctx_submit + lm_ctx_wait give what lm_ctx_eval gives;
 * - lm_ctx_abort from another thread stops a long prefill between passes, keeping the passes done. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lm.h"
#include "util.h"

#define N_GEN 12

static const char *prompts[4] = { "Once upon a time", "The little dog", "Lily and Ben went to the",
                                  "One day, a big red ball" };

/* greedy tokens of prompt alone, through a session */
static void alone(lm_model *m, const int32_t *ids, int64_t n, int32_t *out)
{
    char err[512];
    lm_session *s = NULL;
    lm_session_opts so = { .n_ctx = 128, .kv_f32 = true };
    CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "%s", err);
    if (!s)
        return;
    int32_t nv = lm_model_hparams(m)->n_vocab, cur = 0;
    float *l = malloc(sizeof(float) * (size_t)nv);
    CHECK(lm_session_eval(s, ids, n, l, false, err, sizeof err) == LM_OK, "%s", err);
    for (int32_t i = 1; i < nv; i++)
        cur = l[i] > l[cur] ? i : cur;
    for (int i = 0; i < N_GEN; i++) {
        out[i] = cur;
        CHECK(lm_session_step(s, cur, NULL, &cur, err, sizeof err) == LM_OK, "%s", err);
    }
    free(l);
    lm_session_free(s);
}

typedef struct { lm_ctx *c; int ms; } aborter;
static void *abort_later(void *p)
{
    aborter *a = p;
    struct timespec ts = { 0, a->ms * 1000000L };
    nanosleep(&ts, NULL);
    lm_ctx_abort(a->c);
    return NULL;
}

int main(void)
{
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_ctx");
    char err[512];
    lm_model *m = NULL;
    CHECK(lm_model_load(g.ctx, tu_model_path("gguf/stories260K.gguf"), NULL, &m, err, sizeof err) == LM_OK, "%s", err);
    if (!m)
        return tu_finish("test_ctx");
    const lm_vocab *v = lm_model_vocab(m);
    int32_t nv = lm_model_hparams(m)->n_vocab;
    int32_t *ids[4];
    int64_t n_ids[4];
    int32_t want_tok[4][N_GEN];
    for (int i = 0; i < 4; i++) {
        lm_tokenize(v, prompts[i], strlen(prompts[i]), true, false, &ids[i], &n_ids[i], err, sizeof err);
        alone(m, ids[i], n_ids[i], want_tok[i]);
    }

    /* four sequences at once */
    lm_ctx *c = NULL;
    lm_ctx_opts co = { .n_ctx = 128, .n_batch = 32, .n_seq_max = 4, .block_size = 16, .kv_f32 = true };
    CHECK(lm_ctx_create(m, &co, &c, err, sizeof err) == LM_OK, "%s", err);
    if (!c)
        goto out;
    int32_t seq[4], rows_seq[64], rows_tok[64], next[4];
    int64_t n = 0;
    for (int i = 0; i < 4; i++)
        seq[i] = lm_ctx_seq_new(c);
    for (int64_t j = 0; j < 16; j++) /* the prompts' rows interleaved */
        for (int i = 0; i < 4; i++)
            if (j < n_ids[i]) {
                rows_seq[n] = seq[i];
                rows_tok[n++] = ids[i][j];
            }
    lm_batch b = { .n = n, .tokens = rows_tok, .seq = rows_seq };
    CHECK(lm_ctx_eval(c, &b, NULL, next, err, sizeof err) == LM_OK, "prefill: %s", err);
    /* want NULL: the last row of each sequence, in row order: the sequence whose prompt ends first first */
    int order[4], k = 0;
    for (int64_t r = 0; r < n; r++) {
        int i = 0;
        while (seq[i] != rows_seq[r])
            i++;
        bool last = true;
        for (int64_t r2 = r + 1; r2 < n; r2++)
            last = last && rows_seq[r2] != rows_seq[r];
        if (last)
            order[k++] = i;
    }
    int32_t cur[4];
    for (int i = 0; i < 4; i++)
        cur[order[i]] = next[i];
    int bad = 0;
    for (int t = 0; t < N_GEN; t++) {
        for (int i = 0; i < 4; i++) {
            bad += cur[i] != want_tok[i][t];
            rows_seq[i] = seq[i];
            rows_tok[i] = cur[i];
        }
        lm_batch d = { .n = 4, .tokens = rows_tok, .seq = rows_seq };
        CHECK(lm_ctx_eval(c, &d, NULL, next, err, sizeof err) == LM_OK, "decode: %s", err);
        memcpy(cur, next, sizeof cur);
    }
    CHECK(bad == 0, "batched decoding: %d of %d tokens differ from decoding each sequence alone", bad, 4 * N_GEN);
    /* the same step submitted, then waited for: the same tokens as lm_ctx_eval gives */
    {
        int64_t len[4];
        for (int i = 0; i < 4; i++) {
            lm_ctx_seq_tokens(c, seq[i], &len[i]);
            rows_seq[i] = seq[i];
            rows_tok[i] = cur[i];
        }
        int32_t via_eval[4], via_submit[4] = { -1, -1, -1, -1 };
        lm_batch d = { .n = 4, .tokens = rows_tok, .seq = rows_seq };
        CHECK(lm_ctx_eval(c, &d, NULL, via_eval, err, sizeof err) == LM_OK, "%s", err);
        for (int i = 0; i < 4; i++)
            lm_ctx_seq_truncate(c, seq[i], len[i]);
        CHECK(lm_ctx_submit(c, &d, NULL, via_submit, err, sizeof err) == LM_OK && lm_ctx_pending(c), "submit: %s", err);
        CHECK(lm_ctx_wait(c, err, sizeof err) == LM_OK && !lm_ctx_pending(c), "wait: %s", err);
        CHECK(!memcmp(via_eval, via_submit, sizeof via_eval), "submit + wait gave other tokens than eval");
        for (int i = 0; i < 4; i++)
            lm_ctx_seq_truncate(c, seq[i], len[i]);
    }
    printf("4 sequences prefilled in one batch and decoded together: %d tokens each, %s\n", N_GEN,
           bad ? "DIFFERENT" : "the same as alone");

    /* fork sequence 0 at its prompt + 5 tokens: the fork goes on as the original would */
    {
        int64_t len0;
        lm_ctx_seq_truncate(c, seq[0], n_ids[0] + 5);
        lm_ctx_seq_tokens(c, seq[0], &len0);
        int32_t f = lm_ctx_seq_fork(c, seq[0]);
        CHECK(f >= 0 && len0 == n_ids[0] + 5, "fork");
        float *l1 = malloc(sizeof(float) * (size_t)nv * 2);
        int32_t rs[2] = { seq[0], f }, rt[2] = { want_tok[0][5], want_tok[0][5] };
        lm_batch fb = { .n = 2, .tokens = rt, .seq = rs };
        CHECK(lm_ctx_eval(c, &fb, l1, next, err, sizeof err) == LM_OK, "fork step: %s", err);
        double e = tu_nmse_f(l1 + nv, l1, nv);
        CHECK(e < 1e-12 && next[0] == want_tok[0][6] && next[1] == want_tok[0][6],
              "a fork and its original differ: nmse %.3g, tokens %d %d (want %d)", e, next[0], next[1], want_tok[0][6]);
        /* the fork takes another token: the original still continues as alone (its block was copied) */
        rt[0] = want_tok[0][6];
        rt[1] = (want_tok[0][6] + 11) % nv;
        CHECK(lm_ctx_eval(c, &fb, NULL, next, err, sizeof err) == LM_OK, "fork step 2: %s", err);
        CHECK(next[0] == want_tok[0][7], "after the fork wrote its own token the original gives %d (want %d)", next[0],
              want_tok[0][7]);
        printf("fork: the fork continues as the original, and writing it leaves the original as it was\n");
        lm_ctx_seq_free(c, f);
        free(l1);
    }
    for (int i = 0; i < 4; i++)
        lm_ctx_seq_free(c, seq[i]);

    /* prefix reuse: A = P + X evaluated and freed; B = P + Y takes P's whole blocks */
    {
        int32_t p[40], bx[48];
        for (int i = 0; i < 40; i++)
            p[i] = (int32_t)((i * 37 + 5) % nv);
        memcpy(bx, p, sizeof p);
        for (int i = 40; i < 48; i++)
            bx[i] = (int32_t)((i * 11 + 1) % nv);
        int32_t a = lm_ctx_seq_new(c), rs[48];
        for (int i = 0; i < 48; i++)
            rs[i] = a;
        lm_batch pb = { .n = 48, .tokens = bx, .seq = rs };
        CHECK(lm_ctx_eval(c, &pb, NULL, NULL, err, sizeof err) == LM_OK, "prefix A: %s", err);
        lm_ctx_seq_free(c, a);
        for (int i = 40; i < 48; i++)
            bx[i] = (int32_t)((i * 13 + 7) % nv);
        int32_t bseq = lm_ctx_seq_new(c);
        int64_t took = lm_ctx_seq_reuse(c, bseq, bx, 48);
        CHECK(took == 32, "prefix reuse took %lld tokens (want 32: two whole blocks of the shared 40)", (long long)took);
        for (int i = 0; i < 48; i++)
            rs[i] = bseq;
        float *l = malloc(sizeof(float) * (size_t)nv), *lf = malloc(sizeof(float) * (size_t)nv);
        lm_batch rest = { .n = 48 - took, .tokens = bx + took, .seq = rs };
        CHECK(lm_ctx_eval(c, &rest, l, NULL, err, sizeof err) == LM_OK, "prefix B: %s", err);
        int32_t fresh = lm_ctx_seq_new(c);
        for (int i = 0; i < 48; i++)
            rs[i] = fresh;
        lm_batch all = { .n = 48, .tokens = bx, .seq = rs };
        CHECK(lm_ctx_eval(c, &all, lf, NULL, err, sizeof err) == LM_OK, "fresh: %s", err);
        double e = tu_nmse_f(l, lf, nv);
        CHECK(e < 1e-9, "logits after a prefix reuse differ from a fresh evaluation: nmse %.3g", e);
        lm_kv_stats st;
        lm_ctx_kv_stats(c, &st);
        printf("prefix reuse: %lld of 48 tokens from the cache, logits nmse %.3g against a fresh evaluation; "
               "%lld of %lld blocks looked up found\n",
               (long long)took, e, (long long)st.prefix_hits, (long long)st.prefix_queries);
        lm_ctx_seq_free(c, bseq);
        lm_ctx_seq_free(c, fresh);
        free(l), free(lf);
    }

    /* refusals */
    {
        int32_t s = lm_ctx_seq_new(c), rs[1] = { s + 100 }, rt[1] = { 1 };
        lm_batch bb = { .n = 1, .tokens = rt, .seq = rs };
        CHECK(lm_ctx_eval(c, &bb, NULL, NULL, err, sizeof err) == LM_ERR_INVALID, "an unknown sequence was taken");
        rs[0] = s;
        rt[0] = nv;
        CHECK(lm_ctx_eval(c, &bb, NULL, NULL, err, sizeof err) == LM_ERR_INVALID, "a token out of range was taken");
        int32_t big[129], bs[129];
        for (int i = 0; i < 129; i++)
            big[i] = 1, bs[i] = s;
        lm_batch over = { .n = 129, .tokens = big, .seq = bs };
        CHECK(lm_ctx_eval(c, &over, NULL, NULL, err, sizeof err) == LM_ERR_CONTEXT_FULL, "129 tokens in a context of 128");
        int64_t len;
        lm_ctx_seq_tokens(c, s, &len);
        CHECK(len == 0, "a refused batch left %lld tokens", (long long)len);
        lm_ctx_seq_free(c, s);
    }
    lm_ctx_free(c);
    c = NULL;

    /* a pool of 6 blocks of 16: sequences of 40 and 50 tokens do not fit together; one alone does */
    {
        lm_ctx_opts so = { .n_ctx = 128, .n_batch = 64, .n_seq_max = 2, .n_kv_blocks = 6, .block_size = 16, .kv_f32 = true };
        CHECK(lm_ctx_create(m, &so, &c, err, sizeof err) == LM_OK, "%s", err);
        if (!c)
            goto out;
        int32_t a = lm_ctx_seq_new(c), b2 = lm_ctx_seq_new(c), rs[90], rt[90];
        for (int i = 0; i < 90; i++)
            rs[i] = i < 40 ? a : b2, rt[i] = (i * 7 + 3) % nv;
        lm_batch two = { .n = 90, .tokens = rt, .seq = rs };
        CHECK(lm_ctx_eval(c, &two, NULL, NULL, err, sizeof err) == LM_ERR_KV_FULL,
              "sequences of 40 and 50 tokens (3 + 4 blocks of 16) taken by a pool of 6 blocks");
        lm_kv_stats st;
        lm_ctx_kv_stats(c, &st);
        int64_t la, lb;
        lm_ctx_seq_tokens(c, a, &la);
        lm_ctx_seq_tokens(c, b2, &lb);
        CHECK(st.used == 0 && la == 0 && lb == 0, "a refused batch changed the pool: %d used, %lld + %lld tokens", st.used,
              (long long)la, (long long)lb);
        lm_batch one = { .n = 40, .tokens = rt, .seq = rs };
        CHECK(lm_ctx_eval(c, &one, NULL, NULL, err, sizeof err) == LM_OK, "40 tokens: %s", err);
        lm_ctx_seq_free(c, a);
        lm_ctx_free(c);
        c = NULL;
    }

    /* abort from another thread: a prefill of 512 tokens in passes of 8 stops between two of them */
    {
        lm_ctx_opts so = { .n_ctx = 512, .n_batch = 8, .kv_f32 = true };
        CHECK(lm_ctx_create(m, &so, &c, err, sizeof err) == LM_OK, "%s", err);
        if (!c)
            goto out;
        int32_t s = lm_ctx_seq_new(c), *rt = malloc(512 * 4), *rs = malloc(512 * 4);
        for (int i = 0; i < 512; i++)
            rt[i] = (i * 5 + 1) % nv, rs[i] = s;
        lm_batch lb = { .n = 512, .tokens = rt, .seq = rs };
        int rc = LM_OK, tries = 0;
        for (; tries < 5 && rc == LM_OK; tries++) {
            lm_ctx_seq_truncate(c, s, 0);
            aborter ab = { c, 5 + 10 * tries };
            pthread_t th;
            pthread_create(&th, NULL, abort_later, &ab);
            rc = lm_ctx_eval(c, &lb, NULL, NULL, err, sizeof err);
            pthread_join(th, NULL);
        }
        int64_t len;
        lm_ctx_seq_tokens(c, s, &len);
        CHECK(rc == LM_ERR_ABORTED && len % 8 == 0 && len < 512, "abort: %s, %lld tokens kept", lm_status_string(rc),
              (long long)len);
        printf("abort: stopped after %lld of 512 tokens (passes of 8)\n", (long long)len);
        free(rt), free(rs);
    }
out:
    lm_ctx_free(c);
    for (int i = 0; i < 4; i++)
        free(ids[i]);
    lm_model_free(m);
    tu_gpu_close(&g);
    return tu_finish("test_ctx");
}
