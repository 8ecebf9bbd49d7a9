// Q6_K: 256 values in 210 bytes: 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 signed
// scales (one per 16 values), f16 d. Value e: half = e / 128, c = (e % 128) / 32, l = e % 32: low nibble
// c / 2 of byte 64 half + 32 (c % 2) + l, high bits 2c of byte 128 + 32 half + l, scale
// 8 half + 2c + l / 16; x = (d * scale) * (q - 32)
const uint QK = 256u, QB = 210u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 256u) * 210u, i = e % 256u;
    uint half_ = i >> 7, c = (i >> 5) & 3u, l = i & 31u;
    uint sc = rd8(bb + 192u + half_ * 8u + 2u * c + (l >> 4));
    float dl = rdf16(bb + 208u) * float(int(sc << 24) >> 24);
    uint ol = bb + half_ * 64u + (c & 1u) * 32u + l, sh = (c >> 1) * 4u;
    uint oh = bb + 128u + half_ * 32u + l;
    uvec4 qa = bytes4(rd32(ol), sh, 0xFu) | (bytes4(rd32(oh), 2u * c, 3u) << 4);
    uvec4 qb = bytes4(rd32(ol + 4u), sh, 0xFu) | (bytes4(rd32(oh + 4u), 2u * c, 3u) << 4);
    a = (vec4(qa) - 32.0) * dl;
    b = (vec4(qb) - 32.0) * dl;
}
