// Q4_0: 32 values in 18 bytes: f16 d, then 16 bytes of 4-bit q (value i: byte i % 16, low nibble for
// i < 16, high for i >= 16); x = (q - 8) * d
const uint QK = 32u, QB = 18u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 32u) * 18u, i = e % 32u;
    float d = rdf16(bb);
    uint o = bb + 2u + (i & 15u), sh = (i & 16u) >> 2;
    a = (vec4(bytes4(rd32(o), sh, 0xFu)) - 8.0) * d;
    b = (vec4(bytes4(rd32(o + 4u), sh, 0xFu)) - 8.0) * d;
}
