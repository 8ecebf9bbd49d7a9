#version 450
// Index of the largest value of each row (the first on ties); one workgroup per row.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer O { int o[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform PC { rt_pc_argmax p; };
shared float sv[gl_WorkGroupSize.x];
shared uint si[gl_WorkGroupSize.x];

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= p.rows)
        return;
    uint xo = p.off_x + row * p.cols;
    uint t = gl_LocalInvocationID.x, n = gl_WorkGroupSize.x;
    float bv = -1.0 / 0.0;
    uint bi = 0xFFFFFFFFu;
    for (uint i = t; i < p.cols; i += n) {
        float v = x[xo + i];
        if (v > bv || bi == 0xFFFFFFFFu) {  // strictly greater keeps the first index within a thread
            bv = v;
            bi = i;
        }
    }
    sv[t] = bv;
    si[t] = bi;
    barrier();
    for (uint s = n / 2; s > 0; s >>= 1) {
        if (t < s) {
            float ov = sv[t + s];
            uint oi = si[t + s];
            if (oi != 0xFFFFFFFFu && (si[t] == 0xFFFFFFFFu || ov > sv[t] || (ov == sv[t] && oi < si[t]))) {
                sv[t] = ov;
                si[t] = oi;
            }
        }
        barrier();
    }
    if (t == 0)
        o[p.off_out + row] = int(si[0]);
}
