/* model.c: a GGUF model onto the device: hyper-parameters from the metadata, weights uploaded once in
 * their file's type; and the same structures from a llama2.c checkpoint. */
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

#include "model_internal.h"

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
    rt_buffer_destroy(m->tok_embd.buf);
    if (m->output.buf != m->tok_embd.buf)
        rt_buffer_destroy(m->output.buf);
    rt_buffer_destroy(m->out_norm.buf);
    rt_buffer_destroy(m->rope_freqs.buf);
    if (m->layers)
        for (int l = 0; l < m->hp.n_layers; l++) {
            lm_layer *L = &m->layers[l];
            lm_weight *ws[] = { &L->attn_norm, &L->wq,       &L->wk,   &L->wv,     &L->wo,   &L->bq,    &L->bk,
                                &L->bv,        &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down, &L->wqkv, &L->bqkv };
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
                rt_buffer_destroy(ws[i]->buf);
        }
    free(m->layers);
    lm_vocab_free(m->vocab);
    lm_gguf_close(m->gguf);
    free(m);
}

const lm_hparams *lm_model_hparams(const lm_model *m) { return &m->hp; }
const lm_vocab *lm_model_vocab(const lm_model *m) { return m->vocab; }
uint64_t lm_model_device_bytes(const lm_model *m) { return m->device_bytes; }
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

/* ---------------------------------------------------------------- GGUF */

typedef struct loader {
    lm_model *m;
    const lm_gguf *g;
    const lm_load_opts *opts;
    uint64_t total, done;   /* bytes, for progress */
    char *err;
    size_t errlen;
} loader;

/* Finds tensor `name` with dims [ne1][ne0] (ne1 = 1 for vectors): 1 found, 0 absent, else an error. */
static int find(loader *ld, const char *name, int64_t ne0, int64_t ne1, lm_gguf_tensor_info *t)
{
    int64_t i = lm_gguf_find_tensor(ld->g, name);
    if (i < 0)
        return 0;
    lm_gguf_tensor(ld->g, i, t);
    bool shape_ok = t->ne[0] == ne0 && (t->n_dims == 1 ? ne1 == 1 : t->ne[1] == ne1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (!shape_ok)
        return -lm_fail(ld->err, ld->errlen, LM_ERR_FORMAT,
                        "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                        (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                        (long long)ne0, (long long)ne1);
    return 1;
}

static void progress(loader *ld, size_t bytes)
{
    ld->done += bytes;
    if (ld->opts && ld->opts->progress && ld->total)
        ld->opts->progress(ld->opts->user, (float)((double)ld->done / (double)ld->total));
}

/* Loads tensor `name` with dims [ne1][ne0] (ne1 = 1 for vectors). Absent and optional: w->buf stays NULL. */
static int load(loader *ld, lm_weight *w, const char *name, int64_t ne0, int64_t ne1, bool required, bool to_f32)
{
    lm_gguf_tensor_info t;
    int found = find(ld, name, ne0, ne1, &t);
    if (found < 0)
        return -found;
    if (!found)
        return required ? lm_fail(ld->err, ld->errlen, LM_ERR_FORMAT, "tensor '%s' is missing", name) : LM_OK;
    char msg[256];
    int rc = lm_weight_upload(ld->m, w, t.data, t.type, ne0, ne1, to_f32, msg, sizeof msg);
    if (rc)
        return lm_fail(ld->err, ld->errlen, rc, "tensor '%s': %s", name, msg);
    progress(ld, t.size);
    return LM_OK;
}

/* Layer l's Q, K and V projections as one matrix (and their biases as one vector) when the three have one
 * type: the rows of the file's three matrices one after the other are the rows of the fused one, in the
 * file's layout, which lm_weight_upload repacks as any other. 1: fused, 0: not (load them apart). */
static int load_qkv(loader *ld, lm_layer *L, int l)
{
    const lm_hparams *hp = &ld->m->hp;
    int64_t dim = hp->dim, hd = hp->head_dim, rows[3] = { hp->n_heads * hd, hp->n_kv_heads * hd, hp->n_kv_heads * hd };
    static const char *parts[3] = { "attn_q", "attn_k", "attn_v" };
    lm_gguf_tensor_info w[3], b[3];
    char n[64];
    int n_bias = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "blk.%d.%s.weight", l, parts[i]);
        if (find(ld, n, dim, rows[i], &w[i]) != 1 || w[i].type != w[0].type)
            return 0; /* load() says what is wrong, if anything */
        snprintf(n, sizeof n, "blk.%d.%s.bias", l, parts[i]);
        int found = find(ld, n, rows[i], 1, &b[i]);
        if (found < 0)
            return 0;
        n_bias += found;
    }
    if (n_bias % 3) /* some biases, not all: apart */
        return 0;
    bool has_bias = n_bias == 3;
    int64_t total = rows[0] + rows[1] + rows[2];
    uint8_t *cat = malloc(w[0].size + w[1].size + w[2].size);
    float *bias = has_bias ? malloc((size_t)total * sizeof *bias) : NULL;
    if (!cat || (has_bias && !bias)) {
        free(cat);
        free(bias);
        return -lm_fail(ld->err, ld->errlen, LM_ERR_NOMEM, "out of host memory");
    }
    size_t at = 0;
    int64_t row = 0;
    int rc = LM_OK;
    char msg[256];
    for (int i = 0; i < 3; i++) {
        memcpy(cat + at, w[i].data, w[i].size);
        at += w[i].size;
        if (bias && lm_dequantize(b[i].type, b[i].data, bias + row, rows[i]))
            rc = lm_fail(msg, sizeof msg, LM_ERR_UNSUPPORTED, "bias of type %s",
                         lm_gguf_type_name(b[i].type) ? lm_gguf_type_name(b[i].type) : "?");
        row += rows[i];
    }
    if (!rc)
        rc = lm_weight_upload(ld->m, &L->wqkv, cat, w[0].type, dim, total, false, msg, sizeof msg);
    if (!rc && bias)
        rc = lm_weight_upload(ld->m, &L->bqkv, bias, LM_GGML_F32, total, 1, true, msg, sizeof msg);
    free(cat);
    free(bias);
    if (rc)
        return -lm_fail(ld->err, ld->errlen, rc, "layer %d's attention projections: %s", l, msg);
    for (int i = 0; i < 3; i++)
        progress(ld, w[i].size + (has_bias ? b[i].size : 0));
    return 1;
}

/* Reads "<arch>.<key>" as u32 / f32 with a default when absent; wrong types are errors. */
static int arch_u32(loader *ld, const char *key, int32_t *out, int32_t def, bool required)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", ld->m->hp.arch, key);
    uint32_t v;
    int rc = lm_gguf_get_u32(ld->g, full, &v);
    if (rc == LM_ERR_NOT_FOUND && !required) {
        *out = def;
        return LM_OK;
    }
    if (rc || v > 0x7FFFFFFF)
        return lm_fail(ld->err, ld->errlen, rc == LM_ERR_NOT_FOUND ? LM_ERR_FORMAT : LM_ERR_TYPE,
                       "metadata '%s' is %s", full, rc == LM_ERR_NOT_FOUND ? "missing" : "not a 32-bit count");
    *out = (int32_t)v;
    return LM_OK;
}

static int arch_f32(loader *ld, const char *key, float *out, float def)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", ld->m->hp.arch, key);
    int rc = lm_gguf_get_f32(ld->g, full, out);
    if (rc == LM_ERR_NOT_FOUND) {
        *out = def;
        return LM_OK;
    }
    return rc ? lm_fail(ld->err, ld->errlen, LM_ERR_TYPE, "metadata '%s' is not a number", full) : LM_OK;
}

static int read_hparams(loader *ld)
{
    lm_hparams *hp = &ld->m->hp;
    int rc;
    if ((rc = arch_u32(ld, "embedding_length", &hp->dim, 0, true)) ||
        (rc = arch_u32(ld, "block_count", &hp->n_layers, 0, true)) ||
        (rc = arch_u32(ld, "attention.head_count", &hp->n_heads, 0, true)) ||
        (rc = arch_u32(ld, "attention.head_count_kv", &hp->n_kv_heads, hp->n_heads, false)) ||
        (rc = arch_u32(ld, "feed_forward_length", &hp->ffn_dim, 0, true)) ||
        (rc = arch_u32(ld, "context_length", &hp->n_ctx_train, 2048, false)) ||
        (rc = arch_f32(ld, "attention.layer_norm_rms_epsilon", &hp->norm_eps, 1e-5f)) ||
        (rc = arch_f32(ld, "rope.freq_base", &hp->rope_base, 10000.0f)))
        return rc;
    if (hp->n_heads <= 0)
        return lm_fail(ld->err, ld->errlen, LM_ERR_FORMAT, "attention.head_count is 0");
    if ((rc = arch_u32(ld, "attention.key_length", &hp->head_dim, hp->dim / hp->n_heads, false)) ||
        (rc = arch_u32(ld, "rope.dimension_count", &hp->n_rot, hp->head_dim, false)))
        return rc;
    int32_t vlen;
    if ((rc = arch_u32(ld, "attention.value_length", &vlen, hp->head_dim, false)))
        return rc;
    if (vlen != hp->head_dim)
        return lm_fail(ld->err, ld->errlen, LM_ERR_UNSUPPORTED, "key length %d differs from value length %d", hp->head_dim, vlen);
    hp->rope_mode = strcmp(hp->arch, "qwen2") == 0 ? RT_ROPE_NEOX : RT_ROPE_ADJACENT;
    hp->has_qkv_bias = strcmp(hp->arch, "qwen2") == 0;

    /* RoPE scaling, as llama.cpp reads it: the factor is rope.scaling.factor, else the older
     * rope.scale_linear (absent or 0: 1); the type is rope.scaling.type (none / linear / yarn), linear when
     * absent (so a factor without a type scales linearly) */
    char key[128];
    const char *stype = NULL;
    snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch);
    if (lm_gguf_get_str(ld->g, key, &stype, NULL) == LM_ERR_TYPE)
        return lm_fail(ld->err, ld->errlen, LM_ERR_TYPE, "metadata '%s' is not a string", key);
    float factor, linear;
    if ((rc = arch_f32(ld, "rope.scaling.factor", &factor, 0.0f)) || (rc = arch_f32(ld, "rope.scale_linear", &linear, 0.0f)))
        return rc;
    if (factor == 0.0f)
        factor = linear;
    if (factor == 0.0f)
        factor = 1.0f;
    hp->rope_factor = 1.0f;
    hp->rope_scaling = LM_ROPE_SCALING_NONE;
    if (!stype && factor != 1.0f) {
        hp->rope_scaling = LM_ROPE_SCALING_LINEAR;
        hp->rope_factor = factor;
    } else if (stype && !strcmp(stype, "linear")) {
        hp->rope_scaling = LM_ROPE_SCALING_LINEAR;
        hp->rope_factor = factor;
    } else if (stype && !strcmp(stype, "yarn")) {
        hp->rope_scaling = LM_ROPE_SCALING_YARN;
        hp->rope_factor = factor;
    } else if (stype && strcmp(stype, "none") != 0) {
        return lm_fail(ld->err, ld->errlen, LM_ERR_UNSUPPORTED, "RoPE scaling type '%s' is not supported", stype);
    }
    if (!(hp->rope_factor > 0))
        return lm_fail(ld->err, ld->errlen, LM_ERR_FORMAT, "RoPE scaling factor %g", hp->rope_factor);
    if ((rc = arch_u32(ld, "rope.scaling.original_context_length", &hp->rope_n_ctx_orig, hp->n_ctx_train, false)) ||
        (rc = arch_f32(ld, "rope.scaling.attn_factor", &hp->yarn_attn_factor, 1.0f)) ||
        (rc = arch_f32(ld, "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast, 32.0f)) ||
        (rc = arch_f32(ld, "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow, 1.0f)))
        return rc;
    hp->n_vocab = lm_vocab_n_tokens(ld->m->vocab);
    return lm_hparams_check(hp, ld->err, ld->errlen);
}

static int load_weights(loader *ld)
{
    lm_model *m = ld->m;
    lm_hparams *hp = &m->hp;
    int64_t dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim, kv_dim = (int64_t)hp->n_kv_heads * hp->head_dim;
    int rc;
    if ((rc = load(ld, &m->tok_embd, "token_embd.weight", dim, hp->n_vocab, true, false)) ||
        (rc = load(ld, &m->out_norm, "output_norm.weight", dim, 1, true, true)) ||
        (rc = load(ld, &m->output, "output.weight", dim, hp->n_vocab, false, false)) ||
        (rc = load(ld, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, 1, false, true)))
        return rc;
    if (!m->output.buf) {
        m->output = m->tok_embd;
        hp->tied_output = true;
    }
    hp->has_rope_freqs = m->rope_freqs.buf != NULL;
    m->layers = calloc((size_t)hp->n_layers, sizeof *m->layers);
    if (!m->layers)
        return lm_fail(ld->err, ld->errlen, LM_ERR_NOMEM, "out of host memory");
    for (int l = 0; l < hp->n_layers; l++) {
        lm_layer *L = &m->layers[l];
        char n[64];
#define LOAD(field, suffix, ne0, ne1, req, f32)                        \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                     \
    if ((rc = load(ld, &L->field, n, ne0, ne1, req, f32)))             \
        return rc;
        LOAD(attn_norm, "attn_norm.weight", dim, 1, true, true)
        int fused = load_qkv(ld, L, l);
        if (fused < 0)
            return -fused;
        if (!fused) {
            LOAD(wq, "attn_q.weight", dim, q_dim, true, false)
            LOAD(wk, "attn_k.weight", dim, kv_dim, true, false)
            LOAD(wv, "attn_v.weight", dim, kv_dim, true, false)
            LOAD(bq, "attn_q.bias", q_dim, 1, hp->has_qkv_bias, true)
            LOAD(bk, "attn_k.bias", kv_dim, 1, hp->has_qkv_bias, true)
            LOAD(bv, "attn_v.bias", kv_dim, 1, hp->has_qkv_bias, true)
        }
        LOAD(wo, "attn_output.weight", q_dim, dim, true, false)
        LOAD(ffn_norm, "ffn_norm.weight", dim, 1, true, true)
        LOAD(w_gate, "ffn_gate.weight", dim, hp->ffn_dim, true, false)
        LOAD(w_up, "ffn_up.weight", dim, hp->ffn_dim, true, false)
        LOAD(w_down, "ffn_down.weight", hp->ffn_dim, dim, true, false)
#undef LOAD
    }
    return LM_OK;
}

/* Counts parameters and the most common matrix type; also checks every tensor's type up front so that
 * an unsupported file fails before anything is uploaded. */
static int survey(loader *ld)
{
    int64_t count[LM_GGML_TYPE_COUNT] = { 0 };
    for (int64_t i = 0; i < lm_gguf_n_tensors(ld->g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(ld->g, i, &t);
        ld->m->hp.n_params += t.n_elements;
        ld->total += t.size;
        if (weight_dtype(t.type) < 0)
            return lm_fail(ld->err, ld->errlen, LM_ERR_UNSUPPORTED,
                           "tensor '%s' has type %s, which vkllm does not support (F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
                           "Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS are)",
                           t.name, lm_gguf_type_name(t.type) ? lm_gguf_type_name(t.type) : "?");
        if (t.n_dims >= 2)
            count[t.type] += t.n_elements;
    }
    int best = LM_GGML_F32;
    for (int t = 0; t < LM_GGML_TYPE_COUNT; t++)
        if (count[t] > count[best])
            best = t;
    ld->m->hp.weight_type = best;
    return LM_OK;
}

int lm_model_load(rt_ctx *ctx, const char *path, const lm_load_opts *opts, lm_model **out, char *err, size_t errlen)
{
    *out = NULL;
    lm_gguf *g;
    int rc = lm_gguf_open(path, &g, err, errlen);
    if (rc)
        return rc;
    lm_model *m = calloc(1, sizeof *m);
    if (!m) {
        lm_gguf_close(g);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    }
    m->ctx = ctx;
    loader ld = { .m = m, .g = g, .opts = opts, .err = err, .errlen = errlen };
    const char *arch, *name;
    if ((rc = lm_gguf_get_str(g, "general.architecture", &arch, NULL))) {
        rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: general.architecture is missing or not a string", path);
        goto out_free;
    }
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "qwen2") != 0) {
        rc = lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (llama and qwen2 are)",
                     path, arch);
        goto out_free;
    }
    snprintf(m->hp.arch, sizeof m->hp.arch, "%s", arch);
    if (lm_gguf_get_str(g, "general.name", &name, NULL) == LM_OK)
        snprintf(m->hp.name, sizeof m->hp.name, "%s", name);
    else
        snprintf(m->hp.name, sizeof m->hp.name, "%s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    char msg[512];
    if ((rc = lm_vocab_from_gguf(g, &m->vocab, msg, sizeof msg))) {
        rc = lm_fail(err, errlen, rc, "%s: tokenizer: %s", path, msg);
        goto out_free;
    }
    if ((rc = survey(&ld)) || (rc = read_hparams(&ld)) || (rc = load_weights(&ld))) {
        if (err && errlen) {
            snprintf(msg, sizeof msg, "%s", err);
            lm_fail(err, errlen, rc, "%s: %s", path, msg);
        }
        goto out_free;
    }
    lm_gguf_drop_pages(g); /* the weights are on the device now; the metadata stays readable */
    m->gguf = g;
    *out = m;
    return LM_OK;

out_free:
    lm_model_free(m);
    lm_gguf_close(g);
    return rc;
}
