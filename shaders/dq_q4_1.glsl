// Q4_1: 32 values in 20 bytes: f16 d, f16 m, 16 bytes of 4-bit q (as Q4_0); x = q * d + m
const uint QK = 32u, QB = 20u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 32u) * 20u, i = e % 32u;
    vec2 dm = unpackHalf2x16(rd32(bb));
    uint o = bb + 4u + (i & 15u), sh = (i & 16u) >> 2;
    a = vec4(bytes4(rd32(o), sh, 0xFu)) * dm.x + dm.y;
    b = vec4(bytes4(rd32(o + 4u), sh, 0xFu)) * dm.x + dm.y;
}
