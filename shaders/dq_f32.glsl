// f32 weights
const uint QK = 1u, QB = 4u, QQ = 4u, QS = 0u;
#define DQ_SCALAR
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uint o = qr + e * 4u;
    a = uintBitsToFloat(rq128(o));
    b = uintBitsToFloat(rq128(o + 16u));
}
float dq1(uint qr, uint e) { return uintBitsToFloat(ww[(qr >> 2) + e]); }
