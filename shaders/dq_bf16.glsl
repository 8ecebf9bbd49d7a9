// bf16 weights: the high half of an f32
const uint QK = 1u, QB = 2u, QQ = 2u, QS = 0u;
#define DQ_SCALAR
#include "wload.glsl"
void dq8(uint qr, uint sr, uint e, out vec4 a, out vec4 b)
{
    uvec4 u = rq128(qr + e * 2u);
    vec4 lo = uintBitsToFloat(u << 16), hi = uintBitsToFloat(u & 0xFFFF0000u);
    a = vec4(lo.x, hi.x, lo.y, hi.y);
    b = vec4(lo.z, hi.z, lo.w, hi.w);
}
float dq1(uint qr, uint e) { return uintBitsToFloat(rq16(qr + e * 2u) << 16); }
