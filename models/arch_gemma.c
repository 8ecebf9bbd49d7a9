/* arch_gemma.c: Gemma 2 and Gemma 3, as llama.cpp reads their GGUF files. A layer:
 *     x += post_attention_norm(wo · attention(rope(q), cache(rope(k)), cache(v)))
 *     x += post_ffw_norm(w_down · (gelu(w_gate · norm(x)) * (w_up · norm(x))))
 * with q, k, v = wq · norm(x) ... (Gemma 3: q and k through an RMSNorm per head first), neox RoPE, the
 * embeddings scaled by sqrt(dim), the output tied to them. Sliding-window layers alternate with global
 * ones: Gemma 2 every other layer from the first, Gemma 3 five of every six (the local ones with their
 * own RoPE base, unscaled). Gemma 2 soft-caps the attention scores (50) and the logits (30). The files
 * hold the norm weights with Gemma's +1 already added: a plain RMSNorm here. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "arch.h"

typedef struct gemma_layer {
    lm_weight attn_norm;
    lm_attn_w a;
    lm_weight q_norm, k_norm;       /* [head_dim] f32, Gemma 3 */
    lm_weight post_attn_norm;       /* [dim] f32 */
    lm_weight ffn_norm;
    lm_weight w_gate, w_up, w_down;
    lm_weight post_ffw_norm;        /* [dim] f32 */
} gemma_layer;

#define G(field) offsetof(lm_model, g.field)
#define L(field) offsetof(gemma_layer, field)

/* Gemma 2's head is always the embedding (llama.cpp never loads an output matrix for it). */
static const lm_tensor_spec gemma2_tensors[] = {
    { "token_embd.weight", G(tok_embd), LM_D_DIM, LM_D_VOCAB, LM_D_1, 0 },
    { "output_norm.weight", G(out_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

static const lm_tensor_spec gemma3_tensors[] = {
    { "token_embd.weight", G(tok_embd), LM_D_DIM, LM_D_VOCAB, LM_D_1, 0 },
    { "output_norm.weight", G(out_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "output.weight", G(output), LM_D_DIM, LM_D_VOCAB, LM_D_1, LM_T_OPTIONAL },
    { NULL, 0, 0, 0, 0, 0 },
};

#define LAYER_COMMON                                                                     \
    { "attn_norm.weight", L(attn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },            \
    { "attn_output.weight", L(a.wo), LM_D_Q, LM_D_DIM, LM_D_1, 0 },                      \
    { "post_attention_norm.weight", L(post_attn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 }, \
    { "ffn_norm.weight", L(ffn_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },              \
    { "ffn_gate.weight", L(w_gate), LM_D_DIM, LM_D_FFN, LM_D_1, 0 },                     \
    { "ffn_up.weight", L(w_up), LM_D_DIM, LM_D_FFN, LM_D_1, 0 },                         \
    { "ffn_down.weight", L(w_down), LM_D_FFN, LM_D_DIM, LM_D_1, 0 },                     \
    { "post_ffw_norm.weight", L(post_ffw_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 }

static const lm_tensor_spec gemma2_layer_tensors[] = {
    LAYER_COMMON,
    { NULL, 0, 0, 0, 0, 0 },
};

static const lm_tensor_spec gemma3_layer_tensors[] = {
    LAYER_COMMON,
    { "attn_q_norm.weight", L(q_norm), LM_D_HD, LM_D_1, LM_D_1, LM_T_F32 },
    { "attn_k_norm.weight", L(k_norm), LM_D_HD, LM_D_1, LM_D_1, LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

/* What both read. The 27B models scale queries by 1/sqrt(dim / heads), the others by 1/sqrt(head_dim):
 * llama.cpp knows them by their layer count (big_layers), as the files do not say. */
static int common(lm_loader *ld, lm_hparams *hp, int pattern, int big_layers)
{
    hp->rope_mode = RT_ROPE_NEOX;
    hp->embd_scale = sqrtf((float)hp->dim);
    float q_pre = hp->n_layers == big_layers ? (float)hp->dim / (float)hp->n_heads : (float)hp->head_dim;
    hp->attn_scale = 1.0f / sqrtf(q_pre);
    /* a pattern written as an array (per layer) is ignored, as llama.cpp does */
    int rc = lm_load_u32(ld, "attention.sliding_window_pattern", &hp->swa_pattern, pattern, false);
    if (rc == LM_ERR_TYPE) {
        hp->swa_pattern = pattern;
        rc = LM_OK;
    }
    return rc;
}

static int gemma2_hparams(lm_loader *ld, lm_hparams *hp)
{
    int rc;
    if ((rc = common(ld, hp, 2, 46)) ||
        (rc = lm_load_u32(ld, "attention.sliding_window", &hp->swa_window, 4096, false)) ||
        (rc = lm_load_f32(ld, "attn_logit_softcapping", &hp->attn_softcap, 50.0f)) ||
        (rc = lm_load_f32(ld, "final_logit_softcapping", &hp->final_softcap, 30.0f)) ||
        (rc = lm_load_f32(ld, "rope.freq_base_swa", &hp->rope_base_swa, hp->rope_base)))
        return rc;
    hp->tied_output = true;
    return LM_OK;
}

/* Gemma 3 slides only when the file gives a window. */
static int gemma3_hparams(lm_loader *ld, lm_hparams *hp)
{
    int rc;
    if ((rc = common(ld, hp, 6, 62)) || (rc = lm_load_u32(ld, "attention.sliding_window", &hp->swa_window, 0, false)) ||
        (rc = lm_load_f32(ld, "final_logit_softcapping", &hp->final_softcap, 0.0f)) ||
        (rc = lm_load_f32(ld, "rope.freq_base_swa", &hp->rope_base_swa, 10000.0f)))
        return rc;
    if (hp->swa_window <= 0)
        hp->swa_pattern = 0;
    return LM_OK;
}

static int load_layer(lm_loader *ld, int l, void *layer)
{
    return lm_load_qkv(ld, l, &((gemma_layer *)layer)->a, false);
}

static void layer(const lm_fwd *f, int l)
{
    const lm_hparams *hp = f->hp;
    const gemma_layer *L = lm_fwd_layer(f, l);
    int64_t n = f->n, dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim;
    bool slides = lm_layer_slides(hp, l), gemma3 = L->q_norm.buf != NULL;

    lm_fwd_qkv(f, &L->attn_norm, &L->a);
    if (gemma3)
        lm_fwd_qk_norm(f, &L->q_norm, &L->k_norm);
    rt_rope_desc rope = lm_fwd_rope(f, slides ? hp->rope_base_swa : hp->rope_base);
    if (slides && gemma3) { /* Gemma 3's local layers: their own base, no context scaling */
        rope.freq_scale = 1.0f;
        rope.ext_factor = 0.0f;
    }
    rt_attn_desc attn = lm_fwd_attn(f);
    attn.softcap = hp->attn_softcap;
    attn.window = slides ? hp->swa_window : 0;
    lm_fwd_attention(f, l, &rope, &attn);
    rt_op_matmul(f->seq, f->t, f->att, lm_w(&L->a.wo), L->a.wo.type, (rt_ref){ 0 }, n, dim, q_dim);
    lm_fwd_add_normed(f, &L->post_attn_norm);

    lm_fwd_ffn_gated(f, &L->ffn_norm, &L->w_gate, &L->w_up, RT_GATE_GELU);
    rt_op_matmul(f->seq, f->t, f->hb, lm_w(&L->w_down), L->w_down.type, (rt_ref){ 0 }, n, dim, hp->ffn_dim);
    lm_fwd_add_normed(f, &L->post_ffw_norm);
}

static void logits(const lm_fwd *f, rt_ref y, int64_t rows)
{
    if (f->hp->final_softcap > 0)
        rt_op_softcap(f->seq, y, y, rows * f->hp->n_vocab, f->hp->final_softcap);
}

const lm_arch lm_arch_gemma2 = {
    .name = "gemma2", .layer_size = sizeof(gemma_layer), .tensors = gemma2_tensors,
    .layer_tensors = gemma2_layer_tensors, .hparams = gemma2_hparams, .load_layer = load_layer, .layer = layer,
    .logits = logits,
};

const lm_arch lm_arch_gemma3 = {
    .name = "gemma3", .layer_size = sizeof(gemma_layer), .tensors = gemma3_tensors,
    .layer_tensors = gemma3_layer_tensors, .hparams = gemma3_hparams, .load_layer = load_layer, .layer = layer,
    .logits = logits,
};
