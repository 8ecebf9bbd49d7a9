// Q4_K: 256 values in 144 bytes: scales f16 d, f16 dmin, 12 bytes of 6-bit scales and mins (8 of each,
// one per 32 values); quants 128 bytes of 4-bit q. Value e: g = e / 64, w = e % 64: q is nibble w / 32
// of quant byte 32 g + w % 32, its scale and min number s = 2 g + w / 32;
// x = (d * scale) * q - dmin * min
const uint QK = 256u, QB = 144u, QQ = 128u, QS = 16u;
#include "wload.glsl"
#include "dq_kscale.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 256u, i = e % 256u;
    uint g = i >> 6, w = i & 63u;
    uvec4 sc = rs128(sr + blk * 16u);
    vec2 dm = unpackHalf2x16(sc.x);
    uvec2 sm = scale_min_k4(sc.yzw, 2u * g + (w >> 5));
    float d1 = dm.x * float(sm.x), m1 = dm.y * float(sm.y);
    uvec2 q = rq64(qr + blk * 128u + g * 32u + (w & 31u));
    uint sh = (w >> 5) * 4u;
    a = vec4(bytes4(q.x, sh, 0xFu)) * d1 - m1;
    b = vec4(bytes4(q.y, sh, 0xFu)) * d1 - m1;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 256u, i = e % 256u;
    uint g = i >> 6, hi = (i >> 5) & 1u;
    uvec4 sc = rs128(sr + blk * 16u);
    vec2 dm = unpackHalf2x16(sc.x);
    uvec2 sm = scale_min_k4(sc.yzw, 2u * g + hi);
    float d1 = dm.x * float(sm.x), m1 = dm.y * float(sm.y);
    uint o = qr + blk * 128u + g * 32u;
    uvec4 q0 = rq128(o), q1 = rq128(o + 16u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = vec4(bytes4(q0[j], hi * 4u, 0xFu)) * d1 - m1;
        v[j + 4u] = vec4(bytes4(q1[j], hi * 4u, 0xFu)) * d1 - m1;
    }
}
#define DQ_STEP 64u
// the 64 values of group g = (e % 256) / 64: the low nibbles of its 32 bytes (scale 2g), then the high
float dq_dot(uint qr, uint sr, uint e, vec4 x[16], float xs[4])
{
    uint blk = e / 256u, g = (e % 256u) >> 6;
    uvec4 sc = rs128(sr + blk * 16u);
    vec2 dm = unpackHalf2x16(sc.x);
    uvec2 sm0 = scale_min_k4(sc.yzw, 2u * g), sm1 = scale_min_k4(sc.yzw, 2u * g + 1u);
    uint o = qr + blk * 128u + g * 32u;
    uvec4 q0 = rq128(o), q1 = rq128(o + 16u);
    float s0 = 0.0, s1 = 0.0;
    for (uint j = 0; j < 4u; j++) {
        s0 += dot(vec4(bytes4(q0[j], 0u, 0xFu)), x[j]) + dot(vec4(bytes4(q1[j], 0u, 0xFu)), x[j + 4u]);
        s1 += dot(vec4(bytes4(q0[j], 4u, 0xFu)), x[j + 8u]) + dot(vec4(bytes4(q1[j], 4u, 0xFu)), x[j + 12u]);
    }
    return dm.x * (float(sm0.x) * s0 + float(sm1.x) * s1) -
           dm.y * (float(sm0.y) * (xs[0] + xs[1]) + float(sm1.y) * (xs[2] + xs[3]));
}
