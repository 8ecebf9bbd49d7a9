// Q2_K: 256 values in 84 bytes: 16 scale bytes (low nibble scale, high nibble min, one per 16 values),
// 64 bytes of 2-bit q, f16 d, f16 dmin. Value e: half = e / 128, j = (e % 128) / 32, l = e % 32: q is
// bits 2j of byte 16 + 32 half + l, its scale byte half * 8 + j * 2 + l / 16;
// x = (d * scale) * q - dmin * min
const uint QK = 256u, QB = 84u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 256u) * 84u, i = e % 256u;
    uint half_ = i >> 7, j = (i >> 5) & 3u, l = i & 31u;
    vec2 dm = unpackHalf2x16(rd32(bb + 80u));
    uint sc = rd8(bb + half_ * 8u + j * 2u + (l >> 4));
    float dl = dm.x * float(sc & 0xFu), ml = dm.y * float(sc >> 4);
    uint o = bb + 16u + half_ * 32u + l;
    a = vec4(bytes4(rd32(o), 2u * j, 3u)) * dl - ml;
    b = vec4(bytes4(rd32(o + 4u), 2u * j, 3u)) * dl - ml;
}
