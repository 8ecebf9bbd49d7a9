#version 450
// Top-k routing of a mixture-of-experts layer: for each row of logits L [rows][n_expert], the k experts
// of largest L (ties: the lower index first), in descending order, into ids [rows][k], and their weights:
// softmax over all n_expert taken at the chosen ones (divided by their sum when renorm).
// One workgroup per row. The k choices are k passes of an argmax over the row, each taking the best
// expert that ranks after the previous choice in the order (L descending, index ascending): no expert is
// picked twice, and no per-expert state is kept, so n_expert is unbounded. A pass that finds nothing
// (NaN logits) writes id -1 and weight 0.
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer I { int ids[]; };
layout(binding = 1) buffer Wt { float wts[]; }; // read back by the invocation that wrote it (renorm)
layout(binding = 2) readonly buffer L { float l[]; };
layout(push_constant) uniform PC { rt_pc_moe_route p; };
shared float sv[gl_WorkGroupSize.x];
shared uint si[gl_WorkGroupSize.x];

const uint NONE = 0xFFFFFFFFu;

// whether (va, ia) ranks before (vb, ib)
bool before(float va, uint ia, float vb, uint ib) { return va > vb || (va == vb && ia < ib); }

float reduce(float v, bool is_max)
{
    uint t = gl_LocalInvocationID.x;
    sv[t] = v;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1) {
        if (t < s)
            sv[t] = is_max ? max(sv[t], sv[t + s]) : sv[t] + sv[t + s];
        barrier();
    }
    float r = sv[0];
    barrier();
    return r;
}

void main()
{
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= p.rows)
        return; // the whole workgroup
    uint lo = p.off_l + row * p.n_expert, oo = row * p.k;
    uint t = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    float mx = -1.0 / 0.0;
    for (uint i = t; i < p.n_expert; i += nt)
        mx = max(mx, l[lo + i]);
    mx = reduce(mx, true);
    float se = 0.0;
    for (uint i = t; i < p.n_expert; i += nt)
        se += exp(l[lo + i] - mx);
    se = reduce(se, false);

    float pv = 0.0, chosen = 0.0;
    uint pi = NONE;
    for (uint s = 0; s < p.k; s++) {
        float bv = 0.0;
        uint bi = NONE;
        for (uint i = t; i < p.n_expert; i += nt) {
            float v = l[lo + i];
            if ((s == 0u || before(pv, pi, v, i)) && (bi == NONE || before(v, i, bv, bi))) {
                bv = v;
                bi = i;
            }
        }
        sv[t] = bv;
        si[t] = bi;
        barrier();
        for (uint h = nt / 2u; h > 0u; h >>= 1) {
            if (t < h) {
                float ov = sv[t + h];
                uint oi = si[t + h];
                if (oi != NONE && (si[t] == NONE || before(ov, oi, sv[t], si[t]))) {
                    sv[t] = ov;
                    si[t] = oi;
                }
            }
            barrier();
        }
        pv = sv[0];
        pi = si[0];
        barrier(); // everyone has read the winner before the next pass overwrites it
        if (pi == NONE)
            pv = 1.0 / 0.0; // ranks before everything: the passes left find nothing either
        if (t == 0u) {
            float w = pi == NONE ? 0.0 : exp(pv - mx) / se;
            ids[p.off_ids + oo + s] = pi == NONE ? -1 : int(pi);
            wts[p.off_w + oo + s] = w;
            chosen += w;
        }
    }
    if (t == 0u && p.renorm != 0u && chosen > 0.0)
        for (uint s = 0; s < p.k; s++)
            wts[p.off_w + oo + s] /= chosen;
}
