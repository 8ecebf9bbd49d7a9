#version 450
// The weighted sum of a mixture-of-experts layer into the residual stream: X[r][c] += sum_s w[r][s]
// Y[r][s][c], Y [rows][n_used][dim]. One invocation per element of X (a grid-stride loop).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) buffer X { float x[]; };
layout(binding = 1) readonly buffer Y { float y[]; };
layout(binding = 2) readonly buffer Wt { float w[]; };
layout(push_constant) uniform PC { rt_pc_moe_combine p; };

void main()
{
    uint total = p.rows * p.dim, step = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += step) {
        uint r = i / p.dim, c = i - r * p.dim;
        float acc = 0.0;
        for (uint s = 0; s < p.n_used; s++)
            acc += w[p.off_w + r * p.n_used + s] * y[p.off_y + (r * p.n_used + s) * p.dim + c];
        x[p.off_x + i] += acc;
    }
}
