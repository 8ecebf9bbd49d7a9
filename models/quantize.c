/* quantize.c: a whole GGUF model into another weight format, by llama-quantize's rules
 * (llama.cpp src/llama-quant.cpp), without an importance matrix.
 *
 * Which tensors change: those with at least 2 dims (trailing 1s not counted) whose name ends in
 * "weight", except norms ("_norm.weight"), MoE routers, positional and token-type embeddings and the
 * small special tensors in not_quantised[] below. Every other tensor is copied as it is.
 *
 * Which type: a plain float preset (F32, F16, BF16) puts every such tensor in that type. A quantised
 * preset starts from its base type (Q4_K for Q4_K_M, ...), then:
 *   output.weight (and token_embd.weight when the model has no output.weight, the embedding being
 *     the output matrix): Q6_K, unless the preset is Q8_0 (kept) or rows do not fit the base type's
 *     block (Q8_0; also for falcon);
 *   attn_v (and fused attn_qkv, MLA attn_kv_b): Q2_K -> Q3_K (Q4_K with GQA >= 4); Q3_K_M -> Q5_K for
 *     the first two, then Q4_K; Q3_K_L -> Q5_K; IQ4_NL/IQ4_XS with GQA >= 4 -> Q5_K;
 *     Q4_K_M/Q5_K_M -> Q6_K on "use_more_bits" layers; Q4_K_S -> Q5_K for the first four;
 *     70B-class models lift Q3_K/Q4_K to Q5_K; 8-expert models take Q8_0;
 *   attn_k: 8-expert models Q8_0;
 *   ffn_down: Q2_K -> Q3_K; Q3_K_M -> Q5_K in the first 1/16 of layers, else Q4_K (falcon: Q3_K
 *     off use_more_bits layers); Q3_K_L -> Q5_K (falcon Q4_K); Q4_K_M -> Q6_K on use_more_bits
 *     layers (falcon: Q6_K / Q5_K / Q4_K); IQ4_NL/IQ4_XS -> Q5_K in the first 1/8; Q5_K_M -> Q6_K on
 *     use_more_bits layers; Q4_K_S -> Q5_K in the first 1/8 (not falcon);
 *   attn_output: Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K (falcon: Q3_K_L -> Q4_K); 8-expert
 *     models Q5_K under Q2_K, Q3_K_S/M, Q4_K_S/M, IQ4_NL/XS;
 * where use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (integer division), i
 * counting attn_v tensors (or ffn_down layers) in llama.cpp's tensor order: by layer, then name.
 * Last, a row length the chosen block does not divide falls back: IQ4_XS -> IQ4_NL; Q2_K, Q3_K ->
 * Q4_0; Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0; and to F16 when that does not fit either (a
 * 32-element format that does not fit goes straight to F16).
 *
 * Metadata: every key copied in order (split.* dropped: a split model is refused), then
 * general.quantization_version = 2 and general.file_type = the preset (u32), set in place. The
 * alignment is kept. Tensors are written in the input's order (llama-quantize sorts them by layer and
 * name; the bytes of each tensor are the same). Each converted tensor is decoded to
 * f32 (lm_dequantize) a slab of rows at a time and encoded (lm_quantize) into a buffer of its output
 * size: memory is about one output tensor plus 64 MiB.
 */
#include "lm_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>


#define QNT_VERSION 2                     /* ggml's GGML_QNT_VERSION */
#define SLAB_BYTES ((size_t)64 << 20)     /* f32 rows decoded at a time */

/* ---------------------------------------------------------------- presets */

static const struct {
    const char *name;
    int ftype;
    int base; /* enum lm_ggml_type */
} presets[] = {
    { "F32", LM_FTYPE_F32, LM_GGML_F32 },          { "F16", LM_FTYPE_F16, LM_GGML_F16 },
    { "BF16", LM_FTYPE_BF16, LM_GGML_BF16 },       { "Q4_0", LM_FTYPE_Q4_0, LM_GGML_Q4_0 },
    { "Q4_1", LM_FTYPE_Q4_1, LM_GGML_Q4_1 },       { "Q5_0", LM_FTYPE_Q5_0, LM_GGML_Q5_0 },
    { "Q5_1", LM_FTYPE_Q5_1, LM_GGML_Q5_1 },       { "Q8_0", LM_FTYPE_Q8_0, LM_GGML_Q8_0 },
    { "Q2_K", LM_FTYPE_Q2_K, LM_GGML_Q2_K },       { "Q3_K_S", LM_FTYPE_Q3_K_S, LM_GGML_Q3_K },
    { "Q3_K_M", LM_FTYPE_Q3_K_M, LM_GGML_Q3_K },   { "Q3_K_L", LM_FTYPE_Q3_K_L, LM_GGML_Q3_K },
    { "Q4_K_S", LM_FTYPE_Q4_K_S, LM_GGML_Q4_K },   { "Q4_K_M", LM_FTYPE_Q4_K_M, LM_GGML_Q4_K },
    { "Q5_K_S", LM_FTYPE_Q5_K_S, LM_GGML_Q5_K },   { "Q5_K_M", LM_FTYPE_Q5_K_M, LM_GGML_Q5_K },
    { "Q6_K", LM_FTYPE_Q6_K, LM_GGML_Q6_K },       { "IQ4_NL", LM_FTYPE_IQ4_NL, LM_GGML_IQ4_NL },
    { "IQ4_XS", LM_FTYPE_IQ4_XS, LM_GGML_IQ4_XS },
    /* llama-quantize's aliases */
    { "Q3_K", LM_FTYPE_Q3_K_M, LM_GGML_Q3_K },     { "Q4_K", LM_FTYPE_Q4_K_M, LM_GGML_Q4_K },
    { "Q5_K", LM_FTYPE_Q5_K_M, LM_GGML_Q5_K },
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

int lm_ftype_from_name(const char *name)
{
    for (size_t i = 0; name && i < N_PRESETS; i++)
        if (!strcasecmp(name, presets[i].name))
            return presets[i].ftype;
    return -1;
}

const char *lm_ftype_name(int ftype)
{
    for (size_t i = 0; i < N_PRESETS; i++)
        if (presets[i].ftype == ftype)
            return presets[i].name; /* the canonical name comes before the alias */
    return NULL;
}

static int ftype_base(int ftype)
{
    for (size_t i = 0; i < N_PRESETS; i++)
        if (presets[i].ftype == ftype)
            return presets[i].base;
    return -1;
}

/* ggml_is_quantized: every block format; F32, F16, BF16 and the integer types are not. */
static bool is_quantised(int type)
{
    return lm_gguf_type_block(type) > 1;
}

/* ---------------------------------------------------------------- which tensors */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Substrings of tensor names llama-quantize leaves alone: norms, MoE routers, and tensors too small
 * or too sensitive to quantise (RWKV time-mix, conv1d, relative position biases, vision and audio
 * embeddings). */
static const char *const not_quantised[] = {
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
    "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
    "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
    "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
    "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
    "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
    "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
    ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
};

static bool allows_quantisation(const lm_gguf_tensor_info *t)
{
    int dims = 1; /* ggml_n_dims: trailing dimensions of 1 do not count */
    for (int d = 3; d >= 1; d--)
        if (t->ne[d] > 1) {
            dims = d + 1;
            break;
        }
    if (dims < 2 || !ends_with(t->name, "weight"))
        return false;
    if (!strcmp(t->name, "position_embd.weight") || !strcmp(t->name, "token_types.weight"))
        return false;
    for (size_t i = 0; i < sizeof not_quantised / sizeof not_quantised[0]; i++)
        if (strstr(t->name, not_quantised[i]))
            return false;
    return true;
}

enum category { CAT_OTHER, CAT_TOKEN_EMBD, CAT_OUTPUT, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_Q, CAT_ATTN_OUTPUT,
                CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN };

/* By name, in llama.cpp's order of tests. attn_qkv and attn_kv_b count as attn_v. */
static enum category category(const char *name)
{
    if (!strcmp(name, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight") || strstr(name, "attn_v.weight"))
        return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight"))
        return CAT_ATTN_K;
    if (strstr(name, "attn_q.weight"))
        return CAT_ATTN_Q;
    if (strstr(name, "attn_output.weight"))
        return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_up"))
        return CAT_FFN_UP;
    if (strstr(name, "ffn_gate"))
        return CAT_FFN_GATE;
    if (strstr(name, "ffn_down"))
        return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* The layer of "blk.N....", or -1. */
static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) || name[4] < '0' || name[4] > '9')
        return -1;
    return (int)strtol(name + 4, NULL, 10);
}

/* ---------------------------------------------------------------- which type */

/* What the mixes depend on, from the metadata. */
typedef struct model_facts {
    bool falcon;
    bool is_70b;       /* llama.cpp's LLM_TYPE_70B */
    bool tied;         /* no output.weight: the token embedding is the output matrix */
    int n_layer;
    int n_gqa;         /* n_head / n_head_kv of layer 0 (0 when unknown) */
    int n_expert;
    int n_attn_v;      /* tensors of category attn_v */
    int i_attn_v, i_ffn_down; /* running counts */
} model_facts;

/* A u32 key, or element 0 of an integer array (per-layer head counts), or def. */
static int64_t meta_int(const lm_gguf *g, const char *arch, const char *suffix, int64_t def)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    if (!lm_gguf_get_i64(g, key, &v) || !lm_gguf_arr_i64(g, key, 0, &v))
        return v;
    return def;
}

static void read_facts(const lm_gguf *g, model_facts *f)
{
    const char *arch = "";
    lm_gguf_get_str(g, "general.architecture", &arch, NULL);
    memset(f, 0, sizeof *f);
    f->falcon = !strcmp(arch, "falcon");
    f->tied = true;
    int max_layer = -1;
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        enum category c = category(t.name);
        f->n_attn_v += c == CAT_ATTN_V;
        if (c == CAT_OUTPUT)
            f->tied = false;
        if (layer_of(t.name) > max_layer)
            max_layer = layer_of(t.name);
    }
    f->n_layer = (int)meta_int(g, arch, "block_count", max_layer + 1);
    int64_t n_head = meta_int(g, arch, "attention.head_count", 0);
    int64_t n_head_kv = meta_int(g, arch, "attention.head_count_kv", n_head);
    f->n_gqa = n_head_kv > 0 ? (int)(n_head / n_head_kv) : 0;
    f->n_expert = (int)meta_int(g, arch, "expert_count", 0);
    /* the architectures whose 68/80-layer size llama.cpp calls 70B */
    f->is_70b = (!strcmp(arch, "llama") && f->n_layer == 80 && n_head != n_head_kv) ||
                (f->n_layer == 80 && (!strcmp(arch, "qwen2") || !strcmp(arch, "deci") || !strcmp(arch, "olmo"))) ||
                (f->n_layer == 68 && !strcmp(arch, "jais2"));
}

static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The presets under which an 8-expert model's attn_output gets Q5_K. */
static bool moe_attn_output_q5k(int ftype)
{
    switch (ftype) {
    case LM_FTYPE_Q2_K: case LM_FTYPE_Q3_K_S: case LM_FTYPE_Q3_K_M: case LM_FTYPE_IQ4_NL:
    case LM_FTYPE_Q4_K_S: case LM_FTYPE_Q4_K_M: case LM_FTYPE_IQ4_XS:
        return true;
    }
    return false;
}

/* The mix: the type of a quantisable tensor t under a quantised preset, before the fallback.
 * LM_ERR_FORMAT when a MoE tensor's layer cannot be told from its name. */
static int mix_type(model_facts *f, const lm_gguf_tensor_info *t, int ftype, int base, int *out)
{
    enum category c = category(t->name);
    int ty = base;
    if (c == CAT_OUTPUT || (c == CAT_TOKEN_EMBD && f->tied)) {
        if (f->falcon || t->ne[0] % lm_gguf_type_block(base))
            ty = LM_GGML_Q8_0;
        else if (base != LM_GGML_Q8_0)
            ty = LM_GGML_Q6_K;
    } else if (c == CAT_ATTN_V) {
        int i = f->i_attn_v++;
        switch (ftype) {
        case LM_FTYPE_Q2_K: ty = f->n_gqa >= 4 ? LM_GGML_Q4_K : LM_GGML_Q3_K; break;
        case LM_FTYPE_Q3_K_M: ty = i < 2 ? LM_GGML_Q5_K : LM_GGML_Q4_K; break;
        case LM_FTYPE_Q3_K_L: ty = LM_GGML_Q5_K; break;
        case LM_FTYPE_IQ4_NL: case LM_FTYPE_IQ4_XS: if (f->n_gqa >= 4) ty = LM_GGML_Q5_K; break;
        case LM_FTYPE_Q4_K_M: case LM_FTYPE_Q5_K_M: if (use_more_bits(i, f->n_attn_v)) ty = LM_GGML_Q6_K; break;
        case LM_FTYPE_Q4_K_S: if (i < 4) ty = LM_GGML_Q5_K; break;
        }
        if (f->is_70b && (ty == LM_GGML_Q3_K || ty == LM_GGML_Q4_K))
            ty = LM_GGML_Q5_K;
        if (f->n_expert == 8)
            ty = LM_GGML_Q8_0;
    } else if (c == CAT_ATTN_K) {
        if (f->n_expert == 8)
            ty = LM_GGML_Q8_0;
    } else if (c == CAT_FFN_DOWN) {
        int i = f->i_ffn_down++, n = f->n_layer;
        if (f->n_expert > 1) { /* experts are not in layer order: the layer is in the name */
            i = layer_of(t->name);
            if (i < 0 || i >= n)
                return LM_ERR_FORMAT;
        }
        bool more = use_more_bits(i, n);
        switch (ftype) {
        case LM_FTYPE_Q2_K: ty = LM_GGML_Q3_K; break;
        case LM_FTYPE_Q3_K_M:
            ty = i < n / 16 ? LM_GGML_Q5_K : !f->falcon || more ? LM_GGML_Q4_K : LM_GGML_Q3_K;
            break;
        case LM_FTYPE_Q3_K_L: ty = f->falcon ? LM_GGML_Q4_K : LM_GGML_Q5_K; break;
        case LM_FTYPE_Q4_K_M:
            if (f->falcon)
                ty = i < n / 16 ? LM_GGML_Q6_K : more ? LM_GGML_Q5_K : LM_GGML_Q4_K;
            else if (more)
                ty = LM_GGML_Q6_K;
            break;
        case LM_FTYPE_IQ4_NL: case LM_FTYPE_IQ4_XS: if (i < n / 8) ty = LM_GGML_Q5_K; break;
        case LM_FTYPE_Q5_K_M: if (more) ty = LM_GGML_Q6_K; break;
        case LM_FTYPE_Q4_K_S: if (!f->falcon && i < n / 8) ty = LM_GGML_Q5_K; break;
        }
    } else if (c == CAT_ATTN_OUTPUT) {
        if (f->falcon) {
            if (ftype == LM_FTYPE_Q3_K_L)
                ty = LM_GGML_Q4_K;
        } else if (f->n_expert == 8) {
            if (moe_attn_output_q5k(ftype))
                ty = LM_GGML_Q5_K;
        } else if (ftype == LM_FTYPE_Q2_K) {
            ty = LM_GGML_Q3_K;
        } else if (ftype == LM_FTYPE_Q3_K_M) {
            ty = LM_GGML_Q4_K;
        } else if (ftype == LM_FTYPE_Q3_K_L) {
            ty = LM_GGML_Q5_K;
        }
    }
    *out = ty;
    return LM_OK;
}

/* A row of ne0 elements that type's block does not divide: the nearest 32-element format, else F16. */
int lm_quant_fallback(int type, int64_t ne0)
{
    if (ne0 % lm_gguf_type_block(type) == 0)
        return type;
    int f;
    switch (type) {
    case LM_GGML_IQ4_XS: f = LM_GGML_IQ4_NL; break;
    case LM_GGML_Q2_K: case LM_GGML_Q3_K: f = LM_GGML_Q4_0; break;
    case LM_GGML_Q4_K: f = LM_GGML_Q5_0; break;
    case LM_GGML_Q5_K: f = LM_GGML_Q5_1; break;
    case LM_GGML_Q6_K: f = LM_GGML_Q8_0; break;
    default: f = type; break; /* a 32-element format: no smaller block to go to */
    }
    return ne0 % lm_gguf_type_block(f) ? LM_GGML_F16 : f;
}

/* ---------------------------------------------------------------- the plan */

/* A tensor's place in llama.cpp's order: by layer (-1 for tensors outside blocks), then by name. */
typedef struct order_key {
    int layer;
    const char *name;
    int64_t index;
} order_key;

static int cmp_llama_order(const void *a, const void *b)
{
    const order_key *x = a, *y = b;
    return x->layer != y->layer ? (x->layer < y->layer ? -1 : 1) : strcmp(x->name, y->name);
}

/* The output type of every tensor (types[i] for tensor i), and checks that each conversion can be
 * done; nothing is written before this has passed. */
static int plan(const lm_gguf *g, const char *in, const lm_quantize_opts *o, int *types, char *err, size_t errlen)
{
    int64_t n = lm_gguf_n_tensors(g);
    int base = ftype_base(o->ftype);
    order_key *order = malloc((n ? (size_t)n : 1) * sizeof *order);
    if (!order)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        order[i] = (order_key){ layer_of(t.name), t.name, i };
    }
    qsort(order, (size_t)n, sizeof *order, cmp_llama_order);

    model_facts f;
    read_facts(g, &f);
    int rc = LM_OK;
    for (int64_t k = 0; k < n && !rc; k++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, order[k].index, &t);
        int ty = t.type;
        if (allows_quantisation(&t)) {
            ty = base;
            if (is_quantised(base)) {
                if (mix_type(&f, &t, o->ftype, base, &ty))
                    rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: tensor '%s': cannot tell its layer (blk.N.) "
                                 "in a model of %d layers", in, t.name, f.n_layer);
                ty = lm_quant_fallback(ty, t.ne[0]);
            }
        }
        types[order[k].index] = ty;
        if (rc || ty == t.type)
            continue;
        if (is_quantised(t.type) && !o->allow_requantize)
            rc = lm_fail(err, errlen, LM_ERR_INVALID, "%s: tensor '%s' is already quantised (%s): requantising "
                         "loses precision; allow it explicitly (--allow-requantize) or start from an F32/F16/BF16 file",
                         in, t.name, lm_gguf_type_name(t.type));
        else if (!lm_quant_supported(t.type))
            rc = lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "%s: tensor '%s': cannot convert from type %s", in, t.name,
                         lm_gguf_type_name(t.type));
        else if (!lm_quant_supported(ty))
            rc = lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "%s: tensor '%s': type %s cannot be written yet", in,
                         t.name, lm_gguf_type_name(ty));
    }
    free(order);
    return rc;
}

/* ---------------------------------------------------------------- converting */

/* Tensor t into type `type`, into out (lm_gguf_row_size(type, ne0) * rows bytes), a slab of rows at
 * a time through f32. */
static int convert(const lm_gguf_tensor_info *t, int type, void *out, float *slab, int64_t slab_rows,
                   const char *in, char *err, size_t errlen)
{
    int64_t ne0 = t->ne[0], rows = t->n_elements / ne0;
    size_t src_row = lm_gguf_row_size(t->type, ne0), dst_row = lm_gguf_row_size(type, ne0);
    for (int64_t r = 0; r < rows; r += slab_rows) {
        int64_t nr = rows - r < slab_rows ? rows - r : slab_rows, ne = nr * ne0;
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * src_row;
        int rc;
        if (t->type == LM_GGML_F32) {
            memcpy(slab, src, (size_t)ne * sizeof *slab); /* the mapping may be unaligned for floats */
        } else if ((rc = lm_dequantize(t->type, src, slab, ne))) {
            return lm_fail(err, errlen, rc, "%s: tensor '%s': cannot decode %s (%s)", in, t->name,
                           lm_gguf_type_name(t->type), lm_status_string(rc));
        }
        for (int64_t i = 0; i < ne; i++)
            if (!isfinite(slab[i]))
                return lm_fail(err, errlen, LM_ERR_INVALID, "%s: tensor '%s': element %lld is %g: cannot quantise "
                               "a tensor that holds NaN or infinity", in, t->name, (long long)(r * ne0 + i),
                               (double)slab[i]);
        if ((rc = lm_quantize(type, slab, (uint8_t *)out + (size_t)r * dst_row, ne)))
            return lm_fail(err, errlen, rc, "%s: tensor '%s': cannot encode %s (%s)", in, t->name,
                           lm_gguf_type_name(type), lm_status_string(rc));
    }
    return LM_OK;
}

/* stat identity: the same file however it is named (./a, a, a hard link, a symlink to it). */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int lm_quantize_file(const char *in, const char *out, const lm_quantize_opts *opts, char *err, size_t errlen)
{
    lm_quantize_opts o = opts ? *opts : (lm_quantize_opts){ .ftype = LM_FTYPE_Q8_0 };
    lm_gguf *g = NULL;
    lm_gguf_writer *w = NULL;
    int *types = NULL;
    float *slab = NULL;
    void *buf = NULL;
    int rc;
    if (err && errlen)
        err[0] = 0;
    if (!in || !out)
        return lm_fail(err, errlen, LM_ERR_INVALID, "quantize: NULL path");
    if (ftype_base(o.ftype) < 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "quantize: unknown file type %d", o.ftype);
    if (same_file(in, out))
        return lm_fail(err, errlen, LM_ERR_INVALID, "%s and %s are the same file: write the output elsewhere",
                       in, out);
    if ((rc = lm_gguf_open(in, &g, err, errlen)))
        return rc;
    uint32_t n_split = 1;
    if (!lm_gguf_get_u32(g, "split.count", &n_split) && n_split > 1) {
        rc = lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "%s: part of a model split in %u files: merge it first "
                     "(llama-gguf-split --merge)", in, n_split);
        goto out_close;
    }

    int64_t n = lm_gguf_n_tensors(g);
    types = malloc((n ? (size_t)n : 1) * sizeof *types);
    if (!types) {
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
        goto out_close;
    }
    if ((rc = plan(g, in, &o, types, err, errlen)))
        goto out_close;

    if ((rc = lm_gguf_writer_create(out, &w, err, errlen)))
        goto out_close;
    for (int64_t i = 0; i < lm_gguf_n_kv(g) && !rc; i++) {
        lm_gguf_kv_info k;
        lm_gguf_kv(g, i, &k);
        if (strcmp(k.key, "split.no") && strcmp(k.key, "split.count") && strcmp(k.key, "split.tensors.count"))
            rc = lm_gguf_writer_copy_kv(w, g, i);
    }
    if (!rc)
        rc = lm_gguf_writer_set_u32(w, "general.quantization_version", QNT_VERSION);
    if (!rc)
        rc = lm_gguf_writer_set_u32(w, "general.file_type", (uint32_t)o.ftype);
    if (rc) {
        lm_fail(err, errlen, rc, "%s", lm_gguf_writer_errmsg(w));
        goto out_abort;
    }

    size_t buf_cap = 0, slab_cap = 0; /* bytes in buf, floats in slab */
    for (int64_t i = 0; i < n; i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        const void *data = t.data;
        size_t size = t.size;
        if (types[i] != t.type) {
            int64_t rows = t.n_elements / t.ne[0];
            size_t row = lm_gguf_row_size(types[i], t.ne[0]);
            if ((uint64_t)rows > SIZE_MAX / row) {
                rc = lm_fail(err, errlen, LM_ERR_INVALID, "%s: tensor '%s' is too large as %s", in, t.name,
                             lm_gguf_type_name(types[i]));
                goto out_abort;
            }
            size = row * (size_t)rows;
            if (size > buf_cap) {
                free(buf);
                if (!(buf = malloc(size))) {
                    rc = lm_fail(err, errlen, LM_ERR_NOMEM, "%s: out of memory for tensor '%s' (%zu bytes)", in,
                                 t.name, size);
                    goto out_abort;
                }
                buf_cap = size;
            }
            int64_t slab_rows = (int64_t)(SLAB_BYTES / sizeof(float) / (size_t)t.ne[0]);
            slab_rows = slab_rows < 1 ? 1 : slab_rows > rows ? rows : slab_rows;
            size_t need = (size_t)(slab_rows * t.ne[0]);
            if (need > slab_cap) {
                free(slab);
                if (!(slab = malloc(need * sizeof *slab))) {
                    rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
                    goto out_abort;
                }
                slab_cap = need;
            }
            if ((rc = convert(&t, types[i], buf, slab, slab_rows, in, err, errlen)))
                goto out_abort;
            data = buf;
        }
        if ((rc = lm_gguf_writer_add_tensor(w, t.name, t.n_dims, t.ne, types[i], data, size))) {
            lm_fail(err, errlen, rc, "%s", lm_gguf_writer_errmsg(w));
            goto out_abort;
        }
        if (o.progress)
            o.progress(o.user, i + 1, n, t.name, types[i]);
    }
    free(buf);
    free(slab);
    free(types);
    rc = lm_gguf_writer_finish(w, err, errlen);
    lm_gguf_close(g);
    return rc;

out_abort:
    lm_gguf_writer_abort(w);
out_close:
    free(buf);
    free(slab);
    free(types);
    lm_gguf_close(g);
    return rc;
}
