// f32 weights
const uint QK = 1u, QB = 4u;
#define DQ_SCALAR
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint o = rb + e * 4u;
    a = uintBitsToFloat(rd128(o));
    b = uintBitsToFloat(rd128(o + 16u));
}
float dq1(uint rb, uint e) { return uintBitsToFloat(ww[(rb >> 2) + e]); }
