#version 450
// Y[m][n0 + j] = sum_k X[m][k] * W[j][k] (+ bias): one workgroup per output column j of W (the rows of W
// bound here), all m rows of X; the workgroup splits k and reduces. Made for few rows of X (decode).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = RT_DT_F32;
layout(binding = 0) writeonly buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) readonly buffer W { uint w[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(push_constant) uniform PC { rt_pc_matmul p; };
shared float red[gl_WorkGroupSize.x * 4];

void main()
{
    uint j = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (j >= p.n)
        return;
    uint t = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    uint wo = p.off_w + j * p.k;
    for (uint m0 = 0; m0 < p.m; m0 += 4) {
        vec4 acc = vec4(0.0);
        for (uint k = t; k < p.k; k += nt) {
            float wv = LOAD_T(w, WTYPE, wo + k);
            for (uint r = 0; r < 4; r++)
                if (m0 + r < p.m)
                    acc[r] += wv * x[p.off_x + (m0 + r) * p.k + k];
        }
        for (uint r = 0; r < 4; r++)
            red[r * nt + t] = acc[r];
        barrier();
        for (uint s = nt / 2; s > 0; s >>= 1) {
            if (t < s)
                for (uint r = 0; r < 4; r++)
                    red[r * nt + t] += red[r * nt + t + s];
            barrier();
        }
        if (t < 4 && m0 + t < p.m) {
            float v = red[t * nt];
            if (p.has_bias != 0u)
                v += bias[p.off_b + p.n0 + j];
            y[p.off_y + (m0 + t) * p.ldy + p.n0 + j] = v;
        }
        barrier();
    }
}
