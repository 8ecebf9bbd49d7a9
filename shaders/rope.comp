#version 450
// Rotary position embedding in place: each invocation rotates pairs (one pair of one head of one row
// at a time, in a grid-stride loop).
// Row r is at position pos[r]; the angles are rope.glsl's.
// mode 0: pairs (2i, 2i+1) (llama); mode 1: pairs (i, i + n_rot/2) (neox, qwen2).
#include "common.glsl"
#include "rope.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) buffer X { float x[]; };
layout(binding = 1) readonly buffer P { int pos[]; };
layout(binding = 2) readonly buffer F { float ff[]; };
layout(push_constant) uniform PC { rt_pc_rope p; };

// Rotates pair i of head h of row r.
void rotate(uint i, uint h, uint r)
{
    uint half_rot = p.n_rot / 2u;
    float c, s;
    ROPE_COS_SIN(p, pos[p.off_pos + r], i, p.has_ff != 0u ? ff[p.off_ff + i] : 1.0, c, s)

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
