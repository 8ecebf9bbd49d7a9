/* model_internal.h: the model's private structures, shared by models/model*.c and session.c. */
#ifndef VKLLM_MODEL_INTERNAL_H
#define VKLLM_MODEL_INTERNAL_H

#include "lm_internal.h"

/* One weight tensor on the device. A matrix is [ne1][ne0] (ne0 = input features, contiguous). */
typedef struct lm_weight {
    rt_buffer *buf;   /* NULL when absent (optional tensors) */
    rt_dtype type;
    int64_t ne0, ne1;
} lm_weight;

typedef struct lm_layer {
    lm_weight attn_norm;            /* [dim] f32 */
    lm_weight wq, wk, wv, wo;       /* [n_heads*hd][dim], [n_kv*hd][dim], [n_kv*hd][dim], [dim][n_heads*hd] */
    lm_weight bq, bk, bv;           /* qwen2: f32 biases, else absent */
    lm_weight wqkv, bqkv;           /* wq, wk, wv (and their biases) side by side in one matrix
                                     * [(n_heads + 2 n_kv) hd][dim], when the three have one type: one
                                     * product instead of three (then wq .. bv are absent) */
    lm_weight ffn_norm;             /* [dim] f32 */
    lm_weight w_gate, w_up, w_down; /* [ffn][dim], [ffn][dim], [dim][ffn] */
} lm_layer;

struct lm_model {
    rt_ctx *ctx;
    lm_hparams hp;
    lm_vocab *vocab;
    lm_weight tok_embd;             /* [n_vocab][dim] */
    lm_weight out_norm;             /* [dim] f32 */
    lm_weight output;               /* [n_vocab][dim]; the same buffer as tok_embd when tied */
    lm_weight rope_freqs;           /* [n_rot/2] f32, optional */
    lm_layer *layers;               /* [n_layers] */
    uint64_t device_bytes;
    int n_sessions;
    lm_gguf *gguf;                  /* the file, kept for its metadata; NULL for llama2.c checkpoints */
};

/* Uploads host data as a device weight (data of `type`, or f32 converted from f16/bf16 when to_f32). */
int lm_weight_upload(lm_model *m, lm_weight *w, const void *data, int ggml_type, int64_t ne0, int64_t ne1,
                     bool to_f32, char *err, size_t errlen);
/* Checks hyper-parameters for consistency and sane ranges. */
int lm_hparams_check(const lm_hparams *hp, char *err, size_t errlen);

#endif
