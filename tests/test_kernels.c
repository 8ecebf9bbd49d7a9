/* test_kernels.c: every op of rt.h against a plain C reference computed in double precision.
 *
 * One case = seeded random inputs, the op recorded alone into a sequence and run, the output read back and
 * compared with tu_nmse (sum((a-b)^2) / sum(b^2); a NaN or inf in the output fails) against the tolerance of
 * its op (table `ops` below, with the reason for each number). Around every output the bytes before its
 * offset and TU_GUARD bytes after its end must be untouched. Most outputs sit at a non-zero offset (4*13
 * bytes for f32) so the runtime's aligned binding + element offset is exercised; weights and inputs at other
 * odd offsets. Shapes are 1, odd, prime and not multiples of any workgroup size (7, 31, 127, 173, 1000,
 * 4099), plus a few realistic ones. f16/bf16 weights and caches are rounded here first and the reference
 * uses the rounded values, so those tolerances stay the f32 ones.
 *
 * Failures name the op, every parameter of the case and the seed (VKLLM_TEST_SEED replays a run). A summary
 * of the largest error per op is printed at the end.
 *
 * test_long_kernels.c includes this file with TK_NO_MAIN defined and runs the same cases at 7B-model sizes;
 * keep the default run here under about 3 minutes on lavapipe with 2 cores.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lm.h"
#include "util.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---------------------------------------------------------------- ops, tolerances, results */

enum {
    OP_MATMUL, OP_MATMUL_NORM, OP_MATMUL_SWIGLU, OP_RMSNORM, OP_LAYERNORM, OP_SOFTMAX, OP_ROPE, OP_SWIGLU, OP_GELU, OP_ADD, OP_MUL, OP_SCALE,
    OP_GET_ROWS, OP_KV_WRITE, OP_ARGMAX, OP_ATTENTION, OP_COPY, OP_FMA, OP_COUNT
};

/* The tolerance of each op (max nmse) and why. Unit roundoff of f32 is u = 6e-8 (u^2 = 3.6e-15). */
static struct {
    const char *name;
    double tol;
    int cases;
    double max_nmse;
} ops[OP_COUNT] = {
    /* sums of k products: rounding grows like k u^2 for random signs (k = 4099: 1.5e-11); 100x margin */
    [OP_MATMUL] = { "matmul", 1e-9, 0, 0 },
    /* rt_op_matmul_ex with the RMSNorm folded in: matmul's sums, scaled once by an inversesqrt (a few ulp)
     * of a sum of squares */
    [OP_MATMUL_NORM] = { "matmul_norm", 1e-9, 0, 0 },
    /* ... and gate / up in one: two such sums, one exp (3 + 2|x| ulp, as swiglu) and two products */
    [OP_MATMUL_SWIGLU] = { "matmul_swiglu", 1e-8, 0, 0 },
    /* a sum of squares, one inversesqrt (a few ulp), one product per element */
    [OP_RMSNORM] = { "rmsnorm", 1e-10, 0, 0 },
    /* as rmsnorm; the mean's rounding also shifts every centred value (inputs with mean 10 x std included) */
    [OP_LAYERNORM] = { "layernorm", 1e-10, 0, 0 },
    /* exp has 3 + 2|x| ulp in Vulkan: relative 1e-6 at |x| = 20, but large terms are those near the max */
    [OP_SOFTMAX] = { "softmax", 1e-8, 0, 0 },
    /* the angle pos * theta_i is rounded in f32 (positions < 5000: absolute 3e-4 rad at worst) and pow/sin/cos
     * have a few ulp; only the fastest-turning pairs see it */
    [OP_ROPE] = { "rope", 1e-6, 0, 0 },
    /* one exp (3 + 2|x| ulp) and a division */
    [OP_SWIGLU] = { "swiglu", 1e-8, 0, 0 },
    /* the tanh approximation, computed through one exp */
    [OP_GELU] = { "gelu", 1e-8, 0, 0 },
    /* one correctly rounded operation per element: nmse <= u^2 */
    [OP_ADD] = { "add", 1e-12, 0, 0 },
    [OP_MUL] = { "mul", 1e-12, 0, 0 },
    [OP_SCALE] = { "scale", 1e-12, 0, 0 },
    /* data movement and f16/bf16 -> f32 conversion are exact */
    [OP_GET_ROWS] = { "get_rows", 0, 0, 0 },
    /* bit-exact for f32; f16 rounded to nearest even, or toward zero (Vulkan allows both) */
    [OP_KV_WRITE] = { "kv_write", 0, 0, 0 },
    /* an index: exact (nmse of the indices, 0) */
    [OP_ARGMAX] = { "argmax", 0, 0, 0 },
    /* head_dim products, online softmax rescaling, pos+1 weighted sums: exp-based */
    [OP_ATTENTION] = { "attention", 1e-8, 0, 0 },
    /* no nmse: the copy compared byte for byte; the FMA loop has no reference value, its outputs must be
     * finite and all written */
    [OP_COPY] = { "copy_kernel", 0, 0, 0 },
    [OP_FMA] = { "fma_kernel", 0, 0, 0 },
};

static tu_gpu G;
static rt_seq *S;
static uint64_t SEED;
static tu_rng R;

/* f32 tensors in most cases sit at this offset so the binding starts below it */
#define OFF 52

/* ---------------------------------------------------------------- host helpers */

static void *tk_alloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        fprintf(stderr, "test_kernels: out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static float *rnd_normal(int64_t n, float mean, float std)
{
    float *p = tk_alloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        p[i] = mean + std * tu_normal(&R);
    return p;
}

static float *rnd_uniform(int64_t n, float lo, float hi)
{
    float *p = tk_alloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        p[i] = tu_uniform(&R, lo, hi);
    return p;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE half, round to nearest even (subnormals and overflow to inf included; no NaN inputs here) */
static uint16_t f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7FFFFFu;
    int e = (int)((x >> 23) & 0xFF) - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00u);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* a carry into the exponent is right, up to inf */
    return (uint16_t)(sign | h);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0)
        return (sign ? -1.0f : 1.0f) * ldexpf((float)m, -24);
    if (e == 31)
        return m ? NAN : sign ? -INFINITY : INFINITY;
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

static float bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

static const char *dtype_name(rt_dtype t)
{
    return t == RT_F32 ? "f32" : t == RT_F16 ? "f16" : "bf16";
}

/* Rounds v[0..n) to type t in place and returns the values encoded as t (malloc'd, n * size bytes). */
static void *encode(rt_dtype t, float *v, int64_t n)
{
    if (t == RT_F32) {
        void *p = tk_alloc((size_t)n * 4);
        memcpy(p, v, (size_t)n * 4);
        return p;
    }
    uint16_t *p = tk_alloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) {
        p[i] = t == RT_F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
        v[i] = t == RT_F16 ? f16_to_f32(p[i]) : bf16_to_f32(p[i]);
    }
    return p;
}

/* ---------------------------------------------------------------- device tensors with guards */

/* A tensor of `bytes` at byte `off` of its own buffer. The whole buffer (the bytes before off, the tensor,
 * TU_GUARD bytes after it) starts filled with TU_GUARD_WORD; tk_guards() checks what is outside the tensor. */
typedef struct {
    rt_buffer *b;
    size_t off, bytes;
} tk_t;

static size_t tk_end(const tk_t *t)
{
    return (t->off + t->bytes + 3) / 4 * 4;
}

static tk_t tk_new_in(rt_mem kind, size_t off, size_t bytes, const void *data)
{
    tk_t t = { NULL, off, bytes };
    size_t size = tk_end(&t) + TU_GUARD;
    int rc = rt_buffer_create(G.ctx, kind, size, &t.b);
    if (rc) {
        fprintf(stderr, "test_kernels: buffer of %zu bytes: %s\n", size, rt_ctx_errmsg(G.ctx));
        exit(1);
    }
    if (rt_buffer_fill(t.b, 0, size, TU_GUARD_WORD) || !tu_guard_fill(t.b, tk_end(&t)) ||
        (data && rt_buffer_write(t.b, off, data, bytes))) {
        fprintf(stderr, "test_kernels: cannot fill a buffer: %s\n", rt_ctx_errmsg(G.ctx));
        exit(1);
    }
    return t;
}

/* device-local memory; positions and ids go in RT_MEM_UPLOAD and argmax's output in RT_MEM_READBACK, as a
 * model places them */
static tk_t tk_new(size_t off, size_t bytes, const void *data)
{
    return tk_new_in(RT_MEM_DEVICE, off, bytes, data);
}

static rt_ref tk_ref(const tk_t *t)
{
    return rt_at(t->b, t->off);
}

static void tk_read(const tk_t *t, void *dst)
{
    int rc = rt_buffer_read(t->b, t->off, dst, t->bytes);
    CHECK(rc == RT_OK, "read back: %s", rt_status_string(rc));
}

static void tk_free(tk_t *t)
{
    rt_buffer_destroy(t->b);
    t->b = NULL;
}

/* true when the bytes before the tensor and the guard after it are as tk_new left them */
static bool tk_guards_ok(const tk_t *t)
{
    bool ok = tu_guard_check(t->b, tk_end(t));
    if (t->off) {
        uint8_t *pre = tk_alloc(t->off);
        uint32_t w = TU_GUARD_WORD;
        ok = ok && rt_buffer_read(t->b, 0, pre, t->off) == RT_OK;
        for (size_t i = 0; ok && i < t->off; i++)
            ok = pre[i] == ((const uint8_t *)&w)[i % 4];
        free(pre);
    }
    return ok;
}

/* ---------------------------------------------------------------- checks */

static void guards(int op, const char *cs, const tk_t *t)
{
    CHECK(tk_guards_ok(t), "%s %s: bytes outside the output (offset %zu, %zu bytes) were written (seed %llu)",
          ops[op].name, cs, t->off, t->bytes, (unsigned long long)SEED);
}

/* compares got with ref by nmse against the op's tolerance; records the largest error */
static double check_nmse(int op, const char *cs, const float *got, const double *ref, int64_t n)
{
    double e = tu_nmse(got, ref, n);
    ops[op].cases++;
    if (!(e <= ops[op].max_nmse))
        ops[op].max_nmse = e;
    CHECK(e <= ops[op].tol, "%s %s: nmse %.3g > %.3g (seed %llu)", ops[op].name, cs, e, ops[op].tol,
          (unsigned long long)SEED);
    if (getenv("VKLLM_TEST_VERBOSE"))
        printf("  %-11s %-90s nmse %.3g\n", ops[op].name, cs, e);
    return e;
}

/* ends the recording and runs it; false (a failure counted) if either fails */
static bool run(int op, const char *cs)
{
    int rc = rt_seq_end(S);
    CHECK(rc == RT_OK, "%s %s: recording: %s: %s", ops[op].name, cs, rt_status_string(rc), rt_seq_errmsg(S));
    if (rc)
        return false;
    rc = rt_seq_run(S);
    CHECK(rc == RT_OK, "%s %s: run: %s: %s", ops[op].name, cs, rt_status_string(rc), rt_seq_errmsg(S));
    return rc == RT_OK;
}

/* ---------------------------------------------------------------- matmul */

/* Y[m][n] = X[m][k] W[n][k]^T (+ bias), W of type wt at an odd element offset. */
static void case_matmul(int64_t m, int64_t n, int64_t k, rt_dtype wt, bool bias, size_t y_off)
{
    if (!tu_take_case())
        return;
    char cs[160];
    snprintf(cs, sizeof cs, "m=%lld n=%lld k=%lld w=%s bias=%d y_off=%zu", (long long)m, (long long)n,
             (long long)k, dtype_name(wt), bias, y_off);
    size_t ws = rt_dtype_size(wt);
    float *x = rnd_normal(m * k, 0, 1), *w = rnd_normal(n * k, 0, 1), *b = bias ? rnd_normal(n, 0, 1) : NULL;
    void *wenc = encode(wt, w, n * k);
    double *ref = tk_alloc((size_t)(m * n) * 8);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = b ? b[j] : 0;
            for (int64_t c = 0; c < k; c++)
                s += (double)x[i * k + c] * w[j * k + c];
            ref[i * n + j] = s;
        }
    tk_t tx = tk_new(4 * 5, (size_t)(m * k) * 4, x), tw = tk_new(ws * 7, (size_t)(n * k) * ws, wenc);
    tk_t tb = tk_new(4 * 3, (size_t)n * 4, b), ty = tk_new(y_off, (size_t)(m * n) * 4, NULL);
    rt_seq_begin(S);
    rt_op_matmul(S, tk_ref(&ty), tk_ref(&tx), tk_ref(&tw), wt, bias ? tk_ref(&tb) : (rt_ref){ 0 }, m, n, k);
    if (run(OP_MATMUL, cs)) {
        float *y = tk_alloc(ty.bytes);
        tk_read(&ty, y);
        check_nmse(OP_MATMUL, cs, y, ref, m * n);
        guards(OP_MATMUL, cs, &ty);
        free(y);
    }
    tk_free(&tx), tk_free(&tw), tk_free(&tb), tk_free(&ty);
    free(x), free(w), free(b), free(wenc), free(ref);
}

/* m = 1 against a W larger than the device's binding range (the runtime splits it by rows): n is chosen so
 * that W exceeds maxStorageBufferRange by `extra` rows. Only sampled outputs are checked, on both sides of
 * where the split must fall, to keep the reference cheap. Skipped when W would exceed max_bytes. */
static void case_matmul_split(rt_dtype wt, int64_t k, int64_t extra, size_t max_bytes)
{
    const rt_device_info *d = rt_ctx_device(G.ctx);
    size_t ws = rt_dtype_size(wt);
    int64_t split = (int64_t)(d->max_storage_buffer_range / ((uint64_t)k * ws)), n = split + extra;
    size_t wbytes = (size_t)(n * k) * ws;
    char cs[160];
    snprintf(cs, sizeof cs, "m=1 n=%lld k=%lld w=%s (W %zu MiB > binding range %llu MiB)", (long long)n,
             (long long)k, dtype_name(wt), wbytes >> 20, (unsigned long long)(d->max_storage_buffer_range >> 20));
    if (wbytes > max_bytes || wbytes > d->max_allocation_size) {
        printf("matmul %s: skipped (W above %zu MiB)\n", cs, max_bytes >> 20);
        return;
    }
    float *x = rnd_normal(k, 0, 1), *b = rnd_normal(n, 0, 1);
    /* W: cheap uniform values, encoded row by row */
    void *wenc = tk_alloc(wbytes);
    float *row = tk_alloc((size_t)k * 4);
    float *w_s = NULL; /* the rounded rows that are sampled */
    int64_t samples[600];
    int ns = 0;
    for (int64_t j = 0; j < 100; j++)
        samples[ns++] = j;
    for (int64_t j = split - 150; j < split + (extra < 150 ? extra : 150); j++)
        samples[ns++] = j;
    for (int64_t j = n - 50; j < n; j++)
        if (j >= split + 150)
            samples[ns++] = j;
    for (int i = 0; ns < 600 && i < 200; i++)
        samples[ns++] = (int64_t)(tu_u32(&R) % (uint32_t)n);
    w_s = tk_alloc((size_t)ns * (size_t)k * 4);
    for (int64_t j = 0; j < n; j++) {
        for (int64_t c = 0; c < k; c++)
            row[c] = tu_uniform(&R, -1, 1);
        void *e = encode(wt, row, k);
        memcpy((char *)wenc + (size_t)(j * k) * ws, e, (size_t)k * ws);
        free(e);
        for (int s = 0; s < ns; s++)
            if (samples[s] == j)
                memcpy(w_s + (size_t)s * (size_t)k, row, (size_t)k * 4);
    }
    double *ref = tk_alloc((size_t)ns * 8);
    for (int s = 0; s < ns; s++) {
        double acc = b[samples[s]];
        for (int64_t c = 0; c < k; c++)
            acc += (double)x[c] * w_s[(size_t)s * (size_t)k + (size_t)c];
        ref[s] = acc;
    }
    tk_t tx = tk_new(0, (size_t)k * 4, x), tw = tk_new(0, wbytes, wenc), tb = tk_new(0, (size_t)n * 4, b);
    free(wenc);
    tk_t ty = tk_new(OFF, (size_t)n * 4, NULL);
    rt_seq_begin(S);
    rt_op_matmul(S, tk_ref(&ty), tk_ref(&tx), tk_ref(&tw), wt, tk_ref(&tb), 1, n, k);
    if (run(OP_MATMUL, cs)) {
        float *y = tk_alloc(ty.bytes), *got = tk_alloc((size_t)ns * 4);
        tk_read(&ty, y);
        for (int s = 0; s < ns; s++)
            got[s] = y[samples[s]];
        check_nmse(OP_MATMUL, cs, got, ref, ns);
        guards(OP_MATMUL, cs, &ty);
        free(y), free(got);
    }
    tk_free(&tx), tk_free(&tw), tk_free(&tb), tk_free(&ty);
    free(x), free(b), free(row), free(w_s), free(ref);
}

/* ---------------------------------------------------------------- fused matmul */

#ifndef TK_NO_MAIN /* not in test_long_kernels.c's sweep */

/* W [n][k] of type t (any format) from random values (N(0, 0.5), every 97th 8x larger, as real weights'
 * outliers): quantised by models/quant.c, *bytes of it in the device layout returned, the values the
 * device sees (dequantised) in ref [n][k]. */
static void *make_weight(rt_dtype t, int64_t n, int64_t k, float *ref, size_t *bytes)
{
    float *wf = tk_alloc((size_t)(n * k) * 4);
    for (int64_t i = 0; i < n * k; i++)
        wf[i] = tu_normal(&R) * (i % 97 == 0 ? 4.0f : 0.5f);
    void *wq = tk_alloc(rt_dtype_row_bytes(t, k) * (size_t)n);
    *bytes = rt_weight_bytes(t, n, k);
    void *dev = tk_alloc(*bytes);
    CHECK(lm_quantize(t, wf, wq, n * k) == LM_OK && lm_dequantize(t, wq, ref, n * k) == LM_OK,
          "make_weight: type %d does not quantise", (int)t);
    rt_weight_repack(t, wq, dev, n, k);
    free(wf), free(wq);
    return dev;
}

/* rt_op_matmul_ex: Y (+)= f(X) W^T (+ bias), f the RMSNorm (norm) or none; gated (up >= 0): Y =
 * silu(f(X) W^T) * (f(X) W_up^T), W_up of type up. X at byte offset x_off (16-byte aligned or not: vec4
 * or value loads), gamma aligned as X is (32 or 36 bytes), W at w_off (a 16-byte boundary but for the cases that test
 * the unaligned fall-backs), Y at OFF with guards. The reference in double precision on the dequantised
 * weights; inputs N(0.3, 1.3) so that the norm's scale is not near 1. */
static void case_matmul_fused(int64_t m, int64_t n, int64_t k, rt_dtype wt, int up, bool norm, bool bias, bool acc,
                              size_t x_off, size_t w_off, const char *way)
{
    if (!tu_take_case())
        return;
    int op = up >= 0 ? OP_MATMUL_SWIGLU : OP_MATMUL_NORM;
    rt_dtype_traits tr, tu = { .name = "-" };
    rt_dtype_info((int)wt, &tr);
    if (up >= 0)
        rt_dtype_info(up, &tu);
    char cs[200];
    snprintf(cs, sizeof cs, "m=%lld n=%lld k=%lld w=%s up=%s norm=%d bias=%d acc=%d x_off=%zu w_off=%zu (%s)",
             (long long)m, (long long)n, (long long)k, tr.name, tu.name, norm, bias, acc, x_off, w_off, way);
    float *x = rnd_normal(m * k, 0.3f, 1.3f), *g = rnd_uniform(k, -1.5f, 1.5f);
    float *b = bias ? rnd_normal(n, 0, 1) : NULL, *y0 = acc ? rnd_normal(m * n, 0, 1) : NULL;
    float *wr = tk_alloc((size_t)(n * k) * 4), *ur = up >= 0 ? tk_alloc((size_t)(n * k) * 4) : NULL;
    size_t wbytes, ubytes = 0;
    void *wdev = make_weight(wt, n, k, wr, &wbytes), *udev = up >= 0 ? make_weight((rt_dtype)up, n, k, ur, &ubytes) : NULL;
    double *ref = tk_alloc((size_t)(m * n) * 8), *xn = tk_alloc((size_t)k * 8);
    const float eps = 1e-5f;
    for (int64_t i = 0; i < m; i++) {
        double ss = 0;
        for (int64_t c = 0; c < k; c++)
            ss += (double)x[i * k + c] * x[i * k + c];
        double inv = norm ? 1.0 / sqrt(ss / (double)k + eps) : 1.0;
        for (int64_t c = 0; c < k; c++)
            xn[c] = norm ? x[i * k + c] * inv * g[c] : x[i * k + c];
        for (int64_t j = 0; j < n; j++) {
            double s = 0, u = 0;
            for (int64_t c = 0; c < k; c++)
                s += xn[c] * wr[j * k + c];
            if (up >= 0) {
                for (int64_t c = 0; c < k; c++)
                    u += xn[c] * ur[j * k + c];
                s = s / (1 + exp(-s)) * u;
            }
            ref[i * n + j] = s + (b ? b[j] : 0) + (acc ? y0[i * n + j] : 0);
        }
    }
    tk_t tx = tk_new(x_off, (size_t)(m * k) * 4, x), tg = tk_new(x_off % 16 ? 4 * 9 : 32, (size_t)k * 4, g);
    tk_t tw = tk_new(w_off, wbytes, wdev), tb = tk_new(4 * 3, (size_t)n * 4, b);
    tk_t tup = tk_new(up >= 0 ? w_off : 0, up >= 0 ? ubytes : 4, udev), ty = tk_new(OFF, (size_t)(m * n) * 4, y0);
    rt_matmul_desc d = { .y = tk_ref(&ty), .x = tk_ref(&tx), .w = tk_ref(&tw), .wt = wt,
                         .bias = bias ? tk_ref(&tb) : (rt_ref){ 0 }, .m = m, .n = n, .k = k, .accumulate = acc,
                         .norm_w = norm ? tk_ref(&tg) : (rt_ref){ 0 }, .norm_eps = eps,
                         .w_up = up >= 0 ? tk_ref(&tup) : (rt_ref){ 0 }, .w_up_type = (rt_dtype)(up >= 0 ? up : 0) };
    rt_seq_begin(S);
    rt_op_matmul_ex(S, &d);
    if (run(op, cs)) {
        float *y = tk_alloc(ty.bytes);
        tk_read(&ty, y);
        check_nmse(op, cs, y, ref, m * n);
        guards(op, cs, &ty);
        free(y);
    }
    tk_free(&tx), tk_free(&tg), tk_free(&tw), tk_free(&tb), tk_free(&tup), tk_free(&ty);
    free(x), free(g), free(b), free(y0), free(wr), free(ur), free(wdev), free(udev), free(ref), free(xn);
}

/* The fused products in every weight format (own: the device's own way of the runtime, else the
 * other, VKLLM_MATMUL: the CPU drivers' kernel or the GPUs' GEMV / GEMM): m = 1 (decode), a few rows
 * (GEMV), 37 (GEMM on the GPU way). Few cases per format: each is new pipelines, seconds each to
 * compile on lavapipe. */
static void fused_matmuls(const char *way, bool own)
{
    static const rt_dtype all[] = { RT_F32, RT_F16, RT_Q4_0, RT_Q4_K, RT_Q8_0, RT_BF16, RT_Q6_K, RT_Q5_K,
                                    RT_Q4_1, RT_Q5_0, RT_Q5_1, RT_Q2_K, RT_Q3_K, RT_IQ4_NL, RT_IQ4_XS };
    size_t n_types = own ? sizeof all / sizeof all[0] : 8;
    for (size_t i = 0; i < n_types; i++) {
        rt_dtype_traits tr;
        rt_dtype_info((int)all[i], &tr);
        /* an odd number of blocks per row; floats 8 * 41 */
        int64_t k = tr.block == 1 ? 328 : tr.block == 32 ? 32 * 9 : 256 * 3;
        case_matmul_fused(1, 67, k, all[i], -1, true, i % 2 == 0, false, i % 3 ? 16 : 4 * 5, 48, way);
        case_matmul_fused(37, 33, k, all[i], (int)all[i], true, false, false, 32, 48, way);
        if (i < 5) { /* F32, F16, Q4_0, Q4_K, Q8_0: the other m, accumulate, gated decode */
            case_matmul_fused(3, 67, k, all[i], -1, true, false, true, 4 * 5, 48, way);
            case_matmul_fused(1, 33, k, all[i], (int)all[i], true, false, false, 16, 48, way);
        }
    }
    /* the shapes of a model's layers, around the row blocks of the kernels (4, 8 W rows; 4 X rows) */
    case_matmul_fused(1, 256, 576, RT_Q4_0, RT_Q4_0, true, false, false, 0, 0, way);
    case_matmul_fused(9, 129, 512, RT_Q4_K, RT_Q4_K, true, false, false, 0, 0, way);
    case_matmul_fused(70, 172, 64, RT_F32, RT_F32, true, false, false, 16, 16, way);
    /* k >= 1024 (the norm's sums over 256 partials on the CPU way) */
    case_matmul_fused(2, 61, 1024, RT_F16, -1, true, true, false, 16, 16, way);
    /* gated without the norm; rows of any length (value by value: the norm still folded in, the gate
     * as two products and swiglu); W at a 2-byte boundary (the same); two types (the same) */
    case_matmul_fused(4, 31, 96, RT_BF16, RT_BF16, false, false, false, 16, 16, way);
    case_matmul_fused(3, 29, 37, RT_F32, -1, true, true, false, 4 * 5, 4 * 3, way);
    case_matmul_fused(2, 29, 37, RT_F16, RT_F16, true, false, false, 4 * 5, 2 * 7, way);
    if (own) {
        case_matmul_fused(5, 1, 64, RT_F32, RT_F32, true, false, false, 16, 16, way);
        case_matmul_fused(33, 29, 40, RT_F16, RT_F16, true, false, false, 16, 2 * 7, way);
        case_matmul_fused(1, 45, 512, RT_Q4_K, RT_Q6_K, true, false, false, 16, 48, way);
        case_matmul_fused(40, 45, 512, RT_Q5_0, RT_Q8_0, true, false, false, 16, 48, way);
    }
}
#endif

/* ---------------------------------------------------------------- norms, softmax */

/* rmsnorm, or layernorm with or without bias; inputs mean + N(0, 1) */
static void case_norm(bool layer, bool bias, int64_t rows, int64_t dim, float eps, float mean)
{
    int op = layer ? OP_LAYERNORM : OP_RMSNORM;
    char cs[160];
    snprintf(cs, sizeof cs, "rows=%lld dim=%lld eps=%g bias=%d input_mean=%g", (long long)rows, (long long)dim,
             eps, bias, mean);
    float *x = rnd_normal(rows * dim, mean, 1), *w = rnd_normal(dim, 1, 0.2f), *b = rnd_normal(dim, 0, 0.5f);
    double *ref = tk_alloc((size_t)(rows * dim) * 8);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        double mu = 0, ss = 0;
        if (layer) {
            for (int64_t i = 0; i < dim; i++)
                mu += xr[i];
            mu /= (double)dim;
        }
        for (int64_t i = 0; i < dim; i++)
            ss += (xr[i] - mu) * (xr[i] - mu);
        double inv = 1 / sqrt(ss / (double)dim + eps);
        for (int64_t i = 0; i < dim; i++)
            ref[r * dim + i] = (xr[i] - mu) * inv * w[i] + (layer && bias ? b[i] : 0);
    }
    tk_t tx = tk_new(4 * 7, (size_t)(rows * dim) * 4, x), tw = tk_new(4 * 3, (size_t)dim * 4, w);
    tk_t tb = tk_new(4 * 9, (size_t)dim * 4, b), ty = tk_new(OFF, (size_t)(rows * dim) * 4, NULL);
    rt_seq_begin(S);
    if (layer)
        rt_op_layernorm(S, tk_ref(&ty), tk_ref(&tx), tk_ref(&tw), bias ? tk_ref(&tb) : (rt_ref){ 0 }, rows, dim,
                        eps);
    else
        rt_op_rmsnorm(S, tk_ref(&ty), tk_ref(&tx), tk_ref(&tw), rows, dim, eps);
    if (run(op, cs)) {
        float *y = tk_alloc(ty.bytes);
        tk_read(&ty, y);
        check_nmse(op, cs, y, ref, rows * dim);
        guards(op, cs, &ty);
        free(y);
    }
    tk_free(&tx), tk_free(&tw), tk_free(&tb), tk_free(&ty);
    free(x), free(w), free(b), free(ref);
}

/* softmax of rows of mean + std * N(0, 1), times scale */
static void case_softmax(int64_t rows, int64_t cols, float scale, float mean, float std)
{
    char cs[160];
    snprintf(cs, sizeof cs, "rows=%lld cols=%lld scale=%g input=%g+%g*N(0,1)", (long long)rows, (long long)cols,
             scale, mean, std);
    float *x = rnd_normal(rows * cols, mean, std);
    double *ref = tk_alloc((size_t)(rows * cols) * 8);
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t c = 0; c < cols; c++)
            m = fmax(m, (double)x[r * cols + c] * scale);
        for (int64_t c = 0; c < cols; c++)
            s += ref[r * cols + c] = exp((double)x[r * cols + c] * scale - m);
        for (int64_t c = 0; c < cols; c++)
            ref[r * cols + c] /= s;
    }
    tk_t tx = tk_new(4 * 11, (size_t)(rows * cols) * 4, x), ty = tk_new(OFF, (size_t)(rows * cols) * 4, NULL);
    rt_seq_begin(S);
    rt_op_softmax(S, tk_ref(&ty), tk_ref(&tx), rows, cols, scale);
    if (run(OP_SOFTMAX, cs)) {
        float *y = tk_alloc(ty.bytes);
        tk_read(&ty, y);
        check_nmse(OP_SOFTMAX, cs, y, ref, rows * cols);
        guards(OP_SOFTMAX, cs, &ty);
        free(y);
    }
    tk_free(&tx), tk_free(&ty);
    free(x), free(ref);
}

/* ---------------------------------------------------------------- rope */

/* llama.cpp's YaRN correction dimension: the dimension at which n_ctx_orig positions turn n_turns times:
 * solving n_turns = n_ctx_orig / (2 pi base^(2 d / n_rot)) for d. */
static double yarn_corr_dim(int n_rot, int n_ctx_orig, double n_turns, double base)
{
    return n_rot * log(n_ctx_orig / (n_turns * 2 * M_PI)) / (2 * log(base));
}

/* RoPE in place on X [rows][n_heads][head_dim] at positions pos[] (random, not consecutive, < max_pos; the
 * second row at max_pos - 1). The reference follows llama.cpp's rope_yarn: theta_extrap = pos *
 * base^(-2i/n_rot) / ff[i]; theta_interp = freq_scale * theta_extrap; with ext_factor != 0 the two are
 * mixed by ext_factor * a ramp that falls from 1 to 0 over the pairs between the correction dims of
 * beta_fast and beta_slow (clamped to [0, n_rot - 1]), and the magnitude is scaled by
 * attn_factor * (1 + 0.1 ln(1/freq_scale)). with_ff: random freq_factors in [1, 8]. */
static void case_rope(int64_t rows, int n_heads, int head_dim, int max_pos, rt_rope_desc rd, bool with_ff)
{
    char cs[240];
    snprintf(cs, sizeof cs,
             "%s rows=%lld heads=%d head_dim=%d n_rot=%d base=%g freq_scale=%g ext=%g attn=%g beta=%g/%g "
             "n_ctx_orig=%d ff=%d max_pos=%d",
             rd.mode == RT_ROPE_NEOX ? "neox" : "adjacent", (long long)rows, n_heads, head_dim, rd.n_rot, rd.base,
             rd.freq_scale, rd.ext_factor, rd.attn_factor, rd.beta_fast, rd.beta_slow, rd.n_ctx_orig, with_ff,
             max_pos);
    enum rt_rope_mode mode = rd.mode;
    int n_rot = rd.n_rot;
    double base = rd.base, freq_scale = rd.freq_scale, ext_factor = rd.ext_factor;
    int64_t n = rows * n_heads * head_dim;
    float *x = rnd_normal(n, 0, 1), *ff = rnd_uniform(n_rot / 2, 1, 8);
    int32_t *pos = tk_alloc((size_t)rows * 4);
    for (int64_t r = 0; r < rows; r++)
        pos[r] = (int32_t)(tu_u32(&R) % (uint32_t)max_pos);
    if (rows > 1)
        pos[1] = max_pos - 1;
    double *ref = tk_alloc((size_t)n * 8);
    double lo = 0, hi = 0;
    if (ext_factor != 0) {
        lo = fmax(0, floor(yarn_corr_dim(n_rot, rd.n_ctx_orig, rd.beta_fast, base)));
        hi = fmin(n_rot - 1, ceil(yarn_corr_dim(n_rot, rd.n_ctx_orig, rd.beta_slow, base)));
        if (getenv("VKLLM_TEST_VERBOSE"))
            printf("  rope: YaRN correction dims %g .. %g\n", lo, hi);
    }
    for (int64_t r = 0; r < rows; r++)
        for (int h = 0; h < n_heads; h++) {
            const float *xh = x + (r * n_heads + h) * head_dim;
            double *yh = ref + (r * n_heads + h) * head_dim;
            for (int d = 0; d < head_dim; d++)
                yh[d] = xh[d];
            for (int i = 0; i < n_rot / 2; i++) {
                double theta_extrap = pos[r] * pow(base, -2.0 * i / n_rot) / (with_ff ? ff[i] : 1.0);
                double theta_interp = freq_scale * theta_extrap, theta = theta_interp, mscale = rd.attn_factor;
                if (ext_factor != 0) {
                    double ramp = 1 - fmin(1, fmax(0, (i - lo) / fmax(0.001, hi - lo)));
                    double mix = ramp * ext_factor;
                    theta = theta_interp * (1 - mix) + theta_extrap * mix;
                    mscale *= 1 + 0.1 * log(1 / freq_scale);
                }
                int i0 = mode == RT_ROPE_NEOX ? i : 2 * i, i1 = mode == RT_ROPE_NEOX ? i + n_rot / 2 : 2 * i + 1;
                double c = cos(theta) * mscale, s = sin(theta) * mscale;
                yh[i0] = xh[i0] * c - xh[i1] * s;
                yh[i1] = xh[i0] * s + xh[i1] * c;
            }
        }
    tk_t tx = tk_new(OFF, (size_t)n * 4, x), tp = tk_new_in(RT_MEM_UPLOAD, 4 * 3, (size_t)rows * 4, pos);
    tk_t tf = tk_new(4 * 5, (size_t)(n_rot / 2) * 4, ff);
    if (with_ff)
        rd.freq_factors = tk_ref(&tf);
    rt_seq_begin(S);
    rt_op_rope(S, tk_ref(&tx), tk_ref(&tp), rows, n_heads, head_dim, &rd);
    if (run(OP_ROPE, cs)) {
        float *y = tk_alloc(tx.bytes);
        tk_read(&tx, y);
        check_nmse(OP_ROPE, cs, y, ref, n);
        int64_t changed = 0; /* dims past n_rot pass through bit for bit */
        for (int64_t rh = 0; rh < rows * n_heads; rh++)
            for (int d = n_rot; d < head_dim; d++)
                changed += f32_bits(y[rh * head_dim + d]) != f32_bits(x[rh * head_dim + d]);
        CHECK(changed == 0, "rope %s: %lld values past n_rot changed (seed %llu)", cs, (long long)changed,
              (unsigned long long)SEED);
        guards(OP_ROPE, cs, &tx);
        free(y);
    }
    tk_free(&tx), tk_free(&tp), tk_free(&tf);
    free(x), free(ff), free(pos), free(ref);
}

/* ---------------------------------------------------------------- elementwise */

static double gelu_ref(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* add / mul (b broadcast at i % nb), scale, swiglu, gelu over n elements of std * N(0, 1); in place (y = a)
 * when asked. With std < 0 the first operand is large instead: +-[5, 1000] log-uniform (where exp and tanh
 * overflow if computed naively), checked on its own so that it does not swamp the error of normal values. */
static void case_eltwise(int op, int64_t n, int64_t nb, float s, float std, bool in_place)
{
    char cs[160];
    if (std < 0)
        snprintf(cs, sizeof cs, "n=%lld nb=%lld input=+-[5,1000] in_place=%d", (long long)n, (long long)nb, in_place);
    else
        snprintf(cs, sizeof cs, "n=%lld nb=%lld s=%g input=%g*N(0,1) in_place=%d", (long long)n, (long long)nb, s,
                 std, in_place);
    float *a = rnd_normal(n, 0, std), *b = rnd_normal(nb, 0, 1);
    for (int64_t i = 0; i < n && std < 0; i++)
        a[i] = (tu_u32(&R) & 1 ? -1 : 1) * expf(tu_uniform(&R, logf(5), logf(1000)));
    double *ref = tk_alloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = b[i % nb];
        ref[i] = op == OP_ADD ? x + y : op == OP_MUL ? x * y : op == OP_SCALE ? x * s
               : op == OP_SWIGLU ? x / (1 + exp(-x)) * y : gelu_ref(x);
    }
    tk_t ta = tk_new(in_place ? OFF : 4 * 3, (size_t)n * 4, a), tb = tk_new(4 * 5, (size_t)nb * 4, b);
    tk_t ty = in_place ? ta : tk_new(OFF, (size_t)n * 4, NULL);
    rt_ref y = tk_ref(&ty), ra = tk_ref(&ta), rb = tk_ref(&tb);
    rt_seq_begin(S);
    switch (op) {
    case OP_ADD: rt_op_add(S, y, ra, rb, n, nb); break;
    case OP_MUL: rt_op_mul(S, y, ra, rb, n, nb); break;
    case OP_SCALE: rt_op_scale(S, y, ra, n, s); break;
    case OP_SWIGLU: rt_op_swiglu(S, y, ra, rb, n); break;
    default: rt_op_gelu(S, y, ra, n); break;
    }
    if (run(op, cs)) {
        float *got = tk_alloc(ty.bytes);
        tk_read(&ty, got);
        check_nmse(op, cs, got, ref, n);
        guards(op, cs, &ty);
        free(got);
    }
    if (!in_place)
        tk_free(&ty);
    tk_free(&ta), tk_free(&tb);
    free(a), free(b), free(ref);
}

/* ---------------------------------------------------------------- gathers and scatters */

/* y[r] = table[ids[r]] with a table of type t at an odd element offset; some ids out of range
 * (-1, n_table, INT32_MAX, INT32_MIN) must give zero rows */
static void case_get_rows(rt_dtype t, int64_t rows, int64_t n_table, int64_t dim)
{
    char cs[160];
    snprintf(cs, sizeof cs, "table=%s rows=%lld n_table=%lld dim=%lld", dtype_name(t), (long long)rows,
             (long long)n_table, (long long)dim);
    size_t ts = rt_dtype_size(t);
    float *tab = rnd_normal(n_table * dim, 0, 1);
    void *enc = encode(t, tab, n_table * dim);
    int32_t *ids = tk_alloc((size_t)rows * 4);
    static const int32_t bad[] = { -1, 0, INT32_MAX, INT32_MIN }; /* 0 stands for n_table */
    for (int64_t r = 0; r < rows; r++)
        ids[r] = (int32_t)(tu_u32(&R) % (uint32_t)n_table);
    /* a table above the binding range is bound in pieces: rows on both sides of where the first piece ends */
    int64_t piece = (int64_t)(rt_ctx_device(G.ctx)->max_storage_buffer_range / ((uint64_t)dim * ts));
    for (int64_t i = 0; i < 6 && piece < n_table && 6 + i < rows; i++)
        ids[6 + i] = (int32_t)(piece - 3 + i);
    for (int i = 0; i < 4 && rows >= 5; i++)
        ids[1 + (i * 2) % (rows - 1)] = bad[i] ? bad[i] : (int32_t)n_table;
    if (rows >= 3)
        ids[rows - 1] = ids[0]; /* a duplicate */
    double *ref = tk_alloc((size_t)(rows * dim) * 8);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < dim; c++)
            ref[r * dim + c] = ids[r] >= 0 && ids[r] < n_table ? tab[ids[r] * dim + c] : 0;
    tk_t tt = tk_new(ts * 5, (size_t)(n_table * dim) * ts, enc);
    tk_t ti = tk_new_in(RT_MEM_UPLOAD, 4 * 3, (size_t)rows * 4, ids);
    tk_t ty = tk_new(OFF, (size_t)(rows * dim) * 4, NULL);
    rt_seq_begin(S);
    rt_op_get_rows(S, tk_ref(&ty), tk_ref(&tt), t, tk_ref(&ti), rows, n_table, dim);
    if (run(OP_GET_ROWS, cs)) {
        float *y = tk_alloc(ty.bytes);
        tk_read(&ty, y);
        check_nmse(OP_GET_ROWS, cs, y, ref, rows * dim);
        int64_t bad_bits = 0;
        for (int64_t i = 0; i < rows * dim; i++)
            bad_bits += f32_bits(y[i]) != f32_bits((float)ref[i]);
        CHECK(bad_bits == 0, "get_rows %s: %lld values not bit-exact (seed %llu)", cs, (long long)bad_bits,
              (unsigned long long)SEED);
        guards(OP_GET_ROWS, cs, &ty);
        free(y);
    }
    tk_free(&tt), tk_free(&ti), tk_free(&ty);
    free(tab), free(enc), free(ids), free(ref);
}

/* true when h is src rounded to f16 toward zero and that differs from round-to-nearest-even rtne: Vulkan
 * leaves the rounding of packHalf2x16 to the implementation (RTE or RTZ) */
static bool f16_rtz_neighbour(float src, uint16_t rtne, uint16_t h)
{
    float fr = f16_to_f32(rtne);
    if (fr == src || (h & 0x8000u) != (rtne & 0x8000u))
        return false;
    /* same sign: magnitudes order as the low 15 bits; toward zero is one step below a rounded-up rtne */
    return fabsf(fr) > fabsf(src) && (rtne & 0x7FFFu) > 0 && (h & 0x7FFFu) == (rtne & 0x7FFFu) - 1u;
}

/* cache[pos[r]] = src[r] into an f32 or f16 cache holding earlier values; positions >= cap (and < 0) are
 * skipped, other rows keep their bits; f32 values are copied bit for bit, f16 values rounded to nearest
 * even (or toward zero, which Vulkan allows: counted and printed) */
static void case_kv_write(rt_dtype t, int64_t rows, int64_t dim, int64_t cap)
{
    char cs[160];
    snprintf(cs, sizeof cs, "cache=%s rows=%lld dim=%lld cap=%lld", dtype_name(t), (long long)rows, (long long)dim,
             (long long)cap);
    size_t cs_ = rt_dtype_size(t);
    float *old = rnd_normal(cap * dim, 0, 1), *src = rnd_normal(rows * dim, 0, 2);
    void *enc = encode(t, old, cap * dim);
    /* distinct positions: a shuffled prefix of 0..cap-1, then out-of-range ones */
    int32_t *perm = tk_alloc((size_t)cap * 4), *pos = tk_alloc((size_t)rows * 4);
    for (int64_t i = 0; i < cap; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = cap - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_u32(&R) % (uint32_t)(i + 1));
        int32_t tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    static const int32_t skip[] = { 0, 3, INT32_MAX, -1, INT32_MIN }; /* cap + skip[i] for the first two */
    int n_skip = rows >= 8 ? 5 : rows >= 3 ? 1 : 0;
    for (int64_t r = 0; r < rows; r++)
        pos[r] = r < cap ? perm[r] : (int32_t)cap;
    for (int i = 0; i < n_skip; i++)
        pos[1 + i] = i < 2 ? (int32_t)cap + skip[i] : skip[i];
    /* expected cache bits, and for each written value its source (NaN: not written) */
    uint8_t *want = tk_alloc((size_t)(cap * dim) * cs_);
    memcpy(want, enc, (size_t)(cap * dim) * cs_);
    float *from = tk_alloc((size_t)(cap * dim) * 4);
    for (int64_t i = 0; i < cap * dim; i++)
        from[i] = NAN;
    for (int64_t r = 0; r < rows; r++) {
        if (pos[r] < 0 || pos[r] >= cap)
            continue;
        for (int64_t c = 0; c < dim; c++) {
            size_t at = (size_t)(pos[r] * dim + c);
            from[at] = src[r * dim + c];
            if (t == RT_F32)
                memcpy(want + at * 4, &src[r * dim + c], 4);
            else {
                uint16_t h = f32_to_f16(src[r * dim + c]);
                memcpy(want + at * 2, &h, 2);
            }
        }
    }
    tk_t tc = tk_new(OFF, (size_t)(cap * dim) * cs_, enc), tsrc = tk_new(4 * 3, (size_t)(rows * dim) * 4, src);
    tk_t tp = tk_new_in(RT_MEM_UPLOAD, 4 * 5, (size_t)rows * 4, pos);
    rt_seq_begin(S);
    rt_op_kv_write(S, tk_ref(&tc), t, tk_ref(&tsrc), tk_ref(&tp), rows, dim, cap);
    if (run(OP_KV_WRITE, cs)) {
        uint8_t *got = tk_alloc(tc.bytes);
        tk_read(&tc, got);
        int64_t wrong = 0, rtz = 0, n = cap * dim;
        float *gf = tk_alloc((size_t)n * 4);
        double *wf = tk_alloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++) {
            uint16_t hg, hw;
            if (t == RT_F32) {
                memcpy(&gf[i], got + i * 4, 4);
                float w;
                memcpy(&w, want + i * 4, 4);
                wf[i] = w;
                wrong += f32_bits(gf[i]) != f32_bits(w);
            } else {
                memcpy(&hg, got + i * 2, 2);
                memcpy(&hw, want + i * 2, 2);
                if (hg != hw && !isnan(from[i]) && f16_rtz_neighbour(from[i], hw, hg))
                    hw = hg, rtz++;
                gf[i] = f16_to_f32(hg), wf[i] = f16_to_f32(hw);
                wrong += hg != hw;
            }
        }
        if (rtz)
            printf("kv_write %s: %lld values rounded toward zero, not to nearest even\n", cs, (long long)rtz);
        check_nmse(OP_KV_WRITE, cs, gf, wf, n);
        CHECK(wrong == 0, "kv_write %s: %lld of %lld cache values differ from the expected bits (seed %llu)", cs,
              (long long)wrong, (long long)n, (unsigned long long)SEED);
        guards(OP_KV_WRITE, cs, &tc);
        free(got), free(gf), free(wf);
    }
    tk_free(&tc), tk_free(&tsrc), tk_free(&tp);
    free(old), free(src), free(enc), free(perm), free(pos), free(want), free(from);
}

/* argmax of each row; rows cycle through: random values, the max planted at three places (first index
 * wins, placed so that the tie crosses threads), all equal (0), all -inf (0) */
static void case_argmax(int64_t rows, int64_t cols)
{
    char cs[160];
    snprintf(cs, sizeof cs, "rows=%lld cols=%lld", (long long)rows, (long long)cols);
    float *x = rnd_uniform(rows * cols, -5, 5);
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        if (r % 4 == 1) {
            int64_t a = (int64_t)(tu_u32(&R) % (uint32_t)cols);
            xr[a] = 7;
            xr[(a + 256 + 17) % cols] = 7;
            xr[(a + cols / 2 + 5) % cols] = 7;
            if (a >= 9)
                xr[a - 9] = 7;
        } else if (r % 4 == 2) {
            for (int64_t c = 0; c < cols; c++)
                xr[c] = 0.5f;
        } else if (r % 4 == 3) {
            for (int64_t c = 0; c < cols; c++)
                xr[c] = -INFINITY;
        }
    }
    int32_t *want = tk_alloc((size_t)rows * 4);
    for (int64_t r = 0; r < rows; r++) {
        int64_t best = 0;
        for (int64_t c = 1; c < cols; c++)
            if (x[r * cols + c] > x[r * cols + best])
                best = c;
        want[r] = (int32_t)best;
    }
    tk_t tx = tk_new(4 * 3, (size_t)(rows * cols) * 4, x), to = tk_new_in(RT_MEM_READBACK, OFF, (size_t)rows * 4, NULL);
    rt_seq_begin(S);
    rt_op_argmax(S, tk_ref(&to), tk_ref(&tx), rows, cols);
    if (run(OP_ARGMAX, cs)) {
        int32_t *got = tk_alloc(to.bytes);
        tk_read(&to, got);
        float *gf = tk_alloc((size_t)rows * 4);
        double *wf = tk_alloc((size_t)rows * 8);
        for (int64_t r = 0; r < rows; r++) {
            gf[r] = (float)got[r], wf[r] = want[r];
            CHECK(got[r] == want[r], "argmax %s: row %lld gave %d, expected %d (seed %llu)", cs, (long long)r, got[r],
                  want[r], (unsigned long long)SEED);
        }
        check_nmse(OP_ARGMAX, cs, gf, wf, rows);
        guards(OP_ARGMAX, cs, &to);
        free(got), free(gf), free(wf);
    }
    tk_free(&tx), tk_free(&to);
    free(x), free(want);
}

/* ---------------------------------------------------------------- attention */

/* Set: an f16 K cache starts at an odd element (the kernels' unpaired loads); kv_write takes even ones. */
static bool attn_odd_f16;

/* Causal attention of `rows` query rows at positions pos0 .. pos0+rows-1 against K, V caches of cap rows.
 * Cache rows past the last position hold NaN: they must not be read. With via_kv_write the cache is
 * filled as a model does it: rows 0..pos0-1 by an earlier kv_write, this chunk's rows by kv_write in the
 * same sequence as the attention. */
static void case_attention(int n_heads, int n_kv_heads, int head_dim, rt_dtype ct, int64_t rows, int64_t pos0,
                           int64_t cap, bool via_kv_write)
{
    if (!tu_take_case())
        return;
    char cs[200];
    bool odd = attn_odd_f16 && ct == RT_F16 && !via_kv_write;
    snprintf(cs, sizeof cs, "heads=%d/%d head_dim=%d cache=%s rows=%lld pos=%lld..%lld cap=%lld kv_write=%d%s%s",
             n_heads, n_kv_heads, head_dim, dtype_name(ct), (long long)rows, (long long)pos0,
             (long long)(pos0 + rows - 1), (long long)cap, via_kv_write, odd ? " k_off=odd" : "",
             getenv("VKLLM_ATTN_TILED") ? " tiled" : "");
    int64_t qd = (int64_t)n_heads * head_dim, kvd = (int64_t)n_kv_heads * head_dim, n_keys = pos0 + rows;
    size_t es = rt_dtype_size(ct);
    float *q = rnd_normal(rows * qd, 0, 1), *k = rnd_normal(n_keys * kvd, 0, 1), *v = rnd_normal(n_keys * kvd, 0, 1);
    void *kenc = encode(ct, k, n_keys * kvd), *venc = encode(ct, v, n_keys * kvd); /* k, v now rounded */
    int32_t *pos = tk_alloc((size_t)rows * 4);
    for (int64_t r = 0; r < rows; r++)
        pos[r] = (int32_t)(pos0 + r);
    float scale = 1.0f / sqrtf((float)head_dim);
    double *ref = tk_alloc((size_t)(rows * qd) * 8), *sc = tk_alloc((size_t)n_keys * 8);
    for (int64_t r = 0; r < rows; r++)
        for (int h = 0; h < n_heads; h++) {
            int kvh = h / (n_heads / n_kv_heads);
            const float *qh = q + r * qd + (int64_t)h * head_dim;
            double m = -INFINITY, l = 0;
            for (int64_t j = 0; j <= pos[r]; j++) {
                double s = 0;
                for (int d = 0; d < head_dim; d++)
                    s += (double)qh[d] * k[j * kvd + (int64_t)kvh * head_dim + d];
                sc[j] = s * scale;
                m = fmax(m, sc[j]);
            }
            for (int64_t j = 0; j <= pos[r]; j++)
                l += sc[j] = exp(sc[j] - m);
            for (int d = 0; d < head_dim; d++) {
                double o = 0;
                for (int64_t j = 0; j <= pos[r]; j++)
                    o += sc[j] * v[j * kvd + (int64_t)kvh * head_dim + d];
                ref[r * qd + (int64_t)h * head_dim + d] = o / l;
            }
        }
    /* caches full of NaN, then the known rows */
    size_t cbytes = (size_t)(cap * kvd) * es;
    uint32_t *nan_fill = tk_alloc((cbytes + 3) / 4 * 4);
    for (size_t i = 0; i < (cbytes + 3) / 4; i++)
        nan_fill[i] = ct == RT_F32 ? 0x7FC00000u : 0x7E007E00u;
    tk_t tk = tk_new(ct == RT_F32 ? 4 * 9 : odd ? 4 * 2 + 2 : 4 * 2, cbytes, nan_fill), tv = tk_new(4 * 4, cbytes, nan_fill);
    tk_t tq = tk_new(4 * 5, (size_t)(rows * qd) * 4, q), tp = tk_new_in(RT_MEM_UPLOAD, 4 * 3, (size_t)rows * 4, pos);
    tk_t to = tk_new(OFF, (size_t)(rows * qd) * 4, NULL);
    tk_t tks = { 0 }, tvs = { 0 }; /* f32 source rows for kv_write */
    size_t first = via_kv_write ? (size_t)(pos0 * kvd) : (size_t)(n_keys * kvd);
    if (first) {
        rt_buffer_write(tk.b, tk.off, kenc, first * es);
        rt_buffer_write(tv.b, tv.off, venc, first * es);
    }
    if (via_kv_write) {
        tks = tk_new(0, (size_t)(rows * kvd) * 4, k + pos0 * kvd);
        tvs = tk_new(4 * 7, (size_t)(rows * kvd) * 4, v + pos0 * kvd);
    }
    rt_attn_desc ad = { .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .scale = scale,
                        .cap = cap, .cache_type = ct };
    rt_seq_begin(S);
    if (via_kv_write) {
        rt_op_kv_write(S, tk_ref(&tk), ct, tk_ref(&tks), tk_ref(&tp), rows, kvd, cap);
        rt_op_kv_write(S, tk_ref(&tv), ct, tk_ref(&tvs), tk_ref(&tp), rows, kvd, cap);
    }
    rt_op_attention(S, tk_ref(&to), tk_ref(&tq), tk_ref(&tk), tk_ref(&tv), tk_ref(&tp), rows, &ad);
    if (run(OP_ATTENTION, cs)) {
        float *o = tk_alloc(to.bytes);
        tk_read(&to, o);
        check_nmse(OP_ATTENTION, cs, o, ref, rows * qd);
        guards(OP_ATTENTION, cs, &to);
        free(o);
    }
    tk_free(&tk), tk_free(&tv), tk_free(&tq), tk_free(&tp), tk_free(&to);
    if (via_kv_write)
        tk_free(&tks), tk_free(&tvs);
    free(q), free(k), free(v), free(kenc), free(venc), free(pos), free(ref), free(sc), free(nan_fill);
}

/* Reopens the device and the sequence with subgroup operations as the device has them, or without
 * (VKLLM_NO_SUBGROUP: the kernels' shared-memory reductions); exits when the device cannot be opened. */
static void tk_reopen(bool no_subgroup)
{
    rt_seq_destroy(S);
    tu_gpu_close(&G);
    if (no_subgroup)
        setenv("VKLLM_NO_SUBGROUP", "1", 1);
    else
        unsetenv("VKLLM_NO_SUBGROUP");
    bool ok = tu_gpu_open(&G) && rt_seq_create(G.ctx, &S) == RT_OK;
    unsetenv("VKLLM_NO_SUBGROUP");
    if (!ok) {
        fprintf(stderr, "test_kernels: cannot reopen the device\n");
        exit(1);
    }
}

/* Runs `cases` with the attention kernel meant for GPUs (attention.comp), with subgroup operations where
 * the device has them, then `shared_cases` (if any) with its shared-memory reductions instead: a CPU
 * driver runs that kernel when VKLLM_ATTN_TILED is set (else attention_cpu.comp), a GPU always. The
 * device is left open with subgroup operations on. */
static void attention_gpu_pass(void (*cases)(void), void (*shared_cases)(void))
{
    const char *was = getenv("VKLLM_ATTN_TILED");
    bool tiled = was != NULL, sg = rt_ctx_device(G.ctx)->subgroup_arithmetic;
    setenv("VKLLM_ATTN_TILED", "1", 1);
    if (sg && !rt_ctx_device(G.ctx)->use_subgroup_arithmetic)
        tk_reopen(false);
    cases();
    if (sg && shared_cases) {
        tk_reopen(true);
        shared_cases();
        tk_reopen(false);
    }
    if (!tiled)
        unsetenv("VKLLM_ATTN_TILED");
}

/* ---------------------------------------------------------------- calibration kernels */

static void case_copy(size_t n, size_t off)
{
    char cs[96];
    snprintf(cs, sizeof cs, "bytes=%zu off=%zu", n, off);
    uint32_t *src = tk_alloc(n);
    for (size_t i = 0; i < n / 4; i++)
        src[i] = tu_u32(&R);
    tk_t ts = tk_new(off, n, src), td = tk_new(off, n, NULL);
    rt_seq_begin(S);
    rt_op_copy_kernel(S, tk_ref(&td), tk_ref(&ts), n);
    if (run(OP_COPY, cs)) {
        uint32_t *got = tk_alloc(n);
        tk_read(&td, got);
        ops[OP_COPY].cases++;
        CHECK(memcmp(got, src, n) == 0, "copy_kernel %s: copy differs (seed %llu)", cs, (unsigned long long)SEED);
        guards(OP_COPY, cs, &td);
        free(got);
    }
    tk_free(&ts), tk_free(&td);
    free(src);
}

/* off: the kernel takes only aligned offsets (a multiple of 256 is one on every device) */
static void case_fma(int64_t n_threads, int iters, size_t off)
{
    char cs[96];
    snprintf(cs, sizeof cs, "threads=%lld iters=%d off=%zu", (long long)n_threads, iters, off);
    uint32_t *nan_fill = tk_alloc((size_t)n_threads * 4);
    for (int64_t i = 0; i < n_threads; i++)
        nan_fill[i] = 0x7FC00000u; /* an unwritten value stays NaN */
    tk_t td = tk_new(off, (size_t)n_threads * 4, nan_fill);
    rt_seq_begin(S);
    rt_op_fma_kernel(S, tk_ref(&td), n_threads, iters);
    if (run(OP_FMA, cs)) {
        float *got = tk_alloc(td.bytes);
        tk_read(&td, got);
        int64_t bad = 0;
        for (int64_t i = 0; i < n_threads; i++)
            bad += !isfinite(got[i]);
        ops[OP_FMA].cases++;
        CHECK(bad == 0, "fma_kernel %s: %lld values not finite or not written", cs, (long long)bad);
        guards(OP_FMA, cs, &td);
        free(got);
    }
    tk_free(&td);
    free(nan_fill);
}

/* ---------------------------------------------------------------- bad arguments */

/* Ops must refuse arguments outside their contract with RT_ERR_INVALID (and record nothing). */
static void bad_arguments(void)
{
    tk_t a = tk_new(0, 4096, NULL), p = tk_new(0, 64, NULL);
    rt_ref r = tk_ref(&a), rp = tk_ref(&p), none = { 0 };
    struct {
        const char *what;
        int rc;
    } c[10];
    int n = 0;
#define TRY(what_, call)                                                                                       \
    do {                                                                                                       \
        rt_seq_begin(S);                                                                                       \
        call;                                                                                                  \
        c[n].what = what_;                                                                                     \
        c[n++].rc = rt_seq_end(S);                                                                             \
    } while (0)
    rt_rope_desc odd = { .n_rot = 7, .base = 10000 }, wide = { .n_rot = 16, .base = 10000 };
    rt_attn_desc gqa = { .n_heads = 6, .n_kv_heads = 4, .head_dim = 8, .scale = 1, .cap = 4, .cache_type = RT_F32 };
    rt_attn_desc hd = { .n_heads = 1, .n_kv_heads = 1, .head_dim = 512, .scale = 1, .cap = 1, .cache_type = RT_F32 };
    TRY("copy of 20 bytes", rt_op_copy_kernel(S, r, r, 20));
    TRY("rope with odd n_rot", rt_op_rope(S, r, rp, 1, 1, 8, &odd));
    TRY("rope with n_rot > head_dim", rt_op_rope(S, r, rp, 1, 1, 8, &wide));
    TRY("attention with 6 heads over 4 kv heads", rt_op_attention(S, r, r, r, r, rp, 1, &gqa));
    TRY("attention with head_dim 512", rt_op_attention(S, r, r, r, r, rp, 1, &hd));
    TRY("kv_write of odd dim into an f16 cache", rt_op_kv_write(S, r, RT_F16, r, rp, 1, 7, 4));
    TRY("matmul with an unknown weight type", rt_op_matmul(S, r, r, r, (rt_dtype)5, none, 1, 4, 4));
    TRY("scale past the buffer's end", rt_op_scale(S, r, r, 4096, 1.0f));
    TRY("copy kernel at an unaligned offset", rt_op_copy_kernel(S, rt_at(a.b, 16 * 3 + 4), r, 256));
    TRY("fma kernel at an unaligned offset", rt_op_fma_kernel(S, rt_at(a.b, OFF), 16, 1));
#undef TRY
    for (int i = 0; i < n; i++)
        CHECK(c[i].rc == RT_ERR_INVALID, "%s: status %d (%s), expected RT_ERR_INVALID", c[i].what, c[i].rc,
              rt_status_string(c[i].rc));
    tk_free(&a), tk_free(&p);
}

/* ---------------------------------------------------------------- driver */

/* Opens the device, the sequence and the RNG; false when there is no device. */
static bool tk_open(const char *name)
{
    SEED = tu_seed(name);
    R.s = SEED;
    if (!tu_gpu_open(&G))
        return false;
    int rc = rt_seq_create(G.ctx, &S);
    CHECK(rc == RT_OK, "sequence: %s", rt_ctx_errmsg(G.ctx));
    return rc == RT_OK;
}

static int tk_close(const char *name, double seconds)
{
    printf("%-12s %6s %12s %12s\n", "op", "cases", "max nmse", "tolerance");
    for (int i = 0; i < OP_COUNT; i++)
        if (ops[i].cases && (i == OP_COPY || i == OP_FMA))
            printf("%-12s %6d %12s %12s\n", ops[i].name, ops[i].cases, "-", i == OP_COPY ? "bit-exact" : "finite");
        else if (ops[i].cases)
            printf("%-12s %6d %12.3g %12.3g\n", ops[i].name, ops[i].cases, ops[i].max_nmse, ops[i].tol);
    printf("%s: %.1f s\n", name, seconds);
    rt_seq_destroy(S);
    tu_gpu_close(&G);
    return tu_finish(name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#ifndef TK_NO_MAIN
/* attention's cases for every kernel */
static void attention_cases(void)
{
    /* every head size and GQA ratio and cache type: decode at one position, prefill 0..n-1, and a later chunk
     * (across the 64-key tile boundary) after an earlier one filled the cache */
    static const int hds[] = { 8, 64, 80, 128, 256 }, gqa[][2] = { { 8, 4 }, { 8, 1 }, { 4, 4 } };
    for (int h = 0; h < 5; h++)
        for (int g = 0; g < 3; g++)
            for (int t = 0; t < 2; t++) {
                rt_dtype ct = (rt_dtype)t;
                case_attention(gqa[g][0], gqa[g][1], hds[h], ct, 1, 37 + 31 * g + h, 39 + 31 * g + h + 30 * t, false);
                case_attention(gqa[g][0], gqa[g][1], hds[h], ct, 11 + g, 0, 11 + g + 2 * t + 1, false);
                case_attention(gqa[g][0], gqa[g][1], hds[h], ct, 9, 60 + h, 80, true);
            }
    /* deep in the context: lavapipe ends an invocation's loops after 65535 iterations in all (see
     * attention.comp), which once cut these off at 7.5K and 15K keys */
    case_attention(2, 1, 256, RT_F16, 1, 16383, 16384, false);
    case_attention(1, 1, 128, RT_F32, 1, 32767, 32768, false);
    /* decode with the keys split into ranges (the GPU kernel when its workgroups are few, from 256 keys,
     * on a CPU driver also past 2K; attention_cpu.comp past 16K): ranges full, partly filled and empty,
     * merged by attn_combine */
    case_attention(4, 2, 64, RT_F16, 1, 20000, 40000, false);
    case_attention(2, 2, 64, RT_F32, 2, 1500, 3000, false);
    case_attention(8, 4, 64, RT_F32, 1, 37, 64, false);
    case_attention(8, 1, 128, RT_F16, 1, 200, 257, false);
    case_attention(4, 4, 256, RT_F32, 1, 70, 100, false);
    case_attention(4, 4, 80, RT_F32, 17, 0, 32, false);
    case_attention(8, 4, 256, RT_F16, 13, 0, 16, false);
    case_attention(8, 1, 8, RT_F32, 9, 23, 40, true);
    case_attention(8, 4, 128, RT_F16, 7, 100, 131, true);
    case_attention(4, 4, 64, RT_F16, 70, 0, 80, false);
    case_attention(8, 8, 8, RT_F16, 1, 0, 1, false);
    case_attention(8, 1, 80, RT_F16, 5, 61, 67, true);
}

/* the GPU kernel's own shapes (attention.comp): GQA ratios 1, 4 and 8 at head sizes 64, 128 and 256,
 * f16 and f32 caches; decode at a small and a large position of a long cache (ranges sized from the
 * position: at 12 one range has keys and the others are empty, near 4000 every range has keys, the
 * last one partly), prefill chunks whose query vectors are no multiple of a tile, from the start and
 * after earlier rows (via kv_write) */
static void attention_gpu_cases(void)
{
    static const int ratio[][2] = { { 2, 2 }, { 8, 2 }, { 8, 1 } }, hds[] = { 64, 128, 256 };
    for (int g = 0; g < 3; g++)
        for (int h = 0; h < 3; h++) {
            rt_dtype ct = (g + h) % 2 ? RT_F16 : RT_F32; /* each ratio and head size sees both */
            case_attention(ratio[g][0], ratio[g][1], hds[h], ct, 1, 12, 4096, false);
            case_attention(ratio[g][0], ratio[g][1], hds[h], ct, 1, 4000 + 7 * h + g, 4096, false);
            case_attention(ratio[g][0], ratio[g][1], hds[h], ct, 37, 0, 40, false);
            case_attention(ratio[g][0], ratio[g][1], hds[h], ct, 45, 500 + 7 * g, 600, true);
        }
    /* few rows, split: their limits in different ranges, a range ending inside a tile */
    case_attention(4, 1, 128, RT_F16, 3, 1000, 1030, false);
    case_attention(16, 2, 64, RT_F32, 2, 300, 2500, true);
    /* 6 and 3 query heads per KV head (tiles partly empty), an odd head size (f16 values one per word),
     * 32 query heads of one KV head (more than a tile) */
    case_attention(6, 1, 64, RT_F16, 5, 20, 64, false);
    case_attention(12, 4, 7, RT_F16, 3, 9, 300, false);
    case_attention(12, 4, 7, RT_F32, 3, 9, 300, false);
    case_attention(32, 1, 128, RT_F16, 1, 700, 800, false);
    /* an f16 K cache at an odd element: values loaded one by one and packed */
    attn_odd_f16 = true;
    case_attention(8, 2, 128, RT_F16, 1, 900, 1000, false);
    case_attention(8, 2, 64, RT_F16, 19, 30, 64, false);
    attn_odd_f16 = false;
}

/* a few of them for the GPU kernel's shared-memory reductions */
static void attention_gpu_few(void)
{
    case_attention(8, 2, 128, RT_F16, 1, 12, 4096, false);
    case_attention(8, 1, 256, RT_F32, 1, 4001, 4096, false);
    case_attention(2, 2, 64, RT_F16, 37, 0, 40, false);
    case_attention(8, 2, 128, RT_F32, 45, 507, 600, true);
    case_attention(6, 1, 64, RT_F16, 5, 20, 64, false);
}

int main(void)
{
    double t0 = now_s();
    if (!tk_open("test_kernels"))
        return tu_finish("test_kernels");

    /* matmul: every m of interest with odd / prime n, k, all weight types, with and without bias */
    static const int64_t ms[] = { 1, 2, 3, 5, 17, 64, 100 };
    static const int64_t nk[][2] = { { 7, 31 }, { 173, 127 }, { 127, 1000 }, { 31, 4099 }, { 1000, 173 },
                                     { 1, 1 }, { 61, 7 } };
    static const rt_dtype fts[] = { RT_F32, RT_F16, RT_BF16 };
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 7; i++) {
            const int64_t *s = nk[(i + 2 * t) % 7];
            case_matmul(ms[i], s[0], s[1], fts[t], (i + t) % 2 == 0, (i % 3) ? OFF : 0);
        }
    /* around the row blocks and tiles a GEMV or GEMM may use (4, 8, 16, 32, 64, 128) in m, n and k */
    static const int64_t mt[] = { 4, 8, 9, 16, 31, 32, 33, 63, 65, 127, 128, 129, 257 };
    static const int64_t nkt[][2] = { { 67, 257 }, { 130, 96 }, { 33, 513 }, { 256, 64 }, { 129, 255 }, { 65, 1 },
                                      { 16, 31 }, { 97, 1025 }, { 63, 128 }, { 1, 33 }, { 128, 129 } };
    for (int i = 0; i < 13; i++) {
        const int64_t *s = nkt[i % 11];
        case_matmul(mt[i], s[0], s[1], fts[i % 3], i % 2 == 1, OFF);
    }
    case_matmul(1, 4096, 4096, RT_F16, false, OFF);   /* a 7B projection, decode */
    case_matmul(7, 1024, 4096, RT_BF16, true, OFF);
    case_matmul(4, 4099, 1000, RT_F32, true, OFF);
    case_matmul_split(RT_F32, 4096, 109, (size_t)512 << 20);

    /* the fused products, the device's own way and the other (VKLLM_MATMUL) */
    const char *own = rt_ctx_device(G.ctx)->type == RT_DEVICE_CPU ? "cpu" : "gpu";
    const char *other = strcmp(own, "cpu") ? "cpu" : "gpu";
    double t_fused = now_s();
    fused_matmuls(own, true);
    setenv("VKLLM_MATMUL", other, 1);
    fused_matmuls(other, false);
    /* the GPU way's GEMV once more with its shared-memory reduction (no subgroup operations) */
    setenv("VKLLM_MATMUL", "gpu", 1);
    setenv("VKLLM_NO_SUBGROUP", "1", 1);
    rt_seq_destroy(S);
    tu_gpu_close(&G);
    if (tu_gpu_open(&G) && rt_seq_create(G.ctx, &S) == RT_OK) {
        case_matmul_fused(1, 67, 256 * 3, RT_Q4_K, RT_Q4_K, true, false, false, 16, 48, "gpu, no subgroup");
        case_matmul_fused(3, 67, 32 * 9, RT_Q8_0, -1, true, true, false, 4 * 5, 48, "gpu, no subgroup");
        case_matmul_fused(8, 33, 328, RT_F16, RT_F16, true, false, false, 16, 48, "gpu, no subgroup");
        case_matmul_fused(2, 29, 37, RT_F32, -1, true, false, true, 16, 16, "gpu, no subgroup");
    }
    unsetenv("VKLLM_NO_SUBGROUP");
    unsetenv("VKLLM_MATMUL");
    printf("fused matmuls: %.1f s\n", now_s() - t_fused);

    case_norm(false, false, 1, 1, 1e-5f, 0);
    case_norm(false, false, 3, 7, 1e-6f, 0);
    case_norm(false, false, 5, 127, 1e-5f, 0);
    case_norm(false, false, 2, 1000, 1e-5f, 1);
    case_norm(false, false, 4, 4099, 1e-6f, 0);
    case_norm(false, false, 7, 4096, 1e-5f, 0);
    case_norm(true, false, 1, 1, 1e-5f, 0);
    case_norm(true, true, 3, 7, 1e-5f, 0);
    case_norm(true, true, 5, 173, 1e-5f, 0);
    case_norm(true, false, 2, 1000, 1e-6f, 10);
    case_norm(true, true, 4, 4099, 1e-5f, 0);
    case_norm(true, true, 7, 2048, 1e-5f, 0);

    case_softmax(1, 1, 1, 0, 1);
    case_softmax(3, 7, 1, 0, 1);
    case_softmax(2, 1000, 0.125f, 0, 4);
    case_softmax(5, 173, 0.3f, 0, 3);
    case_softmax(1, 32000, 1, 0, 5);
    case_softmax(2, 4099, 1, 0, 1);
    case_softmax(3, 1000, 1, 1000, 30);   /* exp(x) would overflow without subtracting the max */
    case_softmax(2, 7, 1, -2000, 10);
    case_softmax(1, 32000, 0.5f, 500, 20);

    /* RoPE: both modes, n_rot < head_dim, bases 10000 and 500000, linear scaling, YaRN, freq factors */
    const enum rt_rope_mode ADJ = RT_ROPE_ADJACENT, NEOX = RT_ROPE_NEOX;
#define ROPE(mode_, n_rot_, base_, fs_, ext_, attn_, n_ctx_orig_)                                              \
    ((rt_rope_desc){ .mode = mode_, .n_rot = n_rot_, .base = base_, .freq_scale = fs_, .ext_factor = ext_,   \
                     .attn_factor = attn_, .beta_fast = 32, .beta_slow = 1, .n_ctx_orig = n_ctx_orig_ })
    case_rope(5, 4, 64, 2048, ROPE(ADJ, 64, 10000, 1, 0, 1, 4096), false);
    case_rope(7, 3, 128, 4096, ROPE(NEOX, 128, 500000, 1, 0, 1, 4096), false);
    case_rope(3, 2, 80, 1000, ROPE(ADJ, 32, 10000, 1, 0, 1, 4096), false);
    case_rope(4, 5, 64, 1000, ROPE(NEOX, 24, 10000, 1, 0, 1, 4096), false);
    case_rope(6, 4, 128, 4096, ROPE(ADJ, 128, 10000, 0.25f, 0, 1, 4096), false);  /* linear scaling */
    case_rope(6, 4, 64, 4096, ROPE(NEOX, 64, 10000, 0.25f, 0, 1, 4096), false);
    case_rope(5, 4, 128, 4096, ROPE(NEOX, 128, 10000, 0.25f, 1, 1, 4096), false);  /* YaRN */
    case_rope(5, 3, 96, 4096, ROPE(ADJ, 64, 500000, 0.25f, 1, 0.8f, 4096), false);
    case_rope(4, 2, 64, 1000, ROPE(ADJ, 64, 4, 0.5f, 1, 1, 128), false);    /* correction dims clamped to 0, n_rot-1 */
    case_rope(3, 2, 64, 3000, ROPE(NEOX, 48, 10000, 0.25f, 0.5f, 1, 4096), false); /* partial ext_factor */
    case_rope(7, 4, 128, 4096, ROPE(ADJ, 128, 500000, 1, 0, 1, 4096), true);  /* Llama 3.1 freq factors */
    case_rope(3, 2, 64, 4096, ROPE(NEOX, 64, 500000, 0.25f, 1, 1, 4096), true);
    case_rope(1, 1, 2, 100, ROPE(ADJ, 2, 10000, 1, 0, 1, 4096), false);
    case_rope(31, 32, 128, 4096, ROPE(NEOX, 128, 10000, 1, 0, 1, 4096), false);
#undef ROPE

    static const int64_t ns[] = { 1, 7, 31, 1000, 4099 };
    for (int i = 0; i < 5; i++) {
        case_eltwise(OP_ADD, ns[i], ns[i], 0, 1, false);
        case_eltwise(OP_MUL, ns[i], ns[i], 0, 1, false);
        case_eltwise(OP_SCALE, ns[i], 1, i % 2 ? 0.3f : -2.5f, 1, false);
        case_eltwise(OP_SWIGLU, ns[i], ns[i], 0, 3, false);
        case_eltwise(OP_GELU, ns[i], ns[i], 0, 3, false);
    }
    case_eltwise(OP_ADD, 3000, 1000, 0, 1, false); /* a bias over rows of 1000 */
    case_eltwise(OP_ADD, 173 * 5, 173, 0, 1, false);
    case_eltwise(OP_ADD, 1000, 1, 0, 1, false);
    case_eltwise(OP_MUL, 127 * 7, 127, 0, 1, false);
    case_eltwise(OP_MUL, 31, 1, 0, 1, false);
    case_eltwise(OP_ADD, 4099, 4099, 0, 1, true); /* residual add in place */
    case_eltwise(OP_MUL, 1000, 1000, 0, 1, true);
    case_eltwise(OP_SCALE, 1000, 1, 0.125f, 1, true);
    case_eltwise(OP_SWIGLU, 11008, 11008, 0, 2, false);
    case_eltwise(OP_GELU, 11008, 11008, 0, 2, false);
    case_eltwise(OP_SWIGLU, 1000, 1000, 0, -1, false); /* large magnitudes */
    case_eltwise(OP_GELU, 1000, 1000, 0, -1, false);

    for (int t = 0; t < 3; t++) {
        case_get_rows(fts[t], 1, 1, 1);
        case_get_rows(fts[t], 5, 173, 7);
        case_get_rows(fts[t], 7, 31, 1000);
        case_get_rows(fts[t], 31, 4099, 64);
    }
    case_get_rows(RT_F16, 17, 1000, 4096);

    case_kv_write(RT_F32, 1, 7, 5);
    case_kv_write(RT_F16, 1, 2, 1);
    case_kv_write(RT_F16, 5, 64, 17);
    case_kv_write(RT_F32, 9, 1000, 13);
    case_kv_write(RT_F16, 9, 1000, 13);
    case_kv_write(RT_F16, 3, 2, 3);
    case_kv_write(RT_F32, 31, 128, 173);
    case_kv_write(RT_F16, 64, 1024, 512);

    case_argmax(1, 1);
    case_argmax(4, 7);
    case_argmax(8, 1000);
    case_argmax(4, 32000);
    case_argmax(3, 4099);

    /* attention: the device's kernel (on a CPU driver attention_cpu.comp; here without subgroup
     * operations, see above), then the kernel for GPUs (attention.comp) with the same cases if it is
     * another, then its own cases with subgroup operations and a few without */
    double t_attn = now_s();
    attention_cases();
    if (rt_ctx_device(G.ctx)->type == RT_DEVICE_CPU && !getenv("VKLLM_ATTN_TILED")) {
        setenv("VKLLM_ATTN_TILED", "1", 1);
        attention_cases();
        unsetenv("VKLLM_ATTN_TILED");
    }
    attention_gpu_pass(attention_gpu_cases, attention_gpu_few);
    printf("attention: %.1f s\n", now_s() - t_attn);

    case_copy(16, 0);
    case_copy(16 * 7, 256);
    case_copy(16 * 4099, 0);
    case_copy((size_t)1 << 20, 256);
    case_fma(1, 1, 0);
    case_fma(7, 3, 256);
    case_fma(1000, 16, 0);
    case_fma(65537, 2, 256);

    bad_arguments();
    return tk_close("test_kernels", now_s() - t0);
}
#endif
