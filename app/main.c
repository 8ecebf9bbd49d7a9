/* main.c: `vkllm <command> [options]`, the entry point; dispatches to app/cmd_*.c. */
#include "app.h"

#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cmd_embed(int argc, char **argv); /* cmd_embed.c */

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
    { "embed", cmd_embed, "embeddings of texts, one per line: -m FILE (-p TEXT | -f FILE) [--similarity]" },
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
    if (argc < 2)
        return app_usage_fail(usage, "no command given");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return app_stdout_status("help", 0);
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vkllm 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    return app_usage_fail(usage, "unknown command '%s'", argv[1]);
}

static void vfail(const char *fmt, va_list ap)
{
    /* formatted whole, then written escaped: the message may quote a model file's text */
    char small[1024], *msg = small;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= (int)sizeof small && (msg = malloc((size_t)n + 1)))
        vsnprintf(msg, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    if (!msg)
        msg = small;
    fputs("vkllm: ", stderr);
    app_put_safe(stderr, msg, strlen(msg), false);
    fputc('\n', stderr);
    if (msg != small)
        free(msg);
}

int app_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
    return APP_EXIT_FAIL;
}

int app_usage_fail(void (*usage)(FILE *), const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
    if (usage) {
        fputc('\n', stderr);
        usage(stderr);
    }
    return APP_EXIT_USAGE;
}

/* ---------------------------------------------------------------- options */

/* The option app_opt matched, for the app_arg_* call that follows: its name as given, its attached
 * value (NULL: the next argument), whether it was seen before. One command line is parsed per process,
 * so the options seen are kept for the whole run. */
static struct {
    bool active, repeated;
    const char *value;
    char name[64];
} pending;
static const char *seen[128];
static int n_seen;
static int bad_status = APP_EXIT_FAIL; /* what the last failed app_arg_* call was */

static bool opt_match(const char *a, const char *s, const char *l, bool once)
{
    const char *value = NULL, *name = NULL;
    size_t ll = l ? strlen(l) : 0;
    if (s && !strcmp(a, s))
        name = s;
    else if (l && !strcmp(a, l))
        name = l;
    else if (l && !strncmp(a, l, ll) && a[ll] == '=')
        name = l, value = a + ll + 1;
    else if (s && s[0] == '-' && s[1] && s[1] != '-' && !s[2] && a[0] == '-' && a[1] == s[1] && a[2])
        name = s, value = a + 2;
    else
        return false;
    const char *key = l ? l : s;
    bool repeated = false;
    for (int k = 0; k < n_seen; k++)
        repeated |= !strcmp(seen[k], key);
    if (!repeated && n_seen < (int)(sizeof seen / sizeof seen[0]))
        seen[n_seen++] = key;
    pending.active = true;
    pending.repeated = once && repeated;
    pending.value = value;
    snprintf(pending.name, sizeof pending.name, "%s", name);
    return true;
}

bool app_opt(const char *arg, const char *short_name, const char *long_name)
{
    return opt_match(arg, short_name, long_name, true);
}

bool app_opt_multi(const char *arg, const char *short_name, const char *long_name)
{
    return opt_match(arg, short_name, long_name, false);
}

int app_bad_args(void (*usage)(FILE *))
{
    if (bad_status == APP_EXIT_USAGE && usage) {
        fputc('\n', stderr);
        usage(stderr);
    }
    return bad_status;
}

/* The value of the option at argv[*i] (or the one app_opt matched), its name into *name. */
static bool arg_value(int argc, char **argv, int *i, const char **out, const char **name)
{
    bool was = pending.active;
    pending.active = false;
    bad_status = APP_EXIT_FAIL;
    if (was) {
        *name = pending.name;
        if (pending.repeated) {
            app_fail("%s is given twice", pending.name);
            bad_status = APP_EXIT_USAGE;
            return false;
        }
        if (pending.value) {
            *out = pending.value;
            return true;
        }
    } else {
        *name = argv[*i];
    }
    if (*i + 1 >= argc) {
        app_fail("%s needs a value", *name);
        bad_status = APP_EXIT_USAGE;
        return false;
    }
    *out = argv[++*i];
    return true;
}

bool app_arg_str(int argc, char **argv, int *i, const char **out)
{
    const char *name;
    return arg_value(argc, argv, i, out, &name);
}

bool app_arg_int(int argc, char **argv, int *i, long *out, long lo, long hi)
{
    const char *s, *name;
    if (!arg_value(argc, argv, i, &s, &name))
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        app_fail("%s: '%s' is not an integer in [%ld, %ld]", name, s, lo, hi);
        bad_status = APP_EXIT_FAIL;
        return false;
    }
    *out = v;
    return true;
}

bool app_arg_float(int argc, char **argv, int *i, double *out, double lo, double hi)
{
    const char *s, *name;
    if (!arg_value(argc, argv, i, &s, &name))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        app_fail("%s: '%s' is not a number in [%g, %g]", name, s, lo, hi);
        bad_status = APP_EXIT_FAIL;
        return false;
    }
    *out = v;
    return true;
}

bool app_input_flag(int argc, char **argv, int *i, const char **model, const char **tokenizer, const char **prompt,
                    const char **file, bool *bad)
{
    const char *a = argv[*i], **out;
    if (app_opt(a, "-m", "--model"))
        out = model;
    else if (app_opt(a, "-z", "--tokenizer")) /* -z as llama2.c's run */
        out = tokenizer;
    else if (prompt && app_opt(a, "-p", "--prompt"))
        out = prompt;
    else if (app_opt(a, "-f", "--file"))
        out = file;
    else
        return false;
    if (!app_arg_str(argc, argv, i, out))
        *bad = true;
    return true;
}

bool app_device_flag(int argc, char **argv, int *i, app_device_opts *o, bool *bad)
{
    if (app_opt(argv[*i], NULL, "--device")) {
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
    /* a failed write is reported here, once: the error is cleared so app_stdout_status does not repeat it */
    bool wrote = puts(text) >= 0 && fflush(stdout) == 0 && !ferror(stdout);
    int e = errno;
    cJSON_free(text);
    if (wrote)
        return 0;
    clearerr(stdout);
    return app_fail("cannot write the output: %s", strerror(e));
}

int app_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
