/* arch_qwen3.c: Qwen3, a llama layer whose queries and keys pass through an RMSNorm per head before
 * RoPE (neox), as llama.cpp reads its GGUF:
 *     q, k, v = wq · norm(x), wk · norm(x), wv · norm(x)
 *     x += wo · attention(rope(q_norm(q)), cache(rope(k_norm(k))), cache(v))
 *     x += w_down · (silu(w_gate · norm(x)) * (w_up · norm(x)))
 * and Qwen3-MoE (qwen3moe), whose feed-forward is a mixture of experts (no shared expert). */
#include <stddef.h>

#include "arch.h"

typedef struct qwen3_layer {
    lm_weight attn_norm;            /* [dim] f32 */
    lm_attn_w a;
    lm_weight q_norm, k_norm;       /* [head_dim] f32: one per head, shared by the heads */
    lm_weight ffn_norm;             /* [dim] f32 */
    lm_weight w_gate, w_up, w_down;
    lm_weight gate_inp, gate_exps, up_exps, down_exps; /* qwen3moe: the router and the experts */
} qwen3_layer;

#define G(field) offsetof(lm_model, g.field)
#define L(field) offsetof(qwen3_layer, field)

static const lm_tensor_spec model_tensors[] = {
    { "token_embd.weight", G(tok_embd), LM_D_DIM, LM_D_VOCAB, LM_D_1, 0 },
    { "output_norm.weight", G(out_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "output.weight", G(output), LM_D_DIM, LM_D_VOCAB, LM_D_1, LM_T_OPTIONAL },
    { NULL, 0, 0, 0, 0, 0 },
};

static const lm_tensor_spec layer_tensors[] = {
    { "attn_norm.weight", L(attn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "attn_q_norm.weight", L(q_norm), LM_D_HD, LM_D_1, LM_D_1, LM_T_F32 },
    { "attn_k_norm.weight", L(k_norm), LM_D_HD, LM_D_1, LM_D_1, LM_T_F32 },
    { "attn_output.weight", L(a.wo), LM_D_Q, LM_D_DIM, LM_D_1, 0 },
    { "ffn_norm.weight", L(ffn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "ffn_gate.weight", L(w_gate), LM_D_DIM, LM_D_FFN, LM_D_1, LM_T_DENSE },
    { "ffn_up.weight", L(w_up), LM_D_DIM, LM_D_FFN, LM_D_1, LM_T_DENSE },
    { "ffn_down.weight", L(w_down), LM_D_FFN, LM_D_DIM, LM_D_1, LM_T_DENSE },
    { "ffn_gate_inp.weight", L(gate_inp), LM_D_DIM, LM_D_EXPERTS, LM_D_1, LM_T_MOE },
    { "ffn_gate_exps.weight", L(gate_exps), LM_D_DIM, LM_D_EFFN, LM_D_EXPERTS, LM_T_MOE },
    { "ffn_up_exps.weight", L(up_exps), LM_D_DIM, LM_D_EFFN, LM_D_EXPERTS, LM_T_MOE },
    { "ffn_down_exps.weight", L(down_exps), LM_D_EFFN, LM_D_DIM, LM_D_EXPERTS, LM_T_MOE },
    { NULL, 0, 0, 0, 0, 0 },
};

static int hparams(lm_loader *ld, lm_hparams *hp)
{
    (void)ld;
    hp->rope_mode = RT_ROPE_NEOX;
    return LM_OK;
}

/* qwen3moe: experts required, each expert_feed_forward_length wide (else the dense width over those used) */
static int moe_hparams(lm_loader *ld, lm_hparams *hp)
{
    hp->rope_mode = RT_ROPE_NEOX;
    if (hp->n_expert <= 0 || hp->n_expert_used <= 0)
        return lm_load_fail(ld, LM_ERR_FORMAT, "qwen3moe.expert_count and .expert_used_count must be given");
    return lm_load_u32(ld, "expert_feed_forward_length", &hp->expert_ffn_dim, hp->ffn_dim / hp->n_expert_used, false);
}

static int load_layer(lm_loader *ld, int l, void *layer)
{
    return lm_load_qkv(ld, l, &((qwen3_layer *)layer)->a, false);
}

static void layer(const lm_fwd *f, int l)
{
    const lm_hparams *hp = f->hp;
    const qwen3_layer *L = lm_fwd_layer(f, l);
    int64_t n = f->n, dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim;

    lm_fwd_qkv(f, &L->attn_norm, &L->a);
    lm_fwd_qk_norm(f, &L->q_norm, &L->k_norm);
    rt_rope_desc rope = lm_fwd_rope(f, hp->rope_base);
    rt_attn_desc attn = lm_fwd_attn(f);
    lm_fwd_attention(f, l, &rope, &attn);
    rt_op_matmul_acc(f->seq, f->x, f->att, lm_w(&L->a.wo), L->a.wo.type, (rt_ref){ 0 }, n, dim, q_dim);

    if (hp->n_expert > 0) {
        lm_fwd_moe(f, &L->ffn_norm, &L->gate_inp, &L->gate_exps, &L->up_exps, &L->down_exps);
        return;
    }
    lm_fwd_ffn_gated(f, &L->ffn_norm, &L->w_gate, &L->w_up, RT_GATE_SILU);
    rt_op_matmul_acc(f->seq, f->x, f->hb, lm_w(&L->w_down), L->w_down.type, (rt_ref){ 0 }, n, dim, hp->ffn_dim);
}

const lm_arch lm_arch_qwen3 = {
    .name = "qwen3", .layer_size = sizeof(qwen3_layer), .tensors = model_tensors, .layer_tensors = layer_tensors,
    .hparams = hparams, .load_layer = load_layer, .layer = layer,
};

const lm_arch lm_arch_qwen3moe = {
    .name = "qwen3moe", .layer_size = sizeof(qwen3_layer), .tensors = model_tensors, .layer_tensors = layer_tensors,
    .hparams = moe_hparams, .load_layer = load_layer, .layer = layer,
};
