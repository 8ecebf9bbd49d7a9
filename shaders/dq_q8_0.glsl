// Q8_0: 32 values in 34 bytes: f16 d, 32 signed bytes q; x = q * d
const uint QK = 32u, QB = 34u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 32u) * 34u, i = e % 32u;
    float d = rdf16(bb);
    a = sbytes4(rd32(bb + 2u + i)) * d;
    b = sbytes4(rd32(bb + 6u + i)) * d;
}
