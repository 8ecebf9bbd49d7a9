#version 450
// Tiled matrix product for many rows of X (prefill) on GPUs: Y[r][n0 + c] = sum_k X[r][k] W[c][k]
// (+ bias[n0 + c]), W in the format of this variant (dq.glsl).
//
// A workgroup computes a BM x BN tile of Y (rows r of X, rows c of W bound here). It walks k in steps of
// BK: the threads copy the BM x BK piece of X and the BN x BK piece of W into shared memory (transposed,
// so that the inner loop reads along m and n; W decoded to f32 on the way, 8 values at a time by dq8
// when VEC, else value by value for float formats), then each thread multiplies its TM x TN register
// tile out of them. Thread (tx, ty) owns rows ty + i * (BM / TM) and columns tx + j * (BN / TN):
// neighbouring threads read neighbouring shared words and write neighbouring columns of Y. XVEC: X is
// read 4 values at a time. Edges (m, n, k not multiples of the tile) are filled with zeros and not
// stored. Tile sizes are specialization constants the host picks per device; WG = (BM / TM) * (BN / TN).
//
// Fused variants (FLAGS, rt_params.h):
//   NORM: X RMS-normalised on the way in: first the workgroup adds up x^2 of each of its BM rows (WG / BM
//         threads per row, through shared memory), then X is multiplied by gamma as it is copied, and
//         the sums are scaled by the rows' 1 / sqrt(mean(x^2) + eps) at the end.
//   GATE: the tile's BN columns are BN / 2 rows of the gate W, then the same rows of the up W (the second
//         pair of bindings, wload.glsl's wsel); a thread's columns j < TN / 2 are gate, j + TN / 2 the
//         matching up, and it stores silu(gate) * up (GELU: gelu(gate) * up) for BN / 2 columns of Y. TN
//         even; only with VEC.
#include "common.glsl"
#define WBIND 2
#define SBIND 4
#define WBIND2 6
#define SBIND2 7
#include "dq.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;   // a multiple of 8
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint FLAGS = 0; // RT_MM_*
const uint VEC = FLAGS & RT_MM_VEC;           // W in pieces of 8 values (k % 8 == 0, aligned)
const uint XVEC = FLAGS & RT_MM_XVEC;         // X rows (and gamma) at 16-byte boundaries and k % 4 == 0
const uint NORM = FLAGS & RT_MM_NORM;
const uint GATE = FLAGS & RT_MM_GATE;
const uint GELU = FLAGS & RT_MM_GELU;          // GATE's activation: gelu (tanh form), else silu
const uint BH = BN >> ((FLAGS >> 3) & 1u);    // columns of Y per tile (BN, or BN / 2 when GATE)
const uint TH = TN >> ((FLAGS >> 3) & 1u);    // of them per thread

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

const uint WG = gl_WorkGroupSize.x;
const uint TX = BN / TN; // threads along n
const uint TY = BM / TM; // threads along m
const uint SX = BM + 1u; // shared row strides, padded against bank conflicts
const uint SW = BN + 1u;
shared float xs[BK * SX]; // xs[kk * SX + r]: X[row0 + r][k0 + kk]
shared float ws[BK * SW]; // ws[kk * SW + c]: W[col0 + c][k0 + kk]
shared float nred[WG];    // NORM: partial sums of x^2
shared float rinv[BM];    // NORM: 1 / sqrt(mean(x^2) + eps) of the tile's rows

// the rows of W of the tile, from its row c0 on: c0 < BH gate (or the only W), else up
void load_w(uint c0, uint k0, uint col0)
{
    uint rows = GATE != 0 ? BH : BN;
    if (VEC != 0) {
        const uint K8 = BK / 8u; // pieces of 8 per tile row
        for (uint i = gl_LocalInvocationID.x; i < rows * K8; i += WG) {
            uint r = i / K8, c = (i % K8) * 8u, gr = col0 + r, gk = k0 + c, sc = c0 + r;
            vec4 a = vec4(0.0), b = vec4(0.0);
            if (gr < p.n && gk < p.k)
                dq8((c0 != 0u ? p.off_w2 : p.off_w) + gr * p.row_bytes, (c0 != 0u ? p.off_s2 : p.off_s) + gr * p.s_row,
                    gk, a, b);
            ws[c * SW + sc] = a.x;
            ws[(c + 1u) * SW + sc] = a.y;
            ws[(c + 2u) * SW + sc] = a.z;
            ws[(c + 3u) * SW + sc] = a.w;
            ws[(c + 4u) * SW + sc] = b.x;
            ws[(c + 5u) * SW + sc] = b.y;
            ws[(c + 6u) * SW + sc] = b.z;
            ws[(c + 7u) * SW + sc] = b.w;
        }
    }
#ifdef DQ_SCALAR
    else {
        for (uint i = gl_LocalInvocationID.x; i < rows * BK; i += WG) {
            uint r = i / BK, c = i % BK, gr = col0 + r, gk = k0 + c;
            ws[c * SW + c0 + r] = gr < p.n && gk < p.k ? dq1(p.off_w + gr * p.row_bytes, gk) : 0.0;
        }
    }
#endif
}

void main()
{
    uint t = gl_LocalInvocationID.x;
    uint tx = t % TX, ty = t / TX;
    uint col0 = gl_WorkGroupID.x * BH, row0 = gl_WorkGroupID.y * BM;
    float acc[TM * TN];
    for (uint q = 0; q < TM * TN; q++)
        acc[q] = 0.0;

    if (NORM != 0) {
        // PR threads per row (all of one row's partial sums in one pass), or one thread per row in turn
        const uint PR = WG >= BM ? WG / BM : 1u;
        if (PR > 1u) {
            float s = 0.0;
            uint r = t / PR, gr = row0 + r;
            if (r < BM && gr < p.m) {
                uint xo = p.off_x + gr * p.k;
                if (XVEC != 0)
                    for (uint c = (t % PR) * 4u; c < p.k; c += PR * 4u) {
                        vec4 v = x4[(xo + c) >> 2];
                        s += dot(v, v);
                    }
                else
                    for (uint c = t % PR; c < p.k; c += PR)
                        s += x[xo + c] * x[xo + c];
            }
            nred[t] = s;
            barrier();
            if (t < BM) {
                float a = 0.0;
                for (uint q = 0; q < PR; q++)
                    a += nred[t * PR + q];
                rinv[t] = inversesqrt(a / float(p.k) + p.eps);
            }
        } else {
            for (uint r = t; r < BM; r += WG) {
                float s = 0.0;
                uint gr = row0 + r, xo = p.off_x + gr * p.k;
                if (gr < p.m)
                    for (uint c = 0; c < p.k; c++)
                        s += x[xo + c] * x[xo + c];
                rinv[r] = inversesqrt(s / float(p.k) + p.eps);
            }
        }
        // the barrier at the end of the first step of k orders these before their use in the epilogue
    }

    for (uint k0 = 0; k0 < p.k; k0 += BK) {
        if (XVEC != 0) {
            const uint KV = BK / 4u; // vec4s per tile row
            for (uint i = t; i < BM * KV; i += WG) {
                uint r = i / KV, c = (i % KV) * 4u, gr = row0 + r, gk = k0 + c;
                vec4 v = vec4(0.0);
                if (gr < p.m && gk < p.k) {
                    v = x4[(p.off_x + gr * p.k + gk) / 4u];
                    if (NORM != 0)
                        v *= gam4[(p.off_g + gk) / 4u];
                }
                xs[c * SX + r] = v.x;
                xs[(c + 1u) * SX + r] = v.y;
                xs[(c + 2u) * SX + r] = v.z;
                xs[(c + 3u) * SX + r] = v.w;
            }
        } else {
            for (uint i = t; i < BM * BK; i += WG) {
                uint r = i / BK, c = i % BK, gr = row0 + r, gk = k0 + c;
                float v = gr < p.m && gk < p.k ? x[p.off_x + gr * p.k + gk] : 0.0;
                if (NORM != 0 && gk < p.k)
                    v *= gam[p.off_g + gk];
                xs[c * SX + r] = v;
            }
        }
        if (GATE != 0) {
            wsel = 0u;
            load_w(0u, k0, col0);
            wsel = 1u;
            load_w(BH, k0, col0);
        } else {
            load_w(0u, k0, col0);
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
            for (uint i = 0; i < TM; i++)
                a[i] = xs[kk * SX + ty + i * TY];
            for (uint j = 0; j < TN; j++)
                b[j] = ws[kk * SW + tx + j * TX];
            for (uint i = 0; i < TM; i++)
                for (uint j = 0; j < TN; j++)
                    acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
        }
        barrier();
    }

    for (uint i = 0; i < TM; i++) {
        uint r = row0 + ty + i * TY;
        if (r >= p.m)
            break;
        float inv = NORM != 0 ? rinv[ty + i * TY] : 1.0;
        for (uint j = 0; j < TH; j++) {
            uint c = col0 + tx + j * TX;
            if (c < p.n) {
                float v = acc[i * TN + j];
                if (NORM != 0)
                    v *= inv;
                if (GATE != 0) {
                    float u = acc[i * TN + j + TH] * inv;
                    v = gate_act(v) * u;
                }
                if (p.has_bias != 0u)
                    v += bias[p.off_b + p.n0 + c];
                if (p.accumulate != 0u)
                    v += y[p.off_y + r * p.ldy + p.n0 + c];
                y[p.off_y + r * p.ldy + p.n0 + c] = v;
            }
        }
    }
}
