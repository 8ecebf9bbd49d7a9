/* rt_ops_attention_cpu.c: causal attention on CPU drivers (lavapipe), and of a paged cache on every
 * device for now. Two kernels, both without barriers in their key loops:
 *   shaders/attention_cpu.comp for few rows (decode): one row and the query heads of one KV head per
 *     workgroup, each invocation walking its own keys with a private online softmax, merged at the end;
 *   shaders/attention_rows.comp for many rows (prefill): a tile of consecutive rows per workgroup, one
 *     per invocation, all walking the same keys so that every K and V load is shared by the tile.
 * Either splits the keys into ranges merged by shaders/attn_combine.comp when one invocation's loops
 * would pass lavapipe's limit of 65535 iterations. rt_op_attention has checked the shapes. */
#include "rt_ops.h"

/* llvmpipe ends an invocation's loops after 65535 iterations in all: a range of keys stays below this */
#define LOOP_LIMIT 60000

int rt_attention_cpu(rt_seq *seq, rt_ref o, rt_ref q, rt_ref k, rt_ref v, rt_ref pos, int64_t rows,
                     const rt_attn_desc *a)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    int64_t D = a->head_dim, kv = a->cap * a->n_kv_heads * D, q_elems = rows * a->n_heads * D;
    int64_t keys = a->max_keys > 0 && a->max_keys < a->cap ? a->max_keys : a->cap; /* per row at most */
    bool paged = a->pages.buf != NULL, tiled = rows > 4;
    uint32_t shift = 0;
    if (D % 8)
        return rt_seq_fail(seq, RT_ERR_UNSUPPORTED, "attention: these kernels need a head size of a multiple of 8 (%lld)",
                           (long long)D);
    if (paged) {
        while (shift < 16 && (1 << shift) < a->block_size)
            shift++;
        if (a->block_size <= 0 || (1 << shift) != a->block_size)
            return rt_seq_fail(seq, RT_ERR_INVALID, "attention: block size %d is no power of 2", a->block_size);
    }
    /* query heads per workgroup: all of one KV head's when their queries and outputs fit (MAXD), and, for
     * decode, when that leaves workgroups enough to keep the cores busy */
    int64_t G = a->n_heads / a->n_kv_heads;
    if (G * D > 256 || G > 16)
        G = 1;
    /* keys per range: tiled, as one invocation's loops allow (two passes of D / 8 over each key's K and
     * V rows with G heads inside, counted as loops in case the compiler keeps them, and the softmax's);
     * decode, past 16K keys only (a CPU has few cores and pays for every extra workgroup) */
    int64_t sk;
    if (tiled) {
        int64_t per_key = 2 * (D / 8) * (G + 1) + 2 * G + 4, setup = G * D + 2 * G + 64;
        sk = (LOOP_LIMIT - setup) / per_key / 16 * 16;
        sk = sk < 16 ? 16 : sk;
    } else {
        sk = 16384;
    }
    int64_t n_split = keys > sk ? (keys + sk - 1) / sk : 1;
    if (n_split == 1)
        sk = a->cap;
    if (!tiled && rows * a->n_kv_heads * n_split < 8)
        G = 1;
    rt_pc_attn pc = { .rows = (uint32_t)rows, .n_heads = (uint32_t)a->n_heads, .n_kv_heads = (uint32_t)a->n_kv_heads,
                          .head_dim = (uint32_t)D, .cap = (uint32_t)a->cap, .scale = a->scale,
                          .n_split = (uint32_t)n_split, .split_keys = (uint32_t)sk, .block_shift = shift,
                          .softcap = a->softcap, .window = (uint32_t)a->window };
    size_t cs = rt_dtype_size(a->cache_type);
    rt_bind b[7];
    rt_op_bind(seq, o, 4, q_elems, &b[0], &pc.off_o);
    rt_op_bind(seq, q, 4, q_elems, &b[1], &pc.off_q);
    rt_op_bind(seq, k, cs, kv, &b[2], &pc.off_k);
    rt_op_bind(seq, v, cs, kv, &b[3], &pc.off_v);
    rt_op_bind(seq, pos, 4, rows, &b[4], &pc.off_pos);
    int64_t part_elems = rows * a->n_heads * n_split * (D + 2);
    if (n_split > 1) {
        rt_ref scratch;
        if (part_elems > 0xFFFFFFFFll)
            return rt_seq_fail(seq, RT_ERR_LIMIT, "attention: %lld rows against %lld keys need too much scratch",
                               (long long)rows, (long long)keys);
        if (rt_seq_scratch(seq, (size_t)part_elems * 4, &scratch) == RT_OK)
            rt_op_bind(seq, scratch, 4, part_elems, &b[5], &pc.off_s);
    } else {
        b[5] = b[0]; /* not written without SPLIT */
    }
    /* the pages: the rows' table offsets, then the tables (all of the buffer from there: forked sequences'
     * tables share blocks, so they may add up to more than the cache's blocks) */
    if (paged)
        rt_op_bind(seq, a->pages, 4, (int64_t)((rt_buffer_size(a->pages.buf) - a->pages.off) / 4), &b[6], &pc.off_pg);
    else
        b[6] = b[4];
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    uint32_t pairs = a->cache_type == RT_F16 && pc.off_k % 2 == 0 && pc.off_v % 2 == 0;
    uint32_t gy, gz, wg;
    rt_pipeline *p;
    if (tiled) { /* a tile of rows: one SIMD batch of lanes (the subgroup) */
        uint32_t sg = ctx->info.subgroup_size;
        wg = rt_op_wg(seq, sg >= 4 && sg <= 64 ? sg : 8);
        rt_op_grid_rows(seq, (rows + wg - 1) / wg, &gy, &gz);
    } else {
        wg = rt_op_wg(seq, 64);
        rt_op_grid_rows(seq, rows, &gy, &gz);
    }
    uint32_t spec[6] = { wg, (uint32_t)a->cache_type, n_split > 1, pairs, (uint32_t)G, paged };
    if (rt_op_pipeline(seq, tiled ? RT_SHADER_attention_rows : RT_SHADER_attention_cpu, spec, 6, 7, sizeof pc, &p))
        return rt_seq_status(seq);
    if (rt_seq_dispatch(seq, p, b, 7, &pc, (uint32_t)(a->n_heads / G * n_split), gy, gz) || n_split == 1)
        return rt_seq_status(seq);
    rt_bind cb[2] = { b[0], b[5] };
    uint32_t cwg = rt_op_wg(seq, 64), cy, cz;
    if (rt_op_pipeline(seq, RT_SHADER_attn_combine, &cwg, 1, 2, sizeof pc, &p))
        return rt_seq_status(seq);
    rt_op_grid_rows(seq, rows, &cy, &cz);
    return rt_seq_dispatch(seq, p, cb, 2, &pc, (uint32_t)a->n_heads, cy, cz);
}
