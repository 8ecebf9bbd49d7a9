// Q5_1: 32 values in 24 bytes: f16 d, f16 m, 32 high bits, 16 bytes of low nibbles; x = q * d + m
const uint QK = 32u, QB = 24u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 32u) * 24u, i = e % 32u;
    vec2 dm = unpackHalf2x16(rd32(bb));
    uint h = rd32(bb + 4u) >> i;
    uint o = bb + 8u + (i & 15u), sh = (i & 16u) >> 2;
    uvec4 ha = (uvec4(h) >> uvec4(0u, 1u, 2u, 3u) & 1u) << 4, hb = (uvec4(h) >> uvec4(4u, 5u, 6u, 7u) & 1u) << 4;
    a = vec4(bytes4(rd32(o), sh, 0xFu) | ha) * dm.x + dm.y;
    b = vec4(bytes4(rd32(o + 4u), sh, 0xFu) | hb) * dm.x + dm.y;
}
