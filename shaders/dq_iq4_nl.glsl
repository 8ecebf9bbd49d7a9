// IQ4_NL: 32 values in 18 bytes: f16 d, 16 bytes of 4-bit indices (placed as in Q4_0) into a fixed
// non-linear table; x = d * table[q]
const uint QK = 32u, QB = 18u;
#include "wload.glsl"
#include "iq4_table.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 32u) * 18u, i = e % 32u;
    float d = rdf16(bb);
    uint o = bb + 2u + (i & 15u), sh = (i & 16u) >> 2;
    a = iq4_lookup(bytes4(rd32(o), sh, 0xFu)) * d;
    b = iq4_lookup(bytes4(rd32(o + 4u), sh, 0xFu)) * d;
}
