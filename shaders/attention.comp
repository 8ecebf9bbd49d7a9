#version 450
// Causal attention against the KV cache for GPUs, flash style (the score matrix never leaves shared
// memory), one workgroup per KV head and tile of query vectors:
//
//   query vectors  the (row, head) pairs of one KV head's query heads, numbered qi = row * G + g with
//                  G = n_heads / n_kv_heads (grouped-query attention): a workgroup takes NQ consecutive
//                  ones (decode: a row's G heads; prefill: NQ / G consecutive rows of them), so that
//                  every key and value row loaded serves NQ queries; each keeps its own causal limit.
//   key tiles      BC keys at a time: the K tile, then the V tile, loaded once into shared memory with
//                  consecutive invocations reading consecutive 32-bit words of a cache row (an f16 cache
//                  is kept there as its f16 pairs: half the shared memory, no precision lost).
//   per tile       scores S = Q K^T of the tile (each invocation a fixed key and SPT query vectors,
//                  reading its key row once for them; with fewer scores than invocations, DS of them
//                  share a score, a slice of its words each), the online softmax per query vector (row max
//                  through subgroupMax with USE_SUBGROUP, else a shared-memory tree; the running sum
//                  stays per invocation until the end), then O = O corr + P V with each invocation
//                  holding an RPT x CPT block of output words in registers (with fewer query vectors
//                  than row groups, KSL groups share a vector, a slice of the keys each, added at the
//                  end).
//   window         (sliding window) a vector takes keys pos - window < j <= pos; the tile's loop starts
//                  at the least of its vectors' first keys (lo; 0 without a window). softcap: scores
//                  s (scaled) become softcap tanh(s / softcap) before the mask.
//   SPLIT          (flash decoding) x = KV head + n_kv_heads * range: the keys lo .. hi of the tile (hi
//                  its largest position) are cut into n_split ranges of max(ceil((hi + 1 - lo) / n_split),
//                  min_keys) keys rounded up to BC, computed here from the positions, so the work is
//                  balanced at every position of a step recorded once; a range past hi writes an empty
//                  partial (max -inf, sum 0) without touching a key. The ranges' maxima, sums and
//                  unnormalised outputs go to scratch and attn_combine.comp merges them.
//
// Per tile of BC keys a workgroup loads 2 BC head_dim cache values once, for NQ query vectors (the
// kernel before this one loaded them once per query head and row), and has 4 barriers, plus 2 + log2(WG
// / NQ) for the row max through shared memory, or with subgroups none when a query vector's WG / NQ
// invocations are one subgroup, 2 when they span several (the earlier kernel, a workgroup of 64 per
// query vector, had 16 per tile of 64 keys).
//
// llvmpipe (lavapipe) ends every loop of an invocation once their iterations add up to 65535 (its
// loop limiter, LP_MAX_TGSI_LOOP_ITERATIONS), which silently drops the rest of the keys: the loops over
// words and keys are unrolled by 4 by hand and the small ones marked [[unroll]]. Measured without
// ranges, one workgroup then covers more than 32K keys at head size 128 (f16 and f32) but only about
// 8K at head size 256 in f32; on a CPU driver the runtime therefore cuts contexts into ranges of at
// most 2048 keys (rt_ops_attention.c).
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CTYPE = RT_DT_F32;
layout(constant_id = 2) const uint SPLIT = 0;
layout(constant_id = 3) const uint PAIRS = 0;  // f16 cache, even head size and offsets: rows read as words
layout(constant_id = 4) const uint HD = 64;    // head size, <= 256
layout(constant_id = 5) const uint NQ = 4;     // query vectors per workgroup: a power of two <= WG
layout(constant_id = 6) const uint BC = 32;    // keys per tile: a power of two <= WG
layout(constant_id = 7) const uint TW = 32;    // invocations across an output row: a power of two dividing CW
layout(constant_id = 8) const uint PAGED = 0;  // keys through the row's block table (NQ then divides G: one row)
layout(binding = 0) writeonly buffer O { float o[]; };
layout(binding = 1) readonly buffer Q { float q[]; };
layout(binding = 2) readonly buffer K { uint kc[]; };
layout(binding = 3) readonly buffer V { uint vc[]; };
layout(binding = 4) readonly buffer P { int pos[]; };
layout(binding = 5) writeonly buffer S { float part[]; };
layout(binding = 6) readonly buffer PG { int pg[]; };
layout(push_constant) uniform PC { rt_pc_attn p; };

const uint WG = gl_WorkGroupSize.x;                                      // a power of two
const uint KVP = 1u + CTYPE * (1u - (HD & 1u));  // values per shared K/V word: 2 for f16 (CTYPE 1), even HD
const uint CW = HD / KVP;                                                // words per K/V row
const uint KS = CW + 1u, QS = HD + 1u, PS = BC + 1u;                     // row strides, padded (banks)
const uint SR = WG / BC, SPT = (NQ + SR - 1u) / SR;                      // scores: query vectors per invocation
const uint DS = SR > NQ ? SR / NQ : 1u;                                  // ... or invocations per score
const uint TPR = WG / NQ, KPT = (BC + TPR - 1u) / TPR;                   // softmax: invocations per query vector
const uint RG = WG / TW, CPT = CW / TW;                                  // P V: row groups, words per invocation
// row groups beyond the query vectors take a share of the keys each (KSL slices, added at the end); only
// where TW >= 32 (then KSL NQ <= 4, and the slices fit in the K/V tile's memory)
const uint KSL = TW >= 32u ? (RG > NQ ? RG / NQ : 1u) : 1u;
const uint RGE = RG / KSL, RPT = (NQ + RGE - 1u) / RGE;                  // output block: RPT x CPT words
const float NEG_INF = -1.0 / 0.0;

shared float qs[NQ * QS];   // the tile's queries, scaled
shared uint kvs[BC * KS];   // K tile, then V tile: f32 bits, or f16 pairs (KVP 2)
shared float ps[DS * NQ * PS];  // scores (DS partial sums of each), then probabilities
shared float crow[NQ];      // per query vector: the tile's correction e^(m_old - m_new), at the end its sum
shared float mrow[NQ];      // at the end: its max
shared int lim[NQ];         // its last key (causal limit), -1 for vectors past the last row
shared int low[NQ];         // its first key (sliding window; 0 without), past every key for those vectors
shared float red[WG];       // reductions

uint kvh, tr, ru;           // KV head; the invocation's index in the softmax phase and its lane in its vector
uint tab;                   // PAGED: the tile's row's block table in pg

// where query vector qi (row qi / G, head kvh G + qi % G) starts in Q and O
uint qoff(uint qi, uint G)
{
    return ((qi / G) * p.n_heads + kvh * G + qi % G) * HD;
}

vec2 kvval(uint w)
{
    return KVP == 2u ? unpackHalf2x16(w) : vec2(uintBitsToFloat(w), 0.0);
}

// word e of the tile (key e / CW, word e % CW) from the cache at element base (key j0's row; PAGED: the
// KV head's start, key j0 + j's row from the block table); 0 past nk
uint tile_word(uint which, uint base, uint j0, uint nk, uint e)
{
    uint j = e / CW, w = e - j * CW;
    if (j >= nk)
        return 0u;
    uint kr = j;
    if (PAGED != 0u) {
        uint key = j0 + j;
        kr = (uint(pg[p.off_pg + tab + (key >> p.block_shift)]) << p.block_shift) | (key & ((1u << p.block_shift) - 1u));
    }
    uint el = base + kr * (p.n_kv_heads * HD) + w * KVP;
    if (CTYPE == RT_DT_F32)
        return which == 0u ? kc[el] : vc[el];
    if (PAIRS != 0u)
        return which == 0u ? kc[el >> 1] : vc[el >> 1];
    if (KVP == 2u)
        return which == 0u ? packHalf2x16(vec2(LOAD_F16(kc, el), LOAD_F16(kc, el + 1u)))
                           : packHalf2x16(vec2(LOAD_F16(vc, el), LOAD_F16(vc, el + 1u)));
    return floatBitsToUint(which == 0u ? LOAD_F16(kc, el) : LOAD_F16(vc, el));
}

// keys j0 .. j0 + nk - 1 of K (which 0) or V (1) into kvs, zeros after them (so that 0 x stale is 0)
void load_tile(uint which, uint j0, uint nk)
{
    uint base = (which == 0u ? p.off_k : p.off_v) + (PAGED != 0u ? 0u : j0 * (p.n_kv_heads * HD)) + kvh * HD;
    const uint N = BC * CW;
    uint e = gl_LocalInvocationID.x;
    for (; e + 3u * WG < N; e += 4u * WG) {
        uint a = tile_word(which, base, j0, nk, e), b = tile_word(which, base, j0, nk, e + WG);
        uint c = tile_word(which, base, j0, nk, e + 2u * WG), d = tile_word(which, base, j0, nk, e + 3u * WG);
        kvs[(e / CW) * KS + e % CW] = a;
        kvs[((e + WG) / CW) * KS + (e + WG) % CW] = b;
        kvs[((e + 2u * WG) / CW) * KS + (e + 2u * WG) % CW] = c;
        kvs[((e + 3u * WG) / CW) * KS + (e + 3u * WG) % CW] = d;
    }
    for (; e < N; e += WG)
        kvs[(e / CW) * KS + e % CW] = tile_word(which, base, j0, nk, e);
}

float comb(bool mx, float a, float b)
{
    return mx ? max(a, b) : a + b;
}

// max (mx) or sum of v over the TPR invocations of each query vector (softmax phase numbering tr)
float vec_reduce(float v, bool mx)
{
#ifdef USE_SUBGROUP
    if (TPR >= gl_SubgroupSize) {  // whole subgroups per query vector
        float x = mx ? subgroupMax(v) : subgroupAdd(v);
        uint per = TPR / gl_SubgroupSize;
        if (per == 1u)
            return x;
        if (subgroupElect())
            red[gl_SubgroupID] = x;
        barrier();
        uint b = (tr / TPR) * per;
        float r = red[b];
        for (uint k = 1u; k < per; k++)
            r = comb(mx, r, red[b + k]);
        barrier();
        return r;
    }
#endif
    red[tr] = v;
    barrier();
    [[unroll]] for (uint st = TPR / 2u; st > 0u; st >>= 1) {
        if (ru < st)
            red[tr] = comb(mx, red[tr], red[tr + st]);
        barrier();
    }
    float r = red[tr - ru];
    barrier();
    return r;
}

#define SCORE_STEP(w)                                                                                   \
    {                                                                                                   \
        vec2 kv = kvval(kvs[kb + (w)]);                                                                 \
        [[unroll]] for (uint s = 0u; s < SPT; s++) {                                                    \
            uint qo = min(iq + s * SR, NQ - 1u) * QS + (w) * KVP;                                       \
            sc[s] += KVP == 2u ? qs[qo] * kv.x + qs[qo + 1u] * kv.y : qs[qo] * kv.x;                    \
        }                                                                                               \
    }

#define PV_STEP(j)                                                                                      \
    {                                                                                                   \
        [[unroll]] for (uint rr = 0u; rr < RPT; rr++) {                                                 \
            float pij = ps[min(i0 + rr * RGE, NQ - 1u) * PS + (j)];                                     \
            [[unroll]] for (uint cc = 0u; cc < CPT; cc++) {                                             \
                vec2 vv = kvval(kvs[(j) * KS + cw0 + cc * TW]);                                         \
                uint a = (rr * CPT + cc) * KVP;                                                         \
                acc[a] += pij * vv.x;                                                                   \
                if (KVP == 2u)                                                                          \
                    acc[a + 1u] += pij * vv.y;                                                          \
            }                                                                                           \
        }                                                                                               \
    }

void main()
{
    uint t = gl_LocalInvocationID.x;
#ifdef USE_SUBGROUP
    tr = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;  // subgroups hold whole vectors
#else
    tr = t;
#endif
    ru = tr % TPR;
    uint ri = tr / TPR;  // softmax phase: the query vector of this invocation
    kvh = gl_WorkGroupID.x % p.n_kv_heads;
    uint split = gl_WorkGroupID.x / p.n_kv_heads;
    uint tile = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
    uint G = p.n_heads / p.n_kv_heads, nqv = p.rows * G, q0 = tile * NQ;
    if (q0 >= nqv)
        return;
    if (PAGED != 0u)  // NQ divides G: the tile's query vectors are of one row
        tab = uint(pg[p.off_pg + q0 / G]);

    for (uint e = t; e < NQ * HD; e += WG) {  // consecutive heads of a row are consecutive in Q
        uint i = e / HD, d = e - i * HD;
        qs[i * QS + d] = q0 + i < nqv ? q[p.off_q + qoff(q0 + i, G) + d] * p.scale : 0.0;
    }
    if (t < NQ) {
        int pr = q0 + t < nqv ? pos[p.off_pos + (q0 + t) / G] : -1;
        lim[t] = pr >= 0 ? min(pr, int(p.cap) - 1) : -1;
        low[t] = pr < 0 ? 0x7fffffff : p.window > 0u ? max(pr - int(p.window) + 1, 0) : 0;
    }
    barrier();
    int hi = -1, lo = 0x7fffffff;
    for (uint i = 0u; i < NQ; i++) {
        hi = max(hi, lim[i]);
        lo = min(lo, low[i]);
    }
    // the tile's keys lo .. hi: those before every vector's window are never loaded
    int first = lo, last = hi;
    if (SPLIT != 0u) {  // this workgroup's range, from the positions
        uint span = hi >= lo ? uint(hi - lo + 1) : 0u;
        uint range = max((span + p.n_split - 1u) / p.n_split, p.min_keys);
        range = (range + BC - 1u) / BC * BC;
        first = hi >= lo ? lo + int(split * range) : 0;
        last = hi >= lo ? min(hi, first + int(range) - 1) : -1;
    }

    float m = NEG_INF, lp = 0.0;  // softmax phase: running max of vector ri, this invocation's part of its sum
    float acc[RPT * CPT * KVP];
    [[unroll]] for (uint a = 0u; a < RPT * CPT * KVP; a++)
        acc[a] = 0.0;
    // scores: key js of the tile, query vectors iq + s SR, words sl, sl + DS, ... of them
    uint js = t % BC, ig = t / BC, iq = DS > 1u ? ig % NQ : ig, sl = DS > 1u ? ig / NQ : 0u;
    // P V: words cw0 + c TW of query vectors i0 + r RGE, keys ks, ks + KSL, ... of the tile
    uint cw0 = t % TW, i0 = (t / TW) % RGE, ks = t / TW / RGE;

    for (int j0 = first; j0 <= last; j0 += int(BC)) {
        uint nk = uint(min(int(BC), last - j0 + 1));
        load_tile(0u, uint(j0), nk);
        barrier();
        {
            float sc[SPT];
            [[unroll]] for (uint s = 0u; s < SPT; s++)
                sc[s] = 0.0;
            uint kb = js * KS, w = sl;
            for (; w + 3u * DS < CW; w += 4u * DS) {
                SCORE_STEP(w)
                SCORE_STEP(w + DS)
                SCORE_STEP(w + 2u * DS)
                SCORE_STEP(w + 3u * DS)
            }
            for (; w < CW; w += DS)
                SCORE_STEP(w)
            [[unroll]] for (uint s = 0u; s < SPT; s++) {
                uint i = iq + s * SR;
                if (i < NQ)
                    ps[(sl * NQ + i) * PS + js] = sc[s];
            }
        }
        barrier();
        {  // online softmax of vector ri over the tile
            float sv[KPT], vmax = NEG_INF;
            [[unroll]] for (uint k = 0u; k < KPT; k++) {
                uint j = ru + k * TPR;
                float x = 0.0;
                if (j < BC)
                    [[unroll]] for (uint d = 0u; d < DS; d++)
                        x += ps[(d * NQ + ri) * PS + j];
                if (p.softcap > 0.0)
                    x = softcapped(x, p.softcap);
                int key = j0 + int(j);
                sv[k] = j < nk && key <= lim[ri] && key >= low[ri] ? x : NEG_INF;  // the causal mask, the window
                vmax = max(vmax, sv[k]);
            }
            float mn = max(m, vec_reduce(vmax, true));
            float corr = mn == NEG_INF ? 1.0 : exp(m - mn), sum = 0.0;
            [[unroll]] for (uint k = 0u; k < KPT; k++) {
                uint j = ru + k * TPR;
                float pj = sv[k] == NEG_INF ? 0.0 : exp(sv[k] - mn);
                if (j < BC)
                    ps[ri * PS + j] = pj;
                sum += pj;
            }
            lp = lp * corr + sum;
            m = mn;
            if (ru == 0u)
                crow[ri] = corr;
        }
        load_tile(1u, uint(j0), nk);  // the K tile was read before the last barrier
        barrier();
        [[unroll]] for (uint rr = 0u; rr < RPT; rr++) {
            float c = crow[min(i0 + rr * RGE, NQ - 1u)];
            [[unroll]] for (uint a = 0u; a < CPT * KVP; a++)
                acc[rr * CPT * KVP + a] *= c;
        }
        uint j = ks;
        for (; j + 3u * KSL < BC; j += 4u * KSL) {
            PV_STEP(j)
            PV_STEP(j + KSL)
            PV_STEP(j + 2u * KSL)
            PV_STEP(j + 3u * KSL)
        }
        for (; j < BC; j += KSL)
            PV_STEP(j)
        barrier();
    }
    if (KSL > 1u && first <= last) {  // the key slices' outputs added, in slice order (kvs is free now)
        if (ks > 0u)
            [[unroll]] for (uint rr = 0u; rr < RPT; rr++)
                [[unroll]] for (uint a = 0u; a < CPT * KVP; a++)
                    kvs[(((ks - 1u) * NQ + min(i0 + rr * RGE, NQ - 1u)) * CPT * KVP + a) * TW + cw0] =
                        floatBitsToUint(acc[rr * CPT * KVP + a]);
        barrier();
        if (ks == 0u)
            for (uint k = 1u; k < KSL; k++)
                [[unroll]] for (uint rr = 0u; rr < RPT; rr++)
                    [[unroll]] for (uint a = 0u; a < CPT * KVP; a++)
                        acc[rr * CPT * KVP + a] +=
                            uintBitsToFloat(kvs[(((k - 1u) * NQ + min(i0 + rr * RGE, NQ - 1u)) * CPT * KVP + a) * TW + cw0]);
    }

    float l = vec_reduce(lp, false);
    if (ru == 0u) {
        crow[ri] = l;
        mrow[ri] = l > 0.0 ? m : NEG_INF;
    }
    barrier();
    [[unroll]] for (uint rr = 0u; rr < RPT; rr++) {
        uint i = i0 + rr * RGE, qi = q0 + i;
        if (i >= NQ || qi >= nqv || ks > 0u)
            continue;
        uint ob;
        float scale;
        if (SPLIT != 0u) {  // the range's partial: [max, sum, unnormalised output]
            ob = p.off_s + (((qi / G) * p.n_heads + kvh * G + qi % G) * p.n_split + split) * (HD + 2u);
            if (cw0 == 0u) {
                part[ob] = mrow[i];
                part[ob + 1u] = crow[i];
            }
            ob += 2u;
            scale = 1.0;
        } else {
            ob = p.off_o + qoff(qi, G);
            scale = crow[i] > 0.0 ? 1.0 / crow[i] : 0.0;
        }
        [[unroll]] for (uint cc = 0u; cc < CPT; cc++)
            [[unroll]] for (uint e = 0u; e < KVP; e++)
                if (SPLIT != 0u)
                    part[ob + (cw0 + cc * TW) * KVP + e] = acc[(rr * CPT + cc) * KVP + e];
                else
                    o[ob + (cw0 + cc * TW) * KVP + e] = acc[(rr * CPT + cc) * KVP + e] * scale;
    }
}
