/* test_quant_kernels.c: the kernels of every weight format (matrix-vector, matrix-matrix, row gather)
 * against the CPU reference of models/quant.c, on seeded random data.
 *
 * For each format: W [n][k] is quantised on the host (lm_quantize) and dequantised back (lm_dequantize):
 * those floats are the weights as the device must see them. Then rt_op_matmul for m = 1, 3 and 8 (GEMV on
 * GPUs) and m = 37 (the tiled GEMM on GPUs), and rt_op_get_rows of a few rows, each compared with a
 * double-precision product of the dequantised weights. n is odd (not a multiple of any row block or
 * tile), k an odd number of blocks (so the scales of 18-, 22-, 34-, 110- and 210-byte blocks sit at 2 mod 4
 * bytes in their plane), W in the device layout (rt_weight_repack, checked to undo by rt_weight_unpack)
 * at a 16-byte offset that is not the binding alignment, and 256 guard bytes after every output. Every
 * case runs under the device's own kernels and the other way (VKLLM_MATMUL=gpu|cpu).
 *
 * Tolerance: nmse < 1e-9: the weights are exact on both sides, so what is left is f32 accumulation (about
 * k * 2^-48); a wrong scale, nibble or bit is of order 1e-3 or more. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm.h"
#include "util.h"

#define TOL 1e-9

static tu_gpu G;
static tu_rng R;

typedef struct dev_tensor {
    rt_buffer *buf;
    size_t off, bytes;
} dev_tensor;

static dev_tensor upload(size_t off, const void *data, size_t bytes, size_t extra)
{
    dev_tensor t = { NULL, off, bytes };
    if (rt_buffer_create(G.ctx, RT_MEM_DEVICE, off + bytes + extra, &t.buf) != RT_OK) {
        CHECK(0, "buffer: %s", rt_ctx_errmsg(G.ctx));
        return t;
    }
    rt_buffer_fill(t.buf, 0, (off + bytes + extra) / 4 * 4, TU_GUARD_WORD);
    if (data)
        CHECK(rt_buffer_write(t.buf, off, data, bytes) == RT_OK, "upload: %s", rt_ctx_errmsg(G.ctx));
    return t;
}

static bool guards_ok(const dev_tensor *t)
{
    uint32_t g[TU_GUARD / 4];
    if (rt_buffer_read(t->buf, t->off + t->bytes, g, TU_GUARD))
        return false;
    for (int i = 0; i < TU_GUARD / 4; i++)
        if (g[i] != TU_GUARD_WORD)
            return false;
    return true;
}

static bool run_seq(rt_seq *s, const char *what)
{
    int rc = rt_seq_end(s);
    if (rc == RT_OK)
        rc = rt_seq_run(s);
    CHECK(rc == RT_OK, "%s: %s: %s", what, rt_status_string(rc), rt_seq_errmsg(s));
    return rc == RT_OK;
}

/* One format at one shape: matmul at several m and a row gather, with the kernels chosen by `way`. */
static double run_format(rt_dtype t, int64_t n, int64_t k, const char *way)
{
    rt_dtype_traits tr;
    rt_dtype_info((int)t, &tr);
    size_t wbytes = rt_weight_bytes(t, n, k);
    float *wf = malloc((size_t)(n * k) * 4), *wd = malloc((size_t)(n * k) * 4);
    void *wq = malloc(wbytes);
    int64_t mmax = 37;
    float *x = malloc((size_t)(mmax * k) * 4), *y = malloc((size_t)(mmax * n > 5 * k ? mmax * n : 5 * k) * 4);
    double *ref = malloc((size_t)(mmax * n) * sizeof(double)), worst = 0;
    for (int64_t i = 0; i < n * k; i++)
        wf[i] = tu_normal(&R) * (i % 97 == 0 ? 4.0f : 0.5f); /* some outliers, as real weights have */
    for (int64_t i = 0; i < mmax * k; i++)
        x[i] = tu_uniform(&R, -1.0f, 1.0f);
    CHECK(lm_quantize(t, wf, wq, n * k) == LM_OK, "%s: quantize", tr.name);
    CHECK(lm_dequantize(t, wq, wd, n * k) == LM_OK, "%s: dequantize", tr.name);
    void *wdev = malloc(wbytes), *wback = malloc(rt_dtype_row_bytes(t, k) * (size_t)n);
    rt_weight_repack(t, wq, wdev, n, k); /* the device layout, and back */
    rt_weight_unpack(t, wdev, wback, n, k);
    CHECK(!memcmp(wback, wq, rt_dtype_row_bytes(t, k) * (size_t)n), "%s: repacking does not undo", tr.name);

    dev_tensor W = upload(48, wdev, wbytes, 0), X = upload(16, x, (size_t)(mmax * k) * 4, 0);
    rt_seq *s = NULL;
    rt_seq_create(G.ctx, &s);
    static const int64_t ms[] = { 1, 3, 8, 37 };
    for (int mi = 0; mi < 4 && W.buf && X.buf; mi++) {
        int64_t m = ms[mi];
        dev_tensor Y = upload(8, NULL, (size_t)(m * n) * 4, TU_GUARD);
        rt_seq_begin(s);
        rt_op_matmul(s, rt_at(Y.buf, Y.off), rt_at(X.buf, X.off), rt_at(W.buf, W.off), t, (rt_ref){ 0 }, m, n, k);
        char what[128];
        snprintf(what, sizeof what, "matmul %s m=%lld n=%lld k=%lld (%s)", tr.name, (long long)m, (long long)n,
                 (long long)k, way);
        if (run_seq(s, what)) {
            rt_buffer_read(Y.buf, Y.off, y, (size_t)(m * n) * 4);
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double acc = 0;
                    for (int64_t c = 0; c < k; c++)
                        acc += (double)x[i * k + c] * wd[j * k + c];
                    ref[i * n + j] = acc;
                }
            double e = tu_nmse(y, ref, m * n);
            worst = e > worst ? e : worst;
            CHECK(e < TOL, "%s: nmse %.3g (seed in the header)", what, e);
            CHECK(guards_ok(&Y), "%s: wrote past its output", what);
        }
        rt_buffer_destroy(Y.buf);
    }

    /* row gather: rows 0, n - 1, a middle one, and an out-of-range id (a zero row) */
    int32_t ids[5] = { 0, (int32_t)(n - 1), (int32_t)(n / 2), (int32_t)n, 1 };
    dev_tensor I = upload(0, ids, sizeof ids, 0), Y = upload(4, NULL, (size_t)(5 * k) * 4, TU_GUARD);
    if (I.buf && Y.buf && W.buf) {
        rt_seq_begin(s);
        rt_op_get_rows(s, rt_at(Y.buf, Y.off), rt_at(W.buf, W.off), t, rt_at(I.buf, 0), 5, n, k);
        char what[96];
        snprintf(what, sizeof what, "get_rows %s n=%lld k=%lld", tr.name, (long long)n, (long long)k);
        if (run_seq(s, what)) {
            rt_buffer_read(Y.buf, Y.off, y, (size_t)(5 * k) * 4);
            bool same = true;
            for (int r = 0; r < 5 && same; r++)
                for (int64_t c = 0; c < k && same; c++) {
                    float want = ids[r] < n ? wd[ids[r] * k + c] : 0.0f;
                    same = fabsf(y[r * k + c] - want) <= 1e-6f * fabsf(want);
                }
            CHECK(same, "%s: rows differ from the CPU dequantisation", what);
            CHECK(guards_ok(&Y), "%s: wrote past its output", what);
        }
    }
    rt_buffer_destroy(I.buf);
    rt_buffer_destroy(Y.buf);
    rt_seq_destroy(s);
    rt_buffer_destroy(W.buf);
    rt_buffer_destroy(X.buf);
    free(wf), free(wd), free(wq), free(wdev), free(wback), free(x), free(y), free(ref);
    return worst;
}

int main(void)
{
    R.s = tu_seed("test_quant_kernels");
    if (!tu_gpu_open(&G))
        return tu_finish("test_quant_kernels");
    static const rt_dtype types[] = { RT_F32, RT_F16, RT_BF16, RT_Q4_0, RT_Q4_1, RT_Q5_0, RT_Q5_1, RT_Q8_0,
                                      RT_Q2_K, RT_Q3_K, RT_Q4_K, RT_Q5_K, RT_Q6_K, RT_IQ4_NL, RT_IQ4_XS };
    const rt_device_info *d = rt_ctx_device(G.ctx);
    const char *own = d->type == RT_DEVICE_CPU ? "cpu" : "gpu", *other = d->type == RT_DEVICE_CPU ? "gpu" : "cpu";
    printf("%-7s %5s %5s  %-10s %-10s\n", "format", "n", "k", own, other);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        rt_dtype_traits tr;
        rt_dtype_info((int)types[i], &tr);
        /* an odd number of blocks per row; floats: 8 * 41 (the 8-value path) */
        int64_t k = tr.block == 1 ? 328 : tr.block == 32 ? 32 * 9 : 256 * 3, n = 67;
        unsetenv("VKLLM_MATMUL");
        double e0 = run_format(types[i], n, k, own);
        setenv("VKLLM_MATMUL", other, 1);
        double e1 = run_format(types[i], n, k, other);
        unsetenv("VKLLM_MATMUL");
        printf("%-7s %5lld %5lld  %-10.3g %-10.3g\n", tr.name, (long long)n, (long long)k, e0, e1);
    }
    /* floats with rows of any length (value by value) */
    run_format(RT_F16, 5, 37, own);
    run_format(RT_BF16, 9, 13, own);
    tu_gpu_close(&G);
    return tu_finish("test_quant_kernels");
}
