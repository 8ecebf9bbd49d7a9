/* arch_bert.c: BERT-style encoders, as llama.cpp reads their GGUF files: bert (BGE, MiniLM, ...) and
 * nomic-bert. Attention runs in both directions over the sequence, and every sub-layer is followed by a
 * LayerNorm of the residual sum (post-norm):
 *     x = LN(tok_embd[id] + token_types[0] + pos_embd[pos])        nomic-bert: no pos_embd
 *     x = LN(x + wo · attention(wq x + bq, wk x + bk, wv x + bv) + bo)   nomic-bert: RoPE on q, k
 *     x = LN(x + w_down · gelu(w_up · x + b_up) + b_down)           nomic-bert: silu(w_gate x) * w_up x
 * The output is x itself, pooled by embed.c as the file's pooling_type says. Token types are all 0,
 * as llama.cpp has them. */
#include <stddef.h>
#include <stdio.h>

#include "arch.h"

typedef struct bert_layer {
    lm_attn_w a;
    lm_weight bo;                        /* [dim] f32, optional */
    lm_weight attn_out_norm, attn_out_norm_b;
    lm_weight w_up, b_up, w_gate, w_down, b_down;
    lm_weight out_norm, out_norm_b;      /* the layer's last LayerNorm */
} bert_layer;

#define G(field) offsetof(lm_model, g.field)
#define L(field) offsetof(bert_layer, field)

static const lm_tensor_spec bert_tensors[] = {
    { "token_embd.weight", G(tok_embd), LM_D_DIM, LM_D_VOCAB, LM_D_1, 0 },
    { "token_types.weight", G(tok_types), LM_D_DIM, LM_D_TYPES, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { "position_embd.weight", G(pos_embd), LM_D_DIM, LM_D_CTX, LM_D_1, 0 },
    { "token_embd_norm.weight", G(tok_embd_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "token_embd_norm.bias", G(tok_embd_norm_b), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

static const lm_tensor_spec nomic_tensors[] = {
    { "token_embd.weight", G(tok_embd), LM_D_DIM, LM_D_VOCAB, LM_D_1, 0 },
    { "token_types.weight", G(tok_types), LM_D_DIM, LM_D_TYPES, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { "token_embd_norm.weight", G(tok_embd_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { "token_embd_norm.bias", G(tok_embd_norm_b), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

#define LAYER_NORMS                                                                                   \
    { "attn_output.weight", L(a.wo), LM_D_Q, LM_D_DIM, LM_D_1, 0 },                                   \
    { "attn_output.bias", L(bo), LM_D_DIM, LM_D_1, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },                \
    { "attn_output_norm.weight", L(attn_out_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },              \
    { "attn_output_norm.bias", L(attn_out_norm_b), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },              \
    { "layer_output_norm.weight", L(out_norm), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 },                  \
    { "layer_output_norm.bias", L(out_norm_b), LM_D_DIM, LM_D_1, LM_D_1, LM_T_F32 }

static const lm_tensor_spec bert_layer_tensors[] = {
    LAYER_NORMS,
    { "ffn_up.weight", L(w_up), LM_D_DIM, LM_D_FFN, LM_D_1, 0 },
    { "ffn_up.bias", L(b_up), LM_D_FFN, LM_D_1, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { "ffn_down.weight", L(w_down), LM_D_FFN, LM_D_DIM, LM_D_1, 0 },
    { "ffn_down.bias", L(b_down), LM_D_DIM, LM_D_1, LM_D_1, LM_T_OPTIONAL | LM_T_F32 },
    { NULL, 0, 0, 0, 0, 0 },
};

static const lm_tensor_spec nomic_layer_tensors[] = {
    LAYER_NORMS,
    { "ffn_up.weight", L(w_up), LM_D_DIM, LM_D_FFN, LM_D_1, 0 },
    { "ffn_gate.weight", L(w_gate), LM_D_DIM, LM_D_FFN, LM_D_1, 0 },
    { "ffn_down.weight", L(w_down), LM_D_FFN, LM_D_DIM, LM_D_1, 0 },
    { NULL, 0, 0, 0, 0, 0 },
};

/* LayerNorm's epsilon, the token types (tokenizer.ggml.token_type_count, at least the one used) */
static int hparams(lm_loader *ld, lm_hparams *hp)
{
    hp->rope_mode = RT_ROPE_NEOX;
    uint32_t types;
    int rc = lm_gguf_get_u32(lm_loader_gguf(ld), "tokenizer.ggml.token_type_count", &types);
    hp->n_token_types = rc == LM_OK && types > 0 && types < 1024 ? (int32_t)types : 2;
    return lm_load_f32(ld, "attention.layer_norm_epsilon", &hp->norm_eps, 1e-12f);
}

static int load_layer(lm_loader *ld, int l, void *layer)
{
    bert_layer *L = layer;
    const lm_hparams *hp = lm_loader_hparams(ld);
    int64_t qkv = (hp->n_heads + 2 * (int64_t)hp->n_kv_heads) * hp->head_dim;
    char n[64];
    snprintf(n, sizeof n, "blk.%d.attn_qkv.weight", l);
    if (lm_gguf_find_tensor(lm_loader_gguf(ld), n) < 0)
        return lm_load_qkv(ld, l, &L->a, false);
    int rc = lm_load_tensor(ld, &L->a.wqkv, n, hp->dim, qkv, true, false);
    snprintf(n, sizeof n, "blk.%d.attn_qkv.bias", l);
    return rc ? rc : lm_load_tensor(ld, &L->a.bqkv, n, qkv, 1, false, true);
}

static void embed(const lm_fwd *f)
{
    const lm_hparams *hp = f->hp;
    const lm_globals *g = &f->m->g;
    int64_t n = f->n, dim = hp->dim;
    rt_op_get_rows(f->seq, f->x, lm_w(&g->tok_embd), g->tok_embd.type, f->ids, n, hp->n_vocab, dim);
    if (g->pos_embd.buf) {
        rt_op_get_rows(f->seq, f->t, lm_w(&g->pos_embd), g->pos_embd.type, f->pos, n, hp->n_ctx_train, dim);
        rt_op_add(f->seq, f->x, f->x, f->t, n * dim, n * dim);
    }
    if (g->tok_types.buf) /* type 0: its row is the first dim floats */
        rt_op_add(f->seq, f->x, f->x, lm_w(&g->tok_types), n * dim, dim);
    rt_op_layernorm(f->seq, f->x, f->x, lm_w(&g->tok_embd_norm), lm_w(&g->tok_embd_norm_b), n, dim, hp->norm_eps);
}

static void layer(const lm_fwd *f, int l)
{
    const lm_hparams *hp = f->hp;
    const bert_layer *L = lm_fwd_layer(f, l);
    rt_seq *seq = f->seq;
    int64_t n = f->n, dim = hp->dim, q_dim = (int64_t)hp->n_heads * hp->head_dim;
    bool nomic = L->w_gate.buf != NULL;
    static const lm_weight no_norm;

    lm_fwd_qkv(f, &no_norm, &L->a);
    rt_rope_desc rope = lm_fwd_rope(f, hp->rope_base);
    if (!nomic)
        rope.n_rot = 0; /* BERT has no RoPE */
    rt_attn_desc attn = lm_fwd_attn(f);
    lm_fwd_attention(f, l, &rope, &attn);
    rt_op_matmul(seq, f->t, f->att, lm_w(&L->a.wo), L->a.wo.type, lm_w(&L->bo), n, dim, q_dim);
    rt_op_add(seq, f->x, f->x, f->t, n * dim, n * dim);
    rt_op_layernorm(seq, f->x, f->x, lm_w(&L->attn_out_norm), lm_w(&L->attn_out_norm_b), n, dim, hp->norm_eps);

    if (nomic) {
        rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = f->hb, .x = f->x, .w = lm_w(&L->w_gate), .wt = L->w_gate.type,
                                                .m = n, .n = hp->ffn_dim, .k = dim, .w_up = lm_w(&L->w_up),
                                                .w_up_type = L->w_up.type });
    } else {
        rt_op_matmul(seq, f->hb, f->x, lm_w(&L->w_up), L->w_up.type, lm_w(&L->b_up), n, hp->ffn_dim, dim);
        rt_op_gelu(seq, f->hb, f->hb, n * hp->ffn_dim);
    }
    rt_op_matmul(seq, f->t, f->hb, lm_w(&L->w_down), L->w_down.type, lm_w(&L->b_down), n, dim, hp->ffn_dim);
    rt_op_add(seq, f->x, f->x, f->t, n * dim, n * dim);
    rt_op_layernorm(seq, f->x, f->x, lm_w(&L->out_norm), lm_w(&L->out_norm_b), n, dim, hp->norm_eps);
}

const lm_arch lm_arch_bert = {
    .name = "bert", .layer_size = sizeof(bert_layer), .tensors = bert_tensors, .layer_tensors = bert_layer_tensors,
    .hparams = hparams, .load_layer = load_layer, .layer = layer, .embed = embed, .encoder = true,
};

const lm_arch lm_arch_nomic_bert = {
    .name = "nomic-bert", .layer_size = sizeof(bert_layer), .tensors = nomic_tensors,
    .layer_tensors = nomic_layer_tensors, .hparams = hparams, .load_layer = load_layer, .layer = layer,
    .embed = embed, .encoder = true,
};
