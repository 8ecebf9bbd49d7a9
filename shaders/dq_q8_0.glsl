// Q8_0: 32 values in 34 bytes: scales f16 d; quants 32 signed bytes q; x = q * d
const uint QK = 32u, QB = 34u, QQ = 32u, QS = 2u;
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint blk = e / 32u, i = e % 32u;
    float d = rsf16(sr + blk * 2u);
    uvec2 q = rq64(qr + blk * 32u + i);
    a = sbytes4(q.x) * d;
    b = sbytes4(q.y) * d;
}
#define DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    uint blk = e / 32u;
    float d = rsf16(sr + blk * 2u);
    uvec4 q0 = rq128(qr + blk * 32u), q1 = rq128(qr + blk * 32u + 16u);
    for (uint j = 0; j < 4u; j++) {
        v[j] = sbytes4(q0[j]) * d;
        v[j + 4u] = sbytes4(q1[j]) * d;
    }
}
#define DQ_STEP 32u
float dq_dot(uint qr, uint sr, uint e, vec4 x[8], float xs[2])
{
    uint blk = e / 32u;
    uvec4 q0 = rq128(qr + blk * 32u), q1 = rq128(qr + blk * 32u + 16u);
    float s = 0.0;
    for (uint j = 0; j < 4u; j++)
        s += dot(sbytes4(q0[j]), x[j]) + dot(sbytes4(q1[j]), x[j + 4u]);
    return s * rsf16(sr + blk * 2u);
}
