// IQ4_XS: 256 values in 136 bytes: f16 d, 16 bits of scale high parts (2 per 32 values), 4 bytes of
// scale low nibbles, 128 bytes of 4-bit table indices (each 32 values placed as in IQ4_NL). Value e:
// sub-block s = e / 32 has scale ls = low nibble s % 2 of byte 4 + s / 2 | bits 2s of the u16 at 2
// shifted up by 4; x = (d * (ls - 32)) * table[q]
const uint QK = 256u, QB = 136u;
#include "wload.glsl"
#include "iq4_table.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 256u) * 136u, i = e % 256u;
    uint s = i >> 5, w = i & 31u;
    uint ls = ((rd8(bb + 4u + (s >> 1)) >> (4u * (s & 1u))) & 0xFu) | (((rd16(bb + 2u) >> (2u * s)) & 3u) << 4);
    float dl = rdf16(bb) * float(int(ls) - 32);
    uint o = bb + 8u + s * 16u + (w & 15u), sh = (w >> 4) * 4u;
    a = iq4_lookup(bytes4(rd32(o), sh, 0xFu)) * dl;
    b = iq4_lookup(bytes4(rd32(o + 4u), sh, 0xFu)) * dl;
}
