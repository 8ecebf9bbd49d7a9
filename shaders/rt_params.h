/* rt_params.h: every kernel's push-constant block, declared once for C (runtime/rt_ops*.c) and GLSL
 * (the .comp files). Only 32-bit scalars, so C layout and std430 agree; C checks each size.
 *
 * In GLSL a kernel declares `layout(push_constant) uniform PC { rt_pc_X p; };`.
 * Offsets (off_*) are in elements of that tensor's type, from the start of its binding: the runtime
 * binds at an aligned byte offset and passes the rest here; weights (any format, blocks included) are
 * addressed in bytes instead: off_w / off_t and the row stride row_bytes. */
#ifndef VKLLM_RT_PARAMS_H
#define VKLLM_RT_PARAMS_H

#ifdef VULKAN
#define RT_STRUCT(n) struct n
#define RT_END(n)
#define RT_CHECK(n, words)
#else
#include <stdint.h>
typedef uint32_t uint;
#define RT_STRUCT(n) typedef struct n
#define RT_END(n) n
#define RT_CHECK(n, words) _Static_assert(sizeof(n) == 4 * (words), #n " size");
#endif

/* cache element types (rt_dtype, ggml's numbers) */
#define RT_DT_F32 0
#define RT_DT_F16 1
#define RT_DT_BF16 30

/* elementwise ops, shaders/eltwise.comp */
#define RT_ELT_ADD 0
#define RT_ELT_MUL 1
#define RT_ELT_SCALE 2
#define RT_ELT_SWIGLU 3
#define RT_ELT_GELU 4
#define RT_ELT_GEGLU 5   /* gelu(a) * b */
#define RT_ELT_SOFTCAP 6 /* s tanh(a / s) */

RT_STRUCT(rt_pc_eltwise) {
    uint n;       /* elements of y */
    uint nb;      /* b is read at i % nb */
    uint op;      /* RT_ELT_* */
    uint off_y, off_a, off_b;
    float s;      /* scale */
    uint pad;
} RT_END(rt_pc_eltwise);
RT_CHECK(rt_pc_eltwise, 8)

/* RMSNorm and LayerNorm, shaders/norm.comp: one workgroup per group of dim values, groups of them per
 * row; group g of row r at X[r ldx + g dim], Y[r ldy + g dim] */
RT_STRUCT(rt_pc_norm) {
    uint rows, dim;
    uint layer;   /* 0: RMSNorm, 1: LayerNorm */
    uint has_bias;
    uint off_y, off_x, off_w, off_b;
    float eps;
    uint groups;  /* per row */
    uint ldx, ldy;
    uint accumulate; /* 1: Y += norm(X) */
    uint pad[3];
} RT_END(rt_pc_norm);
RT_CHECK(rt_pc_norm, 16)

/* row softmax, shaders/softmax.comp: one workgroup per row */
RT_STRUCT(rt_pc_softmax) {
    uint rows, cols;
    uint off_y, off_x;
    float scale;
    uint pad[3];
} RT_END(rt_pc_softmax);
RT_CHECK(rt_pc_softmax, 8)

/* RoPE in place, shaders/rope.comp: one invocation per rotated pair */
RT_STRUCT(rt_pc_rope) {
    uint rows, n_heads, head_dim, n_rot;
    uint mode;            /* 0 adjacent pairs, 1 neox halves */
    uint off_x, off_pos, off_ff;
    uint has_ff;          /* freq factors bound */
    float base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow;
    float n_ctx_orig;
} RT_END(rt_pc_rope);
RT_CHECK(rt_pc_rope, 16)

/* gather rows of a table, shaders/get_rows.comp */
RT_STRUCT(rt_pc_get_rows) {
    uint rows, dim, n_table;
    uint row_bytes;       /* bytes per table row in the quants binding (see rt_weight_bytes) */
    uint off_y;
    uint off_t;           /* bytes: the first row of this piece in the quants binding */
    uint off_ids;
    uint row0;            /* first table row of this binding (tables split by binding range) */
    uint n_bound;         /* table rows in this binding */
    uint off_s;           /* bytes: the same row in the scales binding (block formats) */
    uint s_row;           /* bytes per row in the scales binding */
    uint pad;
} RT_END(rt_pc_get_rows);
RT_CHECK(rt_pc_get_rows, 12)

/* write rows into a KV cache at positions, shaders/kv_write.comp */
RT_STRUCT(rt_pc_kv_write) {
    uint rows, dim, cap, dtype;
    uint off_c, off_src, off_pos;
    uint pad;
} RT_END(rt_pc_kv_write);
RT_CHECK(rt_pc_kv_write, 8)

/* the projections of a layer's attention into place, shaders/rope_kv.comp: from QKV [rows][ld] (Q at
 * column 0, K at q_dim, V at q_dim + kv_dim) Q rotated into Q [rows][q_dim], K rotated and V copied into
 * the caches [cap][kv_dim] at row pos[r]; the rope fields as rt_pc_rope's */
RT_STRUCT(rt_pc_rope_kv) {
    uint rows, n_heads, n_kv_heads, head_dim, n_rot;
    uint mode, has_ff;
    uint ld;              /* floats per row of QKV */
    uint cap, ctype;      /* cache rows and element type (RT_DT_F32 / RT_DT_F16) */
    uint off_qkv, off_q, off_k, off_v, off_pos, off_ff;
    float base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow;
    float n_ctx_orig;
    uint units;           /* work units per row (rope_kv.comp's two ways count them differently) */
    uint has_slots, off_slot; /* cache rows from slots[] (else the positions) */
    uint pad[2];
} RT_END(rt_pc_rope_kv);
RT_CHECK(rt_pc_rope_kv, 28)

/* argmax per row, shaders/argmax.comp: one workgroup per row */
RT_STRUCT(rt_pc_argmax) {
    uint rows, cols;
    uint off_out, off_x;
} RT_END(rt_pc_argmax);
RT_CHECK(rt_pc_argmax, 4)

/* matrix product Y = X W^T (+ bias), shaders/matmul.comp (GEMM), gemv.comp and gemv_cpu.comp; the
 * variant is the specialization constant FLAGS of these kernels, of these bits: */
#define RT_MM_VEC 1u    /* W decoded 8 values at a time (k % 8 == 0, rows at 16-byte boundaries) */
#define RT_MM_XVEC 2u   /* X rows (and the norm's weights) read as vec4s (16-byte boundaries, k % 4 == 0) */
#define RT_MM_NORM 4u   /* RMSNorm folded in: X rows scaled by 1 / sqrt(mean(x^2) + eps) * gamma (binding 5) */
#define RT_MM_GATE 8u   /* SwiGLU of two W (gate: bindings 2, 4; up: 6, 7): Y = silu(X Wg^T) * (X Wu^T) */
#define RT_MM_GELU 16u  /* with RT_MM_GATE: gelu (tanh form) of the gate instead of silu (GeGLU) */
RT_STRUCT(rt_pc_matmul) {
    uint m, n, k;         /* X [m][k], W [n][k], Y [m][n] */
    uint off_y, off_x;
    uint off_w;           /* bytes */
    uint off_b;
    uint has_bias;
    uint ldy;             /* row stride of Y (elements) */
    uint n0;              /* first output column of this dispatch (W split by binding range) */
    uint accumulate;      /* 1: Y += X W^T (a residual connection), 0: Y = X W^T */
    uint row_bytes;       /* bytes per row of W in the quants binding (see rt_weight_bytes) */
    uint off_s;           /* bytes: W's first row in the scales binding (block formats) */
    uint s_row;           /* bytes per row in the scales binding */
    uint off_w2, off_s2;  /* bytes: the second W (RT_MM_GATE's up) in its two bindings */
    uint off_g;           /* RT_MM_NORM: gamma [k] (elements) */
    float eps;            /* RT_MM_NORM: added to mean(x^2) */
    uint pad[2];
} RT_END(rt_pc_matmul);
RT_CHECK(rt_pc_matmul, 20)

/* causal attention against a KV cache, shaders/attention.comp (GPUs), attention_cpu.comp and
 * attention_rows.comp (CPU drivers), attn_combine.comp; a paged cache through pages (rt_attn_desc) */
RT_STRUCT(rt_pc_attn) {
    uint rows, n_heads, n_kv_heads, head_dim;
    uint cap;
    uint off_o, off_q, off_k, off_v, off_pos;
    float scale;
    uint n_split;         /* key ranges per (row, head): 1, or several when SPLIT (partials to scratch) */
    uint split_keys;      /* keys per range (attention.comp sizes them from the positions instead) */
    uint off_s;           /* scratch: [rows][n_heads][n_split][head_dim + 2] (max, sum, unnormalised out) */
    uint min_keys;        /* attention.comp: keys per range at least (a range is sized from the positions) */
    uint block_shift;     /* paged: log2 of the block size */
    uint off_pg;          /* paged: where the pages binding's data starts */
    float softcap;        /* > 0: scores s (scaled) become softcap tanh(s / softcap) (Gemma 2) */
    uint window;          /* > 0: row r takes keys j > pos[r] - window only (sliding window); 0: all */
    uint pad;
} RT_END(rt_pc_attn);
RT_CHECK(rt_pc_attn, 20)

/* mixture of experts (runtime/rt_ops_moe.c): top-k routing, shaders/moe_route.comp (a workgroup per row) */
RT_STRUCT(rt_pc_moe_route) {
    uint rows, n_expert, k;
    uint renorm;          /* 1: the k weights divided by their sum */
    uint off_ids, off_w, off_l;
    uint pad;
} RT_END(rt_pc_moe_route);
RT_CHECK(rt_pc_moe_route, 8)

/* products with the chosen experts, shaders/moe_matmul.comp: Y [m][n_used][n] from X [m][k] (or
 * [m][n_used][k], x_per_slot) and expert ids[r][s] of W; flags RT_MM_VEC, RT_MM_XVEC, RT_MM_GATE */
RT_STRUCT(rt_pc_moe_mm) {
    uint m, n, k;
    uint n_used, n_expert;
    uint x_per_slot;
    uint off_y, off_x, off_ids;
    uint off_w, off_w2;   /* bytes: expert 0 of W (and of W_up, RT_MM_GATE) in its binding */
    uint stride;          /* bytes from one expert to the next (rt_expert_stride) */
    uint row_bytes;       /* bytes per row in an expert's quants plane */
    uint s_plane;         /* bytes from an expert's start to its scales plane (block formats) */
    uint s_row;           /* bytes per row in the scales plane */
    uint pad;
} RT_END(rt_pc_moe_mm);
RT_CHECK(rt_pc_moe_mm, 16)

/* X[r] += sum_s w[r][s] Y[r][s], shaders/moe_combine.comp */
RT_STRUCT(rt_pc_moe_combine) {
    uint rows, n_used, dim;
    uint off_x, off_y, off_w;
    uint pad[2];
} RT_END(rt_pc_moe_combine);
RT_CHECK(rt_pc_moe_combine, 8)

/* calibration kernels for benchmarks, shaders/bench_copy.comp and bench_fma.comp */
RT_STRUCT(rt_pc_bench) {
    uint n;               /* vec4 elements to copy, or invocations */
    uint iters;
    uint pad[2];
} RT_END(rt_pc_bench);
RT_CHECK(rt_pc_bench, 4)

#endif
