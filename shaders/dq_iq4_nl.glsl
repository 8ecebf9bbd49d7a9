// IQ4_NL: 32 values in 18 bytes: scales f16 d; quants 16 bytes of 4-bit indices (placed as in Q4_0)
// into a fixed non-linear table; x = d * table[q]
const uint QK = 32u, QB = 18u, QQ = 16u, QS = 2u;
#include "wload.glsl"
#include "iq4_table.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 32u, i = e % 32u;
    float d = rsf16(sr + blk * 2u);
    uvec2 q = rq64(qr + blk * 16u + (i & 8u));
    uint sh = (i & 16u) >> 2;
    a = iq4_lookup(bytes4(q.x, sh, 0xFu)) * d;
    b = iq4_lookup(bytes4(q.y, sh, 0xFu)) * d;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 32u;
    float d = rsf16(sr + blk * 2u);
    uvec4 q = rq128(qr + blk * 16u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = iq4_lookup(bytes4(q[j], 0u, 0xFu)) * d;
        v[j + 4u] = iq4_lookup(bytes4(q[j], 4u, 0xFu)) * d;
    }
}
