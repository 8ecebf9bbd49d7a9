/* test_families.c: the architecture families beyond llama (qwen3, gemma2, gemma3, phi3, and llama with a
 * sliding window) against a plain-C reference forward pass in double precision.
 *
 * Each variant is a synthetic GGUF written by the project's own writer (lm_gguf_writer) with the
 * metadata keys and tensor names llama.cpp reads, seeded random weights (matrices ~N(0, 0.05), norms
 * ~1 + N(0, 0.1)). The reference is written from the families' published definitions, not from
 * vkllm's code: neox RoPE, per-head Q/K RMSNorm before RoPE, Gemma's embedding scale, post-norms,
 * GELU-gated feed-forward, attention and final soft-capping, sliding-window layers by pattern with
 * their own RoPE base, Phi-3's fused QKV and gate-up matrices and its long/short RoPE factors with
 * rope.scaling.attn_factor. The soft caps and windows are small (a window of 3 of 12 tokens, caps
 * near the scores' size) so that a kernel ignoring them fails. Every position's logits are compared by
 * nmse: one prefill pass, passes of 5 rows, and token by token. Tolerance 1e-8 for F32, F16 and Q8_0
 * matrices (the reference uses the values as the file holds them, decoded; ~1e-13 seen), 1e-5 with an
 * f16 KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm.h"
#include "util.h"

#define N_TOK 12

/* ---------------------------------------------------------------- variants */

typedef struct fam_opts {
    float base_swa;           /* rope.freq_base_swa (0: not written) */
    int window, pattern;      /* attention.sliding_window, .sliding_window_pattern (0: not written) */
    float attn_cap, final_cap;/* gemma's soft caps (0: not written, the defaults) */
    float linear;             /* rope.scaling linear factor (0: none) */
    int n_ctx_orig;           /* rope.scaling.original_context_length (0: not written) */
    float attn_factor;        /* rope.scaling.attn_factor (0: not written) */
    bool factors;             /* phi3: rope_factors_long / _short */
    bool split_qkv;           /* phi3 with attn_q/k/v apart instead of attn_qkv */
    int n_expert, n_used, effn; /* mixture of experts (effn: qwen3moe's expert_feed_forward_length, 0: not written) */
    bool tie;                 /* router rows 1 and 2 equal: their logits tie, the lower index must win */
} fam_opts;

typedef struct fam {
    const char *name, *arch;
    int dim, n_layers, n_heads, n_kv, hd, ffn;
    int wtype;                /* F32, F16 or Q8_0 matrices */
    float base;               /* rope.freq_base */
    fam_opts o;
} fam;

/* name, arch, dim, layers, heads, kv heads, head_dim, ffn, matrix type, RoPE base; then what differs */
static const fam variants[] = {
    { "qwen3", "qwen3", 64, 2, 4, 2, 16, 96, LM_GGML_F32, 1000000, { .linear = 0 } },
    { "qwen3-q8_0", "qwen3", 64, 2, 4, 1, 32, 64, LM_GGML_Q8_0, 10000, { .linear = 0 } },
    { "gemma2", "gemma2", 64, 3, 4, 2, 16, 96, LM_GGML_F32, 10000,
      { .base_swa = 100, .window = 3, .attn_cap = 0.3f, .final_cap = 2.0f } },
    { "gemma2-q8_0", "gemma2", 64, 2, 4, 2, 16, 64, LM_GGML_Q8_0, 10000,
      { .window = 5, .attn_cap = 0.5f, .final_cap = 3.0f } },
    { "gemma2-defaults", "gemma2", 64, 2, 2, 1, 32, 64, LM_GGML_F16, 10000, { .linear = 0 } },
    { "gemma3", "gemma3", 64, 3, 4, 2, 16, 96, LM_GGML_F32, 1000000,
      { .base_swa = 500, .window = 3, .pattern = 2, .final_cap = 1.5f, .linear = 4 } },
    { "gemma3-global", "gemma3", 64, 2, 4, 4, 16, 64, LM_GGML_Q8_0, 10000, { .linear = 0 } },
    { "gemma3-pattern6", "gemma3", 64, 2, 2, 2, 32, 64, LM_GGML_F32, 10000,
      { .window = 4 } },
    { "phi3-long", "phi3", 64, 2, 4, 4, 16, 64, LM_GGML_F32, 10000,
      { .n_ctx_orig = 16, .attn_factor = 1.19f, .factors = true } },
    { "phi3-short", "phi3", 64, 2, 4, 2, 16, 64, LM_GGML_F32, 10000,
      { .n_ctx_orig = 4096, .attn_factor = 1.19f, .factors = true, .split_qkv = true } },
    { "phi3-q8_0", "phi3", 64, 1, 4, 4, 16, 64, LM_GGML_Q8_0, 10000, { .linear = 0 } },
    { "llama-swa", "llama", 64, 2, 4, 2, 16, 64, LM_GGML_F32, 10000,
      { .window = 4 } },
    { "mixtral", "llama", 64, 2, 4, 2, 16, 48, LM_GGML_F32, 10000,
      { .n_expert = 4, .n_used = 2, .tie = true } },
    { "mixtral-q8_0", "llama", 64, 1, 4, 2, 16, 64, LM_GGML_Q8_0, 10000,
      { .n_expert = 8, .n_used = 2 } },
    { "qwen3moe", "qwen3moe", 64, 2, 4, 2, 16, 96, LM_GGML_F32, 10000,
      { .n_expert = 6, .n_used = 3, .effn = 32, .tie = true } },
    { "qwen3moe-top1", "qwen3moe", 64, 1, 4, 2, 16, 64, LM_GGML_F16, 10000,
      { .n_expert = 3, .n_used = 1 } },
};


#define N_CTX 32 /* the sessions' context (256 as llama.cpp rounds it): phi3-long's original context (16) is
                  * shorter, phi3-short's longer */

/* ---------------------------------------------------------------- the reference */

typedef struct rlayer {
    double *attn_norm, *wq, *wk, *wv, *wo, *q_norm, *k_norm, *post_attn, *ffn_norm, *gate, *up, *down, *post_ffw;
    double *router, *gate_exps, *up_exps, *down_exps; /* experts: n_expert matrices one after another */
} rlayer;

typedef struct rmodel {
    int n_vocab, dim, n_layers, n_heads, n_kv, hd, ffn;
    int n_expert, n_used, effn;
    bool neox, qk_norm, post_norms, gelu;
    double eps, base, base_swa, embd_scale, attn_scale, attn_cap, final_cap, freq_scale, mscale;
    int window, pattern;
    bool local_unscaled;      /* gemma3: sliding layers keep freq_scale 1 */
    double *embd, *out_norm, *output, *factors; /* factors: the ones this context uses, or NULL */
    rlayer *L;
} rmodel;

static bool slides(const rmodel *m, int l)
{
    if (m->window <= 0 || m->pattern <= 0)
        return false;
    return m->pattern == 1 || l % m->pattern < m->pattern - 1;
}

static void rope(const rmodel *m, double *v, int n_heads, int pos, double base, double freq_scale)
{
    int half = m->hd / 2;
    for (int i = 0; i < half; i++) {
        double theta = pos * pow(base, -2.0 * i / m->hd) * freq_scale;
        if (m->factors)
            theta /= m->factors[i];
        double c = cos(theta) * m->mscale, s = sin(theta) * m->mscale;
        for (int h = 0; h < n_heads; h++) {
            double *x = v + (size_t)h * m->hd;
            int i0 = m->neox ? i : 2 * i, i1 = m->neox ? i + half : 2 * i + 1;
            double a = x[i0], b = x[i1];
            x[i0] = a * c - b * s;
            x[i1] = a * s + b * c;
        }
    }
}

static double gelu(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

/* o = sum over the n_used experts of largest router logit (ties: the lower index) of their softmax weight,
 * renormalised over the chosen, times the expert's SwiGLU feed-forward of xb */
static void ref_moe(const rmodel *m, const rlayer *L, const double *xb, double *o)
{
    double logit[16], p[16], sum = 0, mx = -INFINITY, h1[128], h2[128], y[128];
    bool taken[16] = { false };
    tu_matvec(logit, L->router, xb, NULL, m->n_expert, m->dim);
    for (int e = 0; e < m->n_expert; e++)
        mx = fmax(mx, logit[e]);
    for (int e = 0; e < m->n_expert; e++)
        sum += p[e] = exp(logit[e] - mx);
    int sel[16];
    double wsum = 0;
    for (int s = 0; s < m->n_used; s++) {
        int best = -1;
        for (int e = 0; e < m->n_expert; e++)
            if (!taken[e] && (best < 0 || logit[e] > logit[best]))
                best = e;
        taken[best] = true;
        sel[s] = best;
        wsum += p[best] / sum;
    }
    memset(o, 0, sizeof *o * (size_t)m->dim);
    for (int s = 0; s < m->n_used; s++) {
        int e = sel[s];
        size_t up = (size_t)e * m->effn * m->dim, down = (size_t)e * m->dim * m->effn;
        tu_matvec(h1, L->gate_exps + up, xb, NULL, m->effn, m->dim);
        tu_matvec(h2, L->up_exps + up, xb, NULL, m->effn, m->dim);
        for (int i = 0; i < m->effn; i++)
            h1[i] = h1[i] / (1 + exp(-h1[i])) * h2[i];
        tu_matvec(y, L->down_exps + down, h1, NULL, m->dim, m->effn);
        for (int i = 0; i < m->dim; i++)
            o[i] += p[e] / sum / wsum * y[i];
    }
}

static void ref_forward(const rmodel *m, const int32_t *ids, int n, double *logits)
{
    int dim = m->dim, hd = m->hd, qd = m->n_heads * hd, kvd = m->n_kv * hd, group = m->n_heads / m->n_kv;
    int big = dim > qd ? dim : qd;
    double *x = malloc(sizeof *x * (size_t)n * dim), *xb = malloc(sizeof *xb * big), *q = malloc(sizeof *q * qd),
           *k = malloc(sizeof *k * (size_t)n * kvd), *v = malloc(sizeof *v * (size_t)n * kvd),
           *att = malloc(sizeof *att * qd), *o = malloc(sizeof *o * dim), *o2 = malloc(sizeof *o2 * dim),
           *h1 = malloc(sizeof *h1 * m->ffn), *h2 = malloc(sizeof *h2 * m->ffn), *sc = malloc(sizeof *sc * n);
    for (int p = 0; p < n; p++)
        for (int i = 0; i < dim; i++)
            x[(size_t)p * dim + i] = m->embd[(size_t)ids[p] * dim + i] * m->embd_scale;
    for (int l = 0; l < m->n_layers; l++) {
        const rlayer *L = &m->L[l];
        bool sw = slides(m, l);
        double base = sw ? m->base_swa : m->base, fs = sw && m->local_unscaled ? 1 : m->freq_scale;
        for (int p = 0; p < n; p++) {
            double *xp = x + (size_t)p * dim, *kp = k + (size_t)p * kvd, *vp = v + (size_t)p * kvd;
            tu_rmsnorm(xb, xp, L->attn_norm, dim, m->eps);
            tu_matvec(q, L->wq, xb, NULL, qd, dim);
            tu_matvec(kp, L->wk, xb, NULL, kvd, dim);
            tu_matvec(vp, L->wv, xb, NULL, kvd, dim);
            if (m->qk_norm) {
                for (int h = 0; h < m->n_heads; h++)
                    tu_rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, m->eps);
                for (int h = 0; h < m->n_kv; h++)
                    tu_rmsnorm(kp + h * hd, kp + h * hd, L->k_norm, hd, m->eps);
            }
            rope(m, q, m->n_heads, p, base, fs);
            rope(m, kp, m->n_kv, p, base, fs);
            int t0 = sw && p - m->window + 1 > 0 ? p - m->window + 1 : 0;
            for (int h = 0; h < m->n_heads; h++) {
                const double *qh = q + (size_t)h * hd;
                int g = h / group;
                double mx = -INFINITY, sum = 0;
                for (int t = t0; t <= p; t++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += qh[d] * k[(size_t)t * kvd + (size_t)g * hd + d];
                    s *= m->attn_scale;
                    if (m->attn_cap > 0)
                        s = m->attn_cap * tanh(s / m->attn_cap);
                    sc[t] = s;
                    mx = fmax(mx, s);
                }
                for (int t = t0; t <= p; t++)
                    sum += sc[t] = exp(sc[t] - mx);
                for (int d = 0; d < hd; d++) {
                    double a = 0;
                    for (int t = t0; t <= p; t++)
                        a += sc[t] * v[(size_t)t * kvd + (size_t)g * hd + d];
                    att[h * hd + d] = a / sum;
                }
            }
            tu_matvec(o, L->wo, att, NULL, dim, qd);
            if (m->post_norms)
                tu_rmsnorm(o, memcpy(o2, o, sizeof *o * dim), L->post_attn, dim, m->eps);
            for (int i = 0; i < dim; i++)
                xp[i] += o[i];
            tu_rmsnorm(xb, xp, L->ffn_norm, dim, m->eps);
            if (m->n_expert)
                ref_moe(m, L, xb, o);
            else {
                tu_matvec(h1, L->gate, xb, NULL, m->ffn, dim);
                tu_matvec(h2, L->up, xb, NULL, m->ffn, dim);
                for (int i = 0; i < m->ffn; i++)
                    h1[i] = (m->gelu ? gelu(h1[i]) : h1[i] / (1 + exp(-h1[i]))) * h2[i];
                tu_matvec(o, L->down, h1, NULL, dim, m->ffn);
            }
            if (m->post_norms)
                tu_rmsnorm(o, memcpy(o2, o, sizeof *o * dim), L->post_ffw, dim, m->eps);
            for (int i = 0; i < dim; i++)
                xp[i] += o[i];
        }
    }
    for (int p = 0; p < n; p++) {
        double *row = logits + (size_t)p * m->n_vocab;
        tu_rmsnorm(xb, x + (size_t)p * dim, m->out_norm, dim, m->eps);
        tu_matvec(row, m->output, xb, NULL, m->n_vocab, dim);
        if (m->final_cap > 0)
            for (int i = 0; i < m->n_vocab; i++)
                row[i] = m->final_cap * tanh(row[i] / m->final_cap);
    }
    free(x), free(xb), free(q), free(k), free(v), free(att), free(o), free(o2), free(h1), free(h2), free(sc);
}

/* ---------------------------------------------------------------- writing the file */

#define SP "\xe2\x96\x81"
static const char *const words[] = { SP "the", SP "cat", SP "sat", SP "on", SP "a", SP "mat", SP "dog", SP "ran" };
#define N_WORDS (int)(sizeof words / sizeof words[0])
#define N_VOCAB (3 + 256 + N_WORDS)

typedef struct writer {
    lm_gguf_writer *w;
    tu_rng r;
    bool ok;
    bool tie;                 /* the next tensor's row 2 a copy of its row 1 */
    double *owned[512];
    int n_owned;
} writer;

enum { G_MAT, G_NORM, G_FACTOR };

/* A tensor of ne0 x ne1 random values in `type` (F32 for vectors) written to the file; returns the
 * values as the file holds them, in double. */
/* (phi3's attn_qkv and ffn_up are written as one tensor of both matrices' rows, the reference reading
 * the halves) */
static double *tensor3(writer *wr, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, int type, int kind)
{
    int64_t n = ne0 * ne1 * ne2;
    float *f = malloc(sizeof *f * (size_t)n);
    double *d = malloc(sizeof *d * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        f[i] = kind == G_NORM ? 1 + 0.1f * tu_normal(&wr->r) : kind == G_FACTOR ? tu_uniform(&wr->r, 1.0f, 6.0f)
                                                                              : 0.05f * tu_normal(&wr->r);
    if (wr->tie)
        memcpy(f + 2 * ne0, f + ne0, sizeof *f * (size_t)ne0);
    size_t size = lm_gguf_row_size(type, ne0) * (size_t)(ne1 * ne2);
    void *bytes = malloc(size);
    float *back = malloc(sizeof *back * (size_t)n);
    if (type == LM_GGML_F32)
        memcpy(bytes, f, size);
    else if (lm_quantize(type, f, bytes, n))
        wr->ok = false;
    if (lm_dequantize(type, bytes, back, n))
        wr->ok = false;
    for (int64_t i = 0; i < n; i++)
        d[i] = back[i];
    int64_t ne[3] = { ne0, ne1, ne2 };
    if (lm_gguf_writer_add_tensor(wr->w, name, ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1, ne, type, bytes, size))
        wr->ok = false;
    free(f), free(bytes), free(back);
    wr->owned[wr->n_owned++] = d;
    return d;
}

static double *tensor(writer *wr, const char *name, int64_t ne0, int64_t ne1, int type, int kind)
{
    return tensor3(wr, name, ne0, ne1, 1, type, kind);
}

static void write_vocab(lm_gguf_writer *w)
{
    const char *tok[N_VOCAB];
    char bytes[256][8];
    float scores[N_VOCAB];
    int32_t types[N_VOCAB];
    tok[0] = "<unk>", tok[1] = "<s>", tok[2] = "</s>";
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        tok[3 + i] = bytes[i];
    }
    for (int i = 0; i < N_WORDS; i++)
        tok[259 + i] = words[i];
    for (int i = 0; i < N_VOCAB; i++) {
        scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
        types[i] = i == 0 ? LM_TOKEN_UNKNOWN : i < 3 ? LM_TOKEN_CONTROL : i < 259 ? LM_TOKEN_BYTE : LM_TOKEN_NORMAL;
    }
    lm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    lm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", N_VOCAB, tok, NULL);
    lm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", LM_GGUF_F32, N_VOCAB, scores);
    lm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", LM_GGUF_I32, N_VOCAB, types);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
}

/* Writes variant v at path and builds its reference (weights owned by wr). */
static bool write_variant(const fam *v, uint64_t seed, const char *path, writer *wr, rmodel *m)
{
    char err[256], k[128];
    memset(wr, 0, sizeof *wr);
    wr->r.s = seed;
    wr->ok = true;
    if (lm_gguf_writer_create(path, &wr->w, err, sizeof err))
        return false;
    lm_gguf_writer *w = wr->w;
    const char *a = v->arch;
    bool gemma = !strncmp(a, "gemma", 5), gemma2 = !strcmp(a, "gemma2"), phi3 = !strcmp(a, "phi3");
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    lm_gguf_writer_set_str(w, "general.architecture", a);
    lm_gguf_writer_set_str(w, "general.name", v->name);
    lm_gguf_writer_set_u32(w, KEY("context_length"), 8192);
    lm_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)v->dim);
    lm_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)v->n_layers);
    lm_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)v->ffn);
    lm_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)v->n_heads);
    lm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)v->n_kv);
    lm_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)v->hd);
    lm_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)v->hd);
    lm_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)v->hd);
    lm_gguf_writer_set_f32(w, KEY("rope.freq_base"), v->base);
    lm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (v->o.base_swa)
        lm_gguf_writer_set_f32(w, KEY("rope.freq_base_swa"), v->o.base_swa);
    if (v->o.window)
        lm_gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)v->o.window);
    if (v->o.pattern)
        lm_gguf_writer_set_u32(w, KEY("attention.sliding_window_pattern"), (uint32_t)v->o.pattern);
    if (v->o.attn_cap)
        lm_gguf_writer_set_f32(w, KEY("attn_logit_softcapping"), v->o.attn_cap);
    if (v->o.final_cap)
        lm_gguf_writer_set_f32(w, KEY("final_logit_softcapping"), v->o.final_cap);
    if (v->o.linear) {
        lm_gguf_writer_set_str(w, KEY("rope.scaling.type"), "linear");
        lm_gguf_writer_set_f32(w, KEY("rope.scaling.factor"), v->o.linear);
    }
    if (v->o.n_ctx_orig)
        lm_gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)v->o.n_ctx_orig);
    if (v->o.attn_factor)
        lm_gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), v->o.attn_factor);
    if (v->o.n_expert) {
        lm_gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)v->o.n_expert);
        lm_gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)v->o.n_used);
    }
    if (v->o.effn)
        lm_gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)v->o.effn);
#undef KEY
    write_vocab(w);

    memset(m, 0, sizeof *m);
    *m = (rmodel){ .n_vocab = N_VOCAB, .dim = v->dim, .n_layers = v->n_layers, .n_heads = v->n_heads, .n_kv = v->n_kv,
                   .hd = v->hd, .ffn = v->ffn, .neox = strcmp(a, "llama") != 0, .n_expert = v->o.n_expert,
                   .n_used = v->o.n_used,
                   .effn = v->o.effn                 ? v->o.effn
                           : !strcmp(a, "qwen3moe") ? v->ffn / (v->o.n_used ? v->o.n_used : 1)
                                                    : v->ffn,
                   .qk_norm = !strncmp(a, "qwen3", 5) || !strcmp(a, "gemma3"), .post_norms = gemma, .gelu = gemma,
                   .eps = (double)1e-6f, .base = v->base, .embd_scale = gemma ? (double)sqrtf((float)v->dim) : 1,
                   .attn_scale = 1 / sqrt((double)v->hd), .freq_scale = v->o.linear ? 1 / (double)v->o.linear : 1,
                   .mscale = v->o.attn_factor ? (double)v->o.attn_factor : 1, .local_unscaled = !strcmp(a, "gemma3") };
    if (gemma2) {
        m->attn_cap = v->o.attn_cap ? v->o.attn_cap : 50;
        m->final_cap = v->o.final_cap ? v->o.final_cap : 30;
        m->window = v->o.window ? v->o.window : 4096;
        m->pattern = v->o.pattern ? v->o.pattern : 2;
        m->base_swa = v->o.base_swa ? v->o.base_swa : v->base;
    } else if (!strcmp(a, "gemma3")) {
        m->final_cap = v->o.final_cap;
        m->window = v->o.window;
        m->pattern = v->o.window ? (v->o.pattern ? v->o.pattern : 6) : 0;
        m->base_swa = v->o.base_swa ? v->o.base_swa : 10000;
    } else if (!strcmp(a, "llama")) {
        m->window = v->o.window;
        m->pattern = v->o.window ? 1 : 0;
        m->base_swa = v->base;
    }
    int64_t dim = v->dim, qd = (int64_t)v->n_heads * v->hd, kvd = (int64_t)v->n_kv * v->hd;
    int wt = v->wtype;
    m->embd = tensor(wr, "token_embd.weight", dim, N_VOCAB, wt, G_MAT);
    m->out_norm = tensor(wr, "output_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
    m->output = gemma ? m->embd : tensor(wr, "output.weight", dim, N_VOCAB, wt, G_MAT);
    if (v->o.factors) {
        double *lng = tensor(wr, "rope_factors_long.weight", v->hd / 2, 1, LM_GGML_F32, G_FACTOR);
        double *sht = tensor(wr, "rope_factors_short.weight", v->hd / 2, 1, LM_GGML_F32, G_FACTOR);
        m->factors = (N_CTX + 255) / 256 * 256 > v->o.n_ctx_orig ? lng : sht; /* llama.cpp's rounding */
    }
    m->L = calloc((size_t)v->n_layers, sizeof *m->L);
    for (int l = 0; l < v->n_layers; l++) {
        rlayer *L = &m->L[l];
        char n[64];
#define T(field, suffix, ne0, ne1, type, kind) \
    (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), L->field = tensor(wr, n, ne0, ne1, type, kind))
        T(attn_norm, "attn_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
        if (phi3 && !v->o.split_qkv) {
            snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", l);
            L->wq = tensor(wr, n, dim, qd + 2 * kvd, wt, G_MAT);
            L->wk = L->wq + (size_t)qd * dim;
            L->wv = L->wk + (size_t)kvd * dim;
        } else {
            T(wq, "attn_q.weight", dim, qd, wt, G_MAT);
            T(wk, "attn_k.weight", dim, kvd, wt, G_MAT);
            T(wv, "attn_v.weight", dim, kvd, wt, G_MAT);
        }
        if (m->qk_norm) {
            T(q_norm, "attn_q_norm.weight", v->hd, 1, LM_GGML_F32, G_NORM);
            T(k_norm, "attn_k_norm.weight", v->hd, 1, LM_GGML_F32, G_NORM);
        }
        T(wo, "attn_output.weight", qd, dim, wt, G_MAT);
        if (gemma)
            T(post_attn, "post_attention_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
        T(ffn_norm, "ffn_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
        if (phi3) {
            snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l);
            L->gate = tensor(wr, n, dim, 2 * (int64_t)v->ffn, wt, G_MAT);
            L->up = L->gate + (size_t)v->ffn * dim;
        } else if (v->o.n_expert) {
            wr->tie = v->o.tie;
            T(router, "ffn_gate_inp.weight", dim, v->o.n_expert, LM_GGML_F32, G_MAT);
            wr->tie = false;
        } else {
            T(gate, "ffn_gate.weight", dim, v->ffn, wt, G_MAT);
            T(up, "ffn_up.weight", dim, v->ffn, wt, G_MAT);
        }
        if (v->o.n_expert) {
            snprintf(n, sizeof n, "blk.%d.ffn_gate_exps.weight", l);
            L->gate_exps = tensor3(wr, n, dim, m->effn, v->o.n_expert, wt, G_MAT);
            snprintf(n, sizeof n, "blk.%d.ffn_up_exps.weight", l);
            L->up_exps = tensor3(wr, n, dim, m->effn, v->o.n_expert, wt, G_MAT);
            snprintf(n, sizeof n, "blk.%d.ffn_down_exps.weight", l);
            L->down_exps = tensor3(wr, n, m->effn, dim, v->o.n_expert, wt, G_MAT);
        } else {
            T(down, "ffn_down.weight", v->ffn, dim, wt, G_MAT);
        }
        if (gemma)
            T(post_ffw, "post_ffw_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
#undef T
    }
    if (!wr->ok) {
        lm_gguf_writer_abort(w);
        return false;
    }
    return lm_gguf_writer_finish(w, err, sizeof err) == LM_OK;
}

static void free_variant(writer *wr, rmodel *m)
{
    for (int i = 0; i < wr->n_owned; i++)
        free(wr->owned[i]);
    free(m->L);
}

/* ---------------------------------------------------------------- the checks */

static void compare(const char *name, const char *how, const float *got, const double *want, int rows, double tol,
                    double *worst)
{
    for (int p = 0; p < rows; p++) {
        double e = tu_nmse(got + (size_t)p * N_VOCAB, want + (size_t)p * N_VOCAB, N_VOCAB);
        if (!(e <= *worst))
            *worst = e;
        CHECK(e < tol, "%s, %s: position %d: logits nmse %.3g > %.3g", name, how, p, e, tol);
    }
}

static void run_variant(tu_gpu *g, const fam *v, uint64_t seed)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "/tmp/vkllm-test-families-%d-%s.gguf", (int)getpid(), v->name);
    writer wr;
    rmodel ref;
    bool written = write_variant(v, seed, path, &wr, &ref);
    CHECK(written, "%s: cannot write %s", v->name, path);
    lm_model *m = NULL;
    int rc = written ? lm_model_load(g->ctx, path, NULL, &m, err, sizeof err) : LM_ERR_IO;
    CHECK(rc == LM_OK, "%s: load: %s: %s", v->name, lm_status_string(rc), err);
    if (rc) {
        unlink(path);
        free_variant(&wr, &ref);
        return;
    }
    double tol = 1e-8;
    int32_t ids[N_TOK];
    tu_rng r = { seed ^ 0x5EED };
    ids[0] = 1;
    for (int i = 1; i < N_TOK; i++)
        ids[i] = (int32_t)(tu_u32(&r) % N_VOCAB);
    double *want = malloc(sizeof *want * N_TOK * N_VOCAB);
    float *got = malloc(sizeof *got * N_TOK * N_VOCAB);
    ref_forward(&ref, ids, N_TOK, want);
    double worst = 0;
    lm_session *s = NULL;
    lm_session_opts so = { .n_ctx = N_CTX, .kv_f32 = true };
    if ((rc = lm_session_create(m, &so, &s, err, sizeof err)) == LM_OK) {
        CHECK(lm_session_eval(s, ids, N_TOK, got, true, err, sizeof err) == LM_OK, "%s: eval: %s", v->name, err);
        compare(v->name, "one pass", got, want, N_TOK, tol, &worst);
        lm_session_rewind(s, 0);
        for (int i = 0, next; i < N_TOK; i++)
            CHECK(lm_session_step(s, ids[i], got + (size_t)i * N_VOCAB, &next, err, sizeof err) == LM_OK,
                  "%s: step %d: %s", v->name, i, err);
        compare(v->name, "decode steps", got, want, N_TOK, tol, &worst);
        lm_session_free(s);
    }
    CHECK(rc == LM_OK, "%s: session: %s", v->name, err);
    so.n_batch = 5;
    if ((rc = lm_session_create(m, &so, &s, err, sizeof err)) == LM_OK) {
        CHECK(lm_session_eval(s, ids, 7, got, true, err, sizeof err) == LM_OK, "%s: eval 7: %s", v->name, err);
        CHECK(lm_session_eval(s, ids + 7, N_TOK - 7, got + 7 * N_VOCAB, true, err, sizeof err) == LM_OK,
              "%s: eval 5: %s", v->name, err);
        compare(v->name, "n_batch 5", got, want, N_TOK, tol, &worst);
        lm_session_free(s);
    }
    /* the default f16 cache, looser */
    lm_session_opts so16 = { .n_ctx = N_CTX, .n_batch = 4 };
    double worst16 = 0;
    if (lm_session_create(m, &so16, &s, err, sizeof err) == LM_OK) {
        CHECK(lm_session_eval(s, ids, N_TOK, got, true, err, sizeof err) == LM_OK, "%s: eval f16: %s", v->name, err);
        compare(v->name, "f16 KV cache", got, want, N_TOK, tol > 1e-5 ? tol : 1e-5, &worst16);
        lm_session_free(s);
    }
    printf("%-18s max logits nmse %.3g (f16 KV cache %.3g)\n", v->name, worst, worst16);
    free(want);
    free(got);
    lm_model_free(m);
    unlink(path);
    free_variant(&wr, &ref);
}

/* An architecture vkllm does not run is refused by name, with the list of those it does. */
static void refused(tu_gpu *g)
{
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "/tmp/vkllm-test-families-%d-gptj.gguf", (int)getpid());
    fam v = variants[0];
    v.arch = "gptj";
    writer wr;
    rmodel ref;
    CHECK(write_variant(&v, 1, path, &wr, &ref), "cannot write %s", path);
    lm_model *m = NULL;
    int rc = lm_model_load(g->ctx, path, NULL, &m, err, sizeof err);
    CHECK(rc == LM_ERR_UNSUPPORTED && !m && strstr(err, "'gptj'") && strstr(err, "qwen3") && strstr(err, "gemma2"),
          "gptj: load returned %s, \"%s\"", lm_status_string(rc), err);
    CHECK(lm_arch_supported("phi3") && lm_arch_supported("gemma3") && !lm_arch_supported("gptj"),
          "lm_arch_supported is wrong");
    /* `info` says so beside the architecture, `run` refuses with the list */
    const char *bin = getenv("VKLLM_BIN");
    if (bin) {
        char cmd[800], out[8192];
        snprintf(cmd, sizeof cmd, "'%s' info -m '%s'", bin, path);
        int st = tu_run(cmd, out, sizeof out);
        CHECK(st == 0 &&
                  strstr(out, "architecture    gptj\nruns            no: architecture 'gptj' is not one vkllm runs ("),
              "info of a gptj file: status %d, output:\n%s", st, out);
        snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -p hi -n 1 2>&1", bin, path);
        st = tu_run(cmd, out, sizeof out);
        CHECK(st == 1 && strstr(out, "'gptj' is not supported (vkllm runs llama, qwen2"),
              "run of a gptj file: status %d, %s", st, out);
    }
    unlink(path);
    free_variant(&wr, &ref);
}

int main(void)
{
    uint64_t seed = tu_seed("test_families");
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_families");
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        run_variant(&g, &variants[i], seed + i);
    refused(&g);
    tu_gpu_close(&g);
    return tu_finish("test_families");
}
