/* test_arch_ops.c: the ops that Gemma 2/3, Qwen3 and BERT need, against plain C references in double
 * precision on seeded random data:
 *   attention with softcap and a sliding window (alone, together, a window longer than the context,
 *     window 1), GQA, paged and not, decode rows at different positions and prefill tiles, f16 and f32
 *     caches, key ranges split and merged; with the CPU drivers' kernels (attention_cpu.comp,
 *     attention_rows.comp) and the GPU kernel (attention.comp, VKLLM_ATTN_TILED=1).
 *     Tolerance nmse 1e-7 (f32 arithmetic and exp against double; scores of std 3).
 *   rt_op_rmsnorm_ex: per-head norms in place in a wider QKV row (the rest of the row untouched, bit for
 *     bit), Y += norm(X) with groups and strides; nmse 1e-10; an overlapping accumulate is refused.
 *   GeGLU products (gate_act = RT_GATE_GELU): fused (same types, k % 8 == 0) and apart (two types, or
 *     k % 8 != 0: two products and rt_op_geglu), m = 1 (GEMV) and m > 16 (GEMM on the GPU way), F32 and
 *     Q8_0, on the CPU drivers' kernel and the GPUs' (VKLLM_MATMUL=gpu); nmse 1e-8, as the SwiGLU's.
 *   rt_op_softcap (nmse 1e-10, huge inputs give +-cap) and rt_op_geglu (1e-8).
 * Every output has guard bytes after it that must stay untouched. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm.h"
#include "util.h"

static tu_rng R;
static rt_ctx *C;

static void *xalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* a device buffer of n bytes (+ guard bytes, filled), data written when given */
static rt_buffer *dev_buf(size_t n, const void *data)
{
    rt_buffer *b = NULL;
    if (rt_buffer_create(C, RT_MEM_DEVICE, n + TU_GUARD, &b)) {
        CHECK(0, "buffer of %zu bytes: %s", n, rt_ctx_errmsg(C));
        return NULL;
    }
    if (data && rt_buffer_write(b, 0, data, n))
        CHECK(0, "write: %s", rt_ctx_errmsg(C));
    if (!tu_guard_fill(b, n))
        CHECK(0, "guard fill");
    return b;
}

static float *rnd(int64_t n, float std)
{
    float *v = xalloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        v[i] = tu_normal(&R) * std;
    return v;
}

/* ends the recording and runs it: the first op's error or the run's */
static int run_seq(rt_seq *s)
{
    int rc = rt_seq_end(s);
    if (!rc)
        rc = rt_seq_run(s);
    return rc;
}

static uint16_t to_half(float f) /* normal range only, rounded to nearest even */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x < 0x38800000u)
        return (uint16_t)sign; /* below f16's normal range: zero (not in the data) */
    uint32_t lsb = (x >> 13) & 1u;
    x += 0x0fffu + lsb;
    return (uint16_t)(sign | (((x >> 23) - 112) << 10) | ((x >> 13) & 0x3ffu));
}

static float from_half(uint16_t h)
{
    uint32_t e = (h >> 10) & 0x1f, x = ((uint32_t)(h & 0x8000u) << 16) | ((e + 112) << 23) | ((uint32_t)(h & 0x3ffu) << 13);
    if (e == 0)
        x = (uint32_t)(h & 0x8000u) << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---------------------------------------------------------------- attention */

typedef struct acase {
    const char *name;
    int nh, nkv, hd;
    int64_t len;   /* keys of a sequence at most (the cache rows when not paged) */
    int rows;
    int mode;      /* 0: rows at random positions (pos[0] the last, pos[1] = 3); 1: consecutive (a prefill) */
    rt_dtype ct;
    float softcap;
    int window;
    int bs;        /* paged with blocks of bs (2 sequences, rows alternating in mode 0); 0: not paged */
} acase;

static void attn_case(const acase *c, const char *way)
{
    int64_t kv_dim = (int64_t)c->nkv * c->hd, q_dim = (int64_t)c->nh * c->hd;
    int n_seqs = c->bs ? 2 : 1;
    int64_t bps = c->bs ? (c->len + c->bs - 1) / c->bs : 0, cap = c->bs ? (bps * n_seqs + 2) * c->bs : c->len;
    /* the pool (keys rounded to f16 where the cache is) */
    float *kf = rnd(cap * kv_dim, 1), *vf = rnd(cap * kv_dim, 1), *qf = rnd(c->rows * q_dim, 3);
    if (c->ct == RT_F16)
        for (int64_t i = 0; i < cap * kv_dim; i++)
            kf[i] = from_half(to_half(kf[i])), vf[i] = from_half(to_half(vf[i]));
    /* paged: block tables of a shuffled pool, then the pages buffer (rows' table offsets, the tables) */
    int64_t n_blocks = c->bs ? cap / c->bs : 0, n_pages = c->bs ? c->rows + n_seqs * bps : 1;
    int32_t *perm = xalloc((size_t)(n_blocks ? n_blocks : 1) * 4), *pages = xalloc((size_t)n_pages * 4);
    int32_t *pos = xalloc((size_t)c->rows * 4), *rseq = xalloc((size_t)c->rows * 4);
    for (int64_t i = 0; i < n_blocks; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = n_blocks - 1; i > 0; i--) {
        int64_t j = tu_u32(&R) % (uint32_t)(i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int64_t start = c->len - c->rows - (int64_t)(tu_u32(&R) % 5);
    for (int r = 0; r < c->rows; r++) {
        rseq[r] = c->mode == 0 ? r % n_seqs : n_seqs - 1;
        pos[r] = c->mode == 0 ? (int32_t)(tu_u32(&R) % (uint32_t)c->len) : (int32_t)(start + r);
    }
    if (c->mode == 0) {
        pos[0] = (int32_t)(c->len - 1);
        if (c->rows > 1)
            pos[1] = 3;
    }
    if (c->bs) {
        for (int r = 0; r < c->rows; r++)
            pages[r] = (int32_t)(c->rows + rseq[r] * bps);
        memcpy(pages + c->rows, perm, (size_t)(n_seqs * bps) * 4);
    } else {
        pages[0] = 0;
    }
    /* the reference */
    double scale = 1.0 / sqrt((double)c->hd), *ref = calloc((size_t)(c->rows * q_dim), sizeof(double));
    double *sc = xalloc((size_t)c->len * sizeof(double));
    int g = c->nh / c->nkv;
    for (int r = 0; r < c->rows; r++)
        for (int h = 0; h < c->nh; h++) {
            const float *qh = qf + ((int64_t)r * c->nh + h) * c->hd;
            int64_t j0 = c->window > 0 && pos[r] - c->window + 1 > 0 ? pos[r] - c->window + 1 : 0;
            double mx = -INFINITY, sum = 0;
            double *o = ref + ((int64_t)r * c->nh + h) * c->hd;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t j = j0; j <= pos[r]; j++) {
                    int64_t row = c->bs ? (int64_t)perm[rseq[r] * bps + j / c->bs] * c->bs + j % c->bs : j;
                    if (pass == 0) {
                        const float *kr = kf + row * kv_dim + (h / g) * c->hd;
                        double d = 0;
                        for (int e = 0; e < c->hd; e++)
                            d += (double)qh[e] * kr[e];
                        d *= scale;
                        if (c->softcap > 0)
                            d = c->softcap * tanh(d / c->softcap);
                        sc[j] = d;
                        mx = fmax(mx, d);
                    } else {
                        double w = exp(sc[j] - mx);
                        sum += w;
                        for (int e = 0; e < c->hd; e++)
                            o[e] += w * vf[row * kv_dim + (h / g) * c->hd + e];
                    }
                }
            for (int e = 0; e < c->hd; e++)
                o[e] /= sum;
        }
    /* the device */
    size_t cs = rt_dtype_size(c->ct), cb = (size_t)(cap * kv_dim) * cs, ob = (size_t)(c->rows * q_dim) * 4;
    void *kc = xalloc(cb), *vc = xalloc(cb);
    for (int64_t i = 0; i < cap * kv_dim; i++) {
        if (c->ct == RT_F32) {
            ((float *)kc)[i] = kf[i], ((float *)vc)[i] = vf[i];
        } else {
            ((uint16_t *)kc)[i] = to_half(kf[i]), ((uint16_t *)vc)[i] = to_half(vf[i]);
        }
    }
    rt_buffer *bk = dev_buf(cb, kc), *bv = dev_buf(cb, vc), *bq = dev_buf(ob, qf), *bo = dev_buf(ob, NULL);
    rt_buffer *bp = dev_buf((size_t)c->rows * 4, pos), *bpg = dev_buf((size_t)n_pages * 4, pages);
    rt_seq *s = NULL;
    if (bk && bv && bq && bo && bp && bpg && !rt_seq_create(C, &s)) {
        rt_attn_desc a = { .n_heads = c->nh, .n_kv_heads = c->nkv, .head_dim = c->hd, .scale = (float)scale,
                           .cap = cap, .cache_type = c->ct, .softcap = c->softcap, .window = c->window };
        if (c->bs) {
            a.pages = rt_at(bpg, 0);
            a.block_size = c->bs;
            a.max_keys = c->len;
        }
        rt_seq_begin(s);
        rt_op_attention(s, rt_at(bo, 0), rt_at(bq, 0), rt_at(bk, 0), rt_at(bv, 0), rt_at(bp, 0), c->rows, &a);
        int rc = run_seq(s);
        CHECK(rc == RT_OK, "attention %s (%s): %s", c->name, way, rt_seq_errmsg(s));
        if (!rc) {
            float *y = xalloc(ob);
            rt_buffer_read(bo, 0, y, ob);
            double e = tu_nmse(y, ref, c->rows * q_dim);
            CHECK(e <= 1e-7, "attention %s (%s): nmse %.3g", c->name, way, e);
            CHECK(tu_guard_check(bo, ob), "attention %s (%s): guard bytes overwritten", c->name, way);
            printf("  attention %-46s nmse %.2g\n", c->name, e);
            free(y);
        }
    }
    rt_seq_destroy(s);
    rt_buffer *all[] = { bk, bv, bq, bo, bp, bpg };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rt_buffer_destroy(all[i]);
    free(kf), free(vf), free(qf), free(perm), free(pages), free(pos), free(rseq), free(ref), free(sc), free(kc),
        free(vc);
}

static void attention_tests(void)
{
    const acase cases[] = {
        { "softcap 4, decode 3 rows, f32", 4, 4, 64, 200, 3, 0, RT_F32, 4, 0, 0 },
        { "window 37, decode 4 rows, gqa 2, f16", 8, 4, 64, 300, 4, 0, RT_F16, 0, 37, 0 },
        { "window 50 + softcap, prefill 40 rows, gqa, f32", 4, 2, 64, 200, 40, 1, RT_F32, 4, 50, 0 },
        { "window 1000 > context, prefill 9 rows, mqa, f16", 4, 1, 64, 120, 9, 1, RT_F16, 0, 1000, 0 },
        { "window 1, decode 3 rows, f32", 4, 2, 64, 100, 3, 0, RT_F32, 0, 1, 0 },
        { "window 1 + softcap, prefill 12 rows, f16", 4, 2, 32, 64, 12, 1, RT_F16, 4, 1, 0 },
        { "mixed rows, window 20, 9 rows, f32", 2, 2, 32, 80, 9, 0, RT_F32, 0, 20, 0 },
        { "paged decode, window 20 + softcap, f16, bs 16", 8, 2, 64, 200, 4, 0, RT_F16, 4, 20, 16 },
        { "paged prefill tile, window 33, f32, bs 16", 4, 2, 64, 150, 20, 1, RT_F32, 0, 33, 16 },
        { "paged mixed tile, window 10, f32, bs 1", 2, 2, 32, 50, 9, 0, RT_F32, 0, 10, 1 },
        { "paged, softcap only, gqa 4, f16, bs 32", 8, 2, 64, 100, 5, 1, RT_F16, 4, 0, 32 },
        { "prefill split into ranges, window 300, f16", 4, 4, 64, 2100, 24, 1, RT_F16, 0, 300, 0 },
        { "decode split (>16K keys), window 500 + softcap", 4, 2, 64, 16600, 2, 0, RT_F32, 4, 500, 0 },
        { "head size 20 (GPU kernel), window 7 + softcap", 6, 2, 20, 100, 5, 0, RT_F16, 4, 7, 0 },
    };
    for (int pass = 0; pass < 2; pass++) {
        if (pass)
            setenv("VKLLM_ATTN_TILED", "1", 1);
        const char *way = pass ? "GPU kernel, VKLLM_ATTN_TILED=1" : "default kernels";
        printf("attention, %s:\n", way);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            attn_case(&cases[i], way);
    }
    unsetenv("VKLLM_ATTN_TILED");
    /* bad arguments are refused */
    rt_seq *s = NULL;
    rt_buffer *b = dev_buf(4096, NULL);
    if (b && !rt_seq_create(C, &s)) {
        rt_attn_desc a = { .n_heads = 1, .n_kv_heads = 1, .head_dim = 8, .scale = 1, .cap = 4, .cache_type = RT_F32,
                           .window = -1 };
        rt_seq_begin(s);
        int rc = rt_op_attention(s, rt_at(b, 0), rt_at(b, 0), rt_at(b, 0), rt_at(b, 0), rt_at(b, 0), 1, &a);
        CHECK(rc == RT_ERR_INVALID, "attention: window -1 accepted (%d)", rc);
        rt_seq_end(s);
    }
    rt_seq_destroy(s);
    rt_buffer_destroy(b);
}

/* ---------------------------------------------------------------- rmsnorm_ex */

/* rows of groups of dim values at X[r ldx + g dim]; y0 (when accumulating) the Y before, at ldy */
static void norm_ref(double *ref, const float *x, const float *w, const float *y0, int64_t rows, int64_t groups,
                     int64_t dim, int64_t ldx, int64_t ldy, float eps)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < groups; g++) {
            const float *xg = x + r * ldx + g * dim;
            double ss = 0;
            for (int64_t i = 0; i < dim; i++)
                ss += (double)xg[i] * xg[i];
            double inv = 1.0 / sqrt(ss / (double)dim + eps);
            for (int64_t i = 0; i < dim; i++) {
                int64_t o = r * ldy + g * dim + i;
                ref[o] = xg[i] * inv * w[i] + (y0 ? y0[o] : 0);
            }
        }
}

static void norm_tests(void)
{
    printf("rmsnorm_ex:\n");
    const float eps = 1e-6f;
    /* per-head Q/K norms in place in a QKV row: 6 query heads and 2 key heads of 64 normalised (groups 8),
     * the 2 value heads after them untouched */
    {
        int64_t rows = 5, groups = 8, dim = 64, ld = 10 * 64, n = rows * ld;
        float *x = rnd(n, 2), *w = rnd(dim, 1);
        for (int64_t i = 0; i < n; i += 7)
            x[i] += 3; /* not centred: the norm is no plain std */
        double *ref = xalloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++)
            ref[i] = x[i];
        norm_ref(ref, x, w, NULL, rows, groups, dim, ld, ld, eps);
        rt_buffer *bx = dev_buf((size_t)n * 4, x), *bw = dev_buf((size_t)dim * 4, w);
        rt_seq *s = NULL;
        if (bx && bw && !rt_seq_create(C, &s)) {
            rt_norm_desc d = { .y = rt_at(bx, 0), .x = rt_at(bx, 0), .w = rt_at(bw, 0), .rows = rows, .dim = dim,
                               .groups = groups, .ldx = ld, .ldy = ld, .eps = eps };
            rt_seq_begin(s);
            rt_op_rmsnorm_ex(s, &d);
            int rc = run_seq(s);
            CHECK(rc == RT_OK, "rmsnorm_ex in place: %s", rt_seq_errmsg(s));
            if (!rc) {
                float *y = xalloc((size_t)n * 4);
                rt_buffer_read(bx, 0, y, (size_t)n * 4);
                double e = tu_nmse(y, ref, n);
                int64_t changed = 0;
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t i = groups * dim; i < ld; i++)
                        changed += memcmp(&y[r * ld + i], &x[r * ld + i], 4) != 0;
                CHECK(e <= 1e-10, "rmsnorm_ex in place: nmse %.3g", e);
                CHECK(changed == 0, "rmsnorm_ex in place: %lld values past the groups changed", (long long)changed);
                CHECK(tu_guard_check(bx, (size_t)n * 4), "rmsnorm_ex in place: guard bytes overwritten");
                printf("  per-head, in place (5 rows x 8 groups of 64, ld 640)  nmse %.2g\n", e);
                free(y);
            }
        }
        rt_seq_destroy(s);
        rt_buffer_destroy(bx), rt_buffer_destroy(bw);
        free(x), free(w), free(ref);
    }
    /* Y += norm(X): 3 groups of 100 per row, X rows of 305, Y rows of 300 (ldy 0); also groups 1 at dim
     * 1500 (a post-norm over a whole row, the larger workgroup) */
    const int64_t shapes[][4] = { { 7, 3, 100, 305 }, { 4, 1, 1500, 0 } }; /* rows, groups, dim, ldx */
    for (int t = 0; t < 2; t++) {
        int64_t rows = shapes[t][0], groups = shapes[t][1], dim = shapes[t][2], ldx = shapes[t][3];
        int64_t lx = ldx ? ldx : groups * dim, ly = groups * dim, nx = rows * lx, ny = rows * ly;
        float *x = rnd(nx, 1.5f), *w = rnd(dim, 1), *y0 = rnd(ny, 1);
        double *ref = xalloc((size_t)ny * 8);
        norm_ref(ref, x, w, y0, rows, groups, dim, lx, ly, eps);
        rt_buffer *bx = dev_buf((size_t)nx * 4, x), *bw = dev_buf((size_t)dim * 4, w), *by = dev_buf((size_t)ny * 4, y0);
        rt_seq *s = NULL;
        if (bx && bw && by && !rt_seq_create(C, &s)) {
            rt_norm_desc d = { .y = rt_at(by, 0), .x = rt_at(bx, 0), .w = rt_at(bw, 0), .rows = rows, .dim = dim,
                               .groups = groups, .ldx = ldx, .eps = eps, .accumulate = true };
            rt_seq_begin(s);
            rt_op_rmsnorm_ex(s, &d);
            int rc = run_seq(s);
            CHECK(rc == RT_OK, "rmsnorm_ex accumulate: %s", rt_seq_errmsg(s));
            if (!rc) {
                float *y = xalloc((size_t)ny * 4);
                rt_buffer_read(by, 0, y, (size_t)ny * 4);
                double e = tu_nmse(y, ref, ny);
                CHECK(e <= 1e-10, "rmsnorm_ex accumulate %lld x %lld x %lld: nmse %.3g", (long long)rows,
                      (long long)groups, (long long)dim, e);
                CHECK(tu_guard_check(by, (size_t)ny * 4), "rmsnorm_ex accumulate: guard bytes overwritten");
                printf("  Y += norm(X), %lld rows x %lld groups of %lld, ldx %lld  nmse %.2g\n", (long long)rows,
                       (long long)groups, (long long)dim, (long long)lx, e);
                free(y);
            }
            /* accumulating into X itself is refused */
            d.y = d.x;
            d.ldx = 0;
            rt_seq_begin(s);
            rc = rt_op_rmsnorm_ex(s, &d);
            CHECK(rc == RT_ERR_INVALID, "rmsnorm_ex: an accumulate onto X accepted (%d)", rc);
            rt_seq_end(s);
        }
        rt_seq_destroy(s);
        rt_buffer_destroy(bx), rt_buffer_destroy(bw), rt_buffer_destroy(by);
        free(x), free(w), free(y0), free(ref);
    }
}

/* ---------------------------------------------------------------- GeGLU products */

/* W [n][k] of type t from random values; the values the device sees (dequantised) in ref; a device
 * buffer holding it as rt_weight_write stores it */
static rt_buffer *make_weight(rt_dtype t, int64_t n, int64_t k, float *ref)
{
    float *wf = rnd(n * k, 0.5f);
    size_t fb = rt_dtype_row_bytes(t, k) * (size_t)n;
    void *wq = xalloc(fb);
    CHECK(lm_quantize(t, wf, wq, n * k) == LM_OK && lm_dequantize(t, wq, ref, n * k) == LM_OK,
          "type %d does not quantise", (int)t);
    rt_buffer *b = NULL;
    size_t bytes = rt_weight_bytes(t, n, k);
    if (rt_buffer_create(C, RT_MEM_DEVICE, bytes, &b) || rt_weight_write(b, 0, t, wq, n, k))
        CHECK(0, "weight of type %d: %s", (int)t, rt_ctx_errmsg(C));
    free(wf), free(wq);
    return b;
}

static double gelu(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x))); }

static void gated_case(int64_t m, int64_t n, int64_t k, rt_dtype wt, rt_dtype ut, bool norm, int act, const char *way)
{
    char name[160];
    rt_dtype_traits a, b;
    rt_dtype_info((int)wt, &a), rt_dtype_info((int)ut, &b);
    snprintf(name, sizeof name, "%s m=%lld n=%lld k=%lld w=%s up=%s%s (%s)", act ? "gelu" : "silu", (long long)m,
             (long long)n, (long long)k, a.name, b.name, norm ? " norm" : "", way);
    float *x = rnd(m * k, 1), *g = rnd(k, 1), *wr = xalloc((size_t)(n * k) * 4), *ur = xalloc((size_t)(n * k) * 4);
    for (int64_t i = 0; i < m * k; i++)
        x[i] += 0.3f;
    rt_buffer *bw = make_weight(wt, n, k, wr), *bu = make_weight(ut, n, k, ur);
    double *ref = xalloc((size_t)(m * n) * 8), *xn = xalloc((size_t)k * 8);
    const float eps = 1e-5f;
    for (int64_t i = 0; i < m; i++) {
        double ss = 0;
        for (int64_t c = 0; c < k; c++)
            ss += (double)x[i * k + c] * x[i * k + c];
        double inv = 1.0 / sqrt(ss / (double)k + eps);
        for (int64_t c = 0; c < k; c++)
            xn[c] = norm ? x[i * k + c] * inv * g[c] : x[i * k + c];
        for (int64_t j = 0; j < n; j++) {
            double s = 0, u = 0;
            for (int64_t c = 0; c < k; c++)
                s += xn[c] * wr[j * k + c], u += xn[c] * ur[j * k + c];
            ref[i * n + j] = (act == RT_GATE_GELU ? gelu(s) : s / (1 + exp(-s))) * u;
        }
    }
    size_t yb = (size_t)(m * n) * 4;
    rt_buffer *bx = dev_buf((size_t)(m * k) * 4, x), *bg = dev_buf((size_t)k * 4, g), *by = dev_buf(yb, NULL);
    rt_seq *s = NULL;
    if (bw && bu && bx && bg && by && !rt_seq_create(C, &s)) {
        rt_matmul_desc d = { .y = rt_at(by, 0), .x = rt_at(bx, 0), .w = rt_at(bw, 0), .wt = wt, .m = m, .n = n,
                             .k = k, .norm_w = norm ? rt_at(bg, 0) : (rt_ref){ 0 }, .norm_eps = eps,
                             .w_up = rt_at(bu, 0), .w_up_type = ut, .gate_act = act };
        rt_seq_begin(s);
        rt_op_matmul_ex(s, &d);
        int rc = run_seq(s);
        CHECK(rc == RT_OK, "gated %s: %s", name, rt_seq_errmsg(s));
        if (!rc) {
            float *y = xalloc(yb);
            rt_buffer_read(by, 0, y, yb);
            double e = tu_nmse(y, ref, m * n);
            CHECK(e <= 1e-8, "gated %s: nmse %.3g", name, e);
            CHECK(tu_guard_check(by, yb), "gated %s: guard bytes overwritten", name);
            printf("  %-66s nmse %.2g\n", name, e);
            free(y);
        }
    }
    rt_seq_destroy(s);
    rt_buffer *all[] = { bw, bu, bx, bg, by };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rt_buffer_destroy(all[i]);
    free(x), free(g), free(wr), free(ur), free(ref), free(xn);
}

static void gated_tests(void)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *way = pass ? "VKLLM_MATMUL=gpu" : "default";
        if (pass)
            setenv("VKLLM_MATMUL", "gpu", 1);
        printf("gated products, %s:\n", way);
        /* fused: the same types, k % 8 == 0 */
        gated_case(1, 67, 64, RT_F32, RT_F32, false, RT_GATE_GELU, way);
        gated_case(20, 67, 64, RT_F32, RT_F32, true, RT_GATE_GELU, way);
        gated_case(1, 45, 256, RT_Q8_0, RT_Q8_0, true, RT_GATE_GELU, way);
        gated_case(33, 45, 256, RT_Q8_0, RT_Q8_0, false, RT_GATE_GELU, way);
        gated_case(20, 45, 64, RT_F32, RT_F32, false, RT_GATE_SILU, way); /* silu still silu */
        /* apart: two types, or k % 8 != 0 */
        gated_case(1, 40, 64, RT_F32, RT_F16, false, RT_GATE_GELU, way);
        gated_case(20, 40, 64, RT_F32, RT_F16, true, RT_GATE_GELU, way);
        gated_case(1, 40, 36, RT_F32, RT_F32, false, RT_GATE_GELU, way);
        gated_case(19, 40, 36, RT_F32, RT_F32, false, RT_GATE_GELU, way);
        gated_case(17, 33, 256, RT_Q8_0, RT_F32, false, RT_GATE_GELU, way);
    }
    unsetenv("VKLLM_MATMUL");
}

/* ---------------------------------------------------------------- elementwise */

static void eltwise_tests(void)
{
    printf("elementwise:\n");
    const int64_t n = 1003;
    const float cap = 20;
    float *x = rnd(n, 30), *b = rnd(n, 1);
    x[0] = 1e30f, x[1] = -1e30f, x[2] = 0, x[3] = 1e-6f;
    double *rs = xalloc((size_t)n * 8), *rg = xalloc((size_t)n * 8);
    float *a = xalloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        rs[i] = cap * tanh((double)x[i] / cap);
        a[i] = i < 2 ? (i ? -20.0f : 20.0f) : x[i] / 10.0f; /* gelu's range of interest: |a| of a few */
        rg[i] = gelu(a[i]) * b[i];
    }
    rt_buffer *bx = dev_buf((size_t)n * 4, x), *ba = dev_buf((size_t)n * 4, a), *bb = dev_buf((size_t)n * 4, b);
    rt_buffer *bs = dev_buf((size_t)n * 4, NULL), *bg = dev_buf((size_t)n * 4, NULL);
    rt_seq *s = NULL;
    if (bx && ba && bb && bs && bg && !rt_seq_create(C, &s)) {
        rt_seq_begin(s);
        rt_op_softcap(s, rt_at(bs, 0), rt_at(bx, 0), n, cap);
        rt_op_geglu(s, rt_at(bg, 0), rt_at(ba, 0), rt_at(bb, 0), n);
        int rc = run_seq(s);
        CHECK(rc == RT_OK, "eltwise: %s", rt_seq_errmsg(s));
        if (!rc) {
            float *y = xalloc((size_t)n * 4);
            rt_buffer_read(bs, 0, y, (size_t)n * 4);
            double e = tu_nmse(y, rs, n);
            CHECK(e <= 1e-10, "softcap: nmse %.3g", e);
            CHECK(y[0] == cap && y[1] == -cap && y[2] == 0, "softcap: %g %g %g for 1e30, -1e30, 0", y[0], y[1], y[2]);
            CHECK(tu_guard_check(bs, (size_t)n * 4), "softcap: guard bytes overwritten");
            printf("  softcap %g, %lld values of N(0, 30)  nmse %.2g\n", cap, (long long)n, e);
            rt_buffer_read(bg, 0, y, (size_t)n * 4);
            e = tu_nmse(y, rg, n);
            CHECK(e <= 1e-8, "geglu: nmse %.3g", e);
            CHECK(tu_guard_check(bg, (size_t)n * 4), "geglu: guard bytes overwritten");
            printf("  geglu, %lld values  nmse %.2g\n", (long long)n, e);
            free(y);
        }
        rt_seq_begin(s);
        rc = rt_op_softcap(s, rt_at(bs, 0), rt_at(bx, 0), n, 0);
        CHECK(rc == RT_ERR_INVALID, "softcap: cap 0 accepted (%d)", rc);
        rt_seq_end(s);
    }
    rt_seq_destroy(s);
    rt_buffer *all[] = { bx, ba, bb, bs, bg };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rt_buffer_destroy(all[i]);
    free(x), free(b), free(a), free(rs), free(rg);
}

int main(void)
{
    R.s = tu_seed("test_arch_ops");
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_arch_ops");
    C = g.ctx;
    eltwise_tests();
    norm_tests();
    gated_tests();
    attention_tests();
    tu_gpu_close(&g);
    return tu_finish("test_arch_ops");
}
