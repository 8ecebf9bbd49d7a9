/* fuzz_llama2c.c: the llama2.c readers on any bytes. The input is a tokenizer file
 * (lm_vocab_from_llama2c; one that loads tokenizes and detokenizes a text) and, at once, a checkpoint
 * header: lm_model_load_llama2c checks the header and the size it implies before it needs a device or
 * the tokenizer, so it runs with no device and a tokenizer path that does not exist, and must fail
 * there or before (the upload of weights is not reached). */
#include "lm.h"

#include "fuzz_util.h"

static fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_init(&file, "fuzz.bin");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file_set(&file, data, size);
    char err[512];
    lm_vocab *v = NULL;
    if (lm_vocab_from_llama2c(file.path, &v, err, sizeof err) == LM_OK) {
        static const char text[] = "Once upon a time, \xe4\xbd\xa0 <s> 42\n";
        int32_t *ids = NULL;
        int64_t n = 0;
        if (lm_tokenize(v, text, sizeof text - 1, true, true, &ids, &n, err, sizeof err) == LM_OK) {
            char *out = NULL;
            size_t len = 0;
            if (lm_detokenize(v, ids, n, true, &out, &len, err, sizeof err) != LM_OK)
                abort();
            free(out);
        }
        free(ids);
        lm_vocab_free(v);
    } else if (v) {
        abort();
    }
    lm_model *m = NULL;
    int rc = lm_model_load_llama2c(NULL, file.path, "/nonexistent/vkllm-fuzz-tokenizer.bin", NULL, &m, err, sizeof err);
    if (rc == LM_OK || m)
        abort();
    return 0;
}
