/* test_gguf.c: the GGUF reader. Reads the real files in ../shared/models (stories260K, the tokenizer
 * vocabularies, the quantised fixtures) and checks values from models/README.md; then writes a small
 * valid GGUF of its own, checks every getter on it, and checks that mutations of it (bad magic and
 * version, absurd counts and lengths, bad types, duplicate names, bad alignment, bad dims, data out of
 * range or overlapping, truncation at every byte) are all refused with the right status and a message. */
#include "lm.h"
#include "util.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static char tmp_dir[64], tmp_path[128];

static bool write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Writes the bytes to the temp file and opens them; err gets the message. */
static int open_bytes(const void *p, size_t n, lm_gguf **g, char *err, size_t errlen)
{
    if (!write_file(tmp_path, p, n)) {
        snprintf(err, errlen, "cannot write %s", tmp_path);
        *g = NULL;
        return -1;
    }
    return lm_gguf_open(tmp_path, g, err, errlen);
}

/* ---------------------------------------------------------------- the real files */

static void check_stories(void)
{
    const char *path = tu_model_path("gguf/stories260K.gguf");
    lm_gguf *g;
    char err[512];
    int rc = lm_gguf_open(path, &g, err, sizeof err);
    CHECK(rc == LM_OK, "open %s: %s", path, err);
    if (rc)
        return;
    CHECK(lm_gguf_version(g) == 3, "version %u", lm_gguf_version(g));
    CHECK(lm_gguf_file_size(g) == 1185376, "file size %zu", lm_gguf_file_size(g));
    CHECK(lm_gguf_alignment(g) == 32, "alignment %zu", lm_gguf_alignment(g));
    CHECK(lm_gguf_data_offset(g) == 14176, "data offset %zu", lm_gguf_data_offset(g));
    CHECK(lm_gguf_n_tensors(g) == 48, "n_tensors %lld", (long long)lm_gguf_n_tensors(g));

    const char *s;
    size_t len;
    CHECK(lm_gguf_get_str(g, "general.architecture", &s, &len) == LM_OK && !strcmp(s, "llama") && len == 5,
          "general.architecture");
    CHECK(lm_gguf_get_str(g, "tokenizer.ggml.model", &s, NULL) == LM_OK && !strcmp(s, "llama"),
          "tokenizer.ggml.model");
    static const struct { const char *key; uint32_t v; } u32s[] = {
        { "llama.embedding_length", 64 },      { "llama.feed_forward_length", 172 },
        { "llama.block_count", 5 },            { "llama.attention.head_count", 8 },
        { "llama.attention.head_count_kv", 4 }, { "llama.rope.dimension_count", 8 },
        { "llama.context_length", 2048 },      { "tokenizer.ggml.bos_token_id", 1 },
        { "tokenizer.ggml.eos_token_id", 2 },  { "tokenizer.ggml.unknown_token_id", 0 },
        { "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu },
    };
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        uint32_t v = 12345;
        rc = lm_gguf_get_u32(g, u32s[i].key, &v);
        CHECK(rc == LM_OK && v == u32s[i].v, "%s: rc %d value %u, want %u", u32s[i].key, rc, v, u32s[i].v);
    }
    float eps = 0;
    CHECK(lm_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps) == LM_OK && eps == 1e-5f,
          "rms epsilon %g", eps);
    double eps64 = 0;
    CHECK(lm_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps64) == LM_OK && eps64 == (double)1e-5f,
          "rms epsilon as f64 %g", eps64);

    /* errors, never aborts */
    float f = 7;
    CHECK(lm_gguf_get_f32(g, "llama.rope.freq_base", &f) == LM_ERR_NOT_FOUND && f == 7, "freq_base is absent");
    CHECK(lm_gguf_find(g, "llama.rope.freq_base") == -1, "find of a missing key");
    CHECK(lm_gguf_find(g, "llama.block_count") >= 0, "find of a present key");
    CHECK(lm_gguf_get_str(g, "llama.block_count", &s, NULL) == LM_ERR_TYPE, "str asked of a u32");
    uint32_t u = 99;
    CHECK(lm_gguf_get_u32(g, "general.architecture", &u) == LM_ERR_TYPE && u == 99, "u32 asked of a str");
    CHECK(lm_gguf_get_f32(g, "llama.block_count", &f) == LM_ERR_TYPE, "f32 asked of a u32");
    bool b;
    CHECK(lm_gguf_get_bool(g, "llama.block_count", &b) == LM_ERR_TYPE, "bool asked of a u32");
    int32_t i32;
    CHECK(lm_gguf_get_i32(g, "tokenizer.ggml.padding_token_id", &i32) == LM_ERR_TYPE, "0xFFFFFFFF does not fit i32");
    int64_t i64 = 0;
    CHECK(lm_gguf_get_i64(g, "tokenizer.ggml.padding_token_id", &i64) == LM_OK && i64 == 0xFFFFFFFFll, "i64 widening");
    int et;
    uint64_t n;
    const void *data;
    CHECK(lm_gguf_get_arr(g, "llama.block_count", &et, &n, &data) == LM_ERR_TYPE, "arr asked of a u32");

    /* the vocabulary */
    CHECK(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data) == LM_OK && et == LM_GGUF_STR && n == 512 &&
          !data, "tokens: type %d n %llu", et, (unsigned long long)n);
    CHECK(lm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &len) == LM_OK && len == 3 && !memcmp(s, "<s>", 3),
          "token 1");
    CHECK(lm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 3, &s, &len) == LM_OK && len == 6 &&
          !memcmp(s, "<0x00>", 6), "token 3");
    CHECK(lm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 512, &s, &len) == LM_ERR_NOT_FOUND, "token 512 is out of range");
    CHECK(lm_gguf_get_arr_str(g, "tokenizer.ggml.scores", 0, &s, &len) == LM_ERR_TYPE, "scores are not strings");
    CHECK(lm_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &data) == LM_OK && et == LM_GGUF_F32 && n == 512 && data,
          "scores");
    CHECK(lm_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &data) == LM_OK && et == LM_GGUF_I32 && n == 512,
          "token_type");
    int64_t tt = 0;
    CHECK(lm_gguf_arr_i64(g, "tokenizer.ggml.token_type", 1, &tt) == LM_OK && tt == 3, "token 1 is a control token");
    CHECK(lm_gguf_arr_i64(g, "tokenizer.ggml.token_type", 3, &tt) == LM_OK && tt == 6, "token 3 is a byte token");
    double d;
    CHECK(lm_gguf_arr_i64(g, "tokenizer.ggml.scores", 0, &tt) == LM_ERR_TYPE, "i64 of an f32 array");
    CHECK(lm_gguf_arr_f64(g, "tokenizer.ggml.scores", 0, &d) == LM_OK, "f64 of an f32 array");

    /* the tensors, ne0 first */
    static const struct { const char *name; int64_t ne0, ne1; } shapes[] = {
        { "token_embd.weight", 64, 512 }, { "output.weight", 64, 512 }, { "output_norm.weight", 64, 1 },
        { "attn_q", 64, 64 }, { "attn_k", 64, 32 }, { "attn_v", 64, 32 }, { "attn_output", 64, 64 },
        { "ffn_gate", 64, 172 }, { "ffn_up", 64, 172 }, { "ffn_down", 172, 64 }, { "attn_norm", 64, 1 },
        { "ffn_norm", 64, 1 },
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        bool per_block = !strchr(shapes[i].name, '.');
        for (int blk = 0; blk < (per_block ? 5 : 1); blk++) {
            char name[64];
            if (per_block)
                snprintf(name, sizeof name, "blk.%d.%s.weight", blk, shapes[i].name);
            else
                snprintf(name, sizeof name, "%s", shapes[i].name);
            int64_t ti = lm_gguf_find_tensor(g, name);
            lm_gguf_tensor_info t;
            CHECK(ti >= 0 && lm_gguf_tensor(g, ti, &t) == LM_OK, "tensor %s is missing", name);
            if (ti < 0)
                continue;
            int64_t ne1 = shapes[i].ne1;
            CHECK(!strcmp(t.name, name) && t.type == LM_GGML_F32 && t.n_dims == (ne1 > 1 ? 2 : 1) &&
                  t.ne[0] == shapes[i].ne0 && t.ne[1] == ne1 && t.ne[2] == 1 && t.ne[3] == 1 &&
                  t.n_elements == shapes[i].ne0 * ne1 && t.size == (size_t)t.n_elements * 4,
                  "%s: type %d n_dims %d ne [%lld,%lld,%lld,%lld] size %zu", name, t.type, t.n_dims,
                  (long long)t.ne[0], (long long)t.ne[1], (long long)t.ne[2], (long long)t.ne[3], t.size);
            CHECK((uintptr_t)t.data % 32 == 0 && t.offset % 32 == 0, "%s: data not aligned", name);
        }
    }
    int64_t total = 0;
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        CHECK(lm_gguf_tensor(g, i, &t) == LM_OK, "tensor %lld", (long long)i);
        total += t.n_elements;
    }
    CHECK(total == 260032 + 64 * 512, "parameters %lld (260032 + a separate output matrix)", (long long)total);
    lm_gguf_tensor_info te, to;
    CHECK(lm_gguf_tensor(g, lm_gguf_find_tensor(g, "token_embd.weight"), &te) == LM_OK &&
          lm_gguf_tensor(g, lm_gguf_find_tensor(g, "output.weight"), &to) == LM_OK &&
          !memcmp(te.data, to.data, te.size), "output.weight is bit-identical to token_embd.weight");
    CHECK(lm_gguf_tensor(g, 48, &te) == LM_ERR_NOT_FOUND && lm_gguf_tensor(g, -1, &te) == LM_ERR_NOT_FOUND,
          "tensor index out of range");
    CHECK(lm_gguf_find_tensor(g, "nope") == -1, "find of a missing tensor");
    lm_gguf_close(g);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* n_vocab per tokenizer-vectors file (models/README.md section 3). */
static const struct { const char *file; uint64_t n_vocab; } vocabs[] = {
    { "ggml-vocab-llama-spm.gguf", 32000 },  { "ggml-vocab-phi-3.gguf", 32064 },
    { "ggml-vocab-baichuan.gguf", 64000 },   { "ggml-vocab-bert-bge.gguf", 30522 },
    { "ggml-vocab-gpt-2.gguf", 50257 },      { "ggml-vocab-llama-bpe.gguf", 128256 },
    { "ggml-vocab-qwen2.gguf", 151936 },     { "ggml-vocab-deepseek-coder.gguf", 32256 },
    { "ggml-vocab-deepseek-llm.gguf", 102400 }, { "ggml-vocab-falcon.gguf", 65024 },
    { "ggml-vocab-mpt.gguf", 50432 },        { "ggml-vocab-gpt-neox.gguf", 50432 },
    { "ggml-vocab-refact.gguf", 49216 },     { "ggml-vocab-starcoder.gguf", 49152 },
};

/* Tensor types per quant fixture (quant/README.md), as "TYPE xN" counts. */
static const struct { const char *file; const char *types; } quants[] = {
    { "kq-f32.gguf", "F32 x12" },                       { "kq-f16.gguf", "F32 x3, F16 x9" },
    { "kq-bf16.gguf", "F32 x3, BF16 x9" },              { "kq-q8_0.gguf", "F32 x3, Q8_0 x9" },
    { "kq-q4_0.gguf", "F32 x3, Q4_0 x8, Q6_K x1" },     { "kq-q4_1.gguf", "F32 x3, Q4_1 x8, Q6_K x1" },
    { "kq-q5_0.gguf", "F32 x3, Q5_0 x8, Q6_K x1" },     { "kq-q5_1.gguf", "F32 x3, Q5_1 x8, Q6_K x1" },
    { "kq-q2_k.gguf", "F32 x3, Q2_K x5, Q3_K x3, Q6_K x1" }, { "kq-q3_k_s.gguf", "F32 x3, Q3_K x8, Q6_K x1" },
    { "kq-q4_k_s.gguf", "F32 x3, Q4_K x7, Q5_K x1, Q6_K x1" }, { "kq-q4_k_m.gguf", "F32 x3, Q4_K x6, Q6_K x3" },
    { "kq-q5_k_s.gguf", "F32 x3, Q5_K x8, Q6_K x1" },   { "kq-q6_k.gguf", "F32 x3, Q6_K x9" },
    { "kq-iq4_nl.gguf", "F32 x3, Q6_K x1, IQ4_NL x8" },
};

/* "F32 x3, Q4_K x6, ..." in type-id order. */
static void type_counts(const lm_gguf *g, char *out, size_t outlen)
{
    int64_t count[LM_GGML_TYPE_COUNT] = { 0 };
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        if (lm_gguf_tensor(g, i, &t) == LM_OK)
            count[t.type]++;
    }
    out[0] = 0;
    for (int ty = 0; ty < LM_GGML_TYPE_COUNT; ty++)
        if (count[ty]) {
            size_t l = strlen(out);
            snprintf(out + l, outlen - l, "%s%s x%lld", l ? ", " : "", lm_gguf_type_name(ty), (long long)count[ty]);
        }
}

static void check_dir(const char *rel)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_model_path(rel));
    DIR *dp = opendir(dir);
    CHECK(dp, "cannot list %s", dir);
    if (!dp)
        return;
    int n_files = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (!ends_with(e->d_name, ".gguf"))
            continue;
        char path[4400], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        lm_gguf *g;
        int rc = lm_gguf_open(path, &g, err, sizeof err);
        CHECK(rc == LM_OK, "open %s: %s", path, err);
        if (rc)
            continue;
        n_files++;
        for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
            if (strcmp(e->d_name, vocabs[i].file))
                continue;
            int et;
            uint64_t n;
            const void *data;
            const char *s;
            size_t len;
            CHECK(lm_gguf_n_tensors(g) == 0, "%s has tensors", e->d_name);
            CHECK(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data) == LM_OK && et == LM_GGUF_STR &&
                  n == vocabs[i].n_vocab, "%s: %llu tokens, want %llu", e->d_name, (unsigned long long)n,
                  (unsigned long long)vocabs[i].n_vocab);
            CHECK(lm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", n - 1, &s, &len) == LM_OK && len > 0,
                  "%s: last token", e->d_name);
            CHECK(lm_gguf_get_str(g, "tokenizer.ggml.model", &s, NULL) == LM_OK, "%s: tokenizer.ggml.model", e->d_name);
        }
        for (size_t i = 0; i < sizeof quants / sizeof quants[0]; i++) {
            if (strcmp(e->d_name, quants[i].file))
                continue;
            char got[256];
            type_counts(g, got, sizeof got);
            CHECK(!strcmp(got, quants[i].types), "%s: tensor types %s, want %s", e->d_name, got, quants[i].types);
        }
        if (ends_with(e->d_name, ".dequant-f32.gguf")) {
            char got[256];
            type_counts(g, got, sizeof got);
            CHECK(!strcmp(got, "F32 x12"), "%s: tensor types %s", e->d_name, got);
        }
        lm_gguf_close(g);
    }
    closedir(dp);
    CHECK(n_files > 0, "no .gguf files in %s", dir);
    printf("test_gguf: opened %d files in %s\n", n_files, rel);
}

/* ---------------------------------------------------------------- a small GGUF of our own */

typedef struct { uint8_t *p; size_t n, cap; } buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u16(buf *b, uint16_t v) { put(b, &v, 2); }
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

enum { K_ARCH, K_ALIGN, K_U8, K_I8, K_U16, K_I16, K_U32, K_I32, K_F32, K_BOOL, K_U64, K_I64, K_F64, K_STR,
       K_DUP1, K_DUP2, K_ARR_I32, K_ARR_F32, K_ARR_BOOL, K_ARR_STR, K_ARR_EMPTY, N_KV };
enum { T_A, T_B, T_C, N_T };

/* Where each field of the file we write lies, so the mutations can aim at it. */
typedef struct {
    size_t kv_key[N_KV], kv_type[N_KV], kv_val[N_KV]; /* key length field, vtype field, value */
    size_t t_name[N_T], t_ndims[N_T], t_ne[N_T], t_type[N_T], t_off[N_T];
    size_t data, size;
} layout;

static void kv(buf *b, layout *L, int i, const char *key, uint32_t type)
{
    L->kv_key[i] = b->n;
    put_str(b, key);
    L->kv_type[i] = b->n;
    put_u32(b, type);
    L->kv_val[i] = b->n;
}

static void tensor(buf *b, layout *L, int i, const char *name, int n_dims, const uint64_t *ne, uint32_t type,
                   uint64_t off)
{
    L->t_name[i] = b->n;
    put_str(b, name);
    L->t_ndims[i] = b->n;
    put_u32(b, (uint32_t)n_dims);
    L->t_ne[i] = b->n;
    for (int d = 0; d < n_dims; d++)
        put_u64(b, ne[d]);
    L->t_type[i] = b->n;
    put_u32(b, type);
    L->t_off[i] = b->n;
    put_u64(b, off);
}

/* A valid GGUF v3 with every value type and three tensors: t.a F32 [4,2] at 0 (32 bytes), t.b Q8_0
 * [32,1,1] at 32 (34 bytes), t.c F16 [3,1,1,2] at 96 (12 bytes); the file ends with t.c. */
static buf build(layout *L)
{
    buf b = { 0 };
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, N_T);
    put_u64(&b, N_KV);
    kv(&b, L, K_ARCH, "general.architecture", LM_GGUF_STR), put_str(&b, "llama");
    kv(&b, L, K_ALIGN, "general.alignment", LM_GGUF_U32), put_u32(&b, 32);
    kv(&b, L, K_U8, "t.u8", LM_GGUF_U8), put_u8(&b, 200);
    kv(&b, L, K_I8, "t.i8", LM_GGUF_I8), put_u8(&b, (uint8_t)-5);
    kv(&b, L, K_U16, "t.u16", LM_GGUF_U16), put_u16(&b, 65535);
    kv(&b, L, K_I16, "t.i16", LM_GGUF_I16), put_u16(&b, (uint16_t)-300);
    kv(&b, L, K_U32, "t.u32", LM_GGUF_U32), put_u32(&b, 0xFFFFFFFFu);
    kv(&b, L, K_I32, "t.i32", LM_GGUF_I32), put_u32(&b, (uint32_t)-7);
    float f = 0.5f;
    kv(&b, L, K_F32, "t.f32", LM_GGUF_F32), put(&b, &f, 4);
    kv(&b, L, K_BOOL, "t.bool", LM_GGUF_BOOL), put_u8(&b, 1);
    kv(&b, L, K_U64, "t.u64", LM_GGUF_U64), put_u64(&b, UINT64_MAX);
    kv(&b, L, K_I64, "t.i64", LM_GGUF_I64), put_u64(&b, (uint64_t)INT64_MIN);
    double d = 1e300;
    kv(&b, L, K_F64, "t.f64", LM_GGUF_F64), put(&b, &d, 8);
    kv(&b, L, K_STR, "t.str", LM_GGUF_STR), put_str(&b, "");
    kv(&b, L, K_DUP1, "k.aa", LM_GGUF_U32), put_u32(&b, 1);
    kv(&b, L, K_DUP2, "k.ab", LM_GGUF_U32), put_u32(&b, 2);
    kv(&b, L, K_ARR_I32, "t.arr_i32", LM_GGUF_ARR), put_u32(&b, LM_GGUF_I32), put_u64(&b, 3);
    put_u32(&b, 1), put_u32(&b, (uint32_t)-2), put_u32(&b, 3);
    float fa[2] = { 0.25f, -0.5f };
    kv(&b, L, K_ARR_F32, "t.arr_f32", LM_GGUF_ARR), put_u32(&b, LM_GGUF_F32), put_u64(&b, 2), put(&b, fa, 8);
    kv(&b, L, K_ARR_BOOL, "t.arr_bool", LM_GGUF_ARR), put_u32(&b, LM_GGUF_BOOL), put_u64(&b, 3);
    put_u8(&b, 0), put_u8(&b, 1), put_u8(&b, 1);
    kv(&b, L, K_ARR_STR, "t.arr_str", LM_GGUF_ARR), put_u32(&b, LM_GGUF_STR), put_u64(&b, 3);
    put_str(&b, ""), put_str(&b, "hello"), put_str(&b, "w\xc3\xb6rld");
    kv(&b, L, K_ARR_EMPTY, "t.arr_empty", LM_GGUF_ARR), put_u32(&b, LM_GGUF_U8), put_u64(&b, 0);

    tensor(&b, L, T_A, "t.a", 2, (const uint64_t[]){ 4, 2 }, LM_GGML_F32, 0);
    tensor(&b, L, T_B, "t.b", 3, (const uint64_t[]){ 32, 1, 1 }, LM_GGML_Q8_0, 32);
    tensor(&b, L, T_C, "t.c", 4, (const uint64_t[]){ 3, 1, 1, 2 }, LM_GGML_F16, 96);
    while (b.n % 32)
        put_u8(&b, 0);
    L->data = b.n;
    for (int i = 0; i < 96 + 12; i++)
        put_u8(&b, (uint8_t)(i * 7 + 1));
    L->size = b.n;
    return b;
}

static void check_own_file(const buf *b, const layout *L)
{
    lm_gguf *g;
    char err[512];
    int rc = open_bytes(b->p, b->n, &g, err, sizeof err);
    CHECK(rc == LM_OK, "our own file: %s", err);
    if (rc)
        return;
    CHECK(lm_gguf_n_kv(g) == N_KV && lm_gguf_n_tensors(g) == N_T && lm_gguf_data_offset(g) == L->data,
          "counts and data offset");
    lm_gguf_kv_info ki;
    CHECK(lm_gguf_kv(g, K_ARR_STR, &ki) == LM_OK && !strcmp(ki.key, "t.arr_str") && ki.type == LM_GGUF_ARR &&
          ki.elem_type == LM_GGUF_STR && ki.n == 3, "kv info of an array");
    CHECK(lm_gguf_kv(g, K_U8, &ki) == LM_OK && ki.type == LM_GGUF_U8 && ki.elem_type == -1 && ki.n == 1,
          "kv info of a scalar");
    CHECK(lm_gguf_kv(g, N_KV, &ki) == LM_ERR_NOT_FOUND, "kv index out of range");
    for (int i = 0; i < N_KV; i++) {
        CHECK(lm_gguf_kv(g, i, &ki) == LM_OK && lm_gguf_find(g, ki.key) == i, "find key %d", i);
    }

    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    bool bo;
    const char *s;
    size_t len;
    CHECK(lm_gguf_get_u32(g, "t.u8", &u32) == LM_OK && u32 == 200, "u8 as u32");
    CHECK(lm_gguf_get_i32(g, "t.u8", &i32) == LM_OK && i32 == 200, "u8 as i32");
    CHECK(lm_gguf_get_u32(g, "t.i8", &u32) == LM_ERR_TYPE, "negative i8 as u32");
    CHECK(lm_gguf_get_u64(g, "t.i8", &u64) == LM_ERR_TYPE, "negative i8 as u64");
    CHECK(lm_gguf_get_i32(g, "t.i8", &i32) == LM_OK && i32 == -5, "i8 as i32");
    CHECK(lm_gguf_get_i64(g, "t.i16", &i64) == LM_OK && i64 == -300, "i16 as i64");
    CHECK(lm_gguf_get_u32(g, "t.u16", &u32) == LM_OK && u32 == 65535, "u16 as u32");
    CHECK(lm_gguf_get_u32(g, "t.u32", &u32) == LM_OK && u32 == 0xFFFFFFFFu, "u32");
    CHECK(lm_gguf_get_i32(g, "t.u32", &i32) == LM_ERR_TYPE, "big u32 as i32");
    CHECK(lm_gguf_get_u32(g, "t.i32", &u32) == LM_ERR_TYPE, "negative i32 as u32");
    CHECK(lm_gguf_get_i32(g, "t.i32", &i32) == LM_OK && i32 == -7, "i32");
    CHECK(lm_gguf_get_u64(g, "t.u64", &u64) == LM_OK && u64 == UINT64_MAX, "u64");
    CHECK(lm_gguf_get_i64(g, "t.u64", &i64) == LM_ERR_TYPE, "u64 max as i64");
    CHECK(lm_gguf_get_u32(g, "t.u64", &u32) == LM_ERR_TYPE, "u64 max as u32");
    CHECK(lm_gguf_get_i64(g, "t.i64", &i64) == LM_OK && i64 == INT64_MIN, "i64 min");
    CHECK(lm_gguf_get_i32(g, "t.i64", &i32) == LM_ERR_TYPE, "i64 min as i32");
    CHECK(lm_gguf_get_f32(g, "t.f32", &f) == LM_OK && f == 0.5f, "f32");
    CHECK(lm_gguf_get_f64(g, "t.f32", &d) == LM_OK && d == 0.5, "f32 as f64");
    CHECK(lm_gguf_get_f64(g, "t.f64", &d) == LM_OK && d == 1e300, "f64");
    CHECK(lm_gguf_get_f32(g, "t.f64", &f) == LM_OK && isinf(f), "f64 too big for f32 (inf)");
    CHECK(lm_gguf_get_f32(g, "t.i32", &f) == LM_ERR_TYPE, "f32 asked of an i32");
    CHECK(lm_gguf_get_u32(g, "t.f32", &u32) == LM_ERR_TYPE, "u32 asked of an f32");
    CHECK(lm_gguf_get_bool(g, "t.bool", &bo) == LM_OK && bo, "bool");
    CHECK(lm_gguf_get_u32(g, "t.bool", &u32) == LM_ERR_TYPE, "u32 asked of a bool");
    CHECK(lm_gguf_get_str(g, "t.str", &s, &len) == LM_OK && len == 0 && s[0] == 0, "empty string");
    CHECK(lm_gguf_get_str(g, "t.arr_str", &s, &len) == LM_ERR_TYPE, "str asked of an array");
    CHECK(lm_gguf_get_u32(g, "no.such.key", &u32) == LM_ERR_NOT_FOUND, "missing key");
    CHECK(lm_gguf_get_u32(g, "k.ab", &u32) == LM_OK && u32 == 2, "k.ab");

    int et;
    uint64_t n;
    const void *data;
    int32_t ia[3];
    CHECK(lm_gguf_get_arr(g, "t.arr_i32", &et, &n, &data) == LM_OK && et == LM_GGUF_I32 && n == 3 && data &&
          (memcpy(ia, data, sizeof ia), ia[0] == 1 && ia[1] == -2 && ia[2] == 3), "i32 array");
    CHECK(lm_gguf_arr_i64(g, "t.arr_i32", 1, &i64) == LM_OK && i64 == -2, "i32 array element");
    CHECK(lm_gguf_arr_i64(g, "t.arr_i32", 3, &i64) == LM_ERR_NOT_FOUND, "i32 array element out of range");
    CHECK(lm_gguf_arr_f64(g, "t.arr_f32", 1, &d) == LM_OK && d == -0.5, "f32 array element");
    CHECK(lm_gguf_arr_f64(g, "t.arr_i32", 0, &d) == LM_ERR_TYPE, "f64 of an i32 array");
    CHECK(lm_gguf_arr_i64(g, "t.u32", 0, &i64) == LM_ERR_TYPE, "array element of a scalar");
    CHECK(lm_gguf_get_arr(g, "t.arr_bool", &et, &n, &data) == LM_OK && et == LM_GGUF_BOOL && n == 3 &&
          ((const uint8_t *)data)[2] == 1, "bool array");
    CHECK(lm_gguf_get_arr(g, "t.arr_empty", &et, &n, &data) == LM_OK && et == LM_GGUF_U8 && n == 0, "empty array");
    CHECK(lm_gguf_get_arr_str(g, "t.arr_str", 0, &s, &len) == LM_OK && len == 0, "string element 0");
    CHECK(lm_gguf_get_arr_str(g, "t.arr_str", 1, &s, &len) == LM_OK && len == 5 && !memcmp(s, "hello", 5),
          "string element 1");
    CHECK(lm_gguf_get_arr_str(g, "t.arr_str", 2, &s, &len) == LM_OK && len == 6 && !memcmp(s, "w\xc3\xb6rld", 6),
          "string element 2");
    CHECK(lm_gguf_get_arr_str(g, "t.arr_str", 3, &s, &len) == LM_ERR_NOT_FOUND, "string element 3");
    CHECK(lm_gguf_get_arr_str(g, "t.arr_i32", 0, &s, &len) == LM_ERR_TYPE, "string element of an i32 array");

    static const struct { const char *name; int type, n_dims; int64_t ne[4]; size_t rel, size; } want[N_T] = {
        { "t.a", LM_GGML_F32, 2, { 4, 2, 1, 1 }, 0, 32 },
        { "t.b", LM_GGML_Q8_0, 3, { 32, 1, 1, 1 }, 32, 34 },
        { "t.c", LM_GGML_F16, 4, { 3, 1, 1, 2 }, 96, 12 },
    };
    for (int i = 0; i < N_T; i++) {
        lm_gguf_tensor_info t;
        CHECK(lm_gguf_tensor(g, lm_gguf_find_tensor(g, want[i].name), &t) == LM_OK, "tensor %s", want[i].name);
        CHECK(!strcmp(t.name, want[i].name) && t.type == want[i].type && t.n_dims == want[i].n_dims &&
              !memcmp(t.ne, want[i].ne, sizeof t.ne) && t.offset == L->data + want[i].rel && t.size == want[i].size &&
              t.n_elements == want[i].ne[0] * want[i].ne[1] * want[i].ne[2] * want[i].ne[3],
              "tensor %s: type %d n_dims %d offset %zu size %zu", want[i].name, t.type, t.n_dims, t.offset, t.size);
        CHECK(t.data && ((const uint8_t *)t.data)[0] == (uint8_t)(want[i].rel * 7 + 1), "tensor %s data", want[i].name);
    }
    lm_gguf_close(g);

    /* GGUF v2 has the same layout */
    uint8_t *v2 = malloc(b->n);
    memcpy(v2, b->p, b->n);
    v2[4] = 2;
    rc = open_bytes(v2, b->n, &g, err, sizeof err);
    CHECK(rc == LM_OK && lm_gguf_version(g) == 2, "version 2: %s", err);
    lm_gguf_close(g);
    free(v2);
}

/* ---------------------------------------------------------------- malformed files */

static void set32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void set64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }

/* One mutation of the valid file: a u32/u64/byte write at an offset, the status it must give and a
 * word the message must contain. */
typedef struct {
    const char *what;
    size_t off;
    int width;      /* 1, 4 or 8 bytes */
    uint64_t value;
    int status;
    const char *in_msg;
} mutation;

static void check_rejected(const char *what, const uint8_t *p, size_t n, int status, const char *in_msg)
{
    lm_gguf *g = (lm_gguf *)&g; /* must come back NULL */
    char err[512] = "";
    int rc = open_bytes(p, n, &g, err, sizeof err);
    CHECK(rc == status, "%s: status %d (%s), want %d", what, rc, err, status);
    CHECK(g == NULL, "%s: handle not NULL on failure", what);
    CHECK(err[0] != 0, "%s: empty message", what);
    CHECK(!in_msg || strstr(err, in_msg), "%s: message '%s' lacks '%s'", what, err, in_msg);
    printf("  %-32s -> %s\n", what, err + strlen(tmp_path) * !strncmp(err, tmp_path, strlen(tmp_path)));
    if (rc == LM_OK)
        lm_gguf_close(g);
}

/* Whatever an accepted file says, every getter on every key and tensor must stay in bounds. */
static void exercise(const lm_gguf *g)
{
    for (int64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        lm_gguf_kv_info k;
        if (lm_gguf_kv(g, i, &k) != LM_OK)
            continue;
        uint32_t u32;
        int32_t i32;
        uint64_t u64, n;
        int64_t i64;
        float f;
        double d;
        bool bo;
        const char *s;
        size_t len;
        int et;
        const void *data;
        (void)lm_gguf_get_u32(g, k.key, &u32), (void)lm_gguf_get_i32(g, k.key, &i32);
        (void)lm_gguf_get_u64(g, k.key, &u64), (void)lm_gguf_get_i64(g, k.key, &i64);
        (void)lm_gguf_get_f32(g, k.key, &f), (void)lm_gguf_get_f64(g, k.key, &d);
        (void)lm_gguf_get_bool(g, k.key, &bo);
        if (lm_gguf_get_str(g, k.key, &s, &len) == LM_OK)
            (void)((volatile const char *)s)[len];
        if (lm_gguf_get_arr(g, k.key, &et, &n, &data) != LM_OK)
            continue;
        for (uint64_t j = 0; j < n; j++) {
            (void)lm_gguf_arr_i64(g, k.key, j, &i64), (void)lm_gguf_arr_f64(g, k.key, j, &d);
            if (lm_gguf_get_arr_str(g, k.key, j, &s, &len) == LM_OK && len)
                (void)((volatile const char *)s)[len - 1];
        }
    }
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        if (lm_gguf_tensor(g, i, &t) == LM_OK && t.size)
            (void)((volatile const uint8_t *)t.data)[t.size - 1];
    }
}

static void check_malformed(const buf *b, const layout *L)
{
    const mutation muts[] = {
        { "bad magic", 0, 1, 'X', LM_ERR_FORMAT, "magic" },
        { "version 0", 4, 4, 0, LM_ERR_FORMAT, "version" },
        { "version 1", 4, 4, 1, LM_ERR_UNSUPPORTED, "version 1" },
        { "version 4", 4, 4, 4, LM_ERR_UNSUPPORTED, "version 4" },
        { "big-endian version", 4, 4, 0x03000000, LM_ERR_UNSUPPORTED, "big-endian" },
        { "absurd tensor count", 8, 8, UINT64_MAX, LM_ERR_FORMAT, "tensor count" },
        { "absurd key count", 16, 8, 1ull << 40, LM_ERR_FORMAT, "key/value count" },
        { "one key too many", 16, 8, N_KV + 1, LM_ERR_FORMAT, NULL },
        { "one tensor too many", 8, 8, N_T + 1, LM_ERR_FORMAT, NULL },
        { "key length huge", L->kv_key[K_U8], 8, UINT64_MAX, LM_ERR_FORMAT, "key" },
        { "key length past the end", L->kv_key[K_U8], 8, 60000, LM_ERR_FORMAT, "truncated" },
        { "empty key", L->kv_key[K_U8], 8, 0, LM_ERR_FORMAT, "empty key" },
        { "control byte in key", L->kv_key[K_U8] + 9, 1, '\n', LM_ERR_FORMAT, "ASCII" },
        { "NUL in key", L->kv_key[K_U8] + 9, 1, 0, LM_ERR_FORMAT, "ASCII" },
        { "unknown value type", L->kv_type[K_U8], 4, 13, LM_ERR_FORMAT, "t.u8" },
        { "value type -1", L->kv_type[K_U32], 4, UINT32_MAX, LM_ERR_FORMAT, "unknown value type" },
        { "string length huge", L->kv_val[K_ARCH], 8, UINT64_MAX - 3, LM_ERR_FORMAT, "general.architecture" },
        { "bool value 2", L->kv_val[K_BOOL], 1, 2, LM_ERR_FORMAT, "bool" },
        { "unknown array element type", L->kv_val[K_ARR_I32], 4, 77, LM_ERR_FORMAT, "t.arr_i32" },
        { "array of arrays", L->kv_val[K_ARR_I32], 4, LM_GGUF_ARR, LM_ERR_UNSUPPORTED, "array of arrays" },
        { "array length huge", L->kv_val[K_ARR_I32] + 4, 8, UINT64_MAX, LM_ERR_FORMAT, "t.arr_i32" },
        { "array bytes overflow", L->kv_val[K_ARR_I32] + 4, 8, 1ull << 62, LM_ERR_FORMAT, "t.arr_i32" },
        { "array one too long", L->kv_val[K_ARR_F32] + 4, 8, 1000, LM_ERR_FORMAT, "t.arr_f32" },
        { "string array length huge", L->kv_val[K_ARR_STR] + 4, 8, 1ull << 60, LM_ERR_FORMAT, "t.arr_str" },
        { "string array element huge", L->kv_val[K_ARR_STR] + 12, 8, UINT64_MAX, LM_ERR_FORMAT, "t.arr_str" },
        { "bool array element 7", L->kv_val[K_ARR_BOOL] + 12 + 1, 1, 7, LM_ERR_FORMAT, "bool" },
        { "duplicate key", L->kv_key[K_DUP2] + 11, 1, 'a', LM_ERR_FORMAT, "duplicate key" },
        { "alignment 0", L->kv_val[K_ALIGN], 4, 0, LM_ERR_FORMAT, "general.alignment" },
        { "alignment 3", L->kv_val[K_ALIGN], 4, 3, LM_ERR_FORMAT, "power of two" },
        { "alignment 48", L->kv_val[K_ALIGN], 4, 48, LM_ERR_FORMAT, "power of two" },
        { "alignment as i32", L->kv_type[K_ALIGN], 4, LM_GGUF_I32, LM_ERR_FORMAT, "u32" },
        { "alignment 64 misaligns t.b", L->kv_val[K_ALIGN], 4, 64, LM_ERR_FORMAT, "t.b" },
        { "tensor name too long", L->t_name[T_A], 8, 65, LM_ERR_FORMAT, "limit" },
        { "empty tensor name", L->t_name[T_B], 8, 0, LM_ERR_FORMAT, "empty" },
        { "duplicate tensor name", L->t_name[T_C] + 10, 1, 'a', LM_ERR_FORMAT, "duplicate tensor" },
        { "n_dims 0", L->t_ndims[T_A], 4, 0, LM_ERR_FORMAT, "n_dims" },
        { "n_dims 5", L->t_ndims[T_C], 4, 5, LM_ERR_FORMAT, "t.c" },
        { "dimension 0", L->t_ne[T_A] + 8, 8, 0, LM_ERR_FORMAT, "zero" },
        { "dimension negative", L->t_ne[T_A], 8, (uint64_t)-4, LM_ERR_FORMAT, "negative" },
        { "element count overflow", L->t_ne[T_A] + 8, 8, 1ull << 62, LM_ERR_FORMAT, "overflow" },
        { "byte size overflow", L->t_ne[T_A], 8, 1ull << 61, LM_ERR_FORMAT, "byte size overflows" },
        { "unknown tensor type", L->t_type[T_B], 4, 99, LM_ERR_FORMAT, "unknown tensor type 99" },
        { "retired tensor type 4", L->t_type[T_B], 4, 4, LM_ERR_FORMAT, "t.b" },
        { "row not a multiple of the block", L->t_ne[T_B], 8, 16, LM_ERR_FORMAT, "block" },
        { "F32 as Q4_K (row 4 < 256)", L->t_type[T_A], 4, LM_GGML_Q4_K, LM_ERR_FORMAT, "block" },
        { "misaligned tensor offset", L->t_off[T_C], 8, 100, LM_ERR_FORMAT, "alignment" },
        { "tensor offset past the end", L->t_off[T_C], 8, 4096, LM_ERR_FORMAT, "t.c" },
        { "tensor offset huge", L->t_off[T_C], 8, UINT64_MAX - 31, LM_ERR_FORMAT, "t.c" },
        { "tensor runs past the end", L->t_ne[T_C], 8, 4, LM_ERR_FORMAT, "end of the file" },
        { "overlapping tensors", L->t_off[T_B], 8, 0, LM_ERR_FORMAT, "overlaps" },
        { "overlapping by one block", L->t_ne[T_A], 8, 12, LM_ERR_FORMAT, "overlaps" },
    };
    uint8_t *p = malloc(b->n);
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        const mutation *m = &muts[i];
        memcpy(p, b->p, b->n);
        if (m->width == 1)
            p[m->off] = (uint8_t)m->value;
        else if (m->width == 4)
            set32(p, m->off, (uint32_t)m->value);
        else
            set64(p, m->off, m->value);
        check_rejected(m->what, p, b->n, m->status, m->in_msg);
    }

    /* truncation at every length */
    int bad = 0;
    for (size_t n = 0; n < b->n; n++) {
        lm_gguf *g = NULL;
        char err[512] = "";
        int rc = open_bytes(b->p, n, &g, err, sizeof err);
        if (rc != LM_ERR_FORMAT || g || !err[0]) {
            CHECK(0, "truncated to %zu bytes: status %d (%s)", n, rc, err);
            lm_gguf_close(g);
            if (++bad > 5)
                break;
        }
        if (n == 2)
            CHECK(strstr(err, "truncated") && strstr(err, "byte 0"), "truncation message: %s", err);
        if (n == L->size - 1)
            CHECK(strstr(err, "t.c") && strstr(err, "end of the file"), "truncation message: %s", err);
    }
    printf("test_gguf: %zu mutations and %zu truncations rejected\n", sizeof muts / sizeof muts[0], b->n);

    /* random byte flips: accepted or refused with a message, never a crash (ASan watches) */
    tu_rng rng = { tu_seed("test_gguf") };
    int refused = 0;
    for (int iter = 0; iter < 2000; iter++) {
        memcpy(p, b->p, b->n);
        int flips = 1 + (int)(tu_u32(&rng) % 4);
        for (int k = 0; k < flips; k++)
            p[tu_u32(&rng) % L->data] ^= (uint8_t)(1u << (tu_u32(&rng) % 8));
        lm_gguf *g = NULL;
        char err[512] = "";
        int rc = open_bytes(p, b->n, &g, err, sizeof err);
        CHECK(rc == LM_OK ? g != NULL : g == NULL && err[0], "fuzz %d: status %d with message '%s'", iter, rc, err);
        refused += rc != LM_OK;
        if (rc == LM_OK) {
            exercise(g);
            lm_gguf_close(g);
        }
    }
    printf("test_gguf: 2000 random corruptions, %d refused\n", refused);
    free(p);

    /* not files at all */
    lm_gguf *g = NULL;
    char err[512] = "";
    CHECK(lm_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err) == LM_ERR_IO && !g && strstr(err, "x.gguf"),
          "missing file: %s", err);
    CHECK(lm_gguf_open(tmp_dir, &g, err, sizeof err) == LM_ERR_IO && !g, "a directory: %s", err);
    CHECK(lm_gguf_open(tmp_dir, &g, NULL, 0) == LM_ERR_IO, "NULL err buffer");
    lm_gguf_close(NULL);
}

static void check_type_table(void)
{
    CHECK(!strcmp(lm_gguf_type_name(LM_GGML_Q4_K), "Q4_K") && lm_gguf_type_block(LM_GGML_Q4_K) == 256 &&
          lm_gguf_type_size(LM_GGML_Q4_K) == 144, "Q4_K");
    CHECK(lm_gguf_type_size(LM_GGML_Q8_0) == 34 && lm_gguf_type_size(LM_GGML_Q6_K) == 210 &&
          lm_gguf_type_size(LM_GGML_BF16) == 2 && lm_gguf_type_size(LM_GGML_MXFP4) == 17, "type sizes");
    CHECK(!lm_gguf_type_name(4) && !lm_gguf_type_name(31) && !lm_gguf_type_name(-1) &&
          !lm_gguf_type_name(LM_GGML_TYPE_COUNT) && lm_gguf_type_block(5) == 0, "retired / unknown types");
    CHECK(lm_gguf_row_size(LM_GGML_Q8_0, 64) == 68 && lm_gguf_row_size(LM_GGML_Q8_0, 33) == 0 &&
          lm_gguf_row_size(LM_GGML_F32, 3) == 12 && lm_gguf_row_size(77, 1) == 0, "row sizes");
    int known = 0;
    for (int t = 0; t < LM_GGML_TYPE_COUNT; t++) {
        if (!lm_gguf_type_name(t))
            continue;
        known++;
        CHECK(lm_gguf_type_block(t) > 0 && lm_gguf_type_size(t) > 0, "type %d", t);
        for (int u = 0; u < t; u++)
            CHECK(!lm_gguf_type_name(u) || strcmp(lm_gguf_type_name(u), lm_gguf_type_name(t)), "names %d %d", u, t);
    }
    CHECK(known == LM_GGML_TYPE_COUNT - 8, "%d known types", known); /* 4, 5, 31..33, 36..38 retired */
    CHECK(!strcmp(lm_gguf_vtype_name(LM_GGUF_ARR), "arr") && !strcmp(lm_gguf_vtype_name(99), "?"), "vtype names");
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/vkllm_gguf_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(tmp_path, sizeof tmp_path, "%s/t.gguf", tmp_dir);

    check_type_table();
    check_stories();
    check_dir("tokenizer-vectors");
    check_dir("quant");
    layout L;
    buf b = build(&L);
    check_own_file(&b, &L);
    check_malformed(&b, &L);
    free(b.p);

    unlink(tmp_path);
    rmdir(tmp_dir);
    return tu_finish("test_gguf");
}
