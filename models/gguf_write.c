/* gguf_write.c: the GGUF writer (version 3, little-endian; the byte layout is the one described at the
 * top of gguf.c).
 *
 * How the bytes get to disk. The header (key/value pairs, tensor infos) can only be written once every
 * key and tensor is known, yet it comes first in the file; the tensor data is added tensor by tensor and
 * must not be held in memory. So there are two files, both in the directory of the final path (so that
 * they are on its file system):
 *
 *   the data file   mkostemp(path + ".tmp.XXXXXX") at create, unlinked at once: it has no name, so it
 *                   can never be left behind, whatever happens to the process. Tensor data is appended
 *                   to it as it is added, each tensor padded with zeros to the alignment: it is the
 *                   data section, and the tensor offsets are known as tensors are added.
 *   the output      mkostemp(path + ".tmp.XXXXXX") at finish: the header, zero padding to the
 *                   alignment, then the data file copied in (copy_file_range, in 64 MiB steps, each
 *                   step's source range punched out of the data file as it is copied, so the disk holds
 *                   about one copy of the data, not two); fsync, close, rename onto path, fsync of the
 *                   directory. Any failure unlinks it: no half-written file is ever left under path.
 *
 * Metadata is kept in memory in insertion order, each value already serialised as it will be written
 * (setting a key that exists replaces its value in place). A failed write makes the writer unusable:
 * every later call returns the same status, and finish removes what was written. A refused argument
 * (bad key, duplicate tensor, wrong size) changes nothing.
 */
#include "lm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY 65535
#define GGUF_MAX_NAME 63            /* llama.cpp refuses names of GGML_MAX_NAME (64) bytes or more */
#define COPY_STEP ((size_t)64 << 20)   /* bytes per copy_file_range call */
#define PLAIN_STEP ((size_t)4 << 20)   /* bytes per read/write where copy_file_range cannot */

/* bytes of a scalar value, by enum lm_gguf_vtype; 0 for str and arr */
static const uint8_t vtype_size[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
#define N_VTYPES (sizeof vtype_size / sizeof vtype_size[0])

/* A growable byte buffer. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static bool put(bytes *b, const void *src, size_t n)
{
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2)
                return false;
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return false;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, src, n);
    b->n += n;
    return true;
}

static bool put_u32(bytes *b, uint32_t v) { return put(b, &v, 4); }
static bool put_u64(bytes *b, uint64_t v) { return put(b, &v, 8); }
static bool put_str(bytes *b, const char *s, size_t len) { return put_u64(b, len) && put(b, s, len); }

struct wkv {
    char *key;
    uint32_t type;   /* enum lm_gguf_vtype */
    bytes val;       /* the value as written after the vtype */
};

struct wtensor {
    char *name;
    uint32_t n_dims, type;
    int64_t ne[4];
    uint64_t offset; /* in the data section */
};

struct lm_gguf_writer {
    char *path;
    int data_fd;          /* the unlinked data file */
    uint64_t data_size;   /* bytes in it, a multiple of the alignment */
    size_t alignment;
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
    int status;           /* sticky: the first failed write */
    char msg[768];
};

__attribute__((format(printf, 3, 4)))
static int wfail(lm_gguf_writer *w, int status, const char *fmt, ...)
{
    int n = snprintf(w->msg, sizeof w->msg, "%s: ", w->path);
    if (n >= 0 && (size_t)n < sizeof w->msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->msg + n, sizeof w->msg - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* A failed write: every later call returns it. */
static int wfail_io(lm_gguf_writer *w, const char *what, int e)
{
    wfail(w, e == ENOMEM ? LM_ERR_NOMEM : LM_ERR_IO, "cannot write %s: %s", what, strerror(e));
    return w->status = e == ENOMEM ? LM_ERR_NOMEM : LM_ERR_IO;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n) {
        ssize_t k = write(fd, s, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO;
            return false;
        }
        s += k;
        n -= (size_t)k;
    }
    return true;
}

static bool write_zeros(int fd, size_t n)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (!write_all(fd, zeros, k))
            return false;
        n -= k;
    }
    return true;
}

/* path + ".tmp.XXXXXX", for mkstemp; NULL when out of memory. */
static char *tmp_template(const char *path)
{
    size_t n = strlen(path);
    char *s = malloc(n + 12);
    if (s)
        snprintf(s, n + 12, "%s.tmp.XXXXXX", path);
    return s;
}

/* ---------------------------------------------------------------- create, abort */

int lm_gguf_writer_create(const char *path, lm_gguf_writer **out, char *err, size_t errlen)
{
    const uint16_t one = 1;
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (!path || !path[0])
        return lm_fail(err, errlen, LM_ERR_INVALID, "gguf writer: empty output path");
    if (*(const uint8_t *)&one != 1)
        return lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "%s: the GGUF writer needs a little-endian host", path);
    struct stat st;
    if (!stat(path, &st) && S_ISDIR(st.st_mode))
        return lm_fail(err, errlen, LM_ERR_IO, "%s: is a directory", path);

    lm_gguf_writer *w = calloc(1, sizeof *w);
    char *tmp = tmp_template(path);
    if (!w || !tmp || !(w->path = strdup(path))) {
        free(tmp);
        free(w);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "%s: out of memory", path);
    }
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    w->data_fd = mkostemp(tmp, O_CLOEXEC);
    if (w->data_fd < 0) {
        int e = errno;
        lm_fail(err, errlen, LM_ERR_IO, "%s: cannot create a temporary file beside it (%s): %s", path, tmp,
                strerror(e));
        free(tmp);
        free(w->path);
        free(w);
        return LM_ERR_IO;
    }
    unlink(tmp); /* nameless from now on: closing the descriptor frees it */
    free(tmp);
    *out = w;
    return LM_OK;
}

static void writer_free(lm_gguf_writer *w)
{
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    if (w->data_fd >= 0)
        close(w->data_fd);
    free(w->path);
    free(w);
}

void lm_gguf_writer_abort(lm_gguf_writer *w)
{
    if (w)
        writer_free(w);
}

const char *lm_gguf_writer_errmsg(const lm_gguf_writer *w)
{
    return w ? w->msg : "";
}

/* ---------------------------------------------------------------- metadata */

static bool key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > GGUF_MAX_KEY)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

/* general.alignment must be a u32 power of two, and cannot change once tensor offsets depend on it. */
static int check_alignment(lm_gguf_writer *w, uint32_t type, const bytes *val)
{
    uint32_t a = 0;
    if (type != LM_GGUF_U32)
        return wfail(w, LM_ERR_INVALID, "general.alignment must be a u32, not %s", lm_gguf_vtype_name((int)type));
    memcpy(&a, val->p, 4);
    if (a == 0 || (a & (a - 1)))
        return wfail(w, LM_ERR_INVALID, "general.alignment %u is not a power of two", a);
    if (w->n_t && a != w->alignment)
        return wfail(w, LM_ERR_INVALID, "general.alignment set to %u after tensors were added with alignment %zu",
                     a, w->alignment);
    w->alignment = a;
    return LM_OK;
}

/* Takes ownership of val (freed on failure too). */
static int set_kv(lm_gguf_writer *w, const char *key, uint32_t type, bytes val)
{
    int rc = w->status;
    if (rc)
        goto out_free_val;
    if (!key_ok(key)) {
        rc = wfail(w, LM_ERR_INVALID, "key '%.80s' is not 1..%d bytes of printable ASCII", key ? key : "(null)",
                   GGUF_MAX_KEY);
        goto out_free_val;
    }
    if (!strcmp(key, "general.alignment") && (rc = check_alignment(w, type, &val)))
        goto out_free_val;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].val.p);
            w->kv[i].type = type;
            w->kv[i].val = val;
            return LM_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) {
            rc = wfail(w, LM_ERR_NOMEM, "out of memory");
            goto out_free_val;
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        rc = wfail(w, LM_ERR_NOMEM, "out of memory");
        goto out_free_val;
    }
    w->kv[w->n_kv++] = (struct wkv){ .key = k, .type = type, .val = val };
    return LM_OK;

out_free_val:
    free(val.p);
    return rc;
}

static int set_scalar(lm_gguf_writer *w, const char *key, uint32_t type, const void *v)
{
    bytes b = { 0 };
    if (!put(&b, v, vtype_size[type]))
        return wfail(w, LM_ERR_NOMEM, "out of memory");
    return set_kv(w, key, type, b);
}

int lm_gguf_writer_set_u32(lm_gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, LM_GGUF_U32, &v);
}

int lm_gguf_writer_set_i32(lm_gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, LM_GGUF_I32, &v);
}

int lm_gguf_writer_set_f32(lm_gguf_writer *w, const char *key, float v)
{
    return set_scalar(w, key, LM_GGUF_F32, &v);
}

int lm_gguf_writer_set_bool(lm_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, LM_GGUF_BOOL, &b);
}

int lm_gguf_writer_set_str(lm_gguf_writer *w, const char *key, const char *v)
{
    bytes b = { 0 };
    if (!v)
        return wfail(w, LM_ERR_INVALID, "key '%.80s': NULL string", key ? key : "(null)");
    if (!put_str(&b, v, strlen(v)))
        return wfail(w, LM_ERR_NOMEM, "out of memory");
    return set_kv(w, key, LM_GGUF_STR, b);
}

int lm_gguf_writer_set_arr(lm_gguf_writer *w, const char *key, int elem_type, uint64_t n, const void *data)
{
    bytes b = { 0 };
    if (elem_type < 0 || (size_t)elem_type >= N_VTYPES || elem_type == LM_GGUF_STR || elem_type == LM_GGUF_ARR)
        return wfail(w, LM_ERR_INVALID, "key '%.80s': arrays of %s are not numeric", key ? key : "(null)",
                     lm_gguf_vtype_name(elem_type));
    if (n > SIZE_MAX / 8 || (n && !data))
        return wfail(w, LM_ERR_INVALID, "key '%.80s': bad array", key ? key : "(null)");
    if (!put_u32(&b, (uint32_t)elem_type) || !put_u64(&b, n) || !put(&b, data, (size_t)n * vtype_size[elem_type])) {
        free(b.p);
        return wfail(w, LM_ERR_NOMEM, "out of memory");
    }
    return set_kv(w, key, LM_GGUF_ARR, b);
}

int lm_gguf_writer_set_arr_str(lm_gguf_writer *w, const char *key, uint64_t n, const char *const *s, const size_t *len)
{
    bytes b = { 0 };
    bool ok = put_u32(&b, LM_GGUF_STR) && put_u64(&b, n);
    for (uint64_t i = 0; ok && i < n; i++) {
        if (!s[i]) {
            free(b.p);
            return wfail(w, LM_ERR_INVALID, "key '%.80s': string %llu is NULL", key ? key : "(null)",
                         (unsigned long long)i);
        }
        ok = put_str(&b, s[i], len ? len[i] : strlen(s[i]));
    }
    if (!ok) {
        free(b.p);
        return wfail(w, LM_ERR_NOMEM, "out of memory");
    }
    return set_kv(w, key, LM_GGUF_ARR, b);
}

/* A scalar of type `type` read through the reader's getters into out[0..vtype_size). */
static int get_scalar(const lm_gguf *g, const char *key, uint32_t type, uint8_t out[8])
{
    int rc;
    switch (type) {
    case LM_GGUF_U8: case LM_GGUF_U16: case LM_GGUF_U32: case LM_GGUF_U64: {
        uint64_t v;
        if ((rc = lm_gguf_get_u64(g, key, &v)))
            return rc;
        memcpy(out, &v, vtype_size[type]); /* little-endian: the low bytes are the narrower value */
        return LM_OK;
    }
    case LM_GGUF_I8: case LM_GGUF_I16: case LM_GGUF_I32: case LM_GGUF_I64: {
        int64_t v;
        if ((rc = lm_gguf_get_i64(g, key, &v)))
            return rc;
        memcpy(out, &v, vtype_size[type]);
        return LM_OK;
    }
    case LM_GGUF_F32: {
        float v;
        if ((rc = lm_gguf_get_f32(g, key, &v)))
            return rc;
        memcpy(out, &v, 4);
        return LM_OK;
    }
    case LM_GGUF_F64: {
        double v;
        if ((rc = lm_gguf_get_f64(g, key, &v)))
            return rc;
        memcpy(out, &v, 8);
        return LM_OK;
    }
    case LM_GGUF_BOOL: {
        bool v;
        if ((rc = lm_gguf_get_bool(g, key, &v)))
            return rc;
        out[0] = v;
        return LM_OK;
    }
    }
    return LM_ERR_TYPE;
}

/* Serialises the value of key (of type type) from g into b. */
static int serialise(const lm_gguf *g, const char *key, uint32_t type, bytes *b)
{
    int rc, elem_type;
    uint64_t n;
    const void *data;
    const char *s;
    size_t len;
    uint8_t v[8];
    if (type == LM_GGUF_STR) {
        if ((rc = lm_gguf_get_str(g, key, &s, &len)))
            return rc;
        return put_str(b, s, len) ? LM_OK : LM_ERR_NOMEM;
    }
    if (type != LM_GGUF_ARR) {
        if ((rc = get_scalar(g, key, type, v)))
            return rc;
        return put(b, v, vtype_size[type]) ? LM_OK : LM_ERR_NOMEM;
    }
    if ((rc = lm_gguf_get_arr(g, key, &elem_type, &n, &data)))
        return rc;
    if (elem_type < 0 || (size_t)elem_type >= N_VTYPES || elem_type == LM_GGUF_ARR)
        return LM_ERR_TYPE;
    if (!put_u32(b, (uint32_t)elem_type) || !put_u64(b, n))
        return LM_ERR_NOMEM;
    if (elem_type != LM_GGUF_STR) /* n elements lie in the mapping: the reader checked it */
        return put(b, data, (size_t)n * vtype_size[elem_type]) ? LM_OK : LM_ERR_NOMEM;
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = lm_gguf_get_arr_str(g, key, i, &s, &len)))
            return rc;
        if (!put_str(b, s, len))
            return LM_ERR_NOMEM;
    }
    return LM_OK;
}

int lm_gguf_writer_copy_kv(lm_gguf_writer *w, const lm_gguf *g, int64_t i)
{
    lm_gguf_kv_info info;
    bytes b = { 0 };
    if (w->status)
        return w->status;
    if (lm_gguf_kv(g, i, &info))
        return wfail(w, LM_ERR_NOT_FOUND, "copy of key #%lld: no such key in the source (it has %lld)",
                     (long long)i, (long long)lm_gguf_n_kv(g));
    int rc = serialise(g, info.key, (uint32_t)info.type, &b);
    if (rc) {
        free(b.p);
        return wfail(w, rc, "copy of key '%.80s' (%s): %s", info.key, lm_gguf_vtype_name(info.type),
                     rc == LM_ERR_NOMEM ? "out of memory" : "cannot read its value");
    }
    return set_kv(w, info.key, (uint32_t)info.type, b);
}

/* ---------------------------------------------------------------- tensors */

int lm_gguf_writer_add_tensor(lm_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, int type,
                              const void *data, size_t size)
{
    if (w->status)
        return w->status;
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen > GGUF_MAX_NAME)
        return wfail(w, LM_ERR_INVALID, "tensor name '%.80s' is not 1..%d bytes", name ? name : "(null)",
                     GGUF_MAX_NAME);
    if (n_dims < 1 || n_dims > 4)
        return wfail(w, LM_ERR_INVALID, "tensor '%s': n_dims %d is not in 1..4", name, n_dims);
    if (!lm_gguf_type_name(type))
        return wfail(w, LM_ERR_INVALID, "tensor '%s': unknown type %d", name, type);
    int64_t dims[4] = { 1, 1, 1, 1 };
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1)
            return wfail(w, LM_ERR_INVALID, "tensor '%s': dimension ne%d = %lld", name, d, (long long)ne[d]);
        dims[d] = ne[d];
    }
    size_t want = lm_gguf_row_size(type, dims[0]);
    if (!want)
        return wfail(w, LM_ERR_INVALID, "tensor '%s': a row of %lld elements is not a multiple of the %s block (%lld)",
                     name, (long long)dims[0], lm_gguf_type_name(type), (long long)lm_gguf_type_block(type));
    for (int d = 1; d < 4; d++) {
        if ((uint64_t)dims[d] > SIZE_MAX / want)
            return wfail(w, LM_ERR_INVALID, "tensor '%s': byte size overflows", name);
        want *= (size_t)dims[d];
    }
    if (size != want || !data)
        return wfail(w, LM_ERR_INVALID, "tensor '%s': %zu bytes of data given, its shape and type %s take %zu",
                     name, data ? size : 0, lm_gguf_type_name(type), want);
    for (size_t i = 0; i < w->n_t; i++) /* linear: a model has hundreds to a few thousand tensors */
        if (!strcmp(w->t[i].name, name))
            return wfail(w, LM_ERR_INVALID, "tensor '%s' added twice", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t)
            return wfail(w, LM_ERR_NOMEM, "out of memory");
        w->t = t;
        w->cap_t = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return wfail(w, LM_ERR_NOMEM, "out of memory");

    size_t pad = (w->alignment - size % w->alignment) % w->alignment;
    char what[128];
    snprintf(what, sizeof what, "tensor '%s'", name);
    if (!write_all(w->data_fd, data, size) || !write_zeros(w->data_fd, pad)) {
        int e = errno;
        free(copy);
        return wfail_io(w, what, e);
    }
    struct wtensor *t = &w->t[w->n_t++];
    *t = (struct wtensor){ .name = copy, .n_dims = (uint32_t)n_dims, .type = (uint32_t)type, .offset = w->data_size };
    memcpy(t->ne, dims, sizeof dims);
    w->data_size += size + pad;
    return LM_OK;
}

/* ---------------------------------------------------------------- finish */

static int build_header(const lm_gguf_writer *w, bytes *h)
{
    static const char magic[4] = { 'G', 'G', 'U', 'F' };
    bool ok = put(h, magic, 4) && put_u32(h, GGUF_VERSION) && put_u64(h, w->n_t) && put_u64(h, w->n_kv);
    for (size_t i = 0; ok && i < w->n_kv; i++) {
        const struct wkv *k = &w->kv[i];
        ok = put_str(h, k->key, strlen(k->key)) && put_u32(h, k->type) && put(h, k->val.p, k->val.n);
    }
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        ok = put_str(h, t->name, strlen(t->name)) && put_u32(h, t->n_dims);
        for (uint32_t d = 0; ok && d < t->n_dims; d++)
            ok = put_u64(h, (uint64_t)t->ne[d]);
        ok = ok && put_u32(h, t->type) && put_u64(h, t->offset);
    }
    size_t pad = (w->alignment - h->n % w->alignment) % w->alignment;
    for (size_t i = 0; ok && i < pad; i++)
        ok = put(h, "", 1);
    return ok ? LM_OK : LM_ERR_NOMEM;
}

/* Copies the data file into out: copy_file_range where the kernel can, else read and write; each copied
 * range is punched out of the data file (best effort) so the disk holds one copy. */
static bool copy_data(lm_gguf_writer *w, int out)
{
    off_t in_off = 0;
    uint64_t left = w->data_size;
    bool plain = false;
    char *buf = NULL;
    while (left) {
        size_t step = left < COPY_STEP ? (size_t)left : COPY_STEP;
        ssize_t n;
        if (!plain) {
            off_t at = in_off;
            n = copy_file_range(w->data_fd, &in_off, out, NULL, step, 0);
            if (n < 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
                          errno == EPERM)) {
                in_off = at;
                plain = true;
                continue;
            }
        } else {
            if (!buf && !(buf = malloc(PLAIN_STEP)))
                return false;
            size_t k = step < PLAIN_STEP ? step : PLAIN_STEP;
            n = pread(w->data_fd, buf, k, in_off);
            if (n > 0 && !write_all(out, buf, (size_t)n))
                n = -1;
            if (n > 0)
                in_off += n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the data file is shorter than what was written to it */
            free(buf);
            return false;
        }
#ifdef FALLOC_FL_PUNCH_HOLE
        (void)fallocate(w->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, in_off - n, n);
#endif
        left -= (uint64_t)n;
    }
    free(buf);
    return true;
}

/* The process umask, without changing it (umask() would, for a moment, in every thread). */
static mode_t current_umask(void)
{
    mode_t m = 022;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        unsigned v;
        if (sscanf(line, "Umask: %o", &v) == 1) {
            m = (mode_t)v;
            break;
        }
    }
    if (f)
        fclose(f);
    return m;
}

static void sync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir] = 0; /* "/x" -> "/", "a/b" -> "a" */
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int lm_gguf_writer_finish(lm_gguf_writer *w, char *err, size_t errlen)
{
    bytes h = { 0 };
    char *tmp = NULL;
    if (!w)
        return lm_fail(err, errlen, LM_ERR_INVALID, "gguf writer: finish(NULL)");
    int fd = -1, rc = w->status;
    if (rc)
        goto out_free;
    if ((rc = build_header(w, &h))) {
        wfail(w, rc, "out of memory for the header");
        goto out_free;
    }
    if (!(tmp = tmp_template(w->path))) {
        rc = wfail(w, LM_ERR_NOMEM, "out of memory");
        goto out_free;
    }
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        rc = wfail(w, LM_ERR_IO, "cannot create the temporary file %s: %s", tmp, strerror(errno));
        goto out_free;
    }
    if (fchmod(fd, 0666 & ~current_umask())) { /* mkstemp makes it 0600 */
        rc = wfail(w, LM_ERR_IO, "cannot set the mode of %s: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    if (!write_all(fd, h.p, h.n)) {
        rc = wfail_io(w, "the header", errno);
        goto out_unlink;
    }
    if (!copy_data(w, fd)) {
        rc = wfail_io(w, "the tensor data", errno);
        goto out_unlink;
    }
    if (fsync(fd)) {
        rc = wfail_io(w, "the file (fsync)", errno);
        goto out_unlink;
    }
    int c = close(fd);
    fd = -1;
    if (c) {
        rc = wfail_io(w, "the file (close)", errno);
        goto out_unlink;
    }
    if (rename(tmp, w->path)) {
        rc = wfail(w, LM_ERR_IO, "cannot rename %s onto it: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    sync_dir(w->path);
    rc = LM_OK;
    goto out_free;

out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out_free:
    if (rc)
        lm_fail(err, errlen, rc, "%s", w->msg);
    free(tmp);
    free(h.p);
    writer_free(w);
    return rc;
}

