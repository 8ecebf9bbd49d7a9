#version 450
// Matrix-vector product for few rows of X: Y[r][n0 + j] = sum_k X[r][k] W[j][k] (+ bias[n0 + j]), the rows j
// of W bound here, the rows r of X taken MR at a time (the host sets MR = m for m <= 8 on GPUs: each row of
// W is then read from memory once per op). Two ways to share the work, by KSPLIT:
//
// KSPLIT = 0 (GPUs, decode): one workgroup computes NR consecutive rows of W, its threads splitting k:
//   thread t takes 16-byte pieces t, t + WG, ... of each row (4 f32 or 8 f16/bf16 values in a uvec4, with
//   the matching vec4s of X) when k and the offsets allow (VEC), single elements otherwise; neighbouring
//   threads read neighbouring words. Each thread keeps NR x MR partial sums, then the workgroup adds them:
//     USE_SUBGROUP: subgroupAdd within each subgroup, one partial per subgroup through shared memory,
//                   summed in subgroup order (gl_NumSubgroups is read at run time: on some devices the
//                   subgroup size varies from pipeline to pipeline);
//     otherwise:    a tree over shared memory.
// KSPLIT = 1 (CPU drivers, every m): each thread computes NR whole rows of W, WG * NR rows per workgroup,
//   no reduction. All threads then read the same X at the same time, which a CPU driver loads once for all
//   its SIMD lanes, and W in the row each one owns.
//
// W of f16/bf16 is read as 32-bit words and unpacked here: no 16-bit storage feature is needed.
#include "common.glsl"
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = RT_DT_F32;
layout(constant_id = 2) const uint NR = 2;  // rows of W per workgroup (KSPLIT = 0) or per thread (1)
layout(constant_id = 3) const uint MR = 1;  // rows of X per pass
layout(constant_id = 4) const uint VEC = 0; // 16-byte loads: k % (4 or 8) == 0 and aligned offsets
layout(constant_id = 5) const uint KSPLIT = 0; // threads sharing a row: 0 = the whole workgroup, or 1

layout(binding = 0) buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 2) readonly buffer W { uint w[]; };
layout(binding = 2) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(push_constant) uniform PC { rt_pc_matmul p; };

const uint WG = gl_WorkGroupSize.x; // a power of two
const uint NO = NR * MR;            // outputs per pass
shared float red[KSPLIT == 0 ? WG * NO : 1]; // enough for any subgroup size down to 1

vec4 bf16lo(uvec4 u) { return uintBitsToFloat(u << 16); }
vec4 bf16hi(uvec4 u) { return uintBitsToFloat(u & 0xFFFF0000u); }

const uint KS = KSPLIT == 0 ? WG : 1u;

void main()
{
    uint t = gl_LocalInvocationID.x;
    uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR * (WG / KS) + (t / KS) * NR;
    uint t0 = t % KS;
    if (KS == WG && j0 >= p.n)
        return; // the whole workgroup
    uint wrow[NR]; // W rows, clamped so that loads stay inside (results past n are not stored)
    for (uint jj = 0; jj < NR; jj++)
        wrow[jj] = min(j0 + jj, p.n - 1u);

    for (uint m0 = 0; m0 < p.m; m0 += MR) {
        uint xrow[MR];
        for (uint r = 0; r < MR; r++)
            xrow[r] = min(m0 + r, p.m - 1u);
        float acc[NO];
        for (uint q = 0; q < NO; q++)
            acc[q] = 0.0;

        if (VEC != 0 && WTYPE == RT_DT_F32) {
            uint k4 = p.k / 4u, xo = p.off_x / 4u, wo = p.off_w / 4u;
            for (uint i = t0; i < k4; i += KS) {
                vec4 xv[MR];
                for (uint r = 0; r < MR; r++)
                    xv[r] = x4[xo + xrow[r] * k4 + i];
                for (uint jj = 0; jj < NR; jj++) {
                    vec4 wv = uintBitsToFloat(w4[wo + wrow[jj] * k4 + i]);
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += dot(wv, xv[r]);
                }
            }
        } else if (VEC != 0) { // f16 / bf16: 8 values per uvec4
            uint k4 = p.k / 4u, k8 = p.k / 8u, xo = p.off_x / 4u, wo = p.off_w / 8u;
            for (uint i = t0; i < k8; i += KS) {
                vec4 xa[MR], xb[MR];
                for (uint r = 0; r < MR; r++) {
                    xa[r] = x4[xo + xrow[r] * k4 + 2u * i];
                    xb[r] = x4[xo + xrow[r] * k4 + 2u * i + 1u];
                }
                for (uint jj = 0; jj < NR; jj++) {
                    uvec4 u = w4[wo + wrow[jj] * k8 + i];
                    vec4 wa, wb;
                    if (WTYPE == RT_DT_F16) {
                        wa = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
                        wb = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
                    } else {
                        vec4 lo = bf16lo(u), hi = bf16hi(u);
                        wa = vec4(lo.x, hi.x, lo.y, hi.y);
                        wb = vec4(lo.z, hi.z, lo.w, hi.w);
                    }
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += dot(wa, xa[r]) + dot(wb, xb[r]);
                }
            }
        } else {
            for (uint kk = t0; kk < p.k; kk += KS) {
                float xv[MR];
                for (uint r = 0; r < MR; r++)
                    xv[r] = x[p.off_x + xrow[r] * p.k + kk];
                for (uint jj = 0; jj < NR; jj++) {
                    float wv = LOAD_T(w, WTYPE, p.off_w + wrow[jj] * p.k + kk);
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += wv * xv[r];
                }
            }
        }

        if (KS == 1) { // every thread has whole rows: no reduction
            for (uint q = 0; q < NO; q++) {
                uint j = j0 + q / MR, r = m0 + q % MR;
                if (j < p.n && r < p.m) {
                    float v = acc[q];
                    if (p.has_bias != 0u)
                        v += bias[p.off_b + p.n0 + j];
                    if (p.accumulate != 0u)
                        v += y[p.off_y + r * p.ldy + p.n0 + j];
                    y[p.off_y + r * p.ldy + p.n0 + j] = v;
                }
            }
            continue;
        }
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
            uint j = j0 + t / MR, r = m0 + t % MR;
            if (j < p.n && r < p.m) {
                float v = acc[0];
                if (p.has_bias != 0u)
                    v += bias[p.off_b + p.n0 + j];
                if (p.accumulate != 0u)
                    v += y[p.off_y + r * p.ldy + p.n0 + j];
                y[p.off_y + r * p.ldy + p.n0 + j] = v;
            }
        }
        barrier(); // red is reused by the next pass
    }
}
