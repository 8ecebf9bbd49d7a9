// Q5_0: 32 values in 22 bytes: scales f16 d, 32 high bits (bit i for value i); quants 16 bytes of low
// nibbles (as Q4_0); x = (q - 16) * d
const uint QK = 32u, QB = 22u, QQ = 16u, QS = 6u;
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 32u, i = e % 32u, s = sr + blk * 6u;
    float d = rsf16(s);
    uint h = rs32(s + 2u) >> i; // bit t: value i + t
    uvec2 q = rq64(qr + blk * 16u + (i & 8u));
    uint sh = (i & 16u) >> 2;
    uvec4 ha = (uvec4(h) >> uvec4(0u, 1u, 2u, 3u) & 1u) << 4, hb = (uvec4(h) >> uvec4(4u, 5u, 6u, 7u) & 1u) << 4;
    a = (vec4(bytes4(q.x, sh, 0xFu) | ha) - 16.0) * d;
    b = (vec4(bytes4(q.y, sh, 0xFu) | hb) - 16.0) * d;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 32u, s = sr + blk * 6u;
    float d = rsf16(s);
    uint h = rs32(s + 2u);
    uvec4 q = rq128(qr + blk * 16u);
    for (uint j = 0; j < 4u; j++) {
        uvec4 hl = (uvec4(h >> (4u * j)) >> uvec4(0u, 1u, 2u, 3u) & 1u) << 4;
        uvec4 hh = (uvec4(h >> (16u + 4u * j)) >> uvec4(0u, 1u, 2u, 3u) & 1u) << 4;
        v[j] = (vec4(bytes4(q[j], 0u, 0xFu) | hl) - 16.0) * d;
        v[j + 4u] = (vec4(bytes4(q[j], 4u, 0xFu) | hh) - 16.0) * d;
    }
}
