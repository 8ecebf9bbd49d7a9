// Q4_0: 32 values in 18 bytes: scales f16 d; quants 16 bytes of 4-bit q (value i: byte i % 16, low
// nibble for i < 16, high for i >= 16); x = (q - 8) * d
const uint QK = 32u, QB = 18u, QQ = 16u, QS = 2u;
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 32u, i = e % 32u;
    float d = rsf16(sr + blk * 2u);
    uvec2 q = rq64(qr + blk * 16u + (i & 8u));
    uint sh = (i & 16u) >> 2;
    a = (vec4(bytes4(q.x, sh, 0xFu)) - 8.0) * d;
    b = (vec4(bytes4(q.y, sh, 0xFu)) - 8.0) * d;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 32u;
    float d = rsf16(sr + blk * 2u);
    uvec4 q = rq128(qr + blk * 16u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = (vec4(bytes4(q[j], 0u, 0xFu)) - 8.0) * d;
        v[j + 4u] = (vec4(bytes4(q[j], 4u, 0xFu)) - 8.0) * d;
    }
}
#define DQ_STEP 32u
float dq_dot(uint qr, uint sr, uint e, vec4 x[8], float xs[2])
{
    uint blk = e / 32u;
    uvec4 q = rq128(qr + blk * 16u);
    float s = 0.0;
    for (uint j = 0; j < 4u; j++)
        s += dot(vec4(bytes4(q[j], 0u, 0xFu)), x[j]) + dot(vec4(bytes4(q[j], 4u, 0xFu)), x[j + 4u]);
    return (s - 8.0 * (xs[0] + xs[1])) * rsf16(sr + blk * 2u);
}
