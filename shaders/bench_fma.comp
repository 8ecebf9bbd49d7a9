#version 450
// Calibration: iters x 8 independent vec4 FMA chains per invocation (arithmetic throughput).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer D { float d[]; };
layout(push_constant) uniform PC { rt_pc_bench p; };

void main()
{
    uint g = gl_GlobalInvocationID.x;
    if (g >= p.n)
        return;
    vec4 a[8];
    for (int j = 0; j < 8; j++)
        a[j] = vec4(float(g) * 1e-9 + float(j));
    vec4 m = vec4(0.999999), c = vec4(1e-7);
    for (uint it = 0; it < p.iters; it++)
        for (int j = 0; j < 8; j++)
            a[j] = fma(a[j], m, c);
    vec4 s = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
    d[g] = s.x + s.y + s.z + s.w;
}
