// Q3_K: 256 values in 110 bytes: quants 32 bytes of high bits (hmask), 64 bytes of 2-bit low q; scales
// 12 bytes of 6-bit scales (16 of them, one per 16 values, stored + 32), f16 d. Value e: half = e / 128,
// j = (e % 128) / 32, l = e % 32: low bits 2j of quant byte 32 + 32 half + l, high bit (half * 4 + j) of
// hmask[l] (clear: subtract 4), scale half * 8 + j * 2 + l / 16; x = (d * (scale - 32)) * (q - 4 * !h)
const uint QK = 256u, QB = 110u, QQ = 96u, QS = 14u;
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 256u, i = e % 256u, s = sr + blk * 14u, qb = qr + blk * 96u;
    uint half_ = i >> 7, j = (i >> 5) & 3u, l = i & 31u;
    uint is = half_ * 8u + j * 2u + (l >> 4);
    uint lo4 = is < 8u ? rs8(s + is) & 0xFu : rs8(s + is - 8u) >> 4;
    uint hi2 = (rs8(s + 8u + (is & 3u)) >> (2u * (is >> 2))) & 3u;
    float dl = rsf16(s + 12u) * float(int(lo4 | (hi2 << 4)) - 32);
    uint hbit = half_ * 4u + j;
    uvec2 hm = rq64(qb + l), q = rq64(qb + 32u + half_ * 32u + l);
    a = (vec4(bytes4(q.x, 2u * j, 3u)) - 4.0 + 4.0 * vec4(bytes4(hm.x, hbit, 1u))) * dl;
    b = (vec4(bytes4(q.y, 2u * j, 3u)) - 4.0 + 4.0 * vec4(bytes4(hm.y, hbit, 1u))) * dl;
}
#define DQ32
float q3k_scale(uint s, uint is)
{
    uint lo4 = is < 8u ? rs8(s + is) & 0xFu : rs8(s + is - 8u) >> 4;
    uint hi2 = (rs8(s + 8u + (is & 3u)) >> (2u * (is >> 2))) & 3u;
    return float(int(lo4 | (hi2 << 4)) - 32);
}
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 256u, i = e % 256u, s = sr + blk * 14u, qb = qr + blk * 96u;
    uint half_ = i >> 7, j = (i >> 5) & 3u, is = half_ * 8u + j * 2u, hbit = half_ * 4u + j;
    float d = rsf16(s + 12u), dl0 = d * q3k_scale(s, is), dl1 = d * q3k_scale(s, is + 1u);
    uvec4 h0 = rq128(qb), h1 = rq128(qb + 16u), q0 = rq128(qb + 32u + half_ * 32u), q1 = rq128(qb + 48u + half_ * 32u);
    for (uint t = 0; t < 4u; t++) {
        v[t] = (vec4(bytes4(q0[t], 2u * j, 3u)) - 4.0 + 4.0 * vec4(bytes4(h0[t], hbit, 1u))) * dl0;
        v[t + 4u] = (vec4(bytes4(q1[t], 2u * j, 3u)) - 4.0 + 4.0 * vec4(bytes4(h1[t], hbit, 1u))) * dl1;
    }
}
