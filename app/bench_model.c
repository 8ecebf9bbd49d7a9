/* bench_model.c: `vkllm bench -m FILE`, as llama.cpp's llama-bench: prompt processing (pp: -p tokens
 * evaluated in batches of -b from an empty context, or after -d tokens already in it) and text
 * generation (tg: -n tokens decoded one at a time), in tokens per second, mean and standard deviation
 * over -r repetitions after one warm-up run of each test (the warm-up also compiles every pipeline the
 * test uses). Token ids are seeded random. Output: a Markdown table, CSV or JSON. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app_model.h"
#include "bench_kernels.h"
#include "bench_model.h"

#define MAX_VALUES 16
#define MAX_MODELS 8
#define MAX_REPS 1000

typedef struct { long v[MAX_VALUES]; int n; } values;

typedef struct {
    const char *models[MAX_MODELS];
    int n_models;
    values p, n, b, d;
    int reps;
    const char *output;   /* md, csv, json */
    bool kv_f32, profile;
    app_device_opts dev;
} bench_model_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm bench -m FILE [-m FILE ...] [options]\n"
            "  -m, --model FILE      a GGUF model, or synthetic:SHAPE:TYPE (e.g. synthetic:llama-1b:Q4_0; shapes and\n"
            "                        types: `vkllm make-model --help`)\n"
            "  -p, --n-prompt N,...  prompt processing tests of N tokens (default 512; 0: none)\n"
            "  -n, --n-gen N,...     text generation tests of N tokens (default 128; 0: none)\n"
            "  -b, --batch-size N,...  prompt tokens per prefill pass (default 512)\n"
            "  -d, --n-depth N,...   tokens already in the context before each test (default 0)\n"
            "  -r, --repetitions N   timed runs per test, after one warm-up run (default 5)\n"
            "  -o, --output FORMAT   md (default), csv or json\n"
            "      --kv-f32          an f32 KV cache (default f16)\n"
            "      --profile         also time each kernel of one decode step (GPU timestamps), after the table\n"
            "      --device N, --validation\n"
            "Values may be repeated or comma-separated: -p 128,512 -b 256,512 runs every combination.\n");
}

static bool parse_values(const char *flag, const char *s, values *out, long lo, long hi)
{
    out->n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < lo || v > hi) {
            app_fail("bench: %s '%s': expected comma-separated integers in [%ld, %ld]", flag, s, lo, hi);
            return false;
        }
        if (out->n == MAX_VALUES) {
            app_fail("bench: %s: at most %d values", flag, MAX_VALUES);
            return false;
        }
        out->v[out->n++] = v;
        p = *end ? end + 1 : end;
    }
    if (!out->n) {
        app_fail("bench: %s: no value", flag);
        return false;
    }
    return true;
}

/* One result row. */
typedef struct {
    char test[64];
    long n_prompt, n_gen, n_batch, n_depth;
    double samples[MAX_REPS];
    int n_samples;
    double mean, sd;
} result;

static double now(void) { return app_now(); }

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void random_ids(int32_t *ids, long n, int32_t n_vocab, uint64_t *s)
{
    for (long i = 0; i < n; i++) ids[i] = (int32_t)(rng(s) % (uint64_t)n_vocab);
}

/* Fills the context with depth tokens (untimed). */
static int fill_depth(lm_session *s, int32_t *ids, long depth, int32_t n_vocab, uint64_t *seed, char *err, size_t errlen)
{
    lm_session_rewind(s, 0);
    if (!depth) return 0;
    random_ids(ids, depth, n_vocab, seed);
    return lm_session_eval(s, ids, depth, NULL, false, err, errlen);
}

/* One run of a test: seconds, or < 0 after printing the error. */
static double run_once(lm_session *s, const result *r, int32_t *ids, int32_t n_vocab, uint64_t *seed)
{
    char err[1024];
    if (fill_depth(s, ids, r->n_depth, n_vocab, seed, err, sizeof err)) {
        app_fail("%s", err);
        return -1;
    }
    double t0 = now();
    if (r->n_prompt) {
        random_ids(ids, r->n_prompt, n_vocab, seed);
        t0 = now();
        if (lm_session_eval(s, ids, r->n_prompt, NULL, false, err, sizeof err)) {
            app_fail("%s", err);
            return -1;
        }
    } else {
        int32_t tok = (int32_t)(rng(seed) % (uint64_t)n_vocab), next;
        t0 = now();
        for (long i = 0; i < r->n_gen; i++) {
            if (lm_session_step(s, tok, NULL, &next, err, sizeof err)) {
                app_fail("%s", err);
                return -1;
            }
            tok = next;
        }
    }
    return now() - t0;
}

static void stats(result *r)
{
    double sum = 0, sq = 0;
    for (int i = 0; i < r->n_samples; i++) sum += r->samples[i];
    r->mean = sum / r->n_samples;
    for (int i = 0; i < r->n_samples; i++) sq += (r->samples[i] - r->mean) * (r->samples[i] - r->mean);
    r->sd = r->n_samples > 1 ? sqrt(sq / (r->n_samples - 1)) : 0;
}

typedef struct {
    char name[160], type[16], device[256];
    uint64_t bytes;
    int64_t params;
} model_desc;

static void describe(const app_model *am, model_desc *d)
{
    const lm_hparams *hp = lm_model_hparams(am->model);
    snprintf(d->name, sizeof d->name, "%s", hp->name);
    snprintf(d->type, sizeof d->type, "%s", lm_gguf_type_name(hp->weight_type) ? lm_gguf_type_name(hp->weight_type) : "?");
    snprintf(d->device, sizeof d->device, "%s", rt_ctx_device(am->ctx)->name);
    d->bytes = lm_model_device_bytes(am->model);
    d->params = hp->n_params;
}

static void print_md_header(void)
{
    printf("| model | size | params | type | device | test | t/s |\n");
    printf("| --- | ---: | ---: | --- | --- | --- | ---: |\n");
}

static void print_md_row(const model_desc *m, const result *r)
{
    printf("| %s | %.2f MiB | %.2f %s | %s | %s | %s | %.2f ± %.2f |\n", m->name, m->bytes / 1048576.0,
           m->params >= 1000000000 ? m->params / 1e9 : m->params / 1e6, m->params >= 1000000000 ? "B" : "M", m->type,
           m->device, r->test, r->mean, r->sd);
    fflush(stdout);
}

static void print_csv_row(const model_desc *m, const result *r, bool header)
{
    if (header) printf("model,size_bytes,n_params,type,device,test,n_prompt,n_gen,n_batch,n_depth,avg_ts,stddev_ts,samples_ts\n");
    printf("\"%s\",%llu,%lld,%s,\"%s\",%s,%ld,%ld,%ld,%ld,%.4f,%.4f,\"", m->name, (unsigned long long)m->bytes,
           (long long)m->params, m->type, m->device, r->test, r->n_prompt, r->n_gen, r->n_batch, r->n_depth, r->mean,
           r->sd);
    for (int i = 0; i < r->n_samples; i++) printf("%s%.4f", i ? ";" : "", r->samples[i]);
    printf("\"\n");
    fflush(stdout);
}

static bool json_row(cJSON *arr, const model_desc *m, const result *r)
{
    cJSON *o = cJSON_CreateObject(), *s = cJSON_CreateArray();
    bool ok = o && s;
    for (int i = 0; ok && i < r->n_samples; i++) ok = app_json_add(s, NULL, app_json_num(r->samples[i]));
    ok = ok && cJSON_AddStringToObject(o, "model", m->name) && app_json_add(o, "size_bytes", app_json_uint(m->bytes)) &&
         app_json_add(o, "n_params", app_json_int(m->params)) && cJSON_AddStringToObject(o, "type", m->type) &&
         cJSON_AddStringToObject(o, "device", m->device) && cJSON_AddStringToObject(o, "test", r->test) &&
         app_json_add(o, "n_prompt", app_json_int(r->n_prompt)) && app_json_add(o, "n_gen", app_json_int(r->n_gen)) &&
         app_json_add(o, "n_batch", app_json_int(r->n_batch)) && app_json_add(o, "n_depth", app_json_int(r->n_depth)) &&
         app_json_add(o, "avg_ts", app_json_num(r->mean)) && app_json_add(o, "stddev_ts", app_json_num(r->sd));
    if (ok) {
        ok = app_json_add(o, "samples_ts", s);
        s = NULL;
    }
    cJSON_Delete(s);
    if (!ok) {
        cJSON_Delete(o);
        return false;
    }
    return app_json_add(arr, NULL, o);
}

static int bench_one_model(const bench_model_opts *o, const char *path, bool *first_row, cJSON *json_rows)
{
    app_model am = { 0 };
    app_device_opts dev = o->dev;
    dev.profiling = o->profile;
    if (app_model_open(&am, path, NULL, &dev)) {
        app_model_close(&am);
        return 1;
    }
    model_desc m;
    describe(&am, &m);
    int32_t n_vocab = lm_model_hparams(am.model)->n_vocab;
    long need = 1; /* context positions: the deepest test */
    for (int di = 0; di < o->d.n; di++) {
        for (int pi = 0; pi < o->p.n; pi++) need = need > o->d.v[di] + o->p.v[pi] ? need : o->d.v[di] + o->p.v[pi];
        for (int ni = 0; ni < o->n.n; ni++) need = need > o->d.v[di] + o->n.v[ni] ? need : o->d.v[di] + o->n.v[ni];
    }
    int32_t *ids = malloc((size_t)need * sizeof(int32_t));
    if (!ids) {
        app_model_close(&am);
        return app_fail("out of memory");
    }
    int rc = 0;
    uint64_t seed = 42;
    for (int bi = 0; bi < o->b.n && !rc; bi++) {
        lm_session *s = NULL;
        char err[1024];
        lm_session_opts so = { .n_ctx = (int32_t)need, .n_batch = (int32_t)o->b.v[bi], .kv_f32 = o->kv_f32 };
        if (lm_session_create(am.model, &so, &s, err, sizeof err)) {
            rc = app_fail("%s", err);
            break;
        }
        /* the tests: pp for each -p, tg for each -n, at each depth */
        for (int di = 0; di < o->d.n && !rc; di++)
            for (int kind = 0; kind < 2 && !rc; kind++) {
                const values *v = kind ? &o->n : &o->p;
                for (int vi = 0; vi < v->n && !rc; vi++) {
                    if (!v->v[vi]) continue;
                    if (kind && bi > 0) continue; /* tg does not depend on the batch size: once */
                    result r = { .n_prompt = kind ? 0 : v->v[vi], .n_gen = kind ? v->v[vi] : 0, .n_batch = o->b.v[bi],
                                 .n_depth = o->d.v[di] };
                    int len = snprintf(r.test, sizeof r.test, "%s%ld", kind ? "tg" : "pp", v->v[vi]);
                    if (r.n_depth) snprintf(r.test + len, sizeof r.test - (size_t)len, " @ d%ld", r.n_depth);
                    if (run_once(s, &r, ids, n_vocab, &seed) < 0) { /* warm-up */
                        rc = 1;
                        break;
                    }
                    for (int k = 0; k < o->reps; k++) {
                        double t = run_once(s, &r, ids, n_vocab, &seed);
                        if (t < 0) {
                            rc = 1;
                            break;
                        }
                        r.samples[r.n_samples++] = (double)(kind ? r.n_gen : r.n_prompt) / t;
                    }
                    if (rc) break;
                    stats(&r);
                    if (!strcmp(o->output, "md")) {
                        if (*first_row) print_md_header();
                        print_md_row(&m, &r);
                    } else if (!strcmp(o->output, "csv")) print_csv_row(&m, &r, *first_row);
                    else if (!json_row(json_rows, &m, &r)) rc = app_fail("out of memory");
                    *first_row = false;
                }
            }
        if (!rc && o->profile && bi == o->b.n - 1) {
            char heading[256];
            double copy_gbs = 0, fma_gflops = 0;
            snprintf(heading, sizeof heading, "%s: one decode step on the GPU", m.name);
            bench_calibrate(am.ctx, &copy_gbs, &fma_gflops);
            app_profile_print(s, false, heading, copy_gbs, fma_gflops);
            /* and one prefill pass of a full batch (or of the last -p, if shorter) from position 0 */
            long pp = o->p.n ? o->p.v[o->p.n - 1] : 0;
            pp = pp > o->b.v[bi] ? o->b.v[bi] : pp;
            char err[1024];
            if (pp > 0) {
                lm_session_rewind(s, 0);
                random_ids(ids, pp, n_vocab, &seed);
                if (lm_session_eval(s, ids, pp, NULL, false, err, sizeof err))
                    rc = app_fail("%s", err);
                snprintf(heading, sizeof heading, "%s: one prefill pass of %ld tokens on the GPU", m.name, pp);
                if (!rc)
                    app_profile_print(s, true, heading, copy_gbs, fma_gflops);
            }
        }
        lm_session_free(s);
    }
    free(ids);
    app_model_close(&am);
    return rc;
}

int bench_model(int argc, char **argv)
{
    bench_model_opts o = { .reps = 5, .output = "md", .dev = { .device = -1 } };
    o.p = (values){ { 512 }, 1 };
    o.n = (values){ { 128 }, 1 };
    o.b = (values){ { 512 }, 1 };
    o.d = (values){ { 0 }, 1 };
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long r;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (app_opt_multi(a, "-m", "--model")) {
            if (!app_arg_str(argc, argv, &i, &v)) return app_bad_args(usage);
            if (o.n_models == MAX_MODELS) return app_fail("bench: at most %d models", MAX_MODELS);
            o.models[o.n_models++] = v;
        } else if (app_opt_multi(a, "-p", "--n-prompt")) {
            if (!app_arg_str(argc, argv, &i, &v) || !parse_values(a, v, &o.p, 0, 1 << 20)) return app_bad_args(usage);
        } else if (app_opt_multi(a, "-n", "--n-gen")) {
            if (!app_arg_str(argc, argv, &i, &v) || !parse_values(a, v, &o.n, 0, 1 << 20)) return app_bad_args(usage);
        } else if (app_opt_multi(a, "-b", "--batch-size")) {
            if (!app_arg_str(argc, argv, &i, &v) || !parse_values(a, v, &o.b, 1, 1 << 16)) return app_bad_args(usage);
        } else if (app_opt_multi(a, "-d", "--n-depth")) {
            if (!app_arg_str(argc, argv, &i, &v) || !parse_values(a, v, &o.d, 0, 1 << 20)) return app_bad_args(usage);
        } else if (app_opt(a, "-r", "--repetitions")) {
            if (!app_arg_int(argc, argv, &i, &r, 1, MAX_REPS)) return app_bad_args(usage);
            o.reps = (int)r;
        } else if (app_opt(a, "-o", "--output")) {
            if (!app_arg_str(argc, argv, &i, &o.output)) return app_bad_args(usage);
            if (strcmp(o.output, "md") && strcmp(o.output, "csv") && strcmp(o.output, "json"))
                return app_fail("bench: -o '%s': expected md, csv or json", o.output);
        } else if (!strcmp(a, "--kv-f32")) o.kv_f32 = true;
        else if (!strcmp(a, "--profile")) o.profile = true;
        else if (!app_device_flag(argc, argv, &i, &o.dev, &bad)) {
            return app_usage_fail(usage, "bench: unknown option '%s'", a);
        }
        if (bad) return 2;
    }
    if (!o.n_models) {
        usage(stderr);
        return app_fail("bench: give a model with -m FILE");
    }
    cJSON *rows = !strcmp(o.output, "json") ? cJSON_CreateArray() : NULL;
    if (!strcmp(o.output, "json") && !rows) return app_fail("out of memory");
    bool first = true;
    int rc = 0;
    for (int k = 0; k < o.n_models && !rc; k++) rc = bench_one_model(&o, o.models[k], &first, rows);
    if (rows) {
        if (rc) cJSON_Delete(rows);
        else rc = app_json_print(rows, true);
    }
    return rc;
}
