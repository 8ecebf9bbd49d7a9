/* arch_llama.c: the llama family: llama (Llama 1-3, Mistral, SmolLM, TinyLlama, ...), qwen2 (llama with
 * Q/K/V biases and neox RoPE), qwen3 (neox RoPE, and Q and K through an RMSNorm per head before it) and
 * qwen3moe. A layer:
 *     q, k, v = wq · norm(x), wk · norm(x), wv · norm(x)      (+ biases; qwen3: q, k = q_norm(q), k_norm(k))
 *     x += wo · attention(rope(q), cache(rope(k)), cache(v))
 *     x += w_down · (silu(w_gate · norm(x)) * (w_up · norm(x)))
 * with RMSNorm, grouped-query attention, and the sliding window where the metadata asks for one
 * (attention.sliding_window; llama.cpp does not read it, and Mistral's converted files do not carry it).
 * A file with experts (expert_count: Mixtral, qwen3moe) has a mixture of experts for its feed-forward
 * (qwen3moe: no shared expert). */
#include <stddef.h>
#include <string.h>

#include "arch.h"

#define G(field) offsetof(lm_model, g.field)
#define L(field) offsetof(lm_llama_layer, field)

static const lm_tensor_spec model_tensors[] = {
    { "token_embd.weight", G(tok_embd), LM_D_DIM, LM_D_VOCAB, LM_D_1, 0 },
    { "output_norm.weight", G(out_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "output.weight", G(output), LM_D_DIM, LM_D_VOCAB, LM_D_1, LM_T_OPTIONAL },
    { "rope_freqs.weight", G(rope_freqs), LM_D_ROT2, LM_D_1, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

#define LAYER_TENSORS                                                                          \
    { "attn_norm.weight", L(attn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },                  \
    { "attn_output.weight", L(a.wo), LM_D_Q, LM_D_DIM, LM_D_1, 0 },                            \
    { "ffn_norm.weight", L(ffn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },                    \
    { "ffn_gate.weight", L(w_gate), LM_D_DIM, LM_D_FFN, LM_D_1, LM_T_DENSE },                  \
    { "ffn_up.weight", L(w_up), LM_D_DIM, LM_D_FFN, LM_D_1, LM_T_DENSE },                      \
    { "ffn_down.weight", L(w_down), LM_D_FFN, LM_D_DIM, LM_D_1, LM_T_DENSE },                  \
    { "ffn_gate_inp.weight", L(gate_inp), LM_D_DIM, LM_D_EXPERTS, LM_D_1, LM_T_MOE },          \
    { "ffn_gate_exps.weight", L(gate_exps), LM_D_DIM, LM_D_EFFN, LM_D_EXPERTS, LM_T_MOE },     \
    { "ffn_up_exps.weight", L(up_exps), LM_D_DIM, LM_D_EFFN, LM_D_EXPERTS, LM_T_MOE },         \
    { "ffn_down_exps.weight", L(down_exps), LM_D_EFFN, LM_D_DIM, LM_D_EXPERTS, LM_T_MOE }

static const lm_tensor_spec layer_tensors[] = {
    LAYER_TENSORS,
    { NULL, 0, 0, 0, 0, 0 },
};

static const lm_tensor_spec qwen3_layer_tensors[] = {
    LAYER_TENSORS,
    { "attn_q_norm.weight", L(q_norm), LM_D_HD, LM_D_1, LM_D_1, LM_T_F32 },
    { "attn_k_norm.weight", L(k_norm), LM_D_HD, LM_D_1, LM_D_1, LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

/* A sliding window on every layer where attention.sliding_window gives one. */
static int read_swa(lm_loader *ld, lm_hparams *hp)
{
    int rc = lm_load_u32(ld, "attention.sliding_window", &hp->swa_window, 0, false);
    hp->swa_pattern = hp->swa_window > 0 ? 1 : 0;
    return rc;
}

static int llama_hparams(lm_loader *ld, lm_hparams *hp)
{
    hp->rope_mode = RT_ROPE_ADJACENT;
    return read_swa(ld, hp);
}

static int qwen2_hparams(lm_loader *ld, lm_hparams *hp)
{
    hp->rope_mode = RT_ROPE_NEOX;
    hp->has_qkv_bias = true;
    return read_swa(ld, hp);
}

static int qwen3_hparams(lm_loader *ld, lm_hparams *hp)
{
    (void)ld;
    hp->rope_mode = RT_ROPE_NEOX;
    return LM_OK;
}

/* qwen3moe: experts required, each expert_feed_forward_length wide (else the dense width over those used) */
static int qwen3moe_hparams(lm_loader *ld, lm_hparams *hp)
{
    hp->rope_mode = RT_ROPE_NEOX;
    if (hp->n_expert <= 0 || hp->n_expert_used <= 0)
        return lm_load_fail(ld, LM_ERR_FORMAT, "qwen3moe.expert_count and .expert_used_count must be given");
    return lm_load_u32(ld, "expert_feed_forward_length", &hp->expert_ffn_dim, hp->ffn_dim / hp->n_expert_used, false);
}

static int load_layer(lm_loader *ld, int l, void *layer)
{
    return lm_load_qkv(ld, l, &((lm_llama_layer *)layer)->a, lm_loader_hparams(ld)->has_qkv_bias);
}

void lm_llama_layer_forward(const lm_fwd *f, int l)
{
    const lm_hparams *hp = f->hp;
    const lm_llama_layer *L = lm_fwd_layer(f, l);
    rt_seq *seq = f->seq;
    int64_t n = f->n, dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim;

    /* attention: the three projections with the norm folded in (qwen3: Q and K then normed per head);
     * Q and K rotated, K and V written to the cache rows the block tables give; attention; x += wo · att */
    lm_fwd_qkv(f, &L->attn_norm, &L->a);
    if (L->q_norm.buf)
        lm_fwd_qk_norm(f, &L->q_norm, &L->k_norm);
    rt_rope_desc rope = lm_fwd_rope(f, hp->rope_base);
    rt_attn_desc attn = lm_fwd_attn(f);
    attn.window = lm_layer_slides(hp, l) ? hp->swa_window : 0;
    lm_fwd_attention(f, l, &rope, &attn);
    rt_op_matmul_acc(seq, f->x, f->att, lm_w(&L->a.wo), L->a.wo.type, (rt_ref){ 0 }, n, dim, q_dim);

    /* feed-forward: the norm, both projections and the SwiGLU in one dispatch; x += w_down · hb (or the
     * experts' sum) */
    if (hp->n_expert > 0) {
        lm_fwd_moe(f, &L->ffn_norm, &L->gate_inp, &L->gate_exps, &L->up_exps, &L->down_exps);
        return;
    }
    lm_fwd_ffn_gated(f, &L->ffn_norm, &L->w_gate, &L->w_up, RT_GATE_SILU);
    rt_op_matmul_acc(seq, f->x, f->hb, lm_w(&L->w_down), L->w_down.type, (rt_ref){ 0 }, n, dim, hp->ffn_dim);
}

const lm_arch lm_arch_llama = {
    .name = "llama", .layer_size = sizeof(lm_llama_layer), .tensors = model_tensors, .layer_tensors = layer_tensors,
    .hparams = llama_hparams, .load_layer = load_layer, .layer = lm_llama_layer_forward,
};

const lm_arch lm_arch_qwen2 = {
    .name = "qwen2", .layer_size = sizeof(lm_llama_layer), .tensors = model_tensors, .layer_tensors = layer_tensors,
    .hparams = qwen2_hparams, .load_layer = load_layer, .layer = lm_llama_layer_forward,
};

const lm_arch lm_arch_qwen3 = {
    .name = "qwen3", .layer_size = sizeof(lm_llama_layer), .tensors = model_tensors,
    .layer_tensors = qwen3_layer_tensors, .hparams = qwen3_hparams, .load_layer = load_layer, .layer = lm_llama_layer_forward,
};

const lm_arch lm_arch_qwen3moe = {
    .name = "qwen3moe", .layer_size = sizeof(lm_llama_layer), .tensors = model_tensors,
    .layer_tensors = qwen3_layer_tensors, .hparams = qwen3moe_hparams, .load_layer = load_layer, .layer = lm_llama_layer_forward,
};
