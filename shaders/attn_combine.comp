#version 450
// Merges the key ranges of split attention (attention.comp with SPLIT): for each row and head, with
// partial maxima m_s, sums l_s and unnormalised outputs a_s of the ranges,
//   out = sum_s a_s e^(m_s - M) / sum_s l_s e^(m_s - M),   M = max_s m_s.
// Ranges past the row's last key have l_s = 0 and m_s = -inf and drop out. One workgroup per (row, head).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer O { float o[]; };
layout(binding = 1) readonly buffer S { float part[]; };
layout(push_constant) uniform PC { rt_pc_attn p; };

void main()
{
    uint h = gl_WorkGroupID.x, r = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
    if (r >= p.rows)
        return;
    uint D = p.head_dim, base = p.off_s + (r * p.n_heads + h) * p.n_split * (D + 2u);
    float M = -1.0 / 0.0;
    for (uint s = 0; s < p.n_split; s++)
        if (part[base + s * (D + 2u) + 1u] > 0.0)
            M = max(M, part[base + s * (D + 2u)]);
    float L = 0.0;
    for (uint s = 0; s < p.n_split; s++) {
        float l = part[base + s * (D + 2u) + 1u];
        if (l > 0.0)
            L += l * exp(part[base + s * (D + 2u)] - M);
    }
    float inv = L > 0.0 ? 1.0 / L : 0.0;
    for (uint d = gl_LocalInvocationID.x; d < D; d += gl_WorkGroupSize.x) {
        float a = 0.0;
        for (uint s = 0; s < p.n_split; s++) {
            uint so = base + s * (D + 2u);
            if (part[so + 1u] > 0.0)
                a += part[so + 2u + d] * exp(part[so] - M);
        }
        o[p.off_o + (r * p.n_heads + h) * D + d] = a * inv;
    }
}
