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


/* ======================================================================== tokenizer (models/tok_*.c) */

/* ======================================================================== model (models/model*.c) */

/* ======================================================================== sampler (models/sampler.c) */

#ifdef __cplusplus
}
#endif
#endif
