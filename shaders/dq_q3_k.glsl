// Q3_K: 256 values in 110 bytes: 32 bytes of high bits (hmask), 64 bytes of 2-bit low q, 12 bytes of
// 6-bit scales (16 of them, one per 16 values, stored - 32), f16 d. Value e: half = e / 128,
// j = (e % 128) / 32, l = e % 32: low bits 2j of byte 32 + 32 half + l, high bit (half * 4 + j) of
// hmask[l] (clear: subtract 4), scale half * 8 + j * 2 + l / 16; x = (d * (scale - 32)) * (q - 4 * !h)
const uint QK = 256u, QB = 110u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 256u) * 110u, i = e % 256u;
    uint half_ = i >> 7, j = (i >> 5) & 3u, l = i & 31u;
    uint is = half_ * 8u + j * 2u + (l >> 4);
    uint lo4 = is < 8u ? rd8(bb + 96u + is) & 0xFu : rd8(bb + 96u + is - 8u) >> 4;
    uint hi2 = (rd8(bb + 104u + (is & 3u)) >> (2u * (is >> 2))) & 3u;
    float dl = rdf16(bb + 108u) * float(int(lo4 | (hi2 << 4)) - 32);
    uint hbit = half_ * 4u + j;
    uint o = bb + 32u + half_ * 32u + l;
    vec4 ha = vec4(bytes4(rd32(bb + l), hbit, 1u)), hb = vec4(bytes4(rd32(bb + l + 4u), hbit, 1u));
    a = (vec4(bytes4(rd32(o), 2u * j, 3u)) - 4.0 + 4.0 * ha) * dl;
    b = (vec4(bytes4(rd32(o + 4u), 2u * j, 3u)) - 4.0 + 4.0 * hb) * dl;
}
