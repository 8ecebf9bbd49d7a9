/* test_quantize: the GGUF writer (models/gguf_write.c), whole-model quantisation (models/quantize.c) and
 * `vkllm quantize` ($VKLLM_BIN).
 *
 * Writer: a hand-made GGUF holding every metadata type (scalars, arrays of each, strings, arrays of
 * strings) is copied key by key, some keys set (new and replaced in place), tensors of several types and
 * shapes added at alignment 64; the result read back with lm_gguf_open must hold the same values and
 * bytes. Refused arguments leave the writer usable; nothing appears under the path before finish.
 *
 * Quantisation: shared/models/quant/kq-f32.gguf to Q8_0, Q4_0 and Q4_K_M: every key copied,
 * general.file_type set, each tensor's type as llama-quantize chose it for kq-X.gguf (and its bytes
 * equal to that file's: our encoders are llama.cpp's reference quantisers), decoded values close to the
 * source. stories260K (rows of 64 and 172) to Q4_K_M: llama-quantize's fallbacks (Q5_0, Q8_0, F16).
 * Synthetic models (32 layers with GQA 8, an 80-layer "70B", 8 experts, tied embeddings, falcon) under
 * every quantised preset: the tensor types llama-quantize gave the same files.
 * Refusals: same input and output (however named), requantising, and, through the CLI, unknown type,
 * unwritable output, missing input: exit status 1 and no file. A write that fails half-way
 * (RLIMIT_FSIZE, as a full disk would) leaves no file and no temporary file behind. */
#include "util.h"

#include "lm.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];   /* the test's scratch directory */
static const char *bin;

static const char *in_dir(const char *name)
{
    static char buf[4][400];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%.300s", dir, name);
    return buf[k];
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Files in the scratch directory; the names joined with spaces into list. */
static int dir_files(char *list, size_t cap)
{
    DIR *d = opendir(dir);
    int n = 0;
    list[0] = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        size_t len = strlen(list);
        snprintf(list + len, cap - len, "%s%s", len ? " " : "", e->d_name);
    }
    if (d)
        closedir(d);
    return n;
}

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(in_dir(e->d_name));
    if (d)
        closedir(d);
}

/* ---------------------------------------------------------------- a hand-made GGUF */

typedef struct buf {
    uint8_t p[8192];
    size_t n;
} buf;

static void put(buf *b, const void *v, size_t n)
{
    if (n)
        memcpy(b->p + b->n, v, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s, size_t len) { put_u64(b, len); put(b, s, len); }
static void key(buf *b, const char *k, uint32_t type) { put_str(b, k, strlen(k)); put_u32(b, type); }
static void arr(buf *b, const char *k, uint32_t et, uint64_t n, const void *v, size_t size)
{
    key(b, k, LM_GGUF_ARR);
    put_u32(b, et);
    put_u64(b, n);
    put(b, v, (size_t)n * size);
}

static const char *const strs[] = { "", "a", "\xc3\xbcn\xc3\xaf", "x y z", "tab\there" };
#define N_SRC_KEYS 27

/* Every value type, scalars and arrays, and general.alignment = 64; no tensors. */
static bool write_source(const char *path)
{
    static buf b;
    b.n = 0;
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, N_SRC_KEYS);
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
    uint32_t u32 = 4000000000u; int32_t i32 = -2000000000; float f32 = 3.25f; uint8_t bo = 1;
    uint64_t u64 = (1ull << 63) + 5; int64_t i64 = -(1ll << 62) - 7; double f64 = -1.0 / 3;
    key(&b, "k.u8", LM_GGUF_U8); put(&b, &u8, 1);
    key(&b, "k.i8", LM_GGUF_I8); put(&b, &i8, 1);
    key(&b, "k.u16", LM_GGUF_U16); put(&b, &u16, 2);
    key(&b, "k.i16", LM_GGUF_I16); put(&b, &i16, 2);
    key(&b, "k.u32", LM_GGUF_U32); put(&b, &u32, 4);
    key(&b, "k.i32", LM_GGUF_I32); put(&b, &i32, 4);
    key(&b, "k.f32", LM_GGUF_F32); put(&b, &f32, 4);
    key(&b, "k.bool", LM_GGUF_BOOL); put(&b, &bo, 1);
    key(&b, "k.str", LM_GGUF_STR); put_str(&b, "h\xc3\xa9llo\0nul", 10);
    key(&b, "k.u64", LM_GGUF_U64); put(&b, &u64, 8);
    key(&b, "k.i64", LM_GGUF_I64); put(&b, &i64, 8);
    key(&b, "k.f64", LM_GGUF_F64); put(&b, &f64, 8);
    key(&b, "general.alignment", LM_GGUF_U32); put_u32(&b, 64);
    uint8_t a_u8[] = { 1, 2, 255 }; int8_t a_i8[] = { -1, 0, 127 }; uint16_t a_u16[] = { 1, 65535 };
    int16_t a_i16[] = { -32768, 7 }; uint32_t a_u32[] = { 0, 1, 4294967295u }; int32_t a_i32[] = { -5, 5 };
    float a_f32[] = { 0.5f, -1e30f, 1e-30f }; uint8_t a_bool[] = { 1, 0, 1, 1 };
    uint64_t a_u64[] = { UINT64_MAX, 3 }; int64_t a_i64[] = { INT64_MIN, INT64_MAX }; double a_f64[] = { 1e300, -2.5 };
    arr(&b, "a.u8", LM_GGUF_U8, 3, a_u8, 1);
    arr(&b, "a.i8", LM_GGUF_I8, 3, a_i8, 1);
    arr(&b, "a.u16", LM_GGUF_U16, 2, a_u16, 2);
    arr(&b, "a.i16", LM_GGUF_I16, 2, a_i16, 2);
    arr(&b, "a.u32", LM_GGUF_U32, 3, a_u32, 4);
    arr(&b, "a.i32", LM_GGUF_I32, 2, a_i32, 4);
    arr(&b, "a.f32", LM_GGUF_F32, 3, a_f32, 4);
    arr(&b, "a.bool", LM_GGUF_BOOL, 4, a_bool, 1);
    arr(&b, "a.u64", LM_GGUF_U64, 2, a_u64, 8);
    arr(&b, "a.i64", LM_GGUF_I64, 2, a_i64, 8);
    arr(&b, "a.f64", LM_GGUF_F64, 2, a_f64, 8);
    arr(&b, "a.empty", LM_GGUF_U32, 0, NULL, 4);
    key(&b, "a.str", LM_GGUF_ARR);
    put_u32(&b, LM_GGUF_STR);
    put_u64(&b, sizeof strs / sizeof strs[0]);
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        put_str(&b, strs[i], strlen(strs[i]));
    key(&b, "a.str_empty", LM_GGUF_ARR);
    put_u32(&b, LM_GGUF_STR);
    put_u64(&b, 0);
    while (b.n % 64)
        b.p[b.n++] = 0;
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(b.p, 1, b.n, f) == b.n;
    return f && !fclose(f) && ok;
}

/* Key i of a and key j of b hold the same type and value. */
static bool same_kv(const lm_gguf *a, int64_t i, const lm_gguf *b, int64_t j)
{
    lm_gguf_kv_info x, y;
    if (lm_gguf_kv(a, i, &x) || lm_gguf_kv(b, j, &y) || strcmp(x.key, y.key) || x.type != y.type ||
        x.elem_type != y.elem_type || x.n != y.n)
        return false;
    const char *k = x.key;
    if (x.type == LM_GGUF_STR) {
        const char *s, *t;
        size_t n, m;
        return !lm_gguf_get_str(a, k, &s, &n) && !lm_gguf_get_str(b, k, &t, &m) && n == m && !memcmp(s, t, n);
    }
    if (x.type == LM_GGUF_ARR && x.elem_type == LM_GGUF_STR) {
        for (uint64_t e = 0; e < x.n; e++) {
            const char *s, *t;
            size_t n, m;
            if (lm_gguf_get_arr_str(a, k, e, &s, &n) || lm_gguf_get_arr_str(b, k, e, &t, &m) || n != m ||
                memcmp(s, t, n))
                return false;
        }
        return true;
    }
    if (x.type == LM_GGUF_ARR) {
        static const uint8_t size[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
        const void *p, *q;
        return !lm_gguf_get_arr(a, k, NULL, NULL, &p) && !lm_gguf_get_arr(b, k, NULL, NULL, &q) &&
               (x.n == 0 || !memcmp(p, q, (size_t)x.n * size[x.elem_type]));
    }
    if (x.type == LM_GGUF_F32 || x.type == LM_GGUF_F64) {
        double u, v;
        return !lm_gguf_get_f64(a, k, &u) && !lm_gguf_get_f64(b, k, &v) && !memcmp(&u, &v, sizeof u);
    }
    if (x.type == LM_GGUF_BOOL) {
        bool u, v;
        return !lm_gguf_get_bool(a, k, &u) && !lm_gguf_get_bool(b, k, &v) && u == v;
    }
    int64_t u, v;
    uint64_t uu, vv;
    if (!lm_gguf_get_i64(a, k, &u))
        return !lm_gguf_get_i64(b, k, &v) && u == v;
    return !lm_gguf_get_u64(a, k, &uu) && !lm_gguf_get_u64(b, k, &vv) && uu == vv;
}

/* ---------------------------------------------------------------- the writer */

static void test_writer(void)
{
    const char *src_path = in_dir("src.gguf"), *out = in_dir("written.gguf");
    char err[512], files[1024];
    CHECK(write_source(src_path), "cannot write %s", src_path);
    lm_gguf *src;
    if (lm_gguf_open(src_path, &src, err, sizeof err)) {
        CHECK(false, "hand-made source does not open: %s", err);
        return;
    }
    CHECK(lm_gguf_n_kv(src) == N_SRC_KEYS, "source keys: %lld", (long long)lm_gguf_n_kv(src));

    lm_gguf_writer *w;
    if (lm_gguf_writer_create(out, &w, err, sizeof err)) {
        CHECK(false, "writer_create: %s", err);
        lm_gguf_close(src);
        return;
    }
    for (int64_t i = 0; i < lm_gguf_n_kv(src); i++)
        CHECK(lm_gguf_writer_copy_kv(w, src, i) == LM_OK, "copy_kv %lld: %s", (long long)i, lm_gguf_writer_errmsg(w));
    CHECK(lm_gguf_writer_copy_kv(w, src, N_SRC_KEYS) == LM_ERR_NOT_FOUND, "copy of a key out of range");
    /* set: new keys are appended, existing ones replaced where they stand (even with another type) */
    CHECK(!lm_gguf_writer_set_u32(w, "new.u32", 7) && !lm_gguf_writer_set_i32(w, "new.i32", -7) &&
          !lm_gguf_writer_set_f32(w, "new.f32", 0.125f) && !lm_gguf_writer_set_bool(w, "new.bool", false) &&
          !lm_gguf_writer_set_str(w, "new.str", "s\xe2\x96\x81t"), "set: %s", lm_gguf_writer_errmsg(w));
    CHECK(!lm_gguf_writer_set_u32(w, "k.u32", 12345) && !lm_gguf_writer_set_str(w, "k.u8", "now a string"),
          "replace: %s", lm_gguf_writer_errmsg(w));
    /* refused arguments: an error and a message, and the writer stays usable */
    CHECK(lm_gguf_writer_set_u32(w, "", 1) == LM_ERR_INVALID, "empty key accepted");
    CHECK(lm_gguf_writer_set_u32(w, "bad\nkey", 1) == LM_ERR_INVALID, "control byte in a key accepted");
    CHECK(lm_gguf_writer_set_u32(w, "general.alignment", 48) == LM_ERR_INVALID, "alignment 48 accepted");
    CHECK(lm_gguf_writer_set_i32(w, "general.alignment", 64) == LM_ERR_INVALID, "an i32 alignment accepted");
    CHECK(strstr(lm_gguf_writer_errmsg(w), out) != NULL, "the message names the path: '%s'", lm_gguf_writer_errmsg(w));

    float a[5] = { 1, -2, 3.5f, 1e-20f, -0.0f };
    uint8_t q8[34 * 2 * 3];
    uint16_t f16[3 * 2 * 2];
    int32_t i32[2] = { -1, 77 };
    for (size_t i = 0; i < sizeof q8; i++)
        q8[i] = (uint8_t)(i * 37 + 1);
    for (size_t i = 0; i < 12; i++)
        f16[i] = (uint16_t)(0x3c00 + i);
    int64_t ne_a[] = { 5 }, ne_b[] = { 64, 3 }, ne_c[] = { 3, 2, 2 }, ne_d[] = { 1, 1, 1, 2 };
    CHECK(!lm_gguf_writer_add_tensor(w, "a", 1, ne_a, LM_GGML_F32, a, sizeof a), "add a: %s", lm_gguf_writer_errmsg(w));
    CHECK(!lm_gguf_writer_add_tensor(w, "b.weight", 2, ne_b, LM_GGML_Q8_0, q8, sizeof q8), "add b: %s",
          lm_gguf_writer_errmsg(w));
    CHECK(lm_gguf_writer_add_tensor(w, "a", 1, ne_a, LM_GGML_F32, a, sizeof a) == LM_ERR_INVALID, "duplicate tensor");
    CHECK(lm_gguf_writer_add_tensor(w, "e", 1, ne_a, LM_GGML_F32, a, 16) == LM_ERR_INVALID, "wrong size accepted");
    int64_t ne_bad[] = { 33, 3 };
    CHECK(lm_gguf_writer_add_tensor(w, "e", 2, ne_bad, LM_GGML_Q8_0, q8, 34 * 3) == LM_ERR_INVALID,
          "a Q8_0 row of 33 accepted");
    CHECK(lm_gguf_writer_add_tensor(w, "e", 1, ne_a, 4, a, sizeof a) == LM_ERR_INVALID, "retired type 4 accepted");
    CHECK(lm_gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123", 1, ne_a,
                                    LM_GGML_F32, a, sizeof a) == LM_ERR_INVALID, "a 64-byte name accepted");
    CHECK(lm_gguf_writer_set_u32(w, "general.alignment", 128) == LM_ERR_INVALID, "alignment changed after tensors");
    CHECK(!lm_gguf_writer_add_tensor(w, "c", 3, ne_c, LM_GGML_F16, f16, sizeof f16), "add c: %s", lm_gguf_writer_errmsg(w));
    CHECK(!lm_gguf_writer_add_tensor(w, "d", 4, ne_d, LM_GGML_I32, i32, sizeof i32), "add d: %s", lm_gguf_writer_errmsg(w));
    CHECK(!exists(out), "the output exists before finish");
    int n = dir_files(files, sizeof files);
    CHECK(n == 1, "only the source may be in the directory before finish, there is: %s", files);
    CHECK(lm_gguf_writer_finish(w, NULL, 0) == LM_OK, "finish failed");
    n = dir_files(files, sizeof files);
    CHECK(n == 2, "after finish: %s", files);

    lm_gguf *g;
    if (lm_gguf_open(out, &g, err, sizeof err)) {
        CHECK(false, "the written file does not open: %s", err);
        lm_gguf_close(src);
        return;
    }
    CHECK(lm_gguf_version(g) == 3 && lm_gguf_alignment(g) == 64 && lm_gguf_data_offset(g) % 64 == 0,
          "version %u alignment %zu data offset %zu", lm_gguf_version(g), lm_gguf_alignment(g), lm_gguf_data_offset(g));
    CHECK(lm_gguf_n_kv(g) == N_SRC_KEYS + 5, "keys: %lld", (long long)lm_gguf_n_kv(g));
    for (int64_t i = 0; i < N_SRC_KEYS; i++) {
        lm_gguf_kv_info k;
        lm_gguf_kv(src, i, &k);
        if (!strcmp(k.key, "k.u32") || !strcmp(k.key, "k.u8"))
            continue;
        CHECK(same_kv(src, i, g, i), "key #%lld '%s' differs after the copy", (long long)i, k.key);
    }
    lm_gguf_kv_info k;
    uint32_t u32 = 0;
    const char *s = NULL;
    int32_t i32v = 0;
    float f = 0;
    bool b = true;
    CHECK(!lm_gguf_kv(g, lm_gguf_find(g, "k.u32"), &k) && lm_gguf_find(g, "k.u32") == lm_gguf_find(src, "k.u32") &&
          !lm_gguf_get_u32(g, "k.u32", &u32) && u32 == 12345, "k.u32 replaced in place: %u at #%lld", u32,
          (long long)lm_gguf_find(g, "k.u32"));
    CHECK(lm_gguf_find(g, "k.u8") == 0 && !lm_gguf_get_str(g, "k.u8", &s, NULL) && !strcmp(s, "now a string"),
          "k.u8 replaced by a string in place");
    CHECK(lm_gguf_find(g, "new.u32") == N_SRC_KEYS && !lm_gguf_get_u32(g, "new.u32", &u32) && u32 == 7, "new.u32");
    CHECK(!lm_gguf_get_i32(g, "new.i32", &i32v) && i32v == -7, "new.i32");
    CHECK(!lm_gguf_get_f32(g, "new.f32", &f) && f == 0.125f, "new.f32");
    CHECK(!lm_gguf_get_bool(g, "new.bool", &b) && !b, "new.bool");
    CHECK(!lm_gguf_get_str(g, "new.str", &s, NULL) && !strcmp(s, "s\xe2\x96\x81t"), "new.str");

    const struct { const char *name; int type, n_dims; const int64_t *ne; const void *data; size_t size; } want[] = {
        { "a", LM_GGML_F32, 1, ne_a, a, sizeof a },       { "b.weight", LM_GGML_Q8_0, 2, ne_b, q8, sizeof q8 },
        { "c", LM_GGML_F16, 3, ne_c, f16, sizeof f16 },   { "d", LM_GGML_I32, 4, ne_d, i32, sizeof i32 },
    };
    CHECK(lm_gguf_n_tensors(g) == 4, "tensors: %lld", (long long)lm_gguf_n_tensors(g));
    for (int64_t i = 0; i < 4 && i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        bool shape = t.n_dims == want[i].n_dims;
        for (int d = 0; d < want[i].n_dims; d++)
            shape = shape && t.ne[d] == want[i].ne[d];
        CHECK(!strcmp(t.name, want[i].name) && t.type == want[i].type && shape && t.size == want[i].size &&
              !memcmp(t.data, want[i].data, t.size) && (t.offset - lm_gguf_data_offset(g)) % 64 == 0,
              "tensor #%lld '%s' (%s, %d dims) differs", (long long)i, t.name, lm_gguf_type_name(t.type), t.n_dims);
    }
    lm_gguf_close(g);

    /* abort: nothing left; an unwritable place fails at create, naming the path */
    unlink(out);
    CHECK(!lm_gguf_writer_create(out, &w, err, sizeof err), "create: %s", err);
    lm_gguf_writer_add_tensor(w, "a", 1, ne_a, LM_GGML_F32, a, sizeof a);
    lm_gguf_writer_abort(w);
    lm_gguf_writer_abort(NULL);
    n = dir_files(files, sizeof files);
    CHECK(n == 1 && !exists(out), "abort left: %s", files);
    CHECK(lm_gguf_writer_create("/nonexistent-dir/x.gguf", &w, err, sizeof err) == LM_ERR_IO && !w &&
          strstr(err, "/nonexistent-dir/x.gguf"), "create in a missing directory: '%s'", err);
    CHECK(lm_gguf_writer_create(dir, &w, err, sizeof err) == LM_ERR_IO && !w, "a directory as the output path");
    lm_gguf_close(src);
    clear_dir();
}

/* ---------------------------------------------------------------- quantising kq-f32 */

static int progress_calls;
static int64_t progress_last;

static void on_progress(void *user, int64_t done, int64_t total, const char *tensor, int type)
{
    CHECK(lm_gguf_type_name(type) != NULL, "progress: tensor type %d", type);
    (void)user;
    CHECK(done == progress_last + 1 && done <= total && tensor && tensor[0], "progress %lld/%lld after %lld",
          (long long)done, (long long)total, (long long)progress_last);
    progress_last = done;
    progress_calls++;
}

/* Normalised error of tensor t (any supported type) decoded, against ref (F32). */
static double tensor_nmse(const lm_gguf_tensor_info *t, const lm_gguf_tensor_info *ref)
{
    float *x = malloc((size_t)t->n_elements * sizeof *x), *r = malloc((size_t)t->n_elements * sizeof *r);
    double *rd = malloc((size_t)t->n_elements * sizeof *rd), e = INFINITY;
    if (x && r && rd && !lm_dequantize(t->type, t->data, x, t->n_elements) &&
        !lm_dequantize(ref->type, ref->data, r, ref->n_elements)) {
        for (int64_t i = 0; i < t->n_elements; i++)
            rd[i] = r[i];
        e = tu_nmse(x, rd, t->n_elements);
    }
    free(x);
    free(r);
    free(rd);
    return e;
}

/* The type a preset gives each kq-f32 tensor (from llama-quantize's kq-X.gguf; see quant/README.md). */
static int kq_want(int ftype, const char *name)
{
    if (strstr(name, "_norm.weight"))
        return LM_GGML_F32;
    if (ftype == LM_FTYPE_Q8_0)
        return LM_GGML_Q8_0;
    if (!strcmp(name, "output.weight"))
        return LM_GGML_Q6_K;
    if (ftype == LM_FTYPE_Q4_0)
        return LM_GGML_Q4_0;
    /* Q4_K_M, one layer: layer 0 of 1 is a use_more_bits layer */
    return strstr(name, "attn_v") || strstr(name, "ffn_down") ? LM_GGML_Q6_K : LM_GGML_Q4_K;
}

static void test_kq(int ftype, const char *fixture, double tol)
{
    char src_path[1024], fix_path[1024], err[512], files[1024];
    snprintf(src_path, sizeof src_path, "%s", tu_model_path("quant/kq-f32.gguf"));
    snprintf(fix_path, sizeof fix_path, "%s", tu_model_path(fixture));
    const char *out = in_dir("kq.gguf");
    progress_calls = 0;
    progress_last = 0;
    lm_quantize_opts o = { .ftype = ftype, .progress = on_progress };
    int rc = lm_quantize_file(src_path, out, &o, err, sizeof err);
    CHECK(rc == LM_OK, "%s: lm_quantize_file: %s", lm_ftype_name(ftype), err);
    lm_gguf *src = NULL, *g = NULL, *fix = NULL;
    if (rc || lm_gguf_open(src_path, &src, err, sizeof err) || lm_gguf_open(out, &g, err, sizeof err) ||
        lm_gguf_open(fix_path, &fix, err, sizeof err)) {
        CHECK(false, "%s: %s", lm_ftype_name(ftype), err);
        goto out;
    }
    CHECK(progress_calls == lm_gguf_n_tensors(src), "%d progress calls for %lld tensors", progress_calls,
          (long long)lm_gguf_n_tensors(src));
    CHECK(dir_files(files, sizeof files) == 1, "after quantising: %s", files);

    /* metadata: every key, same value except general.file_type; quantization_version added */
    for (int64_t i = 0; i < lm_gguf_n_kv(src); i++) {
        lm_gguf_kv_info k;
        lm_gguf_kv(src, i, &k);
        int64_t j = lm_gguf_find(g, k.key);
        CHECK(j == i, "%s: key '%s' at #%lld, was #%lld", lm_ftype_name(ftype), k.key, (long long)j, (long long)i);
        if (strcmp(k.key, "general.file_type"))
            CHECK(j >= 0 && same_kv(src, i, g, j), "%s: key '%s' not copied", lm_ftype_name(ftype), k.key);
    }
    uint32_t ft = 0, qv = 0;
    CHECK(!lm_gguf_get_u32(g, "general.file_type", &ft) && ft == (uint32_t)ftype, "general.file_type %u", ft);
    CHECK(!lm_gguf_get_u32(g, "general.quantization_version", &qv) && qv == 2, "general.quantization_version %u", qv);
    CHECK(lm_gguf_n_kv(g) == lm_gguf_n_kv(src) + 1 && lm_gguf_alignment(g) == lm_gguf_alignment(src), "keys, alignment");

    /* tensors: input order, the preset's types, llama-quantize's bytes, close to the source */
    CHECK(lm_gguf_n_tensors(g) == lm_gguf_n_tensors(src), "tensor count");
    for (int64_t i = 0; i < lm_gguf_n_tensors(g) && i < lm_gguf_n_tensors(src); i++) {
        lm_gguf_tensor_info t, s, f;
        lm_gguf_tensor(g, i, &t);
        lm_gguf_tensor(src, i, &s);
        int want = kq_want(ftype, s.name);
        CHECK(!strcmp(t.name, s.name) && t.n_dims == s.n_dims && !memcmp(t.ne, s.ne, sizeof t.ne),
              "tensor #%lld: '%s' for '%s'", (long long)i, t.name, s.name);
        CHECK(t.type == want, "%s: %s is %s, want %s", lm_ftype_name(ftype), t.name, lm_gguf_type_name(t.type),
              lm_gguf_type_name(want));
        int64_t j = lm_gguf_find_tensor(fix, t.name);
        CHECK(j >= 0 && !lm_gguf_tensor(fix, j, &f) && f.type == t.type && f.size == t.size &&
              !memcmp(f.data, t.data, t.size), "%s: %s: bytes differ from llama-quantize's %s", lm_ftype_name(ftype),
              t.name, fixture);
        double e = tensor_nmse(&t, &s);
        double lim = t.type == LM_GGML_F32 ? 0 : t.type == LM_GGML_Q6_K ? 5e-4 : tol;
        CHECK(e <= lim, "%s: %s (%s): nmse %.3g > %.3g", lm_ftype_name(ftype), t.name, lm_gguf_type_name(t.type), e, lim);
    }
    printf("%-7s kq-f32 -> %zu bytes, types and bytes as llama-quantize's\n", lm_ftype_name(ftype), lm_gguf_file_size(g));
out:
    lm_gguf_close(src);
    lm_gguf_close(g);
    lm_gguf_close(fix);
    clear_dir();
}

/* stories260K (dim 64, ffn 172, 5 layers) to Q4_K_M: what llama-quantize gives it. */
static void test_fallback(void)
{
    char src_path[1024], err[512];
    snprintf(src_path, sizeof src_path, "%s", tu_model_path("gguf/stories260K.gguf"));
    const char *out = in_dir("st.gguf");
    lm_quantize_opts o = { .ftype = LM_FTYPE_Q4_K_M };
    lm_gguf *g = NULL;
    if (lm_quantize_file(src_path, out, &o, err, sizeof err) || lm_gguf_open(out, &g, err, sizeof err)) {
        CHECK(false, "stories260K Q4_K_M: %s", err);
        return;
    }
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        int want = LM_GGML_Q5_0; /* Q4_K does not fit a row of 64: Q5_0 */
        if (t.n_dims == 1)
            want = LM_GGML_F32;
        else if (!strcmp(t.name, "output.weight"))
            want = LM_GGML_Q8_0;     /* rows not a multiple of 256 */
        else if (strstr(t.name, "ffn_down"))
            want = LM_GGML_F16;      /* rows of 172: no block fits */
        else if (!strcmp(t.name, "blk.2.attn_v.weight") || !strcmp(t.name, "blk.4.attn_v.weight"))
            want = LM_GGML_Q8_0;     /* use_more_bits(2 and 4 of 5): Q6_K, which falls back to Q8_0 */
        CHECK(t.type == want, "stories260K Q4_K_M: %s is %s, want %s", t.name, lm_gguf_type_name(t.type),
              lm_gguf_type_name(want));
    }
    lm_gguf_close(g);
    clear_dir();
}

/* ---------------------------------------------------------------- the mixes, on synthetic models */

/* A model with every matrix 2 rows high (the types depend only on names, row lengths and metadata):
 * dim 256, FFN 512, head_dim = 256 / n_head. */
typedef struct synthetic {
    const char *arch;
    int n_layer, n_head, n_head_kv, n_expert;
    bool tied;
    const char *what;
    struct {
        const char *types;  /* what llama-quantize made of it with mix_presets[i]: type counts */
        uint32_t hash;      /* and type by tensor: FNV-1a of "name:TYPE\n", tensors in name order */
    } want[13];
} synthetic;

static const int mix_presets[] = { LM_FTYPE_Q4_0, LM_FTYPE_Q8_0, LM_FTYPE_Q2_K, LM_FTYPE_Q3_K_S, LM_FTYPE_Q3_K_M,
                                   LM_FTYPE_Q3_K_L, LM_FTYPE_Q4_K_S, LM_FTYPE_Q4_K_M, LM_FTYPE_Q5_K_S, LM_FTYPE_Q5_K_M,
                                   LM_FTYPE_Q6_K, LM_FTYPE_IQ4_NL, LM_FTYPE_IQ4_XS };

/* Recorded from llama.cpp's llama-quantize (a 2025 tree) on files with these tensors and hyper-parameters;
 * every tensor's type and bytes were equal to ours. */
static const synthetic synthetics[] = {
    { "llama", 32, 8, 1, 0, false, "Llama, 32 layers, GQA 8", {
        { "Q4_0 x225, F32 x65, Q6_K x1", 0x19150210 },
        { "Q8_0 x226, F32 x65", 0x56d708b1 },
        { "Q2_K x129, F32 x65, Q3_K x64, Q4_K x32, Q6_K x1", 0x838aff2b },
        { "Q3_K x225, F32 x65, Q6_K x1", 0xdc7a5e58 },
        { "Q3_K x129, Q4_K x92, F32 x65, Q5_K x4, Q6_K x1", 0xd24dc77e },
        { "Q3_K x129, Q5_K x96, F32 x65, Q6_K x1", 0x19eb3c9c },
        { "Q4_K x217, F32 x65, Q5_K x8, Q6_K x1", 0x72961a9d },
        { "Q4_K x193, F32 x65, Q6_K x33", 0x7702bbed },
        { "Q5_K x225, F32 x65, Q6_K x1", 0x4b417636 },
        { "Q5_K x193, F32 x65, Q6_K x33", 0xe41cb842 },
        { "Q6_K x226, F32 x65", 0x5e4e2cc3 },
        { "IQ4_NL x189, F32 x65, Q5_K x36, Q6_K x1", 0x02f8dc8d },
        { "IQ4_XS x189, F32 x65, Q5_K x36, Q6_K x1", 0xabbad364 },
    } },
    { "llama", 80, 8, 2, 0, false, "Llama 80 layers, GQA 4: llama.cpp's 70B", {
        { "Q4_0 x561, F32 x161, Q6_K x1", 0xcc8baf34 },
        { "Q8_0 x562, F32 x161", 0x52d69e75 },
        { "Q2_K x321, F32 x161, Q3_K x160, Q5_K x80, Q6_K x1", 0xa1773e79 },
        { "Q3_K x481, F32 x161, Q5_K x80, Q6_K x1", 0xde6b4f64 },
        { "Q3_K x321, F32 x161, Q4_K x155, Q5_K x85, Q6_K x1", 0x7e83c4d1 },
        { "Q3_K x321, Q5_K x240, F32 x161, Q6_K x1", 0xadf5aa30 },
        { "Q4_K x471, F32 x161, Q5_K x90, Q6_K x1", 0x8383cd61 },
        { "Q4_K x441, F32 x161, Q6_K x81, Q5_K x40", 0x257803bd },
        { "Q5_K x561, F32 x161, Q6_K x1", 0x6836a702 },
        { "Q5_K x481, F32 x161, Q6_K x81", 0x229d4662 },
        { "Q6_K x562, F32 x161", 0x853b614f },
        { "IQ4_NL x471, F32 x161, Q5_K x90, Q6_K x1", 0x6d81436b },
        { "IQ4_XS x471, F32 x161, Q5_K x90, Q6_K x1", 0x1a163744 },
    } },
    { "llama", 4, 8, 2, 8, false, "Mixtral-like: 8 experts", {
        { "Q4_0 x21, F32 x13, Q8_0 x8, Q6_K x1", 0x98ad7a9e },
        { "Q8_0 x30, F32 x13", 0x3fdcef67 },
        { "F32 x13, Q2_K x13, Q8_0 x8, Q3_K x4, Q5_K x4, Q6_K x1", 0xd0a1febb },
        { "Q3_K x17, F32 x13, Q8_0 x8, Q5_K x4, Q6_K x1", 0xbd1363ae },
        { "F32 x13, Q3_K x13, Q8_0 x8, Q4_K x4, Q5_K x4, Q6_K x1", 0xe1e9ddb6 },
        { "Q3_K x17, F32 x13, Q8_0 x8, Q5_K x4, Q6_K x1", 0xb3342586 },
        { "Q4_K x17, F32 x13, Q8_0 x8, Q5_K x4, Q6_K x1", 0xa86639d1 },
        { "Q4_K x15, F32 x13, Q8_0 x8, Q5_K x4, Q6_K x3", 0x9e6a6e89 },
        { "Q5_K x21, F32 x13, Q8_0 x8, Q6_K x1", 0x93324e14 },
        { "Q5_K x19, F32 x13, Q8_0 x8, Q6_K x3", 0xae63ee5c },
        { "Q6_K x22, F32 x13, Q8_0 x8", 0x8f0edb0f },
        { "IQ4_NL x17, F32 x13, Q8_0 x8, Q5_K x4, Q6_K x1", 0x4a3a0ff3 },
        { "IQ4_XS x17, F32 x13, Q8_0 x8, Q5_K x4, Q6_K x1", 0x905d856e },
    } },
    { "llama", 12, 4, 4, 0, true, "no output.weight: the embedding is the output", {
        { "Q4_0 x84, F32 x25, Q6_K x1", 0xf35cc927 },
        { "Q8_0 x85, F32 x25", 0xbda073b2 },
        { "Q2_K x48, Q3_K x36, F32 x25, Q6_K x1", 0xcdc18b1f },
        { "Q3_K x84, F32 x25, Q6_K x1", 0x9fc966cf },
        { "Q3_K x48, Q4_K x34, F32 x25, Q5_K x2, Q6_K x1", 0xf27b97b7 },
        { "Q3_K x48, Q5_K x36, F32 x25, Q6_K x1", 0x8ee3d0bf },
        { "Q4_K x79, F32 x25, Q5_K x5, Q6_K x1", 0x14d55c52 },
        { "Q4_K x72, F32 x25, Q6_K x13", 0x32d8f731 },
        { "Q5_K x84, F32 x25, Q6_K x1", 0xe4b1170b },
        { "Q5_K x72, F32 x25, Q6_K x13", 0x1b063a47 },
        { "Q6_K x85, F32 x25", 0x1b0c30a1 },
        { "IQ4_NL x83, F32 x25, Q5_K x1, Q6_K x1", 0x2e783cd8 },
        { "IQ4_XS x83, F32 x25, Q5_K x1, Q6_K x1", 0x7f34d741 },
    } },
    { "falcon", 16, 4, 1, 0, false, "falcon: fused attn_qkv, no ffn_gate", {
        { "Q4_0 x65, F32 x34, Q8_0 x1", 0x7460528d },
        { "Q8_0 x66, F32 x34", 0xfa545099 },
        { "F32 x34, Q2_K x33, Q3_K x16, Q4_K x16, Q8_0 x1", 0x0660d0f4 },
        { "Q3_K x65, F32 x34, Q8_0 x1", 0x02960495 },
        { "Q3_K x41, F32 x34, Q4_K x21, Q5_K x3, Q8_0 x1", 0x1c7516ea },
        { "F32 x34, Q4_K x32, Q3_K x17, Q5_K x16, Q8_0 x1", 0x2c05d795 },
        { "Q4_K x61, F32 x34, Q5_K x4, Q8_0 x1", 0xae2644be },
        { "Q4_K x49, F32 x34, Q6_K x9, Q5_K x7, Q8_0 x1", 0x39c08d85 },
        { "Q5_K x65, F32 x34, Q8_0 x1", 0xac96dd97 },
        { "Q5_K x49, F32 x34, Q6_K x16, Q8_0 x1", 0xf3371437 },
        { "Q6_K x65, F32 x34, Q8_0 x1", 0x37d89474 },
        { "IQ4_NL x47, F32 x34, Q5_K x18, Q8_0 x1", 0xb48a5a4e },
        { "IQ4_XS x47, F32 x34, Q5_K x18, Q8_0 x1", 0x007eaa49 },
    } },
};

static bool add_t(lm_gguf_writer *w, const char *name, int64_t ne0, int64_t ne2, bool matrix)
{
    static float data[512 * 2 * 8];
    if (data[0] == 0) {
        tu_rng r = { 12345 };
        for (size_t i = 0; i < sizeof data / sizeof data[0]; i++)
            data[i] = 0.05f * tu_normal(&r);
    }
    int64_t ne[3] = { ne0, matrix ? 2 : 1, ne2 };
    int n_dims = !matrix ? 1 : ne2 > 1 ? 3 : 2;
    return !lm_gguf_writer_add_tensor(w, name, n_dims, ne, LM_GGML_F32, data, (size_t)(ne[0] * ne[1] * ne[2]) * 4);
}

static bool write_synthetic(const synthetic *m, const char *path)
{
    lm_gguf_writer *w;
    char err[256], k[96], n[96];
    if (lm_gguf_writer_create(path, &w, err, sizeof err))
        return false;
    const char *a = m->arch;
    const int dim = 256, ffn = 512;
    bool falcon = !strcmp(a, "falcon"), ok = !lm_gguf_writer_set_str(w, "general.architecture", a);
    const struct { const char *key; int v; } hp[] = {
        { "block_count", m->n_layer }, { "embedding_length", dim }, { "feed_forward_length", ffn },
        { "attention.head_count", m->n_head }, { "attention.head_count_kv", m->n_head_kv },
        { "expert_count", m->n_expert }, { "expert_used_count", m->n_expert ? 2 : 0 }, { "context_length", 256 },
    };
    for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++) {
        snprintf(k, sizeof k, "%s.%s", a, hp[i].key);
        ok = ok && (!hp[i].v || !lm_gguf_writer_set_u32(w, k, (uint32_t)hp[i].v));
    }
    snprintf(k, sizeof k, "%s.attention.%s", a, falcon ? "layer_norm_epsilon" : "layer_norm_rms_epsilon");
    ok = ok && !lm_gguf_writer_set_f32(w, k, 1e-5f); /* llama.cpp needs it (and context_length) to load the file */
    ok = ok && add_t(w, "token_embd.weight", dim, 1, true);
#define L(x) (snprintf(n, sizeof n, "blk.%d." x, l), n)
    for (int l = 0; l < m->n_layer && ok; l++) {
        ok = add_t(w, L("attn_norm.weight"), dim, 1, false);
        if (falcon)
            ok = ok && add_t(w, L("attn_norm.bias"), dim, 1, false) && add_t(w, L("attn_qkv.weight"), dim, 1, true);
        else
            ok = ok && add_t(w, L("attn_q.weight"), dim, 1, true) && add_t(w, L("attn_k.weight"), dim, 1, true) &&
                 add_t(w, L("attn_v.weight"), dim, 1, true);
        ok = ok && add_t(w, L("attn_output.weight"), dim, 1, true);
        if (!falcon)
            ok = ok && add_t(w, L("ffn_norm.weight"), dim, 1, false);
        if (m->n_expert)
            ok = ok && add_t(w, L("ffn_gate_inp.weight"), dim, 1, true) &&
                 add_t(w, L("ffn_gate_exps.weight"), dim, m->n_expert, true) &&
                 add_t(w, L("ffn_up_exps.weight"), dim, m->n_expert, true) &&
                 add_t(w, L("ffn_down_exps.weight"), ffn, m->n_expert, true);
        else
            ok = ok && (falcon || add_t(w, L("ffn_gate.weight"), dim, 1, true)) && add_t(w, L("ffn_up.weight"), dim, 1, true) &&
                 add_t(w, L("ffn_down.weight"), ffn, 1, true);
    }
#undef L
    ok = ok && add_t(w, "output_norm.weight", dim, 1, false);
    if (falcon)
        ok = ok && add_t(w, "output_norm.bias", dim, 1, false);
    if (!m->tied)
        ok = ok && add_t(w, "output.weight", dim, 1, true);
    if (!ok) {
        fprintf(stderr, "synthetic %s: %s\n", m->what, lm_gguf_writer_errmsg(w));
        lm_gguf_writer_abort(w);
        return false;
    }
    return !lm_gguf_writer_finish(w, NULL, 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "Q4_K x6, Q6_K x3, F32 x3": the tensor types of a file, most frequent first (ties: lower type id);
 * and *hash, FNV-1a over "name:TYPE\n" of every tensor in name order. */
static void types_of(const char *path, char *out, size_t cap, uint32_t *hash)
{
    lm_gguf *g;
    char err[256];
    int64_t count[LM_GGML_TYPE_COUNT] = { 0 };
    out[0] = 0;
    *hash = 0;
    if (lm_gguf_open(path, &g, err, sizeof err)) {
        snprintf(out, cap, "(%s)", err);
        return;
    }
    int64_t n = lm_gguf_n_tensors(g);
    char **lines = calloc((size_t)n, sizeof *lines);
    for (int64_t i = 0; lines && i < n; i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        count[t.type]++;
        if ((lines[i] = malloc(96)))
            snprintf(lines[i], 96, "%s:%s\n", t.name, lm_gguf_type_name(t.type));
    }
    lm_gguf_close(g);
    if (lines) {
        qsort(lines, (size_t)n, sizeof *lines, cmp_str);
        *hash = 2166136261u;
        for (int64_t i = 0; i < n; i++)
            for (const char *c = lines[i]; c && *c; c++)
                *hash = (*hash ^ (uint8_t)*c) * 16777619u;
        for (int64_t i = 0; i < n; i++)
            free(lines[i]);
        free(lines);
    }
    for (;;) {
        int best = -1;
        for (int t = 0; t < LM_GGML_TYPE_COUNT; t++)
            if (count[t] && (best < 0 || count[t] > count[best]))
                best = t;
        if (best < 0)
            break;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s x%lld", len ? ", " : "", lm_gguf_type_name(best), (long long)count[best]);
        count[best] = 0;
    }
}

static void test_mixes(void)
{
    const char *src = in_dir("synthetic.gguf"), *out = in_dir("mix.gguf");
    for (size_t m = 0; m < sizeof synthetics / sizeof synthetics[0]; m++) {
        const synthetic *s = &synthetics[m];
        if (!write_synthetic(s, src)) {
            CHECK(false, "cannot write the synthetic model '%s'", s->what);
            continue;
        }
        int ok = 0;
        for (size_t p = 0; p < sizeof mix_presets / sizeof mix_presets[0]; p++) {
            char err[512], got[512];
            lm_quantize_opts o = { .ftype = mix_presets[p] };
            if (lm_quantize_file(src, out, &o, err, sizeof err)) {
                CHECK(false, "%s, %s: %s", s->what, lm_ftype_name(mix_presets[p]), err);
                continue;
            }
            uint32_t hash;
            types_of(out, got, sizeof got, &hash);
            bool same = !strcmp(got, s->want[p].types) && hash == s->want[p].hash;
            CHECK(same, "%s, %s: got %s (0x%08x), llama-quantize gives %s (0x%08x)", s->what,
                  lm_ftype_name(mix_presets[p]), got, hash, s->want[p].types, s->want[p].hash);
            ok += same;
        }
        printf("%-46s %d/%zu presets give llama-quantize's types\n", s->what, ok,
               sizeof mix_presets / sizeof mix_presets[0]);
    }
    clear_dir();
}

/* ---------------------------------------------------------------- refusals, failures */

static void test_refusals(void)
{
    char src_path[1024], err[512], files[1024];
    snprintf(src_path, sizeof src_path, "%s", tu_model_path("quant/kq-f32.gguf"));
    lm_quantize_opts o = { .ftype = LM_FTYPE_Q4_0 };
    /* the same file under other names: ./x, a hard link */
    const char *a = in_dir("a.gguf"), *dot = in_dir("./a.gguf"), *link_path = in_dir("b.gguf");
    CHECK(!lm_quantize_file(src_path, a, &o, err, sizeof err), "quantise: %s", err);
    CHECK(!link(a, link_path), "link: %s", strerror(errno));
    struct stat before, after;
    stat(a, &before);
    o.ftype = LM_FTYPE_Q8_0;
    o.allow_requantize = true;
    CHECK(lm_quantize_file(a, dot, &o, err, sizeof err) == LM_ERR_INVALID, "in == out (./): '%s'", err);
    CHECK(lm_quantize_file(a, link_path, &o, err, sizeof err) == LM_ERR_INVALID, "in == out (hard link)");
    stat(a, &after);
    CHECK(before.st_ino == after.st_ino && before.st_size == after.st_size && before.st_mtime == after.st_mtime,
          "the input was touched");
    unlink(link_path);
    /* requantising: refused unless asked for, and nothing written */
    const char *c = in_dir("c.gguf");
    o.allow_requantize = false;
    CHECK(lm_quantize_file(a, c, &o, err, sizeof err) == LM_ERR_INVALID && strstr(err, "quantised"),
          "requantising Q4_0 without allow_requantize: '%s'", err);
    CHECK(!exists(c), "a refused requantisation left a file");
    o.allow_requantize = true;
    CHECK(!lm_quantize_file(a, c, &o, err, sizeof err), "requantise: %s", err);
    o.ftype = 99;
    CHECK(lm_quantize_file(src_path, in_dir("d.gguf"), &o, err, sizeof err) == LM_ERR_INVALID, "ftype 99");
    o.ftype = LM_FTYPE_Q8_0;
    CHECK(lm_quantize_file("/nonexistent.gguf", in_dir("d.gguf"), &o, err, sizeof err) == LM_ERR_IO, "missing input");
    CHECK(dir_files(files, sizeof files) == 2, "left: %s", files);
    clear_dir();

    /* names */
    CHECK(lm_ftype_from_name("q4_k_m") == LM_FTYPE_Q4_K_M && lm_ftype_from_name("Q4_K") == LM_FTYPE_Q4_K_M &&
          lm_ftype_from_name("iq4_xs") == LM_FTYPE_IQ4_XS && lm_ftype_from_name("Q4_K_X") == -1 &&
          lm_ftype_from_name("") == -1, "lm_ftype_from_name");
    const char *names[] = { "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S",
                            "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int ft = lm_ftype_from_name(names[i]);
        CHECK(ft >= 0 && lm_ftype_name(ft) && !strcmp(lm_ftype_name(ft), names[i]), "preset %s", names[i]);
    }
}

/* In a child whose files may not grow past limit bytes (a full disk, as far as write() can tell):
 * quantising fails with LM_ERR_IO naming the output; the directory is left empty. */
static void test_write_failure(long limit, const char *when)
{
    char src_path[1024], files[1024];
    snprintf(src_path, sizeof src_path, "%s", tu_model_path("quant/kq-f32.gguf"));
    const char *out = in_dir("full.gguf");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char err[512] = "";
        struct rlimit rl = { (rlim_t)limit, (rlim_t)limit };
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl))
            _exit(3);
        lm_quantize_opts o = { .ftype = LM_FTYPE_Q8_0 };
        int rc = lm_quantize_file(src_path, out, &o, err, sizeof err);
        printf("  %s: %s\n", when, err);
        fflush(stdout);
        _exit(rc == LM_ERR_IO && strstr(err, out) && strstr(err, "large") ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: a write failure must give LM_ERR_IO with the path (status %d)",
          when, st);
    int n = dir_files(files, sizeof files);
    CHECK(n == 0, "%s: a failed write left: %s", when, files);
    clear_dir();
}

/* ---------------------------------------------------------------- the command */

static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' quantize %s >/dev/null 2>&1", bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void)
{
    char src[1024], args[4096], files[1024];
    snprintf(src, sizeof src, "%s", tu_model_path("quant/kq-f32.gguf"));
    const char *out = in_dir("cli.gguf");
    snprintf(args, sizeof args, "'%s' '%s' q4_k_m", src, out);
    CHECK(run(args) == 0 && exists(out), "vkllm quantize ... q4_k_m");
    lm_gguf *g;
    char err[512];
    uint32_t ft = 0;
    if (!lm_gguf_open(out, &g, err, sizeof err)) {
        CHECK(!lm_gguf_get_u32(g, "general.file_type", &ft) && ft == LM_FTYPE_Q4_K_M, "CLI file_type %u", ft);
        lm_gguf_close(g);
    } else {
        CHECK(false, "CLI output: %s", err);
    }
    CHECK(run("--help") == 0, "--help");
    const char *o2 = in_dir("cli2.gguf");
    snprintf(args, sizeof args, "'%s' '%s' Q4_K_X", src, o2);
    CHECK(run(args) == 1 && !exists(o2), "unknown type: exit 1, no file");
    snprintf(args, sizeof args, "'%s' '%s/./cli.gguf' Q8_0 --allow-requantize", out, dir);
    CHECK(run(args) == 1, "same input and output: exit 1");
    snprintf(args, sizeof args, "'%s' '%s' Q8_0", out, o2);
    CHECK(run(args) == 1 && !exists(o2), "requantising without --allow-requantize: exit 1, no file");
    snprintf(args, sizeof args, "'%s' '%s' Q8_0 --allow-requantize", out, o2);
    CHECK(run(args) == 0 && exists(o2), "--allow-requantize");
    unlink(o2);
    snprintf(args, sizeof args, "'%s' '%s/cli.gguf/x.gguf' Q8_0", src, dir);
    CHECK(run(args) == 1, "output inside a regular file (unwritable): exit 1");
    snprintf(args, sizeof args, "'%s' /nonexistent-dir/x.gguf Q8_0", src);
    CHECK(run(args) == 1 && !exists("/nonexistent-dir/x.gguf"), "output in a missing directory: exit 1");
    snprintf(args, sizeof args, "'%s/missing.gguf' '%s' Q8_0", dir, o2);
    CHECK(run(args) == 1 && !exists(o2), "missing input: exit 1, no file");
    CHECK(run("") == 2 && run("--bogus") == 2, "no arguments / unknown option: exit 2 (a usage error)");
    CHECK(dir_files(files, sizeof files) == 1, "the CLI runs left: %s", files);
    clear_dir();
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/vkllm_test_quantize_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_quantize: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    bin = getenv("VKLLM_BIN");
    test_writer();
    test_kq(LM_FTYPE_Q8_0, "quant/kq-q8_0.gguf", 5e-5);
    test_kq(LM_FTYPE_Q4_0, "quant/kq-q4_0.gguf", 1e-2);
    test_kq(LM_FTYPE_Q4_K_M, "quant/kq-q4_k_m.gguf", 7e-3);
    test_fallback();
    test_mixes();
    test_refusals();
    /* Q8_0 of kq-f32: its data section goes to the nameless data file while tensors are added, the
     * whole file is written at finish; one limit stops the first, a limit between the two sizes the
     * second */
    size_t file_size = 0, data_size = 0;
    char err[512];
    lm_quantize_opts o = { .ftype = LM_FTYPE_Q8_0 };
    lm_gguf *g;
    if (!lm_quantize_file(tu_model_path("quant/kq-f32.gguf"), in_dir("q8.gguf"), &o, err, sizeof err) &&
        !lm_gguf_open(in_dir("q8.gguf"), &g, err, sizeof err)) {
        file_size = lm_gguf_file_size(g);
        data_size = file_size - lm_gguf_data_offset(g);
        lm_gguf_close(g);
    }
    clear_dir();
    CHECK(file_size > data_size && data_size > 0, "Q8_0 sizes: %s", err);
    test_write_failure((long)data_size / 2, "full during the tensors");
    test_write_failure((long)(data_size + file_size) / 2, "full during finish");
    if (bin && !access(bin, X_OK))
        test_cli();
    else
        CHECK(false, "VKLLM_BIN is not set to the vkllm binary: the CLI is not tested");
    rmdir(dir);
    return tu_finish("test_quantize");
}
