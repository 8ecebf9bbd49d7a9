#version 450
// Rotary position embedding in place: each invocation rotates pairs (one pair of one head of one row
// at a time, in a grid-stride loop).
// Row r is at position pos[r]. Pair i of n_rot/2 has angle pos * base^(-2i/n_rot), as llama.cpp's
// rope with YaRN (ext_factor > 0) and linear scaling (freq_scale), and optional per-frequency factors.
// mode 0: pairs (2i, 2i+1) (llama); mode 1: pairs (i, i + n_rot/2) (neox, qwen2).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) buffer X { float x[]; };
layout(binding = 1) readonly buffer P { int pos[]; };
layout(binding = 2) readonly buffer F { float ff[]; };
layout(push_constant) uniform PC { rt_pc_rope p; };

float yarn_ramp(float low, float high, uint i0)
{
    float y = (float(i0) / 2.0 - low) / max(0.001, high - low);
    return 1.0 - min(1.0, max(0.0, y));
}

// dimension at which the rotation count over n_ctx_orig equals n_rot
float corr_dim(float n_rot)
{
    return float(p.n_rot) * log(p.n_ctx_orig / (n_rot * 2.0 * 3.14159265358979)) / (2.0 * log(p.base));
}

// Rotates pair i of head h of row r.
void rotate(uint i, uint h, uint r)
{
    uint half_rot = p.n_rot / 2u;
    float theta_extrap = float(pos[p.off_pos + r]) * pow(p.base, -2.0 * float(i) / float(p.n_rot));
    if (p.has_ff != 0u)
        theta_extrap /= ff[p.off_ff + i];
    float theta_interp = p.freq_scale * theta_extrap;
    float theta = theta_interp;
    float mscale = p.attn_factor;
    if (p.ext_factor != 0.0) {
        float low = max(0.0, floor(corr_dim(p.beta_fast)));
        float high = min(float(p.n_rot) - 1.0, ceil(corr_dim(p.beta_slow)));
        float ramp_mix = yarn_ramp(low, high, 2u * i) * p.ext_factor;
        theta = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
        mscale *= 1.0 + 0.1 * log(1.0 / p.freq_scale);
    }
    float c = cos(theta) * mscale, s = sin(theta) * mscale;

    uint base = p.off_x + (r * p.n_heads + h) * p.head_dim;
    uint i0, i1;
    if (p.mode == 0u) {
        i0 = base + 2u * i;
        i1 = i0 + 1u;
    } else {
        i0 = base + i;
        i1 = i0 + half_rot;
    }
    float a = x[i0], b = x[i1];
    x[i0] = a * c - b * s;
    x[i1] = a * s + b * c;
}

void main()
{
    uint half_rot = p.n_rot / 2u;
    uint total = p.rows * p.n_heads * half_rot;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint gid = gl_GlobalInvocationID.x; gid < total; gid += stride)
        rotate(gid % half_rot, (gid / half_rot) % p.n_heads, gid / (half_rot * p.n_heads));
}
