#version 450
// Matrix product for CPU drivers (lavapipe), every m: Y[r][n0 + j] = sum_k X[r][k] W[j][k] (+ bias).
// Each invocation computes NR whole rows of W (WG * NR rows per workgroup) against MR rows of X at a
// time, with no reduction. All invocations of a workgroup then read the same X at the same time, which
// a CPU driver loads once for all its SIMD lanes (a load with one address for every lane is one scalar
// load; one whose address differs is a loop over the lanes): W is the only per-lane load. W is in the
// format of this variant (dq.glsl), decoded 8 values at a time (VEC), or value by value for float
// formats whose rows do not allow it. The GPU kernel is gemv.comp.
#include "common.glsl"
#define WBIND 2
#define SBIND 4
#include "dq.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 8;   // rows of W per invocation
layout(constant_id = 2) const uint MR = 4;   // rows of X per pass
layout(constant_id = 3) const uint VEC = 0;  // pieces of 8 values: k % 8 == 0, W aligned for dq8
layout(constant_id = 4) const uint XVEC = 0; // X rows at 16-byte boundaries (vec4 loads)

layout(binding = 0) buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(push_constant) uniform PC { rt_pc_matmul p; };

const uint NO = NR * MR; // outputs per pass

vec4 ldx4(uint i) { return XVEC != 0 ? x4[i >> 2] : vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }

void main()
{
    uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint j0 = (wg * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * NR;
    uint rowb[NR], rows[NR]; // the rows in the two planes, clamped so that loads stay inside
    for (uint jj = 0; jj < NR; jj++) {
        rowb[jj] = p.off_w + min(j0 + jj, p.n - 1u) * p.row_bytes;
        rows[jj] = p.off_s + min(j0 + jj, p.n - 1u) * p.s_row;
    }

    for (uint m0 = 0; m0 < p.m; m0 += MR) {
        uint xrow[MR];
        for (uint r = 0; r < MR; r++)
            xrow[r] = p.off_x + min(m0 + r, p.m - 1u) * p.k;
        float acc[NO];
        for (uint q = 0; q < NO; q++)
            acc[q] = 0.0;
        if (VEC != 0 && QK >= 32u && MR == 1u) {
            // block formats, one row of X (decode): DQ_STEP values (32 to 128) per step, decoded and
            // dotted by dq_dot, the scales applied once per sum
            const uint X4 = DQ_STEP / 4u, XS = DQ_STEP / 16u;
            for (uint e = 0; e < p.k; e += DQ_STEP) {
                vec4 xv[X4];
                float xs[XS]; // sums of 16 values each, for the formats' offsets and mins
                for (uint u = 0; u < X4; u++)
                    xv[u] = ldx4(xrow[0] + e + 4u * u);
                for (uint u = 0; u < XS; u++)
                    xs[u] = dot(xv[4u * u] + xv[4u * u + 1u] + xv[4u * u + 2u] + xv[4u * u + 3u], vec4(1.0));
                for (uint jj = 0; jj < NR; jj++)
                    acc[jj] += dq_dot(rowb[jj], rows[jj], e, xv, xs);
            }
        } else if (VEC != 0 && QK >= 32u) {
            // block formats, several rows of X: 32 values per step decoded once (dq32), dotted with each
            for (uint e = 0; e < p.k; e += 32u) {
                vec4 xv[MR][8];
                for (uint r = 0; r < MR; r++)
                    for (uint u = 0; u < 8u; u++)
                        xv[r][u] = ldx4(xrow[r] + e + 4u * u);
                for (uint jj = 0; jj < NR; jj++) {
                    vec4 wv[8];
                    dq32(rowb[jj], rows[jj], e, wv);
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += dot(wv[0], xv[r][0]) + dot(wv[1], xv[r][1]) + dot(wv[2], xv[r][2]) +
                                            dot(wv[3], xv[r][3]) + dot(wv[4], xv[r][4]) + dot(wv[5], xv[r][5]) +
                                            dot(wv[6], xv[r][6]) + dot(wv[7], xv[r][7]);
                }
            }
        } else if (VEC != 0) {
            for (uint e = 0; e < p.k; e += 8u) {
                vec4 xa[MR], xb[MR];
                for (uint r = 0; r < MR; r++) {
                    xa[r] = ldx4(xrow[r] + e);
                    xb[r] = ldx4(xrow[r] + e + 4u);
                }
                for (uint jj = 0; jj < NR; jj++) {
                    vec4 wa, wb;
                    dq8(rowb[jj], rows[jj], e, wa, wb);
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += dot(wa, xa[r]) + dot(wb, xb[r]);
                }
            }
        }
#ifdef DQ_SCALAR
        else {
            for (uint kk = 0; kk < p.k; kk++) {
                float xv[MR];
                for (uint r = 0; r < MR; r++)
                    xv[r] = x[xrow[r] + kk];
                for (uint jj = 0; jj < NR; jj++) {
                    float wv = dq1(rowb[jj], kk);
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += wv * xv[r];
                }
            }
        }
#endif
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
    }
}
