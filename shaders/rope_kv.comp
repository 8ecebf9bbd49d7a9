#version 450
// A layer's Q, K and V into place in one dispatch (rt_pc_rope_kv): from the product QKV [rows][ld] (Q,
// then K, then V in each row), Q rotated into Q [rows][q_dim]; K rotated and V as it is into the caches
// [cap][kv_dim] at row slots[r] (a cache of many sequences' blocks) or pos[r] (one sequence's); rows
// outside the cache are skipped. Adjacent pairs (2i, 2i+1) in mode 0 (llama),
// halves (i, i + n_rot/2) in mode 1 (neox, qwen2); dimensions past n_rot are copied; angles: rope.glsl.
// No invocation depends on another. When n_rot is a multiple of 4, an invocation rotates two pairs at a
// time, whose four values fall into two f16 words of the cache in either mode (one angle per pair, as
// rope.comp); otherwise each invocation writes one 32-bit word (one f32 value or two f16 ones), each
// value's rotation computed for itself.
#include "common.glsl"
#include "rope.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) readonly buffer S { float qkv[]; };
layout(binding = 1) writeonly buffer Q { float q[]; };
layout(binding = 2) writeonly buffer K { uint kc[]; };
layout(binding = 3) writeonly buffer V { uint vc[]; };
layout(binding = 4) readonly buffer P { int pos[]; };
layout(binding = 5) readonly buffer F { float ff[]; };
layout(binding = 6) readonly buffer C { int slots[]; };
layout(push_constant) uniform PC { rt_pc_rope_kv p; };

// Value d of the head starting at `head` (an index into qkv) at position ps, rotated.
float rotated(uint head, uint d, int ps)
{
    if (d >= p.n_rot)
        return qkv[head + d];
    uint half_rot = p.n_rot / 2u;
    uint i, d0, d1;
    if (p.mode == 0u) {
        i = d / 2u;
        d0 = d & ~1u;
        d1 = d0 + 1u;
    } else {
        i = d < half_rot ? d : d - half_rot;
        d0 = i;
        d1 = i + half_rot;
    }
    float c, s;
    ROPE_COS_SIN(p, ps, i, p.has_ff != 0u ? ff[p.off_ff + i] : 1.0, c, s)
    float a = qkv[head + d0], b = qkv[head + d1];
    return d == d0 ? a * c - b * s : a * s + b * c;
}

// Pairs 2u and 2u + 1 of the head at `head`, rotated: the four values land in two runs of two
// consecutive dimensions, (a0, a0 + 1) and (b0, b0 + 1) (both even), so that each run is one f16 word.
// Adjacent pairs: dimensions 4u .. 4u + 3; halves: 2u, 2u + 1 and the same + n_rot / 2.
void rotated4(uint head, uint u, int ps, out uint a0, out vec2 a, out uint b0, out vec2 b)
{
    uint half_rot = p.n_rot / 2u, i0 = 2u * u, i1 = i0 + 1u;
    float c0, s0, c1, s1;
    ROPE_COS_SIN(p, ps, i0, p.has_ff != 0u ? ff[p.off_ff + i0] : 1.0, c0, s0)
    ROPE_COS_SIN(p, ps, i1, p.has_ff != 0u ? ff[p.off_ff + i1] : 1.0, c1, s1)
    if (p.mode == 0u) {
        vec4 x = vec4(qkv[head + 4u * u], qkv[head + 4u * u + 1u], qkv[head + 4u * u + 2u], qkv[head + 4u * u + 3u]);
        a0 = 4u * u;
        b0 = a0 + 2u;
        a = vec2(x.x * c0 - x.y * s0, x.x * s0 + x.y * c0);
        b = vec2(x.z * c1 - x.w * s1, x.z * s1 + x.w * c1);
    } else {
        float x0 = qkv[head + i0], x1 = qkv[head + i1], y0 = qkv[head + i0 + half_rot], y1 = qkv[head + i1 + half_rot];
        a0 = i0;
        b0 = i0 + half_rot;
        a = vec2(x0 * c0 - y0 * s0, x1 * c1 - y1 * s1);
        b = vec2(x0 * s0 + y0 * c0, x1 * s1 + y1 * c1);
    }
}

void store_cache(bool is_k, uint word, uint value)
{
    if (is_k)
        kc[word] = value;
    else
        vc[word] = value;
}

// What row r writes, from unit w on: in the fast path rotation units, copies and V words; else words
void row_units(uint r, uint w)
{
    int ps = pos[p.off_pos + r], cr = p.has_slots != 0u ? slots[p.off_slot + r] : ps;  // position, cache row
    uint hd = p.head_dim, q_dim = p.n_heads * hd, kv_dim = p.n_kv_heads * hd;
    uint per = p.ctype == RT_DT_F16 ? 2u : 1u;  // values per word of the caches
    uint kv_words = kv_dim / per;
    uint row = p.off_qkv + r * p.ld;
    bool cached = cr >= 0 && uint(cr) < p.cap;
    uint kb = (per == 2u ? p.off_k / 2u : p.off_k) + uint(cr) * kv_words;  // the row's first word, K cache
    uint vb = (per == 2u ? p.off_v / 2u : p.off_v) + uint(cr) * kv_words;
    if (p.n_rot % 4u == 0u) {
        // rotations two pairs at a time (one angle per pair, as rope.comp), then the values past n_rot
        // and V as they are; per head: n_rot / 4 rotation units and hd - n_rot copies
        uint ru = p.n_rot / 4u, cu = hd - p.n_rot;
        uint nq = p.n_heads * ru, nqc = p.n_heads * cu, nk = p.n_kv_heads * ru, nkc = p.n_kv_heads * cu / per;
        if (w < nq) {
            uint h = w / ru, a0, b0;
            vec2 a, b;
            rotated4(row + h * hd, w % ru, ps, a0, a, b0, b);
            uint qo = p.off_q + r * q_dim + h * hd;
            q[qo + a0] = a.x;
            q[qo + a0 + 1u] = a.y;
            q[qo + b0] = b.x;
            q[qo + b0 + 1u] = b.y;
        } else if (w < nq + nqc) {
            uint i = w - nq, h = i / cu, d = p.n_rot + i % cu;
            q[p.off_q + r * q_dim + h * hd + d] = qkv[row + h * hd + d];
        } else if (!cached) {
            return;
        } else if (w < nq + nqc + nk) {
            uint i = w - nq - nqc, h = i / ru, a0, b0;
            vec2 a, b;
            rotated4(row + q_dim + h * hd, i % ru, ps, a0, a, b0, b);
            uint e = h * hd;  // the head's first value in the cache row
            if (per == 2u) {
                kc[kb + (e + a0) / 2u] = packHalf2x16(a);
                kc[kb + (e + b0) / 2u] = packHalf2x16(b);
            } else {
                kc[kb + e + a0] = floatBitsToUint(a.x);
                kc[kb + e + a0 + 1u] = floatBitsToUint(a.y);
                kc[kb + e + b0] = floatBitsToUint(b.x);
                kc[kb + e + b0 + 1u] = floatBitsToUint(b.y);
            }
        } else if (w < nq + nqc + nk + nkc) {
            uint i = (w - nq - nqc - nk) * per, h = i / cu, d = p.n_rot + i % cu;
            uint src = row + q_dim + h * hd + d;
            kc[kb + (h * hd + d) / per] = per == 2u ? packHalf2x16(vec2(qkv[src], qkv[src + 1u]))
                                                    : floatBitsToUint(qkv[src]);
        } else {
            uint cw = w - nq - nqc - nk - nkc, src = row + q_dim + kv_dim + cw * per;
            vc[vb + cw] = per == 2u ? packHalf2x16(vec2(qkv[src], qkv[src + 1u])) : floatBitsToUint(qkv[src]);
        }
        return;
    }
    // any even n_rot: each word computed for itself (a value's rotation reads its partner itself)
    if (w < q_dim) {
        q[p.off_q + r * q_dim + w] = rotated(row + (w / hd) * hd, w % hd, ps);
        return;
    }
    if (!cached)
        return;
    bool is_k = w < q_dim + kv_words;
    uint cw = is_k ? w - q_dim : w - q_dim - kv_words;  // the word in the cache row
    uint e = cw * per;                                  // its first value
    uint src = row + q_dim + (is_k ? 0u : kv_dim);
    float v0 = is_k ? rotated(src + (e / hd) * hd, e % hd, ps) : qkv[src + e];
    uint word;
    if (per == 2u) {
        float v1 = is_k ? rotated(src + ((e + 1u) / hd) * hd, (e + 1u) % hd, ps) : qkv[src + e + 1u];
        word = packHalf2x16(vec2(v0, v1));
    } else {
        word = floatBitsToUint(v0);
    }
    store_cache(is_k, (is_k ? kb : vb) + cw, word);
}

// one grid-stride loop over the units of all rows (p.units per row, as the dispatcher counts them)
void main()
{
    uint units = p.units, stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint g = gl_GlobalInvocationID.x; g < p.rows * units; g += stride)
        row_units(g / units, g % units);
}
