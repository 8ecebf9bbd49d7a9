/* main.c: `vkllm <command> [options]`, the entry point; dispatches to app/cmd_*.c. */
#include "app.h"

#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    app_cmd_fn fn;
    const char *help;
} commands[] = {
    { "devices", cmd_devices, "list Vulkan devices, their memory and features (--json)" },
    { "run", cmd_run, "generate text from a model: -m FILE -p PROMPT [-n N] [--temp T] ..." },
    { "chat", cmd_chat, "chat with a model: -m FILE [--system TEXT] [--window] (a terminal chat, or the window)" },
    { "serve", cmd_serve, "an OpenAI-compatible HTTP server: -m FILE [--host ADDR] [--port N] [--parallel N]" },
    { "template", cmd_template, "print a conversation as a chat template renders it: -m FILE -f CONV.json" },
    { "tokenize", cmd_tokenize, "print the tokens of a text: -m FILE -p TEXT [--ids]" },
    { "info", cmd_info, "describe a model file: -m FILE [--json]" },
    { "perplexity", cmd_perplexity, "perplexity of a text file: -m FILE -f TEXT [-c N]" },
    { "quantize", cmd_quantize, "a model into another weight format: IN.gguf OUT.gguf TYPE (Q4_K_M, Q8_0, ...)" },
    { "make-model", cmd_make_model, "a model of a published shape with random weights: SHAPE TYPE -o FILE.gguf" },
    { "bench", cmd_bench, "benchmarks: `bench kernels` times every kernel (--json)" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vkllm <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`vkllm <command> --help` shows a command's options.\n"
               "Device choice: --device N, or the environment variable VKLLM_DEVICE=N (see `vkllm devices`).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vkllm 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vkllm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

int app_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vkllm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

bool app_arg_str(int argc, char **argv, int *i, const char **out)
{
    if (*i + 1 >= argc) {
        app_fail("%s needs a value", argv[*i]);
        return false;
    }
    *out = argv[++*i];
    return true;
}

bool app_arg_int(int argc, char **argv, int *i, long *out, long lo, long hi)
{
    const char *s;
    if (!app_arg_str(argc, argv, i, &s))
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        app_fail("%s: '%s' is not an integer in [%ld, %ld]", argv[*i - 1], s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool app_arg_float(int argc, char **argv, int *i, double *out, double lo, double hi)
{
    const char *s;
    if (!app_arg_str(argc, argv, i, &s))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        app_fail("%s: '%s' is not a number in [%g, %g]", argv[*i - 1], s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool app_input_flag(int argc, char **argv, int *i, const char **model, const char **tokenizer, const char **prompt,
                    const char **file, bool *bad)
{
    const char *a = argv[*i], **out;
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        out = model;
    else if (!strcmp(a, "--tokenizer") || !strcmp(a, "-z")) /* -z as llama2.c's run */
        out = tokenizer;
    else if (prompt && (!strcmp(a, "-p") || !strcmp(a, "--prompt")))
        out = prompt;
    else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
        out = file;
    else
        return false;
    if (!app_arg_str(argc, argv, i, out))
        *bad = true;
    return true;
}

bool app_device_flag(int argc, char **argv, int *i, app_device_opts *o, bool *bad)
{
    if (!strcmp(argv[*i], "--device")) {
        long v;
        if (!app_arg_int(argc, argv, i, &v, 0, 1000))
            *bad = true;
        else
            o->device = (int)v;
        return true;
    }
    if (!strcmp(argv[*i], "--validation")) {
        o->validation = true;
        return true;
    }
    return false;
}

bool app_json_add(cJSON *parent, const char *key, cJSON *item)
{
    bool ok = parent && item && (key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item));
    if (!ok)
        cJSON_Delete(item);
    return ok;
}

cJSON *app_json_num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* Integers beyond 2^53 are written as their digits: a double would round them. */
cJSON *app_json_int(long long v)
{
    if (v >= -(1LL << 53) && v <= (1LL << 53))
        return cJSON_CreateNumber((double)v);
    char digits[24];
    snprintf(digits, sizeof digits, "%lld", v);
    return cJSON_CreateRaw(digits);
}

cJSON *app_json_uint(unsigned long long v)
{
    if (v <= (1ULL << 53))
        return cJSON_CreateNumber((double)v);
    char digits[24];
    snprintf(digits, sizeof digits, "%llu", v);
    return cJSON_CreateRaw(digits);
}

int app_json_print(cJSON *root, bool ok)
{
    char *text = ok && root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return app_fail("out of memory writing JSON");
    puts(text);
    cJSON_free(text);
    return 0;
}

char *app_slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *p = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool rd_err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (rd_err) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

char *app_read_file(const char *path, size_t *len)
{
    char err[1100];
    char *buf = app_slurp(path, len, err, sizeof err);
    if (!buf)
        app_fail("%s", err);
    return buf;
}

int app_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
