/* model_internal.h: the model's private structures, shared by models/model*.c and session.c. */
#ifndef VKLLM_MODEL_INTERNAL_H
#define VKLLM_MODEL_INTERNAL_H

#include "lm_internal.h"

/* One weight tensor on the device. A matrix is [ne1][ne0] (ne0 = input features, contiguous). */
typedef struct lm_weight {
    rt_buffer *buf;   /* NULL when absent (optional tensors) */
    rt_dtype type;
    int64_t ne0, ne1;
    int64_t ne2;      /* experts: ne2 matrices of [ne1][ne0], `stride` bytes apart (rt_expert_stride); else 1 */
    size_t stride;
} lm_weight;

/* A layer's attention projections: wq, wk, wv (and their biases) side by side in one matrix
 * [(n_heads + 2 n_kv) hd][dim] when the three have one type, one product instead of three (then wq ..
 * bv are absent); else apart. Biases are optional (qwen2 has them). */
typedef struct lm_attn_w {
    lm_weight wqkv, bqkv;
    lm_weight wq, wk, wv;           /* [n_heads*hd][dim], [n_kv*hd][dim], [n_kv*hd][dim] */
    lm_weight bq, bk, bv;           /* f32 */
    lm_weight wo;                   /* [dim][n_heads*hd] */
} lm_attn_w;

/* The llama family's layer (llama, qwen2, qwen3, their expert variants; also what a llama2.c checkpoint
 * loads into). */
typedef struct lm_llama_layer {
    lm_weight attn_norm;            /* [dim] f32 */
    lm_attn_w a;
    lm_weight q_norm, k_norm;       /* [head_dim] f32, qwen3: RMSNorm of each head of Q and K */
    lm_weight ffn_norm;             /* [dim] f32 */
    lm_weight w_gate, w_up, w_down; /* [ffn][dim], [ffn][dim], [dim][ffn] */
    /* with experts (Mixtral) instead of w_gate .. w_down: the router [n_expert][dim] and the experts'
     * projections, n_expert matrices each */
    lm_weight gate_inp, gate_exps, up_exps, down_exps;
} lm_llama_layer;

struct lm_arch;

/* The model-wide tensors, by role (a family's table says which it has). Only lm_weight members: the
 * model frees them as an array. */
typedef struct lm_globals {
    lm_weight tok_embd;             /* [n_vocab][dim] */
    lm_weight tok_embd_norm, tok_embd_norm_b; /* f32 [dim]: a norm of the embeddings (BERT) */
    lm_weight pos_embd;             /* [n_ctx_train][dim]: absolute positions (BERT) */
    lm_weight tok_types;            /* [n_types][dim]: token types (BERT) */
    lm_weight out_norm, out_norm_b; /* f32 [dim] */
    lm_weight output;               /* [n_vocab][dim]; the same buffer as tok_embd when tied */
    lm_weight rope_freqs;           /* f32 [n_rot/2], optional: RoPE frequency factors */
    lm_weight rope_long, rope_short;/* f32 [n_rot/2]: Phi-3's factors beyond / within the original context */
} lm_globals;

struct lm_model {
    rt_ctx *ctx;
    lm_hparams hp;
    lm_vocab *vocab;
    const struct lm_arch *arch;
    lm_globals g;
    void *layers;                   /* [n_layers] of the family's layer struct: only lm_weight members */
    uint64_t device_bytes;
    int n_sessions;
    lm_gguf *gguf;                  /* the file, kept for its metadata; NULL for llama2.c checkpoints */
};

/* Uploads host data as a device weight (data of `type`, or f32 converted from f16/bf16 when to_f32). */
int lm_weight_upload(lm_model *m, lm_weight *w, const void *data, int ggml_type, int64_t ne0, int64_t ne1,
                     bool to_f32, char *err, size_t errlen);
/* Uploads the n_expert matrices [ne1][ne0] of a 3-D tensor (one after another in data) as one weight, each
 * where rt_op_matmul_id reads it. */
int lm_weight_upload_experts(lm_model *m, lm_weight *w, const void *data, int ggml_type, int64_t ne0, int64_t ne1,
                             int64_t n_expert, char *err, size_t errlen);
/* Checks hyper-parameters for consistency and sane ranges. */
int lm_hparams_check(const lm_hparams *hp, char *err, size_t errlen);

#endif
