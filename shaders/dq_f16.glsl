// f16 weights
const uint QK = 1u, QB = 2u;
#define DQ_SCALAR
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uvec4 u = rd128(rb + e * 2u);
    a = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    b = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
}
float dq1(uint rb, uint e) { return rdf16(rb + e * 2u); }
