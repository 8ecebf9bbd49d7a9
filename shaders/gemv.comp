#version 450
// Matrix-vector product on GPUs, for few rows of X (decode): Y[r][n0 + j] = sum_k X[r][k] W[j][k]
// (+ bias[n0 + j]) for the rows j of W bound here, all m <= 8 rows r of X in one pass (each row of W is
// read from memory once per op). W is in the format of this variant (dq.glsl).
//
// A workgroup computes NR consecutive rows of W, its threads splitting k: thread t takes the pieces of 8
// values t, t + WG, ... of every row (VEC: dq8 decodes them, and the matching 8 values of each row of X
// are two vec4 loads when XVEC), so neighbouring threads read neighbouring bytes of W, and each X value
// loaded serves NR rows. Float formats with k % 8 != 0 (or unaligned) go value by value (dq1). Each
// thread keeps NR x MR partial sums, then the workgroup adds them:
//   USE_SUBGROUP: subgroupAdd within each subgroup, one partial per subgroup through shared memory,
//                 summed in subgroup order (gl_NumSubgroups is read at run time: on some devices the
//                 subgroup size varies from pipeline to pipeline);
//   otherwise:    a tree over shared memory.
// The kernel for CPU drivers is gemv_cpu.comp.
#include "common.glsl"
#define WBIND 2
#define SBIND 4
#include "dq.glsl"
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 4;   // rows of W per workgroup
layout(constant_id = 2) const uint MR = 1;   // rows of X (all of them, <= 8)
layout(constant_id = 3) const uint VEC = 0;  // pieces of 8 values: k % 8 == 0, W aligned for dq8
layout(constant_id = 4) const uint XVEC = 0; // X rows at 16-byte boundaries (vec4 loads)

layout(binding = 0) buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(push_constant) uniform PC { rt_pc_matmul p; };

const uint WG = gl_WorkGroupSize.x; // a power of two
const uint NO = NR * MR;            // outputs per workgroup
shared float red[WG * NO];          // enough for any subgroup size down to 1

// 4 values of X from element i (i % 4 == 0)
vec4 ldx4(uint i) { return XVEC != 0 ? x4[i >> 2] : vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }

void main()
{
    uint t = gl_LocalInvocationID.x;
    uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR;
    if (j0 >= p.n)
        return; // the whole workgroup
    uint rowb[NR], rows[NR]; // where the W rows start in the two planes, clamped so that loads stay inside
    for (uint jj = 0; jj < NR; jj++) {
        rowb[jj] = p.off_w + min(j0 + jj, p.n - 1u) * p.row_bytes;
        rows[jj] = p.off_s + min(j0 + jj, p.n - 1u) * p.s_row;
    }
    float acc[NO];
    for (uint q = 0; q < NO; q++)
        acc[q] = 0.0;

    if (VEC != 0) {
        uint k8 = p.k / 8u;
        for (uint c = t; c < k8; c += WG) {
            vec4 xa[MR], xb[MR];
            for (uint r = 0; r < MR; r++) {
                uint xi = p.off_x + min(r, p.m - 1u) * p.k + c * 8u;
                xa[r] = ldx4(xi);
                xb[r] = ldx4(xi + 4u);
            }
            for (uint jj = 0; jj < NR; jj++) {
                vec4 wa, wb;
                dq8(rowb[jj], rows[jj], c * 8u, wa, wb);
                for (uint r = 0; r < MR; r++)
                    acc[jj * MR + r] += dot(wa, xa[r]) + dot(wb, xb[r]);
            }
        }
    }
#ifdef DQ_SCALAR
    else {
        for (uint kk = t; kk < p.k; kk += WG) {
            float xv[MR];
            for (uint r = 0; r < MR; r++)
                xv[r] = x[p.off_x + min(r, p.m - 1u) * p.k + kk];
            for (uint jj = 0; jj < NR; jj++) {
                float wv = dq1(rowb[jj], kk);
                for (uint r = 0; r < MR; r++)
                    acc[jj * MR + r] += wv * xv[r];
            }
        }
    }
#endif

#ifdef USE_SUBGROUP
    for (uint q = 0; q < NO; q++)
        acc[q] = subgroupAdd(acc[q]);
    if (subgroupElect())
        for (uint q = 0; q < NO; q++)
            red[gl_SubgroupID * NO + q] = acc[q];
    barrier();
    if (t < NO) {
        float s = 0.0;
        for (uint sg = 0; sg < gl_NumSubgroups; sg++)
            s += red[sg * NO + t];
        acc[0] = s;
    }
#else
    for (uint q = 0; q < NO; q++)
        red[q * WG + t] = acc[q];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (t < s)
            for (uint q = 0; q < NO; q++)
                red[q * WG + t] += red[q * WG + t + s];
        barrier();
    }
    if (t < NO)
        acc[0] = red[t * WG];
#endif
    if (t < NO) {
        uint j = j0 + t / MR, r = t % MR;
        if (j < p.n && r < p.m) {
            float v = acc[0];
            if (p.has_bias != 0u)
                v += bias[p.off_b + p.n0 + j];
            if (p.accumulate != 0u)
                v += y[p.off_y + r * p.ldy + p.n0 + j];
            y[p.off_y + r * p.ldy + p.n0 + j] = v;
        }
    }
}
