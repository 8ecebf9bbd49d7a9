/* test_plan.c: how a matrix product is cut into dispatches (runtime/rt_plan.h), on sizes no test device
 * holds: weights of many GiB in 4-bit and 6-bit block formats, bound by bytes.
 *
 * For each case: every piece's W range (rows [n0, n0 + per_n) at byte w_off + n0 * row_bytes of the plane
 * of quants, and the same rows of the plane of scales) fits one
 * binding with the alignment slack, the pieces cover every row exactly once, the byte offsets are
 * computed past 4 GiB without wrapping (checked against 128-bit arithmetic done by hand in uint64 high
 * and low parts), and shapes that cannot be cut (k not a whole number of blocks, one row wider than a
 * binding) are refused. No device and no allocation. */
#include <stdlib.h>

#include "rt_plan.h"
#include "util.h"

static void check_plan(rt_dtype t, int64_t n, int64_t k, uint64_t range, size_t w_off)
{
    rt_plan_limits lim = { .binding_range = range, .storage_align = 256, .max_groups_x = 65535,
                           .max_groups_y = 65535 };
    rt_matmul_plan p;
    int rc = rt_matmul_plan_make(&lim, t, 1, n, k, 0, &p);
    rt_dtype_traits tr;
    rt_dtype_info((int)t, &tr);
    CHECK(rc == RT_OK, "%s n=%lld k=%lld: plan failed (%d)", tr.name, (long long)n, (long long)k, rc);
    if (rc)
        return;
    size_t nb = (size_t)(k / tr.block);
    CHECK(p.row_bytes == nb * tr.q_bytes && p.s_row == nb * (tr.block_bytes - tr.q_bytes), "%s: row bytes %zu + %zu",
          tr.name, p.row_bytes, p.s_row);
    uint64_t total = (uint64_t)n * p.row_bytes;
    /* the plane of scales follows the quants' at a 16-byte boundary, and W ends where rt_weight_bytes says */
    size_t s0 = rt_plan_s_offset(&p, w_off, n, 0), s_end = rt_plan_s_offset(&p, w_off, n, n);
    CHECK(s0 % 16 == w_off % 16 && s0 - w_off >= total && s0 - w_off < total + 16, "%s: scales at %zu", tr.name, s0);
    CHECK(s_end - w_off == rt_weight_bytes(t, n, k), "%s: W ends at %zu, rt_weight_bytes %zu", tr.name, s_end - w_off,
          rt_weight_bytes(t, n, k));
    int64_t covered = 0, pieces = 0;
    size_t last_end = w_off;
    for (int64_t n0 = 0; n0 < n; n0 += p.per_n) {
        int64_t nn = n - n0 < p.per_n ? n - n0 : p.per_n;
        size_t off = rt_plan_w_offset(&p, w_off, n0);
        size_t bytes = (size_t)nn * p.row_bytes;
        /* the piece starts where the last ended, and fits a binding started at the aligned offset below */
        CHECK(off == last_end, "%s: piece at row %lld starts at %zu, the last ended at %zu", tr.name, (long long)n0,
              off, last_end);
        CHECK(off % 256 + bytes <= range, "%s: piece of %zu bytes at %zu exceeds the binding range", tr.name, bytes,
              off);
        /* the offset computed as (hi, lo) 32-bit halves of n0 * row_bytes: no wrap at 4 GiB */
        uint64_t prod = (uint64_t)n0 * (uint64_t)p.row_bytes;
        CHECK((uint64_t)off == (uint64_t)w_off + prod, "%s: offset of row %lld wrapped", tr.name, (long long)n0);
        last_end = off + bytes;
        covered += nn;
        pieces++;
    }
    CHECK(covered == n, "%s: pieces cover %lld of %lld rows", tr.name, (long long)covered, (long long)n);
    CHECK((uint64_t)(last_end - w_off) == total, "%s: pieces end at %zu, W has %llu bytes", tr.name, last_end,
          (unsigned long long)total);
    printf("%-6s n=%-8lld k=%-6lld W %8.2f GiB  range %5.0f MiB  %3lld pieces of %lld rows, last at %.2f GiB\n",
           tr.name, (long long)n, (long long)k, total / 1073741824.0, range / 1048576.0, (long long)pieces,
           (long long)p.per_n, (last_end - w_off) / 1073741824.0);
}

int main(void)
{
    if (sizeof(size_t) < 8) {
        printf("test_plan: a 32-bit host: skipped\n");
        return tu_finish("test_plan");
    }
    const uint64_t GiB = 1ull << 30;
    /* a 4 GiB binding (NVIDIA, RADV) of 4-bit weights: 8 G elements, past any 32-bit element index */
    check_plan(RT_Q4_0, 2 * 1024 * 1024, 4096, 4 * GiB - 1, 0);
    check_plan(RT_Q4_K, 3 * 1024 * 1024, 8192, 4 * GiB - 1, 64);
    /* lavapipe's 128 MiB range, a 152K x 8192 Q6_K output matrix (~1 GiB), at an offset past 4 GiB */
    check_plan(RT_Q6_K, 152064, 8192, 128ull << 20, 5 * GiB + 4);
    check_plan(RT_Q8_0, 128256, 16384, 128ull << 20, 0);
    check_plan(RT_IQ4_XS, 1 << 22, 4096, 2 * GiB, 12);
    check_plan(RT_F16, 1 << 20, 8192, 4 * GiB - 1, 16);

    /* refusals */
    rt_plan_limits lim = { .binding_range = 128ull << 20, .storage_align = 256, .max_groups_x = 65535,
                           .max_groups_y = 65535 };
    rt_matmul_plan p;
    CHECK(rt_matmul_plan_make(&lim, RT_Q4_K, 1, 64, 4000, 0, &p) == RT_ERR_INVALID,
          "k = 4000 of Q4_K (256-blocks) must be refused");
    CHECK(rt_matmul_plan_make(&lim, RT_Q4_0, 1, 64, 33, 0, &p) == RT_ERR_INVALID,
          "k = 33 of Q4_0 must be refused");
    CHECK(rt_matmul_plan_make(&lim, RT_F32, 1, 4, (int64_t)(40ull << 20), 0, &p) == RT_ERR_LIMIT,
          "an f32 row of 160 MiB must not fit a 128 MiB binding");
    CHECK(rt_matmul_plan_make(&lim, (rt_dtype)5, 1, 4, 32, 0, &p) == RT_ERR_INVALID, "type 5 is no rt_dtype");
    CHECK(rt_dtype_row_bytes(RT_Q4_K, 512) == 288 && rt_dtype_row_bytes(RT_Q4_K, 100) == 0 &&
              rt_dtype_row_bytes(RT_IQ4_NL, 64) == 36 && rt_dtype_row_bytes(RT_BF16, 3) == 6,
          "row bytes");
    return tu_finish("test_plan");
}
