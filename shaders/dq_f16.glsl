// f16 weights
const uint QK = 1u, QB = 2u, QQ = 2u, QS = 0u;
#define DQ_SCALAR
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uvec4 u = rq128(qr + e * 2u);
    a = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    b = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
}
float dq1(uint qr, uint e) { return unpackHalf2x16(rq16(qr + e * 2u)).x; }
