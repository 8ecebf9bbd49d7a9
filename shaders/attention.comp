#version 450
// Causal attention of one query row and one head per workgroup against the KV cache, flash style:
// keys in tiles of WG; each thread scores one key of the tile, then the tile's softmax weights update a
// running max, sum and output (online softmax), so the score matrix is never written to memory.
// GQA: query head h reads KV head h / (n_heads / n_kv_heads). Head size up to 256.
// With SPLIT (decode: few rows, so few workgroups), the keys of a row are cut into n_split ranges of
// split_keys, one workgroup each (x = head + n_heads * range), which write their running max, sum and
// unnormalised output to the scratch buffer; attn_combine.comp then merges the ranges (flash decoding).
//
// The loops over the head dimension and over the keys of a tile are unrolled by 8 by hand: llvmpipe
// (lavapipe) ends every loop of an invocation once their iterations add up to 65535 (its loop limiter,
// LP_MAX_TGSI_LOOP_ITERATIONS), which rolled loops reached at 15K keys with head size 128 and silently
// dropped the rest of the context. Unrolled, one invocation runs about 2 D/8 + 17 iterations per tile of
// keys: the limit moves to about 85K keys at head size 128 and 52K at 256.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CTYPE = RT_DT_F32;
layout(constant_id = 2) const uint SPLIT = 0;
layout(binding = 0) writeonly buffer O { float o[]; };
layout(binding = 1) readonly buffer Q { float q[]; };
layout(binding = 2) readonly buffer K { uint kc[]; };
layout(binding = 3) readonly buffer V { uint vc[]; };
layout(binding = 4) readonly buffer P { int pos[]; };
layout(binding = 5) writeonly buffer S { float part[]; };
layout(push_constant) uniform PC { rt_pc_attn p; };

#define K(i) LOAD_T(kc, CTYPE, i)
#define V(i) LOAD_T(vc, CTYPE, i)

const uint MAXD = 256;
const uint PER = (MAXD + gl_WorkGroupSize.x - 1) / gl_WorkGroupSize.x;
shared float qs[MAXD];
shared float ps[gl_WorkGroupSize.x];
shared float red[gl_WorkGroupSize.x];

void main()
{
    uint h = gl_WorkGroupID.x % p.n_heads, split = gl_WorkGroupID.x / p.n_heads;
    uint r = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
    if (r >= p.rows)
        return;
    uint t = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x, D = p.head_dim;
    uint kvh = h / (p.n_heads / p.n_kv_heads);
    uint kv_dim = p.n_kv_heads * D;
    for (uint d = t; d < D; d += nt)
        qs[d] = q[p.off_q + (r * p.n_heads + h) * D + d] * p.scale;
    barrier();

    int last = min(pos[p.off_pos + r], int(p.cap) - 1);  // keys 0..last of the row
    int first = 0;
    if (SPLIT != 0u) {  // this workgroup's range of them
        first = int(split * p.split_keys);
        last = min(last, first + int(p.split_keys) - 1);
    }
    float m = -1.0 / 0.0, l = 0.0;
    float acc[PER];
    for (uint i = 0; i < PER; i++)
        acc[i] = 0.0;

    for (int j0 = first; j0 <= last; j0 += int(nt)) {
        int j = j0 + int(t);
        float s = -1.0 / 0.0;
        if (j <= last) {
            uint ko = p.off_k + uint(j) * kv_dim + kvh * D;
            s = 0.0;
            uint d = 0;
            for (; d + 8u <= D; d += 8u)
                s += qs[d] * K(ko + d) + qs[d + 1u] * K(ko + d + 1u) + qs[d + 2u] * K(ko + d + 2u) +
                     qs[d + 3u] * K(ko + d + 3u) + qs[d + 4u] * K(ko + d + 4u) + qs[d + 5u] * K(ko + d + 5u) +
                     qs[d + 6u] * K(ko + d + 6u) + qs[d + 7u] * K(ko + d + 7u);
            for (; d < D; d++)
                s += qs[d] * K(ko + d);
        }
        // tile max
        red[t] = s;
        barrier();
        for (uint st = nt / 2; st > 0; st >>= 1) {
            if (t < st)
                red[t] = max(red[t], red[t + st]);
            barrier();
        }
        float m_new = max(m, red[0]);
        barrier();
        float pj = j <= last ? exp(s - m_new) : 0.0;
        ps[t] = pj;
        red[t] = pj;
        barrier();
        for (uint st = nt / 2; st > 0; st >>= 1) {
            if (t < st)
                red[t] += red[t + st];
            barrier();
        }
        float corr = exp(m - m_new);
        l = l * corr + red[0];
        m = m_new;
        uint n_keys = uint(min(int(nt), last - j0 + 1));
        for (uint i = 0; i < PER; i++) {
            uint d = t + i * nt;
            if (d < D) {
                float a = acc[i] * corr;
                uint vo = p.off_v + uint(j0) * kv_dim + kvh * D + d, jj = 0;  // V[j0 + jj][kvh][d] at vo + jj kv_dim
                for (; jj + 8u <= n_keys; jj += 8u, vo += 8u * kv_dim)
                    a += ps[jj] * V(vo) + ps[jj + 1u] * V(vo + kv_dim) + ps[jj + 2u] * V(vo + 2u * kv_dim) +
                         ps[jj + 3u] * V(vo + 3u * kv_dim) + ps[jj + 4u] * V(vo + 4u * kv_dim) +
                         ps[jj + 5u] * V(vo + 5u * kv_dim) + ps[jj + 6u] * V(vo + 6u * kv_dim) +
                         ps[jj + 7u] * V(vo + 7u * kv_dim);
                for (; jj < n_keys; jj++, vo += kv_dim)
                    a += ps[jj] * V(vo);
                acc[i] = a;
            }
        }
        barrier();
    }
    if (SPLIT != 0u) {
        uint so = p.off_s + ((r * p.n_heads + h) * p.n_split + split) * (D + 2u);
        if (t == 0) {
            part[so] = m;
            part[so + 1u] = l;
        }
        for (uint i = 0; i < PER; i++) {
            uint d = t + i * nt;
            if (d < D)
                part[so + 2u + d] = acc[i];
        }
        return;
    }
    float inv = l > 0.0 ? 1.0 / l : 0.0;
    for (uint i = 0; i < PER; i++) {
        uint d = t + i * nt;
        if (d < D)
            o[p.off_o + (r * p.n_heads + h) * D + d] = acc[i] * inv;
    }
}
