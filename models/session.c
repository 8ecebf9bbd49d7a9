/* session.c: a conversation on the device: one sequence of a batched context (models/ctx.c) with a KV
 * pool just big enough for it, for callers that run one conversation at a time (run, chat, the window,
 * perplexity). Tokens are evaluated at positions n_past, n_past + 1, ...; prefill goes in passes of
 * n_batch rows, and the decode step is one recorded pass replayed. */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

struct lm_session {
    lm_ctx *c;
    int32_t seq;
    int32_t n_ctx;
    int32_t *ones;             /* [n_batch] the sequence id of every row (0) */
    int8_t *all;               /* [n_batch] 1: every row produces logits */
};

void lm_session_free(lm_session *s)
{
    if (!s)
        return;
    lm_ctx_free(s->c);
    free(s->ones);
    free(s->all);
    free(s);
}

int lm_session_create(lm_model *m, const lm_session_opts *opts, lm_session **out, char *err, size_t errlen)
{
    *out = NULL;
    if (lm_model_is_encoder(m)) /* every front end that generates (run, chat, its window, perplexity) says so */
        return lm_fail(err, errlen, LM_ERR_UNSUPPORTED,
                       "%s is an encoder (%s): it embeds (vkllm embed, /v1/embeddings) and does not generate text",
                       lm_model_hparams(m)->name, lm_model_hparams(m)->arch);
    lm_session *s = calloc(1, sizeof *s);
    if (!s)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    lm_ctx_opts co = { .n_ctx = opts ? opts->n_ctx : 0, .n_batch = opts ? opts->n_batch : 0, .n_seq_max = 1,
                       .kv_f32 = opts && opts->kv_f32 };
    int rc = lm_ctx_create(m, &co, &s->c, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    s->n_ctx = lm_ctx_n_ctx(s->c);
    int32_t nb = lm_ctx_n_batch(s->c);
    s->ones = calloc((size_t)nb, sizeof *s->ones);
    s->all = malloc((size_t)nb);
    s->seq = lm_ctx_seq_new(s->c);
    if (!s->ones || !s->all || s->seq < 0) {
        lm_session_free(s);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    }
    for (int32_t i = 0; i < nb; i++)
        s->ones[i] = s->seq;
    memset(s->all, 1, (size_t)nb);
    *out = s;
    return LM_OK;
}

void lm_session_memory(const lm_session *s, uint64_t *kv_bytes, uint64_t *scratch_bytes)
{
    lm_ctx_memory(s->c, kv_bytes, scratch_bytes);
}

int32_t lm_session_n_ctx(const lm_session *s) { return s->n_ctx; }
const lm_model *lm_session_model(const lm_session *s) { return lm_ctx_model(s->c); }

int32_t lm_session_n_past(const lm_session *s)
{
    int64_t n;
    lm_ctx_seq_tokens(s->c, s->seq, &n);
    return (int32_t)n;
}

void lm_session_rewind(lm_session *s, int32_t pos)
{
    if (pos >= 0)
        lm_ctx_seq_truncate(s->c, s->seq, pos);
}

const int32_t *lm_session_tokens(const lm_session *s, int32_t *n)
{
    int64_t len;
    const int32_t *t = lm_ctx_seq_tokens(s->c, s->seq, &len);
    *n = (int32_t)len;
    return t;
}

int64_t lm_session_n_evaluated(const lm_session *s) { return lm_ctx_n_evaluated(s->c); }

int lm_session_sync(lm_session *s, const int32_t *ids, int64_t n, float *logits, int64_t *reused, char *err,
                    size_t errlen)
{
    if (n <= 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "no tokens to evaluate");
    if (n > s->n_ctx)
        return lm_fail(err, errlen, LM_ERR_CONTEXT_FULL, "%lld tokens exceed the context of %d positions",
                       (long long)n, s->n_ctx);
    int32_t past;
    const int32_t *cached = lm_session_tokens(s, &past);
    int64_t keep = 0;
    while (keep < past && keep < n && cached[keep] == ids[keep])
        keep++;
    if (keep == n) /* all cached: evaluate the last one again for its logits */
        keep = n - 1;
    lm_session_rewind(s, (int32_t)keep);
    if (reused)
        *reused = keep;
    return lm_session_eval(s, ids + keep, n - keep, logits, false, err, errlen);
}

/* Rows [0, n) of ids in passes of n_batch (the context splits a batch, but the row arrays here are
 * n_batch long): all rows' logits, the last row's, or none. */
static int eval_rows(lm_session *s, const int32_t *ids, int64_t n, float *logits, int32_t *next, bool all_logits,
                     char *err, size_t errlen)
{
    int32_t nb = lm_ctx_n_batch(s->c), n_vocab = lm_model_hparams(lm_ctx_model(s->c))->n_vocab;
    for (int64_t done = 0; done < n; done += nb) {
        int64_t c = n - done < nb ? n - done : nb;
        bool last = done + c == n;
        lm_batch b = { .n = c, .tokens = ids + done, .seq = s->ones, .want = all_logits ? s->all : NULL };
        float *out = !logits ? NULL : all_logits ? logits + done * n_vocab : last ? logits : NULL;
        int rc = lm_ctx_eval(s->c, &b, out, last ? next : NULL, err, errlen);
        if (rc)
            return rc;
    }
    return LM_OK;
}

int lm_session_eval(lm_session *s, const int32_t *ids, int64_t n, float *logits, bool all_logits, char *err,
                    size_t errlen)
{
    if (n <= 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "no tokens to evaluate");
    return eval_rows(s, ids, n, logits, NULL, all_logits, err, errlen);
}

int lm_session_step(lm_session *s, int32_t id, float *logits, int32_t *next, char *err, size_t errlen)
{
    /* greedy: the argmax is taken on the device and 4 bytes come back; else the logits, and their argmax */
    int rc = eval_rows(s, &id, 1, logits, logits ? NULL : next, false, err, errlen);
    if (rc || !logits)
        return rc;
    int32_t n_vocab = lm_model_hparams(lm_ctx_model(s->c))->n_vocab, best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    *next = best;
    return LM_OK;
}

int lm_session_profile(const lm_session *s, bool prefill,
                       void (*fn)(void *user, const char *kernel, double ns, double bytes, double flops), void *user)
{
    return lm_ctx_profile(s->c, prefill, fn, user);
}

void lm_session_counts(const lm_session *s, bool prefill, int *commands, int *barriers)
{
    lm_ctx_counts(s->c, prefill, commands, barriers);
}
