#version 450
// Tiled matrix product for many rows of X (prefill): Y[r][n0 + c] = sum_k X[r][k] W[c][k] (+ bias[n0 + c]).
//
// A workgroup computes a BM x BN tile of Y (rows r of X, rows c of W bound here). It walks k in steps of
// BK: the threads copy the BM x BK piece of X and the BN x BK piece of W into shared memory (transposed,
// so that the inner loop reads along m and n; W converted to f32 on the way), then each thread multiplies
// its TM x TN register tile out of them. Thread (tx, ty) owns rows ty + i * (BM / TM) and columns
// tx + j * (BN / TN): neighbouring threads read neighbouring shared words and write neighbouring columns
// of Y. VEC: X and W are read 4 values at a time (k % 4 == 0 and aligned offsets); else one at a time.
// Edges (m, n, k not multiples of the tile) are filled with zeros and not stored.
// Tile sizes are specialization constants the host picks per device; WG = (BM / TM) * (BN / TN).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = RT_DT_F32;
layout(constant_id = 2) const uint BM = 64;
layout(constant_id = 3) const uint BN = 64;
layout(constant_id = 4) const uint BK = 16;
layout(constant_id = 5) const uint TM = 4;
layout(constant_id = 6) const uint TN = 4;
layout(constant_id = 7) const uint VEC = 0;

layout(binding = 0) buffer Y { float y[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 2) readonly buffer W { uint w[]; };
layout(binding = 2) readonly buffer W2 { uvec2 w2[]; };
layout(binding = 2) readonly buffer W4 { uvec4 w4[]; };
layout(binding = 3) readonly buffer Bb { float bias[]; };
layout(push_constant) uniform PC { rt_pc_matmul p; };

const uint WG = gl_WorkGroupSize.x;
const uint TX = BN / TN; // threads along n
const uint TY = BM / TM; // threads along m
const uint SX = BM + 1u; // shared row strides, padded against bank conflicts
const uint SW = BN + 1u;
shared float xs[BK * SX]; // xs[kk * SX + r]: X[row0 + r][k0 + kk]
shared float ws[BK * SW]; // ws[kk * SW + c]: W[col0 + c][k0 + kk]

// 4 consecutive values of W from element e (e % 4 == 0)
vec4 load_w4(uint e)
{
    if (WTYPE == RT_DT_F32)
        return uintBitsToFloat(w4[e / 4u]);
    uvec2 u = w2[e / 4u];
    if (WTYPE == RT_DT_F16)
        return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    return uintBitsToFloat(uvec4(u.x << 16, u.x & 0xFFFF0000u, u.y << 16, u.y & 0xFFFF0000u));
}

void main()
{
    uint t = gl_LocalInvocationID.x;
    uint tx = t % TX, ty = t / TX;
    uint col0 = gl_WorkGroupID.x * BN, row0 = gl_WorkGroupID.y * BM;
    float acc[TM * TN];
    for (uint q = 0; q < TM * TN; q++)
        acc[q] = 0.0;

    for (uint k0 = 0; k0 < p.k; k0 += BK) {
        if (VEC != 0) {
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
            for (uint i = t; i < BN * KV; i += WG) {
                uint r = i / KV, c = (i % KV) * 4u, gr = col0 + r, gk = k0 + c;
                vec4 v = vec4(0.0);
                if (gr < p.n && gk < p.k)
                    v = load_w4(p.off_w + gr * p.k + gk);
                ws[c * SW + r] = v.x;
                ws[(c + 1u) * SW + r] = v.y;
                ws[(c + 2u) * SW + r] = v.z;
                ws[(c + 3u) * SW + r] = v.w;
            }
        } else {
            for (uint i = t; i < BM * BK; i += WG) {
                uint r = i / BK, c = i % BK, gr = row0 + r, gk = k0 + c;
                xs[c * SX + r] = gr < p.m && gk < p.k ? x[p.off_x + gr * p.k + gk] : 0.0;
            }
            for (uint i = t; i < BN * BK; i += WG) {
                uint r = i / BK, c = i % BK, gr = col0 + r, gk = k0 + c;
                ws[c * SW + r] = gr < p.n && gk < p.k ? LOAD_T(w, WTYPE, p.off_w + gr * p.k + gk) : 0.0;
            }
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
