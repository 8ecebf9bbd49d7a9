/* test_session.c: a session remembers the tokens in its cache, and lm_session_sync evaluates only what
 * a new chat turn adds (counted with lm_session_n_evaluated), on stories260K.
 *
 * Turn 1: a prompt A, then 12 greedy decode steps G. Turn 2: A + G + B: only B is evaluated, and the
 * logits equal a fresh session's on the same tokens (nmse < 1e-9, f32 KV cache: the cached rows are the
 * same numbers). Regenerating (A + G again): one token evaluated. Editing the end of G: only the tokens
 * after the edit. Too many tokens: LM_ERR_CONTEXT_FULL, the cache untouched. */
#include <stdlib.h>
#include <string.h>

#include "lm.h"
#include "util.h"

#define N_CTX 96

/* Full prefill chunks replay one recording: a second prompt through the same session (after a rewind)
 * gives what a fresh session gives for it, in one pass and all-logits (perplexity's) alike. And with
 * VKLLM_STAGED_UPLOAD=1 (upload memory taken as not device-local, as on a discrete GPU without resizable
 * BAR: each pass copies ids and positions to device memory first) a new context gives the same logits. */
static void replay_and_staged(lm_model *m, const float *want_logits, const int32_t *ids, int64_t n)
{
    char err[512];
    int32_t nv = lm_model_hparams(m)->n_vocab;
    lm_session_opts so = { .n_ctx = N_CTX, .n_batch = 8, .kv_f32 = true };
    lm_session *s = NULL, *fresh = NULL;
    float *all = malloc(sizeof(float) * (size_t)(nv * n)), *all2 = malloc(sizeof(float) * (size_t)(nv * n)),
          *last = malloc(sizeof(float) * (size_t)nv);
    int32_t *other = malloc(sizeof *other * (size_t)n);
    CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "%s", err);
    CHECK(lm_session_create(m, &so, &fresh, err, sizeof err) == LM_OK, "%s", err);
    if (!s || !fresh || !all || !all2 || !last || !other)
        goto out;
    for (int64_t i = 0; i < n; i++)
        other[i] = (ids[i] * 7 + 3) % nv;
    CHECK(lm_session_eval(s, other, n, all, true, err, sizeof err) == LM_OK, "%s", err);
    lm_session_rewind(s, 0);
    CHECK(lm_session_eval(s, ids, n, all, true, err, sizeof err) == LM_OK, "%s", err);
    CHECK(lm_session_eval(fresh, ids, n, all2, true, err, sizeof err) == LM_OK, "%s", err);
    double e = tu_nmse_f(all, all2, nv * n);
    CHECK(e < 1e-12, "all logits of a replayed prefill differ from a fresh session's: nmse %.3g", e);
    lm_session_rewind(s, 0);
    CHECK(lm_session_eval(s, other, n, last, false, err, sizeof err) == LM_OK, "%s", err);
    lm_session_rewind(s, 0);
    CHECK(lm_session_eval(s, ids, n, last, false, err, sizeof err) == LM_OK, "%s", err);
    e = tu_nmse_f(last, want_logits, nv);
    CHECK(e < 1e-9, "the last logits of a replayed prefill differ: nmse %.3g", e);
    printf("prefill in chunks of 8 replayed for a second prompt: logits nmse %.3g\n", e);

    setenv("VKLLM_STAGED_UPLOAD", "1", 1);
    tu_gpu g2;
    lm_model *m2 = NULL;
    lm_session *s2 = NULL;
    if (tu_gpu_open(&g2)) {
        CHECK(lm_model_load(g2.ctx, tu_model_path("gguf/stories260K.gguf"), NULL, &m2, err, sizeof err) == LM_OK,
              "%s", err);
        if (m2)
            CHECK(lm_session_create(m2, &so, &s2, err, sizeof err) == LM_OK, "%s", err);
        if (s2) {
            CHECK(lm_session_eval(s2, ids, n, last, false, err, sizeof err) == LM_OK, "%s", err);
            e = tu_nmse_f(last, want_logits, nv);
            CHECK(e < 1e-9, "logits with ids and positions copied to device memory differ: nmse %.3g", e);
            printf("ids and positions through device memory (VKLLM_STAGED_UPLOAD=1): logits nmse %.3g\n", e);
        }
        lm_session_free(s2);
        lm_model_free(m2);
        tu_gpu_close(&g2);
    }
    unsetenv("VKLLM_STAGED_UPLOAD");
out:
    lm_session_free(s);
    lm_session_free(fresh);
    free(all), free(all2), free(last), free(other);
}

int main(void)
{
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_session");
    char err[512];
    lm_model *m = NULL;
    CHECK(lm_model_load(g.ctx, tu_model_path("gguf/stories260K.gguf"), NULL, &m, err, sizeof err) == LM_OK, "%s",
          err);
    if (!m)
        return tu_finish("test_session");
    const lm_vocab *v = lm_model_vocab(m);
    int32_t nv = lm_model_hparams(m)->n_vocab;
    lm_session_opts so = { .n_ctx = N_CTX, .n_batch = 16, .kv_f32 = true };
    lm_session *s = NULL, *fresh = NULL;
    CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "%s", err);
    CHECK(lm_session_create(m, &so, &fresh, err, sizeof err) == LM_OK, "%s", err);
    int32_t *a = NULL, *b = NULL, conv[N_CTX + 8];
    int64_t na = 0, nb = 0, reused = -1;
    const char *ta = "Once upon a time, there was a little girl", *tb = " She said: let us play in the park.";
    lm_tokenize(v, ta, strlen(ta), true, false, &a, &na, err, sizeof err);
    lm_tokenize(v, tb, strlen(tb), false, false, &b, &nb, err, sizeof err);
    float *l1 = malloc(sizeof(float) * (size_t)nv), *l2 = malloc(sizeof(float) * (size_t)nv);
    double *ref = malloc(sizeof(double) * (size_t)nv);
    if (!s || !fresh || !a || !b || !l1 || !l2 || !ref)
        goto out;

    /* turn 1: the prompt, then greedy steps */
    CHECK(lm_session_sync(s, a, na, l1, &reused, err, sizeof err) == LM_OK && reused == 0, "turn 1: %s", err);
    CHECK(lm_session_n_evaluated(s) == na, "turn 1 evaluated %lld of %lld", (long long)lm_session_n_evaluated(s),
          (long long)na);
    int32_t cur = 0;
    for (int32_t i = 1; i < nv; i++)
        cur = l1[i] > l1[cur] ? i : cur;
    memcpy(conv, a, sizeof *a * (size_t)na);
    int64_t n = na;
    for (int i = 0; i < 12; i++) {
        conv[n++] = cur;
        CHECK(lm_session_step(s, cur, NULL, &cur, err, sizeof err) == LM_OK, "step: %s", err);
    }
    int32_t nc;
    const int32_t *cached = lm_session_tokens(s, &nc);
    CHECK(nc == n && !memcmp(cached, conv, sizeof *conv * (size_t)n), "the session does not remember its tokens");

    /* turn 2: only the new message is evaluated */
    memcpy(conv + n, b, sizeof *b * (size_t)nb);
    int64_t before = lm_session_n_evaluated(s);
    CHECK(lm_session_sync(s, conv, n + nb, l1, &reused, err, sizeof err) == LM_OK, "turn 2: %s", err);
    CHECK(reused == n && lm_session_n_evaluated(s) - before == nb, "turn 2 reused %lld (want %lld), evaluated %lld "
          "(want %lld)", (long long)reused, (long long)n, (long long)(lm_session_n_evaluated(s) - before),
          (long long)nb);
    CHECK(lm_session_eval(fresh, conv, n + nb, l2, false, err, sizeof err) == LM_OK, "fresh: %s", err);
    for (int32_t i = 0; i < nv; i++)
        ref[i] = l2[i];
    double e = tu_nmse(l1, ref, nv);
    CHECK(e < 1e-9, "turn 2 logits differ from a fresh session's: nmse %.3g", e);
    printf("turn 2: %lld cached tokens reused, %lld evaluated, logits nmse %.3g against a fresh session\n",
           (long long)reused, (long long)nb, e);
    replay_and_staged(m, l2, conv, n + nb);

    /* regenerate the reply to turn 1: the same tokens, one evaluated for its logits */
    before = lm_session_n_evaluated(s);
    CHECK(lm_session_sync(s, conv, n, l1, &reused, err, sizeof err) == LM_OK, "regenerate: %s", err);
    CHECK(reused == n - 1 && lm_session_n_evaluated(s) - before == 1, "regenerate reused %lld, evaluated %lld",
          (long long)reused, (long long)(lm_session_n_evaluated(s) - before));

    /* edit the last 3 tokens */
    conv[n - 3] = (conv[n - 3] + 7) % nv, conv[n - 2] = 100, conv[n - 1] = 200;
    before = lm_session_n_evaluated(s);
    CHECK(lm_session_sync(s, conv, n, l1, &reused, err, sizeof err) == LM_OK, "edit: %s", err);
    CHECK(reused == n - 3 && lm_session_n_evaluated(s) - before == 3, "edit reused %lld, evaluated %lld",
          (long long)reused, (long long)(lm_session_n_evaluated(s) - before));

    /* too long: its own status, nothing changed */
    int32_t *big = calloc(N_CTX + 1, sizeof *big);
    if (big) {
        memcpy(big, conv, sizeof *conv * (size_t)n);
        int rc = lm_session_sync(s, big, N_CTX + 1, l1, &reused, err, sizeof err);
        cached = lm_session_tokens(s, &nc);
        CHECK(rc == LM_ERR_CONTEXT_FULL && nc == n, "a context overflow gave %s, %d tokens cached",
              lm_status_string(rc), nc);
        CHECK(!strstr(err, "-c"), "the library's message names a flag: %s", err);
        rc = lm_session_eval(s, big, N_CTX + 1 - n, NULL, false, err, sizeof err);
        CHECK(rc == LM_ERR_CONTEXT_FULL, "eval past the context gave %s", lm_status_string(rc));
        free(big);
    }
out:
    free(a), free(b), free(l1), free(l2), free(ref);
    lm_session_free(s);
    lm_session_free(fresh);
    lm_model_free(m);
    tu_gpu_close(&g);
    return tu_finish("test_session");
}
