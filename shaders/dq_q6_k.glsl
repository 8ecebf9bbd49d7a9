// Q6_K: 256 values in 210 bytes: quants 128 bytes of low nibbles, 64 bytes of 2-bit high parts; scales
// 16 signed scales (one per 16 values), f16 d. Value e: half = e / 128, c = (e % 128) / 32, l = e % 32:
// low nibble c / 2 of quant byte 64 half + 32 (c % 2) + l, high bits 2c of quant byte 128 + 32 half + l,
// scale 8 half + 2c + l / 16; x = (d * scale) * (q - 32)
const uint QK = 256u, QB = 210u, QQ = 192u, QS = 18u;
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 256u, i = e % 256u, s = sr + blk * 18u, qb = qr + blk * 192u;
    uint half_ = i >> 7, c = (i >> 5) & 3u, l = i & 31u;
    uint sc = rs8(s + half_ * 8u + 2u * c + (l >> 4));
    float dl = rsf16(s + 16u) * float(int(sc << 24) >> 24);
    uint sh = (c >> 1) * 4u;
    uvec2 ql = rq64(qb + half_ * 64u + (c & 1u) * 32u + l), qh = rq64(qb + 128u + half_ * 32u + l);
    uvec4 qa = bytes4(ql.x, sh, 0xFu) | (bytes4(qh.x, 2u * c, 3u) << 4);
    uvec4 qc = bytes4(ql.y, sh, 0xFu) | (bytes4(qh.y, 2u * c, 3u) << 4);
    a = (vec4(qa) - 32.0) * dl;
    b = (vec4(qc) - 32.0) * dl;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 256u, i = e % 256u, s = sr + blk * 18u, qb = qr + blk * 192u;
    uint half_ = i >> 7, c = (i >> 5) & 3u;
    uint sc2 = rs16(s + half_ * 8u + 2u * c); // the scales of values 0-15 and 16-31 of these 32
    float d = rsf16(s + 16u);
    float dl0 = d * float(int(sc2 << 24) >> 24), dl1 = d * float(int(sc2 << 16) >> 24);
    uint sh = (c >> 1) * 4u;
    uint lo = qb + half_ * 64u + (c & 1u) * 32u, hib = qb + 128u + half_ * 32u;
    uvec4 l0 = rq128(lo), l1 = rq128(lo + 16u), h0 = rq128(hib), h1 = rq128(hib + 16u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = (vec4(bytes4(l0[j], sh, 0xFu) | (bytes4(h0[j], 2u * c, 3u) << 4)) - 32.0) * dl0;
        v[j + 4u] = (vec4(bytes4(l1[j], sh, 0xFu) | (bytes4(h1[j], 2u * c, 3u) << 4)) - 32.0) * dl1;
    }
}
#define DQ_STEP 128u
// 16 + 16 values c of a half (see dq_dot below): low bits from la, lb shifted by sh, high bits 2c of ha, hb
float q6k_part(uvec4 la, uvec4 lb, uvec4 ha, uvec4 hb, uint sh, uint c, uint sc2, vec4 x[32], float xs[8])
{
    float s0 = 0.0, s1 = 0.0;
    for (uint j = 0; j < 4u; j++) {
        s0 += dot(vec4(bytes4(la[j], sh, 0xFu) | (bytes4(ha[j], 2u * c, 3u) << 4)), x[c * 8u + j]);
        s1 += dot(vec4(bytes4(lb[j], sh, 0xFu) | (bytes4(hb[j], 2u * c, 3u) << 4)), x[c * 8u + 4u + j]);
    }
    return float(int(sc2 << 24) >> 24) * (s0 - 32.0 * xs[2u * c]) +
           float(int(sc2 << 16) >> 24) * (s1 - 32.0 * xs[2u * c + 1u]);
}
// the 128 values of half h = (e % 256) / 128: its 64 ql bytes give values c = 0, 1 (low nibbles) and
// 2, 3 (high), its 32 qh bytes the high bits of all four (bits 2c); 16 values per scale
float dq_dot(uint qr, uint sr, uint e, vec4 x[32], float xs[8])
{
    uint blk = e / 256u, half_ = (e % 256u) >> 7, s = sr + blk * 18u, qb = qr + blk * 192u;
    uint lo = qb + half_ * 64u, hib = qb + 128u + half_ * 32u;
    uvec4 l0 = rq128(lo), l1 = rq128(lo + 16u), l2 = rq128(lo + 32u), l3 = rq128(lo + 48u);
    uvec4 h0 = rq128(hib), h1 = rq128(hib + 16u);
    uvec4 sc = uvec4(rs16(s + half_ * 8u), rs16(s + half_ * 8u + 2u), rs16(s + half_ * 8u + 4u), rs16(s + half_ * 8u + 6u));
    float t = q6k_part(l0, l1, h0, h1, 0u, 0u, sc.x, x, xs) + q6k_part(l2, l3, h0, h1, 0u, 1u, sc.y, x, xs) +
              q6k_part(l0, l1, h0, h1, 4u, 2u, sc.z, x, xs) + q6k_part(l2, l3, h0, h1, 4u, 3u, sc.w, x, xs);
    return rsf16(s + 16u) * t;
}
