#version 450
// Causal attention for CPU drivers (lavapipe): one query row per workgroup and the G query heads that
// share one KV head (GQA: each key and value row is read once for all of them), but each invocation walks its own keys (t, t + nt, ...) with a private online softmax
// (running max, sum and output over the head dimension), so the key loop has no barriers at all; the
// invocations' partial states are merged once at the end through shared memory. On a CPU driver a
// barrier switches every invocation of the workgroup, and attention.comp's two reductions per tile of
// keys cost more than the arithmetic: this kernel is several times faster there. GPUs keep
// attention.comp (a private output of head_dim floats per invocation does not fit their registers).
// SPLIT: as attention.comp (the keys of a row in ranges, partials to scratch, attn_combine.comp merges).
// window, softcap (rt_pc_attn): a row's loop starts at its window's first key; scores capped first.
// PAIRS: f16 caches at even offsets are read two values per 32-bit word.
// PAGED: key j of row r is in cache row table[j / block] * block + j % block, the row's block table in
// pg (rt_attn_desc.pages): a paged cache of many sequences.
// Loops are unrolled by hand (llvmpipe stops an invocation's loops after 65535 iterations in all): one
// invocation runs about keys / nt * (2 D / 8) iterations, so 16K keys of head size 256 stay far below.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CTYPE = RT_DT_F32;
layout(constant_id = 2) const uint SPLIT = 0;
layout(constant_id = 3) const uint PAIRS = 0;
layout(constant_id = 4) const uint G = 1;   // query heads per workgroup: all those of one KV head (GQA), or 1
layout(constant_id = 5) const uint PAGED = 0;  // keys through the row's block table (rt_attn_desc.pages)
layout(binding = 0) writeonly buffer O { float o[]; };
layout(binding = 1) readonly buffer Q { float q[]; };
layout(binding = 2) readonly buffer K { uint kc[]; };
layout(binding = 3) readonly buffer V { uint vc[]; };
layout(binding = 4) readonly buffer P { int pos[]; };
layout(binding = 5) writeonly buffer S { float part[]; };
layout(binding = 6) readonly buffer PG { int pg[]; };
layout(push_constant) uniform PC { rt_pc_attn p; };

const uint MAXD = 256;    // G * head_dim at most
const uint CHUNK = 16;   // output dimensions merged per round at the end
shared float qs[MAXD];
shared float sm[gl_WorkGroupSize.x];
shared float sacc[gl_WorkGroupSize.x * CHUNK];

// elements i and i + 1 of a cache (i even when PAIRS)
vec2 load2(uint which, uint i)
{
    if (CTYPE == RT_DT_F16 && PAIRS != 0u)
        return unpackHalf2x16(which == 0u ? kc[i >> 1] : vc[i >> 1]);
    if (which == 0u)
        return vec2(LOAD_T(kc, CTYPE, i), LOAD_T(kc, CTYPE, i + 1u));
    return vec2(LOAD_T(vc, CTYPE, i), LOAD_T(vc, CTYPE, i + 1u));
}

void main()
{
    uint n_groups = p.n_heads / G;
    uint hg = gl_WorkGroupID.x % n_groups, split = gl_WorkGroupID.x / n_groups, h0 = hg * G;
    uint r = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
    if (r >= p.rows)
        return;
    uint t = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x, D = p.head_dim;
    uint kvh = h0 / (p.n_heads / p.n_kv_heads), kv_dim = p.n_kv_heads * D;
    for (uint d = t; d < G * D; d += nt)  // the G heads' queries, one after another
        qs[d] = q[p.off_q + (r * p.n_heads + h0) * D + d] * p.scale;
    barrier();

    int pr = pos[p.off_pos + r], last = min(pr, int(p.cap) - 1);
    int first = 0;
    if (SPLIT != 0u) {
        first = int(split * p.split_keys);
        last = min(last, first + int(p.split_keys) - 1);
    }
    if (p.window > 0u)  // sliding window: keys pr - window < j only, the others never read
        first = max(first, pr - int(p.window) + 1);
    float m[G], l[G], acc[MAXD];
    for (uint g = 0; g < G; g++) {
        m[g] = -1.0 / 0.0;
        l[g] = 0.0;
    }
    for (uint d = 0; d < G * D; d += 2u) {
        acc[d] = 0.0;
        acc[d + 1u] = 0.0;
    }
    uint tab = PAGED != 0u ? uint(pg[p.off_pg + r]) : 0u;  // the row's block table in pg
    uint bmask = (1u << p.block_shift) - 1u;
    for (int j = first + int(t); j <= last; j += int(nt)) {
        uint kr = PAGED != 0u ? (uint(pg[p.off_pg + tab + (uint(j) >> p.block_shift)]) << p.block_shift) | (uint(j) & bmask)
                              : uint(j);  // the key's cache row
        uint ko = p.off_k + kr * kv_dim + kvh * D, vo = p.off_v + kr * kv_dim + kvh * D;
        float s[G], corr[G], pj[G];
        for (uint g = 0; g < G; g++)
            s[g] = 0.0;
        for (uint d = 0; d < D; d += 8u) {  // the key row is read once for the G heads
            vec2 a = load2(0u, ko + d), b = load2(0u, ko + d + 2u), c = load2(0u, ko + d + 4u), e = load2(0u, ko + d + 6u);
            for (uint g = 0; g < G; g++) {
                uint qd = g * D + d;
                s[g] += qs[qd] * a.x + qs[qd + 1u] * a.y + qs[qd + 2u] * b.x + qs[qd + 3u] * b.y +
                        qs[qd + 4u] * c.x + qs[qd + 5u] * c.y + qs[qd + 6u] * e.x + qs[qd + 7u] * e.y;
            }
        }
        if (p.softcap > 0.0)
            for (uint g = 0; g < G; g++)
                s[g] = softcapped(s[g], p.softcap);
        for (uint g = 0; g < G; g++) {
            float m_new = max(m[g], s[g]);
            corr[g] = exp(m[g] - m_new);
            pj[g] = exp(s[g] - m_new);
            l[g] = l[g] * corr[g] + pj[g];
            m[g] = m_new;
        }
        for (uint d = 0; d < D; d += 8u) {
            vec2 a = load2(1u, vo + d), b = load2(1u, vo + d + 2u), c = load2(1u, vo + d + 4u), e = load2(1u, vo + d + 6u);
            for (uint g = 0; g < G; g++) {
                uint ad = g * D + d;
                float cg = corr[g], pw = pj[g];
                acc[ad] = acc[ad] * cg + pw * a.x;
                acc[ad + 1u] = acc[ad + 1u] * cg + pw * a.y;
                acc[ad + 2u] = acc[ad + 2u] * cg + pw * b.x;
                acc[ad + 3u] = acc[ad + 3u] * cg + pw * b.y;
                acc[ad + 4u] = acc[ad + 4u] * cg + pw * c.x;
                acc[ad + 5u] = acc[ad + 5u] * cg + pw * c.y;
                acc[ad + 6u] = acc[ad + 6u] * cg + pw * e.x;
                acc[ad + 7u] = acc[ad + 7u] * cg + pw * e.y;
            }
        }
    }
    // merge, head by head: M = max of the maxima, each invocation's state scaled by e^(m - M)
    for (uint g = 0; g < G; g++) {
        uint h = h0 + g;
        sm[t] = l[g] > 0.0 ? m[g] : -1.0 / 0.0;
        barrier();
        float M = -1.0 / 0.0;
        for (uint i = 0; i < nt; i++)
            M = max(M, sm[i]);
        float w = l[g] > 0.0 ? exp(m[g] - M) : 0.0;
        barrier();
        sm[t] = l[g] * w;
        barrier();
        float L = 0.0;
        for (uint i = 0; i < nt; i++)
            L += sm[i];
        uint out_base = SPLIT != 0u ? p.off_s + ((r * p.n_heads + h) * p.n_split + split) * (D + 2u) + 2u
                                    : p.off_o + (r * p.n_heads + h) * D;
        float inv = SPLIT != 0u ? 1.0 : (L > 0.0 ? 1.0 / L : 0.0);
        for (uint c0 = 0; c0 < D; c0 += CHUNK) {
            for (uint i = 0; i < CHUNK; i++)
                sacc[t * CHUNK + i] = c0 + i < D ? acc[g * D + c0 + i] * w : 0.0;
            barrier();
            if (t < CHUNK && c0 + t < D) {
                float a = 0.0;
                for (uint i = 0; i < nt; i++)
                    a += sacc[i * CHUNK + t];
                if (SPLIT != 0u)
                    part[out_base + c0 + t] = a;
                else
                    o[out_base + c0 + t] = a * inv;
            }
            barrier();
        }
        if (SPLIT != 0u && t == 0u) {  // the range's (max, sum): its output is already relative to M
            part[out_base - 2u] = L > 0.0 ? M : -1.0 / 0.0;
            part[out_base - 1u] = L;
        }
    }
}
