/* fuzz_tokenizer.c: every tokenizer on any text. Byte 0 picks the vocabulary (SPM, BPE with each of
 * its pre-tokenizers, WordPiece; loaded on first use) and, in bits 5 and 6, add_special and
 * parse_special; the rest is the text. The ids are detokenized back, in one go and streamed, and
 * with a stream of raw ids taken from the input (out-of-range ones included). */
#include "lm.h"

#include "fuzz_util.h"

static const char *const VOCABS[] = {
    "llama-spm", "llama-bpe", "gpt-2", "qwen2", "deepseek-llm", "deepseek-coder", "bert-bge", "phi-3",
    "falcon", "gpt-neox", "mpt", "refact", "starcoder", "baichuan",
};
#define N_VOCABS ((int)(sizeof VOCABS / sizeof VOCABS[0]))
static lm_vocab *vocabs[N_VOCABS];
static volatile uint8_t sink;

static const lm_vocab *vocab(int i)
{
    if (vocabs[i])
        return vocabs[i];
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tokenizer-vectors/ggml-vocab-%s.gguf", fuzz_models(), VOCABS[i]);
    lm_gguf *g = NULL;
    if (lm_gguf_open(path, &g, err, sizeof err) != LM_OK || lm_vocab_from_gguf(g, &vocabs[i], err, sizeof err)) {
        fprintf(stderr, "fuzz_tokenizer: %s (set VKLLM_MODELS)\n", err);
        exit(1);
    }
    lm_gguf_close(g);
    return vocabs[i];
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vocab(0); /* a missing model directory fails at once */
    return 0;
}

static void detok_stream(const lm_vocab *v, const int32_t *ids, int64_t n, bool special)
{
    lm_detok *d = NULL;
    if (lm_detok_create(v, special, &d) != LM_OK)
        abort();
    const char *out;
    size_t len;
    for (int64_t i = 0; i < n; i++) {
        int rc = lm_detok_push(d, ids[i], &out, &len);
        if (rc == LM_OK && len)
            sink ^= (uint8_t)out[len - 1];
        else if (rc != LM_OK && rc != LM_ERR_INVALID)
            abort();
    }
    if (lm_detok_flush(d, &out, &len) == LM_OK && len)
        sink ^= (uint8_t)out[len - 1];
    lm_detok_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const lm_vocab *v = vocab((data[0] & 31) % N_VOCABS);
    bool add_special = data[0] & 32, parse_special = data[0] & 64;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char err[512];
    int32_t *ids = NULL;
    int64_t n = 0;
    unsigned warn = 0;
    int rc = lm_tokenize_w(v, text, len, add_special, parse_special, &ids, &n, &warn, err, sizeof err);
    if (rc == LM_OK) {
        int32_t nt = lm_vocab_n_tokens(v);
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= nt)
                abort();
        char *back = NULL;
        size_t blen = 0;
        if (lm_detokenize(v, ids, n, parse_special, &back, &blen, err, sizeof err) != LM_OK)
            abort(); /* ids the tokenizer made always detokenize */
        if (back[blen] != '\0')
            abort();
        free(back);
        detok_stream(v, ids, n, !parse_special);
    } else if (rc != LM_ERR_INVALID) {
        abort();
    }
    free(ids);
    /* the input's bytes as raw ids: the detokeniser on sequences no tokenizer makes */
    int64_t nr = (int64_t)(len / 4);
    if (nr > 0) {
        int32_t *raw = malloc((size_t)nr * sizeof *raw);
        if (!raw)
            abort();
        int32_t nt = lm_vocab_n_tokens(v);
        for (int64_t i = 0; i < nr; i++) {
            uint32_t u;
            memcpy(&u, text + 4 * i, 4);
            /* mostly ids in range, now and then one out of it */
            raw[i] = (u >> 31) ? (int32_t)u : (int32_t)(u % (uint32_t)nt);
        }
        detok_stream(v, raw, nr, add_special);
        free(raw);
    }
    return 0;
}
