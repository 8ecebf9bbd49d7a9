/* cmd_tokenize.c: `vkllm tokenize -m FILE (-p TEXT | -f FILE)`: the tokens of a text, from the
 * vocabulary of a GGUF file or a llama2.c tokenizer. Needs no device. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app_model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm tokenize -m FILE (-p TEXT | -f FILE) [options]\n"
            "  -m, --model FILE       GGUF file whose vocabulary to use\n"
            "      --tokenizer FILE   a llama2.c tokenizer.bin instead (then -m is not needed)\n"
            "  -p, --prompt TEXT      the text\n"
            "  -f, --file FILE        read the text from a file ('-': standard input)\n"
            "      --ids              print only the ids, space-separated on one line\n"
            "      --no-bos           do not add BOS (and EOS/SEP) even when the vocabulary asks for it\n"
            "      --parse-special    special-token texts (e.g. <|im_start|>) become their ids\n"
            "Without --ids: one line per token, the id, a tab, and the token's bytes as a quoted string\n"
            "(\\n, \\t, \\\", \\\\ and \\xNN for control bytes and bytes of incomplete characters).\n");
}

/* A piece as a quoted, escaped string: whatever its bytes, the line stays readable. */
static void print_piece(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    putchar('"');
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        int k = app_utf8_char(s + i, len - i);
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7f || k == 0 || (k == 2 && c == 0xC2 && p[i + 1] < 0xA0)) /* C1: escaped too */
            printf("\\x%02x", c);
        else {
            fwrite(p + i, 1, (size_t)k, stdout);
            i += (size_t)k;
            continue;
        }
        i++;
    }
    putchar('"');
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *prompt = NULL, *file = NULL;
    bool ids_only = false, no_bos = false, parse_special = false, bad = false;
    int i = 1;
    for (; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (app_input_flag(argc, argv, &i, &model, &tokenizer, &prompt, &file, &bad))
            continue;
        else if (!strcmp(a, "--ids"))
            ids_only = true;
        else if (!strcmp(a, "--no-bos"))
            no_bos = true;
        else if (!strcmp(a, "--parse-special"))
            parse_special = true;
        else
            return app_usage_fail(usage, a[0] == '-' && a[1] ? "tokenize: unknown option '%s'"
                                                              : "tokenize: unexpected argument '%s'", a);
    }
    if (bad)
        return app_bad_args(usage);
    if (i < argc)
        return app_usage_fail(usage, "tokenize: unexpected argument '%s'", argv[i]);
    if (!model && !tokenizer)
        return app_usage_fail(usage,
                              "tokenize: give a model with -m FILE (or a llama2.c tokenizer with --tokenizer FILE)");
    if (model && tokenizer)
        return app_usage_fail(usage, "tokenize: give the vocabulary with one of -m FILE or --tokenizer FILE, not both");
    if (!prompt == !file)
        return app_usage_fail(usage, "tokenize: give the text with exactly one of -p TEXT or -f FILE");

    char err[512] = "";
    lm_vocab *v = NULL;
    if (tokenizer) {
        if (app_file_expect(tokenizer, APP_FILE_LLAMA2C_TOKENIZER, "--tokenizer"))
            return 1;
        if (lm_vocab_from_llama2c(tokenizer, &v, err, sizeof err))
            return app_fail("%s", err);
    } else {
        if (app_file_expect(model, APP_FILE_GGUF, "-m"))
            return 1;
        lm_gguf *g;
        if (lm_gguf_open(model, &g, err, sizeof err))
            return app_fail("%s", err);
        int rc = lm_vocab_from_gguf(g, &v, err, sizeof err);
        lm_gguf_close(g);
        if (rc)
            return app_fail("%s: %s", model, err);
    }

    size_t len = prompt ? strlen(prompt) : 0;
    char *text = file ? app_read_text(file, &len) : NULL;
    if (file && !text) {
        lm_vocab_free(v);
        return 1;
    }
    int32_t *ids;
    int64_t n;
    int rc = lm_tokenize(v, file ? text : prompt, len, !no_bos, parse_special, &ids, &n, err, sizeof err);
    free(text);
    if (rc) {
        lm_vocab_free(v);
        return app_fail("%s", err);
    }
    for (int64_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? " %d" : "%d", ids[i]);
            continue;
        }
        size_t plen;
        const char *piece = lm_token_piece(v, ids[i], &plen);
        printf("%d\t", ids[i]);
        print_piece(piece, plen);
        putchar('\n');
    }
    if (ids_only)
        putchar('\n');
    free(ids);
    lm_vocab_free(v);
    return app_stdout_status("tokenize", 0);
}
