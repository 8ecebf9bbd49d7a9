/* test_cli_tokenize: `vkllm tokenize --ids --no-bos` ($VKLLM_BIN) on the first vectors of a few vocabs,
 * against the expected ids of shared/models/tokenizer-vectors; its errors exit with status 1 (2: usage errors). */
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEP "\n__ggml_vocab_test__\n"
#define N_PER_VOCAB 12

static const char *bin;
static char tmp[64];

/* Runs `vkllm tokenize ARGS` with stdout captured (stderr dropped); returns the exit status. */
static int run(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' tokenize %s 2>/dev/null", bin, args);
    return tu_run(cmd, out, cap);
}

static bool write_tmp(const char *s, size_t len)
{
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return false;
    bool ok = fwrite(s, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static void vocab(const char *name)
{
    char gguf[128], path[160];
    snprintf(gguf, sizeof gguf, "tokenizer-vectors/ggml-vocab-%s.gguf", name);
    snprintf(path, sizeof path, "%s.inp", gguf);
    size_t len;
    char *inp = tu_read_file(tu_model_path(path), &len);
    snprintf(path, sizeof path, "%s.out", gguf);
    char *exp = tu_read_file(tu_model_path(path), &len);
    CHECK(inp && exp, "%s: vectors not found", name);
    char model[1024];
    snprintf(model, sizeof model, "%s", tu_model_path(gguf));
    int passed = 0, total = 0;
    char *s = inp, *e = exp;
    while (inp && exp && total < N_PER_VOCAB) {
        char *end = strstr(s, SEP), *eol = strchr(e, '\n');
        if (!end || !eol)
            break;
        total++;
        *eol = 0;
        const char *want = e[0] == ' ' ? e + 1 : e;
        char args[1400], out[65536];
        snprintf(args, sizeof args, "--ids --no-bos -m '%s' -f '%s'", model, tmp);
        int st = write_tmp(s, (size_t)(end - s)) ? run(args, out, sizeof out) : -1;
        size_t n = strlen(out);
        while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = 0;
        bool ok = st == 0 && !strcmp(out, want);
        CHECK(ok, "%s vector %d: exit %d, got '%s', want '%s'", name, total, st, out, want);
        passed += ok;
        s = end + strlen(SEP);
        e = eol + 1;
    }
    printf("%-15s %d/%d vectors through `vkllm tokenize`\n", name, passed, total);
    free(inp);
    free(exp);
}

int main(void)
{
    bin = getenv("VKLLM_BIN");
    if (!bin || access(bin, X_OK)) {
        fprintf(stderr, "test_cli_tokenize: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    snprintf(tmp, sizeof tmp, "/tmp/vkllm_cli_tok_%d.txt", (int)getpid());
    const char *names[] = { "llama-spm", "bert-bge", "gpt-2", "llama-bpe", "qwen2" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        vocab(names[i]);

    /* the stories260K prompt, BOS added by default, through the GGUF and the llama2.c tokenizer */
    char args[1400], out[4096];
    snprintf(args, sizeof args, "--ids -m '%s' -p 'Once upon a time'", tu_model_path("gguf/stories260K.gguf"));
    CHECK(run(args, out, sizeof out) == 0 && !strcmp(out, "1 403 407 261 378\n"), "stories260K.gguf: '%s'", out);
    snprintf(args, sizeof args, "--ids --tokenizer '%s' -p 'Once upon a time'", tu_model_path("llama2c/tok512.bin"));
    CHECK(run(args, out, sizeof out) == 0 && !strcmp(out, "1 403 407 261 378\n"), "tok512.bin: '%s'", out);
    /* the readable form: id, tab, quoted piece */
    snprintf(args, sizeof args, "-m '%s' -p 'Once'", tu_model_path("gguf/stories260K.gguf"));
    CHECK(run(args, out, sizeof out) == 0 && !strcmp(out, "1\t\"<s>\"\n403\t\" Once\"\n"), "readable: '%s'", out);

    /* errors: exit status 1 */
    CHECK(write_tmp("ab\xff", 3), "temp file");
    snprintf(args, sizeof args, "--ids -m '%s' -f '%s'", tu_model_path("gguf/stories260K.gguf"), tmp);
    CHECK(run(args, out, sizeof out) == 1, "invalid UTF-8 must fail");
    CHECK(run("--ids -m /nonexistent.gguf -p x", out, sizeof out) == 1, "a missing model must fail");
    snprintf(args, sizeof args, "--ids -m '%s'", tu_model_path("gguf/stories260K.gguf"));
    CHECK(run(args, out, sizeof out) == 2, "no text must fail with status 2 (a usage error)");
    snprintf(args, sizeof args, "-m '%s' -p x", tu_model_path("llama2c/tok512.bin"));
    CHECK(run(args, out, sizeof out) == 1, "a llama2.c file as -m must fail");
    remove(tmp);
    return tu_finish("test_cli_tokenize");
}
