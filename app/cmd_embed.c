/* cmd_embed.c: `vkllm embed -m FILE (-p TEXT | -f FILE)`: one embedding per line of text, as llama.cpp's
 * llama-embedding gives them: pooled as the model says (lm_model_pooling), L2-normalised unless
 * --no-normalize; as OpenAI's JSON (default), a table, or a JSON array; --similarity adds the cosine
 * similarity matrix of all inputs. Output is written batch by batch, so that a long file does not
 * need all its vectors in memory (only --similarity keeps them). */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app_model.h"

#define MAX_BATCH 2048   /* inputs per library call at most */
#define MAX_SIMILARITY 4096 /* inputs --similarity compares at most (the matrix is printed whole) */

enum fmt { FMT_JSON, FMT_TABLE, FMT_ARRAY };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm embed -m FILE (-p TEXT | -f FILE) [options]\n"
            "  -m, --model FILE       GGUF model (or a llama2.c checkpoint with --tokenizer)\n"
            "  -z, --tokenizer FILE   llama2.c tokenizer.bin for a llama2.c checkpoint\n"
            "  -p, --prompt TEXT      the texts, one per line\n"
            "  -f, --file FILE        read the texts from a file, one per line ('-': standard input)\n"
            "      --format F         json (OpenAI's embeddings response, the default), table (a line per\n"
            "                         input: its index and values; with several inputs the first and last 3)\n"
            "                         or array (one line: a JSON array of the vectors)\n"
            "      --no-normalize     the pooled vectors as they are (default: L2-normalised)\n"
            "      --similarity       also the cosine similarity matrix of the inputs (at least 2): json\n"
            "                         as \"cosineSimilarity\", table as rows, array as a second line\n"
            "      --batch N          inputs embedded per call (default 32, at most %d)\n"
            "      --device N         Vulkan device (see `vkllm devices`; or VKLLM_DEVICE=N)\n"
            "      --validation       enable the Khronos validation layer\n"
            "Empty lines are skipped (a carriage return before a newline is dropped). The pooling is the\n"
            "model file's (pooling_type), else the mean for encoders and the last token for decoders.\n",
            MAX_BATCH);
}

/* One input: its text (NUL-terminated in the buffer read) and its line, for messages. */
typedef struct input {
    const char *text;
    long line;
} input;

/* Splits buf into its non-empty lines (in place), checking each is UTF-8; what names the source in
 * messages. Returns the count, or -1 after printing why. */
static long split_lines(char *buf, size_t len, const char *what, input **out)
{
    long n = 0, cap = 0, line = 0;
    input *in = NULL;
    for (size_t at = 0; at < len;) {
        char *s = buf + at, *nl = memchr(s, '\n', len - at);
        size_t l = nl ? (size_t)(nl - s) : len - at;
        at += l + (nl ? 1 : 0);
        line++;
        if (nl)
            *nl = 0;
        if (l && s[l - 1] == '\r')
            s[--l] = 0;
        for (size_t i = 0; i < l;) {
            int k = app_utf8_char(s + i, l - i);
            if (!k) {
                free(in);
                app_fail("%s line %ld: not valid UTF-8 (byte %zu of the line)", what, line, i + 1);
                return -1;
            }
            i += (size_t)k;
        }
        if (!l)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            input *p = realloc(in, sizeof *p * (size_t)cap);
            if (!p) {
                free(in);
                app_fail("out of memory");
                return -1;
            }
            in = p;
        }
        in[n].text = s;
        in[n].line = line;
        n++;
    }
    *out = in;
    return n;
}

static bool all_finite(const float *v, size_t n)
{
    float acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += v[i] * 0.0f; /* NaN when any is NaN or infinite */
    return acc == 0;
}

/* one vector's values, ", " between them */
static void put_values(const float *v, int32_t dim)
{
    for (int32_t i = 0; i < dim; i++)
        printf(i ? ", %.9g" : "%.9g", (double)v[i]);
}

static void put_table_row(const float *v, int32_t dim, long index, bool all)
{
    printf("embedding %ld:", index);
    for (int32_t i = 0; i < dim; i++) {
        if (!all && dim > 6 && i == 3) {
            fputs(" ...", stdout);
            i = dim - 4;
            continue;
        }
        printf(" %9.6f", (double)v[i]);
    }
    putchar('\n');
}

/* cos(a, b) in double */
static double cosine(const float *a, const float *b, int32_t dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (int32_t i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static void put_similarity(enum fmt fmt, const float *vecs, long n, int32_t dim)
{
    if (fmt == FMT_TABLE)
        fputs("\ncosine similarity matrix:\n", stdout);
    else
        fputs(fmt == FMT_JSON ? ",\n  \"cosineSimilarity\": [\n" : "[", stdout);
    for (long i = 0; i < n; i++) {
        if (fmt == FMT_JSON)
            fputs("    [", stdout);
        else if (fmt == FMT_ARRAY)
            fputs(i ? ",[" : "[", stdout);
        for (long j = 0; j < n; j++) {
            double c = cosine(vecs + (size_t)i * (size_t)dim, vecs + (size_t)j * (size_t)dim, dim);
            if (fmt == FMT_TABLE)
                printf(j ? " %9.6f" : "%9.6f", c);
            else
                printf(j ? ", %.9g" : "%.9g", c);
        }
        if (fmt == FMT_JSON)
            fputs(i + 1 < n ? "],\n" : "]\n  ]", stdout);
        else if (fmt == FMT_ARRAY)
            putchar(']');
        else
            putchar('\n');
    }
    if (fmt == FMT_ARRAY)
        fputs("]\n", stdout);
}

/* Embeds in[0..n) (texts[] their texts): on failure, when n > 1, each alone until the one that fails,
 * so that the message names its line. */
static int embed_batch(app_model *am, const input *in, const char **texts, int n, bool normalize, float *out,
                       int64_t *n_tok, const char *what)
{
    char err[1024];
    int64_t t = 0;
    if (!lm_embed_texts(am->model, texts, n, normalize, out, &t, err, sizeof err)) {
        *n_tok += t;
        return 0;
    }
    if (n > 1) {
        int32_t dim = lm_model_hparams(am->model)->dim;
        for (int i = 0; i < n; i++)
            if (lm_embed_texts(am->model, texts + i, 1, normalize, out + (size_t)i * (size_t)dim, &t, err, sizeof err))
                return app_fail("%s: %s line %ld: %s", am->path, what, in[i].line, err);
    }
    return app_fail("%s: %s line %ld: %s", am->path, what, in[0].line, err);
}

int cmd_embed(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *prompt = NULL, *file = NULL, *format = NULL;
    long batch = 32;
    bool normalize = true, similarity = false, bad = false;
    app_device_opts dev = { .device = -1 };
    int i = 1;
    for (; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return app_stdout_status("embed", 0);
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (app_input_flag(argc, argv, &i, &model, &tokenizer, &prompt, &file, &bad))
            continue;
        else if (app_opt(a, NULL, "--format"))
            bad = !app_arg_str(argc, argv, &i, &format);
        else if (app_opt(a, NULL, "--batch"))
            bad = !app_arg_int(argc, argv, &i, &batch, 1, MAX_BATCH);
        else if (!strcmp(a, "--no-normalize"))
            normalize = false;
        else if (!strcmp(a, "--similarity"))
            similarity = true;
        else if (!app_device_flag(argc, argv, &i, &dev, &bad))
            return app_usage_fail(usage, a[0] == '-' && a[1] ? "embed: unknown option '%s'"
                                                              : "embed: unexpected argument '%s'", a);
    }
    if (bad)
        return app_bad_args(usage);
    if (i < argc)
        return app_usage_fail(usage, "embed: unexpected argument '%s'", argv[i]);
    if (!model)
        return app_usage_fail(usage, "embed: -m FILE is required");
    if (!prompt == !file)
        return app_usage_fail(usage, "embed: give the texts with exactly one of -p TEXT or -f FILE");
    enum fmt fmt = FMT_JSON;
    if (format && !strcmp(format, "table"))
        fmt = FMT_TABLE;
    else if (format && !strcmp(format, "array"))
        fmt = FMT_ARRAY;
    else if (format && strcmp(format, "json"))
        return app_usage_fail(usage, "embed: --format '%s': it is json, table or array", format);

    /* the texts, before the device: a bad file fails fast */
    char *buf = file ? app_read_text(file, NULL) : strdup(prompt);
    if (!buf)
        return file ? 1 : app_fail("out of memory");
    const char *what = file ? (strcmp(file, "-") ? file : "standard input") : "-p";
    input *in = NULL;
    long n = split_lines(buf, strlen(buf), what, &in);
    if (n < 0) {
        free(buf);
        return 1;
    }
    if (n == 0) {
        free(buf);
        return app_fail("embed: %s has no text to embed (every line is empty)", what);
    }
    if (similarity && n < 2) {
        free(buf);
        free(in);
        return app_usage_fail(usage, "embed: --similarity compares the inputs: give at least 2 (one per line), not 1");
    }
    if (similarity && n > MAX_SIMILARITY) {
        free(buf);
        free(in);
        return app_fail("embed: --similarity compares at most %d inputs, and %s has %ld", MAX_SIMILARITY, what, n);
    }

    int status = 1;
    app_model am = { 0 };
    float *vecs = NULL;
    const char **texts = NULL;
    char *model_json = NULL;
    if (app_model_open(&am, model, tokenizer, &dev))
        goto out;
    int32_t dim = lm_model_hparams(am.model)->dim;
    if (batch > n)
        batch = n;
    /* --similarity keeps every vector; else one batch at a time */
    size_t rows = similarity ? (size_t)n : (size_t)batch;
    vecs = malloc(sizeof *vecs * rows * (size_t)dim);
    texts = malloc(sizeof *texts * (size_t)batch);
    const char *base = strrchr(model, '/');
    cJSON *name = app_json_str(base ? base + 1 : model, strlen(base ? base + 1 : model));
    model_json = name ? cJSON_PrintUnformatted(name) : NULL;
    cJSON_Delete(name);
    if (!vecs || !texts || !model_json) {
        app_fail("out of memory");
        goto out;
    }
    int64_t n_tok = 0;
    for (long at = 0; at < n; at += batch) {
        int k = (int)(n - at < batch ? n - at : batch);
        float *out = similarity ? vecs + (size_t)at * (size_t)dim : vecs;
        for (int j = 0; j < k; j++)
            texts[j] = in[at + j].text;
        if (embed_batch(&am, in + at, texts, k, normalize, out, &n_tok, what))
            goto out;
        /* the head after the first batch: a text that fails in it leaves no partial output */
        if (at == 0 && fmt == FMT_JSON)
            fputs("{\n  \"object\": \"list\",\n  \"data\": [\n", stdout);
        else if (at == 0 && fmt == FMT_ARRAY)
            putchar('[');
        for (int j = 0; j < k; j++) {
            const float *v = out + (size_t)j * (size_t)dim;
            long index = at + j;
            if (!all_finite(v, (size_t)dim)) {
                app_fail("%s: %s line %ld: the embedding is not finite (NaN or infinite): the model file is damaged "
                         "or its weights overflow", model, what, in[index].line);
                goto out;
            }
            if (fmt == FMT_JSON) {
                printf("    {\"object\": \"embedding\", \"index\": %ld, \"embedding\": [", index);
                put_values(v, dim);
                fputs(index + 1 < n ? "]},\n" : "]}\n", stdout);
            } else if (fmt == FMT_ARRAY) {
                fputs(index ? ",[" : "[", stdout);
                put_values(v, dim);
                putchar(']');
            } else {
                put_table_row(v, dim, index, n == 1);
            }
        }
        if (ferror(stdout))
            break; /* reported below */
    }
    if (fmt == FMT_JSON)
        printf("  ],\n  \"model\": %s,\n  \"usage\": {\"prompt_tokens\": %lld, \"total_tokens\": %lld}", model_json,
               (long long)n_tok, (long long)n_tok);
    else if (fmt == FMT_ARRAY)
        fputs("]\n", stdout);
    if (similarity && !ferror(stdout))
        put_similarity(fmt, vecs, n, dim);
    if (fmt == FMT_JSON)
        fputs("\n}\n", stdout);
    status = 0;
out:
    cJSON_free(model_json);
    free(texts);
    free(vecs);
    free(in);
    free(buf);
    app_model_close(&am);
    return app_stdout_status("embed", status);
}
