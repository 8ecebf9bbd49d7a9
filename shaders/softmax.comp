#version 450
// Stable softmax of each row of x * scale; one workgroup per row, any row length.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform PC { rt_pc_softmax p; };
shared float red[gl_WorkGroupSize.x];

float workgroup_reduce(float v, bool is_max)
{
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (t < s)
            red[t] = is_max ? max(red[t], red[t + s]) : red[t] + red[t + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= p.rows)
        return;
    uint xo = p.off_x + row * p.cols, yo = p.off_y + row * p.cols;
    uint t = gl_LocalInvocationID.x, n = gl_WorkGroupSize.x;
    float m = -1.0 / 0.0;
    for (uint i = t; i < p.cols; i += n)
        m = max(m, x[xo + i] * p.scale);
    m = workgroup_reduce(m, true);
    float s = 0.0;
    for (uint i = t; i < p.cols; i += n)
        s += exp(x[xo + i] * p.scale - m);
    float inv = 1.0 / workgroup_reduce(s, false);
    for (uint i = t; i < p.cols; i += n)
        y[yo + i] = exp(x[xo + i] * p.scale - m) * inv;
}
