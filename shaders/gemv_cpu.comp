#version 450
// Matrix product for CPU drivers (lavapipe), every m: Y[r][n0 + j] = sum_k X[r][k] W[j][k] (+ bias).
// Each invocation computes NR whole rows of W (WG * NR rows per workgroup) against MR rows of X at a
// time, with no reduction. All invocations of a workgroup then read the same X at the same time, which
// a CPU driver loads once for all its SIMD lanes (a load with one address for every lane is one scalar
// load; one whose address differs is a loop over the lanes): W is the only per-lane load. W is in the
// format of this variant (dq.glsl), decoded 8 values at a time (VEC), or value by value for float
// formats whose rows do not allow it. The GPU kernel is gemv.comp.
//
// Fused variants (FLAGS, rt_params.h):
//   NORM: X is RMS-normalised on the way in, to the bit as rt_op_rmsnorm would (shaders/norm.comp):
//         before each pass every invocation adds up the x^2 of the pass's rows in norm.comp's order (NW
//         partial sums, each over every NW-th value, then a tree: norm.comp's workgroup of NW threads),
//         and the loops use x * inv * gamma, the value norm.comp would have stored. Greedy output of
//         a model is then the same as with separate norms. (X loads are uniform: all lanes do this at
//         the cost of one.)
//   GATE: the NR rows are NR / 2 rows of the gate W and the same rows of the up W (the second pair of
//         bindings, wload.glsl's wsel), and Y[r][j] = silu(gate) * up (GELU: gelu(gate)).
//         Only with VEC.
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require
#define WBIND 2
#define SBIND 4
#define WBIND2 6
#define SBIND2 7
#include "dq.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 8;    // rows of W per invocation (both W together when GATE)
layout(constant_id = 2) const uint MR = 4;    // rows of X per pass
layout(constant_id = 3) const uint FLAGS = 0; // RT_MM_*
layout(constant_id = 4) const uint NW = 64;   // NORM: the workgroup size of norm.comp for this k (>= 4)
const uint VEC = FLAGS & RT_MM_VEC;           // pieces of 8 values: k % 8 == 0, W aligned for dq8
const uint XVEC = FLAGS & RT_MM_XVEC;         // X rows (and gamma) at 16-byte boundaries (vec4 loads)
const uint NORM = FLAGS & RT_MM_NORM;
const uint GATE = FLAGS & RT_MM_GATE;
const uint GELU = FLAGS & RT_MM_GELU;          // GATE's activation: gelu (tanh form), else silu
const uint JH = NR >> ((FLAGS >> 3) & 1u);    // output columns per invocation (NR, or NR / 2 when GATE)

layout(binding = 0) buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(binding = 5) readonly buffer G { float gam[]; };
layout(binding = 5) readonly buffer G4 { vec4 gam4[]; };
layout(push_constant) uniform PC { rt_pc_matmul p; };

// the gate's activation: silu(v) = v sigmoid(v), or gelu(v) = 0.5 v (1 + tanh(u)) = v sigmoid(2u) with
// u = sqrt(2/pi) (v + 0.044715 v^3) (no tanh: see eltwise.comp)
float gate_act(float v)
{
    return v / (1.0 + exp(GELU != 0 ? -1.5957691216057308 * (v + 0.044715 * v * v * v) : -v));
}

const uint NO = NR * MR; // sums per pass

vec4 ldx4(uint i) { return XVEC != 0 ? x4[i >> 2] : vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }
// 4 values of gamma from element e of a row (e % 4 == 0)
vec4 ldg4(uint e)
{
    uint i = p.off_g + e;
    return XVEC != 0 ? gam4[i >> 2] : vec4(gam[i], gam[i + 1u], gam[i + 2u], gam[i + 3u]);
}
// NORM: 1 / sqrt(mean(x^2) + eps) of the row of X at element xo, summed as norm.comp sums it: thread
// t of NW adds x[t], x[t + NW], ... (here 4 threads at once, a vec4 of partial sums, each in a register
// through its loop: an array indexed in the loop would be per-lane memory on a CPU driver), then
// red[t] += red[t + s] for s = NW / 2 .. 1. Adding the zeros past k changes no sum. Loops kept as loops
// (unrolled, the pipelines of MR rows took seconds to compile on lavapipe).
float rms_inv(uint xo)
{
    const uint P = NW / 4u;
    vec4 part[P];
    [[dont_unroll]] for (uint q = 0; q < P; q++) {
        vec4 a = vec4(0.0);
        [[dont_unroll]] for (uint e = 4u * q; e < p.k; e += NW) {
            vec4 v = vec4(0.0);
            if (XVEC != 0) {
                v = x4[(xo + e) >> 2];
            } else {
                v.x = x[xo + e];
                v.y = e + 1u < p.k ? x[xo + e + 1u] : 0.0;
                v.z = e + 2u < p.k ? x[xo + e + 2u] : 0.0;
                v.w = e + 3u < p.k ? x[xo + e + 3u] : 0.0;
            }
            a += v * v;
        }
        part[q] = a;
    }
    [[dont_unroll]] for (uint s = P / 2u; s > 0u; s >>= 1)
        [[dont_unroll]] for (uint q = 0; q < s; q++)
            part[q] += part[q + s];
    vec2 h = part[0].xy + part[0].zw;
    return inversesqrt((h.x + h.y) / float(p.k) + p.eps);
}

// the rows jj >= JH read the second W
void wpick(uint jj) { wsel = GATE != 0 && jj >= JH ? 1u : 0u; }

void main()
{
    uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint j0 = (wg * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * JH;
    uint rowb[NR], rows[NR]; // the rows in the two planes, clamped so that loads stay inside
    for (uint jj = 0; jj < NR; jj++) {
        uint h = jj >= JH ? 1u : 0u, j = min(j0 + jj - h * JH, p.n - 1u);
        rowb[jj] = (h != 0u ? p.off_w2 : p.off_w) + j * p.row_bytes;
        rows[jj] = (h != 0u ? p.off_s2 : p.off_s) + j * p.s_row;
    }

    for (uint m0 = 0; m0 < p.m; m0 += MR) {
        uint xrow[MR];
        for (uint r = 0; r < MR; r++)
            xrow[r] = p.off_x + min(m0 + r, p.m - 1u) * p.k;
        float acc[NO], inv[MR]; // inv: the norm's scale of each row (NORM)
        for (uint q = 0; q < NO; q++)
            acc[q] = 0.0;
        for (uint r = 0; r < MR; r++)
            inv[r] = NORM != 0 ? rms_inv(xrow[r]) : 1.0;
        if (VEC != 0 && QK >= 32u && MR == 1u) {
            // block formats, one row of X (decode): DQ_STEP values (32 to 128) per step, decoded and
            // dotted by dq_dot, the scales applied once per sum
            const uint X4 = DQ_STEP / 4u, XS = DQ_STEP / 16u;
            for (uint e = 0; e < p.k; e += DQ_STEP) {
                vec4 xv[X4];
                float xs[XS]; // sums of 16 values each, for the formats' offsets and mins
                for (uint u = 0; u < X4; u++)
                    xv[u] = ldx4(xrow[0] + e + 4u * u);
                if (NORM != 0)
                    for (uint u = 0; u < X4; u++)
                        xv[u] = xv[u] * inv[0] * ldg4(e + 4u * u);
                for (uint u = 0; u < XS; u++)
                    xs[u] = dot(xv[4u * u] + xv[4u * u + 1u] + xv[4u * u + 2u] + xv[4u * u + 3u], vec4(1.0));
                for (uint jj = 0; jj < NR; jj++) {
                    wpick(jj);
                    acc[jj] += dq_dot(rowb[jj], rows[jj], e, xv, xs);
                }
            }
        } else if (VEC != 0 && QK >= 32u) {
            // block formats, several rows of X: 32 values per step decoded once (dq32), dotted with each
            for (uint e = 0; e < p.k; e += 32u) {
                vec4 xv[MR][8];
                for (uint r = 0; r < MR; r++)
                    for (uint u = 0; u < 8u; u++)
                        xv[r][u] = ldx4(xrow[r] + e + 4u * u);
                if (NORM != 0)
                    for (uint u = 0; u < 8u; u++) {
                        vec4 g = ldg4(e + 4u * u);
                        for (uint r = 0; r < MR; r++)
                            xv[r][u] = xv[r][u] * inv[r] * g;
                    }
                for (uint jj = 0; jj < NR; jj++) {
                    vec4 wv[8];
                    wpick(jj);
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
                if (NORM != 0) {
                    vec4 ga = ldg4(e), gb = ldg4(e + 4u);
                    for (uint r = 0; r < MR; r++) {
                        xa[r] = xa[r] * inv[r] * ga;
                        xb[r] = xb[r] * inv[r] * gb;
                    }
                }
                for (uint jj = 0; jj < NR; jj++) {
                    vec4 wa, wb;
                    wpick(jj);
                    dq8(rowb[jj], rows[jj], e, wa, wb);
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += dot(wa, xa[r]) + dot(wb, xb[r]);
                }
            }
        }
#ifdef DQ_SCALAR
        else {
            // value by value (float formats, rows of any length); never with GATE (the host's choice)
            for (uint kk = 0; kk < p.k; kk++) {
                float xv[MR];
                for (uint r = 0; r < MR; r++)
                    xv[r] = x[xrow[r] + kk];
                if (NORM != 0) {
                    float g = gam[p.off_g + kk];
                    for (uint r = 0; r < MR; r++)
                        xv[r] = xv[r] * inv[r] * g;
                }
                for (uint jj = 0; jj < NR; jj++) {
                    float wv = dq1(rowb[jj], kk);
                    for (uint r = 0; r < MR; r++)
                        acc[jj * MR + r] += wv * xv[r];
                }
            }
        }
#endif
        for (uint q = 0; q < JH * MR; q++) {
            uint j = j0 + q / MR, r = m0 + q % MR;
            if (j < p.n && r < p.m) {
                float v = acc[q];
                if (GATE != 0) {
                    float u = acc[q + JH * MR];
                    v = gate_act(v) * u;
                }
                if (p.has_bias != 0u)
                    v += bias[p.off_b + p.n0 + j];
                if (p.accumulate != 0u)
                    v += y[p.off_y + r * p.ldy + p.n0 + j];
                y[p.off_y + r * p.ldy + p.n0 + j] = v;
            }
        }
    }
}
