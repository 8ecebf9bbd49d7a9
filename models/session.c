/* session.c: a conversation on the device: the KV cache, activation buffers, the forward pass recorded
 * from runtime ops (read it top to bottom like llama2.c's forward()), prefill in batches, and the decode
 * step recorded once and re-submitted with the token and position in a host-written buffer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

enum logits_mode { LOGITS_NONE, LOGITS_LAST, LOGITS_ALL };

struct lm_session {
    lm_model *m;
    int32_t n_ctx, n_batch, n_past;
    rt_dtype kv_type;
    int32_t logit_rows;        /* rows the logits buffers hold now: 1, grown when all rows are asked for */
    int32_t logit_rows_max;    /* what one binding of logits allows (all-logits passes are cut to this) */
    rt_buffer **kc, **vc;      /* per layer: [n_ctx][n_kv_heads * head_dim] */
    rt_buffer *x;              /* [n_batch][dim] the residual stream */
    rt_buffer *qkv;            /* [n_batch][q_dim + 2 kv_dim] this pass's queries, keys and values */
    rt_buffer *q;              /* [n_batch][q_dim] the queries rotated */
    rt_buffer *att;            /* [n_batch][q_dim] attention output */
    rt_buffer *hb;             /* [n_batch][ffn_dim] silu(gate) * up (the norm before the projections and
                                * the gate / up pair are folded into the matrix products: no buffers) */
    rt_buffer *logits;         /* [logit_rows][n_vocab] */
    rt_buffer *ids, *pos;      /* [n_batch] int32, written by the host (upload memory) */
    rt_buffer *ids_dev, *pos_dev; /* their device-local copies, made at the start of each pass, where upload
                                   * memory is not device-local (else NULL): ~2 reads of each per layer */
    rt_buffer *next;           /* int32, argmax of the last logits row (readback memory) */
    rt_buffer *logits_host;    /* [logit_rows][n_vocab] readback */
    rt_seq *pass;              /* prefill passes shorter than a full chunk, recorded for each */
    rt_seq *full[3];           /* a full chunk's pass per enum logits_mode, recorded once and replayed */
    int64_t full_rows[3];      /* the rows full[i] was recorded for (0: not recorded) */
    rt_seq *step_argmax;       /* decode step ending in a device argmax (recorded once) */
    rt_seq *step_logits;       /* decode step that also copies the logits out (recorded once) */
    bool argmax_recorded, logits_recorded;
    rt_seq *last_step;         /* the step sequence submitted last (for its timings) */
    rt_seq *last_pass;         /* the prefill pass submitted last */
    int32_t *tokens;           /* [n_ctx] the token at each cached position (the first n_past are valid) */
    int64_t n_evaluated;       /* tokens evaluated, all calls together */
};

static rt_ref at(rt_buffer *b, int64_t elem_off) { return rt_at(b, (size_t)elem_off * 4); }

/* Records the forward pass of n tokens (ids and positions already in s->ids / s->pos) into seq. */
static int record_forward(lm_session *s, rt_seq *seq, int64_t n, enum logits_mode mode, bool argmax, bool copy_out)
{
    const lm_model *m = s->m;
    const lm_hparams *hp = &m->hp;
    int64_t dim = hp->dim, hd = hp->head_dim, q_dim = (int64_t)hp->n_heads * hd, kv_dim = (int64_t)hp->n_kv_heads * hd;
    rt_ref none = { 0 };
    rt_rope_desc rope = {
        .mode = hp->rope_mode, .n_rot = hp->n_rot, .base = hp->rope_base,
        .freq_scale = hp->rope_scaling == LM_ROPE_SCALING_NONE ? 1.0f : 1.0f / hp->rope_factor,
        .ext_factor = hp->rope_scaling == LM_ROPE_SCALING_YARN ? 1.0f : 0.0f,
        .attn_factor = hp->rope_scaling == LM_ROPE_SCALING_YARN ? hp->yarn_attn_factor : 1.0f,
        .beta_fast = hp->yarn_beta_fast, .beta_slow = hp->yarn_beta_slow, .n_ctx_orig = hp->rope_n_ctx_orig,
        .freq_factors = m->rope_freqs.buf ? rt_at(m->rope_freqs.buf, 0) : none,
    };
    rt_attn_desc attn = { .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads, .head_dim = hp->head_dim,
                          .scale = 1.0f / sqrtf((float)hd), .cap = s->n_ctx, .cache_type = s->kv_type };
    int64_t ld = q_dim + 2 * kv_dim;
    rt_ref X = at(s->x, 0), QKV = at(s->qkv, 0), Q = at(s->q, 0), ATT = at(s->att, 0), HB = at(s->hb, 0),
           IDS = at(s->ids_dev ? s->ids_dev : s->ids, 0), POS = at(s->pos_dev ? s->pos_dev : s->pos, 0);
#define W(w) rt_at((w).buf, 0), (w).type
#define B(w) ((w).buf ? rt_at((w).buf, 0) : none)

    rt_seq_begin(seq);
    if (s->ids_dev) {
        rt_seq_copy(seq, IDS, at(s->ids, 0), (size_t)n * 4);
        rt_seq_copy(seq, POS, at(s->pos, 0), (size_t)n * 4);
    }
    rt_op_get_rows(seq, X, rt_at(m->tok_embd.buf, 0), m->tok_embd.type, IDS, n, hp->n_vocab, dim);
    for (int l = 0; l < hp->n_layers; l++) {
        const lm_layer *L = &m->layers[l];
        /* attention: x += wo · attention(rope(wq · norm(x)), cache(rope(wk · norm(x))), cache(wv · norm(x))):
         * the three projections in one product where the model loaded them as one matrix (else three
         * products into the columns of one QKV), the norm folded in; then Q and K rotated, and K and V
         * written to the cache, in one dispatch */
        rt_ref attn_norm = rt_at(L->attn_norm.buf, 0);
        if (L->wqkv.buf) {
            rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = QKV, .x = X, .w = rt_at(L->wqkv.buf, 0), .wt = L->wqkv.type,
                                                    .bias = B(L->bqkv), .m = n, .n = ld, .k = dim,
                                                    .norm_w = attn_norm, .norm_eps = hp->norm_eps });
        } else {
            const lm_weight *w[3] = { &L->wq, &L->wk, &L->wv }, *b[3] = { &L->bq, &L->bk, &L->bv };
            int64_t cols[3] = { q_dim, kv_dim, kv_dim }, col = 0;
            rt_seq_parallel(seq, true);
            for (int i = 0; i < 3; col += cols[i++])
                rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = at(s->qkv, col), .ldy = ld, .x = X,
                                                        .w = rt_at(w[i]->buf, 0), .wt = w[i]->type, .bias = B(*b[i]),
                                                        .m = n, .n = cols[i], .k = dim, .norm_w = attn_norm,
                                                        .norm_eps = hp->norm_eps });
            rt_seq_parallel(seq, false);
        }
        rt_op_rope_kv(seq, Q, rt_at(s->kc[l], 0), rt_at(s->vc[l], 0), s->kv_type, QKV, POS, none, n, hp->n_heads,
                      hp->n_kv_heads, (int)hd, s->n_ctx, &rope);
        rt_op_attention(seq, ATT, Q, rt_at(s->kc[l], 0), rt_at(s->vc[l], 0), POS, n, &attn);
        rt_op_matmul_acc(seq, X, ATT, W(L->wo), none, n, dim, q_dim);
        /* feed-forward: x += w_down · (silu(w_gate · norm(x)) * (w_up · norm(x))), the norm, both
         * projections and the SwiGLU in one dispatch */
        rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = HB, .x = X, .w = rt_at(L->w_gate.buf, 0),
                                                .wt = L->w_gate.type, .m = n, .n = hp->ffn_dim, .k = dim,
                                                .norm_w = rt_at(L->ffn_norm.buf, 0), .norm_eps = hp->norm_eps,
                                                .w_up = rt_at(L->w_up.buf, 0), .w_up_type = L->w_up.type });
        rt_op_matmul_acc(seq, X, HB, W(L->w_down), none, n, dim, hp->ffn_dim);
    }
    if (mode != LOGITS_NONE) {
        /* logits = output · norm(x), for the last row or all rows */
        int64_t rows = mode == LOGITS_ALL ? n : 1;
        rt_ref xlast = at(s->x, (n - rows) * dim);
        rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = rt_at(s->logits, 0), .x = xlast, .w = rt_at(m->output.buf, 0),
                                                .wt = m->output.type, .m = rows, .n = hp->n_vocab, .k = dim,
                                                .norm_w = rt_at(m->out_norm.buf, 0), .norm_eps = hp->norm_eps });
        if (argmax)
            rt_op_argmax(seq, rt_at(s->next, 0), rt_at(s->logits, (size_t)(rows - 1) * hp->n_vocab * 4), 1, hp->n_vocab);
        if (copy_out)
            rt_seq_copy(seq, rt_at(s->logits_host, 0), rt_at(s->logits, 0), (size_t)rows * hp->n_vocab * 4);
    }
#undef W
#undef B
    return rt_seq_end(seq);
}

void lm_session_free(lm_session *s)
{
    if (!s)
        return;
    rt_seq_destroy(s->pass);
    for (int i = 0; i < 3; i++)
        rt_seq_destroy(s->full[i]);
    rt_seq_destroy(s->step_argmax);
    rt_seq_destroy(s->step_logits);
    if (s->kc)
        for (int l = 0; l < s->m->hp.n_layers; l++) {
            rt_buffer_destroy(s->kc[l]);
            rt_buffer_destroy(s->vc[l]);
        }
    free(s->kc);
    free(s->vc);
    free(s->tokens);
    rt_buffer *bufs[] = { s->x,   s->qkv, s->q,       s->att,     s->hb,  s->logits,     s->ids,
                          s->pos, s->next, s->ids_dev, s->pos_dev };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        rt_buffer_destroy(bufs[i]);
    rt_buffer_destroy(s->logits_host);
    s->m->n_sessions--;
    free(s);
}

int lm_session_create(lm_model *m, const lm_session_opts *opts, lm_session **out, char *err, size_t errlen)
{
    *out = NULL;
    const lm_hparams *hp = &m->hp;
    lm_session *s = calloc(1, sizeof *s);
    if (!s)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    s->m = m;
    m->n_sessions++;
    s->n_ctx = opts && opts->n_ctx > 0 ? opts->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    s->n_batch = opts && opts->n_batch > 0 ? opts->n_batch : 256;
    if (s->n_batch > s->n_ctx)
        s->n_batch = s->n_ctx;
    /* f16 rows are written in pairs: a model with an odd KV width keeps an f32 cache */
    s->kv_type = (opts && opts->kv_f32) || ((int64_t)hp->n_kv_heads * hp->head_dim) % 2 ? RT_F32 : RT_F16;
    const rt_device_info *dev = rt_ctx_device(m->ctx);
    int64_t row_bytes = (int64_t)hp->n_vocab * 4;
    int64_t fit = (int64_t)(dev->max_storage_buffer_range - 1024) / row_bytes;
    s->logit_rows_max = fit < 1 ? 1 : fit < s->n_batch ? (int32_t)fit : s->n_batch;
    s->logit_rows = 1; /* decoding and "the last logits" need one row; perplexity grows it (logits_reserve) */

    int64_t B = s->n_batch, dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim,
            kv_dim = (int64_t)hp->n_kv_heads * hp->head_dim;
    size_t cache_bytes = (size_t)s->n_ctx * (size_t)kv_dim * rt_dtype_size(s->kv_type);
    rt_ctx *ctx = m->ctx;
    if (cache_bytes > dev->max_storage_buffer_range - 1024) {
        lm_fail(err, errlen, LM_ERR_INVALID,
                "a context of %d positions needs %.1f MiB of KV cache per layer, more than this device binds at once "
                "(%.0f MiB): ask for a smaller context%s",
                s->n_ctx, cache_bytes / 1048576.0, dev->max_storage_buffer_range / 1048576.0,
                s->kv_type == RT_F32 ? " or an f16 cache" : "");
        lm_session_free(s);
        return LM_ERR_INVALID;
    }
    int rc = RT_OK;
    s->kc = calloc((size_t)hp->n_layers, sizeof *s->kc);
    s->vc = calloc((size_t)hp->n_layers, sizeof *s->vc);
    s->tokens = malloc((size_t)s->n_ctx * sizeof *s->tokens);
    if (!s->kc || !s->vc || !s->tokens) {
        lm_session_free(s);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    }
    for (int l = 0; l < hp->n_layers && !rc; l++) {
        rc = rt_buffer_create(ctx, RT_MEM_DEVICE, cache_bytes, &s->kc[l]);
        if (!rc)
            rc = rt_buffer_create(ctx, RT_MEM_DEVICE, cache_bytes, &s->vc[l]);
    }
    struct { rt_buffer **b; rt_mem kind; int64_t bytes; } want[] = {
        { &s->x, RT_MEM_DEVICE, B * dim * 4 },
        { &s->qkv, RT_MEM_DEVICE, B * (q_dim + 2 * kv_dim) * 4 },
        { &s->q, RT_MEM_DEVICE, B * q_dim * 4 },
        { &s->att, RT_MEM_DEVICE, B * q_dim * 4 },
        { &s->hb, RT_MEM_DEVICE, B * hp->ffn_dim * 4 },
        { &s->logits, RT_MEM_DEVICE, s->logit_rows * row_bytes },
        { &s->ids, RT_MEM_UPLOAD, B * 4 },
        { &s->pos, RT_MEM_UPLOAD, B * 4 },
        { &s->next, RT_MEM_READBACK, 4 },
        { &s->logits_host, RT_MEM_READBACK, s->logit_rows * row_bytes },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0] && !rc; i++)
        rc = rt_buffer_create(ctx, want[i].kind, (size_t)want[i].bytes, want[i].b);
    if (!rc && !rt_buffer_device_local(s->ids) &&
        !(rc = rt_buffer_create(ctx, RT_MEM_DEVICE, (size_t)B * 4, &s->ids_dev)))
        rc = rt_buffer_create(ctx, RT_MEM_DEVICE, (size_t)B * 4, &s->pos_dev);
    if (rc) {
        lm_fail(err, errlen, LM_ERR_DEVICE, "a context of %d positions (KV cache %.1f MiB) does not fit: %s", s->n_ctx,
                2.0 * hp->n_layers * cache_bytes / 1048576.0, rt_ctx_errmsg(ctx));
        lm_session_free(s);
        return LM_ERR_DEVICE;
    }
    if (rt_seq_create(ctx, &s->pass) || rt_seq_create(ctx, &s->step_argmax) || rt_seq_create(ctx, &s->step_logits) ||
        rt_seq_create(ctx, &s->full[0]) || rt_seq_create(ctx, &s->full[1]) || rt_seq_create(ctx, &s->full[2])) {
        lm_fail(err, errlen, LM_ERR_DEVICE, "command buffers: %s", rt_ctx_errmsg(ctx));
        lm_session_free(s);
        return LM_ERR_DEVICE;
    }
    *out = s;
    return LM_OK;
}

/* Makes the logits buffers hold `rows` rows (at most logit_rows_max). The recorded decode steps bind
 * the old buffers: they are recorded again on their next use. */
static int logits_reserve(lm_session *s, int32_t rows, char *err, size_t errlen)
{
    if (rows > s->logit_rows_max)
        rows = s->logit_rows_max;
    if (rows <= s->logit_rows)
        return LM_OK;
    size_t bytes = (size_t)rows * (size_t)s->m->hp.n_vocab * 4;
    rt_buffer *dev = NULL, *host = NULL;
    if (rt_buffer_create(s->m->ctx, RT_MEM_DEVICE, bytes, &dev) ||
        rt_buffer_create(s->m->ctx, RT_MEM_READBACK, bytes, &host)) {
        rt_buffer_destroy(dev);
        return lm_fail(err, errlen, LM_ERR_DEVICE, "logits of %d rows: %s", rows, rt_ctx_errmsg(s->m->ctx));
    }
    rt_buffer_destroy(s->logits);
    rt_buffer_destroy(s->logits_host);
    s->logits = dev;
    s->logits_host = host;
    s->logit_rows = rows;
    s->argmax_recorded = s->logits_recorded = false;
    s->full_rows[0] = s->full_rows[1] = s->full_rows[2] = 0;
    return LM_OK;
}

void lm_session_memory(const lm_session *s, uint64_t *kv_bytes, uint64_t *scratch_bytes)
{
    uint64_t kv = 0, other = 0;
    for (int l = 0; l < s->m->hp.n_layers; l++)
        kv += rt_buffer_size(s->kc[l]) + rt_buffer_size(s->vc[l]);
    rt_buffer *bufs[] = { s->x,    s->qkv,  s->q,           s->att,     s->hb,     s->logits,
                          s->ids, s->pos, s->next, s->logits_host, s->ids_dev, s->pos_dev };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        other += bufs[i] ? rt_buffer_size(bufs[i]) : 0;
    if (kv_bytes)
        *kv_bytes = kv;
    if (scratch_bytes)
        *scratch_bytes = other;
}

int32_t lm_session_n_ctx(const lm_session *s) { return s->n_ctx; }
const lm_model *lm_session_model(const lm_session *s) { return s->m; }
int32_t lm_session_n_past(const lm_session *s) { return s->n_past; }

void lm_session_rewind(lm_session *s, int32_t pos)
{
    if (pos >= 0 && pos < s->n_past)
        s->n_past = pos;
}

const int32_t *lm_session_tokens(const lm_session *s, int32_t *n)
{
    *n = s->n_past;
    return s->tokens;
}

int64_t lm_session_n_evaluated(const lm_session *s) { return s->n_evaluated; }

int lm_session_sync(lm_session *s, const int32_t *ids, int64_t n, float *logits, int64_t *reused, char *err,
                    size_t errlen)
{
    if (n <= 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "no tokens to evaluate");
    if (n > s->n_ctx)
        return lm_fail(err, errlen, LM_ERR_CONTEXT_FULL, "%lld tokens exceed the context of %d positions",
                       (long long)n, s->n_ctx);
    int64_t keep = 0;
    while (keep < s->n_past && keep < n && s->tokens[keep] == ids[keep])
        keep++;
    if (keep == n) /* all cached: evaluate the last one again for its logits */
        keep = n - 1;
    lm_session_rewind(s, (int32_t)keep);
    if (reused)
        *reused = keep;
    return lm_session_eval(s, ids + keep, n - keep, logits, false, err, errlen);
}

static int check_ids(const lm_session *s, const int32_t *ids, int64_t n, char *err, size_t errlen)
{
    if (n <= 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "no tokens to evaluate");
    if (s->n_past + n > s->n_ctx)
        return lm_fail(err, errlen, LM_ERR_CONTEXT_FULL, "%lld tokens after %d exceed the context of %d positions",
                       (long long)n, s->n_past, s->n_ctx);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->m->hp.n_vocab)
            return lm_fail(err, errlen, LM_ERR_INVALID, "token id %d is outside the vocabulary (%d)", ids[i],
                           s->m->hp.n_vocab);
    return LM_OK;
}

static int run_failed(lm_session *s, rt_seq *seq, char *err, size_t errlen)
{
    (void)s;
    return lm_fail(err, errlen, LM_ERR_DEVICE, "forward pass: %s", rt_seq_errmsg(seq));
}

/* The host-written inputs of a pass: token ids and their positions n_past, n_past + 1, ... */
static int write_inputs(lm_session *s, const int32_t *ids, int64_t n, char *err, size_t errlen)
{
    int32_t pos[256];
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        int64_t c = n - i0 < 256 ? n - i0 : 256;
        for (int64_t i = 0; i < c; i++)
            pos[i] = (int32_t)(s->n_past + i0 + i);
        if (rt_buffer_write(s->ids, (size_t)i0 * 4, ids + i0, (size_t)c * 4) ||
            rt_buffer_write(s->pos, (size_t)i0 * 4, pos, (size_t)c * 4))
            return lm_fail(err, errlen, LM_ERR_DEVICE, "writing inputs: %s", rt_ctx_errmsg(s->m->ctx));
    }
    return LM_OK;
}

int lm_session_eval(lm_session *s, const int32_t *ids, int64_t n, float *logits, bool all_logits, char *err,
                    size_t errlen)
{
    int rc = check_ids(s, ids, n, err, errlen);
    if (rc)
        return rc;
    if (all_logits && logits && (rc = logits_reserve(s, (int32_t)(n < s->n_batch ? n : s->n_batch), err, errlen)))
        return rc;
    int64_t per = all_logits && logits ? (s->n_batch < s->logit_rows ? s->n_batch : s->logit_rows) : s->n_batch;
    size_t row_bytes = (size_t)s->m->hp.n_vocab * 4;
    for (int64_t done = 0; done < n; done += per) {
        int64_t c = n - done < per ? n - done : per;
        bool last = done + c == n;
        enum logits_mode mode = !logits ? LOGITS_NONE : all_logits ? LOGITS_ALL : last ? LOGITS_LAST : LOGITS_NONE;
        if ((rc = write_inputs(s, ids + done, c, err, errlen)))
            return rc;
        /* a full chunk replays its recording (made on first use: the passes differ only in the ids and
         * positions they read); a shorter one is recorded for itself */
        rt_seq *seq = c == per ? s->full[mode] : s->pass;
        if (c != per || s->full_rows[mode] != c) {
            if (c == per)
                s->full_rows[mode] = 0;
            if (record_forward(s, seq, c, mode, false, mode != LOGITS_NONE))
                return run_failed(s, seq, err, errlen);
            if (c == per)
                s->full_rows[mode] = c;
        }
        if (rt_seq_run(seq))
            return run_failed(s, seq, err, errlen);
        s->last_pass = seq;
        memcpy(s->tokens + s->n_past, ids + done, (size_t)c * sizeof *ids);
        s->n_past += (int32_t)c;
        s->n_evaluated += c;
        if (mode != LOGITS_NONE &&
            rt_buffer_read(s->logits_host, 0, mode == LOGITS_ALL ? logits + done * s->m->hp.n_vocab : logits,
                           mode == LOGITS_ALL ? (size_t)c * row_bytes : row_bytes))
            return lm_fail(err, errlen, LM_ERR_DEVICE, "reading logits: %s", rt_ctx_errmsg(s->m->ctx));
    }
    return LM_OK;
}

int lm_session_step(lm_session *s, int32_t id, float *logits, int32_t *next, char *err, size_t errlen)
{
    int rc = check_ids(s, &id, 1, err, errlen);
    if (rc || (rc = write_inputs(s, &id, 1, err, errlen)))
        return rc;
    /* two recordings, each made once on first use and then only re-submitted: one ends in an argmax on
     * the device (greedy: 4 bytes come back), the other copies the logits out for a sampler */
    rt_seq *seq = logits ? s->step_logits : s->step_argmax;
    bool *recorded = logits ? &s->logits_recorded : &s->argmax_recorded;
    if (!*recorded) {
        if (record_forward(s, seq, 1, LOGITS_LAST, logits == NULL, logits != NULL))
            return run_failed(s, seq, err, errlen);
        *recorded = true;
    }
    if (rt_seq_run(seq))
        return run_failed(s, seq, err, errlen);
    s->last_step = seq;
    s->tokens[s->n_past++] = id;
    s->n_evaluated++;
    int32_t n_vocab = s->m->hp.n_vocab;
    if (!logits)
        return rt_buffer_read(s->next, 0, next, 4) ? lm_fail(err, errlen, LM_ERR_DEVICE, "reading the token: %s",
                                                              rt_ctx_errmsg(s->m->ctx))
                                                    : LM_OK;
    if (rt_buffer_read(s->logits_host, 0, logits, (size_t)n_vocab * 4))
        return lm_fail(err, errlen, LM_ERR_DEVICE, "reading logits: %s", rt_ctx_errmsg(s->m->ctx));
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    *next = best;
    return LM_OK;
}

int lm_session_profile(const lm_session *s, bool prefill,
                       void (*fn)(void *user, const char *kernel, double ns, double bytes, double flops), void *user)
{
    const rt_seq *seq = prefill ? s->last_pass : s->last_step;
    int n = seq ? rt_seq_timing_count(seq) : 0;
    for (int i = 0; i < n; i++) {
        const char *kernel;
        double ns, bytes = 0, flops = 0;
        if (rt_seq_timing(seq, i, &kernel, &ns) == RT_OK) {
            rt_seq_timing_cost(seq, i, &bytes, &flops);
            fn(user, kernel, ns, bytes, flops);
        }
    }
    return n;
}

void lm_session_counts(const lm_session *s, bool prefill, int *commands, int *barriers)
{
    const rt_seq *seq = prefill ? s->last_pass : s->last_step;
    *commands = *barriers = 0;
    if (seq)
        rt_seq_counts(seq, commands, barriers);
}
