#version 450
// RMSNorm (layer = 0) and LayerNorm (layer = 1) of groups of dim values, `groups` of them per row (per-head
// norms: one group per head, in place in a wider row); one workgroup per group.
//   rms:   y = x / sqrt(mean(x^2) + eps) * w
//   layer: y = (x - mean) / sqrt(var + eps) * w + b
// accumulate: y += that (a residual stream). In place (y and x one binding range) each invocation reads
// its x values before it writes the same ones.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) readonly buffer W { float w[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(push_constant) uniform PC { rt_pc_norm p; };
shared float red[gl_WorkGroupSize.x];

float workgroup_sum(float v)
{
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (t < s)
            red[t] += red[t + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main()
{
    uint gi = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (gi >= p.rows * p.groups)
        return;
    uint row = gi / p.groups, g = gi - row * p.groups;
    uint xo = p.off_x + row * p.ldx + g * p.dim, yo = p.off_y + row * p.ldy + g * p.dim;
    uint t = gl_LocalInvocationID.x, n = gl_WorkGroupSize.x;
    float mean = 0.0;
    if (p.layer != 0u) {
        float s = 0.0;
        for (uint i = t; i < p.dim; i += n)
            s += x[xo + i];
        mean = workgroup_sum(s) / float(p.dim);
    }
    float ss = 0.0;
    for (uint i = t; i < p.dim; i += n) {
        float d = x[xo + i] - mean;
        ss += d * d;
    }
    float inv = inversesqrt(workgroup_sum(ss) / float(p.dim) + p.eps);
    for (uint i = t; i < p.dim; i += n) {
        float v = (x[xo + i] - mean) * inv * w[p.off_w + i];
        if (p.has_bias != 0u)
            v += bias[p.off_b + i];
        if (p.accumulate != 0u)
            v += y[yo + i];
        y[yo + i] = v;
    }
}
