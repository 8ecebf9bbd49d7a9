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
#define DQ_STEP 128u
// the sums of q * x over the 16 + 16 values of group j of a half (q = low bits - 4 unless the high bit)
vec2 q3k_part(uvec4 q0, uvec4 q1, uvec4 h0, uvec4 h1, uint j, uint hbit, vec4 x0, vec4 x1, vec4 x2, vec4 x3,
              vec4 x4, vec4 x5, vec4 x6, vec4 x7)
{
    vec4 xa[4] = vec4[4](x0, x1, x2, x3), xb[4] = vec4[4](x4, x5, x6, x7);
    vec2 s = vec2(0.0);
    for (uint t = 0; t < 4u; t++) {
        s.x += dot(vec4(bytes4(q0[t], 2u * j, 3u)) - 4.0 + 4.0 * vec4(bytes4(h0[t], hbit, 1u)), xa[t]);
        s.y += dot(vec4(bytes4(q1[t], 2u * j, 3u)) - 4.0 + 4.0 * vec4(bytes4(h1[t], hbit, 1u)), xb[t]);
    }
    return s;
}
// the 128 values of half h = (e % 256) / 128: its 32 quant bytes hold the 2 low bits of all four groups
// j (shifts 2j), the 32 hmask bytes their high bits (bits 4h + j); 16 values per scale
float dq_dot(uint qr, uint sr, uint e, vec4 x[32], float xs[8])
{
    uint blk = e / 256u, half_ = (e % 256u) >> 7, s = sr + blk * 14u, qb = qr + blk * 96u;
    uvec4 h0 = rq128(qb), h1 = rq128(qb + 16u), q0 = rq128(qb + 32u + half_ * 32u), q1 = rq128(qb + 48u + half_ * 32u);
    uint hb = half_ * 4u, is = half_ * 8u;
    // written out: a loop over j here keeps x in memory on lavapipe
    vec2 a = q3k_part(q0, q1, h0, h1, 0u, hb, x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]);
    vec2 b = q3k_part(q0, q1, h0, h1, 1u, hb + 1u, x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15]);
    vec2 c = q3k_part(q0, q1, h0, h1, 2u, hb + 2u, x[16], x[17], x[18], x[19], x[20], x[21], x[22], x[23]);
    vec2 d = q3k_part(q0, q1, h0, h1, 3u, hb + 3u, x[24], x[25], x[26], x[27], x[28], x[29], x[30], x[31]);
    float t = q3k_scale(s, is) * a.x + q3k_scale(s, is + 1u) * a.y + q3k_scale(s, is + 2u) * b.x +
              q3k_scale(s, is + 3u) * b.y + q3k_scale(s, is + 4u) * c.x + q3k_scale(s, is + 5u) * c.y +
              q3k_scale(s, is + 6u) * d.x + q3k_scale(s, is + 7u) * d.y;
    return rsf16(s + 12u) * t;
}
