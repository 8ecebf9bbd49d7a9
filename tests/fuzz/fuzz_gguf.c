/* fuzz_gguf.c: the GGUF reader on any bytes: open, then read every key (each typed getter, every array
 * element) and every tensor (its bytes touched), look each up by name, and build a vocabulary from the
 * metadata when it has one. */
#include "lm.h"

#include "fuzz_util.h"

static fuzz_file file;
static volatile uint8_t sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_init(&file, "fuzz.gguf");
    return 0;
}

static void read_key(const lm_gguf *g, int64_t i)
{
    lm_gguf_kv_info kv;
    if (lm_gguf_kv(g, i, &kv) != LM_OK)
        abort(); /* i < n_kv */
    if (lm_gguf_find(g, kv.key) != i)
        abort(); /* keys are unique */
    (void)lm_gguf_vtype_name(kv.type);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    bool b;
    const char *s;
    size_t len;
    (void)lm_gguf_get_u32(g, kv.key, &u32);
    (void)lm_gguf_get_i32(g, kv.key, &i32);
    (void)lm_gguf_get_u64(g, kv.key, &u64);
    (void)lm_gguf_get_i64(g, kv.key, &i64);
    (void)lm_gguf_get_f32(g, kv.key, &f32);
    (void)lm_gguf_get_f64(g, kv.key, &f64);
    (void)lm_gguf_get_bool(g, kv.key, &b);
    if (lm_gguf_get_str(g, kv.key, &s, &len) == LM_OK && len)
        sink ^= (uint8_t)s[len - 1];
    int et;
    uint64_t n;
    const void *data;
    if (lm_gguf_get_arr(g, kv.key, &et, &n, &data) != LM_OK)
        return;
    /* every element of short arrays; the ends of long ones (the cost of a run stays bounded) */
    for (uint64_t j = 0; j < n; j++) {
        if (j == 64 && n > 128)
            j = n - 64;
        if (lm_gguf_get_arr_str(g, kv.key, j, &s, &len) == LM_OK && len)
            sink ^= (uint8_t)s[len - 1];
        (void)lm_gguf_arr_i64(g, kv.key, j, &i64);
        (void)lm_gguf_arr_f64(g, kv.key, j, &f64);
    }
    (void)lm_gguf_get_arr_str(g, kv.key, n, &s, &len); /* out of range */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file_set(&file, data, size);
    char err[512];
    lm_gguf *g = NULL;
    if (lm_gguf_open(file.path, &g, err, sizeof err) != LM_OK) {
        if (g)
            abort(); /* *out is NULL on failure */
        return 0;
    }
    (void)lm_gguf_version(g);
    (void)lm_gguf_alignment(g);
    if (lm_gguf_data_offset(g) > lm_gguf_file_size(g) + lm_gguf_alignment(g))
        abort();
    int64_t n_kv = lm_gguf_n_kv(g);
    for (int64_t i = 0; i < n_kv; i++)
        read_key(g, i);
    lm_gguf_kv_info kv;
    if (lm_gguf_kv(g, n_kv, &kv) != LM_ERR_NOT_FOUND)
        abort();
    int64_t n_t = lm_gguf_n_tensors(g);
    for (int64_t i = 0; i < n_t; i++) {
        lm_gguf_tensor_info t;
        if (lm_gguf_tensor(g, i, &t) != LM_OK || lm_gguf_find_tensor(g, t.name) != i)
            abort();
        (void)lm_gguf_type_name(t.type);
        if (t.offset + t.size > lm_gguf_file_size(g))
            abort(); /* the data lies inside the file */
        if (t.size) {
            const uint8_t *p = t.data;
            sink ^= p[0] ^ p[t.size - 1];
        }
    }
    lm_vocab *v = NULL;
    if (lm_vocab_from_gguf(g, &v, err, sizeof err) == LM_OK) {
        /* a vocabulary from hostile metadata still tokenizes and detokenizes */
        static const char text[] = "Hello world! <s> 123 \xe4\xbd\xa0\xe5\xa5\xbd\n\t  x";
        int32_t *ids = NULL;
        int64_t n = 0;
        if (lm_tokenize(v, text, sizeof text - 1, true, true, &ids, &n, err, sizeof err) == LM_OK) {
            char *out = NULL;
            size_t len = 0;
            if (lm_detokenize(v, ids, n, true, &out, &len, err, sizeof err) == LM_OK)
                free(out);
        }
        free(ids);
        int32_t nt = lm_vocab_n_tokens(v);
        for (int32_t id = 0; id < nt && id < 512; id++) {
            size_t len;
            (void)lm_token_text(v, id, &len);
            (void)lm_token_piece(v, id, &len);
        }
        lm_vocab_free(v);
    }
    lm_gguf_close(g);
    return 0;
}
