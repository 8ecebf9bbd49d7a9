/* lm.h: the vkllm models layer: GGUF and llama2.c readers, tokenizers, architectures, sampler,
 * sessions with their KV cache. This header is the whole contract of models/; it uses the runtime only
 * through rt.h. Nothing here prints or exits: functions return an lm_status and fill an error message.
 *
 * Conventions: opaque handles, lm_x_open/create(..., &out) and lm_x_close/destroy(x); destroy(NULL) is
 * a no-op. Functions that can fail take `char *err, size_t errlen` (may be NULL) or keep a per-handle
 * message. int64_t for element counts, size_t for byte offsets.
 */
#ifndef VKLLM_LM_H
#define VKLLM_LM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lm_status {
    LM_OK = 0,
    LM_ERR_IO,          /* cannot open / read / map a file */
    LM_ERR_FORMAT,      /* malformed file: the message says what and where */
    LM_ERR_UNSUPPORTED, /* valid but not supported here: architecture, tensor type, tokenizer */
    LM_ERR_TYPE,        /* a metadata key has another type than asked for */
    LM_ERR_NOT_FOUND,   /* no such key / tensor / token */
    LM_ERR_INVALID,     /* bad argument or input (invalid UTF-8, prompt longer than the context) */
    LM_ERR_NOMEM,       /* host memory exhausted */
    LM_ERR_DEVICE,      /* the runtime failed: the message carries its explanation */
    LM_ERR_CONTEXT_FULL,/* the tokens do not fit the session's context (the caller may drop some and retry) */
    LM_ERR_KV_FULL,     /* a batched context's pool of KV blocks has too few free for the batch */
    LM_ERR_ABORTED,     /* lm_ctx_abort stopped an evaluation between two passes */
};
const char *lm_status_string(int status);

/* ======================================================================== GGUF (models/gguf.c) */

/* GGUF, versions 2 and 3 (little-endian), memory-mapped read-only. The byte layout is described at
 * the top of models/gguf.c. lm_gguf_open() checks the whole file before it returns: every count,
 * length, offset, dimension and type against the file size and sane limits; a malformed file is
 * refused with LM_ERR_FORMAT (LM_ERR_UNSUPPORTED for GGUF v1, big-endian files, nested arrays) and a
 * message that starts with the path and says what is wrong and where (byte offset, key or tensor
 * name), e.g. "m.gguf: tensor 'output.weight': unknown tensor type 77 at byte 14020".
 *
 * Lifetimes: every pointer handed out (key and tensor names, strings, array and tensor data) lives
 * until lm_gguf_close(). Key names, tensor names and scalar string values are NUL-terminated copies;
 * elements of string arrays are (ptr, len) into the mapping and are NOT NUL-terminated. A handle is
 * read-only once open: any number of threads may read it at once. */
typedef struct lm_gguf lm_gguf;

/* Metadata value types, as numbered in the file. */
enum lm_gguf_vtype {
    LM_GGUF_U8 = 0, LM_GGUF_I8 = 1, LM_GGUF_U16 = 2, LM_GGUF_I16 = 3, LM_GGUF_U32 = 4, LM_GGUF_I32 = 5,
    LM_GGUF_F32 = 6, LM_GGUF_BOOL = 7, LM_GGUF_STR = 8, LM_GGUF_ARR = 9, LM_GGUF_U64 = 10,
    LM_GGUF_I64 = 11, LM_GGUF_F64 = 12,
};

/* ggml tensor types, as numbered in ggml.h (ids 4, 5, 31-33 and 36-38 are retired and rejected). */
enum lm_ggml_type {
    LM_GGML_F32 = 0, LM_GGML_F16 = 1, LM_GGML_Q4_0 = 2, LM_GGML_Q4_1 = 3, LM_GGML_Q5_0 = 6,
    LM_GGML_Q5_1 = 7, LM_GGML_Q8_0 = 8, LM_GGML_Q8_1 = 9, LM_GGML_Q2_K = 10, LM_GGML_Q3_K = 11,
    LM_GGML_Q4_K = 12, LM_GGML_Q5_K = 13, LM_GGML_Q6_K = 14, LM_GGML_Q8_K = 15, LM_GGML_IQ2_XXS = 16,
    LM_GGML_IQ2_XS = 17, LM_GGML_IQ3_XXS = 18, LM_GGML_IQ1_S = 19, LM_GGML_IQ4_NL = 20,
    LM_GGML_IQ3_S = 21, LM_GGML_IQ2_S = 22, LM_GGML_IQ4_XS = 23, LM_GGML_I8 = 24, LM_GGML_I16 = 25,
    LM_GGML_I32 = 26, LM_GGML_I64 = 27, LM_GGML_F64 = 28, LM_GGML_IQ1_M = 29, LM_GGML_BF16 = 30,
    LM_GGML_TQ1_0 = 34, LM_GGML_TQ2_0 = 35, LM_GGML_MXFP4 = 39, LM_GGML_NVFP4 = 40, LM_GGML_Q1_0 = 41,
    LM_GGML_Q2_0 = 42,
    LM_GGML_TYPE_COUNT = 43
};

/* The ggml type table: name ("F32", "Q4_K", ...), elements per block, bytes per block. For an
 * unknown or retired id: NULL and 0. lm_gguf_row_size() is the byte size of n elements, 0 when the
 * type is unknown or n is not a multiple of the block size. */
const char *lm_gguf_type_name(int type);
int64_t lm_gguf_type_block(int type);
size_t lm_gguf_type_size(int type);
size_t lm_gguf_row_size(int type, int64_t n);
/* "u8", "i32", "str", "arr", ...; "?" for an unknown id. */
const char *lm_gguf_vtype_name(int vtype);

/* CONSTRUCTOR: maps and checks the file; *out is NULL on failure. DESTRUCTOR: close(NULL) is a no-op. */
int lm_gguf_open(const char *path, lm_gguf **out, char *err, size_t errlen);
void lm_gguf_close(lm_gguf *g);
/* METHOD: the tensor bytes are not needed in memory for now (a model after its upload): their pages
 * leave the process; reading them again reads the file. Metadata stays as it is. */
void lm_gguf_drop_pages(lm_gguf *g);

uint32_t lm_gguf_version(const lm_gguf *g);     /* 2 or 3 */
size_t lm_gguf_file_size(const lm_gguf *g);
size_t lm_gguf_alignment(const lm_gguf *g);     /* general.alignment, default 32 */
size_t lm_gguf_data_offset(const lm_gguf *g);   /* file offset of the tensor data section (past the
                                                   end of the file when there are no tensors) */

/* Metadata keys, in file order. lm_gguf_find() returns the index of a key or -1 (hashed, O(1)).
 * lm_gguf_kv() describes key i: name, type, and for arrays the element type and the length
 * (elem_type = -1 and n = 1 for scalars). LM_ERR_NOT_FOUND when i is out of range. */
typedef struct lm_gguf_kv_info {
    const char *key;  /* NUL-terminated */
    int type;         /* enum lm_gguf_vtype */
    int elem_type;    /* enum lm_gguf_vtype of the elements when type == LM_GGUF_ARR, else -1 */
    uint64_t n;       /* number of elements when type == LM_GGUF_ARR, else 1 */
} lm_gguf_kv_info;
int64_t lm_gguf_n_kv(const lm_gguf *g);
int64_t lm_gguf_find(const lm_gguf *g, const char *key);
int lm_gguf_kv(const lm_gguf *g, int64_t i, lm_gguf_kv_info *out);

/* Typed getters: LM_OK, LM_ERR_NOT_FOUND (no such key) or LM_ERR_TYPE (another type, or an integer
 * that does not fit); *out is untouched on error. Integers convert between any integer types when
 * the value fits (a u32 asked for a stored i32 >= 0); f32/f64 accept a stored f32 or f64; bool only
 * a bool. get_str gives a NUL-terminated copy; len (may be NULL) is its byte length. */
int lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out);
int lm_gguf_get_i32(const lm_gguf *g, const char *key, int32_t *out);
int lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out);
int lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out);
int lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out);
int lm_gguf_get_f64(const lm_gguf *g, const char *key, double *out);
int lm_gguf_get_bool(const lm_gguf *g, const char *key, bool *out);
int lm_gguf_get_str(const lm_gguf *g, const char *key, const char **out, size_t *len);

/* Arrays. get_arr: element type, count and, for numeric and bool arrays, a pointer to the n packed
 * little-endian elements inside the mapping. That pointer MAY BE UNALIGNED: read elements with
 * memcpy (or use lm_gguf_arr_i64 / lm_gguf_arr_f64). For string arrays data is NULL: use
 * lm_gguf_get_arr_str, O(1) per element (the strings are indexed while the file is checked).
 * LM_ERR_TYPE when the key is not an array (or, for arr_str, not an array of strings); LM_ERR_NOT_FOUND
 * for a missing key or an index out of range. */
int lm_gguf_get_arr(const lm_gguf *g, const char *key, int *elem_type, uint64_t *n, const void **data);
int lm_gguf_get_arr_str(const lm_gguf *g, const char *key, uint64_t i, const char **s, size_t *len);
/* Element i of an integer / float (f32, f64) array, converted; LM_ERR_TYPE for other element types. */
int lm_gguf_arr_i64(const lm_gguf *g, const char *key, uint64_t i, int64_t *out);
int lm_gguf_arr_f64(const lm_gguf *g, const char *key, uint64_t i, double *out);

/* Tensors, in file order. ne[0] is the contiguous dimension (GGUF stores dims ne0 first); dims past
 * n_dims are 1. data points into the mapping, aligned to min(alignment, page size). */
typedef struct lm_gguf_tensor_info {
    const char *name;     /* NUL-terminated */
    int type;             /* enum lm_ggml_type */
    int n_dims;           /* 1..4 */
    int64_t ne[4];        /* elements per dimension, ne[0] fastest */
    int64_t n_elements;   /* ne[0]*ne[1]*ne[2]*ne[3] */
    size_t offset;        /* byte offset of the data in the file */
    size_t size;          /* bytes of data */
    const void *data;     /* the bytes, inside the mapping */
} lm_gguf_tensor_info;
int64_t lm_gguf_n_tensors(const lm_gguf *g);
int64_t lm_gguf_find_tensor(const lm_gguf *g, const char *name); /* index or -1 (hashed, O(1)) */
int lm_gguf_tensor(const lm_gguf *g, int64_t i, lm_gguf_tensor_info *out); /* LM_ERR_NOT_FOUND if out of range */

/* ======================================================================== GGUF writer (models/gguf_write.c) */

/* Writes a GGUF v3 file: metadata keys (copied from an open file or set), then tensors, data aligned to
 * general.alignment (32 unless a copied or set key says otherwise). Everything goes to a temporary file
 * beside `path` (path + ".tmp.XXXXXX") that lm_gguf_writer_finish() renames onto path only when the
 * whole file is written and flushed; lm_gguf_writer_abort() (or a failed finish) removes it, so no
 * half-written file is ever left under path. Tensor data is written as it is added (the caller need not
 * keep it); the header is written at finish. Setting a key that exists replaces its value. */
typedef struct lm_gguf_writer lm_gguf_writer;
int lm_gguf_writer_create(const char *path, lm_gguf_writer **out, char *err, size_t errlen);
/* Copies key i of g (any type, arrays included) */
int lm_gguf_writer_copy_kv(lm_gguf_writer *w, const lm_gguf *g, int64_t i);
int lm_gguf_writer_set_u32(lm_gguf_writer *w, const char *key, uint32_t v);
int lm_gguf_writer_set_i32(lm_gguf_writer *w, const char *key, int32_t v);
int lm_gguf_writer_set_f32(lm_gguf_writer *w, const char *key, float v);
int lm_gguf_writer_set_bool(lm_gguf_writer *w, const char *key, bool v);
int lm_gguf_writer_set_str(lm_gguf_writer *w, const char *key, const char *v);
/* An array of n numeric or bool elements of elem_type (enum lm_gguf_vtype), packed little-endian in data. */
int lm_gguf_writer_set_arr(lm_gguf_writer *w, const char *key, int elem_type, uint64_t n, const void *data);
/* An array of n strings (len NULL: NUL-terminated; else len[i] bytes each). */
int lm_gguf_writer_set_arr_str(lm_gguf_writer *w, const char *key, uint64_t n, const char *const *s, const size_t *len);
/* A tensor of n_dims (1..4) dims ne[] (ne[0] contiguous) of ggml type `type`; data holds exactly
 * lm_gguf_row_size(type, ne[0]) * ne[1] * ne[2] * ne[3] bytes. */
int lm_gguf_writer_add_tensor(lm_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, int type,
                              const void *data, size_t size);
/* Writes the header, flushes, renames into place, frees w (also on failure; then err says why). */
int lm_gguf_writer_finish(lm_gguf_writer *w, char *err, size_t errlen);
/* Removes the temporary file and frees w. NULL is a no-op. */
void lm_gguf_writer_abort(lm_gguf_writer *w);
const char *lm_gguf_writer_errmsg(const lm_gguf_writer *w);

/* ======================================================================== block formats (models/quant*.c) */

/* A CPU reference of every GGML weight format vkllm runs: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS (enum lm_ggml_type). The block layouts are ggml's
 * (ggml-common.h); dequantisation gives exactly the floats llama.cpp's dequantize_row_* give.
 * Quantisation is round-to-nearest with each format's scale search as ggml's reference quantisers
 * (quantize_row_*_ref) do, without an importance matrix. n is a number of elements, a multiple of the
 * format's block (lm_gguf_type_block); dst/src hold lm_gguf_row_size(type, n) bytes. */
bool lm_quant_supported(int type);
/* LM_ERR_UNSUPPORTED for a type outside the list, LM_ERR_INVALID when n is not a multiple of the block. */
int lm_dequantize(int type, const void *src, float *dst, int64_t n);
int lm_quantize(int type, const float *src, void *dst, int64_t n);

/* ======================================================================== quantising a model (models/quantize.c) */

/* Presets, as llama-quantize names them: a plain type (every matrix in it), or a mix. */
enum lm_ftype {
    LM_FTYPE_F32 = 0, LM_FTYPE_F16 = 1, LM_FTYPE_Q4_0 = 2, LM_FTYPE_Q4_1 = 3, LM_FTYPE_Q8_0 = 7,
    LM_FTYPE_Q5_0 = 8, LM_FTYPE_Q5_1 = 9, LM_FTYPE_Q2_K = 10, LM_FTYPE_Q3_K_S = 11, LM_FTYPE_Q3_K_M = 12,
    LM_FTYPE_Q3_K_L = 13, LM_FTYPE_Q4_K_S = 14, LM_FTYPE_Q4_K_M = 15, LM_FTYPE_Q5_K_S = 16,
    LM_FTYPE_Q5_K_M = 17, LM_FTYPE_Q6_K = 18, LM_FTYPE_IQ4_NL = 25, LM_FTYPE_IQ4_XS = 30,
    LM_FTYPE_BF16 = 32,
};   /* the values are llama.cpp's general.file_type numbers */

typedef struct lm_quantize_opts {
    int ftype;                  /* enum lm_ftype */
    bool allow_requantize;      /* quantise tensors that are already quantised (else LM_ERR_INVALID) */
    /* after each tensor (written as ggml type `type`); may be NULL */
    void (*progress)(void *user, int64_t done, int64_t total, const char *tensor, int type);
    void *user;
} lm_quantize_opts;

/* The preset named "Q4_K_M", "q8_0", ... (case-insensitive), or -1. And its name. */
int lm_ftype_from_name(const char *name);
const char *lm_ftype_name(int ftype);
/* Reads the GGUF at in, writes out (all metadata copied, general.file_type set, alignment kept) with
 * every 2-D weight matrix in the preset's type (the conventional mixes for _K_S/_K_M: output and some
 * attn_v / ffn_down at higher precision; rows not a multiple of 256 fall back to a 32-block format);
 * 1-D tensors stay F32. Through lm_gguf_writer: a failure leaves no file at out. LM_ERR_INVALID when in
 * and out are the same file. */
int lm_quantize_file(const char *in, const char *out, const lm_quantize_opts *opts, char *err, size_t errlen);


/* ======================================================================== synthetic models (models/synthetic.c) */

/* Published model shapes, for models with seeded random weights (benchmarks without a download):
 * "llama-tiny", "llama-15m", "llama-135m" (SmolLM2-135M), "llama-1b" and "llama-3b" (Llama 3.2),
 * "llama-7b" (Llama 2), "llama-8b" (Llama 3.1), "qwen2-0.5b" (Qwen2.5). */
typedef struct lm_synthetic_shape {
    const char *name, *arch;
    int32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, ffn_dim, n_ctx;
    float rope_base, norm_eps;
    bool tied;      /* the output matrix is the token embedding */
    bool qkv_bias;  /* qwen2 */
} lm_synthetic_shape;
const lm_synthetic_shape *lm_synthetic_shape_at(int i);          /* NULL past the last */
const lm_synthetic_shape *lm_synthetic_shape_find(const char *name);
/* A weight type by its ggml name ("Q4_0", "q4_k", "F16"), one that vkllm runs; -1 otherwise. */
int lm_synthetic_type(const char *name);
/* "synthetic:SHAPE[:TYPE]" (TYPE defaults to F16); LM_ERR_INVALID naming what exists otherwise. */
int lm_synthetic_parse(const char *spec, const lm_synthetic_shape **shape, int *type, char *err, size_t errlen);
int64_t lm_synthetic_n_params(const lm_synthetic_shape *sh);
/* Writes the model as GGUF at path (through lm_gguf_writer: nothing is left at path on failure): the
 * metadata and tensor names llama.cpp reads, every matrix in type (rows its block does not divide in the
 * fallback `quantize` uses), seeded random weights (the same seed, the same file). */
int lm_synthetic_write(const lm_synthetic_shape *sh, int type, uint64_t seed, const char *path,
                       void (*progress)(void *user, float done), void *user, char *err, size_t errlen);

/* ======================================================================== tokenizer (models/tok_*.c) */

/* Vocabularies and their tokenizers, built from the GGUF tokenizer metadata (tokenizer.ggml.*) or
 * from a llama2.c tokenizer file:
 *   "spm": SentencePiece BPE (GGUF tokenizer.ggml.model = "llama", and llama2.c files): merges of
 *          adjacent pieces by highest score, byte fallback to <0xXX>, spaces as U+2581 and a leading
 *          space when add_space_prefix;
 *   "bpe": byte-level BPE ("gpt2"): the pre-tokenizer regexes that tokenizer.ggml.pre names (PCRE2),
 *          GPT-2 bytes-to-unicode, merges by rank;
 *   "wpm": WordPiece ("bert"): BERT basic tokenizer (NFD, lowercase, accents stripped, punctuation and
 *          CJK split), then greedy longest match.
 * Tokens whose type is CONTROL or USER_DEFINED (and the UNKNOWN token) are "special": their text in
 * the input becomes their id when parse_special is set (USER_DEFINED ones always, as HF does).
 * A vocab is immutable once loaded: it may be used from several threads at once. Ids are int32_t;
 * -1 means "none". */
typedef struct lm_vocab lm_vocab;

/* Token types, numbered as GGUF tokenizer.ggml.token_type. */
enum lm_token_type {
    LM_TOKEN_UNDEFINED = 0, LM_TOKEN_NORMAL = 1, LM_TOKEN_UNKNOWN = 2, LM_TOKEN_CONTROL = 3,
    LM_TOKEN_USER_DEFINED = 4, LM_TOKEN_UNUSED = 5, LM_TOKEN_BYTE = 6,
};

/* CONSTRUCTORS: *out is NULL on failure. LM_ERR_UNSUPPORTED for a tokenizer model or pre-tokenizer
 * we do not know (the message names it), LM_ERR_FORMAT / LM_ERR_TYPE / LM_ERR_NOT_FOUND for bad or
 * missing metadata. The vocab copies what it needs: the lm_gguf may be closed afterwards.
 * lm_vocab_from_llama2c reads llama2.c's tokenizer.bin format (int32 max_token_length, then per token
 * float32 score, int32 length, bytes; ids 0, 1, 2 = <unk>, <s>, </s>) into an "spm" vocab.
 * DESTRUCTOR: lm_vocab_free(NULL) is a no-op. */
int lm_vocab_from_gguf(const lm_gguf *g, lm_vocab **out, char *err, size_t errlen);
int lm_vocab_from_llama2c(const char *path, lm_vocab **out, char *err, size_t errlen);
void lm_vocab_free(lm_vocab *v);

int32_t lm_vocab_n_tokens(const lm_vocab *v);
const char *lm_vocab_kind(const lm_vocab *v);  /* "spm", "bpe" or "wpm" */
const char *lm_vocab_pre(const lm_vocab *v);   /* bpe: the pre-tokenizer ("default" if none given); else "" */
int32_t lm_vocab_bos(const lm_vocab *v);       /* BOS (for wpm: [CLS]), -1 if none */
int32_t lm_vocab_eos(const lm_vocab *v);
int32_t lm_vocab_eot(const lm_vocab *v);       /* end of turn: metadata, else found by text (<|eot_id|>, <|im_end|>, ...) */
int32_t lm_vocab_unk(const lm_vocab *v);
int32_t lm_vocab_sep(const lm_vocab *v);
int32_t lm_vocab_pad(const lm_vocab *v);
int32_t lm_vocab_nl(const lm_vocab *v);        /* the token of "\n", -1 if none */
bool lm_vocab_add_bos(const lm_vocab *v);      /* whether a prompt starts with BOS (metadata, else the kind's default) */
bool lm_vocab_add_eos(const lm_vocab *v);
/* End of generation: EOS, EOT, EOM and tokens such as <|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>,
 * <|endoftext|>. False for ids out of range. */
bool lm_vocab_is_eog(const lm_vocab *v, int32_t id);
int lm_vocab_token_type(const lm_vocab *v, int32_t id); /* enum lm_token_type, -1 when out of range */
float lm_vocab_score(const lm_vocab *v, int32_t id);    /* 0 when out of range */
/* The id of the token whose text is exactly s[0..len) (raw text, as lm_token_text), or -1. */
int32_t lm_vocab_find(const lm_vocab *v, const char *s, size_t len);

/* Text -> ids. text[0..len) must be valid UTF-8 (else LM_ERR_INVALID, the message names the byte
 * offset). add_special: add what the vocab asks for around the text (BOS when lm_vocab_add_bos, EOS
 * when lm_vocab_add_eos; wpm: [CLS] ... [SEP]). parse_special: CONTROL tokens' texts in the input
 * (e.g. "<|im_start|>") become their ids; otherwise they are tokenized as plain text.
 * *ids is malloc'd (free() it; NULL when *n == 0). */
int lm_tokenize(const lm_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, int64_t *n, char *err, size_t errlen);
/* lm_tokenize with warnings for the caller to show (*warn: LM_TOKENIZE_WARN_* bits; warn may be NULL).
 * BOS_TWICE: the text starts with the BOS text (parse_special), so add_special added no second BOS.
 * A character that has no token, in a vocab with neither byte tokens nor an unknown token, is
 * LM_ERR_INVALID (the message names it and its byte offset). */
#define LM_TOKENIZE_WARN_BOS_TWICE 1u
int lm_tokenize_w(const lm_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                  int32_t **ids, int64_t *n, unsigned *warn, char *err, size_t errlen);

/* The raw text of token id as stored in the vocab (spm: "▁the", bpe: "Ġthe", <0x0A>); NUL-terminated,
 * lives as long as the vocab. NULL when id is out of range. */
const char *lm_token_text(const lm_vocab *v, int32_t id, size_t *len);
/* The bytes token id stands for (spm: "▁" -> " ", <0xXX> -> that byte; bpe: bytes-to-unicode undone;
 * wpm: "##" continuation joined); control tokens give their text, unused ones "". May be a partial
 * UTF-8 character. Lives as long as the vocab; NULL when id is out of range. */
const char *lm_token_piece(const lm_vocab *v, int32_t id, size_t *len);

/* Streaming detokeniser: feed ids one at a time, get back bytes that are safe to print: complete UTF-8
 * characters only. The trailing bytes of a character split across tokens are held back until it is
 * complete; invalid bytes become U+FFFD. The leading space of the first piece of the stream (only: a
 * BOS first takes that turn, as in llama.cpp) is dropped when the vocab adds a space prefix (spm).
 * When the vocab asks for it (tokenizer.ggml.clean_up_tokenization_spaces; wpm by default) " ," " ."
 * " ?" " !" " 's" " 'm" " 're" " 've" lose the space and " ' " becomes "'" (a trailing space is held
 * back until the next piece decides it). special: print CONTROL / UNKNOWN tokens as their text (else they print as nothing). */
typedef struct lm_detok lm_detok;
int lm_detok_create(const lm_vocab *v, bool special, lm_detok **out);
void lm_detok_free(lm_detok *d);
void lm_detok_reset(lm_detok *d);  /* start a new stream */
/* Bytes now ready, in *out (valid until the next call on d; *len may be 0). LM_ERR_INVALID for an id
 * out of range, LM_ERR_NOMEM. */
int lm_detok_push(lm_detok *d, int32_t id, const char **out, size_t *len);
/* End of stream: held-back bytes of an incomplete character come out as U+FFFD. */
int lm_detok_flush(lm_detok *d, const char **out, size_t *len);

/* ids -> text in one go (the streaming rules above, then flush); *text is malloc'd and NUL-terminated. */
int lm_detokenize(const lm_vocab *v, const int32_t *ids, int64_t n, bool special, char **text, size_t *len,
                  char *err, size_t errlen);

/* ======================================================================== model (models/model*.c) */

/* A decoder-only transformer resident on one device: hyper-parameters (read-only), weights (uploaded
 * once, kept in their file's type: F32, F16, BF16 or a GGML block format, mixed as the file has them;
 * decoded inside the kernels, so device memory is about the file's size), and its vocabulary. Architectures: "llama"
 * (Llama 1-3, Mistral, TinyLlama, SmolLM) and "qwen2". Also loads llama2.c checkpoints. */
typedef struct lm_model lm_model;

enum lm_rope_scaling { LM_ROPE_SCALING_NONE = 0, LM_ROPE_SCALING_LINEAR, LM_ROPE_SCALING_YARN };

typedef struct lm_hparams {
    char arch[32];          /* general.architecture: "llama", "qwen2", ... */
    char name[128];         /* general.name, or the file's base name */
    int32_t n_vocab;
    int32_t dim;            /* embedding length */
    int32_t n_layers;
    int32_t n_heads, n_kv_heads, head_dim;
    int32_t ffn_dim;
    int32_t n_ctx_train;    /* context length the model was trained with */
    float norm_eps;         /* RMSNorm epsilon */
    int32_t n_rot;          /* dims rotated by RoPE per head */
    int rope_mode;          /* RT_ROPE_ADJACENT (llama) or RT_ROPE_NEOX (qwen2) */
    float rope_base;
    enum lm_rope_scaling rope_scaling;
    float rope_factor;      /* context scaling factor (1 = none) */
    int32_t rope_n_ctx_orig;/* yarn: original context length */
    float yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    bool has_rope_freqs;    /* rope_freqs.weight (Llama 3.1+ per-frequency factors) */
    bool has_qkv_bias;      /* qwen2 */
    bool tied_output;       /* the output matrix is the token embedding */
    /* what some families add (0: off) */
    float embd_scale;       /* the embeddings multiplied by this (Gemma: sqrt(dim)); 0: 1 */
    float attn_scale;       /* attention scores multiplied by this; 0: 1/sqrt(head_dim) */
    float attn_softcap;     /* scores s -> c tanh(s / c) (Gemma 2) */
    float final_softcap;    /* logits likewise */
    int32_t swa_window;     /* sliding-window attention: a position sees the swa_window last keys */
    int32_t swa_pattern;    /* which layers slide: all when 1, else all but every swa_pattern-th
                             * (layer l is global when (l + 1) % swa_pattern == 0); 0: none */
    float rope_base_swa;    /* the RoPE base of sliding layers (0: rope_base) */
    int32_t n_expert, n_expert_used, expert_ffn_dim; /* mixture of experts */
    int32_t pooling_type;   /* <arch>.pooling_type (enum lm_pooling), -1 when the file has none */
    int32_t n_token_types;  /* BERT's token types (tokenizer.ggml.token_type_count) */
    int64_t n_params;       /* elements in all weight tensors */
    int weight_type;        /* enum lm_ggml_type of most matrices */
} lm_hparams;

typedef struct lm_load_opts {
    /* Called now and then while weights upload, with the fraction done (0..1). */
    void (*progress)(void *user, float done);
    void *user;
} lm_load_opts;

/* Whether vkllm runs GGUF architecture `name` (general.architecture), and the names it runs, ", "
 * between them (a static string). */
bool lm_arch_supported(const char *name);
const char *lm_arch_names(void);

/* CONSTRUCTOR: a GGUF model. LM_ERR_UNSUPPORTED names an unknown architecture or tensor type;
 * LM_ERR_FORMAT a missing or misshapen tensor; LM_ERR_DEVICE when the device cannot hold it (the
 * message says why). *out is NULL on failure. The model keeps ctx; ctx must outlive it. */
int lm_model_load(rt_ctx *ctx, const char *path, const lm_load_opts *opts, lm_model **out, char *err, size_t errlen);
/* CONSTRUCTOR: a llama2.c checkpoint (legacy v0 format) with its tokenizer.bin. */
int lm_model_load_llama2c(rt_ctx *ctx, const char *checkpoint, const char *tokenizer, const lm_load_opts *opts,
                          lm_model **out, char *err, size_t errlen);
/* DESTRUCTOR: sessions of the model must be freed first. */
void lm_model_free(lm_model *m);
const lm_hparams *lm_model_hparams(const lm_model *m);
const lm_vocab *lm_model_vocab(const lm_model *m);
/* Whether the model's device was lost (VK_ERROR_DEVICE_LOST): nothing on it runs any more. Any thread. */
bool lm_model_device_lost(const lm_model *m);
/* Bytes of device memory the weights use. */
uint64_t lm_model_device_bytes(const lm_model *m);
/* The model's GGUF file, kept open (its metadata in memory, its tensor pages dropped after the upload):
 * any key can be read with the lm_gguf getters while the model lives. NULL for a llama2.c checkpoint. */
const lm_gguf *lm_model_gguf(const lm_model *m);
/* The chat template: tokenizer.chat_template (name NULL) or tokenizer.chat_template.NAME; NULL when the
 * model has none (or it is not a string). Lives as long as the model. */
const char *lm_model_chat_template(const lm_model *m, const char *name);
/* Built-in chat templates for models that carry none (models/chat_builtin.c): "chatml", "llama2",
 * "llama3", "mistral", "gemma", "phi3", "zephyr", "deepseek"; NULL for another name.
 * lm_chat_builtin_name(i) lists them (NULL past the last). */
const char *lm_chat_builtin(const char *name);
const char *lm_chat_builtin_name(int i);

/* ======================================================================== batched contexts (models/ctx.c) */

/* A context evaluates batches of tokens of many sequences at once on one model: it owns the device
 * scratch of a pass of up to n_batch rows, the passes recorded so far (replayed when a batch of the
 * same shape comes again), and a pool of KV blocks of block_size positions each, shared by the
 * sequences through their block tables (paged attention): a sequence holds only the blocks its tokens
 * fill. Sequences are forked (the blocks shared, a shared partial block copied when either writes it)
 * and truncated; a new sequence whose tokens start like cached ones takes their blocks
 * (lm_ctx_seq_reuse: a shared system prompt, the earlier turns of a chat), and the blocks of freed
 * sequences stay cached, least recently used first out, until the pool needs them.
 *
 * Threads: one thread at a time calls a context's functions (and no other context on the same rt_ctx
 * at the same time); lm_ctx_abort may be called from any thread. */
typedef struct lm_ctx lm_ctx;

typedef struct lm_ctx_opts {
    int32_t n_ctx;          /* positions per sequence at most; 0: min(n_ctx_train, 4096) */
    int32_t n_batch;        /* rows per pass (a longer batch takes several passes); 0: 256 */
    int32_t n_seq_max;      /* sequences in one pass at most (1..256); 0: 1 */
    int32_t n_kv_blocks;    /* blocks in the pool; 0: room for n_seq_max sequences of n_ctx positions */
    int32_t block_size;     /* positions per block, a power of 2 up to 256; 0: 16 */
    bool kv_f32;            /* f32 KV cache (twice the memory) instead of the default f16 */
    bool embeddings;        /* passes give the final hidden states [rows wanted][dim] (after the output
                             * norm where the model has one) in place of logits (models/embed.c) */
} lm_ctx_opts;

int lm_ctx_create(lm_model *m, const lm_ctx_opts *opts, lm_ctx **out, char *err, size_t errlen);
void lm_ctx_free(lm_ctx *c);
/* A new empty sequence: its id (>= 0), or -LM_ERR_NOMEM. */
int32_t lm_ctx_seq_new(lm_ctx *c);
/* Frees the sequence; its full blocks stay cached for lm_ctx_seq_reuse. */
void lm_ctx_seq_free(lm_ctx *c, int32_t seq);
/* A new sequence holding seq's tokens, sharing its blocks: its id, or -LM_ERR_NOMEM. */
int32_t lm_ctx_seq_fork(lm_ctx *c, int32_t seq);
/* Keeps the first n tokens of the sequence. */
void lm_ctx_seq_truncate(lm_ctx *c, int32_t seq, int64_t n);
/* The sequence's tokens (valid until the next call that changes it) and their number. */
const int32_t *lm_ctx_seq_tokens(const lm_ctx *c, int32_t seq, int64_t *n);
/* For an empty sequence about to evaluate tokens[0..n): takes the cached blocks that hold the longest
 * prefix of them (whole blocks, at most n - 1 tokens) and returns how many tokens it took; the caller
 * evaluates the rest. */
int64_t lm_ctx_seq_reuse(lm_ctx *c, int32_t seq, const int32_t *tokens, int64_t n);

/* A batch: row i is token tokens[i] of sequence seq[i], at the next position of that sequence (a
 * sequence's rows in order); want[i] != 0 for the rows that produce logits (want NULL: the last row of
 * each sequence in the batch). */
typedef struct lm_batch {
    int64_t n;
    const int32_t *tokens;
    const int32_t *seq;
    const int8_t *want;
} lm_batch;
/* Evaluates the batch (several passes when it has more than n_batch rows or n_seq_max sequences): the
 * tokens join their sequences, and logits (if not NULL: [rows wanted][n_vocab], in row order) and
 * argmax (if not NULL: [rows wanted], the most likely next token, taken on the device) are filled.
 * Everything is checked before anything changes: LM_ERR_INVALID (a bad token id or sequence),
 * LM_ERR_CONTEXT_FULL (a sequence would pass n_ctx), LM_ERR_KV_FULL (not blocks enough: free some
 * sequences and retry). LM_ERR_ABORTED when lm_ctx_abort was called: the passes done are kept (their
 * tokens are in their sequences), the rest are not. */
int lm_ctx_eval(lm_ctx *c, const lm_batch *b, float *logits, int32_t *argmax, char *err, size_t errlen);
/* The same without waiting for the last pass: it returns once that pass is submitted (the earlier ones of
 * a long batch are done), so that the caller can work while the device does; lm_ctx_wait then waits and
 * fills logits and argmax, which must stay valid until then (the batch's arrays need not). Another call
 * that evaluates waits for a pending pass first. A pass that fails is undone in its sequences. */
int lm_ctx_submit(lm_ctx *c, const lm_batch *b, float *logits, int32_t *argmax, char *err, size_t errlen);
int lm_ctx_wait(lm_ctx *c, char *err, size_t errlen);
/* Whether a submitted pass is waiting for lm_ctx_wait. */
bool lm_ctx_pending(const lm_ctx *c);
/* Asks a running lm_ctx_eval to stop after its current pass (any thread). */
void lm_ctx_abort(lm_ctx *c);

typedef struct lm_kv_stats {
    int32_t n_blocks, block_size;
    int32_t used, cached, free; /* blocks in sequences, kept for reuse, neither */
    int32_t n_seqs;
    int64_t tokens;                      /* tokens the sequences hold, all together (used * block_size over
                                          * it: the pool's memory per live token, paging's waste) */
    int64_t prefix_queries, prefix_hits; /* blocks looked up by lm_ctx_seq_reuse, and found */
} lm_kv_stats;
void lm_ctx_kv_stats(const lm_ctx *c, lm_kv_stats *st);
int32_t lm_ctx_n_ctx(const lm_ctx *c);
int32_t lm_ctx_n_batch(const lm_ctx *c);
/* Tokens evaluated so far, all calls together. */
int64_t lm_ctx_n_evaluated(const lm_ctx *c);
const lm_model *lm_ctx_model(const lm_ctx *c);
/* Device memory: the KV pool, and the rest (activations, logits, inputs). */
void lm_ctx_memory(const lm_ctx *c, uint64_t *kv_bytes, uint64_t *scratch_bytes);
/* As lm_session_profile and lm_session_counts: the last pass of one row (prefill false) or more. */
int lm_ctx_profile(const lm_ctx *c, bool prefill,
                   void (*fn)(void *user, const char *kernel, double ns, double bytes, double flops), void *user);
void lm_ctx_counts(const lm_ctx *c, bool prefill, int *commands, int *barriers);

/* A session: one conversation: a batched context of one sequence (lm_ctx), for callers that run one
 * conversation at a time. Tokens are evaluated at positions n_past, n_past + 1, ...; the cache holds n_ctx positions, and
 * the session remembers which token is at each (lm_session_tokens), so that a new turn of a chat can
 * reuse what is cached (lm_session_sync). */
typedef struct lm_session lm_session;

typedef struct lm_session_opts {
    int32_t n_ctx;          /* positions in the KV cache; 0: min(n_ctx_train, 4096) */
    int32_t n_batch;        /* prompt tokens per prefill pass; 0: 256 */
    bool kv_f32;            /* f32 KV cache (twice the memory) instead of the default f16 */
} lm_session_opts;

int lm_session_create(lm_model *m, const lm_session_opts *opts, lm_session **out, char *err, size_t errlen);
void lm_session_free(lm_session *s);
int32_t lm_session_n_ctx(const lm_session *s);
int32_t lm_session_n_past(const lm_session *s);
/* Forget the cached positions from pos on (0: start a new conversation). */
void lm_session_rewind(lm_session *s, int32_t pos);
/* The tokens in the cache, positions 0 .. n_past - 1 (valid until the next call on s). */
const int32_t *lm_session_tokens(const lm_session *s, int32_t *n);
/* Tokens evaluated by this session so far, all calls together (prefill and decode steps). */
int64_t lm_session_n_evaluated(const lm_session *s);
/* Makes the cache hold ids[0..n): keeps the longest common prefix of ids and the cached tokens, forgets
 * the rest, and evaluates only the tokens after it (at least the last one, for its logits: logits, if
 * not NULL, gets the n_vocab logits after ids[n - 1]). *reused (may be NULL) is the number of cached
 * tokens kept. LM_ERR_CONTEXT_FULL when n > n_ctx (nothing is changed then). This is how a chat turn,
 * an edit of the last turn or a regeneration evaluates only what changed. */
int lm_session_sync(lm_session *s, const int32_t *ids, int64_t n, float *logits, int64_t *reused, char *err,
                    size_t errlen);
/* Evaluates n tokens (prefill in batches of n_batch through GEMMs). logits: NULL, or room for n_vocab
 * floats (the logits after the last token), or with all_logits room for n * n_vocab (one row per token,
 * for perplexity). LM_ERR_CONTEXT_FULL when n_past + n exceeds n_ctx, LM_ERR_INVALID when an id is out
 * of range. */
int lm_session_eval(lm_session *s, const int32_t *ids, int64_t n, float *logits, bool all_logits, char *err,
                    size_t errlen);
/* One decode step of one token through the recorded command buffer. With logits == NULL the argmax is
 * taken on the device and only its id comes back (*next); else the n_vocab logits are copied out and
 * *next is their argmax. */
int lm_session_step(lm_session *s, int32_t id, float *logits, int32_t *next, char *err, size_t errlen);
/* Device memory the session holds, in bytes: its KV cache, and the rest (activations, logits, inputs). */
void lm_session_memory(const lm_session *s, uint64_t *kv_bytes, uint64_t *scratch_bytes);
/* With a context created with profiling on: calls fn for every dispatch of the last decode step
 * (prefill: of the last prefill pass), with its kernel's name, GPU time in nanoseconds, what it moves
 * (bytes: its bindings, or what its op declared) and computes (flops: 0 when its op does not say).
 * Returns the number of dispatches timed (0 without timings). */
int lm_session_profile(const lm_session *s, bool prefill,
                       void (*fn)(void *user, const char *kernel, double ns, double bytes, double flops), void *user);
/* The commands (dispatches and copies) and barriers recorded in the last decode step (prefill: the last
 * prefill pass), with or without profiling; zeros before the first. */
void lm_session_counts(const lm_session *s, bool prefill, int *commands, int *barriers);
/* The model the session was created on. */
const lm_model *lm_session_model(const lm_session *s);

/* ======================================================================== embeddings (models/embed.c) */

/* How a sequence's hidden states become one vector: as <arch>.pooling_type says (llama.cpp's numbers). */
enum lm_pooling { LM_POOL_NONE = 0, LM_POOL_MEAN = 1, LM_POOL_CLS = 2, LM_POOL_LAST = 3 };
/* The model's pooling: the file's pooling_type; a file without one pools by the mean (encoders) or the
 * last token (decoders). */
int lm_model_pooling(const lm_model *m);
/* Whether the model attends in both directions (an encoder: bert, nomic-bert): it embeds, and does not
 * generate. */
bool lm_model_is_encoder(const lm_model *m);
/* Embeds n_inputs token sequences (ids[i][0..n_ids[i])): out [n_inputs][dim], each the pooled final
 * hidden state (decoders: after the output norm), L2-normalised when normalize. Inputs are batched into
 * passes of as many as fit; each must fit the model's context (LM_ERR_CONTEXT_FULL otherwise, naming
 * it) and be non-empty. */
int lm_embed_tokens(lm_model *m, const int32_t *const *ids, const int64_t *n_ids, int n_inputs, bool normalize,
                    float *out, char *err, size_t errlen);
/* Tokenizes each text as the model's tokenizer does for embeddings (add_special: [CLS] .. [SEP] for
 * WordPiece, BOS for the others) and embeds them; *n_tokens (may be NULL) gets the tokens of all inputs
 * (for OpenAI's usage). */
int lm_embed_texts(lm_model *m, const char *const *texts, int n_inputs, bool normalize, float *out,
                   int64_t *n_tokens, char *err, size_t errlen);

/* ======================================================================== chat templates (models/tmpl_*.c) */

/* A Jinja chat template, as Hugging Face renders them (Jinja2 with trim_blocks and lstrip_blocks, the
 * loop-controls extension, its tojson, raise_exception and strftime_now). The subset that real chat
 * templates use: {% if/elif/else %}, {% for %} (loop.*, else, filters and a condition on the
 * iterable), {% set %} (namespace() attributes, tuples, block set), {% macro %} and {% call %},
 * {% break/continue %}, whitespace control, expressions (arithmetic, comparison, in, ~, and/or/not,
 * conditional expressions, slicing), tests, filters and string/dict/list methods. A template that
 * cannot be parsed or rendered is LM_ERR_INVALID with "line L, column C: ..." in the message;
 * raise_exception('msg') gives "line L, column C: template error: msg". Rendering is bounded (recursion depth, loop
 * iterations, output size: a bound hit is LM_ERR_INVALID naming it). A parsed template is read-only:
 * any number of threads may render it at once. */
typedef struct lm_tmpl lm_tmpl;
int lm_tmpl_parse(const char *src, size_t len, lm_tmpl **out, char *err, size_t errlen);
void lm_tmpl_free(lm_tmpl *t);
/* Renders t with the variables of context_json (a JSON object's text: messages, add_generation_prompt,
 * bos_token, eos_token, tools, ...; every key becomes a variable). *out is malloc'd, NUL-terminated. */
int lm_tmpl_render(const lm_tmpl *t, const char *context_json, size_t context_len, char **out, size_t *out_len,
                   char *err, size_t errlen);
/* lm_tmpl_render with strftime_now's clock at now (seconds since 1970, shown in local time) instead of
 * the current time: a reproducible render. */
int lm_tmpl_render_at(const lm_tmpl *t, const char *context_json, size_t context_len, int64_t now, char **out,
                      size_t *out_len, char *err, size_t errlen);
/* Lowers t's render bounds (a fuzzer's, or a caller that wants renders cheap): max_iters loop iterations
 * in one render (all loops together; also the items of a list made by + or range()), max_output bytes of
 * output and of any one string. 0, or more than the default (1M iterations, 16 MiB), keeps the default.
 * Call it before t is shared between threads. */
void lm_tmpl_set_limits(lm_tmpl *t, int64_t max_iters, size_t max_output);

/* ======================================================================== sampler (models/sampler.c) */

/* The token sampler: one step's logits in, one token id out. Stop conditions are the caller's.
 *
 * Default mode: llama.cpp's default sampler chain, in its order (each stage sees what the previous
 * one left):
 *   penalties    for each distinct token among the last repeat_last_n accepted ones (count = its
 *                occurrences there): logit = logit > 0 ? logit / repeat_penalty : logit * repeat_penalty,
 *                then logit -= count * frequency_penalty + presence_penalty;
 *   top-k        keep the top_k highest logits;
 *   top-p        softmax of what is left (at temperature 1), sorted descending: keep the shortest
 *                prefix whose cumulative probability is >= top_p;
 *   min-p        keep the tokens with p >= min_p * p_max, i.e. logit >= max_logit + ln(min_p);
 *   temperature  logit / temp;
 *   softmax and one draw from the sampler's seeded RNG (splitmix64, 53-bit uniform).
 * temp <= 0 is greedy: the argmax of the penalised logits, the lowest id on ties, and no RNG draw.
 * Ties between equal logits are ordered by ascending id in every stage. NaN logits never win. Cost:
 * a few passes over the logits per token, O(n_vocab log top_k) for top-k, no sort of the vocabulary
 * (top-p without top-k finds the nucleus by a weighted quickselect, expected linear time, among the
 * tokens with p >= (1 - top_p) / (n_vocab - 1)).
 *
 * llama2.c mode (llama2c = true): karpathy/llama2.c run.c's sampler, as described in
 * ../shared/models/README.md section 2: temp <= 0 is argmax (lowest id on ties); otherwise logits /
 * temp, softmax in float32, one coin from llama2.c's xorshift64* RNG (state = seed, which must not be
 * 0), then, when 0 < top_p < 1, top-p by llama2.c's rule (keep p >= (1 - top_p) / (n_vocab - 1),
 * sort descending (ties: ascending id), cut after the first cumulative p > top_p, return the first
 * token whose running sum exceeds coin * that cumulative p), else plain multinomial
 * (first token whose running sum exceeds coin). top_k, min_p and the penalties are ignored.
 *
 * Determinism: the same params (seed included), accepted tokens and logits give the same choices,
 * on any machine. A sampler belongs to one thread at a time. */
typedef struct lm_sampler lm_sampler;

#define LM_SAMPLER_DEFAULT_SEED 42u          /* the seed lm_sampler_defaults() sets */
#define LM_SAMPLER_SEED_RANDOM UINT64_MAX    /* ask lm_sampler_create() to pick a seed (see lm_sampler_seed) */

typedef struct lm_sampler_params {
    float temp;              /* temperature; <= 0: greedy. Finite. Default 0.8 */
    int32_t top_k;           /* >= 0; 0 (or >= n_vocab): off. Default 40 */
    float top_p;             /* (0, 1]; 1: off. llama2c mode: [0, 1], 0 or 1: off. Default 0.95 */
    float min_p;             /* [0, 1]; 0: off. Default 0.05 */
    float repeat_penalty;    /* > 0, finite; 1: off. Default 1.0 */
    float frequency_penalty; /* finite; 0: off. Default 0 */
    float presence_penalty;  /* finite; 0: off. Default 0 */
    int32_t repeat_last_n;   /* penalty window in accepted tokens, >= 0; 0: penalties off. Default 64.
                              * (llama.cpp's -1, "the context size", is for the caller to resolve.) */
    uint64_t seed;           /* default LM_SAMPLER_DEFAULT_SEED; LM_SAMPLER_SEED_RANDOM: pick one */
    bool llama2c;            /* llama2.c's sampler instead of llama.cpp's chain. Default false */
} lm_sampler_params;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1.0,
 * frequency/presence 0, repeat_last_n 64, seed LM_SAMPLER_DEFAULT_SEED, llama2c false. */
void lm_sampler_defaults(lm_sampler_params *p);
/* LM_OK, or LM_ERR_INVALID with a message naming the bad field (e.g. "top_p = 1.5: must be in
 * (0, 1]"). Lets a front end check its flags before loading a model. */
int lm_sampler_params_check(const lm_sampler_params *p, char *err, size_t errlen);
/* True when sampling is a plain argmax of the raw logits (temp <= 0 and no active penalty): the
 * caller may then take the argmax on the GPU (lowest id on ties) and skip reading logits back. */
bool lm_sampler_is_greedy(const lm_sampler_params *p);

/* CONSTRUCTOR: checks the params (as lm_sampler_params_check) and n_vocab >= 1; LM_ERR_INVALID or
 * LM_ERR_NOMEM, *out NULL on failure. DESTRUCTOR: lm_sampler_free(NULL) is a no-op. */
int lm_sampler_create(const lm_sampler_params *p, int32_t n_vocab, lm_sampler **out, char *err, size_t errlen);
void lm_sampler_free(lm_sampler *s);
/* Forgets the accepted tokens and puts the RNG back to the seed: the next choices repeat. */
void lm_sampler_reset(lm_sampler *s);
/* The seed in use (the one picked when LM_SAMPLER_SEED_RANDOM was asked): print it to replay a run. */
uint64_t lm_sampler_seed(const lm_sampler *s);
/* Appends a token to the penalty window: call it for every prompt token and every generated token.
 * Ids outside [0, n_vocab) are ignored. */
void lm_sampler_accept(lm_sampler *s, int32_t id);
/* Chooses the next token from logits[n_vocab]. The logits are used as scratch and modified (the
 * penalties are applied in place). Always returns an id in [0, n_vocab); it does not accept it. */
int32_t lm_sampler_sample(lm_sampler *s, float *logits);

/* ======================================================================== chat (models/chat.c) */

/* A conversation with a model through one session: its messages, the template that formats them, and
 * generation of the assistant's replies. Each turn re-renders the whole conversation and syncs the
 * session with it (lm_session_sync), so only tokens after the longest common prefix are evaluated:
 * a new turn costs its own tokens, a regenerated or edited last turn reuses everything before it.
 * When the rendered conversation no longer fits (with room for the reply), the oldest turns after
 * the system prompt are dropped from what is sent to the model (not from the message list) until it
 * fits (lm_chat_stats.dropped says how many; the count is kept for the next turns while it still
 * falls on a turn boundary, so that the rendered prefix, and the cache, stay the same until the
 * context fills again). The template sees {"messages": [{"role", "content"}...],
 * "add_generation_prompt", "bos_token", "eos_token"} (the vocab's BOS / EOS texts, "" when none); its
 * output is tokenized with add_special and parse_special. A chat belongs to one thread at a time. */
typedef struct lm_chat lm_chat;

typedef struct lm_chat_opts {
    const char *template_src;  /* a template's text; NULL: the model's own, else "chatml" */
    int32_t n_reserve;         /* context positions kept free for the reply; 0: min(512, n_ctx / 4) */
} lm_chat_opts;

/* CONSTRUCTOR: s must belong to m and outlive the chat; the chat takes over the session's cache.
 * LM_ERR_INVALID when the template does not parse (the message says where). opts may be NULL. */
int lm_chat_create(lm_model *m, lm_session *s, const lm_chat_opts *opts, lm_chat **out, char *err, size_t errlen);
void lm_chat_free(lm_chat *c);
/* Appends a message (role "system", "user", "assistant" or "tool"; content valid UTF-8 without NUL
 * bytes; len bytes, copied). LM_ERR_INVALID otherwise, the chat unchanged. */
int lm_chat_add(lm_chat *c, const char *role, const char *content, size_t len, char *err, size_t errlen);
int lm_chat_n_messages(const lm_chat *c);
/* Message i's role and content (NUL-terminated; valid until the chat changes). */
const char *lm_chat_role(const lm_chat *c, int i);
const char *lm_chat_content(const lm_chat *c, int i, size_t *len);
/* Keeps the first n messages (0: a new conversation). */
void lm_chat_truncate(lm_chat *c, int n);
/* Sets (text non-NULL) or removes (NULL) the system prompt: message 0 when its role is "system". */
int lm_chat_set_system(lm_chat *c, const char *text, char *err, size_t errlen);
/* The conversation as the template renders it (add_generation_prompt as asked). *out is malloc'd. */
int lm_chat_render(const lm_chat *c, bool add_generation_prompt, char **out, size_t *len, char *err, size_t errlen);

typedef struct lm_chat_gen {
    const lm_sampler_params *sampling; /* NULL: greedy */
    int32_t max_tokens;                /* reply length bound; <= 0: until the context is full */
    const char *const *stop;           /* stop strings (NULL-terminated list, may be NULL) */
    /* Called with each piece of reply text as it becomes final (complete UTF-8, never part of a stop
     * string); return false to stop the reply there. */
    bool (*on_text)(void *user, const char *text, size_t len);
    void *user;
    /* Set from another thread or a signal handler to stop the reply after the current token. */
    const volatile int *abort;
} lm_chat_gen;

enum lm_chat_finish { LM_CHAT_STOP_EOG = 0, LM_CHAT_STOP_STRING, LM_CHAT_STOP_LENGTH, LM_CHAT_STOP_CONTEXT,
                      LM_CHAT_STOP_ABORT };

typedef struct lm_chat_stats {
    int64_t prompt_tokens;     /* tokens of the rendered conversation */
    int64_t reused;            /* of those, taken from the cache */
    int64_t evaluated;         /* prompt tokens evaluated for this reply (prompt_tokens - reused) */
    int32_t dropped;           /* messages left out because the context was full (0: none) */
    int64_t reply_tokens;      /* tokens sampled, the end-of-generation token included; each but the
                                * last went through one decode step */
    enum lm_chat_finish finish;
    double prompt_s, reply_s;  /* wall time of the prompt evaluation and of the reply */
} lm_chat_stats;

/* Generates the assistant's reply to the conversation and appends it as an assistant message (also
 * when stopped early: the text so far). Stops at the model's end-of-generation tokens (or a BOS), a
 * stop string (cut before it), max_tokens, a full context, on_text returning false or *abort (both
 * LM_CHAT_STOP_ABORT; *abort is read after each token, so a prompt being evaluated runs to its end).
 * The text is the reply tokens' bytes as the model wrote them (a leading space included). Greedy
 * sampling takes the argmax on the device; a sampler is kept from reply to reply while the params stay
 * the same (its RNG goes on: a regenerated reply differs), and sees the last repeat_last_n prompt tokens
 * as accepted. LM_ERR_CONTEXT_FULL when even the system prompt and the last turn leave no room; other
 * errors as lm_session_sync / lm_session_step give them. On error no message is added. st may be NULL. */
int lm_chat_reply(lm_chat *c, const lm_chat_gen *g, lm_chat_stats *st, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
