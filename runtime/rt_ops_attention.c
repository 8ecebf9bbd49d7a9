/* rt_ops_attention.c: causal attention of query rows against a KV cache: on GPUs shaders/attention.comp
 * (a workgroup per KV head and tile of query vectors, K/V tiles in shared memory), on CPU drivers
 * attention_cpu.comp and attention_rows.comp (rt_ops_attention_cpu.c); either in one pass, or with the keys split
 * into ranges merged by a second kernel (shaders/attn_combine.comp) when the workgroups would be too few
 * to fill the machine (decode on a long context). */
#include <stdlib.h>

#include "rt_ops.h"

/* ---------------------------------------------------------------- GPUs: shaders/attention.comp */

/* The tiled kernel's shape: WG invocations, NQ query vectors (row, head) of one KV head per workgroup,
 * BC keys per tile, TW invocations across an output row, and the ranges of flash decoding. */
typedef struct attn_tiles {
    uint32_t wg, nq, bc, tw;
    bool sg;             /* subgroupMax / subgroupAdd (attention_sg) */
    int64_t tiles;       /* workgroups per KV head and range */
    int64_t n_split;     /* key ranges, fixed here; each workgroup sizes its own from the positions */
    uint32_t min_keys;   /* keys per range at least */
} attn_tiles;

/* the kernel's shared memory (as attention.comp declares it) */
static size_t tiles_shared(const attn_tiles *t, uint32_t hd, uint32_t kvp)
{
    uint32_t sr = t->wg / t->bc, ds = sr > t->nq ? sr / t->nq : 1; /* invocations per score */
    return 4 * ((size_t)t->nq * (hd + 1) + (size_t)t->bc * (hd / kvp + 1) + (size_t)ds * t->nq * (t->bc + 1) +
                4 * (size_t)t->nq + t->wg);
}

/* Workgroups of 128 (every Vulkan device runs them). NQ: all query vectors of a KV head's rows up to 64,
 * and at most 4096 / head_dim (the output block of 32 floats per invocation); BC 32 keys (64 for one
 * or two query vectors, whose tiles have few scores); both halved until the tiles fit the shared memory
 * (32 KiB at most, 16 KiB always fits: NQ = 1, BC = 8 at head size 256 is 10 KiB). TW: 32 invocations
 * across an output row where the row's words allow (a 4 x 4 block of outputs per invocation at NQ 16,
 * head size 128), more when there are few query vectors. Splits: when the workgroups would be fewer
 * than 128, enough ranges (at most 64, of 128 keys at least) for about 256 of them; on a CPU driver
 * (this kernel only with VKLLM_ATTN_TILED, which so tests a GPU's ranges) also no range of more than
 * 2048 keys: llvmpipe's loop limiter (attention.comp) cuts one range off past about 8K keys at head
 * size 256 in f32 (measured; 32K and more at head size 128). */
static attn_tiles tiles_choose(rt_seq *seq, int64_t rows, const rt_attn_desc *a, uint32_t kvp)
{
    const rt_device_info *d = &rt_seq_ctx(seq)->info;
    uint32_t hd = (uint32_t)a->head_dim, cw = hd / kvp;
    attn_tiles t = { .wg = rt_op_wg(seq, 128), .nq = 1, .n_split = 1 };
    int64_t G = a->n_heads / a->n_kv_heads, nqv = rows * G;
    uint32_t nq_max = 4096 / hd < 64 ? 4096 / hd : 64;
    if (a->pages.buf && nq_max > (uint32_t)(G & -G)) /* paged: one row per tile (rows may be of other sequences) */
        nq_max = (uint32_t)(G & -G);
    while (t.nq < nqv && t.nq * 2 <= nq_max && t.nq * 2 <= t.wg)
        t.nq *= 2;
    t.bc = t.nq <= 2 ? 64 : 32;
    if (t.bc > t.wg)
        t.bc = t.wg;
    size_t budget = d->max_shared_memory < 32768 ? d->max_shared_memory : 32768;
    while (tiles_shared(&t, hd, kvp) > budget) {
        if (t.bc > 16)
            t.bc /= 2;
        else if (t.nq > 1)
            t.nq /= 2;
        else if (t.bc > 8)
            t.bc /= 2;
        else
            break;
    }
    t.tw = cw & (~cw + 1); /* the largest power of two dividing cw */
    if (t.tw > t.wg)
        t.tw = t.wg;
    while (t.tw > 32 && t.wg / (t.tw / 2) <= t.nq)
        t.tw /= 2;
    t.sg = d->use_subgroup_arithmetic && d->subgroup_size && d->subgroup_size <= t.wg && t.wg % d->subgroup_size == 0;
    t.tiles = (nqv + t.nq - 1) / t.nq;
    int64_t groups = a->n_kv_heads * t.tiles;
    t.min_keys = 128;
    int64_t keys = a->max_keys > 0 && a->max_keys < a->cap ? a->max_keys : a->cap; /* a row's at most */
    /* what a tile of consecutive rows reads with a sliding window (for the ranges wanted; the CPU limit
     * below keeps all keys, as a tile's rows may be far apart) */
    int64_t wkeys = a->window > 0 && keys > (int64_t)a->window + t.nq ? (int64_t)a->window + t.nq : keys;
    if (groups < 128 && wkeys >= 2 * t.min_keys) {
        int64_t want = (256 + groups - 1) / groups, most = (wkeys + t.min_keys - 1) / t.min_keys;
        t.n_split = want < most ? want : most;
        if (t.n_split > 64)
            t.n_split = 64;
    }
    if (d->type == RT_DEVICE_CPU && (keys + t.n_split - 1) / t.n_split > 2048)
        t.n_split = (keys + 2047) / 2048;
    /* the partials must fit one binding: fewer ranges, down to none */
    int64_t per_range = rows * a->n_heads * (a->head_dim + 2) * 4;
    if (t.n_split > 1 && t.n_split * per_range > (int64_t)d->max_storage_buffer_range)
        t.n_split = (int64_t)d->max_storage_buffer_range / per_range;
    if (t.n_split < 1)
        t.n_split = 1;
    return t;
}

/* One dispatch of attention.comp over (KV head x range, tile of query vectors), then attn_combine.comp
 * when split. */
static int attention_tiled(rt_seq *seq, rt_ref o, rt_ref q, rt_ref k, rt_ref v, rt_ref pos, int64_t rows,
                           const rt_attn_desc *a)
{
    uint32_t hd = (uint32_t)a->head_dim, kvp = a->cache_type == RT_F16 && hd % 2 == 0 ? 2 : 1;
    attn_tiles t = tiles_choose(seq, rows, a, kvp);
    int64_t kv = a->cap * a->n_kv_heads * hd, q_elems = rows * a->n_heads * hd;
    int64_t part_elems = rows * a->n_heads * t.n_split * (hd + 2);
    rt_pc_attn pc = { .rows = (uint32_t)rows, .n_heads = (uint32_t)a->n_heads, .n_kv_heads = (uint32_t)a->n_kv_heads,
                      .head_dim = hd, .cap = (uint32_t)a->cap, .scale = a->scale, .n_split = (uint32_t)t.n_split,
                      .split_keys = (uint32_t)a->cap, .min_keys = t.min_keys, .softcap = a->softcap,
                      .window = (uint32_t)a->window };
    rt_bind b[7];
    size_t cs = rt_dtype_size(a->cache_type);
    rt_op_bind(seq, o, 4, q_elems, &b[0], &pc.off_o);
    rt_op_bind(seq, q, 4, q_elems, &b[1], &pc.off_q);
    rt_op_bind(seq, k, cs, kv, &b[2], &pc.off_k);
    rt_op_bind(seq, v, cs, kv, &b[3], &pc.off_v);
    rt_op_bind(seq, pos, 4, rows, &b[4], &pc.off_pos);
    uint32_t paged = a->pages.buf != NULL;
    if (paged) { /* the rows' table offsets, then the tables: the rest of the buffer */
        while (pc.block_shift < 16 && (1 << pc.block_shift) < a->block_size)
            pc.block_shift++;
        if (a->block_size <= 0 || (1 << pc.block_shift) != a->block_size)
            return rt_seq_fail(seq, RT_ERR_INVALID, "attention: block size %d is no power of 2", a->block_size);
        rt_op_bind(seq, a->pages, 4, (int64_t)((rt_buffer_size(a->pages.buf) - a->pages.off) / 4), &b[6], &pc.off_pg);
    } else {
        b[6] = b[4];
    }
    if (t.n_split > 1) {
        rt_ref scratch;
        if (rt_seq_scratch(seq, (size_t)part_elems * 4, &scratch) == RT_OK)
            rt_op_bind(seq, scratch, 4, part_elems, &b[5], &pc.off_s);
    } else {
        b[5] = b[0]; /* not written without SPLIT */
    }
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    uint32_t pairs = a->cache_type == RT_F16 && kvp == 2 && pc.off_k % 2 == 0 && pc.off_v % 2 == 0;
    uint32_t spec[9] = { t.wg, (uint32_t)a->cache_type, t.n_split > 1, pairs, hd, t.nq, t.bc, t.tw, paged };
    uint32_t gy, gz;
    rt_op_grid_rows(seq, t.tiles, &gy, &gz);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, t.sg ? RT_SHADER_attention_sg : RT_SHADER_attention, spec, 9, 7, sizeof pc, &p))
        return rt_seq_status(seq);
    if (rt_seq_dispatch(seq, p, b, 7, &pc, (uint32_t)(a->n_kv_heads * t.n_split), gy, gz) || t.n_split == 1)
        return rt_seq_status(seq);
    rt_bind cb[2] = { b[0], b[5] };
    uint32_t wg = rt_op_wg(seq, 64);
    if (rt_op_pipeline(seq, RT_SHADER_attn_combine, &wg, 1, 2, sizeof pc, &p))
        return rt_seq_status(seq);
    rt_op_grid_rows(seq, rows, &gy, &gz);
    return rt_seq_dispatch(seq, p, cb, 2, &pc, (uint32_t)a->n_heads, gy, gz);
}

int rt_op_attention(rt_seq *seq, rt_ref o, rt_ref q, rt_ref k, rt_ref v, rt_ref pos, int64_t rows,
                    const rt_attn_desc *a)
{
    if (rows <= 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads || a->head_dim <= 0 ||
        a->head_dim > 256 || a->cap <= 0 || (a->cache_type != RT_F32 && a->cache_type != RT_F16) ||
        rows * a->n_heads * a->head_dim > 0xFFFFFFFFll || a->cap * a->n_kv_heads * a->head_dim > 0xFFFFFFFFll)
        return rt_seq_fail(seq, RT_ERR_INVALID, "attention: bad shape (heads %d/%d, head_dim %d)", a->n_heads,
                           a->n_kv_heads, a->head_dim);
    if (!(a->softcap >= 0) || a->window < 0)
        return rt_seq_fail(seq, RT_ERR_INVALID, "attention: softcap %g, window %d", (double)a->softcap,
                           (int)a->window);
    /* CPU drivers (rt_ops_attention_cpu.c) unless asked (VKLLM_ATTN_TILED) or for head sizes that are no
     * multiple of 8 */
    bool cpu = rt_seq_ctx(seq)->info.type == RT_DEVICE_CPU && a->head_dim % 8 == 0 && !rt_env_on("VKLLM_ATTN_TILED");
    if (cpu)
        return rt_attention_cpu(seq, o, q, k, v, pos, rows, a);
    return attention_tiled(seq, o, q, k, v, pos, rows, a);
}
