/* model.c: a model on the device: its weights uploaded once in their file's type, its hyper-parameters
 * checked, and what it is asked about. Loading a GGUF is load.c's, a llama2.c checkpoint model_llama2c.c's. */
#include <assert.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"

const char *lm_status_string(int status)
{
    switch (status) {
    case LM_OK: return "ok";
    case LM_ERR_IO: return "I/O error";
    case LM_ERR_FORMAT: return "malformed file";
    case LM_ERR_UNSUPPORTED: return "unsupported";
    case LM_ERR_TYPE: return "wrong metadata type";
    case LM_ERR_NOT_FOUND: return "not found";
    case LM_ERR_INVALID: return "invalid input";
    case LM_ERR_NOMEM: return "out of memory";
    case LM_ERR_DEVICE: return "device error";
    case LM_ERR_CONTEXT_FULL: return "context full";
    case LM_ERR_KV_FULL: return "KV cache full";
    case LM_ERR_ABORTED: return "aborted";
    }
    return "unknown status";
}

int lm_fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* The rt_dtype a GGUF tensor type runs as (the numbers are the same), or -1 when the runtime has no
 * kernels for it. */
static int weight_dtype(int ggml_type)
{
    return rt_dtype_info(ggml_type, NULL) && lm_quant_supported(ggml_type) ? ggml_type : -1;
}

int lm_weight_upload(lm_model *m, lm_weight *w, const void *data, int ggml_type, int64_t ne0, int64_t ne1,
                     bool to_f32, char *err, size_t errlen)
{
    int t = weight_dtype(ggml_type);
    if (t < 0)
        return lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "tensor type %s is not supported",
                       lm_gguf_type_name(ggml_type) ? lm_gguf_type_name(ggml_type) : "?");
    int64_t n = ne0 * ne1;
    size_t bytes = rt_weight_bytes((rt_dtype)t, ne1, ne0);
    if (!bytes)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "rows of %lld values are not whole %s blocks", (long long)ne0,
                       lm_gguf_type_name(ggml_type));
    float *conv = NULL;
    if (to_f32 && t != RT_F32) { /* vectors the ops read as f32 (norms, biases): decoded once, here */
        conv = malloc((size_t)n * sizeof *conv);
        if (!conv)
            return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
        if (lm_dequantize(ggml_type, data, conv, n)) {
            free(conv);
            return lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "cannot decode %s", lm_gguf_type_name(ggml_type));
        }
        data = conv;
        t = RT_F32;
        bytes = (size_t)n * 4;
    }
    int rc = rt_buffer_create(m->ctx, RT_MEM_DEVICE, bytes, &w->buf);
    if (rc == RT_OK) {
        rc = rt_weight_write(w->buf, 0, (rt_dtype)t, data, ne1, ne0);
        if (rc) {
            rt_buffer_destroy(w->buf);
            w->buf = NULL;
        }
    }
    free(conv);
    if (rc)
        return lm_fail(err, errlen, LM_ERR_DEVICE, "uploading %.1f MiB: %s", bytes / 1048576.0, rt_ctx_errmsg(m->ctx));
    w->type = (rt_dtype)t;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->ne2 = 1;
    m->device_bytes += bytes;
    return LM_OK;
}

int lm_weight_upload_experts(lm_model *m, lm_weight *w, const void *data, int ggml_type, int64_t ne0, int64_t ne1,
                             int64_t n_expert, char *err, size_t errlen)
{
    int t = weight_dtype(ggml_type);
    if (t < 0)
        return lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "tensor type %s is not supported",
                       lm_gguf_type_name(ggml_type) ? lm_gguf_type_name(ggml_type) : "?");
    size_t stride = rt_expert_stride((rt_dtype)t, ne1, ne0);
    size_t file_bytes = lm_gguf_row_size(ggml_type, ne0) * (size_t)ne1;
    if (!stride || !file_bytes)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "rows of %lld values are not whole %s blocks", (long long)ne0,
                       lm_gguf_type_name(ggml_type));
    /* the experts of one projection are bound at once */
    uint64_t bytes = (uint64_t)stride * (uint64_t)n_expert, range = rt_ctx_device(m->ctx)->max_storage_buffer_range;
    if (bytes > range)
        return lm_fail(err, errlen, LM_ERR_UNSUPPORTED,
                       "%lld experts of %.1f MiB each (%.1f MiB) exceed what this device binds at once (%.1f MiB)",
                       (long long)n_expert, stride / 1048576.0, bytes / 1048576.0, range / 1048576.0);
    int rc = rt_buffer_create(m->ctx, RT_MEM_DEVICE, (size_t)bytes, &w->buf);
    for (int64_t e = 0; e < n_expert && rc == RT_OK; e++)
        rc = rt_weight_write(w->buf, (size_t)e * stride, (rt_dtype)t, (const uint8_t *)data + (size_t)e * file_bytes,
                             ne1, ne0);
    if (rc) {
        rt_buffer_destroy(w->buf);
        w->buf = NULL;
        return lm_fail(err, errlen, LM_ERR_DEVICE, "uploading %.1f MiB: %s", bytes / 1048576.0, rt_ctx_errmsg(m->ctx));
    }
    *w = (lm_weight){ .buf = w->buf, .type = (rt_dtype)t, .ne0 = ne0, .ne1 = ne1, .ne2 = n_expert, .stride = stride };
    m->device_bytes += bytes;
    return LM_OK;
}

int lm_hparams_check(const lm_hparams *hp, char *err, size_t errlen)
{
    /* an infinite or NaN epsilon or RoPE base loads but computes NaN everywhere: refused by name */
    const struct { float v; const char *what, *key; } reals[] = {
        { hp->norm_eps, "the norm epsilon", "attention.layer_norm_rms_epsilon" },
        { hp->rope_base, "the RoPE base", "rope.freq_base" },
        { hp->rope_factor, "the RoPE scaling factor", "rope.scaling.factor" },
        { hp->yarn_attn_factor, "YaRN's attention factor", "rope.scaling.attn_factor" },
        { hp->yarn_beta_fast, "YaRN's beta_fast", "rope.scaling.yarn_beta_fast" },
        { hp->yarn_beta_slow, "YaRN's beta_slow", "rope.scaling.yarn_beta_slow" },
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        if (!isfinite(reals[i].v))
            return lm_fail(err, errlen, LM_ERR_FORMAT, "%s is %g (%s.%s): a hyper-parameter must be a finite number",
                           reals[i].what, (double)reals[i].v, hp->arch, reals[i].key);
    if (hp->dim <= 0 || hp->dim > 65536 || hp->n_layers <= 0 || hp->n_layers > 1024 || hp->n_heads <= 0 ||
        hp->n_heads > 1024 || hp->n_kv_heads <= 0 || hp->n_heads % hp->n_kv_heads || hp->head_dim <= 0 ||
        hp->head_dim > 256 || hp->ffn_dim <= 0 || hp->ffn_dim > 1 << 20 || hp->n_vocab <= 0 ||
        hp->n_vocab > 1 << 24 || hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 ||
        !(hp->norm_eps > 0) || !(hp->rope_base > 0) || hp->n_ctx_train <= 0)
        return lm_fail(err, errlen, hp->head_dim > 256 ? LM_ERR_UNSUPPORTED : LM_ERR_FORMAT,
                       "implausible hyper-parameters: dim %d, layers %d, heads %d/%d, head_dim %d (max 256), ffn %d, "
                       "vocab %d, n_rot %d, eps %g, rope base %g, context %d",
                       hp->dim, hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->ffn_dim, hp->n_vocab,
                       hp->n_rot, hp->norm_eps, hp->rope_base, hp->n_ctx_train);
    bool experts_ok = hp->n_expert == 0 || (hp->n_expert > 0 && hp->n_expert <= 1024 && hp->n_expert_used > 0 &&
                                            hp->n_expert_used <= hp->n_expert && hp->expert_ffn_dim > 0 &&
                                            hp->expert_ffn_dim <= 1 << 20);
    if (!experts_ok)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "implausible experts: %d, %d used, feed-forward %d", hp->n_expert,
                       hp->n_expert_used, hp->expert_ffn_dim);
    return LM_OK;
}

void lm_model_free(lm_model *m)
{
    if (!m)
        return;
    /* a programming error: the sessions would keep using the freed weights; refuse (and leak) instead */
    assert(m->n_sessions == 0 && "free the model's sessions first");
    if (m->n_sessions)
        return;
    /* the globals and the layers are arrays of lm_weight; the tied output shares the embedding's buffer */
    lm_weight *g = (lm_weight *)&m->g;
    for (size_t i = 0; i < sizeof m->g / sizeof *g; i++)
        if (&g[i] == &m->g.tok_embd || g[i].buf != m->g.tok_embd.buf)
            rt_buffer_destroy(g[i].buf);
    if (m->layers) {
        lm_weight *w = m->layers;
        size_t n = (size_t)m->hp.n_layers * m->arch->layer_size / sizeof *w;
        for (size_t i = 0; i < n; i++)
            rt_buffer_destroy(w[i].buf);
    }
    free(m->layers);
    lm_vocab_free(m->vocab);
    lm_gguf_close(m->gguf);
    free(m);
}

const lm_hparams *lm_model_hparams(const lm_model *m) { return &m->hp; }
const lm_vocab *lm_model_vocab(const lm_model *m) { return m->vocab; }
uint64_t lm_model_device_bytes(const lm_model *m) { return m->device_bytes; }
bool lm_model_device_lost(const lm_model *m) { return rt_ctx_lost(m->ctx); }
const lm_gguf *lm_model_gguf(const lm_model *m) { return m->gguf; }

const char *lm_model_chat_template(const lm_model *m, const char *name)
{
    if (!m->gguf)
        return NULL;
    char key[256];
    if (name && name[0])
        snprintf(key, sizeof key, "tokenizer.chat_template.%s", name);
    else
        snprintf(key, sizeof key, "tokenizer.chat_template");
    const char *s;
    return lm_gguf_get_str(m->gguf, key, &s, NULL) == LM_OK ? s : NULL;
}

