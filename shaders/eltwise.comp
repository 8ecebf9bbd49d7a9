#version 450
// Elementwise ops over n elements: add / mul with b broadcast at i % nb, scale, swiglu, gelu, geglu,
// softcap.
// No NaN for finite inputs of any size: exp overflows to inf and x / inf = 0.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer Y { float y[]; };
layout(binding = 1) readonly buffer A { float a[]; };
layout(binding = 2) readonly buffer B { float b[]; };
layout(push_constant) uniform PC { rt_pc_eltwise p; };

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) {
        float x = a[p.off_a + i];
        float r;
        if (p.op == RT_ELT_ADD)
            r = x + b[p.off_b + i % p.nb];
        else if (p.op == RT_ELT_MUL)
            r = x * b[p.off_b + i % p.nb];
        else if (p.op == RT_ELT_SCALE)
            r = x * p.s;
        else if (p.op == RT_ELT_SWIGLU)
            r = x / (1.0 + exp(-x)) * b[p.off_b + i];
        else if (p.op == RT_ELT_GELU || p.op == RT_ELT_GEGLU) {
            // 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), written as x sigmoid(2u): some drivers
            // compute tanh(u) as (e^u - e^-u) / (e^u + e^-u), which is inf / inf = NaN for |u| > 88 (x < -13)
            r = x / (1.0 + exp(-1.5957691216057308 * (x + 0.044715 * x * x * x)));
            if (p.op == RT_ELT_GEGLU)
                r *= b[p.off_b + i];
        } else if (p.op == RT_ELT_SOFTCAP) {
            r = softcapped(x, p.s);
        } else
            r = x;
        y[p.off_y + i] = r;
    }
}
