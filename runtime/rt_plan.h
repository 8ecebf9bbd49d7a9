/* rt_plan.h: how an op is cut into dispatches, as pure functions of the device's limits (no Vulkan),
 * so that the arithmetic is tested on sizes no test device could hold (tests/test_plan.c). */
#ifndef VKLLM_RT_PLAN_H
#define VKLLM_RT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt.h"

/* A matrix product Y[m][n] = X[m][k] W[n][k]^T is cut into pieces of at most per_m rows of X and Y and
 * per_n rows of W, each piece one dispatch with every binding inside the binding range. */
typedef struct rt_matmul_plan {
    size_t row_bytes;    /* bytes per row of W in its plane of quants (all of it for f32, f16, bf16) */
    size_t s_row;        /* bytes per row in its plane of scales (0 for f32, f16, bf16) */
    int64_t per_n, per_m;
    bool cpu;            /* the CPU drivers' kernel (gemv_cpu.comp) */
} rt_matmul_plan;

typedef struct rt_plan_limits {
    uint64_t binding_range;  /* maxStorageBufferRange */
    uint64_t storage_align;  /* minStorageBufferOffsetAlignment */
    uint32_t max_groups_x, max_groups_y;
} rt_plan_limits;

/* RT_ERR_INVALID for a bad shape or type (k not a whole number of blocks), RT_ERR_LIMIT when one row
 * does not fit a binding. cpu_pass > 0: the caller wants the CPU way, one of whose passes (CPU_MR rows
 * of X against its rows of W) costs an invocation that many loop iterations; m is cut so that an
 * invocation stays below lavapipe's loop limit, or the plan falls back to the GPU way when one pass is
 * already too long (plan->cpu says which). 0: the GPU way. */
int rt_matmul_plan_make(const rt_plan_limits *lim, rt_dtype wt, int64_t m, int64_t n, int64_t k, int64_t cpu_pass,
                        rt_matmul_plan *plan);
/* Byte offsets of row n0 of a W of n rows at w_off (rt_weight_bytes' layout), in its plane of quants and
 * in its plane of scales: computed in size_t (a tensor may pass 4 GiB). */
static inline size_t rt_plan_w_offset(const rt_matmul_plan *p, size_t w_off, int64_t n0)
{
    return w_off + (size_t)n0 * p->row_bytes;
}
static inline size_t rt_plan_s_offset(const rt_matmul_plan *p, size_t w_off, int64_t n, int64_t n0)
{
    return w_off + ((size_t)n * p->row_bytes + 15) / 16 * 16 + (size_t)n0 * p->s_row;
}

#endif
