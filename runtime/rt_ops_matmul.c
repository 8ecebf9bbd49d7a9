/* rt_ops_matmul.c: Y = X W^T (+ bias). */
#include "rt_ops.h"

/* Rows of W per dispatch so that one piece fits the binding range. */
static int64_t rows_per_binding(rt_ctx *ctx, int64_t k, rt_dtype wt)
{
    size_t row_bytes = (size_t)k * rt_dtype_size(wt);
    return (int64_t)((ctx->info.max_storage_buffer_range - ctx->storage_align - 4) / row_bytes);
}

int rt_op_matmul(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias, int64_t m, int64_t n,
                 int64_t k)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    if (m <= 0 || n <= 0 || k <= 0 || m * k > 0xFFFFFFFFll || m * n > 0xFFFFFFFFll || n * k > ((int64_t)1 << 40) ||
        (wt != RT_F32 && wt != RT_F16 && wt != RT_BF16))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: bad shape %lld x %lld x %lld", (long long)m, (long long)n,
                           (long long)k);
    int64_t per = rows_per_binding(ctx, k, wt);
    if (per < 1)
        return rt_seq_fail(seq, RT_ERR_LIMIT, "matmul: one row of W exceeds the binding range");
    uint32_t wg = rt_op_wg(seq, 128);
    uint32_t spec[2] = { wg, (uint32_t)wt };
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_gemv, spec, 2, 4, sizeof(rt_pc_matmul), &p))
        return rt_seq_status(seq);
    rt_seq_parallel(seq, true);
    size_t row_bytes = (size_t)k * rt_dtype_size(wt);
    for (int64_t n0 = 0; n0 < n; n0 += per) {
        int64_t nn = n - n0 < per ? n - n0 : per;
        rt_pc_matmul pc = { .m = (uint32_t)m, .n = (uint32_t)nn, .k = (uint32_t)k, .has_bias = bias.buf != NULL,
                            .ldy = (uint32_t)n, .n0 = (uint32_t)n0 };
        rt_bind b[4];
        rt_op_bind(seq, y, 4, m * n, &b[0], &pc.off_y);
        rt_op_bind(seq, x, 4, m * k, &b[1], &pc.off_x);
        rt_op_bind(seq, rt_at(w.buf, w.off + (size_t)n0 * row_bytes), rt_dtype_size(wt), nn * k, &b[2], &pc.off_w);
        if (bias.buf)
            rt_op_bind(seq, bias, 4, n, &b[3], &pc.off_b);
        else
            b[3] = b[1];
        uint32_t gx, gy;
        rt_op_grid_rows(seq, nn, &gx, &gy);
        rt_seq_dispatch(seq, p, b, 4, &pc, gx, gy, 1);
    }
    rt_seq_parallel(seq, false);
    return rt_seq_status(seq);
}
