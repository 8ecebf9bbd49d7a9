/* arch_phi3.c: Phi-3 and Phi-4, as llama.cpp reads their GGUF files: the llama layer (arch_llama.c) with
 * neox RoPE, its Q, K, V projections one matrix in the file (attn_qkv, rows Q | K | V) and its gate and
 * up projections one (ffn_up, rows gate | up). Long-context models carry two sets of RoPE frequency
 * factors, the long ones for a context longer than rope.scaling.original_context_length, the short ones
 * for any other (lm_fwd_rope chooses); rope.scaling.attn_factor scales the rotations. The sliding window
 * the files name is not used (as in llama.cpp). */
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

const lm_arch lm_arch_phi3 = {
    .name = "phi3", .layer_size = sizeof(lm_llama_layer), .tensors = model_tensors, .layer_tensors = layer_tensors,
    .hparams = hparams, .load_layer = load_layer, .layer = lm_llama_layer_forward,
};
