/* test_matmul.c: rt_op_matmul (shaders/gemv.comp for m <= 8, shaders/matmul.comp above) against a
 * double-precision reference on the same inputs.
 *
 * Shapes: m from 1 to 300; n and k odd, prime, or not multiples of any tile, and k both a multiple of
 * 8 (16-byte loads) and not (element loads); f32, f16 and bf16 weights; with and without bias; tensors at
 * non-zero and unaligned offsets in their buffers. Every output buffer is filled with a guard word first:
 * the words before the output and TU_GUARD bytes after it must be untouched. Then W larger than the
 * device's binding range (split by rows into several dispatches) and Y larger than it (split by rows of
 * X). The whole set runs under the device's own choice of kernels and under the other way
 * (VKLLM_MATMUL=gpu|cpu, see runtime/rt_ops_matmul.c); the GEMV cases once more without subgroup
 * operations (VKLLM_NO_SUBGROUP=1: the shared-memory reduction every device has).
 *
 * Tolerance: nmse = sum((y - ref)^2) / sum(ref^2) < 1e-9. The reference uses the weights as the device
 * sees them (f16/bf16 rounded), so the only error is the f32 accumulation: about k * 2^-48 (~1e-11 for
 * k = 4096) for the uniform [-1, 1] inputs here; a wrong index or a lost tile is of order 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define TOL 1e-9

/* ---------------------------------------------------------------- f16 / bf16 on the host */

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xFF, m = x & 0x7FFFFFu;
    if (e == 0xFF)
        return (uint16_t)(sign | 0x7C00u | (m ? 0x200u : 0));
    int ne = (int)e - 127 + 15;
    if (ne >= 31)
        return (uint16_t)(sign | 0x7C00u);
    if (ne <= 0) { /* subnormal or zero */
        if (ne < -10)
            return (uint16_t)sign;
        m |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - ne), hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1)))
            hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t h = sign | ((uint32_t)ne << 10) | (m >> 13), rem = m & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* may carry into the exponent, which is right */
    return (uint16_t)h;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FFu, x;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    if (e == 31)
        x = sign | 0x7F800000u | (m << 13);
    else
        x = sign | ((e - 15 + 127) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

static float bf16_to_f32(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static const char *dtype_name(rt_dtype t) { return t == RT_F32 ? "f32" : t == RT_F16 ? "f16" : "bf16"; }

/* ---------------------------------------------------------------- one case */

typedef struct mm_case {
    int64_t m, n, k;
    rt_dtype wt;
    bool bias;
    size_t off_x, off_w, off_y, off_b; /* bytes */
    bool acc;                          /* rt_op_matmul_acc: Y starts with values and is added to */
} mm_case;

/* W's values as the device sees them, and their bytes in type wt. */
static void make_weights(tu_rng *rng, rt_dtype wt, int64_t count, float *val, void *bytes)
{
    for (int64_t i = 0; i < count; i++) {
        float f = tu_uniform(rng, -1.0f, 1.0f);
        if (wt == RT_F32) {
            val[i] = f;
            ((float *)bytes)[i] = f;
        } else if (wt == RT_F16) {
            uint16_t h = f32_to_f16(f);
            ((uint16_t *)bytes)[i] = h;
            val[i] = f16_to_f32(h);
        } else {
            uint16_t h = f32_to_bf16(f);
            ((uint16_t *)bytes)[i] = h;
            val[i] = bf16_to_f32(h);
        }
    }
}

static rt_buffer *upload(tu_gpu *g, size_t off, const void *data, size_t n)
{
    rt_buffer *b = NULL;
    if (rt_buffer_create(g->ctx, RT_MEM_DEVICE, off + n, &b) != RT_OK) {
        CHECK(0, "buffer of %zu bytes: %s", off + n, rt_ctx_errmsg(g->ctx));
        return NULL;
    }
    if (off)
        rt_buffer_fill(b, 0, off / 4 * 4, 0x7FC00000u); /* NaN before the tensor: reading it shows */
    CHECK(rt_buffer_write(b, off, data, n) == RT_OK, "upload: %s", rt_ctx_errmsg(g->ctx));
    return b;
}

/* ref = y0 + x W^T (+ bias), in double */
TU_REFERENCE static void reference(int64_t m, int64_t n, int64_t k, const float *x, const float *w,
                                   const float *bias, const float *y0, double *ref)
{
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++) {
            const float *xr = x + r * k, *wr = w + j * k;
            double s = (bias ? bias[j] : 0.0) + y0[r * n + j];
            for (int64_t i = 0; i < k; i++)
                s += (double)xr[i] * wr[i];
            ref[r * n + j] = s;
        }
}

/* Runs one case; returns false when it failed (a message is printed). */
static bool run_case(tu_gpu *g, tu_rng *rng, const mm_case *c, const char *label)
{
    int64_t m = c->m, n = c->n, k = c->k;
    size_t es = rt_dtype_size(c->wt);
    size_t xs = (size_t)(m * k) * 4, ws = (size_t)(n * k) * es, ys = (size_t)(m * n) * 4;
    float *x = malloc(xs), *wv = malloc((size_t)(n * k) * 4), *bias = malloc((size_t)n * 4);
    void *wb = malloc(ws);
    double *ref = malloc((size_t)(m * n) * sizeof(double));
    size_t ybuf_size = c->off_y + ys + TU_GUARD;
    uint32_t *yb = malloc(ybuf_size);
    float *out = malloc(ys), *y0 = malloc(ys);
    if (!x || !wv || !bias || !wb || !ref || !yb || !out || !y0) {
        CHECK(0, "out of host memory");
        return false;
    }
    for (int64_t i = 0; i < m * k; i++)
        x[i] = tu_uniform(rng, -1.0f, 1.0f);
    make_weights(rng, c->wt, n * k, wv, wb);
    for (int64_t i = 0; i < n; i++)
        bias[i] = tu_uniform(rng, -1.0f, 1.0f);
    for (int64_t i = 0; i < m * n; i++)
        y0[i] = c->acc ? tu_uniform(rng, -4.0f, 4.0f) : 0.0f;

    reference(m, n, k, x, wv, c->bias ? bias : NULL, y0, ref);

    bool ok = true;
    rt_buffer *bx = upload(g, c->off_x, x, xs), *bw = upload(g, c->off_w, wb, ws);
    rt_buffer *bb = c->bias ? upload(g, c->off_b, bias, (size_t)n * 4) : NULL, *by = NULL;
    if (rt_buffer_create(g->ctx, RT_MEM_DEVICE, ybuf_size, &by) != RT_OK ||
        rt_buffer_fill(by, 0, ybuf_size / 4 * 4, TU_GUARD_WORD) != RT_OK ||
        (c->acc && rt_buffer_write(by, c->off_y, y0, ys) != RT_OK)) {
        CHECK(0, "output buffer: %s", rt_ctx_errmsg(g->ctx));
        ok = false;
    }
    if (ok && bx && bw && (bb || !c->bias)) {
        rt_seq *s;
        rt_seq_create(g->ctx, &s);
        rt_seq_begin(s);
        (c->acc ? rt_op_matmul_acc : rt_op_matmul)(s, rt_at(by, c->off_y), rt_at(bx, c->off_x), rt_at(bw, c->off_w),
                                                   c->wt, c->bias ? rt_at(bb, c->off_b) : (rt_ref){ 0 }, m, n, k);
        int rc = rt_seq_end(s);
        if (rc == RT_OK)
            rc = rt_seq_run(s);
        if (rc != RT_OK) {
            CHECK(0, "%s: %s", label, rt_seq_errmsg(s));
            ok = false;
        } else if (rt_buffer_read(by, 0, yb, ybuf_size / 4 * 4) != RT_OK) {
            CHECK(0, "%s: read back", label);
            ok = false;
        } else {
            memcpy(out, (char *)yb + c->off_y, ys);
            double e = tu_nmse(out, ref, m * n);
            if (!(e < TOL)) {
                int64_t worst = 0;
                double wd = -1;
                for (int64_t i = 0; i < m * n; i++) {
                    double d = isfinite(out[i]) ? fabs(out[i] - ref[i]) : INFINITY;
                    if (d > wd) {
                        wd = d;
                        worst = i;
                    }
                }
                CHECK(0, "%s: nmse %.3g >= %g; worst Y[%lld][%lld] = %g, want %g", label, e, TOL,
                      (long long)(worst / n), (long long)(worst % n), out[worst], ref[worst]);
                ok = false;
            }
            size_t bad = 0;
            for (size_t i = 0; i < c->off_y / 4; i++)
                bad += yb[i] != TU_GUARD_WORD;
            for (size_t i = (c->off_y + ys + 3) / 4; i < ybuf_size / 4; i++)
                bad += yb[i] != TU_GUARD_WORD;
            if (bad) {
                CHECK(0, "%s: %zu guard words around the output overwritten", label, bad);
                ok = false;
            }
        }
        rt_seq_destroy(s);
    } else
        ok = false;
    rt_buffer_destroy(bx);
    rt_buffer_destroy(bw);
    rt_buffer_destroy(bb);
    rt_buffer_destroy(by);
    free(x);
    free(wv);
    free(bias);
    free(wb);
    free(ref);
    free(yb);
    free(out);
    free(y0);
    return ok;
}

static int n_cases;
/* the pass without subgroup operations checks only what they change: the GEMV (m <= 8), small sizes */
static bool gemv_only;

static void check(tu_gpu *g, tu_rng *rng, mm_case c)
{
    if ((gemv_only && c.m > 8) || !tu_take_case())
        return;
    char label[256];
    snprintf(label, sizeof label, "matmul%s m=%lld n=%lld k=%lld %s%s off x/w/y/b=%zu/%zu/%zu/%zu (seed state %llu)",
             c.acc ? "_acc" : "", (long long)c.m, (long long)c.n, (long long)c.k, dtype_name(c.wt),
             c.bias ? " bias" : "", c.off_x,
             c.off_w, c.off_y, c.off_b, (unsigned long long)rng->s);
    n_cases++;
    run_case(g, rng, &c, label);
}

/* ---------------------------------------------------------------- the sets */

static void small_shapes(tu_gpu *g, tu_rng *rng)
{
    static const int64_t ms[] = { 1, 2, 3, 4, 5, 7, 8, 9, 17, 31, 64, 100, 129, 300 };
    /* n, k: k % 8 == 0 (vector loads for every type), k % 4 == 0 only (f32), k odd or prime (elements) */
    static const int64_t nk[][2] = { { 1, 1 }, { 37, 61 }, { 131, 96 }, { 67, 260 }, { 257, 1023 }, { 1000, 2048 },
                                     { 5, 4099 } };
    static const rt_dtype types[] = { RT_F32, RT_F16, RT_BF16 };
    int i = 0;
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof nk / sizeof nk[0]; b++) {
            int64_t m = ms[a], n = nk[b][0], k = nk[b][1];
            if (m * n * k > 80000000) /* keep the reference quick: the large ones once per type below */
                continue;
            for (size_t t = 0; t < 3; t++, i++) {
                mm_case c = { m, n, k, types[t], i % 2 == 0, 0, 0, 0, 0, false };
                /* every fourth case at offsets: unaligned (element loads), then 16-byte aligned (vector
                 * loads starting inside the binding) */
                if (i % 4 == 1)
                    c = (mm_case){ m, n, k, types[t], true, 4, 2 * rt_dtype_size(types[t]), 12, 8, false };
                else if (i % 4 == 3)
                    c = (mm_case){ m, n, k, types[t], false, 48, 64, 16, 0, false };
                c.acc = i % 3 == 2; /* a third of them add to Y (rt_op_matmul_acc) */
                check(g, rng, c);
            }
        }
    for (size_t t = 0; t < 3; t++) {
        check(g, rng, (mm_case){ 300, 1000, 2048, types[t], true, 16, 32, 4, 4, false });
        check(g, rng, (mm_case){ 8, 1000, 2048, types[t], true, 0, 0, 0, 0, false });
        check(g, rng, (mm_case){ 200, 999, 513, types[t], false, 0, 0, 8, 0, true });
    }
    /* wide enough for each GEMM tile size to be picked (the largest one giving 128 workgroups) */
    check(g, rng, (mm_case){ 300, 5503, 40, RT_F16, true, 0, 0, 0, 0, false });
    check(g, rng, (mm_case){ 257, 5501, 37, RT_F32, false, 4, 8, 4, 0, false });
    check(g, rng, (mm_case){ 129, 4001, 24, RT_BF16, true, 0, 0, 0, 0, false });
    check(g, rng, (mm_case){ 100, 2600, 33, RT_F32, true, 0, 0, 0, 0, false });
    check(g, rng, (mm_case){ 64, 2600, 96, RT_F16, false, 0, 0, 0, 0, false });
}

/* W bigger than one binding (split by rows of W) and Y bigger than one binding (split by rows of X), with
 * the pieces' offsets odd in elements (k odd) as well as aligned. */
static void beyond_binding_range(tu_gpu *g, tu_rng *rng)
{
    const rt_device_info *d = rt_ctx_device(g->ctx);
    int64_t range = (int64_t)d->max_storage_buffer_range;
    if (range > ((int64_t)256 << 20)) {
        printf("binding range %lld MiB: the split cases would need too much memory, skipped\n",
               (long long)(range >> 20));
        return;
    }
    int64_t n = range / (1024 * 4) + 77;
    check(g, rng, (mm_case){ 3, n, 1024, RT_F32, true, 0, 0, 0, 0, false });
    check(g, rng, (mm_case){ 20, n, 1024, RT_F32, false, 16, 64, 32, 0, false });
    n = range / (1023 * 2) + 33;
    check(g, rng, (mm_case){ 2, n, 1023, RT_F16, true, 4, 2, 4, 4, false });
    check(g, rng, (mm_case){ 11, n, 1023, RT_BF16, false, 0, 0, 0, 0, false });
    /* Y of 293 rows: pieces of rows for the GEMM with a last piece small enough for the GEMV */
    n = range / (293 * 4) + 100;
    check(g, rng, (mm_case){ 293, n, 8, RT_F16, true, 0, 0, 0, 0, false });
}

/* Rows of W longer than the CPU way's loop budget (lavapipe stops an invocation's loops after 65535
 * iterations; the op then takes the GPU way), with k odd (element loads) and even. */
static void long_rows(tu_gpu *g, tu_rng *rng)
{
    check(g, rng, (mm_case){ 2, 3, 65537, RT_F32, true, 4, 0, 0, 0, false });
    check(g, rng, (mm_case){ 13, 5, 70000, RT_F16, false, 0, 0, 0, 0, false });
}

static void bad_arguments(tu_gpu *g)
{
    rt_buffer *b;
    rt_buffer_create(g->ctx, RT_MEM_DEVICE, 4096, &b);
    rt_seq *s;
    rt_seq_create(g->ctx, &s);
    rt_seq_begin(s);
    CHECK(rt_op_matmul(s, rt_at(b, 0), rt_at(b, 0), rt_at(b, 0), RT_F32, (rt_ref){ 0 }, 0, 4, 4) == RT_ERR_INVALID,
          "m = 0 accepted");
    rt_seq_end(s);
    rt_seq_begin(s);
    CHECK(rt_op_matmul(s, rt_at(b, 0), rt_at(b, 0), rt_at(b, 0), RT_F32, (rt_ref){ 0 }, 33, 33, 33) == RT_ERR_INVALID,
          "tensors past the end of their buffer accepted");
    CHECK(rt_seq_end(s) == RT_ERR_INVALID, "the error was not sticky");
    rt_seq_destroy(s);
    rt_buffer_destroy(b);
}

static void all_sets(tu_gpu *g, tu_rng *rng)
{
    const rt_device_info *d = rt_ctx_device(g->ctx);
    printf("device %s: subgroup reductions %s\n", d->name, d->use_subgroup_arithmetic ? "on" : "off");
    n_cases = 0;
    int before = tu_failures;
    small_shapes(g, rng);
    if (!gemv_only) {
        beyond_binding_range(g, rng);
        long_rows(g, rng);
    }
    bad_arguments(g);
    printf("%d cases, %d failed\n", n_cases, tu_failures - before);
}

/* The whole set under one setting of the environment (read when a context is created or an op recorded);
 * returns whether the device is a CPU. */
static bool run_all(const char *what, const char *var, const char *value)
{
    tu_rng rng = { tu_seed("test_matmul") };
    if (var)
        setenv(var, value, 1);
    printf("--- %s\n", what);
    tu_gpu g;
    bool cpu = false;
    if (tu_gpu_open(&g)) {
        cpu = rt_ctx_device(g.ctx)->type == RT_DEVICE_CPU;
        all_sets(&g, &rng);
        uint32_t v = rt_instance_validation_count(g.inst);
        CHECK(v == 0, "%s: %u validation messages", what, v);
    }
    tu_gpu_close(&g);
    if (var)
        unsetenv(var);
    return cpu;
}

int main(void)
{
    /* the kernels this device picks, then the other of the two ways (GPU: GEMV with k split over the
     * workgroup for m <= 8, tiled GEMM above; CPU: GEMV with whole rows per invocation for every m), then
     * the GPU way with the shared-memory reduction instead of subgroupAdd */
    bool cpu = run_all("the device's own choice of kernels", NULL, NULL);
    if (cpu)
        run_all("GPU kernels (VKLLM_MATMUL=gpu)", "VKLLM_MATMUL", "gpu");
    else
        run_all("CPU kernels (VKLLM_MATMUL=cpu)", "VKLLM_MATMUL", "cpu");
    setenv("VKLLM_MATMUL", "gpu", 1);
    gemv_only = true;
    run_all("GPU GEMV without subgroup operations (VKLLM_NO_SUBGROUP=1), m <= 8", "VKLLM_NO_SUBGROUP", "1");
    unsetenv("VKLLM_MATMUL");
    return tu_finish("test_matmul");
}
