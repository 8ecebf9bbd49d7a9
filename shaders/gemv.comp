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
// Fused variants (FLAGS, rt_params.h):
//   NORM: X RMS-normalised on the way in: each thread also adds up x^2 of the pieces of X it reads (MR
//         more partial sums, reduced with the others), multiplies x by gamma, and the totals are scaled
//         by 1 / sqrt(mean(x^2) + eps).
//   GATE: the NR rows are NR / 2 rows of the gate W and the same rows of the up W (the second pair of
//         bindings, wload.glsl's wsel), and Y[r][j] = silu(gate) * up (GELU: gelu(gate)).
//         Only with VEC.
// The kernel for CPU drivers is gemv_cpu.comp.
#include "common.glsl"
#define WBIND 2
#define SBIND 4
#define WBIND2 6
#define SBIND2 7
#include "dq.glsl"
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 4;    // rows of W per workgroup (both W together when GATE)
layout(constant_id = 2) const uint MR = 1;    // rows of X (all of them, <= 8)
layout(constant_id = 3) const uint FLAGS = 0; // RT_MM_*
const uint VEC = FLAGS & RT_MM_VEC;           // pieces of 8 values: k % 8 == 0, W aligned for dq8
const uint XVEC = FLAGS & RT_MM_XVEC;         // X rows (and gamma) at 16-byte boundaries (vec4 loads)
const uint NORM = FLAGS & RT_MM_NORM;
const uint GATE = FLAGS & RT_MM_GATE;
const uint GELU = FLAGS & RT_MM_GELU;          // GATE's activation: gelu (tanh form), else silu
const uint JH = NR >> ((FLAGS >> 3) & 1u);    // output columns per workgroup (NR, or NR / 2 when GATE)

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

const uint WG = gl_WorkGroupSize.x;         // a power of two
const uint NO = NR * MR;                    // sums of products per workgroup
const uint NT = NO + MR * ((FLAGS >> 2) & 1u); // and the sums of x^2 (NORM)
shared float red[WG * NT];                  // enough for any subgroup size down to 1

// 4 values of X from element i (i % 4 == 0)
vec4 ldx4(uint i) { return XVEC != 0 ? x4[i >> 2] : vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }
// 4 values of gamma from element e of a row (e % 4 == 0)
vec4 ldg4(uint e)
{
    uint i = p.off_g + e;
    return XVEC != 0 ? gam4[i >> 2] : vec4(gam[i], gam[i + 1u], gam[i + 2u], gam[i + 3u]);
}
// the rows jj >= JH read the second W
void wpick(uint jj) { wsel = GATE != 0 && jj >= JH ? 1u : 0u; }

// the workgroup's total of partial sum q, after the reduction below (thread 0 .. WG - 1 may ask)
float total(uint q)
{
#ifdef USE_SUBGROUP
    float s = 0.0;
    for (uint sg = 0; sg < gl_NumSubgroups; sg++)
        s += red[sg * NT + q];
    return s;
#else
    return red[q * WG];
#endif
}

void main()
{
    uint t = gl_LocalInvocationID.x;
    uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * JH;
    if (j0 >= p.n)
        return; // the whole workgroup
    uint rowb[NR], rows[NR]; // where the W rows start in the two planes, clamped so that loads stay inside
    for (uint jj = 0; jj < NR; jj++) {
        uint h = jj >= JH ? 1u : 0u, j = min(j0 + jj - h * JH, p.n - 1u);
        rowb[jj] = (h != 0u ? p.off_w2 : p.off_w) + j * p.row_bytes;
        rows[jj] = (h != 0u ? p.off_s2 : p.off_s) + j * p.s_row;
    }
    float acc[NT]; // NO sums of products, then MR sums of x^2
    for (uint q = 0; q < NT; q++)
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
            if (NORM != 0) {
                vec4 ga = ldg4(c * 8u), gb = ldg4(c * 8u + 4u);
                for (uint r = 0; r < MR; r++) {
                    acc[NO + r] += dot(xa[r], xa[r]) + dot(xb[r], xb[r]);
                    xa[r] *= ga;
                    xb[r] *= gb;
                }
            }
            for (uint jj = 0; jj < NR; jj++) {
                vec4 wa, wb;
                wpick(jj);
                dq8(rowb[jj], rows[jj], c * 8u, wa, wb);
                for (uint r = 0; r < MR; r++)
                    acc[jj * MR + r] += dot(wa, xa[r]) + dot(wb, xb[r]);
            }
        }
    }
#ifdef DQ_SCALAR
    else {
        // value by value (float formats, rows of any length); never with GATE (the host's choice)
        for (uint kk = t; kk < p.k; kk += WG) {
            float xv[MR];
            for (uint r = 0; r < MR; r++)
                xv[r] = x[p.off_x + min(r, p.m - 1u) * p.k + kk];
            if (NORM != 0) {
                float g = gam[p.off_g + kk];
                for (uint r = 0; r < MR; r++) {
                    acc[NO + r] += xv[r] * xv[r];
                    xv[r] *= g;
                }
            }
            for (uint jj = 0; jj < NR; jj++) {
                float wv = dq1(rowb[jj], kk);
                for (uint r = 0; r < MR; r++)
                    acc[jj * MR + r] += wv * xv[r];
            }
        }
    }
#endif

#ifdef USE_SUBGROUP
    for (uint q = 0; q < NT; q++)
        acc[q] = subgroupAdd(acc[q]);
    if (subgroupElect())
        for (uint q = 0; q < NT; q++)
            red[gl_SubgroupID * NT + q] = acc[q];
    barrier();
#else
    for (uint q = 0; q < NT; q++)
        red[q * WG + t] = acc[q];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (t < s)
            for (uint q = 0; q < NT; q++)
                red[q * WG + t] += red[q * WG + t + s];
        barrier();
    }
#endif
    if (t < JH * MR) {
        uint j = j0 + t / MR, r = t % MR;
        if (j < p.n && r < p.m) {
            float v = total(t);
            float inv = NORM != 0 ? inversesqrt(total(NO + r) / float(p.k) + p.eps) : 1.0;
            if (NORM != 0)
                v *= inv;
            if (GATE != 0) {
                float u = total(t + JH * MR) * inv;
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
