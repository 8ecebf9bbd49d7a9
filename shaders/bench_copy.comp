#version 450
// Calibration: copy n vec4 (bandwidth).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer D { vec4 d[]; };
layout(binding = 1) readonly buffer S { vec4 s[]; };
layout(push_constant) uniform PC { rt_pc_bench p; };

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride)
        d[i] = s[i];
}
