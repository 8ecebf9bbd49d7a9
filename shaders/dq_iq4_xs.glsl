// IQ4_XS: 256 values in 136 bytes: scales f16 d, 16 bits of scale high parts (2 per 32 values), 4 bytes
// of scale low nibbles; quants 128 bytes of 4-bit table indices (each 32 values placed as in IQ4_NL).
// Value e: sub-block s = e / 32 has scale ls = low nibble s % 2 of scale byte 4 + s / 2 | bits 2s of the
// u16 at 2 shifted up by 4; x = (d * (ls - 32)) * table[q]
const uint QK = 256u, QB = 136u, QQ = 128u, QS = 8u;
#include "wload.glsl"
#include "iq4_table.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 256u, i = e % 256u, sb = sr + blk * 8u;
    uint s = i >> 5, w = i & 31u;
    uint h = rs32(sb);
    uint ls = ((rs8(sb + 4u + (s >> 1)) >> (4u * (s & 1u))) & 0xFu) | (((h >> (16u + 2u * s)) & 3u) << 4);
    float dl = unpackHalf2x16(h).x * float(int(ls) - 32);
    uvec2 q = rq64(qr + blk * 128u + s * 16u + (w & 8u));
    uint sh = (w >> 4) * 4u;
    a = iq4_lookup(bytes4(q.x, sh, 0xFu)) * dl;
    b = iq4_lookup(bytes4(q.y, sh, 0xFu)) * dl;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 256u, s = (e % 256u) >> 5, sb = sr + blk * 8u;
    uint h = rs32(sb);
    uint ls = ((rs8(sb + 4u + (s >> 1)) >> (4u * (s & 1u))) & 0xFu) | (((h >> (16u + 2u * s)) & 3u) << 4);
    float dl = unpackHalf2x16(h).x * float(int(ls) - 32);
    uvec4 q = rq128(qr + blk * 128u + s * 16u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = iq4_lookup(bytes4(q[j], 0u, 0xFu)) * dl;
        v[j + 4u] = iq4_lookup(bytes4(q[j], 4u, 0xFu)) * dl;
    }
}
