/* gguf.c: the GGUF reader (versions 2 and 3), memory-mapped, checked before use.
 *
 * Byte layout. Everything is little-endian and packed: there is no padding between fields except the
 * one pad before the data section.
 *
 *   offset  size  field
 *        0     4  magic      "GGUF" (47 47 55 46)
 *        4     4  version    u32: 2 or 3 (same layout; v1 used u32 counts and lengths: refused)
 *        8     8  n_tensors  u64
 *       16     8  n_kv       u64
 *       24        n_kv key/value pairs, each:
 *                   key      str (printable ASCII, 1..65535 bytes, unique)
 *                   vtype    u32 (enum lm_gguf_vtype)
 *                   value    u8/i8/bool: 1 byte (bool is 0 or 1); u16/i16: 2; u32/i32/f32: 4;
 *                            u64/i64/f64: 8; str; or arr = u32 elem_vtype, u64 n, then n packed
 *                            values of elem_vtype (arrays of arrays are not allowed here)
 *                 then n_tensors tensor infos, each:
 *                   name     str (1..64 bytes, unique)
 *                   n_dims   u32 (1..4)
 *                   ne       u64[n_dims], ne0 (the contiguous dimension) first; each >= 1
 *                   type     u32 (enum lm_ggml_type)
 *                   offset   u64, relative to the data section, a multiple of the alignment
 *                 zero padding up to a multiple of the alignment (key general.alignment, a u32
 *                 power of two; 32 when absent)
 *        data     tensor bytes: a tensor holds ne0*ne1*ne2*ne3 / block_size blocks of type_size
 *                 bytes; ne0 is a multiple of block_size. Tensors do not overlap.
 *
 *   str = u64 length, then that many bytes (UTF-8, no NUL terminator).
 *
 * Every count, length, dimension, type and offset is checked against the bytes left in the file and
 * the limits above before it is used, with checked arithmetic; a failure names the key or tensor and
 * the byte offset. Key and tensor names are looked up through small open-addressing hash tables.
 */
#include "lm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_HEADER_SIZE 24
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY 65535         /* bytes in a key (the GGUF spec's limit) */
#define GGUF_MAX_NAME 64           /* bytes in a tensor name (the GGUF spec's limit) */
#define GGUF_MIN_KV_BYTES 14       /* key length 8 + 1 key byte + vtype 4 + 1 value byte */
#define GGUF_MIN_TENSOR_BYTES 33   /* name length 8 + 1 + n_dims 4 + one dim 8 + type 4 + offset 8 */

/* ---------------------------------------------------------------- type tables */

static const struct {
    const char *name;
    int64_t block; /* elements per block */
    size_t size;   /* bytes per block */
} ggml_types[LM_GGML_TYPE_COUNT] = {
    [LM_GGML_F32] = { "F32", 1, 4 },          [LM_GGML_F16] = { "F16", 1, 2 },
    [LM_GGML_Q4_0] = { "Q4_0", 32, 18 },      [LM_GGML_Q4_1] = { "Q4_1", 32, 20 },
    [LM_GGML_Q5_0] = { "Q5_0", 32, 22 },      [LM_GGML_Q5_1] = { "Q5_1", 32, 24 },
    [LM_GGML_Q8_0] = { "Q8_0", 32, 34 },      [LM_GGML_Q8_1] = { "Q8_1", 32, 36 },
    [LM_GGML_Q2_K] = { "Q2_K", 256, 84 },     [LM_GGML_Q3_K] = { "Q3_K", 256, 110 },
    [LM_GGML_Q4_K] = { "Q4_K", 256, 144 },    [LM_GGML_Q5_K] = { "Q5_K", 256, 176 },
    [LM_GGML_Q6_K] = { "Q6_K", 256, 210 },    [LM_GGML_Q8_K] = { "Q8_K", 256, 292 },
    [LM_GGML_IQ2_XXS] = { "IQ2_XXS", 256, 66 }, [LM_GGML_IQ2_XS] = { "IQ2_XS", 256, 74 },
    [LM_GGML_IQ3_XXS] = { "IQ3_XXS", 256, 98 }, [LM_GGML_IQ1_S] = { "IQ1_S", 256, 50 },
    [LM_GGML_IQ4_NL] = { "IQ4_NL", 32, 18 },  [LM_GGML_IQ3_S] = { "IQ3_S", 256, 110 },
    [LM_GGML_IQ2_S] = { "IQ2_S", 256, 82 },   [LM_GGML_IQ4_XS] = { "IQ4_XS", 256, 136 },
    [LM_GGML_I8] = { "I8", 1, 1 },            [LM_GGML_I16] = { "I16", 1, 2 },
    [LM_GGML_I32] = { "I32", 1, 4 },          [LM_GGML_I64] = { "I64", 1, 8 },
    [LM_GGML_F64] = { "F64", 1, 8 },          [LM_GGML_IQ1_M] = { "IQ1_M", 256, 56 },
    [LM_GGML_BF16] = { "BF16", 1, 2 },        [LM_GGML_TQ1_0] = { "TQ1_0", 256, 54 },
    [LM_GGML_TQ2_0] = { "TQ2_0", 256, 66 },   [LM_GGML_MXFP4] = { "MXFP4", 32, 17 },
    [LM_GGML_NVFP4] = { "NVFP4", 64, 36 },    [LM_GGML_Q1_0] = { "Q1_0", 128, 18 },
    [LM_GGML_Q2_0] = { "Q2_0", 64, 18 },
};

const char *lm_gguf_type_name(int type)
{
    return type >= 0 && type < LM_GGML_TYPE_COUNT ? ggml_types[type].name : NULL;
}

int64_t lm_gguf_type_block(int type)
{
    return lm_gguf_type_name(type) ? ggml_types[type].block : 0;
}

size_t lm_gguf_type_size(int type)
{
    return lm_gguf_type_name(type) ? ggml_types[type].size : 0;
}

static bool mul_size(size_t a, size_t b, size_t *out)
{
    if (b && a > SIZE_MAX / b)
        return false;
    *out = a * b;
    return true;
}

static bool add_size(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b)
        return false;
    *out = a + b;
    return true;
}

size_t lm_gguf_row_size(int type, int64_t n)
{
    int64_t block = lm_gguf_type_block(type);
    size_t bytes;
    if (!block || n < 0 || n % block || (uint64_t)(n / block) > SIZE_MAX ||
        !mul_size((size_t)(n / block), ggml_types[type].size, &bytes))
        return 0;
    return bytes;
}

static const char *const vtype_names[] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                           "bool", "str", "arr", "u64", "i64", "f64" };
/* bytes of a scalar value; 0 for str and arr */
static const uint8_t vtype_sizes[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
#define N_VTYPES (sizeof vtype_names / sizeof vtype_names[0])

const char *lm_gguf_vtype_name(int vtype)
{
    return vtype >= 0 && (size_t)vtype < N_VTYPES ? vtype_names[vtype] : "?";
}

/* ---------------------------------------------------------------- name index */

/* Open addressing on FNV-1a: slot holds index+1 (0 = empty); names[i] is entry i's name. */
struct name_index {
    int64_t *slot;
    const char **names;
    size_t mask;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static bool name_index_init(struct name_index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    ix->names = calloc(n ? n : 1, sizeof *ix->names);
    ix->mask = cap - 1;
    return ix->slot && ix->names;
}

static void name_index_free(struct name_index *ix)
{
    free(ix->slot);
    free(ix->names);
}

static int64_t name_index_find(const struct name_index *ix, const char *name)
{
    if (!ix->slot || !name)
        return -1;
    for (size_t h = (size_t)hash_name(name) & ix->mask;; h = (h + 1) & ix->mask) {
        int64_t s = ix->slot[h];
        if (!s)
            return -1;
        if (!strcmp(ix->names[s - 1], name))
            return s - 1;
    }
}

/* Adds entry i (capacity is at least twice the entry count, so a free slot exists). Returns the
 * index of an earlier entry with the same name, or -1 after adding. */
static int64_t name_index_add(struct name_index *ix, const char *name, int64_t i)
{
    size_t h = (size_t)hash_name(name) & ix->mask;
    for (; ix->slot[h]; h = (h + 1) & ix->mask)
        if (!strcmp(ix->names[ix->slot[h] - 1], name))
            return ix->slot[h] - 1;
    ix->slot[h] = i + 1;
    ix->names[i] = name;
    return -1;
}

/* ---------------------------------------------------------------- the handle */

struct gguf_kv {
    char *key;          /* NUL-terminated copy */
    uint32_t type;      /* enum lm_gguf_vtype */
    uint32_t elem_type; /* arrays: element vtype */
    uint64_t n;         /* arrays: element count; scalars: 1 */
    size_t off;         /* file offset of the scalar value or of the first array element */
    char *str;          /* string values: NUL-terminated copy */
    size_t str_len;
    size_t *str_off;    /* string arrays: file offset of each element's u64 length */
};

struct lm_gguf {
    const uint8_t *base; /* the mapping (NULL for an empty file) */
    size_t size;
    uint32_t version;
    size_t alignment, data_off;
    int64_t n_kv, n_tensors;
    struct gguf_kv *kv;             /* [n_kv] */
    lm_gguf_tensor_info *tensors;   /* [n_tensors]; names owned here */
    struct name_index kv_index, tensor_index;
};

void lm_gguf_close(lm_gguf *g)
{
    if (!g)
        return;
    for (int64_t i = 0; g->kv && i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str);
        free(g->kv[i].str_off);
    }
    for (int64_t i = 0; g->tensors && i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    name_index_free(&g->kv_index);
    name_index_free(&g->tensor_index);
    if (g->base)
        munmap((void *)g->base, g->size);
    free(g);
}

/* ---------------------------------------------------------------- checked reading */

typedef struct reader {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    char ctx[160]; /* where we are: "header", "key 'general.name'", "tensor 'output.weight'" */
    char *err;
    size_t errlen;
} reader;

__attribute__((format(printf, 3, 4)))
static int fail(reader *r, int status, const char *fmt, ...)
{
    if (r->err && r->errlen) {
        int n = snprintf(r->err, r->errlen, "%s: %s%s", r->path, r->ctx, r->ctx[0] ? ": " : "");
        if (n >= 0 && (size_t)n < r->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return status;
}

/* LM_OK when n more bytes are left at the cursor. */
static int need(reader *r, uint64_t n, const char *what)
{
    if (n <= r->size - r->pos)
        return LM_OK;
    return fail(r, LM_ERR_FORMAT, "truncated: %s at byte %zu needs %llu bytes, the file ends at byte %zu",
                what, r->pos, (unsigned long long)n, r->size);
}

static int rd_u32(reader *r, const char *what, uint32_t *v)
{
    int rc = need(r, 4, what);
    if (rc)
        return rc;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return LM_OK;
}

static int rd_u64(reader *r, const char *what, uint64_t *v)
{
    int rc = need(r, 8, what);
    if (rc)
        return rc;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return LM_OK;
}

/* A str: its bytes start at *off and are *len long; at most max bytes. */
static int rd_str(reader *r, const char *what, uint64_t max, size_t *off, size_t *len)
{
    size_t at = r->pos;
    uint64_t n;
    int rc = rd_u64(r, what, &n);
    if (rc)
        return rc;
    if (n > max)
        return fail(r, LM_ERR_FORMAT, "%s at byte %zu is %llu bytes long, more than the limit %llu",
                    what, at, (unsigned long long)n, (unsigned long long)max);
    if (n > r->size - r->pos)
        return fail(r, LM_ERR_FORMAT, "truncated: %s at byte %zu is %llu bytes long, only %zu are left",
                    what, at, (unsigned long long)n, r->size - r->pos);
    *off = r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return LM_OK;
}

static char *copy_str(const uint8_t *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, p, len);
        s[len] = 0;
    }
    return s;
}

/* ---------------------------------------------------------------- parsing */

static int parse_header(reader *r, lm_gguf *g)
{
    static const uint8_t magic[4] = { 'G', 'G', 'U', 'F' };
    snprintf(r->ctx, sizeof r->ctx, "header");
    int rc = need(r, 4, "the magic");
    if (rc)
        return rc;
    if (memcmp(r->p, magic, 4))
        return fail(r, LM_ERR_FORMAT, "bad magic %02x %02x %02x %02x at byte 0 (want \"GGUF\"): not a GGUF file",
                    r->p[0], r->p[1], r->p[2], r->p[3]);
    r->pos = 4;
    if ((rc = rd_u32(r, "the version", &g->version)))
        return rc;
    if (g->version == 1)
        return fail(r, LM_ERR_UNSUPPORTED, "GGUF version 1 (at byte 4) is not supported, only 2 and 3");
    if (g->version >= 0x01000000u && (g->version & 0xffffu) == 0)
        return fail(r, LM_ERR_UNSUPPORTED, "version field 0x%08x at byte 4 looks big-endian: "
                    "big-endian GGUF files are not supported", g->version);
    if (g->version != 2 && g->version != 3)
        return fail(r, g->version > 3 ? LM_ERR_UNSUPPORTED : LM_ERR_FORMAT,
                    "unknown GGUF version %u at byte 4 (2 and 3 are supported)", g->version);

    uint64_t n_tensors, n_kv;
    if ((rc = rd_u64(r, "the tensor count", &n_tensors)) || (rc = rd_u64(r, "the key/value count", &n_kv)))
        return rc;
    /* Each record takes a minimum number of bytes, so the counts are bounded by the file size. */
    size_t left = r->size - r->pos;
    if (n_kv > left / GGUF_MIN_KV_BYTES)
        return fail(r, LM_ERR_FORMAT, "key/value count %llu at byte 16 is absurd (or the file is truncated): "
                    "the %zu bytes left cannot hold that many",
                    (unsigned long long)n_kv, left);
    if (n_tensors > left / GGUF_MIN_TENSOR_BYTES)
        return fail(r, LM_ERR_FORMAT, "tensor count %llu at byte 8 is absurd (or the file is truncated): "
                    "the %zu bytes left cannot hold that many",
                    (unsigned long long)n_tensors, left);
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;
    return LM_OK;
}

/* Checks n packed bool bytes at p are 0 or 1. */
static int check_bools(reader *r, size_t off, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (r->p[off + i] > 1)
            return fail(r, LM_ERR_FORMAT, "bool value %u at byte %zu is neither 0 nor 1",
                        r->p[off + i], off + (size_t)i);
    return LM_OK;
}

static int parse_array(reader *r, struct gguf_kv *k)
{
    size_t at = r->pos;
    uint64_t n;
    int rc;
    if ((rc = rd_u32(r, "the array element type", &k->elem_type)))
        return rc;
    if (k->elem_type >= N_VTYPES)
        return fail(r, LM_ERR_FORMAT, "unknown array element type %u at byte %zu", k->elem_type, at);
    if (k->elem_type == LM_GGUF_ARR)
        return fail(r, LM_ERR_UNSUPPORTED, "array of arrays at byte %zu is not supported", at);
    if ((rc = rd_u64(r, "the array length", &n)))
        return rc;
    k->n = n;
    k->off = r->pos;
    size_t left = r->size - r->pos;
    if (k->elem_type == LM_GGUF_STR) {
        if (n > left / 8)
            return fail(r, LM_ERR_FORMAT, "array of %llu strings at byte %zu cannot fit in the %zu bytes left",
                        (unsigned long long)n, at, left);
        /* n <= file size / 8, so this product cannot overflow */
        k->str_off = malloc((n ? (size_t)n : 1) * sizeof *k->str_off);
        if (!k->str_off)
            return fail(r, LM_ERR_NOMEM, "out of memory indexing %llu strings", (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            size_t off, len;
            k->str_off[i] = r->pos;
            if ((rc = rd_str(r, "a string array element", UINT64_MAX, &off, &len)))
                return rc;
        }
        return LM_OK;
    }
    size_t bytes;
    if (n > SIZE_MAX || !mul_size((size_t)n, vtype_sizes[k->elem_type], &bytes) || bytes > left)
        return fail(r, LM_ERR_FORMAT, "truncated: array of %llu %s at byte %zu does not fit in the %zu bytes left",
                    (unsigned long long)n, vtype_names[k->elem_type], at, left);
    if (k->elem_type == LM_GGUF_BOOL && (rc = check_bools(r, r->pos, n)))
        return rc;
    r->pos += bytes;
    return LM_OK;
}

static int parse_value(reader *r, struct gguf_kv *k)
{
    int rc;
    k->n = 1;
    k->off = r->pos;
    if (k->type == LM_GGUF_ARR)
        return parse_array(r, k);
    if (k->type == LM_GGUF_STR) {
        size_t off, len;
        if ((rc = rd_str(r, "the string value", UINT64_MAX, &off, &len)))
            return rc;
        k->str = copy_str(r->p + off, len);
        k->str_len = len;
        return k->str ? LM_OK : fail(r, LM_ERR_NOMEM, "out of memory copying a %zu-byte string", len);
    }
    if ((rc = need(r, vtype_sizes[k->type], "the value")))
        return rc;
    if (k->type == LM_GGUF_BOOL && (rc = check_bools(r, r->pos, 1)))
        return rc;
    r->pos += vtype_sizes[k->type];
    return LM_OK;
}

static bool key_chars_ok(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return false;
    return true;
}

static int parse_kvs(reader *r, lm_gguf *g)
{
    int rc;
    g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    if (!g->kv || !name_index_init(&g->kv_index, (size_t)g->n_kv))
        return fail(r, LM_ERR_NOMEM, "out of memory for %lld keys", (long long)g->n_kv);
    for (int64_t i = 0; i < g->n_kv; i++) {
        struct gguf_kv *k = &g->kv[i];
        size_t at = r->pos, off, len;
        snprintf(r->ctx, sizeof r->ctx, "key/value #%lld", (long long)i);
        if ((rc = rd_str(r, "the key", GGUF_MAX_KEY, &off, &len)))
            return rc;
        if (len == 0)
            return fail(r, LM_ERR_FORMAT, "empty key at byte %zu", at);
        if (!key_chars_ok(r->p + off, len))
            return fail(r, LM_ERR_FORMAT, "key at byte %zu holds a byte that is not printable ASCII", at);
        if (!(k->key = copy_str(r->p + off, len)))
            return fail(r, LM_ERR_NOMEM, "out of memory");
        snprintf(r->ctx, sizeof r->ctx, "key '%.100s'", k->key);
        int64_t first = name_index_add(&g->kv_index, k->key, i);
        if (first >= 0)
            return fail(r, LM_ERR_FORMAT, "duplicate key at byte %zu (key/value #%lld, first seen as #%lld)",
                        at, (long long)i, (long long)first);
        size_t type_at = r->pos;
        if ((rc = rd_u32(r, "the value type", &k->type)))
            return rc;
        if (k->type >= N_VTYPES)
            return fail(r, LM_ERR_FORMAT, "unknown value type %u at byte %zu", k->type, type_at);
        if ((rc = parse_value(r, k)))
            return rc;
    }
    return LM_OK;
}

/* general.alignment: a u32 power of two when present. */
static int parse_alignment(reader *r, lm_gguf *g)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = name_index_find(&g->kv_index, "general.alignment");
    if (i < 0)
        return LM_OK;
    const struct gguf_kv *k = &g->kv[i];
    snprintf(r->ctx, sizeof r->ctx, "key 'general.alignment'");
    if (k->type != LM_GGUF_U32)
        return fail(r, LM_ERR_FORMAT, "value at byte %zu has type %s, want u32", k->off, vtype_names[k->type]);
    uint32_t a;
    memcpy(&a, r->p + k->off, 4);
    if (a == 0 || (a & (a - 1)))
        return fail(r, LM_ERR_FORMAT, "alignment %u at byte %zu is not a power of two", a, k->off);
    g->alignment = a;
    return LM_OK;
}

static int parse_tensor(reader *r, lm_gguf *g, int64_t i)
{
    lm_gguf_tensor_info *t = &g->tensors[i];
    size_t at = r->pos, off, len;
    int rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor info #%lld", (long long)i);
    if ((rc = rd_str(r, "the tensor name", GGUF_MAX_NAME, &off, &len)))
        return rc;
    if (len == 0 || memchr(r->p + off, 0, len))
        return fail(r, LM_ERR_FORMAT, "tensor name at byte %zu is empty or holds a NUL byte", at);
    char *name = copy_str(r->p + off, len);
    if (!(t->name = name))
        return fail(r, LM_ERR_NOMEM, "out of memory");
    snprintf(r->ctx, sizeof r->ctx, "tensor '%s'", name);
    int64_t first = name_index_add(&g->tensor_index, name, i);
    if (first >= 0)
        return fail(r, LM_ERR_FORMAT, "duplicate tensor name at byte %zu (tensor #%lld, first seen as #%lld)",
                    at, (long long)i, (long long)first);

    uint32_t n_dims;
    size_t dims_at = r->pos;
    if ((rc = rd_u32(r, "n_dims", &n_dims)))
        return rc;
    if (n_dims < 1 || n_dims > 4)
        return fail(r, LM_ERR_FORMAT, "n_dims %u at byte %zu is not in 1..4", n_dims, dims_at);
    t->n_dims = (int)n_dims;
    t->n_elements = 1;
    for (int d = 0; d < 4; d++) {
        uint64_t ne = 1;
        size_t ne_at = r->pos;
        if (d < t->n_dims && (rc = rd_u64(r, "a dimension", &ne)))
            return rc;
        if (ne == 0)
            return fail(r, LM_ERR_FORMAT, "dimension ne%d at byte %zu is zero", d, ne_at);
        if (ne > INT64_MAX)
            return fail(r, LM_ERR_FORMAT, "dimension ne%d at byte %zu is negative (%lld)", d, ne_at, (long long)ne);
        if ((int64_t)ne > INT64_MAX / t->n_elements)
            return fail(r, LM_ERR_FORMAT, "element count overflows at dimension ne%d (byte %zu)", d, ne_at);
        t->ne[d] = (int64_t)ne;
        t->n_elements *= (int64_t)ne;
    }

    uint32_t type;
    size_t type_at = r->pos;
    if ((rc = rd_u32(r, "the tensor type", &type)))
        return rc;
    if (!lm_gguf_type_name((int)type))
        return fail(r, LM_ERR_FORMAT, "unknown tensor type %u at byte %zu", type, type_at);
    t->type = (int)type;
    int64_t block = ggml_types[type].block;
    if (t->ne[0] % block)
        return fail(r, LM_ERR_FORMAT, "row of %lld elements is not a multiple of the %s block size %lld",
                    (long long)t->ne[0], ggml_types[type].name, (long long)block);
    size_t size = lm_gguf_row_size(t->type, t->ne[0]);
    for (int d = 1; d < 4 && size; d++)
        if ((uint64_t)t->ne[d] > SIZE_MAX || !mul_size(size, (size_t)t->ne[d], &size))
            size = 0;
    if (!size)
        return fail(r, LM_ERR_FORMAT, "byte size overflows (%lld x %lld x %lld x %lld %s)", (long long)t->ne[0],
                    (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], ggml_types[type].name);
    t->size = size;

    uint64_t offset;
    size_t offset_at = r->pos;
    if ((rc = rd_u64(r, "the data offset", &offset)))
        return rc;
    if (offset % g->alignment)
        return fail(r, LM_ERR_FORMAT, "data offset %llu at byte %zu is not a multiple of the alignment %zu",
                    (unsigned long long)offset, offset_at, g->alignment);
    if (offset > SIZE_MAX)
        return fail(r, LM_ERR_FORMAT, "data offset %llu at byte %zu is out of range",
                    (unsigned long long)offset, offset_at);
    t->offset = (size_t)offset; /* relative for now; made absolute once the data section is known */
    return LM_OK;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const lm_gguf_tensor_info *x = *(const lm_gguf_tensor_info *const *)a;
    const lm_gguf_tensor_info *y = *(const lm_gguf_tensor_info *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places every tensor in the data section and checks it lies in the file and overlaps no other. */
static int place_tensors(reader *r, lm_gguf *g)
{
    size_t end;
    if (!add_size(r->pos, g->alignment - 1, &end))
        return fail(r, LM_ERR_FORMAT, "data section offset overflows");
    g->data_off = end / g->alignment * g->alignment;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        lm_gguf_tensor_info *t = &g->tensors[i];
        size_t rel = t->offset, abs;
        snprintf(r->ctx, sizeof r->ctx, "tensor '%s'", t->name);
        if (!add_size(g->data_off, rel, &abs) || !add_size(abs, t->size, &end) || end > g->size)
            return fail(r, LM_ERR_FORMAT, "data at offset %zu of the data section (byte %zu) and %zu bytes long "
                        "runs past the end of the file (%zu bytes)", rel, g->data_off, t->size, g->size);
        t->offset = abs;
        t->data = g->base + abs;
    }
    if (g->n_tensors < 2)
        return LM_OK;
    const lm_gguf_tensor_info **by_off = malloc((size_t)g->n_tensors * sizeof *by_off);
    if (!by_off)
        return fail(r, LM_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++)
        by_off[i] = &g->tensors[i];
    qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, cmp_by_offset);
    int rc = LM_OK;
    for (int64_t i = 1; i < g->n_tensors && !rc; i++) {
        const lm_gguf_tensor_info *a = by_off[i - 1], *b = by_off[i];
        if (a->offset + a->size > b->offset) {
            snprintf(r->ctx, sizeof r->ctx, "tensor '%s'", b->name);
            rc = fail(r, LM_ERR_FORMAT, "data at byte %zu overlaps tensor '%s' (bytes %zu..%zu)",
                      b->offset, a->name, a->offset, a->offset + a->size);
        }
    }
    free(by_off);
    return rc;
}

static int parse(reader *r, lm_gguf *g)
{
    int rc;
    if ((rc = parse_header(r, g)) || (rc = parse_kvs(r, g)) || (rc = parse_alignment(r, g)))
        return rc;
    g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors || !name_index_init(&g->tensor_index, (size_t)g->n_tensors))
        return fail(r, LM_ERR_NOMEM, "out of memory for %lld tensors", (long long)g->n_tensors);
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((rc = parse_tensor(r, g, i)))
            return rc;
    return place_tensors(r, g);
}

int lm_gguf_open(const char *path, lm_gguf **out, char *err, size_t errlen)
{
    reader r = { .path = path, .err = err, .errlen = errlen };
    const uint16_t one = 1;
    int rc;
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (*(const uint8_t *)&one != 1)
        return fail(&r, LM_ERR_UNSUPPORTED, "this reader needs a little-endian host");
    lm_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return fail(&r, LM_ERR_NOMEM, "out of memory");

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = fail(&r, LM_ERR_IO, "cannot open: %s", strerror(errno));
        goto out_close_gguf;
    }
    struct stat st;
    if (fstat(fd, &st)) {
        rc = fail(&r, LM_ERR_IO, "cannot stat: %s", strerror(errno));
        goto out_close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(&r, LM_ERR_IO, "not a regular file");
        goto out_close_fd;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = fail(&r, LM_ERR_IO, "file too large to map");
        goto out_close_fd;
    }
    g->size = (size_t)st.st_size;
    if (g->size) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = fail(&r, LM_ERR_IO, "cannot map %zu bytes: %s", g->size, strerror(errno));
            goto out_close_fd;
        }
        g->base = m;
    }
    close(fd);

    r.p = g->base;
    r.size = g->size;
    if ((rc = parse(&r, g)))
        goto out_close_gguf;
    *out = g;
    return LM_OK;

out_close_fd:
    close(fd);
out_close_gguf:
    lm_gguf_close(g);
    return rc;
}

/* ---------------------------------------------------------------- accessors */

uint32_t lm_gguf_version(const lm_gguf *g) { return g->version; }
size_t lm_gguf_file_size(const lm_gguf *g) { return g->size; }
size_t lm_gguf_alignment(const lm_gguf *g) { return g->alignment; }
size_t lm_gguf_data_offset(const lm_gguf *g) { return g->data_off; }

void lm_gguf_drop_pages(lm_gguf *g)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!g->base || page <= 0)
        return;
    size_t start = (g->data_off + (size_t)page - 1) / (size_t)page * (size_t)page; /* metadata pages stay */
    if (start < g->size)
        madvise((void *)(g->base + start), g->size - start, MADV_DONTNEED);
}
int64_t lm_gguf_n_kv(const lm_gguf *g) { return g->n_kv; }
int64_t lm_gguf_n_tensors(const lm_gguf *g) { return g->n_tensors; }

int64_t lm_gguf_find(const lm_gguf *g, const char *key)
{
    return name_index_find(&g->kv_index, key);
}

int lm_gguf_kv(const lm_gguf *g, int64_t i, lm_gguf_kv_info *out)
{
    if (i < 0 || i >= g->n_kv)
        return LM_ERR_NOT_FOUND;
    const struct gguf_kv *k = &g->kv[i];
    out->key = k->key;
    out->type = (int)k->type;
    out->elem_type = k->type == LM_GGUF_ARR ? (int)k->elem_type : -1;
    out->n = k->n;
    return LM_OK;
}

static const struct gguf_kv *kv_get(const lm_gguf *g, const char *key)
{
    int64_t i = name_index_find(&g->kv_index, key);
    return i < 0 ? NULL : &g->kv[i];
}

/* An integer value as sign and magnitude, so every integer type compares without overflow. */
typedef struct { bool neg; uint64_t mag; } wide_int;

static bool load_int(const uint8_t *p, uint32_t type, wide_int *v)
{
    int64_t s;
    switch (type) {
    case LM_GGUF_U8: v->neg = false; v->mag = p[0]; return true;
    case LM_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v->neg = false; v->mag = x; return true; }
    case LM_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v->neg = false; v->mag = x; return true; }
    case LM_GGUF_U64: v->neg = false; memcpy(&v->mag, p, 8); return true;
    case LM_GGUF_I8: s = (int8_t)p[0]; break;
    case LM_GGUF_I16: { int16_t x; memcpy(&x, p, 2); s = x; break; }
    case LM_GGUF_I32: { int32_t x; memcpy(&x, p, 4); s = x; break; }
    case LM_GGUF_I64: memcpy(&s, p, 8); break;
    default: return false;
    }
    v->neg = s < 0;
    v->mag = s < 0 ? (uint64_t)(-(s + 1)) + 1 : (uint64_t)s;
    return true;
}

/* The integer value of key, if it has an integer type and lies in [-(neg_max), pos_max]. */
static int get_int(const lm_gguf *g, const char *key, uint64_t neg_max, uint64_t pos_max, wide_int *v)
{
    const struct gguf_kv *k = kv_get(g, key);
    if (!k)
        return LM_ERR_NOT_FOUND;
    if (!load_int(g->base + k->off, k->type, v))
        return LM_ERR_TYPE;
    return v->mag <= (v->neg ? neg_max : pos_max) ? LM_OK : LM_ERR_TYPE;
}

static int64_t wide_to_i64(wide_int v)
{
    return v.neg ? -(int64_t)(v.mag - 1) - 1 : (int64_t)v.mag;
}

int lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out)
{
    wide_int v;
    int rc = get_int(g, key, 0, UINT32_MAX, &v);
    if (!rc)
        *out = (uint32_t)v.mag;
    return rc;
}

int lm_gguf_get_i32(const lm_gguf *g, const char *key, int32_t *out)
{
    wide_int v;
    int rc = get_int(g, key, (uint64_t)INT32_MAX + 1, INT32_MAX, &v);
    if (!rc)
        *out = (int32_t)wide_to_i64(v);
    return rc;
}

int lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out)
{
    wide_int v;
    int rc = get_int(g, key, 0, UINT64_MAX, &v);
    if (!rc)
        *out = v.mag;
    return rc;
}

int lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out)
{
    wide_int v;
    int rc = get_int(g, key, (uint64_t)INT64_MAX + 1, INT64_MAX, &v);
    if (!rc)
        *out = wide_to_i64(v);
    return rc;
}

static bool load_float(const uint8_t *p, uint32_t type, double *out)
{
    if (type == LM_GGUF_F32) {
        float f;
        memcpy(&f, p, 4);
        *out = f;
        return true;
    }
    if (type == LM_GGUF_F64) {
        memcpy(out, p, 8);
        return true;
    }
    return false;
}

int lm_gguf_get_f64(const lm_gguf *g, const char *key, double *out)
{
    const struct gguf_kv *k = kv_get(g, key);
    if (!k)
        return LM_ERR_NOT_FOUND;
    return load_float(g->base + k->off, k->type, out) ? LM_OK : LM_ERR_TYPE;
}

int lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out)
{
    double d;
    int rc = lm_gguf_get_f64(g, key, &d);
    if (!rc)
        *out = (float)d;
    return rc;
}

int lm_gguf_get_bool(const lm_gguf *g, const char *key, bool *out)
{
    const struct gguf_kv *k = kv_get(g, key);
    if (!k)
        return LM_ERR_NOT_FOUND;
    if (k->type != LM_GGUF_BOOL)
        return LM_ERR_TYPE;
    *out = g->base[k->off] != 0;
    return LM_OK;
}

int lm_gguf_get_str(const lm_gguf *g, const char *key, const char **out, size_t *len)
{
    const struct gguf_kv *k = kv_get(g, key);
    if (!k)
        return LM_ERR_NOT_FOUND;
    if (k->type != LM_GGUF_STR)
        return LM_ERR_TYPE;
    *out = k->str;
    if (len)
        *len = k->str_len;
    return LM_OK;
}

int lm_gguf_get_arr(const lm_gguf *g, const char *key, int *elem_type, uint64_t *n, const void **data)
{
    const struct gguf_kv *k = kv_get(g, key);
    if (!k)
        return LM_ERR_NOT_FOUND;
    if (k->type != LM_GGUF_ARR)
        return LM_ERR_TYPE;
    if (elem_type)
        *elem_type = (int)k->elem_type;
    if (n)
        *n = k->n;
    if (data)
        *data = k->elem_type == LM_GGUF_STR ? NULL : g->base + k->off;
    return LM_OK;
}

/* The array at key with element i in range: LM_OK and the element's file offset in *off. */
static int arr_elem(const lm_gguf *g, const char *key, uint64_t i, const struct gguf_kv **kp, size_t *off)
{
    const struct gguf_kv *k = kv_get(g, key);
    if (!k)
        return LM_ERR_NOT_FOUND;
    if (k->type != LM_GGUF_ARR)
        return LM_ERR_TYPE;
    if (i >= k->n)
        return LM_ERR_NOT_FOUND;
    *kp = k;
    /* i < n and the array lies in the file, so this offset is in range */
    *off = k->elem_type == LM_GGUF_STR ? k->str_off[i] : k->off + (size_t)i * vtype_sizes[k->elem_type];
    return LM_OK;
}

int lm_gguf_get_arr_str(const lm_gguf *g, const char *key, uint64_t i, const char **s, size_t *len)
{
    const struct gguf_kv *k;
    size_t off;
    int rc = arr_elem(g, key, i, &k, &off);
    if (rc)
        return rc;
    if (k->elem_type != LM_GGUF_STR)
        return LM_ERR_TYPE;
    uint64_t n;
    memcpy(&n, g->base + off, 8);
    *s = (const char *)g->base + off + 8;
    if (len)
        *len = (size_t)n;
    return LM_OK;
}

int lm_gguf_arr_i64(const lm_gguf *g, const char *key, uint64_t i, int64_t *out)
{
    const struct gguf_kv *k;
    size_t off;
    wide_int v;
    int rc = arr_elem(g, key, i, &k, &off);
    if (rc)
        return rc;
    if (!load_int(g->base + off, k->elem_type, &v) || (!v.neg && v.mag > INT64_MAX))
        return LM_ERR_TYPE;
    *out = wide_to_i64(v);
    return LM_OK;
}

int lm_gguf_arr_f64(const lm_gguf *g, const char *key, uint64_t i, double *out)
{
    const struct gguf_kv *k;
    size_t off;
    int rc = arr_elem(g, key, i, &k, &off);
    if (rc)
        return rc;
    return load_float(g->base + off, k->elem_type, out) ? LM_OK : LM_ERR_TYPE;
}

int64_t lm_gguf_find_tensor(const lm_gguf *g, const char *name)
{
    return name_index_find(&g->tensor_index, name);
}

int lm_gguf_tensor(const lm_gguf *g, int64_t i, lm_gguf_tensor_info *out)
{
    if (i < 0 || i >= g->n_tensors)
        return LM_ERR_NOT_FOUND;
    *out = g->tensors[i];
    return LM_OK;
}
