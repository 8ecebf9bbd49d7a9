/* arch.h: what an architecture family gives the shared loader and context, and what they give it.
 *
 * A family (models/arch_<family>.c) is one lm_arch: the GGUF architecture names it reads, its
 * hyper-parameters beyond the common ones, its tensor tables (names, shapes, which are optional) and
 * its forward pass recorded from runtime ops. The loader (model.c) and the context (ctx.c) know no
 * family by name: they look the file's general.architecture up in lm_arch_table (arch.c), load the
 * tables, and call the family's hooks. Adding a family is one file and a line in that table. */
#ifndef VKLLM_ARCH_H
#define VKLLM_ARCH_H

#include <stddef.h>

#include "model_internal.h"

/* ---------------------------------------------------------------- tensor tables */

/* The dimensions a table's shapes are written in, from the hyper-parameters. */
enum lm_dim {
    LM_D_1 = 0,   /* 1: a vector's second dimension */
    LM_D_DIM,     /* embedding length */
    LM_D_Q,       /* n_heads * head_dim */
    LM_D_KV,      /* n_kv_heads * head_dim */
    LM_D_QKV,     /* Q + 2 KV: the three projections as one matrix */
    LM_D_HD,      /* head_dim */
    LM_D_FFN,     /* feed-forward length */
    LM_D_FFN2,    /* 2 * FFN: gate and up as one matrix */
    LM_D_VOCAB,
    LM_D_ROT2,    /* n_rot / 2: RoPE frequency factors */
    LM_D_EXPERTS, /* experts of a mixture-of-experts layer */
    LM_D_EFFN,    /* an expert's feed-forward length */
    LM_D_CTX,     /* training context: absolute position embeddings */
    LM_D_TYPES,   /* token types (BERT) */
};

enum {
    LM_T_OPTIONAL = 1, /* absent: the lm_weight stays empty */
    LM_T_F32 = 2,      /* decoded to f32 on upload (norms, biases: the ops read them as f32) */
    LM_T_DENSE = 4,    /* only in a model without experts (the feed-forward they replace) */
    LM_T_MOE = 8,      /* only in a model with experts */
};

/* One tensor: "blk.%d." + name for a layer table, name alone for the model's; at `offset` (an
 * lm_weight) in the layer's struct or in lm_model. Shapes in GGUF order: ne0 the contiguous one; ne2
 * not LM_D_1 for a 3-D tensor (the experts of a layer). */
typedef struct lm_tensor_spec {
    const char *name;
    size_t offset;
    unsigned char ne0, ne1, ne2, flags;
} lm_tensor_spec;

/* ---------------------------------------------------------------- loading */

typedef struct lm_loader lm_loader;

/* "<arch>.<key>" as u32, f32, bool or a string, with a default when absent (required: absent is an
 * error); a value of the wrong type is an error. */
int lm_load_u32(lm_loader *ld, const char *key, int32_t *out, int32_t def, bool required);
int lm_load_f32(lm_loader *ld, const char *key, float *out, float def);
int lm_load_bool(lm_loader *ld, const char *key, bool *out, bool def);
/* A per-layer array "<arch>.<key>" of u32 or i32 into out[n_layers]; absent: *found false. */
int lm_load_u32_array(lm_loader *ld, const char *key, int32_t *out, int n, bool *found);
/* The loader's error: printf into its message, returns status. */
int lm_load_fail(lm_loader *ld, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Loads one tensor of [ne1][ne0] (ne1 = 1: a vector): LM_OK, also when absent and !required. */
int lm_load_tensor(lm_loader *ld, lm_weight *w, const char *name, int64_t ne0, int64_t ne1, bool required, bool to_f32);
/* A matrix of the file whose rows [row0, row0 + rows) are loaded as a weight of their own (the halves of
 * a fused gate-up matrix); w0 and w1 get rows [0, rows) and [rows, 2 rows) of tensor `name`
 * [2 rows][ne0]. */
int lm_load_halves(lm_loader *ld, lm_weight *w0, lm_weight *w1, const char *name, int64_t ne0, int64_t rows);
/* A layer's Q, K, V projections (and their biases: required, optional or absent) as one matrix when the
 * three have one type, else apart. */
int lm_load_qkv(lm_loader *ld, int layer, lm_attn_w *a, bool bias_required);
const lm_gguf *lm_loader_gguf(const lm_loader *ld);
const lm_hparams *lm_loader_hparams(const lm_loader *ld);

/* ---------------------------------------------------------------- the forward pass */

/* What a family's forward pass records into: the pass's rows and the context's buffers. */
typedef struct lm_fwd {
    rt_seq *seq;
    const lm_model *m;
    const lm_hparams *hp;
    int64_t n;                  /* rows in the pass */
    rt_ref x;                   /* [n][dim] the residual stream */
    rt_ref qkv;                 /* [n][Q + 2 KV] the projections */
    rt_ref q;                   /* [n][Q] the queries rotated */
    rt_ref att;                 /* [n][Q] attention output */
    rt_ref hb;                  /* [n][ffn] the feed-forward's hidden activations */
    rt_ref t;                   /* [n][dim] scratch (a sub-layer's output before its post-norm) */
    /* mixture of experts (models with experts): router logits [n][n_expert], the chosen experts int32
     * [n][used] and their weights [n][used], the experts' hidden activations [n][used][expert ffn] and
     * outputs [n][used][dim] */
    rt_ref moe_logits, moe_ids, moe_w, moe_h, moe_o;
    rt_ref ids, pos, slots;     /* int32 [n]: token ids, positions, the cache row each row's K and V go to */
    rt_ref kend;                /* int32 [n]: each row's last key (its position; an encoder's: its
                                 * sequence's last in the pass, attention in both directions) */
    rt_ref pages;               /* the block tables (rt_attn_desc.pages) */
    rt_buffer *const *kc, *const *vc; /* per layer: the caches */
    int64_t cache_rows;
    rt_dtype cache_type;
    int block_size;
    int64_t max_keys;
} lm_fwd;

/* Whether layer l attends through the sliding window (hp->swa_window, hp->swa_pattern). */
bool lm_layer_slides(const lm_hparams *hp, int l);
/* The weights of a family's layer l (its struct, from the layer table). */
const void *lm_fwd_layer(const lm_fwd *f, int l);
static inline rt_ref lm_w(const lm_weight *w) { return w->buf ? rt_at(w->buf, 0) : (rt_ref){ 0 }; }
/* RoPE as the hyper-parameters say, with theta base `base` (and the model's frequency factors). */
rt_rope_desc lm_fwd_rope(const lm_fwd *f, float base);
/* Attention over the context's paged cache, scale 1/sqrt(head_dim). */
rt_attn_desc lm_fwd_attn(const lm_fwd *f);
/* The embeddings of the pass's tokens into x. */
void lm_fwd_embed(const lm_fwd *f);
/* qkv = norm(x) · [wq; wk; wv] (+ biases): one product or three into its columns. */
void lm_fwd_qkv(const lm_fwd *f, const lm_weight *norm, const lm_attn_w *a);
/* q = rope(Q part), cache[slot] = rope(K part), V part; then att = attention(q, cache). */
void lm_fwd_attention(const lm_fwd *f, int l, const rt_rope_desc *rope, const rt_attn_desc *attn);

/* The per-head RMSNorm of the Q and K parts of qkv, in place (Qwen3, Gemma 3: before RoPE). */
void lm_fwd_qk_norm(const lm_fwd *f, const lm_weight *q_norm, const lm_weight *k_norm);
/* hb = act(gate · norm(x)) * (up · norm(x)), act RT_GATE_SILU or RT_GATE_GELU: one dispatch. */
void lm_fwd_ffn_gated(const lm_fwd *f, const lm_weight *norm, const lm_weight *gate, const lm_weight *up, int act);
/* The experts' feed-forward: x += sum over the chosen experts e of weight_e * down_e(silu(gate_e · norm(x))
 * * up_e · norm(x)), the experts of largest router logit (gate_inp · norm(x)), their softmax weights
 * renormalised over the chosen ones (Mixtral, Qwen3-MoE). Six dispatches; only the chosen experts'
 * weights are read. */
void lm_fwd_moe(const lm_fwd *f, const lm_weight *norm, const lm_weight *gate_inp, const lm_weight *gate_exps,
                const lm_weight *up_exps, const lm_weight *down_exps);
/* x += norm(t) (a sub-layer's output through its post-norm, Gemma). */
void lm_fwd_add_normed(const lm_fwd *f, const lm_weight *post_norm);

/* ---------------------------------------------------------------- families */

typedef struct lm_arch {
    const char *name;           /* general.architecture */
    size_t layer_size;          /* bytes of its layer struct */
    const lm_tensor_spec *tensors, *layer_tensors; /* ended by an entry of name NULL */
    /* After the common hyper-parameters are read: the family's own keys and defaults. */
    int (*hparams)(lm_loader *ld, lm_hparams *hp);
    /* Optional: loads what the tables cannot say (fused matrices), before the layer table. */
    int (*load_layer)(lm_loader *ld, int l, void *layer);
    /* Records layer l of the pass. */
    void (*layer)(const lm_fwd *f, int l);
    /* Optional: what happens to the logits (f32 [rows][n_vocab]) after the output matrix. */
    void (*logits)(const lm_fwd *f, rt_ref logits, int64_t rows);
    /* Optional: the embedding step (default lm_fwd_embed). */
    void (*embed)(const lm_fwd *f);
    bool encoder;               /* attention in both directions; embeds, does not generate */
} lm_arch;

/* The llama family's layer (arch_llama.c), which Phi-3 runs too. */
void lm_llama_layer_forward(const lm_fwd *f, int l);

/* The family of a GGUF architecture name, NULL when none. */
const lm_arch *lm_arch_find(const char *name);

extern const lm_arch lm_arch_llama, lm_arch_qwen2, lm_arch_qwen3, lm_arch_qwen3moe, lm_arch_gemma2, lm_arch_gemma3,
    lm_arch_phi3, lm_arch_bert, lm_arch_nomic_bert;

#endif
