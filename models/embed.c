/* embed.c: texts to vectors. The inputs go through a context whose passes give the final hidden states
 * (lm_ctx_opts.embeddings), as many inputs per pass as fit, each input whole in one pass (an encoder's
 * rows attend to all of their sequence's rows); the rows of each input are pooled on the host. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

bool lm_model_is_encoder(const lm_model *m) { return m->arch && m->arch->encoder; }

int lm_model_pooling(const lm_model *m)
{
    int t = m->hp.pooling_type;
    if (t == LM_POOL_MEAN || t == LM_POOL_CLS || t == LM_POOL_LAST)
        return t;
    return lm_model_is_encoder(m) ? LM_POOL_MEAN : LM_POOL_LAST;
}

/* The rows of one input that its pooling reads: all, the first or the last. */
static void wanted(int pooling, int64_t n, int8_t *want)
{
    for (int64_t i = 0; i < n; i++)
        want[i] = pooling == LM_POOL_MEAN || (pooling == LM_POOL_CLS && i == 0) || (pooling == LM_POOL_LAST && i == n - 1);
}

int lm_embed_tokens(lm_model *m, const int32_t *const *ids, const int64_t *n_ids, int n_inputs, bool normalize,
                    float *out, char *err, size_t errlen)
{
    const lm_hparams *hp = &m->hp;
    if (n_inputs <= 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "nothing to embed");
    int64_t max_len = 0, total = 0;
    for (int i = 0; i < n_inputs; i++) {
        if (n_ids[i] <= 0)
            return lm_fail(err, errlen, LM_ERR_INVALID, "input %d is empty", i);
        if (n_ids[i] > hp->n_ctx_train)
            return lm_fail(err, errlen, LM_ERR_CONTEXT_FULL, "input %d has %lld tokens, more than the model's context (%d)",
                           i, (long long)n_ids[i], hp->n_ctx_train);
        max_len = n_ids[i] > max_len ? n_ids[i] : max_len;
        total += n_ids[i];
    }
    int pooling = lm_model_pooling(m);
    int32_t n_batch = (int32_t)(total < 512 ? total : 512);
    n_batch = n_batch < max_len ? (int32_t)max_len : n_batch;
    lm_ctx_opts o = { .n_ctx = (int32_t)max_len, .n_batch = n_batch, .n_seq_max = n_inputs < 64 ? n_inputs : 64,
                      .kv_f32 = true, .embeddings = true };
    lm_ctx *c;
    int rc = lm_ctx_create(m, &o, &c, err, errlen);
    if (rc)
        return rc;
    int64_t dim = hp->dim;
    int32_t *tok = malloc(sizeof *tok * (size_t)n_batch), *seq = malloc(sizeof *seq * (size_t)n_batch);
    int8_t *want = malloc((size_t)n_batch);
    float *hidden = malloc(sizeof *hidden * (size_t)n_batch * (size_t)dim);
    int32_t seqs[64];
    if (!tok || !seq || !want || !hidden)
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    for (int i0 = 0; i0 < n_inputs && !rc;) {
        /* a pass: whole inputs while they fit */
        int n_in = 0;
        int64_t rows = 0;
        while (i0 + n_in < n_inputs && n_in < o.n_seq_max && rows + n_ids[i0 + n_in] <= n_batch) {
            int32_t s = lm_ctx_seq_new(c);
            if (s < 0) {
                rc = lm_fail(err, errlen, LM_ERR_NOMEM, "no sequence for input %d", i0 + n_in);
                break;
            }
            seqs[n_in] = s;
            const int64_t n = n_ids[i0 + n_in];
            memcpy(tok + rows, ids[i0 + n_in], sizeof *tok * (size_t)n);
            for (int64_t j = 0; j < n; j++)
                seq[rows + j] = s;
            wanted(pooling, n, want + rows);
            rows += n;
            n_in++;
        }
        if (!rc)
            rc = lm_ctx_eval(c, &(lm_batch){ .n = rows, .tokens = tok, .seq = seq, .want = want }, hidden, NULL, err,
                             errlen);
        /* the wanted rows come back in row order: each input's, pooled */
        const float *h = hidden;
        for (int k = 0; k < n_in && !rc; k++) {
            int64_t n = n_ids[i0 + k], rows_k = pooling == LM_POOL_MEAN ? n : 1;
            float *v = out + (size_t)(i0 + k) * (size_t)dim;
            for (int64_t d = 0; d < dim; d++) {
                double sum = 0;
                for (int64_t r = 0; r < rows_k; r++)
                    sum += h[r * dim + d];
                v[d] = (float)(sum / (double)rows_k);
            }
            h += rows_k * dim;
            if (normalize) {
                double ss = 0;
                for (int64_t d = 0; d < dim; d++)
                    ss += (double)v[d] * v[d];
                double inv = ss > 0 ? 1.0 / sqrt(ss) : 0;
                for (int64_t d = 0; d < dim; d++)
                    v[d] = (float)(v[d] * inv);
            }
        }
        for (int k = 0; k < n_in; k++)
            lm_ctx_seq_free(c, seqs[k]);
        i0 += n_in;
    }
    free(tok);
    free(seq);
    free(want);
    free(hidden);
    lm_ctx_free(c);
    return rc;
}

int lm_embed_texts(lm_model *m, const char *const *texts, int n_inputs, bool normalize, float *out,
                   int64_t *n_tokens, char *err, size_t errlen)
{
    if (n_inputs <= 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "nothing to embed");
    int32_t **ids = calloc((size_t)n_inputs, sizeof *ids);
    int64_t *n = calloc((size_t)n_inputs, sizeof *n), total = 0;
    int rc = ids && n ? LM_OK : lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    for (int i = 0; i < n_inputs && !rc; i++) {
        char msg[256];
        if ((rc = lm_tokenize(m->vocab, texts[i], strlen(texts[i]), true, false, &ids[i], &n[i], msg, sizeof msg)))
            lm_fail(err, errlen, rc, "input %d: %s", i, msg);
        total += n[i];
    }
    if (!rc)
        rc = lm_embed_tokens(m, (const int32_t *const *)ids, n, n_inputs, normalize, out, err, errlen);
    if (!rc && n_tokens)
        *n_tokens = total;
    for (int i = 0; ids && i < n_inputs; i++)
        free(ids[i]);
    free(ids);
    free(n);
    return rc;
}
