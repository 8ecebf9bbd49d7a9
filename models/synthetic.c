/* synthetic.c: models of a published shape with seeded random weights, written as GGUF through the
 * project's writer, so any size and weight type can be benchmarked (and run by another engine) without a
 * download.
 *
 * The shapes are those of real models (their hyper-parameters as their config files give them). Weights:
 * every matrix in the type asked for (rows its block does not divide take the quantiser's fallback, as
 * `vkllm quantize` does), norms 1, biases small. A matrix's rows are drawn from a pool of up to 64
 * distinct random rows (normal, sigma 0.02), each quantised once: the bytes a kernel reads look like any
 * quantised weights, and an 8B model is written in seconds instead of the minutes a K-quant search over
 * 8 billion values takes. The vocabulary is SentencePiece-style: <unk>, <s>, </s>, the 256 byte tokens,
 * then made-up pieces ("▁ab", ...) up to the shape's size. */
#include "lm_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_ROWS 64

static const lm_synthetic_shape shapes[] = {
    /* name          arch     vocab   dim  layers heads kv  ffn    ctx     rope_base eps  tied  bias */
    { "llama-tiny", "llama", 512, 64, 2, 4, 2, 128, 256, 10000.0f, 1e-5f, true, false },
    { "llama-15m", "llama", 32000, 288, 6, 6, 6, 768, 256, 10000.0f, 1e-5f, true, false },     /* stories15M */
    { "llama-135m", "llama", 49152, 576, 30, 9, 3, 1536, 8192, 100000.0f, 1e-5f, true, false }, /* SmolLM2-135M */
    { "llama-1b", "llama", 128256, 2048, 16, 32, 8, 8192, 131072, 500000.0f, 1e-5f, true, false },  /* Llama 3.2 1B */
    { "llama-3b", "llama", 128256, 3072, 28, 24, 8, 8192, 131072, 500000.0f, 1e-5f, true, false },  /* Llama 3.2 3B */
    { "llama-7b", "llama", 32000, 4096, 32, 32, 32, 11008, 4096, 10000.0f, 1e-5f, false, false },   /* Llama 2 7B */
    { "llama-8b", "llama", 128256, 4096, 32, 32, 8, 14336, 131072, 500000.0f, 1e-5f, false, false }, /* Llama 3.1 8B */
    { "qwen2-0.5b", "qwen2", 151936, 896, 24, 14, 2, 4864, 32768, 1000000.0f, 1e-6f, true, true },  /* Qwen2.5 0.5B */
};

const lm_synthetic_shape *lm_synthetic_shape_at(int i)
{
    return i >= 0 && (size_t)i < sizeof shapes / sizeof shapes[0] ? &shapes[i] : NULL;
}

const lm_synthetic_shape *lm_synthetic_shape_find(const char *name)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) return &shapes[i];
    return NULL;
}

int lm_synthetic_type(const char *name)
{
    for (int t = 0; t < LM_GGML_TYPE_COUNT; t++) {
        const char *n = lm_gguf_type_name(t);
        if (n && !strcasecmp(n, name) && lm_quant_supported(t)) return t;
    }
    return -1;
}

static void shape_names(char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", shapes[i].name);
}

static void type_names(char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (int t = 0; t < LM_GGML_TYPE_COUNT && o < cap; t++)
        if (lm_gguf_type_name(t) && lm_quant_supported(t))
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", lm_gguf_type_name(t));
}

int lm_synthetic_parse(const char *spec, const lm_synthetic_shape **shape, int *type, char *err, size_t errlen)
{
    char names[512], buf[128];
    if (strncmp(spec, "synthetic:", 10))
        return lm_fail(err, errlen, LM_ERR_INVALID, "'%s' is not synthetic:SHAPE:TYPE", spec);
    snprintf(buf, sizeof buf, "%s", spec + 10);
    char *colon = strchr(buf, ':');
    if (colon) *colon = 0;
    *shape = lm_synthetic_shape_find(buf);
    if (!*shape) {
        shape_names(names, sizeof names);
        return lm_fail(err, errlen, LM_ERR_INVALID, "%s: no synthetic shape '%s' (shapes: %s)", spec, buf, names);
    }
    *type = colon ? lm_synthetic_type(colon + 1) : LM_GGML_F16;
    if (*type < 0) {
        type_names(names, sizeof names);
        return lm_fail(err, errlen, LM_ERR_INVALID, "%s: no weight type '%s' (types: %s)", spec, colon + 1, names);
    }
    return LM_OK;
}

/* ---------------------------------------------------------------- random numbers */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float normal(uint64_t *s)
{
    double u1 = ((splitmix(s) >> 11) + 1) * (1.0 / 9007199254740993.0), u2 = (splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---------------------------------------------------------------- tensors */

typedef struct {
    lm_gguf_writer *w;
    uint64_t seed;
    void (*progress)(void *user, float done);
    void *user;
    int64_t done, total; /* elements */
    char *err;
    size_t errlen;
} gen;

/* A matrix of rows x k in type (or its fallback): rows drawn from a pool of quantised random rows. */
static int matrix(gen *g, const char *name, int64_t k, int64_t rows, int type, float sigma)
{
    type = lm_quant_fallback(type, k);
    size_t row_bytes = lm_gguf_row_size(type, k);
    int64_t pool_n = rows < POOL_ROWS ? rows : POOL_ROWS;
    if (!row_bytes || (uint64_t)rows > SIZE_MAX / row_bytes)
        return lm_fail(g->err, g->errlen, LM_ERR_INVALID, "%s: %lld x %lld does not fit %s", name, (long long)rows,
                       (long long)k, lm_gguf_type_name(type));
    uint8_t *pool = malloc((size_t)pool_n * row_bytes), *data = malloc((size_t)rows * row_bytes);
    float *f = malloc((size_t)k * sizeof(float));
    int rc = LM_OK;
    if (!pool || !data || !f) {
        rc = lm_fail(g->err, g->errlen, LM_ERR_NOMEM, "%s: out of memory (%zu bytes)", name, (size_t)rows * row_bytes);
        goto out;
    }
    uint64_t s = g->seed ^ (uint64_t)strlen(name) * 0x100000001B3ull;
    for (const char *c = name; *c; c++) s = (s ^ (uint8_t)*c) * 0x100000001B3ull;
    for (int64_t r = 0; r < pool_n; r++) {
        for (int64_t i = 0; i < k; i++) f[i] = sigma * normal(&s);
        if ((rc = lm_quantize(type, f, pool + (size_t)r * row_bytes, k)))
            goto out;
    }
    for (int64_t r = 0; r < rows; r++)
        memcpy(data + (size_t)r * row_bytes, pool + (size_t)(splitmix(&s) % (uint64_t)pool_n) * row_bytes, row_bytes);
    int64_t ne[2] = { k, rows };
    rc = lm_gguf_writer_add_tensor(g->w, name, 2, ne, type, data, (size_t)rows * row_bytes);
    if (rc) lm_fail(g->err, g->errlen, rc, "%s", lm_gguf_writer_errmsg(g->w));
out:
    free(pool);
    free(data);
    free(f);
    g->done += rows * k;
    if (!rc && g->progress) g->progress(g->user, (float)((double)g->done / (double)g->total));
    return rc;
}

static int vector(gen *g, const char *name, int64_t n, float value, float sigma)
{
    float *v = malloc((size_t)n * sizeof(float));
    if (!v) return lm_fail(g->err, g->errlen, LM_ERR_NOMEM, "out of memory");
    uint64_t s = g->seed ^ (uint64_t)n;
    for (int64_t i = 0; i < n; i++) v[i] = value + (sigma ? sigma * normal(&s) : 0.0f);
    int64_t ne[1] = { n };
    int rc = lm_gguf_writer_add_tensor(g->w, name, 1, ne, LM_GGML_F32, v, (size_t)n * sizeof(float));
    free(v);
    if (rc) lm_fail(g->err, g->errlen, rc, "%s", lm_gguf_writer_errmsg(g->w));
    return rc;
}

/* ---------------------------------------------------------------- metadata */

static int vocab(lm_gguf_writer *w, int32_t n)
{
    char **tok = calloc((size_t)n, sizeof(*tok));
    float *score = malloc((size_t)n * sizeof(float));
    int32_t *type = malloc((size_t)n * sizeof(int32_t));
    int rc = LM_ERR_NOMEM;
    if (!tok || !score || !type) goto out;
    for (int32_t i = 0; i < n; i++) {
        char buf[32];
        if (i == 0) snprintf(buf, sizeof buf, "<unk>");
        else if (i == 1) snprintf(buf, sizeof buf, "<s>");
        else if (i == 2) snprintf(buf, sizeof buf, "</s>");
        else if (i < 259) snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        else { /* "▁" and a base-26 name: distinct pieces */
            int v = i - 259, o = snprintf(buf, sizeof buf, "\xe2\x96\x81");
            do {
                buf[o++] = (char)('a' + v % 26);
                v /= 26;
            } while (v && o < 30);
            buf[o] = 0;
        }
        if (!(tok[i] = strdup(buf))) goto out;
        score[i] = i < 259 ? 0.0f : -(float)(i - 259);
        type[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1; /* unknown, control, byte, normal */
    }
    if ((rc = lm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (rc = lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (uint64_t)n, (const char *const *)tok, NULL)) ||
        (rc = lm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LM_GGUF_F32, (uint64_t)n, score)) ||
        (rc = lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_I32, (uint64_t)n, type)) ||
        (rc = lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
        (rc = lm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) ||
        (rc = lm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) ||
        (rc = lm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)))
        goto out;
    rc = LM_OK;
out:
    for (int32_t i = 0; tok && i < n; i++) free(tok[i]);
    free(tok);
    free(score);
    free(type);
    return rc;
}

/* general.file_type (llama.cpp's numbers) of a file whose matrices are all of one type: the preset
 * that makes it (K-quants: the _S mix, the plainest) */
static int file_type(int type)
{
    switch (type) {
    case LM_GGML_F32: return LM_FTYPE_F32;
    case LM_GGML_F16: return LM_FTYPE_F16;
    case LM_GGML_BF16: return LM_FTYPE_BF16;
    case LM_GGML_Q4_0: return LM_FTYPE_Q4_0;
    case LM_GGML_Q4_1: return LM_FTYPE_Q4_1;
    case LM_GGML_Q5_0: return LM_FTYPE_Q5_0;
    case LM_GGML_Q5_1: return LM_FTYPE_Q5_1;
    case LM_GGML_Q8_0: return LM_FTYPE_Q8_0;
    case LM_GGML_Q2_K: return LM_FTYPE_Q2_K;
    case LM_GGML_Q3_K: return LM_FTYPE_Q3_K_S;
    case LM_GGML_Q4_K: return LM_FTYPE_Q4_K_S;
    case LM_GGML_Q5_K: return LM_FTYPE_Q5_K_S;
    case LM_GGML_Q6_K: return LM_FTYPE_Q6_K;
    case LM_GGML_IQ4_NL: return LM_FTYPE_IQ4_NL;
    case LM_GGML_IQ4_XS: return LM_FTYPE_IQ4_XS;
    default: return LM_FTYPE_F16;
    }
}

static int hparams(lm_gguf_writer *w, const lm_synthetic_shape *sh, int type)
{
    char key[96], name[128];
    int rc;
    snprintf(name, sizeof name, "synthetic %s %s", sh->name, lm_gguf_type_name(type));
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", sh->arch, suffix), key)
    if ((rc = lm_gguf_writer_set_str(w, "general.architecture", sh->arch)) ||
        (rc = lm_gguf_writer_set_str(w, "general.name", name)) ||
        (rc = lm_gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type(type))) ||
        (rc = lm_gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)sh->n_ctx)) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)sh->dim)) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)sh->n_layers)) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)sh->ffn_dim)) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)sh->n_heads)) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)sh->n_kv_heads)) ||
        (rc = lm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), sh->norm_eps)) ||
        (rc = lm_gguf_writer_set_f32(w, KEY("rope.freq_base"), sh->rope_base)) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)(sh->dim / sh->n_heads))) ||
        (rc = lm_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)sh->n_vocab)))
        return rc;
#undef KEY
    return vocab(w, sh->n_vocab);
}

int64_t lm_synthetic_n_params(const lm_synthetic_shape *sh)
{
    int64_t hd = sh->dim / sh->n_heads, q = (int64_t)sh->n_heads * hd, kv = (int64_t)sh->n_kv_heads * hd;
    int64_t layer = sh->dim * (q + 2 * kv) + q * sh->dim + 3 * (int64_t)sh->dim * sh->ffn_dim + 2 * sh->dim;
    if (sh->qkv_bias) layer += q + 2 * kv;
    return (int64_t)sh->n_vocab * sh->dim * (sh->tied ? 1 : 2) + sh->dim + layer * sh->n_layers;
}

int lm_synthetic_write(const lm_synthetic_shape *sh, int type, uint64_t seed, const char *path,
                       void (*progress)(void *user, float done), void *user, char *err, size_t errlen)
{
    if (!sh || !lm_quant_supported(type))
        return lm_fail(err, errlen, LM_ERR_INVALID, "synthetic model: no shape, or type %d is not one vkllm runs", type);
    lm_gguf_writer *w = NULL;
    int rc = lm_gguf_writer_create(path, &w, err, errlen);
    if (rc) return rc;
    gen g = { w, seed, progress, user, 0, lm_synthetic_n_params(sh), err, errlen };
    if ((rc = hparams(w, sh, type))) {
        lm_fail(err, errlen, rc, "%s: %s", path, lm_gguf_writer_errmsg(w));
        lm_gguf_writer_abort(w);
        return rc;
    }
    int64_t dim = sh->dim, hd = sh->dim / sh->n_heads, q = (int64_t)sh->n_heads * hd, kv = (int64_t)sh->n_kv_heads * hd;
    float sigma = 0.02f;
    rc = matrix(&g, "token_embd.weight", dim, sh->n_vocab, type, sigma);
    if (!rc) rc = vector(&g, "output_norm.weight", dim, 1.0f, 0.0f);
    if (!rc && !sh->tied) rc = matrix(&g, "output.weight", dim, sh->n_vocab, type, sigma);
    for (int l = 0; !rc && l < sh->n_layers; l++) {
        char n[64];
#define T(suffix) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), n)
        if ((rc = vector(&g, T("attn_norm.weight"), dim, 1.0f, 0.0f)) ||
            (rc = matrix(&g, T("attn_q.weight"), dim, q, type, sigma)) ||
            (rc = matrix(&g, T("attn_k.weight"), dim, kv, type, sigma)) ||
            (rc = matrix(&g, T("attn_v.weight"), dim, kv, type, sigma)) ||
            (sh->qkv_bias && ((rc = vector(&g, T("attn_q.bias"), q, 0.0f, sigma)) ||
                              (rc = vector(&g, T("attn_k.bias"), kv, 0.0f, sigma)) ||
                              (rc = vector(&g, T("attn_v.bias"), kv, 0.0f, sigma)))) ||
            (rc = matrix(&g, T("attn_output.weight"), q, dim, type, sigma)) ||
            (rc = vector(&g, T("ffn_norm.weight"), dim, 1.0f, 0.0f)) ||
            (rc = matrix(&g, T("ffn_gate.weight"), dim, sh->ffn_dim, type, sigma)) ||
            (rc = matrix(&g, T("ffn_up.weight"), dim, sh->ffn_dim, type, sigma)) ||
            (rc = matrix(&g, T("ffn_down.weight"), sh->ffn_dim, dim, type, sigma)))
            break;
#undef T
    }
    if (rc) {
        lm_gguf_writer_abort(w);
        return rc;
    }
    return lm_gguf_writer_finish(w, err, errlen);
}
