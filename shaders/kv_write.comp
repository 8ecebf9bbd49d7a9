#version 450
// cache[pos[r]][:] = src[r][:] (f32 or f16 cache, written as 32-bit words); positions >= cap are skipped.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) buffer C { uint c[]; };
layout(binding = 1) readonly buffer S { float src[]; };
layout(binding = 2) readonly buffer P { int pos[]; };
layout(push_constant) uniform PC { rt_pc_kv_write p; };

void main()
{
    uint r = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
    if (r >= p.rows)
        return;
    int ps = pos[p.off_pos + r];
    if (ps < 0 || uint(ps) >= p.cap)
        return;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint s = p.off_src + r * p.dim;
    if (p.dtype == RT_DT_F32) {
        uint d = p.off_c + uint(ps) * p.dim;
        for (uint i = gl_GlobalInvocationID.x; i < p.dim; i += stride)
            c[d + i] = floatBitsToUint(src[s + i]);
    } else {  // f16: dim is even, two values per word
        uint d = (p.off_c + uint(ps) * p.dim) / 2u;
        for (uint i = gl_GlobalInvocationID.x; i < p.dim / 2u; i += stride)
            c[d + i] = packHalf2x16(vec2(src[s + 2u * i], src[s + 2u * i + 1u]));
    }
}
