/* rt_ops_matmul.c: Y = X W^T (+ bias), W in any rt_dtype.
 *
 * Three kernels compute the matrix product, each compiled once per weight format (shaders/dq_*.glsl
 * decodes the format inside the kernel), and which runs where is decided here:
 *
 *   GPUs:  shaders/gemv.comp for m <= 8 rows of X (decode): a workgroup per NR rows of W, its threads
 *          splitting k in pieces of 8 values, partial sums reduced with subgroupAdd (or shared memory);
 *          shaders/matmul.comp above (prefill): shared-memory tiles of X and W (decoded to f32 on the
 *          way), a register tile per thread, the tile sizes picked from the device's limits and the
 *          size of the problem.
 *   CPU drivers (lavapipe): shaders/gemv_cpu.comp for every m, with NR whole rows of W per invocation
 *          and the rows of X taken 4 at a time. There, a load whose address differs between the SIMD
 *          lanes of a subgroup is a loop over the lanes (shared memory as well), while a load with one
 *          address for all lanes is one scalar load: here X is such a load, W the only per-lane one. On 2
 *          cores (f32 / f16 W): the tiled GEMM makes 2.2 GFLOP/s at 512 x 2048 x 2048, this 15 / 18; the
 *          GEMV with k split over the workgroup 0.9 / 1.3 at 1 x 2048 x 2048, this 4.5 / 7.7.
 *
 * W is bound and split by bytes (rows of rt_dtype_row_bytes), X and Y by f32 elements.
 * VKLLM_MATMUL=gpu or =cpu picks one of the two ways on any device (the tests run both on lavapipe).
 *
 * Two fusions (rt_op_matmul_ex), in all three kernels, for every weight format (specialization constant
 * FLAGS, shaders/rt_params.h): an RMSNorm of X folded in (each workgroup adds up x^2 of the rows of X it
 * reads, X multiplied by gamma on the way; the GPU kernels scale their sums by 1 / sqrt(mean + eps) at
 * the end, the CPU kernel normalises X to the bit as rt_op_rmsnorm does, so that a model's output does
 * not change on the default path), which takes the rmsnorm dispatch before a layer's projections away;
 * and gate and up of a SwiGLU feed-forward in one dispatch (the two W bound together, each workgroup
 * computing the same rows of both, silu(gate) * up stored), which takes a matmul and the swiglu dispatch
 * away. Their cost: products and a sum of squares per X value, nothing per W value; on lavapipe that is
 * more than a dispatch for the norm (bench/RESULTS.md, 2026-12-02). */
#include <stdlib.h>
#include <string.h>

#include "rt_ops.h"
#include "rt_plan.h"

/* Rows of X up to which GPUs run the GEMV kernel (one pass over W per op); the GEMM kernel above. */
#define GEMV_MAX_M 8
/* Rows of X per pass of the CPU way. */
#define CPU_MR 4
/* the CPU way cuts m into dispatches that stay below lavapipe's loop limit (rt_ops.h) */
#define CPU_MAX_LOOP RT_CPU_MAX_LOOP

bool rt_op_cpu_style(rt_ctx *ctx)
{
    const char *e = rt_env_matmul();
    if (e && !strcmp(e, "gpu"))
        return false;
    if (e && !strcmp(e, "cpu"))
        return true;
    return ctx->info.type == RT_DEVICE_CPU;
}

/* ---------------------------------------------------------------- plan */

int rt_matmul_plan_make(const rt_plan_limits *lim, rt_dtype wt, int64_t m, int64_t n, int64_t k, int64_t cpu_pass,
                        rt_matmul_plan *plan)
{
    size_t rb = rt_dtype_row_bytes(wt, k);
    rt_dtype_traits tr;
    if (m <= 0 || n <= 0 || k <= 0 || rb == 0 || m * k > 0xFFFFFFFFll || m * n > 0xFFFFFFFFll ||
        !rt_dtype_info((int)wt, &tr))
        return RT_ERR_INVALID;
    size_t sr = 0;
    if (tr.block > 1) { /* the two planes of rt_weight_bytes */
        rb = (size_t)(k / tr.block) * tr.q_bytes;
        sr = (size_t)(k / tr.block) * (tr.block_bytes - tr.q_bytes);
    }
    /* what one binding holds, less the slack of an aligned start */
    int64_t range = (int64_t)(lim->binding_range - lim->storage_align - 16);
    int64_t per_n = range / (int64_t)rb;
    int64_t per_m = range / (4 * (k > n ? k : n));
    if (per_n < 1 || per_m < 1)
        return RT_ERR_LIMIT;
    /* what one dispatch's grid covers (rows of W per workgroup: 1 at the least) */
    int64_t gx = lim->max_groups_x < 65535 ? lim->max_groups_x : 65535;
    if (per_n > gx * 32)
        per_n = gx * 32;
    if (per_m > (int64_t)lim->max_groups_y * 32)
        per_m = (int64_t)lim->max_groups_y * 32;
    bool cpu = cpu_pass > 0;
    if (cpu) {
        int64_t passes = CPU_MAX_LOOP / cpu_pass;
        if (passes < 1)
            cpu = false; /* k too long for one invocation's loops: the GPU way splits k over threads */
        else if (per_m > passes * CPU_MR)
            per_m = passes * CPU_MR;
    }
    if (!cpu && per_m < m && per_m >= 64) /* whole tiles per piece */
        per_m = per_m / 32 * 32;
    *plan = (rt_matmul_plan){ .row_bytes = rb, .s_row = sr, .per_n = per_n, .per_m = per_m, .cpu = cpu };
    return RT_OK;
}

/* ---------------------------------------------------------------- GEMV: shaders/gemv.comp, gemv_cpu.comp */

typedef struct gemv_cfg {
    uint32_t wg;   /* workgroup size */
    uint32_t nr;   /* rows of W per workgroup (GPU) or per invocation (CPU), both W together when gated */
    uint32_t mr;   /* rows of X per pass */
} gemv_cfg;

/* GPU: 4 rows of W per workgroup of 128 threads (at least two subgroups, so that subgroupAdd does most
 * of the reduction): each X value loaded serves 4 rows. CPU: 8 rows per invocation, 4 rows of X per
 * pass, and workgroups of 64 made smaller (down to one SIMD batch of 8) until there are 32 of them, so
 * that every core has work. Gated, the rows are half gate, half up: half as many outputs per workgroup. */
static gemv_cfg gemv_choose(rt_ctx *ctx, int64_t m, int64_t n, bool cpu, bool norm, bool gate)
{
    const rt_device_info *d = &ctx->info;
    gemv_cfg c;
    if (cpu) {
        c = (gemv_cfg){ 64, 8, m < CPU_MR ? (uint32_t)m : CPU_MR };
        uint32_t outs = gate ? c.nr / 2 : c.nr;
        while (c.wg > 8 && n / (outs * c.wg) < 32)
            c.wg /= 2;
        while (c.wg > d->max_workgroup_invocations)
            c.wg /= 2;
        return c;
    }
    c = (gemv_cfg){ 128, 4, (uint32_t)m };
    /* with subgroup size control the pipeline asks for full subgroups (matmul_piece), of any size the
     * driver picks up to the largest: then the workgroup is a whole number of the largest */
    uint32_t sg = d->en_subgroup_size_control ? d->subgroup_max_size : d->subgroup_size;
    while (sg && c.wg < 2 * sg && c.wg * 2 <= d->max_workgroup_invocations)
        c.wg *= 2;
    /* the reduction needs wg * (nr * mr + mr for the norm's sums) floats of shared memory */
    size_t sums = (size_t)c.nr * c.mr + (norm ? c.mr : 0);
    while (c.wg > d->max_workgroup_invocations || (size_t)c.wg * sums * 4 > d->max_shared_memory)
        c.wg /= 2;
    return c;
}

/* ---------------------------------------------------------------- GEMM: shaders/matmul.comp */

/* A BM x BN tile of Y per workgroup, k in steps of BK, a TM x TN tile per thread. */
typedef struct gemm_tile {
    uint32_t bm, bn, bk, tm, tn;
} gemm_tile;

static uint32_t tile_wg(const gemm_tile *t) { return (t->bm / t->tm) * (t->bn / t->tn); }
/* the tiles of X and W, and with the norm its partial sums and the rows' scales */
static size_t tile_shared(const gemm_tile *t, bool norm)
{
    return (size_t)t->bk * (t->bm + 1 + t->bn + 1) * 4 + (norm ? (size_t)(tile_wg(t) + t->bm) * 4 : 0);
}

/* The largest tile that fits the device (shared memory, invocations, whole subgroups) and still gives
 * 128 workgroups or more (so that every compute unit of a large GPU has work); the smallest when none
 * does. The last one fits every Vulkan device (64 invocations, 4.6 KiB of shared memory with the norm).
 * Gated, a tile covers bn / 2 columns of Y. */
static gemm_tile gemm_choose(rt_ctx *ctx, int64_t m, int64_t n, bool norm, bool gate)
{
    static const gemm_tile tiles[] = {
        { 128, 128, 16, 8, 8 }, { 64, 64, 16, 4, 4 }, { 32, 64, 16, 2, 4 }, { 32, 32, 16, 4, 4 },
    };
    const int n_tiles = (int)(sizeof tiles / sizeof tiles[0]);
    const rt_device_info *d = &ctx->info;
    for (int i = 0; i < n_tiles - 1; i++) {
        const gemm_tile *t = &tiles[i];
        int64_t cols = gate ? t->bn / 2 : t->bn;
        int64_t groups = (m + t->bm - 1) / t->bm * ((n + cols - 1) / cols);
        bool whole = d->subgroup_size == 0 || tile_wg(t) % d->subgroup_size == 0;
        if (tile_wg(t) <= d->max_workgroup_invocations && tile_shared(t, norm) <= d->max_shared_memory && whole &&
            groups >= 128)
            return *t;
    }
    return tiles[n_tiles - 1];
}

/* ---------------------------------------------------------------- matmul */

/* One dispatch: rows [m0, m0 + mm) of X and Y against rows [n0, n0 + nn) of W (and of W_up when gated).
 * flags: RT_MM_*. */
static int matmul_piece(rt_seq *seq, const rt_matmul_plan *plan, const rt_matmul_desc *d, int64_t m0, int64_t mm,
                        int64_t n0, int64_t nn, uint32_t flags)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    int64_t n = d->n, k = d->k, ldy = d->ldy ? d->ldy : n;
    bool norm = flags & RT_MM_NORM, gate = flags & RT_MM_GATE;
    rt_pc_matmul pc = { .m = (uint32_t)mm, .n = (uint32_t)nn, .k = (uint32_t)k, .has_bias = d->bias.buf != NULL,
                        .ldy = (uint32_t)ldy, .n0 = (uint32_t)n0, .accumulate = d->accumulate,
                        .row_bytes = (uint32_t)plan->row_bytes, .s_row = (uint32_t)plan->s_row,
                        .eps = d->norm_eps };
    /* 0 Y, 1 X, 2 W (quants), 3 bias, 4 W (scales), 5 gamma, 6 W_up (quants), 7 W_up (scales); what a
     * variant does not read is bound to one of the others */
    rt_bind b[8];
    rt_op_bind(seq, rt_at(d->y.buf, d->y.off + (size_t)(m0 * ldy) * 4), 4, (mm - 1) * ldy + n, &b[0], &pc.off_y);
    rt_op_bind(seq, rt_at(d->x.buf, d->x.off + (size_t)(m0 * k) * 4), 4, mm * k, &b[1], &pc.off_x);
    rt_op_bind_bytes(seq, rt_at(d->w.buf, rt_plan_w_offset(plan, d->w.off, n0)), (size_t)nn * plan->row_bytes, &b[2],
                     &pc.off_w);
    if (d->bias.buf)
        rt_op_bind(seq, d->bias, 4, n, &b[3], &pc.off_b);
    else
        b[3] = b[1];
    if (plan->s_row)
        rt_op_bind_bytes(seq, rt_at(d->w.buf, rt_plan_s_offset(plan, d->w.off, n, n0)), (size_t)nn * plan->s_row,
                         &b[4], &pc.off_s);
    else
        b[4] = b[2];
    if (norm)
        rt_op_bind(seq, d->norm_w, 4, k, &b[5], &pc.off_g);
    else
        b[5] = b[1];
    if (gate)
        rt_op_bind_bytes(seq, rt_at(d->w_up.buf, rt_plan_w_offset(plan, d->w_up.off, n0)),
                         (size_t)nn * plan->row_bytes, &b[6], &pc.off_w2);
    else
        b[6] = b[2];
    if (gate && plan->s_row)
        rt_op_bind_bytes(seq, rt_at(d->w_up.buf, rt_plan_s_offset(plan, d->w_up.off, n, n0)),
                         (size_t)nn * plan->s_row, &b[7], &pc.off_s2);
    else
        b[7] = b[6];
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    /* for profiles: the bytes are the bindings'; a multiply-add is two flops, two products when gated */
    rt_seq_cost(seq, 0, 2.0 * (double)mm * (double)nn * (double)k * (gate ? 2.0 : 1.0));
    rt_pipeline *p;
    const rt_device_info *dev = &ctx->info;
    int id;
    if (plan->cpu || mm <= GEMV_MAX_M) {
        gemv_cfg c = gemv_choose(ctx, mm, nn, plan->cpu, norm, gate);
        /* the CPU kernel sums x^2 as rt_op_rmsnorm's workgroup of this size does (rt_ops.c), to the bit */
        uint32_t spec[5] = { c.wg, c.nr, c.mr, flags, rt_op_wg(seq, k >= 1024 ? 256 : 64) };
        const int16_t *table = plan->cpu                      ? rt_shader_gemv_cpu
                               : dev->use_subgroup_arithmetic ? rt_shader_gemv_sg
                                                              : rt_shader_gemv;
        if ((id = rt_op_typed(table, d->wt)) < 0)
            return rt_seq_fail(seq, RT_ERR_UNSUPPORTED, "matmul: no kernel for weight type %d", (int)d->wt);
        /* the subgroup kernel's sums are then over full subgroups (where the device can promise it): a
         * workgroup of wg / size of them, none with idle invocations */
        bool full = !plan->cpu && dev->use_subgroup_arithmetic && dev->en_subgroup_size_control &&
                    dev->subgroup_max_size && c.wg % dev->subgroup_max_size == 0;
        if (full && !rt_seq_status(seq)) {
            int rc = rt_pipeline_get_ex(ctx, (enum rt_shader_id)id, spec, 4, 8, sizeof pc, true, &p);
            if (rc)
                return rt_seq_fail(seq, rc, "%s", rt_ctx_errmsg(ctx));
        } else if (rt_op_pipeline(seq, (enum rt_shader_id)id, spec, plan->cpu ? 5 : 4, 8, sizeof pc, &p))
            return rt_seq_status(seq);
        int64_t rows = (plan->cpu ? (int64_t)c.nr * c.wg : c.nr) / (gate ? 2 : 1); /* outputs per workgroup */
        uint32_t gx, gy;
        rt_op_grid_rows(seq, (nn + rows - 1) / rows, &gx, &gy);
        return rt_seq_dispatch(seq, p, b, 8, &pc, gx, gy, 1);
    }
    gemm_tile t = gemm_choose(ctx, mm, nn, norm, gate);
    uint32_t spec[7] = { tile_wg(&t), t.bm, t.bn, t.bk, t.tm, t.tn, flags };
    if ((id = rt_op_typed(rt_shader_matmul, d->wt)) < 0)
        return rt_seq_fail(seq, RT_ERR_UNSUPPORTED, "matmul: no kernel for weight type %d", (int)d->wt);
    if (rt_op_pipeline(seq, (enum rt_shader_id)id, spec, 7, 8, sizeof pc, &p))
        return rt_seq_status(seq);
    uint32_t cols = gate ? t.bn / 2 : t.bn;
    uint32_t gx = (uint32_t)((nn + cols - 1) / cols), gy = (uint32_t)((mm + t.bm - 1) / t.bm);
    return rt_seq_dispatch(seq, p, b, 8, &pc, gx, gy, 1);
}

static int matmul(rt_seq *seq, const rt_matmul_desc *d);

/* The gate and up of one SwiGLU / GeGLU that one dispatch cannot take (types that differ, rows too short
 * for 8-value decoding): two products (the norm folded into each) and rt_op_swiglu or rt_op_geglu, up
 * through scratch. */
static int gated_apart(rt_seq *seq, const rt_matmul_desc *d)
{
    rt_ref up;
    if (rt_seq_scratch(seq, (size_t)(d->m * d->n) * 4, &up))
        return rt_seq_status(seq);
    rt_matmul_desc g = *d, u = *d;
    g.w_up = u.w_up = (rt_ref){ 0 };
    u.y = up;
    u.w = d->w_up;
    u.wt = d->w_up_type;
    rt_seq_parallel(seq, true);
    matmul(seq, &g);
    matmul(seq, &u);
    rt_seq_parallel(seq, false);
    if (d->gate_act == RT_GATE_GELU)
        return rt_op_geglu(seq, d->y, d->y, up, d->m * d->n);
    return rt_op_swiglu(seq, d->y, d->y, up, d->m * d->n);
}

/* Y = f(X) W^T (+ bias) (accumulate: Y +=), f the folded RMSNorm or none; gated: Y = silu(f(X) W^T) *
 * (f(X) W_up^T). Every binding must fit the device's binding range (maxStorageBufferRange): W is cut
 * into pieces of rows (columns of Y), X and Y into pieces of rows; each pair is one dispatch, all of them
 * independent of each other. */
static int matmul(rt_seq *seq, const rt_matmul_desc *d)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    rt_dtype_traits tr;
    int64_t m = d->m, n = d->n, k = d->k;
    bool norm = d->norm_w.buf != NULL, gate = d->w_up.buf != NULL;
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    if (!rt_dtype_info((int)d->wt, &tr))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: unknown weight type %d", (int)d->wt);
    if (gate && (d->bias.buf || d->accumulate))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: a gated product takes no bias and does not accumulate");
    if (gate && d->gate_act != RT_GATE_SILU && d->gate_act != RT_GATE_GELU)
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: unknown gate activation %d", d->gate_act);
    if (gate && !rt_dtype_info((int)d->w_up_type, &(rt_dtype_traits){ 0 }))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: unknown weight type %d", (int)d->w_up_type);
    if (d->ldy && (d->ldy < n || m * d->ldy > 0xFFFFFFFFll))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: ldy %lld for rows of %lld", (long long)d->ldy, (long long)n);
    if (norm && !(d->norm_eps >= 0))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: norm_eps %g", (double)d->norm_eps);
    rt_plan_limits lim = { ctx->info.max_storage_buffer_range, ctx->storage_align, ctx->info.max_workgroup_count[0],
                           ctx->info.max_workgroup_count[1] };
    /* W decoded 8 values at a time when k allows: rows must start at 16-byte boundaries (bindings start at
     * multiples of 16 bytes, so this holds in every piece below as well) */
    bool vec = k % 8 == 0 && d->w.off % 16 == 0;
    bool xvec = k % 4 == 0 && d->x.off % 16 == 0 && (!norm || d->norm_w.off % 16 == 0);
    /* the CPU kernel's loop iterations per pass: k / 8 steps over W (k value by value); the norm's sums of
     * squares (gemv_cpu.comp's rms_inv) add k / 4 + 256 per row of X (k + k / 4 + 256 value by value) */
    int64_t cpu_pass = rt_op_cpu_style(ctx) ? (vec ? k / 8 : k) + 2 + (norm ? CPU_MR * ((xvec ? k / 4 : k + k / 4) + 256) : 0)
                                      : 0;
    rt_matmul_plan plan;
    int rc = rt_matmul_plan_make(&lim, d->wt, m, n, k, cpu_pass, &plan);
    if (rc == RT_ERR_LIMIT)
        return rt_seq_fail(seq, rc, "matmul: one row of %lld x %lld x %lld exceeds the binding range", (long long)m,
                           (long long)n, (long long)k);
    if (rc)
        return rt_seq_fail(seq, rc, "matmul: bad shape %lld x %lld x %lld for %s weights (rows of whole blocks of %u)",
                           (long long)m, (long long)n, (long long)k, tr.name, tr.block);
    if (d->ldy > n) { /* wider rows of Y: fewer of them per binding */
        int64_t per = (int64_t)(lim.binding_range - lim.storage_align - 16) / (4 * d->ldy);
        if (per < 1)
            return rt_seq_fail(seq, RT_ERR_LIMIT, "matmul: one row of Y (ldy %lld) exceeds the binding range",
                               (long long)d->ldy);
        if (plan.per_m > per)
            plan.per_m = per;
    }
    if (gate && d->ldy && d->ldy != n)
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: a gated product writes whole rows (ldy = n)");
    if (tr.block > 1 && !vec)
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: %s weights must start at a 16-byte boundary", tr.name);
    if (tr.block == 1 && d->w.off % tr.block_bytes)
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: %s weights at a misaligned offset", tr.name);
    if (gate && (d->w_up_type != d->wt || !vec || d->w_up.off % 16))
        return gated_apart(seq, d);
    uint32_t flags = (vec ? RT_MM_VEC : 0) | (xvec ? RT_MM_XVEC : 0) | (norm ? RT_MM_NORM : 0) |
                     (gate ? RT_MM_GATE : 0) | (gate && d->gate_act == RT_GATE_GELU ? RT_MM_GELU : 0);
    rt_seq_parallel(seq, true);
    for (int64_t m0 = 0; m0 < m; m0 += plan.per_m)
        for (int64_t n0 = 0; n0 < n; n0 += plan.per_n)
            matmul_piece(seq, &plan, d, m0, m - m0 < plan.per_m ? m - m0 : plan.per_m, n0,
                         n - n0 < plan.per_n ? n - n0 : plan.per_n, flags);
    rt_seq_parallel(seq, false);
    return rt_seq_status(seq);
}

int rt_op_matmul_ex(rt_seq *seq, const rt_matmul_desc *d)
{
    return matmul(seq, d);
}

int rt_op_matmul(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias, int64_t m, int64_t n,
                 int64_t k)
{
    rt_matmul_desc d = { .y = y, .x = x, .w = w, .wt = wt, .bias = bias, .m = m, .n = n, .k = k };
    return matmul(seq, &d);
}

int rt_op_matmul_acc(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias, int64_t m, int64_t n,
                     int64_t k)
{
    rt_matmul_desc d = { .y = y, .x = x, .w = w, .wt = wt, .bias = bias, .m = m, .n = n, .k = k, .accumulate = true };
    return matmul(seq, &d);
}
