/* rt_ops_matmul.c: Y = X W^T (+ bias).
 *
 * Two kernels compute the matrix product, and which runs where is decided here:
 *
 *   GPUs:  shaders/gemv.comp for m <= 8 rows of X (decode): a workgroup per 1-2 rows of W, its threads
 *          splitting k with 16-byte loads, partial sums reduced with subgroupAdd (or shared memory);
 *          shaders/matmul.comp above (prefill): shared-memory tiles of X and W, a register tile per
 *          thread, the tile sizes picked from the device's limits and the size of the problem.
 *   CPU drivers (lavapipe): shaders/gemv.comp for every m, with one whole row of W per invocation and
 *          the rows of X taken 4 at a time. There, a load whose address differs between the SIMD lanes
 *          of a subgroup is a loop over the lanes (shared memory as well), while a load with one address
 *          for all lanes is one scalar load: here X is such a load, W the only per-lane one. On 2 cores
 *          (f32 / f16 W): the tiled GEMM makes 2.2 GFLOP/s at 512 x 2048 x 2048, this 15 / 18; the GEMV
 *          with k split over the workgroup 0.9 / 1.3 at 1 x 2048 x 2048, this 4.5 / 7.7.
 *
 * VKLLM_MATMUL=gpu or =cpu picks one of the two ways on any device (the tests run both on lavapipe). */
#include <stdlib.h>
#include <string.h>

#include "rt_ops.h"

/* Rows of X up to which GPUs run the GEMV kernel (one pass over W per op); the GEMM kernel above. */
#define GEMV_MAX_M 8
/* Rows of X per pass of the CPU way. */
#define CPU_MR 4
/* lavapipe ends the loops of an invocation after 65535 iterations of them all together
 * (LP_MAX_TGSI_LOOP_ITERATIONS in Mesa's gallivm, shared by every loop of a shader): the CPU way, whose
 * threads loop over k once per pass, cuts m into dispatches that stay below this. */
#define CPU_MAX_LOOP 60000

static bool cpu_style(rt_ctx *ctx)
{
    const char *e = getenv("VKLLM_MATMUL");
    if (e && !strcmp(e, "gpu"))
        return false;
    if (e && !strcmp(e, "cpu"))
        return true;
    return ctx->info.type == RT_DEVICE_CPU;
}

/* ---------------------------------------------------------------- GEMV: shaders/gemv.comp */

typedef struct gemv_cfg {
    uint32_t wg;   /* workgroup size */
    uint32_t nr;   /* rows of W per thread group */
    uint32_t ks;   /* 0: the workgroup splits k and shares nr rows; 1: each thread has nr whole rows */
    uint32_t mr;   /* rows of X per pass */
} gemv_cfg;

/* GPU: 128 threads on 1-2 rows (8 rows of X at most). CPU: 8 rows per thread, 4 rows of X per pass, and
 * workgroups of 64 threads made smaller (down to one SIMD batch of 8) until there are 32 of them, so that
 * every core has work. */
static gemv_cfg gemv_choose(rt_ctx *ctx, int64_t m, int64_t n, bool cpu)
{
    const rt_device_info *d = &ctx->info;
    gemv_cfg c;
    if (cpu) {
        c = (gemv_cfg){ 64, 8, 1, m < CPU_MR ? (uint32_t)m : CPU_MR };
        while (c.wg > 8 && n / (c.nr * c.wg) < 32)
            c.wg /= 2;
    } else {
        /* at least two full subgroups, so that subgroupAdd does most of the reduction */
        c = (gemv_cfg){ 128, m <= 4 ? 2 : 1, 0, (uint32_t)m };
        while (d->subgroup_size && c.wg < 2 * d->subgroup_size && c.wg * 2 <= d->max_workgroup_invocations)
            c.wg *= 2;
    }
    /* the reduction needs wg * nr * mr floats of shared memory */
    while (c.wg > d->max_workgroup_invocations || (!c.ks && (size_t)c.wg * c.nr * c.mr * 4 > d->max_shared_memory))
        c.wg /= 2;
    return c;
}

/* ---------------------------------------------------------------- GEMM: shaders/matmul.comp */

/* A BM x BN tile of Y per workgroup, k in steps of BK, a TM x TN tile per thread. */
typedef struct gemm_tile {
    uint32_t bm, bn, bk, tm, tn;
} gemm_tile;

static uint32_t tile_wg(const gemm_tile *t) { return (t->bm / t->tm) * (t->bn / t->tn); }
static size_t tile_shared(const gemm_tile *t) { return (size_t)t->bk * (t->bm + 1 + t->bn + 1) * 4; }

/* The largest tile that fits the device (shared memory, invocations, whole subgroups) and still gives
 * 128 workgroups or more (so that every compute unit of a large GPU has work); the smallest when none
 * does. The last one fits every Vulkan device (64 invocations, 4.2 KiB of shared memory). */
static gemm_tile gemm_choose(rt_ctx *ctx, int64_t m, int64_t n)
{
    static const gemm_tile tiles[] = {
        { 128, 128, 16, 8, 8 }, { 64, 64, 16, 4, 4 }, { 32, 64, 16, 2, 4 }, { 32, 32, 16, 4, 4 },
    };
    const int n_tiles = (int)(sizeof tiles / sizeof tiles[0]);
    const rt_device_info *d = &ctx->info;
    for (int i = 0; i < n_tiles - 1; i++) {
        const gemm_tile *t = &tiles[i];
        int64_t groups = (m + t->bm - 1) / t->bm * ((n + t->bn - 1) / t->bn);
        bool whole = d->subgroup_size == 0 || tile_wg(t) % d->subgroup_size == 0;
        if (tile_wg(t) <= d->max_workgroup_invocations && tile_shared(t) <= d->max_shared_memory && whole &&
            groups >= 128)
            return *t;
    }
    return tiles[n_tiles - 1];
}

/* ---------------------------------------------------------------- matmul */

/* One dispatch: rows [m0, m0 + mm) of X and Y against rows [n0, n0 + nn) of W. cpu: the CPU way (see the
 * top); vec: 16-byte loads of X and W (k and the offsets allow them). */
static int matmul_piece(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias, int64_t m0, int64_t mm,
                        int64_t n0, int64_t nn, int64_t n, int64_t k, bool cpu, bool vec, bool acc)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    size_t es = rt_dtype_size(wt);
    rt_pc_matmul pc = { .m = (uint32_t)mm, .n = (uint32_t)nn, .k = (uint32_t)k, .has_bias = bias.buf != NULL,
                        .ldy = (uint32_t)n, .n0 = (uint32_t)n0, .accumulate = acc };
    rt_bind b[4];
    rt_op_bind(seq, rt_at(y.buf, y.off + (size_t)(m0 * n) * 4), 4, mm * n, &b[0], &pc.off_y);
    rt_op_bind(seq, rt_at(x.buf, x.off + (size_t)(m0 * k) * 4), 4, mm * k, &b[1], &pc.off_x);
    rt_op_bind(seq, rt_at(w.buf, w.off + (size_t)(n0 * k) * es), es, nn * k, &b[2], &pc.off_w);
    if (bias.buf)
        rt_op_bind(seq, bias, 4, n, &b[3], &pc.off_b);
    else
        b[3] = b[1];
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    rt_pipeline *p;
    if (cpu || mm <= GEMV_MAX_M) {
        gemv_cfg c = gemv_choose(ctx, mm, nn, cpu);
        uint32_t spec[6] = { c.wg, (uint32_t)wt, c.nr, c.mr, vec, c.ks };
        bool sg = ctx->info.use_subgroup_arithmetic;
        if (rt_op_pipeline(seq, sg ? RT_SHADER_gemv_sg : RT_SHADER_gemv, spec, 6, 4, sizeof pc, &p))
            return rt_seq_status(seq);
        int64_t rows = c.ks ? (int64_t)c.nr * c.wg : c.nr; /* rows of W per workgroup */
        uint32_t gx, gy;
        rt_op_grid_rows(seq, (nn + rows - 1) / rows, &gx, &gy);
        return rt_seq_dispatch(seq, p, b, 4, &pc, gx, gy, 1);
    }
    gemm_tile t = gemm_choose(ctx, mm, nn);
    uint32_t spec[8] = { tile_wg(&t), (uint32_t)wt, t.bm, t.bn, t.bk, t.tm, t.tn, vec };
    if (rt_op_pipeline(seq, RT_SHADER_matmul, spec, 8, 4, sizeof pc, &p))
        return rt_seq_status(seq);
    uint32_t gx = (uint32_t)((nn + t.bn - 1) / t.bn), gy = (uint32_t)((mm + t.bm - 1) / t.bm);
    return rt_seq_dispatch(seq, p, b, 4, &pc, gx, gy, 1);
}

/* Y = X W^T (+ bias) (acc: Y +=). Every binding must fit the device's binding range
 * (maxStorageBufferRange): W is cut into pieces of rows (columns of Y), X and Y into pieces of rows; each
 * pair is one dispatch, all of them independent of each other. */
static int matmul(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias, int64_t m, int64_t n, int64_t k,
                  bool acc)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    if (m <= 0 || n <= 0 || k <= 0 || m * k > 0xFFFFFFFFll || m * n > 0xFFFFFFFFll || n * k > ((int64_t)1 << 40) ||
        (wt != RT_F32 && wt != RT_F16 && wt != RT_BF16))
        return rt_seq_fail(seq, RT_ERR_INVALID, "matmul: bad shape %lld x %lld x %lld", (long long)m, (long long)n,
                           (long long)k);
    /* 16-byte loads (4 values of X and of f32 W, 8 of f16/bf16 W) when every row starts 16-byte aligned:
     * bindings start at multiples of 16 bytes, so this holds in every piece below as well */
    size_t es = rt_dtype_size(wt);
    bool vec = k % (wt == RT_F32 ? 4 : 8) == 0 && x.off % 16 == 0 && w.off % 16 == 0;
    bool cpu = cpu_style(ctx);
    /* what one binding holds, less the slack of an aligned start */
    int64_t range = (int64_t)(ctx->info.max_storage_buffer_range - ctx->storage_align - 16);
    int64_t per_n = range / (k * (int64_t)es);
    int64_t per_m = range / (4 * (k > n ? k : n));
    if (per_n < 1 || per_m < 1)
        return rt_seq_fail(seq, RT_ERR_LIMIT, "matmul: one row of %lld x %lld x %lld exceeds the binding range",
                           (long long)m, (long long)n, (long long)k);
    /* what one dispatch's grid covers */
    int64_t lim = ctx->info.max_workgroup_count[0] < 65535 ? ctx->info.max_workgroup_count[0] : 65535;
    if (per_n > lim * 32)
        per_n = lim * 32;
    if (per_m > (int64_t)ctx->info.max_workgroup_count[1] * 32)
        per_m = (int64_t)ctx->info.max_workgroup_count[1] * 32;
    if (cpu) {
        int64_t k_iters = vec ? k / (wt == RT_F32 ? 4 : 8) : k, passes = CPU_MAX_LOOP / (k_iters + 2);
        if (passes < 1)
            cpu = false; /* k too long for one invocation's loops: the GPU way splits k over threads */
        else if (per_m > passes * CPU_MR)
            per_m = passes * CPU_MR;
    }
    if (!cpu && per_m < m && per_m >= 64) /* whole tiles per piece */
        per_m = per_m / 32 * 32;
    rt_seq_parallel(seq, true);
    for (int64_t m0 = 0; m0 < m; m0 += per_m)
        for (int64_t n0 = 0; n0 < n; n0 += per_n)
            matmul_piece(seq, y, x, w, wt, bias, m0, m - m0 < per_m ? m - m0 : per_m, n0,
                         n - n0 < per_n ? n - n0 : per_n, n, k, cpu, vec, acc);
    rt_seq_parallel(seq, false);
    return rt_seq_status(seq);
}

int rt_op_matmul(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias, int64_t m, int64_t n,
                 int64_t k)
{
    return matmul(seq, y, x, w, wt, bias, m, n, k, false);
}

int rt_op_matmul_acc(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias, int64_t m, int64_t n,
                     int64_t k)
{
    return matmul(seq, y, x, w, wt, bias, m, n, k, true);
}
