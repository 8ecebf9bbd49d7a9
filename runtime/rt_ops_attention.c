/* rt_ops_attention.c: causal attention of query rows against a KV cache (shaders/attention.comp), in one
 * pass for many rows (prefill), or with the keys split into ranges merged by a second kernel
 * (shaders/attn_combine.comp) for few rows (decode), where one workgroup per head would leave most of a
 * GPU idle on a long context. */
#include <stdlib.h>

#include "rt_ops.h"

/* Keys per range when split, 0: do not split. On a GPU, decode rows split long contexts into at most 64
 * ranges of at least 256 keys, so that the work spreads over the compute units. A CPU driver has few
 * cores and pays for every extra workgroup and dispatch: it splits only past 16K keys, in ranges of 16K
 * (lavapipe ends an invocation's loops after 65535 iterations, which a single range would reach on
 * very long contexts). */
static int64_t split_keys(rt_seq *seq, int64_t rows, int64_t cap)
{
    if (rt_seq_ctx(seq)->info.type == RT_DEVICE_CPU)
        return rows <= 4 && cap > 16384 ? 16384 : 0;
    if (rows > 4 || cap <= 1024)
        return 0;
    int64_t keys = (cap + 63) / 64;
    return keys < 256 ? 256 : keys;
}

int rt_op_attention(rt_seq *seq, rt_ref o, rt_ref q, rt_ref k, rt_ref v, rt_ref pos, int64_t rows,
                    const rt_attn_desc *a)
{
    if (rows <= 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads || a->head_dim <= 0 ||
        a->head_dim > 256 || a->cap <= 0 || (a->cache_type != RT_F32 && a->cache_type != RT_F16) ||
        rows * a->n_heads * a->head_dim > 0xFFFFFFFFll || a->cap * a->n_kv_heads * a->head_dim > 0xFFFFFFFFll)
        return rt_seq_fail(seq, RT_ERR_INVALID, "attention: bad shape (heads %d/%d, head_dim %d)", a->n_heads,
                           a->n_kv_heads, a->head_dim);
    /* CPU drivers (rt_ops_attention_cpu.c) unless asked (VKLLM_ATTN_TILED) or for head sizes that are no
     * multiple of 8; a paged cache takes those kernels on every device for now */
    bool cpu_kernels =
        rt_seq_ctx(seq)->info.type == RT_DEVICE_CPU && a->head_dim % 8 == 0 && !getenv("VKLLM_ATTN_TILED");
    if (cpu_kernels || a->pages.buf)
        return rt_attention_cpu(seq, o, q, k, v, pos, rows, a);
    int64_t kv = a->cap * a->n_kv_heads * a->head_dim, q_elems = rows * a->n_heads * a->head_dim;
    int64_t sk = split_keys(seq, rows, a->cap), n_split = sk ? (a->cap + sk - 1) / sk : 1;
    rt_pc_attn pc = { .rows = (uint32_t)rows, .n_heads = (uint32_t)a->n_heads, .n_kv_heads = (uint32_t)a->n_kv_heads,
                      .head_dim = (uint32_t)a->head_dim, .cap = (uint32_t)a->cap, .scale = a->scale,
                      .n_split = (uint32_t)n_split, .split_keys = (uint32_t)(sk ? sk : a->cap) };
    rt_bind b[6];
    size_t cs = rt_dtype_size(a->cache_type);
    rt_op_bind(seq, o, 4, q_elems, &b[0], &pc.off_o);
    rt_op_bind(seq, q, 4, q_elems, &b[1], &pc.off_q);
    rt_op_bind(seq, k, cs, kv, &b[2], &pc.off_k);
    rt_op_bind(seq, v, cs, kv, &b[3], &pc.off_v);
    rt_op_bind(seq, pos, 4, rows, &b[4], &pc.off_pos);
    int64_t part_elems = rows * a->n_heads * n_split * (a->head_dim + 2);
    if (sk) {
        rt_ref scratch;
        if (rt_seq_scratch(seq, (size_t)part_elems * 4, &scratch) == RT_OK)
            rt_op_bind(seq, scratch, 4, part_elems, &b[5], &pc.off_s);
    } else {
        b[5] = b[0]; /* not written without SPLIT */
    }
    uint32_t wg = rt_op_wg(seq, 64);
    uint32_t spec[3] = { wg, (uint32_t)a->cache_type, sk ? 1u : 0u };
    uint32_t gy, gz;
    rt_op_grid_rows(seq, rows, &gy, &gz);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_attention, spec, 3, 6, sizeof pc, &p))
        return rt_seq_status(seq);
    uint32_t gx = (uint32_t)(a->n_heads * n_split);
    if (rt_seq_dispatch(seq, p, b, 6, &pc, gx, gy, gz) || !sk)
        return rt_seq_status(seq);
    rt_bind cb[2] = { b[0], b[5] };
    if (rt_op_pipeline(seq, RT_SHADER_attn_combine, &wg, 1, 2, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, cb, 2, &pc, (uint32_t)a->n_heads, gy, gz);
}
