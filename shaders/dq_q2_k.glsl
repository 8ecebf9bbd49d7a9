// Q2_K: 256 values in 84 bytes: scales 16 scale bytes (low nibble scale, high nibble min, one per 16
// values), f16 d, f16 dmin; quants 64 bytes of 2-bit q. Value e: half = e / 128, j = (e % 128) / 32,
// l = e % 32: q is bits 2j of quant byte 32 half + l, its scale byte half * 8 + j * 2 + l / 16;
// x = (d * scale) * q - dmin * min
const uint QK = 256u, QB = 84u, QQ = 64u, QS = 20u;
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 256u, i = e % 256u, s = sr + blk * 20u;
    uint half_ = i >> 7, j = (i >> 5) & 3u, l = i & 31u;
    vec2 dm = unpackHalf2x16(rs32(s + 16u));
    uint sc = rs8(s + half_ * 8u + j * 2u + (l >> 4));
    float dl = dm.x * float(sc & 0xFu), ml = dm.y * float(sc >> 4);
    uvec2 q = rq64(qr + blk * 64u + half_ * 32u + l);
    a = vec4(bytes4(q.x, 2u * j, 3u)) * dl - ml;
    b = vec4(bytes4(q.y, 2u * j, 3u)) * dl - ml;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 256u, i = e % 256u, s = sr + blk * 20u;
    uint half_ = i >> 7, j = (i >> 5) & 3u;
    vec2 dm = unpackHalf2x16(rs32(s + 16u));
    uint sc2 = rs16(s + half_ * 8u + j * 2u); // the scale bytes of values 0-15 and 16-31
    float dl0 = dm.x * float(sc2 & 0xFu), ml0 = dm.y * float((sc2 >> 4) & 0xFu);
    float dl1 = dm.x * float((sc2 >> 8) & 0xFu), ml1 = dm.y * float(sc2 >> 12);
    uint o = qr + blk * 64u + half_ * 32u;
    uvec4 q0 = rq128(o), q1 = rq128(o + 16u);
    for (uint t = 0; t < 4u; t++) {
        v[t] = vec4(bytes4(q0[t], 2u * j, 3u)) * dl0 - ml0;
        v[t + 4u] = vec4(bytes4(q1[t], 2u * j, 3u)) * dl1 - ml1;
    }
}
