// Q4_1: 32 values in 20 bytes: scales f16 d, f16 m; quants 16 bytes of 4-bit q (as Q4_0); x = q * d + m
const uint QK = 32u, QB = 20u, QQ = 16u, QS = 4u;
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 32u, i = e % 32u;
    vec2 dm = unpackHalf2x16(rs32(sr + blk * 4u));
    uvec2 q = rq64(qr + blk * 16u + (i & 8u));
    uint sh = (i & 16u) >> 2;
    a = vec4(bytes4(q.x, sh, 0xFu)) * dm.x + dm.y;
    b = vec4(bytes4(q.y, sh, 0xFu)) * dm.x + dm.y;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 32u;
    vec2 dm = unpackHalf2x16(rs32(sr + blk * 4u));
    uvec4 q = rq128(qr + blk * 16u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = vec4(bytes4(q[j], 0u, 0xFu)) * dm.x + dm.y;
        v[j + 4u] = vec4(bytes4(q[j], 4u, 0xFu)) * dm.x + dm.y;
    }
}
