/* arch_phi3.c: Phi-3 and Phi-4, as llama.cpp reads their GGUF files: a llama layer with neox RoPE whose
 * Q, K, V projections come as one matrix (attn_qkv, rows Q | K | V) and whose gate and up projections
 * come as one (ffn_up, rows gate | up). Long-context models carry two sets of RoPE frequency factors:
 * the long ones serve a context longer than the original one (rope.scaling.original_context_length),
 * the short ones any other, for every position (llama.cpp chooses once per context, not per position,
 * and by the context rounded up to a multiple of 256);
 * rope.scaling.attn_factor scales the rotations. The sliding window the files name is not used (as in
 * llama.cpp). */
#include <stddef.h>
#include <stdio.h>

#include "arch.h"

#define G(field) offsetof(lm_model, g.field)
#define L(field) offsetof(lm_llama_layer, field)

static const lm_tensor_spec model_tensors[] = {
    { "token_embd.weight", G(tok_embd), LM_D_DIM, LM_D_VOCAB, LM_D_1, 0 },
    { "output_norm.weight", G(out_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "output.weight", G(output), LM_D_DIM, LM_D_VOCAB, LM_D_1, LM_T_OPTIONAL },
    { "rope_freqs.weight", G(rope_freqs), LM_D_ROT2, LM_D_1, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { "rope_factors_long.weight", G(rope_long), LM_D_ROT2, LM_D_1, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { "rope_factors_short.weight", G(rope_short), LM_D_ROT2, LM_D_1, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

static const lm_tensor_spec layer_tensors[] = {
    { "attn_norm.weight", L(attn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "attn_output.weight", L(a.wo), LM_D_Q, LM_D_DIM, LM_D_1, 0 },
    { "ffn_norm.weight", L(ffn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "ffn_down.weight", L(w_down), LM_D_FFN, LM_D_DIM, LM_D_1, 0 },
    { NULL, 0, 0, 0, 0, 0 },
};

static int hparams(lm_loader *ld, lm_hparams *hp)
{
    (void)ld;
    hp->rope_mode = RT_ROPE_NEOX;
    return LM_OK;
}

/* The fused matrices; Q, K and V apart where a file has them so. */
static int load_layer(lm_loader *ld, int l, void *layer)
{
    lm_llama_layer *L = layer;
    const lm_hparams *hp = lm_loader_hparams(ld);
    int64_t qkv = (hp->n_heads + 2 * (int64_t)hp->n_kv_heads) * hp->head_dim;
    char n[64];
    snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", l);
    int rc;
    if (lm_gguf_find_tensor(lm_loader_gguf(ld), n) >= 0) {
        if ((rc = lm_load_tensor(ld, &L->a.wqkv, n, hp->dim, qkv, true, false)))
            return rc;
        snprintf(n, sizeof n, "blk.%d.attn_qkv.bias", l);
        if ((rc = lm_load_tensor(ld, &L->a.bqkv, n, qkv, 1, false, true)))
            return rc;
    } else if ((rc = lm_load_qkv(ld, l, &L->a, false))) {
        return rc;
    }
    snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l);
    return lm_load_halves(ld, &L->w_gate, &L->w_up, n, hp->dim, hp->ffn_dim);
}

static void layer(const lm_fwd *f, int l)
{
    const lm_hparams *hp = f->hp;
    const lm_globals *g = &f->m->g;
    const lm_llama_layer *L = lm_fwd_layer(f, l);
    int64_t n = f->n, dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim;

    lm_fwd_qkv(f, &L->attn_norm, &L->a);
    rt_rope_desc rope = lm_fwd_rope(f, hp->rope_base);
    if (!g->rope_freqs.buf) {
        /* by the context rounded up to 256 positions, as llama.cpp sizes its contexts */
        int64_t n_ctx = (f->max_keys + 255) / 256 * 256;
        const lm_weight *factors = n_ctx > hp->rope_n_ctx_orig ? &g->rope_long : &g->rope_short;
        rope.freq_factors = lm_w(factors);
    }
    rt_attn_desc attn = lm_fwd_attn(f);
    lm_fwd_attention(f, l, &rope, &attn);
    rt_op_matmul_acc(f->seq, f->x, f->att, lm_w(&L->a.wo), L->a.wo.type, (rt_ref){ 0 }, n, dim, q_dim);

    lm_fwd_ffn_gated(f, &L->ffn_norm, &L->w_gate, &L->w_up, RT_GATE_SILU);
    rt_op_matmul_acc(f->seq, f->x, f->hb, lm_w(&L->w_down), L->w_down.type, (rt_ref){ 0 }, n, dim, hp->ffn_dim);
}

const lm_arch lm_arch_phi3 = {
    .name = "phi3", .layer_size = sizeof(lm_llama_layer), .tensors = model_tensors, .layer_tensors = layer_tensors,
    .hparams = hparams, .load_layer = load_layer, .layer = layer,
};
