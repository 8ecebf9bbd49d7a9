/* rt_dtype.c: the table of tensor element types (rt.h): ggml's block layouts by size, and the device
 * layout of weights (block formats repacked into a plane of quants and a plane of scales). */
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

/* name, elements and bytes per block, where the quants are in the block: the rest is scales */
static const rt_dtype_traits traits[RT_DTYPE_MAX] = {
    [RT_F32] = { "F32", 1, 4, 0, 4 },
    [RT_F16] = { "F16", 1, 2, 0, 2 },
    [RT_BF16] = { "BF16", 1, 2, 0, 2 },
    [RT_Q4_0] = { "Q4_0", 32, 18, 2, 16 },       /* d | qs[16] */
    [RT_Q4_1] = { "Q4_1", 32, 20, 4, 16 },       /* d m | qs[16] */
    [RT_Q5_0] = { "Q5_0", 32, 22, 6, 16 },       /* d qh[4] | qs[16] */
    [RT_Q5_1] = { "Q5_1", 32, 24, 8, 16 },       /* d m qh[4] | qs[16] */
    [RT_Q8_0] = { "Q8_0", 32, 34, 2, 32 },       /* d | qs[32] */
    [RT_Q2_K] = { "Q2_K", 256, 84, 16, 64 },     /* scales[16] | qs[64] | d dmin */
    [RT_Q3_K] = { "Q3_K", 256, 110, 0, 96 },     /* hmask[32] qs[64] | scales[12] d */
    [RT_Q4_K] = { "Q4_K", 256, 144, 16, 128 },   /* d dmin scales[12] | qs[128] */
    [RT_Q5_K] = { "Q5_K", 256, 176, 16, 160 },   /* d dmin scales[12] | qh[32] qs[128] */
    [RT_Q6_K] = { "Q6_K", 256, 210, 0, 192 },    /* ql[128] qh[64] | scales[16] d */
    [RT_IQ4_NL] = { "IQ4_NL", 32, 18, 2, 16 },   /* d | qs[16] */
    [RT_IQ4_XS] = { "IQ4_XS", 256, 136, 8, 128 }, /* d scales_h scales_l[4] | qs[128] */
};

bool rt_dtype_info(int t, rt_dtype_traits *out)
{
    if (t < 0 || t >= RT_DTYPE_MAX || !traits[t].name)
        return false;
    if (out)
        *out = traits[t];
    return true;
}

size_t rt_dtype_size(rt_dtype t)
{
    rt_dtype_traits tr;
    return rt_dtype_info((int)t, &tr) && tr.block == 1 ? tr.block_bytes : 0;
}

size_t rt_dtype_row_bytes(rt_dtype t, int64_t k)
{
    rt_dtype_traits tr;
    if (!rt_dtype_info((int)t, &tr) || k <= 0 || k % tr.block)
        return 0;
    return (size_t)(k / tr.block) * tr.block_bytes;
}

size_t rt_weight_bytes(rt_dtype t, int64_t rows, int64_t k)
{
    rt_dtype_traits tr;
    size_t row = rt_dtype_row_bytes(t, k);
    if (!row || rows <= 0 || !rt_dtype_info((int)t, &tr))
        return 0;
    if (tr.block == 1)
        return row * (size_t)rows;
    size_t blocks = (size_t)(k / tr.block) * (size_t)rows;
    return (blocks * tr.q_bytes + 15) / 16 * 16 + blocks * (tr.block_bytes - tr.q_bytes);
}

/* file -> device (pack = false: device -> file) */
static void convert(rt_dtype t, const void *src, void *dst, int64_t rows, int64_t k, bool to_device)
{
    rt_dtype_traits tr;
    if (!rt_dtype_info((int)t, &tr) || !rt_weight_bytes(t, rows, k))
        return;
    if (tr.block == 1) {
        memcpy(dst, src, rt_weight_bytes(t, rows, k));
        return;
    }
    size_t blocks = (size_t)(k / tr.block) * (size_t)rows, bb = tr.block_bytes, qo = tr.q_off, qb = tr.q_bytes;
    size_t sb = bb - qb, tail = bb - qo - qb, splane = (blocks * qb + 15) / 16 * 16;
    uint8_t *file = (uint8_t *)(to_device ? src : dst), *dev = (uint8_t *)(to_device ? dst : src);
    if (to_device && splane > blocks * qb)
        memset(dev + blocks * qb, 0, splane - blocks * qb);
    for (size_t i = 0; i < blocks; i++) {
        uint8_t *f = file + i * bb, *q = dev + i * qb, *s = dev + splane + i * sb;
        if (to_device) {
            memcpy(q, f + qo, qb);
            memcpy(s, f, qo);
            memcpy(s + qo, f + qo + qb, tail);
        } else {
            memcpy(f + qo, q, qb);
            memcpy(f, s, qo);
            memcpy(f + qo + qb, s + qo, tail);
        }
    }
}

void rt_weight_repack(rt_dtype t, const void *src, void *dst, int64_t rows, int64_t k)
{
    convert(t, src, dst, rows, k, true);
}

void rt_weight_unpack(rt_dtype t, const void *src, void *dst, int64_t rows, int64_t k)
{
    convert(t, src, dst, rows, k, false);
}

int rt_weight_write(rt_buffer *buf, size_t off, rt_dtype t, const void *src, int64_t rows, int64_t k)
{
    size_t bytes = rt_weight_bytes(t, rows, k);
    if (!bytes || off % 16)
        return rt_ctx_fail(buf->ctx, RT_ERR_INVALID, "weights: bad shape %lld x %lld or offset %zu for type %d",
                          (long long)rows, (long long)k, off, (int)t);
    if (rt_dtype_size(t))
        return rt_buffer_write(buf, off, src, bytes);
    void *tmp = malloc(bytes);
    if (!tmp)
        return rt_ctx_fail(buf->ctx, RT_ERR_OUT_OF_MEMORY, "weights: out of host memory (%zu bytes)", bytes);
    rt_weight_repack(t, src, tmp, rows, k);
    int rc = rt_buffer_write(buf, off, tmp, bytes);
    free(tmp);
    return rc;
}
