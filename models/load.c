/* load.c: a GGUF model onto the device. The family of general.architecture (arch.c's table) says which
 * hyper-parameters and tensors it has; what every family shares is read here: the common
 * hyper-parameters as llama.cpp reads them, the tensor tables, the tokenizer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

struct lm_loader {
    lm_model *m;
    const lm_gguf *g;
    const lm_load_opts *opts;
    uint64_t total, done;   /* bytes, for progress */
    char *err;
    size_t errlen;
};

const lm_gguf *lm_loader_gguf(const lm_loader *ld) { return ld->g; }
const lm_hparams *lm_loader_hparams(const lm_loader *ld) { return &ld->m->hp; }

int lm_load_fail(lm_loader *ld, int status, const char *fmt, ...)
{
    if (ld->err && ld->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err, ld->errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ---------------------------------------------------------------- metadata */

static const char *full_key(const lm_loader *ld, const char *key, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%s", ld->m->hp.arch, key);
    return buf;
}

int lm_load_u32(lm_loader *ld, const char *key, int32_t *out, int32_t def, bool required)
{
    char full[128];
    full_key(ld, key, full, sizeof full);
    uint32_t v;
    int rc = lm_gguf_get_u32(ld->g, full, &v);
    if (rc == LM_ERR_NOT_FOUND && !required) {
        *out = def;
        return LM_OK;
    }
    if (rc || v > 0x7FFFFFFF)
        return lm_load_fail(ld, rc == LM_ERR_NOT_FOUND ? LM_ERR_FORMAT : LM_ERR_TYPE, "metadata '%s' is %s", full,
                            rc == LM_ERR_NOT_FOUND ? "missing" : "not a 32-bit count");
    *out = (int32_t)v;
    return LM_OK;
}

int lm_load_f32(lm_loader *ld, const char *key, float *out, float def)
{
    char full[128];
    full_key(ld, key, full, sizeof full);
    int rc = lm_gguf_get_f32(ld->g, full, out);
    if (rc == LM_ERR_NOT_FOUND) {
        *out = def;
        return LM_OK;
    }
    return rc ? lm_load_fail(ld, LM_ERR_TYPE, "metadata '%s' is not a number", full) : LM_OK;
}

int lm_load_bool(lm_loader *ld, const char *key, bool *out, bool def)
{
    char full[128];
    full_key(ld, key, full, sizeof full);
    int rc = lm_gguf_get_bool(ld->g, full, out);
    if (rc == LM_ERR_NOT_FOUND) {
        *out = def;
        return LM_OK;
    }
    return rc ? lm_load_fail(ld, LM_ERR_TYPE, "metadata '%s' is not a boolean", full) : LM_OK;
}

/* The common hyper-parameters, as llama.cpp reads them for every decoder. */
static int read_hparams(lm_loader *ld)
{
    lm_hparams *hp = &ld->m->hp;
    int rc;
    if ((rc = lm_load_u32(ld, "embedding_length", &hp->dim, 0, true)) ||
        (rc = lm_load_u32(ld, "block_count", &hp->n_layers, 0, true)) ||
        (rc = lm_load_u32(ld, "attention.head_count", &hp->n_heads, 0, true)) ||
        (rc = lm_load_u32(ld, "attention.head_count_kv", &hp->n_kv_heads, hp->n_heads, false)) ||
        (rc = lm_load_u32(ld, "feed_forward_length", &hp->ffn_dim, 0, true)) ||
        (rc = lm_load_u32(ld, "context_length", &hp->n_ctx_train, 2048, false)) ||
        (rc = lm_load_f32(ld, "attention.layer_norm_rms_epsilon", &hp->norm_eps, 1e-5f)) ||
        (rc = lm_load_f32(ld, "rope.freq_base", &hp->rope_base, 10000.0f)))
        return rc;
    if (hp->n_heads <= 0)
        return lm_load_fail(ld, LM_ERR_FORMAT, "attention.head_count is 0");
    if ((rc = lm_load_u32(ld, "attention.key_length", &hp->head_dim, hp->dim / hp->n_heads, false)) ||
        (rc = lm_load_u32(ld, "rope.dimension_count", &hp->n_rot, hp->head_dim, false)))
        return rc;
    int32_t vlen;
    if ((rc = lm_load_u32(ld, "attention.value_length", &vlen, hp->head_dim, false)))
        return rc;
    if (vlen != hp->head_dim)
        return lm_load_fail(ld, LM_ERR_UNSUPPORTED, "key length %d differs from value length %d", hp->head_dim, vlen);

    /* RoPE scaling, as llama.cpp reads it: the factor is rope.scaling.factor, else the older
     * rope.scale_linear (absent or 0: 1); the type is rope.scaling.type (none / linear / yarn), linear when
     * absent (so a factor without a type scales linearly) */
    char key[128];
    const char *stype = NULL;
    full_key(ld, "rope.scaling.type", key, sizeof key);
    if (lm_gguf_get_str(ld->g, key, &stype, NULL) == LM_ERR_TYPE)
        return lm_load_fail(ld, LM_ERR_TYPE, "metadata '%s' is not a string", key);
    float factor, linear;
    if ((rc = lm_load_f32(ld, "rope.scaling.factor", &factor, 0.0f)) ||
        (rc = lm_load_f32(ld, "rope.scale_linear", &linear, 0.0f)))
        return rc;
    if (factor == 0.0f)
        factor = linear;
    if (factor == 0.0f)
        factor = 1.0f;
    hp->rope_factor = 1.0f;
    hp->rope_scaling = LM_ROPE_SCALING_NONE;
    if ((!stype && factor != 1.0f) || (stype && !strcmp(stype, "linear"))) {
        hp->rope_scaling = LM_ROPE_SCALING_LINEAR;
        hp->rope_factor = factor;
    } else if (stype && !strcmp(stype, "yarn")) {
        hp->rope_scaling = LM_ROPE_SCALING_YARN;
        hp->rope_factor = factor;
    } else if (stype && strcmp(stype, "none") != 0) {
        return lm_load_fail(ld, LM_ERR_UNSUPPORTED, "RoPE scaling type '%s' is not supported", stype);
    }
    if (!(hp->rope_factor > 0))
        return lm_load_fail(ld, LM_ERR_FORMAT, "RoPE scaling factor %g", hp->rope_factor);
    if ((rc = lm_load_u32(ld, "rope.scaling.original_context_length", &hp->rope_n_ctx_orig, hp->n_ctx_train, false)) ||
        (rc = lm_load_f32(ld, "rope.scaling.attn_factor", &hp->yarn_attn_factor, 1.0f)) ||
        (rc = lm_load_f32(ld, "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast, 32.0f)) ||
        (rc = lm_load_f32(ld, "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow, 1.0f)))
        return rc;
    /* mixture of experts: each expert as wide as the dense feed-forward unless the family says otherwise */
    if ((rc = lm_load_u32(ld, "expert_count", &hp->n_expert, 0, false)) ||
        (rc = lm_load_u32(ld, "expert_used_count", &hp->n_expert_used, 0, false)))
        return rc;
    hp->expert_ffn_dim = hp->ffn_dim;
    if ((rc = lm_load_u32(ld, "pooling_type", &hp->pooling_type, -1, false)))
        return rc;
    hp->n_vocab = lm_vocab_n_tokens(ld->m->vocab);
    return LM_OK;
}

/* ---------------------------------------------------------------- tensors */

/* Finds tensor `name` with dims [ne1][ne0] (ne1 = 1 for vectors): 1 found, 0 absent, else -status. */
static int find(lm_loader *ld, const char *name, int64_t ne0, int64_t ne1, lm_gguf_tensor_info *t)
{
    int64_t i = lm_gguf_find_tensor(ld->g, name);
    if (i < 0)
        return 0;
    lm_gguf_tensor(ld->g, i, t);
    bool shape_ok = t->ne[0] == ne0 && (t->n_dims == 1 ? ne1 == 1 : t->ne[1] == ne1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (!shape_ok)
        return -lm_load_fail(ld, LM_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                             name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                             (long long)ne0, (long long)ne1);
    return 1;
}

static void progress(lm_loader *ld, size_t bytes)
{
    ld->done += bytes;
    if (ld->opts && ld->opts->progress && ld->total)
        ld->opts->progress(ld->opts->user, (float)((double)ld->done / (double)ld->total));
}

static int upload(lm_loader *ld, lm_weight *w, const char *name, const void *data, int type, int64_t ne0, int64_t ne1,
                  bool to_f32)
{
    char msg[256];
    int rc = lm_weight_upload(ld->m, w, data, type, ne0, ne1, to_f32, msg, sizeof msg);
    return rc ? lm_load_fail(ld, rc, "tensor '%s': %s", name, msg) : LM_OK;
}

int lm_load_tensor(lm_loader *ld, lm_weight *w, const char *name, int64_t ne0, int64_t ne1, bool required, bool to_f32)
{
    lm_gguf_tensor_info t;
    int found = find(ld, name, ne0, ne1, &t);
    if (found < 0)
        return -found;
    if (!found)
        return required ? lm_load_fail(ld, LM_ERR_FORMAT, "tensor '%s' is missing", name) : LM_OK;
    int rc = upload(ld, w, name, t.data, t.type, ne0, ne1, to_f32);
    if (!rc)
        progress(ld, t.size);
    return rc;
}

int lm_load_halves(lm_loader *ld, lm_weight *w0, lm_weight *w1, const char *name, int64_t ne0, int64_t rows)
{
    lm_gguf_tensor_info t;
    int found = find(ld, name, ne0, 2 * rows, &t);
    if (found <= 0)
        return found < 0 ? -found : lm_load_fail(ld, LM_ERR_FORMAT, "tensor '%s' is missing", name);
    size_t half = t.size / 2; /* rows of a type are whole blocks: the halves split at a row */
    int rc = upload(ld, w0, name, t.data, t.type, ne0, rows, false);
    if (!rc)
        rc = upload(ld, w1, name, (const uint8_t *)t.data + half, t.type, ne0, rows, false);
    if (!rc)
        progress(ld, t.size);
    return rc;
}

/* The three projections as one matrix: the rows of the file's three matrices one after the other are the
 * rows of the fused one, in the file's layout, which lm_weight_upload repacks as any other. 1: fused, 0:
 * not (load them apart), else -status. */
static int fuse_qkv(lm_loader *ld, int l, lm_attn_w *a)
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
            return 0; /* loaded apart, which says what is wrong, if anything */
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
        return -lm_load_fail(ld, LM_ERR_NOMEM, "out of host memory");
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
        rc = lm_weight_upload(ld->m, &a->wqkv, cat, w[0].type, dim, total, false, msg, sizeof msg);
    if (!rc && bias)
        rc = lm_weight_upload(ld->m, &a->bqkv, bias, LM_GGML_F32, total, 1, true, msg, sizeof msg);
    free(cat);
    free(bias);
    if (rc)
        return -lm_load_fail(ld, rc, "layer %d's attention projections: %s", l, msg);
    for (int i = 0; i < 3; i++)
        progress(ld, w[i].size + (has_bias ? b[i].size : 0));
    return 1;
}

int lm_load_qkv(lm_loader *ld, int l, lm_attn_w *a, bool bias_required)
{
    const lm_hparams *hp = &ld->m->hp;
    int fused = fuse_qkv(ld, l, a);
    if (fused)
        return fused < 0 ? -fused : LM_OK;
    int64_t dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim, kv_dim = (int64_t)hp->n_kv_heads * hp->head_dim;
    struct { lm_weight *w; const char *suffix; int64_t ne0, ne1; bool bias; } t[] = {
        { &a->wq, "attn_q.weight", dim, q_dim, false },   { &a->wk, "attn_k.weight", dim, kv_dim, false },
        { &a->wv, "attn_v.weight", dim, kv_dim, false },  { &a->bq, "attn_q.bias", q_dim, 1, true },
        { &a->bk, "attn_k.bias", kv_dim, 1, true },       { &a->bv, "attn_v.bias", kv_dim, 1, true },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.%s", l, t[i].suffix);
        int rc = lm_load_tensor(ld, t[i].w, n, t[i].ne0, t[i].ne1, !t[i].bias || bias_required, t[i].bias);
        if (rc)
            return rc;
    }
    return LM_OK;
}

/* A 3-D tensor [ne2][ne1][ne0]: the experts of a projection. */
static int load_experts(lm_loader *ld, lm_weight *w, const char *name, int64_t ne0, int64_t ne1, int64_t ne2)
{
    int64_t i = lm_gguf_find_tensor(ld->g, name);
    if (i < 0)
        return lm_load_fail(ld, LM_ERR_FORMAT, "tensor '%s' is missing", name);
    lm_gguf_tensor_info t;
    lm_gguf_tensor(ld->g, i, &t);
    if (t.ne[0] != ne0 || t.ne[1] != ne1 || t.ne[2] != ne2 || t.ne[3] != 1)
        return lm_load_fail(ld, LM_ERR_FORMAT,
                            "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", name,
                            (long long)t.ne[0], (long long)t.ne[1], (long long)t.ne[2], (long long)t.ne[3],
                            (long long)ne0, (long long)ne1, (long long)ne2);
    char msg[256];
    int rc = lm_weight_upload_experts(ld->m, w, t.data, t.type, ne0, ne1, ne2, msg, sizeof msg);
    if (rc)
        return lm_load_fail(ld, rc, "tensor '%s': %s", name, msg);
    progress(ld, t.size);
    return LM_OK;
}

static int64_t dim_of(const lm_hparams *hp, int d)
{
    int64_t q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    switch (d) {
    case LM_D_DIM: return hp->dim;
    case LM_D_Q: return q;
    case LM_D_KV: return kv;
    case LM_D_QKV: return q + 2 * kv;
    case LM_D_HD: return hp->head_dim;
    case LM_D_FFN: return hp->ffn_dim;
    case LM_D_FFN2: return 2 * (int64_t)hp->ffn_dim;
    case LM_D_VOCAB: return hp->n_vocab;
    case LM_D_ROT2: return hp->n_rot / 2;
    case LM_D_EXPERTS: return hp->n_expert;
    case LM_D_EFFN: return hp->expert_ffn_dim;
    case LM_D_CTX: return hp->n_ctx_train;
    case LM_D_TYPES: return hp->n_token_types;
    default: return 1;
    }
}

/* The tensors of a table into the struct at base; layer < 0: the model's (names as they are). */
static int load_table(lm_loader *ld, const lm_tensor_spec *t, void *base, int layer)
{
    const lm_hparams *hp = &ld->m->hp;
    for (; t && t->name; t++) {
        char n[96];
        if (layer >= 0)
            snprintf(n, sizeof n, "blk.%d.%s", layer, t->name);
        else
            snprintf(n, sizeof n, "%s", t->name);
        lm_weight *w = (lm_weight *)((char *)base + t->offset);
        if ((t->flags & LM_T_DENSE && hp->n_expert > 0) || (t->flags & LM_T_MOE && hp->n_expert == 0))
            continue;
        int rc;
        if (t->ne2 != LM_D_1) {
            if ((rc = load_experts(ld, w, n, dim_of(hp, t->ne0), dim_of(hp, t->ne1), dim_of(hp, t->ne2))))
                return rc;
            continue;
        }
        rc = lm_load_tensor(ld, w, n, dim_of(hp, t->ne0), dim_of(hp, t->ne1), !(t->flags & LM_T_OPTIONAL),
                                t->flags & LM_T_F32);
        if (rc)
            return rc;
    }
    return LM_OK;
}

static int load_weights(lm_loader *ld)
{
    lm_model *m = ld->m;
    lm_hparams *hp = &m->hp;
    const lm_arch *a = m->arch;
    int rc = load_table(ld, a->tensors, m, -1);
    if (rc)
        return rc;
    if (!m->g.output.buf) {
        m->g.output = m->g.tok_embd;
        hp->tied_output = true;
    }
    hp->has_rope_freqs = m->g.rope_freqs.buf != NULL;
    m->layers = calloc((size_t)hp->n_layers, a->layer_size);
    if (!m->layers)
        return lm_load_fail(ld, LM_ERR_NOMEM, "out of host memory");
    for (int l = 0; l < hp->n_layers; l++) {
        void *layer = (char *)m->layers + (size_t)l * a->layer_size;
        if ((a->load_layer && (rc = a->load_layer(ld, l, layer))) || (rc = load_table(ld, a->layer_tensors, layer, l)))
            return rc;
    }
    return LM_OK;
}

/* Whether the runtime has kernels for a GGUF tensor type (the rt_dtype numbers are the same). */
static bool runs(int ggml_type) { return rt_dtype_info(ggml_type, NULL) && lm_quant_supported(ggml_type); }

/* Counts parameters and the most common matrix type; also checks every tensor's type up front so that
 * an unsupported file fails before anything is uploaded. */
static int survey(lm_loader *ld)
{
    int64_t count[LM_GGML_TYPE_COUNT] = { 0 };
    for (int64_t i = 0; i < lm_gguf_n_tensors(ld->g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(ld->g, i, &t);
        ld->m->hp.n_params += t.n_elements;
        ld->total += t.size;
        if (!runs(t.type))
            return lm_load_fail(ld, LM_ERR_UNSUPPORTED,
                                "tensor '%s' has type %s, which vkllm does not support (F32, F16, BF16, Q4_0, Q4_1, "
                                "Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS are)",
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
    lm_loader ld = { .m = m, .g = g, .opts = opts, .err = err, .errlen = errlen };
    const char *arch, *name;
    if ((rc = lm_gguf_get_str(g, "general.architecture", &arch, NULL))) {
        rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: general.architecture is missing or not a string", path);
        goto out_free;
    }
    m->arch = lm_arch_find(arch);
    if (!m->arch) {
        rc = lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (vkllm runs %s)", path,
                     arch, lm_arch_names());
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
    if ((rc = survey(&ld)) || (rc = read_hparams(&ld)) || (m->arch->hparams && (rc = m->arch->hparams(&ld, &m->hp))) ||
        (rc = lm_hparams_check(&m->hp, err, errlen)) || (rc = load_weights(&ld))) {
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
