// Q5_K: 256 values in 176 bytes: scales f16 d, f16 dmin, 12 bytes of scales and mins (as Q4_K); quants
// 32 bytes of high bits, 128 bytes of low nibbles. Value e: g = e / 64, w = e % 64, l = w % 32: low
// nibble w / 32 of quant byte 32 + 32 g + l, high bit 2 g + w / 32 of quant byte l;
// x = (d * scale) * q - dmin * min
const uint QK = 256u, QB = 176u, QQ = 160u, QS = 16u;
#include "wload.glsl"
#include "dq_kscale.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 256u, i = e % 256u, qb = qr + blk * 160u;
    uint g = i >> 6, w = i & 63u, l = w & 31u;
    uvec4 sc = rs128(sr + blk * 16u);
    vec2 dm = unpackHalf2x16(sc.x);
    uvec2 sm = scale_min_k4(sc.yzw, 2u * g + (w >> 5));
    float d1 = dm.x * float(sm.x), m1 = dm.y * float(sm.y);
    uint sh = (w >> 5) * 4u, hs = 2u * g + (w >> 5);
    uvec2 h = rq64(qb + l), q = rq64(qb + 32u + g * 32u + l);
    a = vec4(bytes4(q.x, sh, 0xFu) | (bytes4(h.x, hs, 1u) << 4)) * d1 - m1;
    b = vec4(bytes4(q.y, sh, 0xFu) | (bytes4(h.y, hs, 1u) << 4)) * d1 - m1;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 256u, i = e % 256u, qb = qr + blk * 160u;
    uint g = i >> 6, hi = (i >> 5) & 1u, hs = 2u * g + hi;
    uvec4 sc = rs128(sr + blk * 16u);
    vec2 dm = unpackHalf2x16(sc.x);
    uvec2 sm = scale_min_k4(sc.yzw, hs);
    float d1 = dm.x * float(sm.x), m1 = dm.y * float(sm.y);
    uvec4 h0 = rq128(qb), h1 = rq128(qb + 16u), q0 = rq128(qb + 32u + g * 32u), q1 = rq128(qb + 48u + g * 32u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = vec4(bytes4(q0[j], hi * 4u, 0xFu) | (bytes4(h0[j], hs, 1u) << 4)) * d1 - m1;
        v[j + 4u] = vec4(bytes4(q1[j], hi * 4u, 0xFu) | (bytes4(h1[j], hs, 1u) << 4)) * d1 - m1;
    }
}
#define DQ_STEP 64u
// the 64 values of group g = (e % 256) / 64 (as Q4_K, with high bits 2g and 2g + 1 of the 32 qh bytes)
float dq_dot(uint qr, uint sr, uint e, vec4 x[16], float xs[4])
{
    uint blk = e / 256u, g = (e % 256u) >> 6, qb = qr + blk * 160u;
    uvec4 sc = rs128(sr + blk * 16u);
    vec2 dm = unpackHalf2x16(sc.x);
    uvec2 sm0 = scale_min_k4(sc.yzw, 2u * g), sm1 = scale_min_k4(sc.yzw, 2u * g + 1u);
    uvec4 h0 = rq128(qb), h1 = rq128(qb + 16u), q0 = rq128(qb + 32u + g * 32u), q1 = rq128(qb + 48u + g * 32u);
    float s0 = 0.0, s1 = 0.0;
    uint b0 = 2u * g, b1 = 2u * g + 1u;
    for (uint j = 0; j < 4u; j++) {
        s0 += dot(vec4(bytes4(q0[j], 0u, 0xFu) | (bytes4(h0[j], b0, 1u) << 4)), x[j]) +
              dot(vec4(bytes4(q1[j], 0u, 0xFu) | (bytes4(h1[j], b0, 1u) << 4)), x[j + 4u]);
        s1 += dot(vec4(bytes4(q0[j], 4u, 0xFu) | (bytes4(h0[j], b1, 1u) << 4)), x[j + 8u]) +
              dot(vec4(bytes4(q1[j], 4u, 0xFu) | (bytes4(h1[j], b1, 1u) << 4)), x[j + 12u]);
    }
    return dm.x * (float(sm0.x) * s0 + float(sm1.x) * s1) -
           dm.y * (float(sm0.y) * (xs[0] + xs[1]) + float(sm1.y) * (xs[2] + xs[3]));
}
