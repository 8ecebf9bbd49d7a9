/* test_encoders.c: BERT-style encoders (bert, nomic-bert) and their embeddings against a plain-C
 * reference in double precision.
 *
 * Each variant is a synthetic GGUF written by lm_gguf_writer with the metadata and tensor names
 * llama.cpp reads, seeded random weights, and the real WordPiece vocabulary of
 * ../shared/models/tokenizer-vectors/ggml-vocab-bert-bge.gguf (its tokenizer keys copied). Texts of
 * unequal length are embedded in one call (several inputs per pass) and one at a time, and each vector
 * is compared with the reference's: bidirectional attention over the sequence, post-LayerNorms, GELU
 * (tanh form, as llama.cpp), absolute positions (bert) or neox RoPE with a fused QKV and SwiGLU
 * (nomic-bert), pooled by mean, CLS or last as pooling_type says, L2-normalised. Tolerance: cosine
 * similarity >= 1 - 1e-9 and nmse 1e-8 for F32 and F16 matrices (the reference uses the stored values);
 * the issue's own check against llama.cpp asks >= 0.9999. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm.h"
#include "util.h"

typedef struct enc {
    const char *name, *arch;
    int dim, n_layers, n_heads, ffn, wtype, pooling; /* pooling_type written (-1: none) */
} enc;

static const enc variants[] = {
    { "bert-mean", "bert", 64, 2, 4, 128, LM_GGML_F32, LM_POOL_MEAN },
    { "bert-cls-f16", "bert", 64, 2, 2, 96, LM_GGML_F16, LM_POOL_CLS },
    { "bert-last-q8_0", "bert", 64, 1, 4, 64, LM_GGML_Q8_0, LM_POOL_LAST },
    { "bert-no-pooling", "bert", 32, 1, 2, 64, LM_GGML_F32, -1 },
    { "nomic-bert", "nomic-bert", 64, 2, 4, 96, LM_GGML_F32, LM_POOL_MEAN },
};

static const char *const texts[] = {
    "Hello world!",
    "The quick brown fox jumps over the lazy dog, twice, while the dog sleeps.",
    "a",
    "Embeddings map text to vectors; similar texts get similar vectors.",
};
#define N_TEXTS (int)(sizeof texts / sizeof texts[0])
#define N_CTX 64

/* ---------------------------------------------------------------- the reference */

typedef struct rlayer {
    double *wq, *wk, *wv, *bq, *bk, *bv, *wo, *bo, *n1, *n1b, *up, *bup, *gate, *down, *bdown, *n2, *n2b;
} rlayer;

typedef struct rmodel {
    int dim, n_layers, n_heads, hd, ffn, pooling;
    bool nomic;
    double eps, base;
    double *embd, *types, *pos, *en, *enb;
    rlayer *L;
} rmodel;

static void layernorm(double *x, const double *w, const double *b, int n, double eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    double r = 1 / sqrt(var / n + eps);
    for (int i = 0; i < n; i++)
        x[i] = (x[i] - mean) * r * w[i] + b[i];
}

static double gelu(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

static void rope_neox(double *v, int n_heads, int hd, int pos, double base)
{
    for (int i = 0; i < hd / 2; i++) {
        double t = pos * pow(base, -2.0 * i / hd), c = cos(t), s = sin(t);
        for (int h = 0; h < n_heads; h++) {
            double *x = v + (size_t)h * hd, a = x[i], b = x[i + hd / 2];
            x[i] = a * c - b * s;
            x[i + hd / 2] = a * s + b * c;
        }
    }
}

/* The pooled, L2-normalised embedding of ids[0..n) into out[dim]. */
static void ref_embed(const rmodel *m, const int32_t *ids, int n, double *out)
{
    int dim = m->dim, hd = m->hd;
    double *x = calloc((size_t)n * dim, sizeof *x), *q = malloc(sizeof *q * (size_t)n * dim),
           *k = malloc(sizeof *k * (size_t)n * dim), *v = malloc(sizeof *v * (size_t)n * dim),
           *att = malloc(sizeof *att * dim), *o = malloc(sizeof *o * (size_t)n * dim),
           *h1 = malloc(sizeof *h1 * m->ffn), *h2 = malloc(sizeof *h2 * m->ffn), *sc = malloc(sizeof *sc * n);
    for (int p = 0; p < n; p++) {
        double *xp = x + (size_t)p * dim;
        for (int i = 0; i < dim; i++)
            xp[i] = m->embd[(size_t)ids[p] * dim + i] + m->types[i] + (m->pos ? m->pos[(size_t)p * dim + i] : 0);
        layernorm(xp, m->en, m->enb, dim, m->eps);
    }
    for (int l = 0; l < m->n_layers; l++) {
        const rlayer *L = &m->L[l];
        for (int p = 0; p < n; p++) {
            double *xp = x + (size_t)p * dim;
            tu_matvec(q + (size_t)p * dim, L->wq, xp, L->bq, dim, dim);
            tu_matvec(k + (size_t)p * dim, L->wk, xp, L->bk, dim, dim);
            tu_matvec(v + (size_t)p * dim, L->wv, xp, L->bv, dim, dim);
            if (m->nomic) {
                rope_neox(q + (size_t)p * dim, m->n_heads, hd, p, m->base);
                rope_neox(k + (size_t)p * dim, m->n_heads, hd, p, m->base);
            }
        }
        for (int p = 0; p < n; p++) { /* every row sees every row of its sequence */
            for (int h = 0; h < m->n_heads; h++) {
                double mx = -INFINITY, sum = 0;
                for (int t = 0; t < n; t++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += q[(size_t)p * dim + h * hd + d] * k[(size_t)t * dim + h * hd + d];
                    sc[t] = s / sqrt((double)hd);
                    mx = fmax(mx, sc[t]);
                }
                for (int t = 0; t < n; t++)
                    sum += sc[t] = exp(sc[t] - mx);
                for (int d = 0; d < hd; d++) {
                    double a = 0;
                    for (int t = 0; t < n; t++)
                        a += sc[t] * v[(size_t)t * dim + h * hd + d];
                    att[h * hd + d] = a / sum;
                }
            }
            tu_matvec(o + (size_t)p * dim, L->wo, att, L->bo, dim, dim);
        }
        for (int p = 0; p < n; p++) {
            double *xp = x + (size_t)p * dim, *op = o + (size_t)p * dim;
            for (int i = 0; i < dim; i++)
                xp[i] += op[i];
            layernorm(xp, L->n1, L->n1b, dim, m->eps);
            if (m->nomic) {
                tu_matvec(h1, L->gate, xp, NULL, m->ffn, dim);
                tu_matvec(h2, L->up, xp, NULL, m->ffn, dim);
                for (int i = 0; i < m->ffn; i++)
                    h1[i] = h1[i] / (1 + exp(-h1[i])) * h2[i];
            } else {
                tu_matvec(h1, L->up, xp, L->bup, m->ffn, dim);
                for (int i = 0; i < m->ffn; i++)
                    h1[i] = gelu(h1[i]);
            }
            tu_matvec(op, L->down, h1, L->bdown, dim, m->ffn);
            for (int i = 0; i < dim; i++)
                xp[i] += op[i];
            layernorm(xp, L->n2, L->n2b, dim, m->eps);
        }
    }
    int first = m->pooling == LM_POOL_LAST ? n - 1 : 0, count = m->pooling == LM_POOL_MEAN ? n : 1;
    double ss = 0;
    for (int i = 0; i < dim; i++) {
        double s = 0;
        for (int p = first; p < first + count; p++)
            s += x[(size_t)p * dim + i];
        out[i] = s / count;
        ss += out[i] * out[i];
    }
    for (int i = 0; i < dim; i++)
        out[i] /= sqrt(ss);
    free(x), free(q), free(k), free(v), free(att), free(o), free(h1), free(h2), free(sc);
}

/* ---------------------------------------------------------------- writing the file */

typedef struct writer {
    lm_gguf_writer *w;
    tu_rng r;
    bool ok;
    double *owned[256];
    int n_owned;
} writer;

enum { G_MAT, G_NORM, G_BIAS };

static double *tensor(writer *wr, const char *name, int64_t ne0, int64_t ne1, int type, int kind)
{
    int64_t n = ne0 * ne1;
    float *f = malloc(sizeof *f * (size_t)n), *back = malloc(sizeof *back * (size_t)n);
    double *d = malloc(sizeof *d * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        f[i] = kind == G_NORM ? 1 + 0.1f * tu_normal(&wr->r) : kind == G_BIAS ? 0.05f * tu_normal(&wr->r)
                                                                            : 0.08f * tu_normal(&wr->r);
    size_t size = lm_gguf_row_size(type, ne0) * (size_t)ne1;
    void *bytes = malloc(size);
    if (type == LM_GGML_F32)
        memcpy(bytes, f, size);
    else if (lm_quantize(type, f, bytes, n))
        wr->ok = false;
    if (lm_dequantize(type, bytes, back, n))
        wr->ok = false;
    for (int64_t i = 0; i < n; i++)
        d[i] = back[i];
    int64_t ne[2] = { ne0, ne1 };
    if (lm_gguf_writer_add_tensor(wr->w, name, ne1 > 1 ? 2 : 1, ne, type, bytes, size))
        wr->ok = false;
    free(f), free(back), free(bytes);
    wr->owned[wr->n_owned++] = d;
    return d;
}

static bool write_variant(const enc *v, const lm_gguf *vocab, uint64_t seed, const char *path, writer *wr, rmodel *m)
{
    char err[256], k[128];
    memset(wr, 0, sizeof *wr);
    wr->r.s = seed;
    wr->ok = true;
    if (lm_gguf_writer_create(path, &wr->w, err, sizeof err))
        return false;
    lm_gguf_writer *w = wr->w;
    const char *a = v->arch;
    bool nomic = !strcmp(a, "nomic-bert");
    int n_vocab = 0;
    for (int64_t i = 0; i < lm_gguf_n_kv(vocab); i++) { /* the tokenizer of the real vocab */
        lm_gguf_kv_info kv;
        if (lm_gguf_kv(vocab, i, &kv) == LM_OK && !strncmp(kv.key, "tokenizer.", 10))
            wr->ok &= lm_gguf_writer_copy_kv(w, vocab, i) == LM_OK;
    }
    uint64_t nv = 0;
    int et;
    if (lm_gguf_get_arr(vocab, "tokenizer.ggml.tokens", &et, &nv, NULL) == LM_OK)
        n_vocab = (int)nv;
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    lm_gguf_writer_set_str(w, "general.architecture", a);
    lm_gguf_writer_set_str(w, "general.name", v->name);
    lm_gguf_writer_set_u32(w, KEY("context_length"), 512);
    lm_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)v->dim);
    lm_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)v->n_layers);
    lm_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)v->ffn);
    lm_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)v->n_heads);
    lm_gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), 1e-12f);
    lm_gguf_writer_set_bool(w, KEY("attention.causal"), false);
    if (v->pooling >= 0)
        lm_gguf_writer_set_u32(w, KEY("pooling_type"), (uint32_t)v->pooling);
    if (nomic)
        lm_gguf_writer_set_f32(w, KEY("rope.freq_base"), 1000.0f);
    lm_gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", 2);
#undef KEY
    int dim = v->dim, wt = v->wtype;
    *m = (rmodel){ .dim = dim, .n_layers = v->n_layers, .n_heads = v->n_heads, .hd = dim / v->n_heads, .ffn = v->ffn,
                   .pooling = v->pooling > 0 ? v->pooling : LM_POOL_MEAN, .nomic = nomic, .eps = (double)1e-12f,
                   .base = 1000 };
    m->embd = tensor(wr, "token_embd.weight", dim, n_vocab, wt, G_MAT);
    m->types = tensor(wr, "token_types.weight", dim, 2, LM_GGML_F32, G_MAT);
    if (!nomic)
        m->pos = tensor(wr, "position_embd.weight", dim, 512, LM_GGML_F32, G_MAT);
    m->en = tensor(wr, "token_embd_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
    m->enb = tensor(wr, "token_embd_norm.bias", dim, 1, LM_GGML_F32, G_BIAS);
    m->L = calloc((size_t)v->n_layers, sizeof *m->L);
    for (int l = 0; l < v->n_layers; l++) {
        rlayer *L = &m->L[l];
        char n[64];
#define T(field, suffix, ne0, ne1, type, kind) \
    (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), L->field = tensor(wr, n, ne0, ne1, type, kind))
        if (nomic) {
            snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", l);
            L->wq = tensor(wr, n, dim, 3 * dim, wt, G_MAT);
            L->wk = L->wq + (size_t)dim * dim;
            L->wv = L->wk + (size_t)dim * dim;
        } else {
            T(wq, "attn_q.weight", dim, dim, wt, G_MAT);
            T(bq, "attn_q.bias", dim, 1, LM_GGML_F32, G_BIAS);
            T(wk, "attn_k.weight", dim, dim, wt, G_MAT);
            T(bk, "attn_k.bias", dim, 1, LM_GGML_F32, G_BIAS);
            T(wv, "attn_v.weight", dim, dim, wt, G_MAT);
            T(bv, "attn_v.bias", dim, 1, LM_GGML_F32, G_BIAS);
        }
        T(wo, "attn_output.weight", dim, dim, wt, G_MAT);
        if (!nomic)
            T(bo, "attn_output.bias", dim, 1, LM_GGML_F32, G_BIAS);
        T(n1, "attn_output_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
        T(n1b, "attn_output_norm.bias", dim, 1, LM_GGML_F32, G_BIAS);
        T(up, "ffn_up.weight", dim, v->ffn, wt, G_MAT);
        if (nomic)
            T(gate, "ffn_gate.weight", dim, v->ffn, wt, G_MAT);
        else
            T(bup, "ffn_up.bias", v->ffn, 1, LM_GGML_F32, G_BIAS);
        T(down, "ffn_down.weight", v->ffn, dim, wt, G_MAT);
        if (!nomic)
            T(bdown, "ffn_down.bias", dim, 1, LM_GGML_F32, G_BIAS);
        T(n2, "layer_output_norm.weight", dim, 1, LM_GGML_F32, G_NORM);
        T(n2b, "layer_output_norm.bias", dim, 1, LM_GGML_F32, G_BIAS);
#undef T
    }
    if (!wr->ok || !n_vocab) {
        lm_gguf_writer_abort(w);
        return false;
    }
    return lm_gguf_writer_finish(w, err, sizeof err) == LM_OK;
}

/* ---------------------------------------------------------------- the checks */

static void compare(const char *name, const char *how, int i, const float *got, const double *want, int dim)
{
    double dot = 0, ng = 0, nw = 0;
    for (int d = 0; d < dim; d++) {
        dot += got[d] * want[d];
        ng += (double)got[d] * got[d];
        nw += want[d] * want[d];
    }
    double cos = dot / sqrt(ng * nw), e = tu_nmse(got, want, dim);
    CHECK(cos >= 1 - 1e-9 && e < 1e-8, "%s, %s: text %d: cosine %.12f, nmse %.3g", name, how, i, cos, e);
}

static void run_variant(tu_gpu *g, const enc *v, const lm_gguf *vocab, uint64_t seed)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "/tmp/vkllm-test-encoders-%d-%s.gguf", (int)getpid(), v->name);
    writer wr;
    rmodel ref = { 0 };
    bool written = write_variant(v, vocab, seed, path, &wr, &ref);
    CHECK(written, "%s: cannot write %s", v->name, path);
    lm_model *m = NULL;
    int rc = written ? lm_model_load(g->ctx, path, NULL, &m, err, sizeof err) : LM_ERR_IO;
    CHECK(rc == LM_OK, "%s: load: %s: %s", v->name, lm_status_string(rc), err);
    if (m) {
        CHECK(lm_model_is_encoder(m) && lm_model_pooling(m) == ref.pooling, "%s: encoder %d, pooling %d (want %d)",
              v->name, lm_model_is_encoder(m), lm_model_pooling(m), ref.pooling);
        int dim = v->dim;
        float *all = malloc(sizeof *all * N_TEXTS * dim), *one = malloc(sizeof *one * dim);
        double *want = malloc(sizeof *want * dim);
        int64_t n_tok = 0;
        rc = lm_embed_texts(m, texts, N_TEXTS, true, all, &n_tok, err, sizeof err);
        CHECK(rc == LM_OK, "%s: embed: %s", v->name, err);
        int64_t counted = 0;
        for (int i = 0; i < N_TEXTS && !rc; i++) {
            int32_t *ids;
            int64_t n;
            CHECK(lm_tokenize(lm_model_vocab(m), texts[i], strlen(texts[i]), true, false, &ids, &n, err, sizeof err) ==
                      LM_OK,
                  "%s: tokenize: %s", v->name, err);
            counted += n;
            ref_embed(&ref, ids, (int)n, want);
            compare(v->name, "a batch of 4", i, all + (size_t)i * dim, want, dim);
            CHECK(lm_embed_tokens(m, (const int32_t *const *)&ids, &n, 1, true, one, err, sizeof err) == LM_OK,
                  "%s: embed one: %s", v->name, err);
            compare(v->name, "alone", i, one, want, dim);
            free(ids);
        }
        CHECK(rc || n_tok == counted, "%s: %lld tokens counted, %lld tokenized", v->name, (long long)n_tok,
              (long long)counted);
        printf("%-16s %d texts of %lld tokens match the reference\n", v->name, N_TEXTS, (long long)counted);
        /* an empty input and one longer than the context are refused */
        int64_t zero = 0, big = 100000;
        int32_t tok0 = 0, *pbig = calloc((size_t)big, sizeof *pbig);
        const int32_t *p0 = &tok0;
        CHECK(lm_embed_tokens(m, &p0, &zero, 1, true, one, err, sizeof err) == LM_ERR_INVALID, "%s: empty input",
              v->name);
        CHECK(lm_embed_tokens(m, (const int32_t *const *)&pbig, &big, 1, true, one, err, sizeof err) ==
                  LM_ERR_CONTEXT_FULL,
              "%s: an input of %lld tokens: %s", v->name, (long long)big, err);
        free(pbig);
        /* it does not generate: sessions are refused, and so `run`, `chat` and perplexity */
        lm_session *s = NULL;
        rc = lm_session_create(m, NULL, &s, err, sizeof err);
        CHECK(rc == LM_ERR_UNSUPPORTED && !s && strstr(err, "is an encoder"), "%s: a session: %s, \"%s\"", v->name,
              lm_status_string(rc), err);
        const char *bin = getenv("VKLLM_BIN");
        if (bin && v == &variants[0]) {
            char cmd[1024], out[4096];
            snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -p hi -n 1 2>&1", bin, path);
            int st = tu_run(cmd, out, sizeof out);
            CHECK(st == 1 && strstr(out, "is an encoder"), "run of an encoder: exit %d: %s", st, out);
            snprintf(cmd, sizeof cmd, "'%s' embed -m '%s' -p 'Hello world!' --format array 2>&1", bin, path);
            st = tu_run(cmd, out, sizeof out);
            CHECK(st == 0 && out[0] == '[', "embed with an encoder: exit %d: %.300s", st, out);
        }
        free(all), free(one), free(want);
        lm_model_free(m);
    }
    unlink(path);
    for (int i = 0; i < wr.n_owned; i++)
        free(wr.owned[i]);
    free(ref.L);
}

int main(void)
{
    uint64_t seed = tu_seed("test_encoders");
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_encoders");
    char err[256];
    lm_gguf *vocab = NULL;
    const char *vp = tu_model_path("tokenizer-vectors/ggml-vocab-bert-bge.gguf");
    CHECK(lm_gguf_open(vp, &vocab, err, sizeof err) == LM_OK, "%s: %s", vp, err);
    for (size_t i = 0; vocab && i < sizeof variants / sizeof variants[0]; i++)
        run_variant(&g, &variants[i], vocab, seed + i);
    lm_gguf_close(vocab);
    tu_gpu_close(&g);
    return tu_finish("test_encoders");
}
