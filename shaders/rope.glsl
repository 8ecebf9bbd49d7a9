// rope.glsl: the rotation angle of rotary position embeddings, shared by rope.comp and rope_kv.comp.
// Pair i of n_rot/2 has angle pos * base^(-2i/n_rot), as llama.cpp's rope with YaRN (ext_factor > 0) and
// linear scaling (freq_scale), and optional per-frequency factors (ff, divided into theta). The block P
// is an rt_pc_rope-like struct with the fields named below.

float rope_yarn_ramp(float low, float high, uint i0)
{
    float y = (float(i0) / 2.0 - low) / max(0.001, high - low);
    return 1.0 - min(1.0, max(0.0, y));
}

// dimension at which the rotation count over n_ctx_orig equals n_rot
float rope_corr_dim(uint n_rot, float base, float n_ctx_orig, float rotations)
{
    return float(n_rot) * log(n_ctx_orig / (rotations * 2.0 * 3.14159265358979)) / (2.0 * log(base));
}

// cos and sin (times the magnitude scale) of pair i at position ps; theta_div: the pair's freq factor (1
// when there are none)
#define ROPE_COS_SIN(P, ps, i, theta_div, c, s)                                                            \
    {                                                                                                      \
        float theta_extrap = float(ps) * pow((P).base, -2.0 * float(i) / float((P).n_rot)) / (theta_div);  \
        float theta_interp = (P).freq_scale * theta_extrap;                                                \
        float theta = theta_interp;                                                                        \
        float mscale = (P).attn_factor;                                                                    \
        if ((P).ext_factor != 0.0) {                                                                       \
            float low = max(0.0, floor(rope_corr_dim((P).n_rot, (P).base, (P).n_ctx_orig, (P).beta_fast))); \
            float high = min(float((P).n_rot) - 1.0,                                                       \
                             ceil(rope_corr_dim((P).n_rot, (P).base, (P).n_ctx_orig, (P).beta_slow)));     \
            float ramp_mix = rope_yarn_ramp(low, high, 2u * (i)) * (P).ext_factor;                         \
            theta = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;                             \
            mscale *= 1.0 + 0.1 * log(1.0 / (P).freq_scale);                                               \
        }                                                                                                  \
        c = cos(theta) * mscale;                                                                           \
        s = sin(theta) * mscale;                                                                           \
    }
