/* test_synthetic: synthetic models (models/synthetic.c) have their published shapes (parameter counts of
 * the real models), load with the metadata llama.cpp reads, are the same bytes for the same seed and
 * differ for another; `vkllm make-model` writes them and `vkllm bench -m synthetic:...` runs them. */
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm.h"

static char dir[] = "/tmp/vkllm-test-synthetic-XXXXXX";

static void test_shapes(void)
{
    /* parameter counts of the models the shapes are named after */
    static const struct { const char *name; int64_t params; } known[] = {
        { "llama-135m", 134515008 }, { "llama-1b", 1235814400 }, { "llama-8b", 8030261248 }, { "qwen2-0.5b", 494032768 },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const lm_synthetic_shape *s = lm_synthetic_shape_find(known[i].name);
        CHECK(s, "shape %s is missing", known[i].name);
        if (s)
            CHECK(lm_synthetic_n_params(s) == known[i].params, "%s: %lld parameters, expected %lld", known[i].name,
                  (long long)lm_synthetic_n_params(s), (long long)known[i].params);
    }
    const lm_synthetic_shape *sh;
    int type;
    char err[512];
    CHECK(lm_synthetic_parse("synthetic:llama-1b:q4_k", &sh, &type, err, sizeof err) == LM_OK && type == LM_GGML_Q4_K &&
              !strcmp(sh->name, "llama-1b"),
          "parse: %s", err);
    CHECK(lm_synthetic_parse("synthetic:llama-2b:Q4_0", &sh, &type, err, sizeof err) == LM_ERR_INVALID &&
              strstr(err, "llama-135m"),
          "an unknown shape lists the shapes: %s", err);
    CHECK(lm_synthetic_parse("synthetic:llama-1b:Q9", &sh, &type, err, sizeof err) == LM_ERR_INVALID && strstr(err, "Q4_K"),
          "an unknown type lists the types: %s", err);
}

static void test_files(void)
{
    char a[300], b[300], c[300], err[512];
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    snprintf(c, sizeof c, "%s/c.gguf", dir);
    const lm_synthetic_shape *sh = lm_synthetic_shape_find("llama-tiny");
    CHECK(lm_synthetic_write(sh, LM_GGML_Q4_K, 7, a, NULL, NULL, err, sizeof err) == LM_OK, "write: %s", err);
    CHECK(lm_synthetic_write(sh, LM_GGML_Q4_K, 7, b, NULL, NULL, err, sizeof err) == LM_OK, "write: %s", err);
    CHECK(lm_synthetic_write(sh, LM_GGML_Q4_K, 8, c, NULL, NULL, err, sizeof err) == LM_OK, "write: %s", err);
    size_t na, nb, nc;
    char *fa = tu_read_file(a, &na), *fb = tu_read_file(b, &nb), *fc = tu_read_file(c, &nc);
    CHECK(fa && fb && na == nb && !memcmp(fa, fb, na), "the same seed gives other bytes");
    CHECK(fa && fc && (na != nc || memcmp(fa, fc, na)), "another seed gives the same bytes");
    free(fa);
    free(fb);
    free(fc);
    /* the metadata and tensors as llama.cpp names them; rows of 64 take Q4_K's fallback (Q5_0) */
    lm_gguf *g = NULL;
    CHECK(lm_gguf_open(a, &g, err, sizeof err) == LM_OK, "open: %s", err);
    if (g) {
        const char *arch = NULL;
        uint32_t heads = 0, kv = 0;
        lm_gguf_get_str(g, "general.architecture", &arch, NULL);
        lm_gguf_get_u32(g, "llama.attention.head_count", &heads);
        lm_gguf_get_u32(g, "llama.attention.head_count_kv", &kv);
        CHECK(arch && !strcmp(arch, "llama") && heads == 4 && kv == 2, "metadata: %s %u %u", arch, heads, kv);
        lm_gguf_tensor_info t;
        int64_t i = lm_gguf_find_tensor(g, "blk.1.ffn_down.weight");
        CHECK(i >= 0 && lm_gguf_tensor(g, i, &t) == LM_OK && t.type == LM_GGML_Q5_0 && t.ne[0] == 128 && t.ne[1] == 64,
              "blk.1.ffn_down.weight");
        lm_vocab *v = NULL;
        CHECK(lm_vocab_from_gguf(g, &v, err, sizeof err) == LM_OK && lm_vocab_n_tokens(v) == 512 && lm_vocab_bos(v) == 1,
              "vocab: %s", err);
        lm_vocab_free(v);
        lm_gguf_close(g);
    }
}

static void test_cli(void)
{
    const char *bin = getenv("VKLLM_BIN");
    CHECK(bin, "VKLLM_BIN is not set");
    if (!bin) return;
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "'%s' make-model llama-tiny Q8_0 -o '%s/m.gguf' 2>/dev/null && '%s' info -m '%s/m.gguf'", bin,
             dir, bin, dir);
    CHECK(tu_run(cmd, out, sizeof out) == 0 && strstr(out, "Q8_0 x"), "make-model + info:\n%s", out);
    snprintf(cmd, sizeof cmd, "'%s' bench -m synthetic:llama-tiny:Q4_0 -p 16 -n 4 -r 2 -o csv %s 2>&1", bin, tu_validation_flag());
    int st = tu_run(cmd, out, sizeof out);
    CHECK(st == 0 && strstr(out, "avg_ts") && strstr(out, ",pp16,") && strstr(out, ",tg4,") && !strstr(out, "validation"),
          "bench -m synthetic (status %d):\n%s", st, out);
    snprintf(cmd, sizeof cmd, "'%s' bench -m synthetic:nosuch:Q4_0 2>&1", bin);
    CHECK(tu_run(cmd, out, sizeof out) == 1 && strstr(out, "no synthetic shape"), "a bad shape:\n%s", out);
}

int main(void)
{
    CHECK(mkdtemp(dir), "mkdtemp");
    test_shapes();
    test_files();
    test_cli();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return tu_finish("test_synthetic");
}
