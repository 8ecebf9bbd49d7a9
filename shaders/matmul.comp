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
#include "common.glsl"
#define WBIND 2
#define SBIND 4
#include "dq.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;  // a multiple of 8
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint VEC = 0;  // W in pieces of 8 values (k % 8 == 0, aligned)
layout(constant_id = 7) const uint XVEC = 0; // X rows at 16-byte boundaries and k % 4 == 0

layout(binding = 0) buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(push_constant) uniform PC { rt_pc_matmul p; };

const uint WG = gl_WorkGroupSize.x;
const uint TX = BN / TN; // threads along n
const uint TY = BM / TM; // threads along m
const uint SX = BM + 1u; // shared row strides, padded against bank conflicts
const uint SW = BN + 1u;
shared float xs[BK * SX]; // xs[kk * SX + r]: X[row0 + r][k0 + kk]
shared float ws[BK * SW]; // ws[kk * SW + c]: W[col0 + c][k0 + kk]

void main()
{
    uint t = gl_LocalInvocationID.x;
    uint tx = t % TX, ty = t / TX;
    uint col0 = gl_WorkGroupID.x * BN, row0 = gl_WorkGroupID.y * BM;
    float acc[TM * TN];
    for (uint q = 0; q < TM * TN; q++)
        acc[q] = 0.0;

    for (uint k0 = 0; k0 < p.k; k0 += BK) {
        if (XVEC != 0) {
            const uint KV = BK / 4u; // vec4s per tile row
            for (uint i = t; i < BM * KV; i += WG) {
                uint r = i / KV, c = (i % KV) * 4u, gr = row0 + r, gk = k0 + c;
                vec4 v = vec4(0.0);
                if (gr < p.m && gk < p.k)
                    v = x4[(p.off_x + gr * p.k + gk) / 4u];
                xs[c * SX + r] = v.x;
                xs[(c + 1u) * SX + r] = v.y;
                xs[(c + 2u) * SX + r] = v.z;
                xs[(c + 3u) * SX + r] = v.w;
            }
        } else {
            for (uint i = t; i < BM * BK; i += WG) {
                uint r = i / BK, c = i % BK, gr = row0 + r, gk = k0 + c;
                xs[c * SX + r] = gr < p.m && gk < p.k ? x[p.off_x + gr * p.k + gk] : 0.0;
            }
        }
        if (VEC != 0) {
            const uint K8 = BK / 8u; // pieces of 8 per tile row
            for (uint i = t; i < BN * K8; i += WG) {
                uint r = i / K8, c = (i % K8) * 8u, gr = col0 + r, gk = k0 + c;
                vec4 a = vec4(0.0), b = vec4(0.0);
                if (gr < p.n && gk < p.k)
                    dq8(p.off_w + gr * p.row_bytes, p.off_s + gr * p.s_row, gk, a, b);
                ws[c * SW + r] = a.x;
                ws[(c + 1u) * SW + r] = a.y;
                ws[(c + 2u) * SW + r] = a.z;
                ws[(c + 3u) * SW + r] = a.w;
                ws[(c + 4u) * SW + r] = b.x;
                ws[(c + 5u) * SW + r] = b.y;
                ws[(c + 6u) * SW + r] = b.z;
                ws[(c + 7u) * SW + r] = b.w;
            }
        }
#ifdef DQ_SCALAR
        else {
            for (uint i = t; i < BN * BK; i += WG) {
                uint r = i / BK, c = i % BK, gr = col0 + r, gk = k0 + c;
                ws[c * SW + r] = gr < p.n && gk < p.k ? dq1(p.off_w + gr * p.row_bytes, gk) : 0.0;
            }
        }
#endif
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
        for (uint j = 0; j < TN; j++) {
            uint c = col0 + tx + j * TX;
            if (c < p.n) {
                float v = acc[i * TN + j];
                if (p.has_bias != 0u)
                    v += bias[p.off_b + p.n0 + c];
                if (p.accumulate != 0u)
                    v += y[p.off_y + r * p.ldy + p.n0 + c];
                y[p.off_y + r * p.ldy + p.n0 + c] = v;
            }
        }
    }
}
