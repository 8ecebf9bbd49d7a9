/* arch.c: the table of architecture families, and the pieces of a forward pass that several share. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "arch.h"

/* Every family vkllm runs: one line each. */
static const lm_arch *const families[] = {
    &lm_arch_llama,
    &lm_arch_qwen2,
    &lm_arch_qwen3,
    &lm_arch_qwen3moe,
    &lm_arch_gemma2,
    &lm_arch_gemma3,
    &lm_arch_phi3,
    &lm_arch_bert,
    &lm_arch_nomic_bert,
};
#define N_FAMILIES (sizeof families / sizeof families[0])

const lm_arch *lm_arch_find(const char *name)
{
    for (size_t i = 0; name && i < N_FAMILIES; i++)
        if (!strcmp(families[i]->name, name))
            return families[i];
    return NULL;
}

bool lm_arch_supported(const char *name) { return lm_arch_find(name) != NULL; }

const char *lm_arch_names(void)
{
    static char names[512];
    if (!names[0]) {
        size_t at = 0;
        for (size_t i = 0; i < N_FAMILIES && at < sizeof names; i++)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? ", " : "", families[i]->name);
    }
    return names;
}

/* ---------------------------------------------------------------- forward-pass pieces */

bool lm_layer_slides(const lm_hparams *hp, int l)
{
    if (hp->swa_window <= 0 || hp->swa_pattern <= 0)
        return false;
    return hp->swa_pattern == 1 || l % hp->swa_pattern < hp->swa_pattern - 1;
}

const void *lm_fwd_layer(const lm_fwd *f, int l)
{
    return (const char *)f->m->layers + (size_t)l * f->m->arch->layer_size;
}

rt_rope_desc lm_fwd_rope(const lm_fwd *f, float base)
{
    const lm_hparams *hp = f->hp;
    const lm_globals *g = &f->m->g;
    bool yarn = hp->rope_scaling == LM_ROPE_SCALING_YARN;
    /* frequency factors: rope_freqs, else Phi-3's long or short ones, the long ones for a context longer
     * than the original (rounded up to 256 positions first, as llama.cpp sizes its contexts; chosen once
     * per context, not per position) */
    const lm_weight *factors = &g->rope_freqs;
    if (!factors->buf && (g->rope_long.buf || g->rope_short.buf))
        factors = (f->max_keys + 255) / 256 * 256 > hp->rope_n_ctx_orig ? &g->rope_long : &g->rope_short;
    return (rt_rope_desc){
        .mode = hp->rope_mode, .n_rot = hp->n_rot, .base = base,
        .freq_scale = hp->rope_scaling == LM_ROPE_SCALING_NONE ? 1.0f : 1.0f / hp->rope_factor,
        /* rope.scaling.attn_factor scales every rotation, as llama.cpp's mscale (YaRN adds its own) */
        .ext_factor = yarn ? 1.0f : 0.0f, .attn_factor = hp->yarn_attn_factor,
        .beta_fast = hp->yarn_beta_fast, .beta_slow = hp->yarn_beta_slow, .n_ctx_orig = hp->rope_n_ctx_orig,
        .freq_factors = lm_w(factors),
    };
}

rt_attn_desc lm_fwd_attn(const lm_fwd *f)
{
    const lm_hparams *hp = f->hp;
    return (rt_attn_desc){ .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads, .head_dim = hp->head_dim,
                           .scale = hp->attn_scale > 0 ? hp->attn_scale : 1.0f / sqrtf((float)hp->head_dim),
                           .cap = f->cache_rows, .cache_type = f->cache_type, .block_size = f->block_size,
                           .pages = f->pages, .max_keys = f->max_keys };
}

void lm_fwd_embed(const lm_fwd *f)
{
    const lm_weight *e = &f->m->g.tok_embd;
    rt_op_get_rows(f->seq, f->x, rt_at(e->buf, 0), e->type, f->ids, f->n, f->hp->n_vocab, f->hp->dim);
    if (f->hp->embd_scale > 0 && f->hp->embd_scale != 1.0f)
        rt_op_scale(f->seq, f->x, f->x, f->n * f->hp->dim, f->hp->embd_scale);
}

void lm_fwd_qkv(const lm_fwd *f, const lm_weight *norm, const lm_attn_w *a)
{
    const lm_hparams *hp = f->hp;
    int64_t hd = hp->head_dim, q_dim = (int64_t)hp->n_heads * hd, kv_dim = (int64_t)hp->n_kv_heads * hd;
    int64_t ld = q_dim + 2 * kv_dim;
    if (a->wqkv.buf) {
        rt_op_matmul_ex(f->seq, &(rt_matmul_desc){ .y = f->qkv, .x = f->x, .w = lm_w(&a->wqkv), .wt = a->wqkv.type,
                                                   .bias = lm_w(&a->bqkv), .m = f->n, .n = ld, .k = hp->dim,
                                                   .norm_w = lm_w(norm), .norm_eps = hp->norm_eps });
        return;
    }
    const lm_weight *w[3] = { &a->wq, &a->wk, &a->wv }, *b[3] = { &a->bq, &a->bk, &a->bv };
    int64_t cols[3] = { q_dim, kv_dim, kv_dim }, col = 0;
    rt_seq_parallel(f->seq, true);
    for (int i = 0; i < 3; col += cols[i++]) {
        rt_ref y = f->qkv;
        y.off += (size_t)col * 4;
        rt_op_matmul_ex(f->seq, &(rt_matmul_desc){ .y = y, .ldy = ld, .x = f->x, .w = lm_w(w[i]), .wt = w[i]->type,
                                                   .bias = lm_w(b[i]), .m = f->n, .n = cols[i], .k = hp->dim,
                                                   .norm_w = lm_w(norm), .norm_eps = hp->norm_eps });
    }
    rt_seq_parallel(f->seq, false);
}

void lm_fwd_attention(const lm_fwd *f, int l, const rt_rope_desc *rope, const rt_attn_desc *attn)
{
    const lm_hparams *hp = f->hp;
    rt_ref k = rt_at(f->kc[l], 0), v = rt_at(f->vc[l], 0);
    rt_op_rope_kv(f->seq, f->q, k, v, f->cache_type, f->qkv, f->pos, f->slots, f->n, hp->n_heads, hp->n_kv_heads,
                  hp->head_dim, f->cache_rows, rope);
    rt_op_attention(f->seq, f->att, f->q, k, v, f->kend, f->n, attn);
}

void lm_fwd_qk_norm(const lm_fwd *f, const lm_weight *q_norm, const lm_weight *k_norm)
{
    const lm_hparams *hp = f->hp;
    int64_t hd = hp->head_dim, ld = (hp->n_heads + 2 * (int64_t)hp->n_kv_heads) * hd;
    rt_ref k = f->qkv;
    k.off += (size_t)hp->n_heads * hd * 4;
    rt_seq_parallel(f->seq, true);
    rt_op_rmsnorm_ex(f->seq, &(rt_norm_desc){ .y = f->qkv, .x = f->qkv, .w = lm_w(q_norm), .rows = f->n, .dim = hd,
                                              .groups = hp->n_heads, .ldx = ld, .ldy = ld, .eps = hp->norm_eps });
    rt_op_rmsnorm_ex(f->seq, &(rt_norm_desc){ .y = k, .x = k, .w = lm_w(k_norm), .rows = f->n, .dim = hd,
                                              .groups = hp->n_kv_heads, .ldx = ld, .ldy = ld, .eps = hp->norm_eps });
    rt_seq_parallel(f->seq, false);
}

void lm_fwd_ffn_gated(const lm_fwd *f, const lm_weight *norm, const lm_weight *gate, const lm_weight *up, int act)
{
    const lm_hparams *hp = f->hp;
    rt_op_matmul_ex(f->seq, &(rt_matmul_desc){ .y = f->hb, .x = f->x, .w = lm_w(gate), .wt = gate->type, .m = f->n,
                                               .n = hp->ffn_dim, .k = hp->dim, .norm_w = lm_w(norm),
                                               .norm_eps = hp->norm_eps, .w_up = lm_w(up), .w_up_type = up->type,
                                               .gate_act = act });
}

void lm_fwd_add_normed(const lm_fwd *f, const lm_weight *post_norm)
{
    rt_op_rmsnorm_ex(f->seq, &(rt_norm_desc){ .y = f->x, .x = f->t, .w = lm_w(post_norm), .rows = f->n,
                                              .dim = f->hp->dim, .groups = 1, .eps = f->hp->norm_eps,
                                              .accumulate = true });
}

void lm_fwd_moe(const lm_fwd *f, const lm_weight *norm, const lm_weight *gate_inp, const lm_weight *gate_exps,
                const lm_weight *up_exps, const lm_weight *down_exps)
{
    const lm_hparams *hp = f->hp;
    rt_seq *seq = f->seq;
    int k = hp->n_expert_used;
    rt_op_rmsnorm(seq, f->t, f->x, lm_w(norm), f->n, hp->dim, hp->norm_eps);
    rt_op_matmul(seq, f->moe_logits, f->t, lm_w(gate_inp), gate_inp->type, (rt_ref){ 0 }, f->n, hp->n_expert, hp->dim);
    rt_op_moe_route(seq, f->moe_ids, f->moe_w, f->moe_logits, f->n, hp->n_expert, k, true);
    rt_op_matmul_id(seq, &(rt_matmul_id_desc){ .y = f->moe_h, .x = f->t, .w = lm_w(gate_exps), .w_up = lm_w(up_exps),
                                               .ids = f->moe_ids, .wt = gate_exps->type, .m = f->n,
                                               .n = hp->expert_ffn_dim, .k = hp->dim, .n_used = k,
                                               .n_expert = hp->n_expert });
    rt_op_matmul_id(seq, &(rt_matmul_id_desc){ .y = f->moe_o, .x = f->moe_h, .w = lm_w(down_exps), .ids = f->moe_ids,
                                               .wt = down_exps->type, .m = f->n, .n = hp->dim,
                                               .k = hp->expert_ffn_dim, .n_used = k, .n_expert = hp->n_expert,
                                               .x_per_slot = true });
    rt_op_moe_combine(seq, f->x, f->moe_o, f->moe_w, f->n, k, hp->dim);
}
