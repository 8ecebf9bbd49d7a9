/* rt_ops_moe.c: the ops of mixture-of-experts layers (Mixtral, Qwen3-MoE): top-k routing, the products
 * with the chosen experts, and their weighted sum into the residual stream.
 *
 * A layer's experts are one tensor [n_expert][n][k], each expert in the device layout of rt_weight_bytes
 * (its plane of quants, then its plane of scales) at a 16-byte boundary. shaders/moe_matmul.comp binds
 * all of them at once and reads only the rows of the expert each (row, slot) pair chose: one dispatch for
 * a layer's projection whatever the routing, with no readback of ids to the host. The catch is that the
 * experts must fit one binding (maxStorageBufferRange, 4 GiB at most): a layer larger than that (a
 * 128-expert F16 layer of a large model) is refused here with RT_ERR_LIMIT, and a loader refuses the file.
 *
 * Decode (one to a few rows) is the case this is built for: a workgroup per (row, slot, block of rows of
 * W), reading its expert's rows once. Prefill works the same way, so an expert chosen by many rows is
 * read once per row: correct, not optimal (a grouped GEMM over the rows sorted by expert would read it
 * once per tile). As for the dense products, CPU drivers get a kernel whose invocations each compute
 * whole rows of W (few workgroups: lavapipe pays per workgroup), GPUs one whose threads split k. */
#include <stdlib.h>
#include <string.h>

#include "rt_ops.h"

#define CPU_MAX_LOOP RT_CPU_MAX_LOOP

static bool too_big(int64_t n) { return n <= 0 || n > 0xFFFFFFFFll; }

size_t rt_expert_stride(rt_dtype wt, int64_t n, int64_t k)
{
    return (rt_weight_bytes(wt, n, k) + 15) / 16 * 16;
}

/* ---------------------------------------------------------------- routing: shaders/moe_route.comp */

int rt_op_moe_route(rt_seq *seq, rt_ref ids, rt_ref weights, rt_ref logits, int64_t rows, int n_expert, int k,
                    bool renorm)
{
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    if (too_big(rows) || n_expert <= 0 || k <= 0 || k > n_expert || too_big(rows * n_expert))
        return rt_seq_fail(seq, RT_ERR_INVALID, "moe_route: bad shape: %lld rows, top %d of %d experts",
                           (long long)rows, k, n_expert);
    rt_pc_moe_route pc = { .rows = (uint32_t)rows, .n_expert = (uint32_t)n_expert, .k = (uint32_t)k,
                           .renorm = renorm };
    rt_bind b[3];
    rt_op_bind(seq, ids, 4, rows * k, &b[0], &pc.off_ids);
    rt_op_bind(seq, weights, 4, rows * k, &b[1], &pc.off_w);
    rt_op_bind(seq, logits, 4, rows * n_expert, &b[2], &pc.off_l);
    /* a thread per expert or two (8 to 128 experts in today's models); k passes of a tree each */
    uint32_t wg = rt_op_wg(seq, n_expert > 64 ? 128 : 64), gx, gy;
    rt_op_grid_rows(seq, rows, &gx, &gy);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_moe_route, &wg, 1, 3, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, b, 3, &pc, gx, gy, 1);
}

/* ---------------------------------------------------------------- expert products: shaders/moe_matmul.comp */

int rt_op_matmul_id(rt_seq *seq, const rt_matmul_id_desc *d)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    rt_dtype_traits tr;
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    if (!rt_dtype_info((int)d->wt, &tr))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul_id: unknown weight type %d", (int)d->wt);
    int64_t m = d->m, n = d->n, k = d->k, pairs = d->m * d->n_used;
    bool gate = d->w_up.buf != NULL;
    if (m <= 0 || n <= 0 || k <= 0 || d->n_used <= 0 || d->n_expert <= 0 || !rt_dtype_row_bytes(d->wt, k) ||
        too_big(pairs * n) || too_big(pairs * k))
        return rt_seq_fail(seq, RT_ERR_INVALID,
                           "matmul_id: bad shape m %lld, n %lld, k %lld, %d of %d experts for %s weights (rows of "
                           "whole blocks of %u)",
                           (long long)m, (long long)n, (long long)k, d->n_used, d->n_expert, tr.name, tr.block);
    size_t stride = rt_expert_stride(d->wt, n, k);
    size_t bytes = (size_t)(d->n_expert - 1) * stride + rt_weight_bytes(d->wt, n, k);
    uint64_t range = ctx->info.max_storage_buffer_range;
    if ((uint64_t)bytes + ctx->storage_align + 16 > range)
        return rt_seq_fail(seq, RT_ERR_LIMIT,
                           "matmul_id: the %d experts of %lld x %lld %s take %zu bytes, more than one binding holds "
                           "on this device (maxStorageBufferRange %llu)",
                           d->n_expert, (long long)n, (long long)k, tr.name, bytes, (unsigned long long)range);
    if (d->w.off % 16 || (gate && d->w_up.off % 16))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul_id: experts must start at a 16-byte boundary");
    /* W decoded 8 values at a time: every row at a 16-byte boundary (block formats always are) */
    bool vec = k % 8 == 0;
    bool xvec = k % 4 == 0 && d->x.off % 16 == 0;
    if (gate && !vec)
        return rt_seq_fail(seq, RT_ERR_UNSUPPORTED, "matmul_id: a gated product needs k %% 8 == 0 (k is %lld)",
                           (long long)k);
    rt_pc_moe_mm pc = { .m = (uint32_t)m, .n = (uint32_t)n, .k = (uint32_t)k, .n_used = (uint32_t)d->n_used,
                        .n_expert = (uint32_t)d->n_expert, .x_per_slot = d->x_per_slot, .stride = (uint32_t)stride };
    if (tr.block > 1) { /* the two planes of rt_weight_bytes, per expert */
        pc.row_bytes = (uint32_t)((size_t)(k / tr.block) * tr.q_bytes);
        pc.s_row = (uint32_t)((size_t)(k / tr.block) * (tr.block_bytes - tr.q_bytes));
        pc.s_plane = (uint32_t)(((size_t)n * pc.row_bytes + 15) / 16 * 16);
    } else {
        pc.row_bytes = (uint32_t)rt_dtype_row_bytes(d->wt, k);
    }
    /* 0 Y, 1 X, 2 W (both planes: 4 is the same range), 3 ids, 5 and 6 W_up (or W again) */
    rt_bind b[7];
    rt_op_bind(seq, d->y, 4, pairs * n, &b[0], &pc.off_y);
    rt_op_bind(seq, d->x, 4, (d->x_per_slot ? pairs : m) * k, &b[1], &pc.off_x);
    rt_op_bind_bytes(seq, d->w, bytes, &b[2], &pc.off_w);
    rt_op_bind(seq, d->ids, 4, pairs, &b[3], &pc.off_ids);
    b[4] = b[2];
    if (gate)
        rt_op_bind_bytes(seq, d->w_up, bytes, &b[5], &pc.off_w2);
    else
        b[5] = b[2], pc.off_w2 = pc.off_w;
    b[6] = b[5];
    if (rt_seq_status(seq))
        return rt_seq_status(seq);

    /* CPU way: NR rows of W per invocation, the workgroup made smaller (down to one SIMD batch of 8) until
     * there are 32 workgroups; it falls back to the GPU way where one invocation's loop over k would pass
     * lavapipe's limit. GPU way: 4 rows per workgroup of 64 threads (shared memory: 1 KiB). */
    int64_t loop = vec ? k / 8 : k;
    bool cpu = rt_op_cpu_style(ctx) && loop < CPU_MAX_LOOP;
    uint32_t nr = cpu ? 8 : 4, outs = gate ? nr / 2 : nr, wg = rt_op_wg(seq, 64);
    if (cpu)
        while (wg > 8 && pairs * ((n + (int64_t)outs * wg - 1) / ((int64_t)outs * wg)) < 32)
            wg /= 2;
    int64_t per_group = cpu ? (int64_t)outs * wg : outs;
    uint32_t flags = (vec ? RT_MM_VEC : 0) | (xvec ? RT_MM_XVEC : 0) | (gate ? RT_MM_GATE : 0);
    uint32_t spec[4] = { wg, nr, flags, cpu ? 0u : 1u };
    int id = rt_op_typed(rt_shader_moe_matmul, d->wt);
    if (id < 0)
        return rt_seq_fail(seq, RT_ERR_UNSUPPORTED, "matmul_id: no kernel for weight type %s", tr.name);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, (enum rt_shader_id)id, spec, 4, 7, sizeof pc, &p))
        return rt_seq_status(seq);
    /* pairs over y and z: y up to 65535 (every device's minimum) */
    uint32_t gx = (uint32_t)((n + per_group - 1) / per_group), gy = pairs < 65535 ? (uint32_t)pairs : 65535;
    uint32_t gz = (uint32_t)((pairs + gy - 1) / gy);
    /* for profiles: only the chosen experts' rows are read */
    double wbytes = (double)pairs * (double)stride * (gate ? 2.0 : 1.0);
    double xbytes = 4.0 * (double)(d->x_per_slot ? pairs : m) * (double)k, ybytes = 4.0 * (double)pairs * (double)n;
    rt_seq_cost(seq, wbytes + xbytes + ybytes, 2.0 * (double)pairs * (double)n * (double)k * (gate ? 2.0 : 1.0));
    return rt_seq_dispatch(seq, p, b, 7, &pc, gx, gy, gz);
}

/* ---------------------------------------------------------------- weighted sum: shaders/moe_combine.comp */

int rt_op_moe_combine(rt_seq *seq, rt_ref x, rt_ref y, rt_ref weights, int64_t rows, int n_used, int64_t dim)
{
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    if (too_big(rows) || n_used <= 0 || too_big(dim) || too_big(rows * n_used * dim))
        return rt_seq_fail(seq, RT_ERR_INVALID, "moe_combine: bad shape %lld x %d x %lld", (long long)rows, n_used,
                           (long long)dim);
    rt_pc_moe_combine pc = { .rows = (uint32_t)rows, .n_used = (uint32_t)n_used, .dim = (uint32_t)dim };
    rt_bind b[3];
    rt_op_bind(seq, x, 4, rows * dim, &b[0], &pc.off_x);
    rt_op_bind(seq, y, 4, rows * n_used * dim, &b[1], &pc.off_y);
    rt_op_bind(seq, weights, 4, rows * n_used, &b[2], &pc.off_w);
    uint32_t wg = rt_op_wg(seq, 256);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_moe_combine, &wg, 1, 3, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, b, 3, &pc, rt_op_groups(seq, rows * dim, wg), 1, 1);
}
