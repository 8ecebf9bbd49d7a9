#version 450
// Causal attention of many query rows (prefill) for CPU drivers (lavapipe): a workgroup takes a tile of
// consecutive query rows, one per invocation, for the G query heads of one KV head (GQA). All
// invocations walk the same keys in the same order, so every K and V load has one address for the
// whole workgroup (on a CPU driver one scalar load, where per-lane addresses are a loop over the lanes),
// each key serves every row of the tile and all G heads, and each invocation keeps its own online
// softmax (running max, sum and output): no barrier in the key loop and no merge at the end. A row
// stops taking keys past its own position (the causal mask); the tile's loop runs to its last row's.
// SPLIT: the keys in ranges of split_keys (range = x / (n_heads / G)), partials (max, sum,
// unnormalised output) to scratch, merged by attn_combine.comp; ranges past a row's last key write
// l = 0 and drop out. The dispatcher sizes ranges so that one invocation's loops stay below llvmpipe's
// limit of 65535 iterations in all (about keys * (G + 1) D / 4 of them).
// window, softcap (rt_pc_attn): a row takes keys pos - window < j only, the tile's loop starting at the
// least first key of its rows; scores are capped before the mask.
// PAIRS: f16 caches at even offsets are read two values per 32-bit word.
// PAGED: key j of row r is in cache row table[j / block] * block + j % block, the row's block table in
// pg (rt_attn_desc.pages). When all rows of the tile read one table (one sequence's prefill), the table
// comes from shared memory at one address, so the loads stay shared; rows of several sequences (a batch
// of decodes) each follow their own.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CTYPE = RT_DT_F32;
layout(constant_id = 2) const uint SPLIT = 0;
layout(constant_id = 3) const uint PAIRS = 0;
layout(constant_id = 4) const uint G = 1;  // query heads per workgroup: all those of one KV head, or 1
layout(constant_id = 5) const uint PAGED = 0;  // keys through the rows' block tables (rt_attn_desc.pages)
layout(binding = 0) writeonly buffer O { float o[]; };
layout(binding = 1) readonly buffer Q { float q[]; };
layout(binding = 2) readonly buffer K { uint kc[]; };
layout(binding = 3) readonly buffer V { uint vc[]; };
layout(binding = 4) readonly buffer P { int pos[]; };
layout(binding = 5) writeonly buffer S { float part[]; };
layout(binding = 6) readonly buffer PG { int pg[]; };
layout(push_constant) uniform PC { rt_pc_attn p; };

const uint MAXD = 256;  // G * head_dim at most
shared int tile_last[gl_WorkGroupSize.x];
shared int tile_first[gl_WorkGroupSize.x];
shared uint tile_tab[gl_WorkGroupSize.x];

// elements i and i + 1 of a cache (i even when PAIRS)
vec2 load2(uint which, uint i)
{
    if (CTYPE == RT_DT_F16 && PAIRS != 0u)
        return unpackHalf2x16(which == 0u ? kc[i >> 1] : vc[i >> 1]);
    if (which == 0u)
        return vec2(LOAD_T(kc, CTYPE, i), LOAD_T(kc, CTYPE, i + 1u));
    return vec2(LOAD_T(vc, CTYPE, i), LOAD_T(vc, CTYPE, i + 1u));
}

float qv[MAXD], acc[MAXD], m[G], l[G];

// Keys first .. jmax of the tile (the row's own ones from `own` up to `last`) into the running state; tab:
// the block table the keys are read through (PAGED), the same for the whole tile when `shared_tab`.
void walk(int first, int jmax, int own, int last, uint kvh, uint kv_dim, uint D, uint tab)
{
    uint bmask = (1u << p.block_shift) - 1u;
    for (int j = first; j <= jmax; j++) {
        uint kr = PAGED != 0u ? (uint(pg[p.off_pg + tab + (uint(j) >> p.block_shift)]) << p.block_shift) | (uint(j) & bmask)
                              : uint(j);  // the key's cache row
        uint ko = p.off_k + kr * kv_dim + kvh * D, vo = p.off_v + kr * kv_dim + kvh * D;
        float s[G], corr[G], pj[G];
        for (uint g = 0; g < G; g++)
            s[g] = 0.0;
        for (uint d = 0; d < D; d += 8u) {  // the key row is read once for the tile and the G heads
            vec2 a = load2(0u, ko + d), b = load2(0u, ko + d + 2u), c = load2(0u, ko + d + 4u), e = load2(0u, ko + d + 6u);
            for (uint g = 0; g < G; g++) {
                uint qd = g * D + d;
                s[g] += qv[qd] * a.x + qv[qd + 1u] * a.y + qv[qd + 2u] * b.x + qv[qd + 3u] * b.y +
                        qv[qd + 4u] * c.x + qv[qd + 5u] * c.y + qv[qd + 6u] * e.x + qv[qd + 7u] * e.y;
            }
        }
        if (p.softcap > 0.0)
            for (uint g = 0; g < G; g++)
                s[g] = softcapped(s[g], p.softcap);
        bool take = j <= last && j >= own;  // the causal mask of this row, its window
        for (uint g = 0; g < G; g++) {
            float m_new = take ? max(m[g], s[g]) : m[g];
            corr[g] = take ? exp(m[g] - m_new) : 1.0;
            pj[g] = take ? exp(s[g] - m_new) : 0.0;
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
}

void main()
{
    uint n_groups = p.n_heads / G;
    uint hg = gl_WorkGroupID.x % n_groups, split = gl_WorkGroupID.x / n_groups, h0 = hg * G;
    uint t = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    uint r = (gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y) * nt + t;
    bool live = r < p.rows;
    uint D = p.head_dim, kvh = h0 / (p.n_heads / p.n_kv_heads), kv_dim = p.n_kv_heads * D;
    int first = SPLIT != 0u ? int(split * p.split_keys) : 0;
    int pr = live ? pos[p.off_pos + r] : -1, last = live ? min(pr, int(p.cap) - 1) : -1;
    if (SPLIT != 0u)
        last = min(last, first + int(p.split_keys) - 1);
    // the row's first key (sliding window); the tile's loop starts at the least of them
    int own = !live ? 0x7fffffff : p.window > 0u ? max(pr - int(p.window) + 1, 0) : 0;
    uint tab = PAGED != 0u ? uint(pg[p.off_pg + (live ? r : 0u)]) : 0u;
    tile_last[t] = last;
    tile_first[t] = own;
    tile_tab[t] = live ? tab : ~0u;
    barrier();
    int jmax = -1, jmin = 0x7fffffff;
    uint tab0 = tile_tab[0];
    bool one_tab = true;
    for (uint i = 0; i < nt; i++) {
        jmax = max(jmax, tile_last[i]);
        jmin = min(jmin, tile_first[i]);
        one_tab = one_tab && (tile_tab[i] == tab0 || tile_tab[i] == ~0u);
    }

    uint qo = p.off_q + ((live ? r : 0u) * p.n_heads + h0) * D;
    for (uint d = 0; d < G * D; d += 2u) {
        qv[d] = q[qo + d] * p.scale;
        qv[d + 1u] = q[qo + d + 1u] * p.scale;
        acc[d] = 0.0;
        acc[d + 1u] = 0.0;
    }
    for (uint g = 0; g < G; g++) {
        m[g] = -1.0 / 0.0;
        l[g] = 0.0;
    }
    first = max(first, jmin);
    if (PAGED == 0u || one_tab)
        walk(first, jmax, own, last, kvh, kv_dim, D, tab0);  // one table for all: loads at one address
    else
        walk(first, jmax, own, last, kvh, kv_dim, D, tab);
    if (!live)
        return;
    for (uint g = 0; g < G; g++) {
        uint h = h0 + g;
        if (SPLIT != 0u) {
            uint so = p.off_s + ((r * p.n_heads + h) * p.n_split + split) * (D + 2u);
            part[so] = l[g] > 0.0 ? m[g] : -1.0 / 0.0;
            part[so + 1u] = l[g];
            for (uint d = 0; d < D; d++)
                part[so + 2u + d] = acc[g * D + d];
        } else {
            float inv = l[g] > 0.0 ? 1.0 / l[g] : 0.0;
            uint oo = p.off_o + (r * p.n_heads + h) * D;
            for (uint d = 0; d < D; d++)
                o[oo + d] = acc[g * D + d] * inv;
        }
    }
}
