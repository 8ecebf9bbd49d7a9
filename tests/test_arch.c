/* test_arch.c: the model forward pass against an independent plain-C reference in double precision.
 *
 * Synthetic GGUF models, written to /tmp with seeded random weights (matrices ~N(0, 0.05), norm weights
 * ~1 + N(0, 0.1)), cover the llama and qwen2 variants: GQA, Q/K/V biases (qwen2, and llama's optional
 * ones), adjacent and neox RoPE, n_rot below head_dim, key_length != embedding_length / head_count, linear
 * scaling (rope.scaling.type, the older rope.scale_linear, a bare rope.scaling.factor), YaRN (with and
 * without rope.scaling.attn_factor), per-frequency factors (rope_freqs.weight), F16 and BF16 matrices,
 * tied and untied output, odd sizes. For each one every position's logits are compared with the
 * reference by nmse: from one prefill pass, from several passes of n_batch 5 split over two eval calls,
 * after a rewind, and token by token through the decode step (whose greedy form must pick the
 * reference's argmax). The tolerance is 1e-8 for every weight type (the reference uses the same rounded
 * F16/BF16 values, and the device computes in f32; the differences seen are ~1e-13), 1e-5 with an f16 KV
 * cache (~1e-7 seen).
 *
 * Models that are wrong or unsupported (an unknown architecture, a missing tensor, a misshapen one, a
 * quantised one, a missing bias, an unknown RoPE scaling type) are refused with the right lm_status and
 * a message naming the culprit.
 *
 * Last, llama.cpp-style perplexity of the real stories260K on a short text of our own, computed with the
 * reference forward pass from the file's F32 tensors, is compared with what `vkllm perplexity` prints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lm.h"
#include "util.h"

#define N_TOK 12      /* tokens evaluated per variant */
#define ARCH_TOL 1e-8 /* nmse of the logits against the reference */

/* ---------------------------------------------------------------- number formats */

static uint16_t f32_to_f16(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a < ldexp(1, -14)) /* subnormal (rounding up to 0x400 gives the smallest normal, as it should) */
        return sign | (uint16_t)lrint(a * ldexp(1, 24));
    int e;
    double fr = frexp(a, &e); /* a = fr * 2^e, fr in [0.5, 1) */
    long m = lrint((2 * fr - 1) * 1024);
    e -= 1;
    if (m == 1024) {
        m = 0;
        e++;
    }
    return sign | (uint16_t)((e + 15) << 10) | (uint16_t)m;
}

static double f16_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    double v = exp == 0 ? ldexp(man, -24) : ldexp(1024 + man, exp - 25);
    return h & 0x8000 ? -v : v;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static double bf16_to_double(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* f as the file stores it in `type`, read back exactly */
static double stored(int type, float f)
{
    switch (type) {
    case LM_GGML_F16: return f16_to_double(f32_to_f16(f));
    case LM_GGML_BF16: return bf16_to_double(f32_to_bf16(f));
    default: return f;
    }
}

/* ---------------------------------------------------------------- a small GGUF writer */

typedef struct { uint8_t *p; size_t n, cap; } gbuf;

static void put(gbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u8(gbuf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_f32(gbuf *b, float v) { put(b, &v, 4); }
static void put_str(gbuf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* metadata, tensor infos and tensor data are gathered apart and joined by gw_write */
typedef struct { gbuf kv, ti, data; uint64_t n_kv, n_t; } gw;

static void kv_key(gw *w, const char *key, uint32_t type)
{
    put_str(&w->kv, key);
    put_u32(&w->kv, type);
    w->n_kv++;
}
static void kv_str(gw *w, const char *key, const char *v) { kv_key(w, key, LM_GGUF_STR), put_str(&w->kv, v); }
static void kv_u32(gw *w, const char *key, uint32_t v) { kv_key(w, key, LM_GGUF_U32), put_u32(&w->kv, v); }
static void kv_f32(gw *w, const char *key, float v) { kv_key(w, key, LM_GGUF_F32), put_f32(&w->kv, v); }
static void kv_bool(gw *w, const char *key, bool v) { kv_key(w, key, LM_GGUF_BOOL), put_u8(&w->kv, v); }
static void kv_arr(gw *w, const char *key, uint32_t elem_type, uint64_t n)
{
    kv_key(w, key, LM_GGUF_ARR);
    put_u32(&w->kv, elem_type);
    put_u64(&w->kv, n);
}

static void gw_tensor(gw *w, const char *name, int n_dims, const int64_t *ne, int type, const void *data, size_t size)
{
    while (w->data.n % 32)
        put_u8(&w->data, 0);
    put_str(&w->ti, name);
    put_u32(&w->ti, (uint32_t)n_dims);
    for (int d = 0; d < n_dims; d++)
        put_u64(&w->ti, (uint64_t)ne[d]);
    put_u32(&w->ti, (uint32_t)type);
    put_u64(&w->ti, w->data.n);
    put(&w->data, data, size);
    w->n_t++;
}

static bool gw_write(gw *w, const char *path)
{
    gbuf h = { 0 };
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, w->n_t);
    put_u64(&h, w->n_kv);
    put(&h, w->kv.p, w->kv.n);
    put(&h, w->ti.p, w->ti.n);
    while (h.n % 32)
        put_u8(&h, 0);
    put(&h, w->data.p, w->data.n);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(h.p, 1, h.n, f) == h.n;
    if (f && fclose(f))
        ok = false;
    free(h.p);
    free(w->kv.p);
    free(w->ti.p);
    free(w->data.p);
    memset(w, 0, sizeof *w);
    return ok;
}

/* ---------------------------------------------------------------- the reference */

typedef struct rlayer {
    const double *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *ffn_norm, *gate, *up, *down;
} rlayer;

typedef struct rmodel {
    int n_vocab, dim, n_layers, n_heads, n_kv, hd, ffn, n_rot;
    bool neox;
    double eps, base;
    int scaling; /* enum lm_rope_scaling */
    double factor, beta_fast, beta_slow, attn_factor;
    int n_ctx_orig;
    const double *freqs, *embd, *out_norm, *output; /* matrices [rows][cols], cols contiguous */
    rlayer *L;
} rmodel;

/* YaRN: the dimension at which a frequency makes n_turns rotations over the original context:
 * solving n_ctx_orig / (2 pi base^(2d / n_rot)) = n_turns for d. */
static double yarn_corr_dim(const rmodel *m, double n_turns)
{
    return m->n_rot * log(m->n_ctx_orig / (n_turns * 2 * M_PI)) / (2 * log(m->base));
}

/* RoPE in place on n_heads heads of hd at position pos; dims past n_rot are left alone. */
static void ref_rope(const rmodel *m, double *v, int n_heads, int pos)
{
    int half = m->n_rot / 2;
    double lo = 0, hi = 0;
    if (m->scaling == LM_ROPE_SCALING_YARN) {
        lo = fmax(0, floor(yarn_corr_dim(m, m->beta_fast)));
        hi = fmin(m->n_rot - 1, ceil(yarn_corr_dim(m, m->beta_slow)));
    }
    for (int i = 0; i < half; i++) {
        double theta = pos * pow(m->base, -2.0 * i / m->n_rot), mscale = 1;
        if (m->freqs)
            theta /= m->freqs[i];
        if (m->scaling == LM_ROPE_SCALING_LINEAR) {
            theta /= m->factor;
        } else if (m->scaling == LM_ROPE_SCALING_YARN) {
            /* a blend of interpolation (theta / factor) for the low frequencies and extrapolation
             * (theta) for the high ones, by a linear ramp over pairs lo..hi; magnitudes scaled */
            double y = (i - lo) / fmax(0.001, hi - lo), extrap = 1 - fmin(1, fmax(0, y));
            theta = theta / m->factor * (1 - extrap) + theta * extrap;
            mscale = m->attn_factor * (1 + 0.1 * log(m->factor));
        }
        double c = cos(theta) * mscale, s = sin(theta) * mscale;
        for (int h = 0; h < n_heads; h++) {
            double *x = v + (size_t)h * m->hd;
            int i0 = m->neox ? i : 2 * i, i1 = m->neox ? i + half : 2 * i + 1;
            double a = x[i0], b = x[i1];
            x[i0] = a * c - b * s;
            x[i1] = a * s + b * c;
        }
    }
}

/* logits[n][n_vocab] of ids[0..n) at positions 0..n-1 */
static void ref_forward(const rmodel *m, const int32_t *ids, int n, double *logits)
{
    int dim = m->dim, hd = m->hd, qd = m->n_heads * hd, kvd = m->n_kv * hd, group = m->n_heads / m->n_kv;
    int big = dim > qd ? dim : qd;
    double *x = malloc(sizeof *x * (size_t)n * dim), *xb = malloc(sizeof *xb * big), *q = malloc(sizeof *q * qd),
           *k = malloc(sizeof *k * (size_t)n * kvd), *v = malloc(sizeof *v * (size_t)n * kvd),
           *att = malloc(sizeof *att * qd), *o = malloc(sizeof *o * dim), *h1 = malloc(sizeof *h1 * m->ffn),
           *h2 = malloc(sizeof *h2 * m->ffn), *sc = malloc(sizeof *sc * n);
    for (int p = 0; p < n; p++)
        memcpy(x + (size_t)p * dim, m->embd + (size_t)ids[p] * dim, sizeof *x * dim);
    for (int l = 0; l < m->n_layers; l++) {
        const rlayer *L = &m->L[l];
        for (int p = 0; p < n; p++) {
            double *xp = x + (size_t)p * dim, *kp = k + (size_t)p * kvd, *vp = v + (size_t)p * kvd;
            tu_rmsnorm(xb, xp, L->attn_norm, dim, m->eps);
            tu_matvec(q, L->wq, xb, L->bq, qd, dim);
            tu_matvec(kp, L->wk, xb, L->bk, kvd, dim);
            tu_matvec(vp, L->wv, xb, L->bv, kvd, dim);
            ref_rope(m, q, m->n_heads, p);
            ref_rope(m, kp, m->n_kv, p);
            for (int h = 0; h < m->n_heads; h++) {
                const double *qh = q + (size_t)h * hd;
                int g = h / group;
                double mx = -INFINITY, sum = 0;
                for (int t = 0; t <= p; t++) {
                    const double *kt = k + (size_t)t * kvd + (size_t)g * hd;
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += qh[d] * kt[d];
                    sc[t] = s / sqrt((double)hd);
                    mx = fmax(mx, sc[t]);
                }
                for (int t = 0; t <= p; t++)
                    sum += sc[t] = exp(sc[t] - mx);
                for (int d = 0; d < hd; d++) {
                    double a = 0;
                    for (int t = 0; t <= p; t++)
                        a += sc[t] * v[(size_t)t * kvd + (size_t)g * hd + d];
                    att[h * hd + d] = a / sum;
                }
            }
            tu_matvec(o, L->wo, att, NULL, dim, qd);
            for (int i = 0; i < dim; i++)
                xp[i] += o[i];
            tu_rmsnorm(xb, xp, L->ffn_norm, dim, m->eps);
            tu_matvec(h1, L->gate, xb, NULL, m->ffn, dim);
            tu_matvec(h2, L->up, xb, NULL, m->ffn, dim);
            for (int i = 0; i < m->ffn; i++)
                h1[i] = h1[i] / (1 + exp(-h1[i])) * h2[i];
            tu_matvec(o, L->down, h1, NULL, dim, m->ffn);
            for (int i = 0; i < dim; i++)
                xp[i] += o[i];
        }
    }
    for (int p = 0; p < n; p++) {
        tu_rmsnorm(xb, x + (size_t)p * dim, m->out_norm, dim, m->eps);
        tu_matvec(logits + (size_t)p * m->n_vocab, m->output, xb, NULL, m->n_vocab, dim);
    }
    free(x), free(xb), free(q), free(k), free(v), free(att), free(o), free(h1), free(h2), free(sc);
}

/* ---------------------------------------------------------------- synthetic models */

typedef struct spec {
    const char *name, *arch;
    int dim, n_layers, n_heads, n_kv, head_dim, ffn, n_rot; /* head_dim != dim / n_heads: key_length written */
    float base;
    /* rope.scaling.type and .factor; NULL: none written. Two spellings of linear scaling without a type,
     * which llama.cpp reads as linear: "scale_linear" (the older rope.scale_linear key alone) and
     * "factor-only" (rope.scaling.factor alone) */
    const char *scaling;
    float factor;
    float attn_factor;   /* yarn: rope.scaling.attn_factor (0: not written, 1) */
    int n_ctx_train, n_ctx_orig; /* n_ctx_orig: yarn's original_context_length (0: not written) */
    bool freqs, tied;
    bool bias;           /* llama with the optional Q/K/V biases (qwen2 always has them) */
    bool kv_f16;         /* also a session with an f16 KV cache */
    int wtype;           /* type of the matrices */
    bool v_f32;          /* attn_v in F32 whatever wtype: Q, K and V not of one type (three products) */
} spec;

/* what write_model spoils, for the refusals */
typedef struct mutation {
    const char *arch_key; /* general.architecture written instead of the spec's */
    const char *drop;     /* this tensor left out */
    const char *misshape; /* this tensor written with one row too many */
    const char *quant;    /* this tensor written as Q8_1 (a ggml type vkllm does not run) */
} mutation;

typedef struct tens { char name[64]; int64_t ne0, ne1; int type; double *v; } tens;
typedef struct tset { tens t[64]; int n; } tset;

enum { G_MAT, G_NORM, G_BIAS, G_FREQ };

static const double *gen(tset *ts, tu_rng *r, const char *name, int64_t ne0, int64_t ne1, int type, int kind)
{
    tens *t = &ts->t[ts->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->type = type;
    t->v = malloc(sizeof *t->v * (size_t)(ne0 * ne1));
    for (int64_t i = 0; i < ne0 * ne1; i++) {
        float f = kind == G_NORM ? 1 + 0.1f * tu_normal(r)
                  : kind == G_FREQ ? tu_uniform(r, 0.5f, 8.0f)
                  : kind == G_BIAS ? 0.1f * tu_normal(r)
                                   : 0.05f * tu_normal(r);
        t->v[i] = stored(type, f);
    }
    return t->v;
}

static void tset_free(tset *ts)
{
    for (int i = 0; i < ts->n; i++)
        free(ts->t[i].v);
    ts->n = 0;
}

/* The vocabulary: <unk> <s> </s>, the 256 byte tokens, a few words. */
#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's space */
static const char *const words[] = { SP "the", SP "cat", SP "sat", SP "on", SP "a", SP "mat", SP "dog", SP "ran" };
#define N_WORDS (int)(sizeof words / sizeof words[0])
#define N_VOCAB (3 + 256 + N_WORDS)

static void write_vocab(gw *w)
{
    kv_str(w, "tokenizer.ggml.model", "llama");
    kv_arr(w, "tokenizer.ggml.tokens", LM_GGUF_STR, N_VOCAB);
    put_str(&w->kv, "<unk>"), put_str(&w->kv, "<s>"), put_str(&w->kv, "</s>");
    for (int i = 0; i < 256; i++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", i);
        put_str(&w->kv, s);
    }
    for (int i = 0; i < N_WORDS; i++)
        put_str(&w->kv, words[i]);
    kv_arr(w, "tokenizer.ggml.scores", LM_GGUF_F32, N_VOCAB);
    for (int i = 0; i < N_VOCAB; i++)
        put_f32(&w->kv, i < 259 ? 0.0f : -(float)(i - 259));
    kv_arr(w, "tokenizer.ggml.token_type", LM_GGUF_I32, N_VOCAB);
    for (int i = 0; i < N_VOCAB; i++)
        put_u32(&w->kv, i == 0 ? LM_TOKEN_UNKNOWN : i < 3 ? LM_TOKEN_CONTROL : i < 259 ? LM_TOKEN_BYTE : LM_TOKEN_NORMAL);
    kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    kv_bool(w, "tokenizer.ggml.add_bos_token", true);
    kv_bool(w, "tokenizer.ggml.add_eos_token", false);
}

/* Generates the weights of sp (into ts, seeded) and the reference model that uses them. */
static void build(const spec *sp, uint64_t seed, tset *ts, rmodel *m)
{
    tu_rng r = { seed };
    memset(m, 0, sizeof *m);
    m->n_vocab = N_VOCAB;
    m->dim = sp->dim;
    m->n_layers = sp->n_layers;
    m->n_heads = sp->n_heads;
    m->n_kv = sp->n_kv;
    m->hd = sp->head_dim;
    m->ffn = sp->ffn;
    m->n_rot = sp->n_rot ? sp->n_rot : sp->head_dim;
    m->neox = !strcmp(sp->arch, "qwen2");
    m->eps = (double)1e-5f;
    m->base = sp->base;
    m->scaling = !sp->scaling ? LM_ROPE_SCALING_NONE
                 : !strcmp(sp->scaling, "yarn") ? LM_ROPE_SCALING_YARN
                 : !strcmp(sp->scaling, "linear") || !strcmp(sp->scaling, "scale_linear") ||
                           !strcmp(sp->scaling, "factor-only")
                     ? LM_ROPE_SCALING_LINEAR
                     : LM_ROPE_SCALING_NONE;
    m->factor = sp->factor;
    m->beta_fast = 32;
    m->beta_slow = 1;
    m->attn_factor = sp->attn_factor ? sp->attn_factor : 1.0f;
    m->n_ctx_orig = sp->n_ctx_orig ? sp->n_ctx_orig : sp->n_ctx_train;
    int64_t dim = sp->dim, qd = (int64_t)sp->n_heads * sp->head_dim, kvd = (int64_t)sp->n_kv * sp->head_dim;
    bool bias = m->neox || sp->bias;
    int wt = sp->wtype;
    m->embd = gen(ts, &r, "token_embd.weight", dim, N_VOCAB, wt, G_MAT);
    m->out_norm = gen(ts, &r, "output_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
    m->output = sp->tied ? m->embd : gen(ts, &r, "output.weight", dim, N_VOCAB, wt, G_MAT);
    if (sp->freqs)
        m->freqs = gen(ts, &r, "rope_freqs.weight", m->n_rot / 2, 1, LM_GGML_F32, G_FREQ);
    m->L = calloc((size_t)sp->n_layers, sizeof *m->L);
    for (int l = 0; l < sp->n_layers; l++) {
        rlayer *L = &m->L[l];
        char n[64];
#define GEN(field, suffix, ne0, ne1, type, kind)      \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix); \
    L->field = gen(ts, &r, n, ne0, ne1, type, kind);
        GEN(attn_norm, "attn_norm.weight", dim, 1, LM_GGML_F32, G_NORM)
        GEN(wq, "attn_q.weight", dim, qd, wt, G_MAT)
        GEN(wk, "attn_k.weight", dim, kvd, wt, G_MAT)
        GEN(wv, "attn_v.weight", dim, kvd, sp->v_f32 ? LM_GGML_F32 : wt, G_MAT)
        if (bias) {
            GEN(bq, "attn_q.bias", qd, 1, LM_GGML_F32, G_BIAS)
            GEN(bk, "attn_k.bias", kvd, 1, LM_GGML_F32, G_BIAS)
            GEN(bv, "attn_v.bias", kvd, 1, LM_GGML_F32, G_BIAS)
        }
        GEN(wo, "attn_output.weight", qd, dim, wt, G_MAT)
        GEN(ffn_norm, "ffn_norm.weight", dim, 1, LM_GGML_F32, G_NORM)
        GEN(gate, "ffn_gate.weight", dim, sp->ffn, wt, G_MAT)
        GEN(down, "ffn_down.weight", sp->ffn, dim, wt, G_MAT)
        GEN(up, "ffn_up.weight", dim, sp->ffn, wt, G_MAT)
#undef GEN
    }
}

/* Writes the GGUF of sp with the tensors of ts, metadata keys as llama.cpp's convert script names them. */
static bool write_model(const spec *sp, const mutation *mu, const tset *ts, const char *path)
{
    static const mutation none;
    if (!mu)
        mu = &none;
    gw w = { 0 };
    const char *arch = mu->arch_key ? mu->arch_key : sp->arch;
    char k[128];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", arch, suffix), k)
    kv_str(&w, "general.architecture", arch);
    kv_str(&w, "general.name", sp->name);
    kv_u32(&w, KEY("context_length"), (uint32_t)sp->n_ctx_train);
    kv_u32(&w, KEY("embedding_length"), (uint32_t)sp->dim);
    kv_u32(&w, KEY("block_count"), (uint32_t)sp->n_layers);
    kv_u32(&w, KEY("feed_forward_length"), (uint32_t)sp->ffn);
    kv_u32(&w, KEY("attention.head_count"), (uint32_t)sp->n_heads);
    kv_u32(&w, KEY("attention.head_count_kv"), (uint32_t)sp->n_kv);
    kv_f32(&w, KEY("rope.freq_base"), sp->base);
    kv_f32(&w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    if (sp->head_dim != sp->dim / sp->n_heads) {
        kv_u32(&w, KEY("attention.key_length"), (uint32_t)sp->head_dim);
        kv_u32(&w, KEY("attention.value_length"), (uint32_t)sp->head_dim);
    }
    if (!strcmp(sp->arch, "llama") || sp->n_rot)
        kv_u32(&w, KEY("rope.dimension_count"), (uint32_t)(sp->n_rot ? sp->n_rot : sp->head_dim));
    if (sp->scaling && !strcmp(sp->scaling, "scale_linear")) {
        kv_f32(&w, KEY("rope.scale_linear"), sp->factor);
    } else if (sp->scaling) {
        if (strcmp(sp->scaling, "factor-only"))
            kv_str(&w, KEY("rope.scaling.type"), sp->scaling);
        kv_f32(&w, KEY("rope.scaling.factor"), sp->factor);
        if (sp->n_ctx_orig)
            kv_u32(&w, KEY("rope.scaling.original_context_length"), (uint32_t)sp->n_ctx_orig);
        if (sp->attn_factor)
            kv_f32(&w, KEY("rope.scaling.attn_factor"), sp->attn_factor);
    }
    kv_u32(&w, "general.file_type", sp->wtype == LM_GGML_F32 ? 0 : sp->wtype == LM_GGML_F16 ? 1 : 32);
    write_vocab(&w);
#undef KEY
    for (int i = 0; i < ts->n; i++) {
        const tens *t = &ts->t[i];
        if (mu->drop && !strcmp(t->name, mu->drop))
            continue;
        int64_t n = t->ne0 * t->ne1, ne[2] = { t->ne0, t->ne1 };
        int type = t->type;
        size_t esize = type == LM_GGML_F32 ? 4 : 2, size = (size_t)n * esize;
        if (mu->misshape && !strcmp(t->name, mu->misshape)) {
            ne[1]++;
            size += (size_t)t->ne0 * esize;
        }
        uint8_t *bytes = calloc(1, size);
        if (mu->quant && !strcmp(t->name, mu->quant)) {
            type = LM_GGML_Q8_1;
            size = lm_gguf_row_size(type, ne[0]) * (size_t)ne[1];
        } else {
            for (int64_t j = 0; j < n; j++) {
                float f = (float)t->v[j];
                uint16_t h = type == LM_GGML_F16 ? f32_to_f16(f) : f32_to_bf16(f);
                if (type == LM_GGML_F32)
                    memcpy(bytes + j * 4, &f, 4);
                else
                    memcpy(bytes + j * 2, &h, 2);
            }
        }
        gw_tensor(&w, t->name, t->ne1 > 1 || ne[1] > 1 ? 2 : 1, ne, type, bytes, size);
        free(bytes);
    }
    return gw_write(&w, path);
}

static void model_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "/tmp/vkllm-test-arch-%d-%s.gguf", (int)getpid(), name);
}

/* nmse of every row of got against ref; the worst goes to *worst */
static void compare_rows(const char *what, const char *how, const float *got, const double *ref, int rows, int nv,
                         double tol, double *worst)
{
    for (int p = 0; p < rows; p++) {
        double e = tu_nmse(got + (size_t)p * nv, ref + (size_t)p * nv, nv);
        if (!(e <= *worst))
            *worst = e;
        CHECK(e < tol, "%s, %s: position %d: logits nmse %.3g > %.3g", what, how, p, e, tol);
    }
}

/* One synthetic variant: load, then the logits of N_TOK tokens four ways against the reference. */
static void variant(tu_gpu *g, const spec *sp, uint64_t seed)
{
    tset ts = { .n = 0 };
    rmodel ref;
    build(sp, seed, &ts, &ref);
    char path[256], err[512];
    model_path(path, sizeof path, sp->name);
    CHECK(write_model(sp, NULL, &ts, path), "%s: cannot write %s", sp->name, path);
    lm_model *m = NULL;
    int rc = lm_model_load(g->ctx, path, NULL, &m, err, sizeof err);
    CHECK(rc == LM_OK, "%s: load: %s: %s", sp->name, lm_status_string(rc), err);
    if (rc)
        goto out;
    const lm_hparams *hp = lm_model_hparams(m);
    CHECK(!strcmp(hp->arch, sp->arch) && hp->n_vocab == N_VOCAB && hp->dim == sp->dim && hp->n_layers == sp->n_layers &&
          hp->n_heads == sp->n_heads && hp->n_kv_heads == sp->n_kv && hp->head_dim == sp->head_dim &&
          hp->ffn_dim == sp->ffn && hp->n_rot == ref.n_rot && hp->rope_base == sp->base &&
          hp->rope_mode == (ref.neox ? RT_ROPE_NEOX : RT_ROPE_ADJACENT) && (int)hp->rope_scaling == ref.scaling &&
          hp->tied_output == sp->tied && hp->has_rope_freqs == sp->freqs && hp->has_qkv_bias == ref.neox &&
          hp->weight_type == sp->wtype && (ref.scaling == LM_ROPE_SCALING_NONE || hp->rope_factor == sp->factor) &&
          (ref.scaling != LM_ROPE_SCALING_YARN || hp->rope_n_ctx_orig == ref.n_ctx_orig),
          "%s: hyper-parameters read back wrong", sp->name);

    int32_t ids[N_TOK];
    tu_rng r = { seed ^ 0x1D5 };
    ids[0] = 1;
    for (int i = 1; i < N_TOK; i++)
        ids[i] = (int32_t)(tu_u32(&r) % N_VOCAB);
    ids[N_TOK - 1] = N_VOCAB - 1; /* the last id: the end of the embedding and output matrices */
    double *want = malloc(sizeof *want * N_TOK * N_VOCAB);
    float *got = malloc(sizeof *got * N_TOK * N_VOCAB);
    ref_forward(&ref, ids, N_TOK, want);
    double worst = 0;

    /* one pass, all logits; then the decode step token by token after a rewind */
    lm_session *s = NULL;
    lm_session_opts so = { .n_ctx = 32, .kv_f32 = true };
    rc = lm_session_create(m, &so, &s, err, sizeof err);
    CHECK(rc == LM_OK, "%s: session: %s", sp->name, err);
    if (s) {
        CHECK(lm_session_eval(s, ids, N_TOK, got, true, err, sizeof err) == LM_OK, "%s: eval: %s", sp->name, err);
        compare_rows(sp->name, "one pass", got, want, N_TOK, N_VOCAB, ARCH_TOL, &worst);
        lm_session_rewind(s, 0);
        for (int i = 0; i < N_TOK; i++) {
            int32_t next = -1;
            CHECK(lm_session_step(s, ids[i], got + (size_t)i * N_VOCAB, &next, err, sizeof err) == LM_OK,
                  "%s: step %d: %s", sp->name, i, err);
            int32_t best = 0;
            for (int j = 1; j < N_VOCAB; j++)
                if (got[(size_t)i * N_VOCAB + j] > got[(size_t)i * N_VOCAB + best])
                    best = j;
            CHECK(next == best, "%s: step %d: next %d, argmax of the logits %d", sp->name, i, next, best);
        }
        compare_rows(sp->name, "decode steps", got, want, N_TOK, N_VOCAB, ARCH_TOL, &worst);
        CHECK(lm_session_n_past(s) == N_TOK, "%s: n_past %d after the steps", sp->name, lm_session_n_past(s));
        /* the greedy step (argmax on the device, no logits) picks the reference's argmax */
        lm_session_rewind(s, 0);
        for (int i = 0; i < N_TOK; i++) {
            const double *row = want + (size_t)i * N_VOCAB;
            int32_t next = -1, best = 0, second = -1;
            for (int j = 1; j < N_VOCAB; j++)
                if (row[j] > row[best]) {
                    second = best;
                    best = j;
                } else if (second < 0 || row[j] > row[second]) {
                    second = j;
                }
            CHECK(lm_session_step(s, ids[i], NULL, &next, err, sizeof err) == LM_OK, "%s: greedy step %d: %s",
                  sp->name, i, err);
            CHECK(next == best || row[best] - row[second] < 1e-5, "%s: greedy step %d: next %d, the reference's argmax %d",
                  sp->name, i, next, best);
        }
        lm_session_free(s);
    }

    /* n_batch 5: 7 tokens (passes of 5 and 2) then 5; then a rewind to 7 and the last logits only */
    so.n_batch = 5;
    rc = lm_session_create(m, &so, &s, err, sizeof err);
    CHECK(rc == LM_OK, "%s: session: %s", sp->name, err);
    if (s) {
        CHECK(lm_session_eval(s, ids, 7, got, true, err, sizeof err) == LM_OK, "%s: eval 7: %s", sp->name, err);
        CHECK(lm_session_eval(s, ids + 7, N_TOK - 7, got + 7 * N_VOCAB, true, err, sizeof err) == LM_OK,
              "%s: eval 5: %s", sp->name, err);
        compare_rows(sp->name, "n_batch 5", got, want, N_TOK, N_VOCAB, ARCH_TOL, &worst);
        lm_session_rewind(s, 7);
        CHECK(lm_session_eval(s, ids + 7, N_TOK - 7, got, false, err, sizeof err) == LM_OK, "%s: eval: %s", sp->name,
              err);
        compare_rows(sp->name, "last logits after a rewind", got, want + (N_TOK - 1) * N_VOCAB, 1, N_VOCAB, ARCH_TOL,
                     &worst);
        lm_session_free(s);
    }

    double worst_f16 = 0;
    if (sp->kv_f16) {
        lm_session_opts so16 = { .n_ctx = 32, .n_batch = 4 }; /* the default f16 cache */
        rc = lm_session_create(m, &so16, &s, err, sizeof err);
        CHECK(rc == LM_OK, "%s: session: %s", sp->name, err);
        if (s) {
            CHECK(lm_session_eval(s, ids, N_TOK, got, true, err, sizeof err) == LM_OK, "%s: eval: %s", sp->name, err);
            compare_rows(sp->name, "f16 KV cache", got, want, N_TOK, N_VOCAB, 1e-5, &worst_f16);
            lm_session_free(s);
        }
    }
    printf("%-18s max logits nmse %.3g", sp->name, worst);
    if (sp->kv_f16)
        printf(" (f16 KV cache %.3g)", worst_f16);
    printf("\n");
    free(want);
    free(got);
    lm_model_free(m);
out:
    unlink(path);
    tset_free(&ts);
    free(ref.L);
}

/* A mutated model must be refused with `status` and a message that contains `says`. */
static void refused(tu_gpu *g, const spec *sp, const mutation *mu, int status, const char *says)
{
    tset ts = { .n = 0 };
    rmodel ref;
    build(sp, 7, &ts, &ref);
    char path[256], err[512] = "";
    model_path(path, sizeof path, sp->name);
    CHECK(write_model(sp, mu, &ts, path), "%s: cannot write %s", sp->name, path);
    static char sentinel;
    lm_model *m = (lm_model *)(void *)&sentinel; /* must come back NULL */
    int rc = lm_model_load(g->ctx, path, NULL, &m, err, sizeof err);
    CHECK(rc == status && !m && strstr(err, says), "%s: load returned %s (want %s), model %p, message \"%s\" (want \"%s\")",
          sp->name, lm_status_string(rc), lm_status_string(status), (void *)m, err, says);
    printf("%-18s refused: %s\n", sp->name, err);
    if (rc == LM_OK)
        lm_model_free(m);
    unlink(path);
    tset_free(&ts);
    free(ref.L);
}

static void synthetic(tu_gpu *g, uint64_t seed)
{
    /* name, arch, dim, layers, heads, kv heads, head_dim, ffn, n_rot, base, scaling, factor, yarn attn_factor,
     * context, original context, freqs, tied, bias, kv_f16, type */
    static const spec variants[] = {
        { "llama-gqa", "llama", 64, 2, 4, 2, 16, 96, 0, 10000, NULL, 1, 0, 2048, 0,
          false, false, false, true, LM_GGML_F32, false },
        { "qwen2-bias-neox", "qwen2", 64, 2, 4, 2, 16, 80, 0, 1000000, NULL, 1, 0, 4096, 0,
          false, true, false, false, LM_GGML_F32, false },
        { "llama-rot-8-of-16", "llama", 64, 2, 4, 4, 16, 64, 8, 100, NULL, 1, 0, 2048, 0,
          false, false, false, false, LM_GGML_F32, false },
        { "qwen2-rot-8-of-32", "qwen2", 64, 1, 2, 1, 32, 64, 8, 10000, NULL, 1, 0, 2048, 0,
          false, false, false, false, LM_GGML_F32, false },
        { "llama-bias", "llama", 64, 1, 4, 2, 16, 64, 0, 10000, NULL, 1, 0, 2048, 0,
          false, false, true, false, LM_GGML_F32, false },
        { "llama-odd-48x3-37", "llama", 48, 2, 3, 3, 16, 37, 0, 10000, NULL, 1, 0, 2048, 0,
          false, true, false, false, LM_GGML_F32, false },
        { "llama-keylen", "llama", 48, 1, 4, 2, 16, 40, 0, 10000, NULL, 1, 0, 2048, 0,
          false, false, false, false, LM_GGML_F32, false },
        { "llama-linear", "llama", 64, 2, 4, 2, 16, 64, 0, 10000, "linear", 4, 0, 8192, 0,
          false, false, false, false, LM_GGML_F32, false },
        { "llama-scale-linear", "llama", 64, 1, 4, 2, 16, 64, 0, 10000, "scale_linear", 2, 0, 4096, 0,
          false, false, false, false, LM_GGML_F32, false },
        { "llama-factor-only", "llama", 64, 1, 4, 2, 16, 64, 0, 10000, "factor-only", 8, 0, 4096, 0,
          false, false, false, false, LM_GGML_F32, false },
        { "llama-yarn", "llama", 64, 2, 4, 2, 16, 64, 0, 10000, "yarn", 4, 0, 16384, 4096,
          false, false, false, false, LM_GGML_F32, false },
        { "qwen2-yarn", "qwen2", 64, 1, 4, 2, 16, 64, 0, 1000000, "yarn", 8, 0.75f, 32768, 4096,
          false, true, false, false, LM_GGML_F32, false },
        { "llama-rope-freqs", "llama", 64, 2, 4, 2, 16, 64, 0, 500000, NULL, 1, 0, 8192, 0,
          true, false, false, false, LM_GGML_F32, false },
        { "llama-f16", "llama", 64, 2, 4, 2, 16, 72, 0, 10000, NULL, 1, 0, 2048, 0,
          false, false, false, true, LM_GGML_F16, false },
        { "llama-bf16-tied", "llama", 64, 2, 4, 2, 16, 72, 0, 10000, NULL, 1, 0, 2048, 0,
          false, true, false, false, LM_GGML_BF16, false },
        { "qwen2-f16-odd", "qwen2", 48, 1, 3, 1, 16, 37, 0, 10000, NULL, 1, 0, 2048, 0,
          false, false, false, false, LM_GGML_F16, false },
        { "llama-f16-v-f32", "llama", 64, 2, 4, 2, 16, 72, 0, 10000, NULL, 1, 0, 2048, 0,
          false, false, false, true, LM_GGML_F16, true },
        { "qwen2-f16-v-f32", "qwen2", 64, 1, 4, 2, 16, 64, 0, 10000, NULL, 1, 0, 2048, 0,
          false, false, false, false, LM_GGML_F16, true },
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        variant(g, &variants[i], seed + i);

    /* name, the variant spoilt, how, status, what the message must say */
    struct { const char *name, *base; mutation mu; const char *scaling; int status; const char *says; } bad[] = {
        { "arch-gpt2", "llama-gqa", { .arch_key = "gpt2" }, NULL, LM_ERR_UNSUPPORTED, "'gpt2'" },
        { "missing-tensor", "llama-gqa", { .drop = "blk.1.ffn_up.weight" }, NULL, LM_ERR_FORMAT,
          "'blk.1.ffn_up.weight' is missing" },
        { "misshapen-tensor", "llama-gqa", { .misshape = "blk.0.attn_k.weight" }, NULL, LM_ERR_FORMAT,
          "'blk.0.attn_k.weight' has shape" },
        /* ffn 96: three Q8_1 blocks of 32 per row */
        { "q8_1-tensor", "llama-gqa", { .quant = "blk.1.ffn_down.weight" }, NULL, LM_ERR_UNSUPPORTED,
          "'blk.1.ffn_down.weight' has type Q8_1" },
        { "qwen2-no-bias", "qwen2-bias-neox", { .drop = "blk.0.attn_v.bias" }, NULL, LM_ERR_FORMAT,
          "'blk.0.attn_v.bias' is missing" },
        { "rope-freqs-shape", "llama-rope-freqs", { .misshape = "rope_freqs.weight" }, NULL, LM_ERR_FORMAT,
          "'rope_freqs.weight' has shape" },
        { "scaling-longrope", "llama-linear", { 0 }, "longrope", LM_ERR_UNSUPPORTED, "'longrope'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t v = 0;
        while (strcmp(variants[v].name, bad[i].base))
            v++;
        spec sp = variants[v];
        sp.name = bad[i].name;
        if (bad[i].scaling)
            sp.scaling = bad[i].scaling;
        refused(g, &sp, &bad[i].mu, bad[i].status, bad[i].says);
    }
}

/* ---------------------------------------------------------------- perplexity of stories260K */

static const char story[] =
    "Once upon a time, in a small village by the sea, there lived a girl named Mia. Every morning she walked to "
    "the harbor with her little brown dog, Pip. They watched the fishing boats come home with their nets full of "
    "silver fish. The old fisherman, Tom, always waved at them and smiled.\n"
    "One day, a big storm came. The wind howled and the rain fell hard on the roofs. Mia was scared, but her mother "
    "hugged her and said, \"Do not worry. Storms always pass.\" Mia held Pip close and listened to the thunder.\n"
    "When the sun came out again, Mia and Pip ran to the beach. The sand was covered with shells, sticks and pieces "
    "of rope. Near a big rock, Mia saw something move. It was a tiny turtle! It was stuck in a net and could not get "
    "to the water.\n"
    "\"Poor little turtle,\" said Mia. \"We will help you.\" She knelt down and pulled the net away very gently. Pip "
    "sat still and watched. The turtle blinked at Mia, then it crawled slowly toward the waves.\n"
    "Tom the fisherman walked over to see what was happening. \"You did a kind thing today,\" he told Mia. \"The sea "
    "will remember it.\" Mia felt warm and happy inside.\n"
    "After that day, Mia went to the beach every morning to look for animals that needed help. She found a crab with "
    "a broken claw, a bird with a wet wing, and a fish that was trapped in a small pool. She helped them all, and Pip "
    "helped too, in his own funny way.\n"
    "The people of the village started to call her the friend of the sea. Mia did not care about the name. She only "
    "cared that the animals were safe. And every night, before she went to sleep, she looked out of her window at "
    "the quiet water and smiled.\n";

/* F32 tensor `name` of g as doubles (malloc'd), or NULL with a failed check */
static double *tensor_f64(const lm_gguf *g, const char *name, int64_t ne0, int64_t ne1)
{
    int64_t i = lm_gguf_find_tensor(g, name);
    lm_gguf_tensor_info t;
    if (i < 0 || lm_gguf_tensor(g, i, &t) || t.type != LM_GGML_F32 || t.ne[0] != ne0 || t.ne[1] != ne1) {
        CHECK(0, "stories260K: tensor %s is missing or not F32 [%lld, %lld]", name, (long long)ne0, (long long)ne1);
        return NULL;
    }
    double *v = malloc(sizeof *v * (size_t)t.n_elements);
    for (int64_t j = 0; j < t.n_elements; j++) {
        float f;
        memcpy(&f, (const char *)t.data + j * 4, 4);
        v[j] = f;
    }
    return v;
}

static uint32_t meta_u32(const lm_gguf *g, const char *key, uint32_t def)
{
    uint32_t v = def;
    lm_gguf_get_u32(g, key, &v);
    return v;
}

/* The reference model of a llama GGUF with F32 tensors; the arrays go to owned[] (freed by the caller). */
static bool ref_from_gguf(const lm_gguf *g, rmodel *m, double **owned, int *n_owned)
{
    memset(m, 0, sizeof *m);
    float eps = 1e-5f, base = 10000.0f;
    lm_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps);
    lm_gguf_get_f32(g, "llama.rope.freq_base", &base);
    m->dim = (int)meta_u32(g, "llama.embedding_length", 0);
    m->n_layers = (int)meta_u32(g, "llama.block_count", 0);
    m->n_heads = (int)meta_u32(g, "llama.attention.head_count", 1);
    m->n_kv = (int)meta_u32(g, "llama.attention.head_count_kv", (uint32_t)m->n_heads);
    m->ffn = (int)meta_u32(g, "llama.feed_forward_length", 0);
    m->hd = m->dim / m->n_heads;
    m->n_rot = (int)meta_u32(g, "llama.rope.dimension_count", (uint32_t)m->hd);
    m->eps = eps;
    m->base = base;
    int et;
    uint64_t nv = 0;
    const void *data;
    lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &nv, &data);
    m->n_vocab = (int)nv;
    int64_t dim = m->dim, qd = (int64_t)m->n_heads * m->hd, kvd = (int64_t)m->n_kv * m->hd;
    int n = 0;
#define T(dst, name, ne0, ne1) (dst) = owned[n++] = tensor_f64(g, name, ne0, ne1)
    T(m->embd, "token_embd.weight", dim, nv);
    T(m->out_norm, "output_norm.weight", dim, 1);
    if (lm_gguf_find_tensor(g, "output.weight") >= 0)
        T(m->output, "output.weight", dim, nv);
    else
        m->output = m->embd;
    m->L = calloc((size_t)m->n_layers, sizeof *m->L);
    for (int l = 0; l < m->n_layers; l++) {
        rlayer *L = &m->L[l];
        char name[64];
#define TL(field, suffix, ne0, ne1) \
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix), T(L->field, name, ne0, ne1)
        TL(attn_norm, "attn_norm.weight", dim, 1);
        TL(wq, "attn_q.weight", dim, qd);
        TL(wk, "attn_k.weight", dim, kvd);
        TL(wv, "attn_v.weight", dim, kvd);
        TL(wo, "attn_output.weight", qd, dim);
        TL(ffn_norm, "ffn_norm.weight", dim, 1);
        TL(gate, "ffn_gate.weight", dim, m->ffn);
        TL(up, "ffn_up.weight", dim, m->ffn);
        TL(down, "ffn_down.weight", m->ffn, dim);
#undef TL
    }
#undef T
    *n_owned = n;
    for (int i = 0; i < n; i++)
        if (!owned[i])
            return false;
    return m->n_layers > 0 && m->dim > 0 && m->n_vocab > 0;
}

static double log_softmax_at(const double *row, int n, int tok)
{
    double mx = row[0], sum = 0;
    for (int i = 1; i < n; i++)
        mx = fmax(mx, row[i]);
    for (int i = 0; i < n; i++)
        sum += exp(row[i] - mx);
    return row[tok] - mx - log(sum);
}

static void perplexity(tu_gpu *g)
{
    enum { C = 64 };
    char path[4096], text_path[256], err_path[256], err[512];
    snprintf(path, sizeof path, "%s", tu_model_path("gguf/stories260K.gguf"));
    lm_gguf *gg;
    int rc = lm_gguf_open(path, &gg, err, sizeof err);
    CHECK(rc == LM_OK, "open %s: %s", path, err);
    if (rc)
        return;
    lm_vocab *v = NULL;
    rmodel ref;
    double *owned[128] = { 0 };
    int n_owned = 0;
    bool ok = ref_from_gguf(gg, &ref, owned, &n_owned);
    CHECK(ok, "stories260K: cannot build the reference model");
    rc = lm_vocab_from_gguf(gg, &v, err, sizeof err);
    CHECK(rc == LM_OK, "stories260K vocab: %s", err);
    int32_t *toks = NULL;
    int64_t n_tok = 0;
    if (!ok || rc)
        goto out;
    rc = lm_tokenize(v, story, strlen(story), true, false, &toks, &n_tok, err, sizeof err);
    CHECK(rc == LM_OK && n_tok >= 2 * C, "tokenize: %s (%lld tokens)", err, (long long)n_tok);
    if (rc || n_tok < 2 * C)
        goto out;
    CHECK(toks[0] == lm_vocab_bos(v), "the text does not start with BOS");

    /* the reference: chunks of C tokens, BOS first, the second half scored */
    int64_t n_chunks = n_tok / C;
    double *lg = malloc(sizeof *lg * C * ref.n_vocab), nll = 0;
    int64_t count = 0;
    int32_t chunk[C];
    double *chunk0 = malloc(sizeof *chunk0 * C * ref.n_vocab);
    for (int64_t c = 0; c < n_chunks; c++) {
        memcpy(chunk, toks + c * C, sizeof chunk);
        chunk[0] = lm_vocab_bos(v);
        ref_forward(&ref, chunk, C, lg);
        if (c == 0)
            memcpy(chunk0, lg, sizeof *lg * C * ref.n_vocab);
        for (int j = C / 2; j < C - 1; j++, count++)
            nll -= log_softmax_at(lg + (size_t)j * ref.n_vocab, ref.n_vocab, chunk[j + 1]);
    }
    double ppl = exp(nll / count);
    free(lg);

    /* the library's logits of the first chunk against the reference */
    lm_model *m = NULL;
    rc = lm_model_load(g->ctx, path, NULL, &m, err, sizeof err);
    CHECK(rc == LM_OK, "load %s: %s", path, err);
    if (m) {
        lm_session *s = NULL;
        lm_session_opts so = { .n_ctx = C, .kv_f32 = true };
        float *got = malloc(sizeof *got * C * ref.n_vocab);
        memcpy(chunk, toks, sizeof chunk);
        chunk[0] = lm_vocab_bos(v);
        double worst = 0;
        if (lm_session_create(m, &so, &s, err, sizeof err) == LM_OK &&
            lm_session_eval(s, chunk, C, got, true, err, sizeof err) == LM_OK)
            compare_rows("stories260K", "first chunk", got, chunk0, C, ref.n_vocab, ARCH_TOL, &worst);
        else
            CHECK(0, "stories260K: %s", err);
        printf("%-18s max logits nmse %.3g (first chunk of %d tokens)\n", "stories260K", worst, C);
        lm_session_free(s);
        lm_model_free(m);
        free(got);
    }
    free(chunk0);

    /* vkllm perplexity on the same text */
    snprintf(text_path, sizeof text_path, "/tmp/vkllm-test-arch-%d-story.txt", (int)getpid());
    snprintf(err_path, sizeof err_path, "/tmp/vkllm-test-arch-%d-stderr.txt", (int)getpid());
    FILE *f = fopen(text_path, "wb");
    CHECK(f && fwrite(story, 1, strlen(story), f) == strlen(story) && fclose(f) == 0, "cannot write %s", text_path);
    const char *bin = getenv("VKLLM_BIN");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' perplexity %s -m '%s' -f '%s' -c %d 2>'%s'", bin ? bin : "build/vkllm", tu_validation_flag(), path,
             text_path, C, err_path);
    FILE *p = popen(cmd, "r");
    char out[1 << 14];
    size_t n = 0, r;
    if (p) {
        while (n < sizeof out - 1 && (r = fread(out + n, 1, sizeof out - 1 - n, p)) > 0)
            n += r;
    }
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    char *errs = tu_read_file(err_path, NULL);
    CHECK(p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "`%s` failed; stderr:\n%s", cmd, errs ? errs : "");
    CHECK(errs && !strstr(errs, "validation:"), "validation messages from vkllm perplexity:\n%s", errs ? errs : "");
    char *last = NULL;
    for (char *q = strstr(out, "PPL = "); q; q = strstr(q + 1, "PPL = "))
        last = q;
    double cli = last ? strtod(last + 6, NULL) : NAN;
    double rel = fabs(cli - ppl) / ppl;
    printf("perplexity: %lld tokens, %lld chunks of %d: reference PPL = %.6f, vkllm perplexity PPL = %.4f (rel. error "
           "%.2g)\n", (long long)n_tok, (long long)n_chunks, C, ppl, cli, rel);
    CHECK(last && rel < 1e-3, "vkllm perplexity printed PPL %.4f, the reference gives %.6f; stdout:\n%s", cli, ppl, out);
    free(errs);
    unlink(text_path);
    unlink(err_path);
out:
    free(toks);
    lm_vocab_free(v);
    for (int i = 0; i < n_owned; i++)
        free(owned[i]);
    free(ref.L);
    lm_gguf_close(gg);
}

int main(void)
{
    uint64_t seed = tu_seed("test_arch");
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_arch");
    synthetic(&g, seed);
    perplexity(&g);
    tu_gpu_close(&g);
    return tu_finish("test_arch");
}
