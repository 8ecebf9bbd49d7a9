#version 450
// Products with the chosen experts of a mixture-of-experts layer: Y[r][s][j] = sum_c X(r, s)[c] W_e[j][c]
// with e = ids[r][s], X(r, s) row r of X (or row r * n_used + s, x_per_slot). The experts are n_expert
// matrices [n][k] in the device layout of rt_weight_bytes, `stride` bytes apart in one binding, of this
// variant's format (dq.glsl). GATE: Y = silu(X W_e^T) * (X W_up_e^T), W_up in the second pair of
// bindings. An id outside [0, n_expert) gives a row of zeros.
//
// A workgroup serves one (row, slot) pair (group y + z * groups y) and one block of rows of its expert
// (group x), so only the chosen experts are read. Each pair reads its expert again: right for decode
// (a few rows), not optimal for prefill, where rows that chose the same expert could share its reads.
// Two ways, as the dense kernels (runtime/rt_ops_matmul.c):
//   SPLIT 0 (CPU drivers, as gemv_cpu.comp): each invocation computes NR whole rows of W, WG * JH rows per
//           workgroup; every lane reads the same X (one scalar load on a CPU driver), W is per lane.
//   SPLIT 1 (GPUs, as gemv.comp): a workgroup computes NR rows, its threads splitting k in pieces of 8,
//           the partial sums added up in shared memory.
// With GATE the NR rows are NR / 2 of W and the same rows of W_up (wload.glsl's wsel); only with VEC.
#include "common.glsl"
#define WBIND 2
#define SBIND 4
#define WBIND2 5
#define SBIND2 6
#include "dq.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 8;    // rows of W per invocation (SPLIT 0) or workgroup (SPLIT 1)
layout(constant_id = 2) const uint FLAGS = 0; // RT_MM_VEC, RT_MM_XVEC, RT_MM_GATE
layout(constant_id = 3) const uint SPLIT = 0;
const uint VEC = FLAGS & RT_MM_VEC;
const uint XVEC = FLAGS & RT_MM_XVEC;
const uint GATE = FLAGS & RT_MM_GATE;
const uint JH = NR >> ((FLAGS >> 3) & 1u);    // output rows per invocation / workgroup

layout(binding = 0) writeonly buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 3) readonly buffer Ids { int ids[]; };
layout(push_constant) uniform PC { rt_pc_moe_mm p; };

const uint WG = gl_WorkGroupSize.x; // a power of two
shared float red[SPLIT != 0u ? WG * NR : 1u];

vec4 ldx4(uint i) { return XVEC != 0 ? x4[i >> 2] : vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }
void wpick(uint jj) { wsel = GATE != 0 && jj >= JH ? 1u : 0u; }

void main()
{
    uint pair = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
    if (pair >= p.m * p.n_used)
        return; // the whole workgroup
    uint t = gl_LocalInvocationID.x;
    uint j0 = SPLIT != 0u ? gl_WorkGroupID.x * JH : (gl_WorkGroupID.x * WG + t) * JH;
    int eid = ids[p.off_ids + pair];
    bool valid = eid >= 0 && uint(eid) < p.n_expert;
    uint e = valid ? uint(eid) : 0u;
    uint xrow = p.off_x + (p.x_per_slot != 0u ? pair : pair / p.n_used) * p.k;
    uint rowb[NR], rows[NR]; // where the rows start in the two planes, clamped so that loads stay inside
    for (uint jj = 0; jj < NR; jj++) {
        uint h = jj >= JH ? 1u : 0u, j = min(j0 + jj - h * JH, p.n - 1u);
        uint base = (h != 0u ? p.off_w2 : p.off_w) + e * p.stride;
        rowb[jj] = base + j * p.row_bytes;
        rows[jj] = base + p.s_plane + j * p.s_row;
    }
    float acc[NR];
    for (uint q = 0; q < NR; q++)
        acc[q] = 0.0;

    if (SPLIT != 0u) {
        if (VEC != 0) {
            for (uint c = t; c < p.k / 8u; c += WG) {
                vec4 xa = ldx4(xrow + c * 8u), xb = ldx4(xrow + c * 8u + 4u);
                for (uint jj = 0; jj < NR; jj++) {
                    vec4 wa, wb;
                    wpick(jj);
                    dq8(rowb[jj], rows[jj], c * 8u, wa, wb);
                    acc[jj] += dot(wa, xa) + dot(wb, xb);
                }
            }
        }
#ifdef DQ_SCALAR
        else {
            for (uint c = t; c < p.k; c += WG) {
                float xv = x[xrow + c];
                for (uint jj = 0; jj < NR; jj++)
                    acc[jj] += dq1(rowb[jj], c) * xv;
            }
        }
#endif
        for (uint q = 0; q < NR; q++)
            red[q * WG + t] = acc[q];
        barrier();
        for (uint s = WG / 2u; s > 0u; s >>= 1) {
            if (t < s)
                for (uint q = 0; q < NR; q++)
                    red[q * WG + t] += red[q * WG + t + s];
            barrier();
        }
        if (t < JH) {
            uint j = j0 + t;
            if (j < p.n) {
                float v = red[t * WG];
                if (GATE != 0) {
                    float u = red[(t + JH) * WG];
                    v = v / (1.0 + exp(-v)) * u;
                }
                y[p.off_y + pair * p.n + j] = valid ? v : 0.0;
            }
        }
        return;
    }

    if (VEC != 0 && QK >= 32u) {
        // block formats: DQ_STEP values per step, the scales applied once per sum (dq_dot)
        const uint X4 = DQ_STEP / 4u, XS = DQ_STEP / 16u;
        for (uint c = 0; c < p.k; c += DQ_STEP) {
            vec4 xv[X4];
            float xs[XS];
            for (uint u = 0; u < X4; u++)
                xv[u] = ldx4(xrow + c + 4u * u);
            for (uint u = 0; u < XS; u++)
                xs[u] = dot(xv[4u * u] + xv[4u * u + 1u] + xv[4u * u + 2u] + xv[4u * u + 3u], vec4(1.0));
            for (uint jj = 0; jj < NR; jj++) {
                wpick(jj);
                acc[jj] += dq_dot(rowb[jj], rows[jj], c, xv, xs);
            }
        }
    } else if (VEC != 0) {
        for (uint c = 0; c < p.k; c += 8u) {
            vec4 xa = ldx4(xrow + c), xb = ldx4(xrow + c + 4u);
            for (uint jj = 0; jj < NR; jj++) {
                vec4 wa, wb;
                wpick(jj);
                dq8(rowb[jj], rows[jj], c, wa, wb);
                acc[jj] += dot(wa, xa) + dot(wb, xb);
            }
        }
    }
#ifdef DQ_SCALAR
    else {
        for (uint c = 0; c < p.k; c++) {
            float xv = x[xrow + c];
            for (uint jj = 0; jj < NR; jj++)
                acc[jj] += dq1(rowb[jj], c) * xv;
        }
    }
#endif
    for (uint q = 0; q < JH; q++) {
        uint j = j0 + q;
        if (j < p.n) {
            float v = acc[q];
            if (GATE != 0) {
                float u = acc[q + JH];
                v = v / (1.0 + exp(-v)) * u;
            }
            y[p.off_y + pair * p.n + j] = valid ? v : 0.0;
        }
    }
}
