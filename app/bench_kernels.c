/* bench_kernels.c: `vkllm bench kernels`: every kernel at the sizes real models give it, timed with GPU
 * timestamps, against the device's own limits as two calibration kernels measure them.
 *
 * Each case records one op into a sequence, runs it for warm-up (not counted), then up to --iters times
 * (at least 3; fewer once the runs pass about a second) and keeps the median of the GPU time of the
 * op's dispatches. Bytes are the least an op must move (every input read once, every output written once); flops count a multiply-add as
 * two. The fractions divide by the calibration: a copy kernel over a large buffer (read + write bytes) and
 * an FMA loop (8 vec4 FMA chains per iteration: 64 flops per iteration per invocation).
 *
 * Model shapes (Llama):  135M: dim 576, ffn 1536, vocab 49152, 9 heads / 3 KV heads of 64
 *                        1B:   dim 2048, ffn 8192, vocab 128256, 32 / 8 heads of 64
 *                        7B:   dim 4096, ffn 11008, vocab 32000, 32 / 32 heads of 128 */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_kernels.h"
#include "rt.h"

typedef struct result {
    char name[96];   /* "matmul f16 m=1 1B.ffn_up": what --filter matches */
    char shape[64];  /* "8192x2048" */
    char kernel[64]; /* the kernels the op dispatched: "gemv", "matmul x2" */
    double ns;       /* median GPU time of one run */
    int runs;
    double bytes;    /* least bytes moved */
    double flops;    /* arithmetic (0: not counted, for kernels bound by memory only) */
    char skip[192];  /* not empty: the case did not run, and why */
} result;

typedef struct bench {
    const bench_opts *o;
    rt_ctx *ctx;
    const rt_device_info *dev;
    rt_seq *seq;
    int iters;
    double budget_ns;      /* a case stops taking runs once they sum to more than this (wall time) */
    uint64_t heap;         /* the largest device-local heap */
    bool timestamps;       /* GPU timestamps; wall time of submit-and-wait otherwise */
    double copy_bytes, copy_ns, fma_flops, fma_ns;
    result *res;
    int n_res, cap_res;
    int status;            /* first hard failure (exit status) */
} bench;

/* ---------------------------------------------------------------- timing */

static double now_ns(void) { return app_now() * 1e9; }

/* Runs the recorded sequence once: *gpu_ns is the sum of its dispatches' times, *wall_ns the host's. */
static int run_once(bench *b, double *gpu_ns, double *wall_ns, char *kernels, size_t klen)
{
    double t0 = now_ns();
    int rc = rt_seq_run(b->seq);
    *wall_ns = now_ns() - t0;
    if (rc)
        return rc;
    int n = rt_seq_timing_count(b->seq);
    if (n == 0) {
        *gpu_ns = *wall_ns;
        if (kernels)
            snprintf(kernels, klen, "?");
        return RT_OK;
    }
    double sum = 0;
    const char *first = NULL;
    bool same = true;
    for (int i = 0; i < n; i++) {
        const char *k;
        double ns;
        rt_seq_timing(b->seq, i, &k, &ns);
        sum += ns;
        if (!first)
            first = k;
        else if (strcmp(k, first))
            same = false;
    }
    *gpu_ns = sum;
    if (kernels) {
        if (n == 1)
            snprintf(kernels, klen, "%s", first);
        else if (same)
            snprintf(kernels, klen, "%s x%d", first, n);
        else {
            size_t len = 0;
            kernels[0] = 0;
            for (int i = 0; i < n && len + 1 < klen; i++) {
                const char *k;
                double ns;
                rt_seq_timing(b->seq, i, &k, &ns);
                len += (size_t)snprintf(kernels + len, klen - len, "%s%s", i ? "+" : "", k);
            }
        }
    }
    return RT_OK;
}

/* A warm-up run, never counted (a driver may compile the pipeline on its first use: lavapipe does, and
 * that run can be 100x slower), then the median of up to b->iters timed runs: at least MIN_SAMPLES of
 * them whatever they cost (no figure rests on one sample), more while the time budget lasts. */
#define MIN_SAMPLES 3
static int measure(bench *b, result *r)
{
    double gpu, wall;
    int rc = run_once(b, &gpu, &wall, r->kernel, sizeof r->kernel);
    if (!rc && wall < b->budget_ns / 8)
        rc = run_once(b, &gpu, &wall, NULL, 0); /* a second warm-up when it is cheap */
    if (rc)
        return rc;
    int cap = b->iters > MIN_SAMPLES ? b->iters : MIN_SAMPLES;
    double *t = malloc(sizeof *t * (size_t)cap);
    if (!t)
        return RT_ERR_OUT_OF_MEMORY;
    double spent = 0;
    int n = 0;
    while (n < cap && !rc) {
        rc = run_once(b, &t[n], &wall, NULL, 0);
        spent += wall;
        n++;
        if (n >= MIN_SAMPLES && spent > b->budget_ns)
            break;
    }
    if (!rc) {
        qsort(t, (size_t)n, sizeof *t, app_cmp_double);
        r->ns = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
        r->runs = n;
    }
    free(t);
    return rc;
}

/* ---------------------------------------------------------------- results */

static result *new_result(bench *b, const char *name, const char *shape)
{
    if (b->n_res == b->cap_res) {
        int cap = b->cap_res ? 2 * b->cap_res : 64;
        result *nr = realloc(b->res, sizeof *nr * (size_t)cap);
        if (!nr)
            return NULL;
        b->res = nr;
        b->cap_res = cap;
    }
    result *r = &b->res[b->n_res++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    return r;
}

static double gbps(const result *r) { return r->ns > 0 ? r->bytes / r->ns : 0; }
static double gflops(const result *r) { return r->ns > 0 ? r->flops / r->ns : 0; }
static double peak_gbps(const bench *b) { return b->copy_ns > 0 ? b->copy_bytes / b->copy_ns : 0; }
static double peak_gflops(const bench *b) { return b->fma_ns > 0 ? b->fma_flops / b->fma_ns : 0; }

static void print_header(const bench *b)
{
    printf("device       %s (%s, %s)\n", b->dev->name, b->dev->type_name, b->dev->driver_name);
    printf("calibration  copy %.1f GB/s (%.0f MiB read + written), fma %.1f GFLOP/s%s\n", peak_gbps(b),
           b->copy_bytes / 1048576.0, peak_gflops(b), b->timestamps ? "" : "  (no GPU timestamps: wall time)");
    printf("\n%-30s %-15s %-22s %11s %9s %5s %9s %5s\n", "case", "shape", "kernel", "time us", "GB/s", "%bw",
           "GFLOP/s", "%fma");
}

static void print_row(const bench *b, const result *r)
{
    if (r->skip[0]) {
        printf("%-30s %-15s skipped: %s\n", r->name, r->shape, r->skip);
        fflush(stdout);
        return;
    }
    printf("%-30s %-15s %-22s %11.1f %9.2f %4.0f%%", r->name, r->shape, r->kernel, r->ns / 1e3, gbps(r),
           peak_gbps(b) > 0 ? 100 * gbps(r) / peak_gbps(b) : 0);
    if (r->flops > 0)
        printf(" %9.2f %4.0f%%\n", gflops(r), peak_gflops(b) > 0 ? 100 * gflops(r) / peak_gflops(b) : 0);
    else
        printf(" %9s %5s\n", "-", "-");
    fflush(stdout);
}

/* A measured value for JSON: 6 significant digits, as many as a timing holds (null when not finite). */
static cJSON *json_measured(double v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%.6g", v);
    return app_json_num(strtod(digits, NULL));
}

/* The results as one JSON object: ratios that cannot be computed (no flops counted, no calibration) are
 * null. Returns the exit status. */
static int print_json(const bench *b)
{
    bool ok = true;
    cJSON *root = cJSON_CreateObject();
    cJSON *dev = cJSON_CreateObject();
    ok &= app_json_add(dev, "index", cJSON_CreateNumber(b->dev->index));
    ok &= app_json_add(dev, "name", cJSON_CreateString(b->dev->name));
    ok &= app_json_add(dev, "type", cJSON_CreateString(b->dev->type_name));
    ok &= app_json_add(dev, "driver", cJSON_CreateString(b->dev->driver_name));
    ok &= app_json_add(dev, "gpu_timestamps", cJSON_CreateBool(b->timestamps));
    ok &= app_json_add(root, "device", dev);
    cJSON *cal = cJSON_CreateObject();
    ok &= app_json_add(cal, "copy_bytes", app_json_num(b->copy_bytes));
    ok &= app_json_add(cal, "copy_us", json_measured(b->copy_ns / 1e3));
    ok &= app_json_add(cal, "copy_gbps", json_measured(peak_gbps(b)));
    ok &= app_json_add(cal, "fma_flops", app_json_num(b->fma_flops));
    ok &= app_json_add(cal, "fma_us", json_measured(b->fma_ns / 1e3));
    ok &= app_json_add(cal, "fma_gflops", json_measured(peak_gflops(b)));
    ok &= app_json_add(root, "calibration", cal);
    ok &= app_json_add(root, "quick", cJSON_CreateBool(b->o->quick));
    ok &= app_json_add(root, "iters", cJSON_CreateNumber(b->iters));
    cJSON *results = cJSON_CreateArray(), *skipped = cJSON_CreateArray();
    for (int i = 0; i < b->n_res; i++) {
        const result *r = &b->res[i];
        cJSON *o = cJSON_CreateObject();
        ok &= app_json_add(o, "name", cJSON_CreateString(r->name));
        ok &= app_json_add(o, "shape", cJSON_CreateString(r->shape));
        if (r->skip[0]) {
            ok &= app_json_add(o, "reason", cJSON_CreateString(r->skip));
            ok &= app_json_add(skipped, NULL, o);
            continue;
        }
        ok &= app_json_add(o, "kernel", cJSON_CreateString(r->kernel));
        ok &= app_json_add(o, "time_us", json_measured(r->ns / 1e3));
        ok &= app_json_add(o, "runs", cJSON_CreateNumber(r->runs));
        ok &= app_json_add(o, "bytes", app_json_num(r->bytes));
        ok &= app_json_add(o, "flops", app_json_num(r->flops));
        ok &= app_json_add(o, "gbps", json_measured(gbps(r)));
        ok &= app_json_add(o, "gflops", json_measured(r->flops > 0 ? gflops(r) : NAN));
        ok &= app_json_add(o, "bw_fraction", json_measured(peak_gbps(b) > 0 ? gbps(r) / peak_gbps(b) : NAN));
        ok &= app_json_add(o, "fma_fraction",
                           json_measured(r->flops > 0 && peak_gflops(b) > 0 ? gflops(r) / peak_gflops(b) : NAN));
        ok &= app_json_add(results, NULL, o);
    }
    ok &= app_json_add(root, "results", results);
    ok &= app_json_add(root, "skipped", skipped);
    return app_json_print(root, ok);
}

/* ---------------------------------------------------------------- cases */

/* The buffers of one case: created filled with a constant (values do not change the timing, as long as
 * they are normal numbers), destroyed together. */
#define MAX_BUFS 8
typedef struct case_bufs {
    bench *b;
    result *r;
    rt_buffer *buf[MAX_BUFS];
    int n;
    size_t total;
    int rc;
} case_bufs;

/* Starts a case: NULL when the filter leaves it out. */
static result *begin_case(bench *b, case_bufs *cb, const char *name, const char *shape)
{
    if (b->status || (b->o->filter && !strstr(name, b->o->filter)))
        return NULL;
    result *r = new_result(b, name, shape);
    if (!r) {
        b->status = app_fail("out of host memory");
        return NULL;
    }
    memset(cb, 0, sizeof *cb);
    cb->b = b;
    cb->r = r;
    return r;
}

/* Checks a case's sizes against the device before allocating: one buffer of `largest` bytes and all of
 * them together. */
static bool fits(case_bufs *cb, size_t largest, size_t total)
{
    const rt_device_info *d = cb->b->dev;
    if (largest > d->max_allocation_size)
        snprintf(cb->r->skip, sizeof cb->r->skip, "a %.0f MiB buffer exceeds the device's allocation limit (%.0f MiB)",
                 largest / 1048576.0, d->max_allocation_size / 1048576.0);
    else if (total > cb->b->heap / 10 * 8)
        snprintf(cb->r->skip, sizeof cb->r->skip, "needs %.0f MiB, more than 80%% of the device's %.0f MiB",
                 total / 1048576.0, cb->b->heap / 1048576.0);
    else
        return true;
    return false;
}

static rt_buffer *mk(case_bufs *cb, size_t size, uint32_t fill)
{
    if (cb->rc || cb->n == MAX_BUFS)
        return NULL;
    size = (size + 3) / 4 * 4;
    rt_buffer *buf = NULL;
    cb->rc = rt_buffer_create(cb->b->ctx, RT_MEM_DEVICE, size, &buf);
    if (!cb->rc)
        cb->rc = rt_buffer_fill(buf, 0, size, fill);
    if (cb->rc) {
        snprintf(cb->r->skip, sizeof cb->r->skip, "%s", rt_ctx_errmsg(cb->b->ctx));
        rt_buffer_destroy(buf);
        return NULL;
    }
    cb->buf[cb->n++] = buf;
    cb->total += size;
    return buf;
}

static void free_bufs(case_bufs *cb)
{
    for (int i = cb->n - 1; i >= 0; i--)
        rt_buffer_destroy(cb->buf[i]);
    cb->n = 0;
}

/* After the op is recorded (rc from rt_seq_end): runs the case, prints its row, frees its buffers. An
 * allocation that failed for lack of memory skips the case; any other failure stops the benchmark. */
static void finish_case(case_bufs *cb, int rc)
{
    bench *b = cb->b;
    result *r = cb->r;
    if (cb->rc) {
        if (cb->rc != RT_ERR_OUT_OF_MEMORY && cb->rc != RT_ERR_LIMIT)
            b->status = app_fail("%s: %s", r->name, r->skip);
    } else if (r->skip[0]) {
        /* too large for the device: nothing was recorded */
    } else if (rc) {
        b->status = app_fail("%s: %s", r->name, rt_seq_errmsg(b->seq));
    } else if ((rc = measure(b, r))) {
        b->status = app_fail("%s: %s: %s", r->name, rt_status_string(rc), rt_seq_errmsg(b->seq));
    }
    free_bufs(cb);
    if (!b->o->json && !b->status)
        print_row(b, r);
}

/* a 32-bit fill word that reads as a small normal number in every element type */
#define FILL_F32 0x3C003C00u /* f32: 0.0078; f16 pairs: 1.0; bf16 pairs: 0.0078 */

/* "q4_k" for RT_Q4_K */
static const char *type_name(rt_dtype t)
{
    static char names[RT_DTYPE_MAX][16];
    rt_dtype_traits tr;
    if (!rt_dtype_info((int)t, &tr))
        return "?";
    char *s = names[t];
    size_t i = 0;
    for (; tr.name[i] && i < sizeof names[t] - 1; i++)
        s[i] = (char)(tr.name[i] >= 'A' && tr.name[i] <= 'Z' ? tr.name[i] - 'A' + 'a' : tr.name[i]);
    s[i] = 0;
    return s;
}

static void case_matmul(bench *b, const char *model, const char *what, int64_t m, int64_t n, int64_t k, rt_dtype wt)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "matmul %s m=%lld %s.%s", type_name(wt), (long long)m, model, what);
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)n, (long long)k);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    size_t ws = rt_weight_bytes(wt, n, k), xs = (size_t)(m * k) * 4, ys = (size_t)(m * n) * 4;
    r->bytes = (double)(ws + xs + ys);
    r->flops = 2.0 * (double)m * (double)n * (double)k;
    if (!ws)
        snprintf(r->skip, sizeof r->skip, "rows of %lld are not whole %s blocks", (long long)k, type_name(wt));
    if (ws && fits(&cb, ws > ys ? ws : ys, ws + xs + ys)) {
        rt_buffer *w = mk(&cb, ws, FILL_F32), *x = mk(&cb, xs, FILL_F32), *y = mk(&cb, ys, 0);
        if (!cb.rc) {
            rt_seq_begin(b->seq);
            rt_op_matmul(b->seq, rt_at(y, 0), rt_at(x, 0), rt_at(w, 0), wt, (rt_ref){ 0 }, m, n, k);
        }
        finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
    } else
        finish_case(&cb, 0);
}

static void case_rmsnorm(bench *b, const char *model, int64_t rows, int64_t dim)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "rmsnorm m=%lld %s", (long long)rows, model);
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)dim);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    r->bytes = (double)(2 * rows * dim + dim) * 4;
    rt_buffer *x = mk(&cb, (size_t)(rows * dim) * 4, FILL_F32), *y = mk(&cb, (size_t)(rows * dim) * 4, 0),
              *w = mk(&cb, (size_t)dim * 4, FILL_F32);
    if (!cb.rc) {
        rt_seq_begin(b->seq);
        rt_op_rmsnorm(b->seq, rt_at(y, 0), rt_at(x, 0), rt_at(w, 0), rows, dim, 1e-5f);
    }
    finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
}

static void case_softmax(bench *b, const char *what, int64_t rows, int64_t cols)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "softmax %s", what);
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    r->bytes = (double)(2 * rows * cols) * 4;
    rt_buffer *x = mk(&cb, (size_t)(rows * cols) * 4, FILL_F32), *y = mk(&cb, (size_t)(rows * cols) * 4, 0);
    if (!cb.rc) {
        rt_seq_begin(b->seq);
        rt_op_softmax(b->seq, rt_at(y, 0), rt_at(x, 0), rows, cols, 0.125f);
    }
    finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
}

static void case_rope(bench *b, const char *model, int64_t rows, int heads, int head_dim)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "rope m=%lld %s", (long long)rows, model);
    snprintf(shape, sizeof shape, "%lldx%dx%d", (long long)rows, heads, head_dim);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    r->bytes = (double)(2 * rows * heads * head_dim + rows) * 4;
    rt_buffer *x = mk(&cb, (size_t)(rows * heads * head_dim) * 4, FILL_F32), *pos = mk(&cb, (size_t)rows * 4, 17);
    rt_rope_desc rd = { .mode = RT_ROPE_ADJACENT, .n_rot = head_dim, .base = 500000.0f, .freq_scale = 1.0f };
    if (!cb.rc) {
        rt_seq_begin(b->seq);
        rt_op_rope(b->seq, rt_at(x, 0), rt_at(pos, 0), rows, heads, head_dim, &rd);
    }
    finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
}

/* One query row (decode) against a cache of ctx positions. */
static void case_attention(bench *b, const char *model, int heads, int kv_heads, int head_dim, int64_t ctx,
                           rt_dtype ct)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "attention %s ctx=%lld %s", ct == RT_F16 ? "f16" : "f32", (long long)ctx, model);
    snprintf(shape, sizeof shape, "%d/%dx%d", heads, kv_heads, head_dim);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    size_t cache = (size_t)(ctx * kv_heads * head_dim) * rt_dtype_size(ct);
    r->bytes = 2.0 * (double)cache + 2.0 * heads * head_dim * 4;
    r->flops = 4.0 * (double)ctx * heads * head_dim;
    if (fits(&cb, cache, 2 * cache)) {
        rt_buffer *q = mk(&cb, (size_t)(heads * head_dim) * 4, FILL_F32), *o = mk(&cb, (size_t)(heads * head_dim) * 4, 0),
                  *kc = mk(&cb, cache, FILL_F32), *vc = mk(&cb, cache, FILL_F32),
                  *pos = mk(&cb, 4, (uint32_t)(ctx - 1));
        rt_attn_desc ad = { .n_heads = heads, .n_kv_heads = kv_heads, .head_dim = head_dim,
                            .scale = 1.0f / sqrtf((float)head_dim), .cap = ctx, .cache_type = ct };
        if (!cb.rc) {
            rt_seq_begin(b->seq);
            rt_op_attention(b->seq, rt_at(o, 0), rt_at(q, 0), rt_at(kc, 0), rt_at(vc, 0), rt_at(pos, 0), 1, &ad);
        }
        finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
    } else
        finish_case(&cb, 0);
}

/* A prefill chunk of `rows` query rows at positions 0 .. rows - 1 (causal: row r sees r + 1 keys). */
static void case_attention_rows(bench *b, const char *model, int heads, int kv_heads, int head_dim, int64_t rows,
                                rt_dtype ct)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "attention %s m=%lld %s", ct == RT_F16 ? "f16" : "f32", (long long)rows, model);
    snprintf(shape, sizeof shape, "%d/%dx%d", heads, kv_heads, head_dim);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    size_t cache = (size_t)(rows * kv_heads * head_dim) * rt_dtype_size(ct), qo = (size_t)(rows * heads * head_dim) * 4;
    r->bytes = 2.0 * (double)cache + 2.0 * (double)qo;
    r->flops = 4.0 * (double)(rows * (rows + 1) / 2) * heads * head_dim;
    rt_buffer *q = mk(&cb, qo, FILL_F32), *o = mk(&cb, qo, 0), *kc = mk(&cb, cache, FILL_F32),
              *vc = mk(&cb, cache, FILL_F32), *pos = mk(&cb, (size_t)rows * 4, 0);
    int32_t *p = cb.rc ? NULL : malloc((size_t)rows * 4);
    if (p) {
        for (int64_t i = 0; i < rows; i++)
            p[i] = (int32_t)i;
        cb.rc = rt_buffer_write(pos, 0, p, (size_t)rows * 4);
        free(p);
    }
    rt_attn_desc ad = { .n_heads = heads, .n_kv_heads = kv_heads, .head_dim = head_dim,
                        .scale = 1.0f / sqrtf((float)head_dim), .cap = rows, .cache_type = ct };
    if (!cb.rc) {
        rt_seq_begin(b->seq);
        rt_op_attention(b->seq, rt_at(o, 0), rt_at(q, 0), rt_at(kc, 0), rt_at(vc, 0), rt_at(pos, 0), rows, &ad);
    }
    finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
}

static void case_get_rows(bench *b, const char *model, int64_t rows, int64_t vocab, int64_t dim, rt_dtype t)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "get_rows %s m=%lld %s", type_name(t), (long long)rows, model);
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)vocab, (long long)dim);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    size_t row = rt_dtype_row_bytes(t, dim), table = rt_weight_bytes(t, vocab, dim);
    r->bytes = (double)rows * (double)(row + (size_t)dim * 4) + (double)rows * 4;
    if (!row)
        snprintf(r->skip, sizeof r->skip, "rows of %lld are not whole %s blocks", (long long)dim, type_name(t));
    if (row && fits(&cb, table, table)) {
        rt_buffer *tb = mk(&cb, table, FILL_F32), *ids = mk(&cb, (size_t)rows * 4, 0),
                  *y = mk(&cb, (size_t)(rows * dim) * 4, 0);
        if (!cb.rc) {
            /* ids spread over the table */
            int32_t *id = malloc(sizeof *id * (size_t)rows);
            for (int64_t i = 0; id && i < rows; i++)
                id[i] = (int32_t)((i * 7919 + 13) % vocab);
            if (id)
                rt_buffer_write(ids, 0, id, sizeof *id * (size_t)rows);
            free(id);
            rt_seq_begin(b->seq);
            rt_op_get_rows(b->seq, rt_at(y, 0), rt_at(tb, 0), t, rt_at(ids, 0), rows, vocab, dim);
        }
        finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
    } else
        finish_case(&cb, 0);
}

static void case_swiglu(bench *b, const char *model, int64_t rows, int64_t ffn)
{
    char name[96], shape[64];
    snprintf(name, sizeof name, "swiglu m=%lld %s", (long long)rows, model);
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)ffn);
    case_bufs cb;
    result *r = begin_case(b, &cb, name, shape);
    if (!r)
        return;
    size_t s = (size_t)(rows * ffn) * 4;
    r->bytes = 3.0 * (double)s;
    rt_buffer *a = mk(&cb, s, FILL_F32), *g = mk(&cb, s, FILL_F32), *y = mk(&cb, s, 0);
    if (!cb.rc) {
        rt_seq_begin(b->seq);
        rt_op_swiglu(b->seq, rt_at(y, 0), rt_at(a, 0), rt_at(g, 0), rows * ffn);
    }
    finish_case(&cb, cb.rc ? 0 : rt_seq_end(b->seq));
}

typedef struct model_shape {
    const char *name;
    int64_t dim, ffn, vocab;
    int heads, kv_heads, head_dim;
} model_shape;

static const model_shape models[] = {
    { "135M", 576, 1536, 49152, 9, 3, 64 },
    { "1B", 2048, 8192, 128256, 32, 8, 64 },
    { "7B", 4096, 11008, 32000, 32, 32, 128 },
};

static void all_cases(bench *b)
{
    const int n_models = b->o->quick ? 1 : 3;
    const int64_t prefill = b->o->quick ? 64 : 512;
    const rt_dtype wts[2] = { RT_F32, RT_F16 };
    /* decode with every weight format at the 1B and 7B shapes: GB/s of weights read, beside f16 */
    static const rt_dtype quants[] = { RT_BF16, RT_Q8_0, RT_Q4_0, RT_Q4_1, RT_Q5_0, RT_Q5_1, RT_Q2_K, RT_Q3_K,
                                       RT_Q4_K, RT_Q5_K, RT_Q6_K, RT_IQ4_NL, RT_IQ4_XS };
    for (int i = b->o->quick ? 0 : 1; i < n_models; i++) {
        const model_shape *s = &models[i];
        for (size_t t = 0; t < sizeof quants / sizeof quants[0]; t++) {
            if (!rt_dtype_row_bytes(quants[t], s->dim)) /* 135M (--quick): 576 is no whole number of 256-blocks */
                continue;
            case_matmul(b, s->name, "attn_q", 1, s->dim, s->dim, quants[t]);
            case_matmul(b, s->name, "ffn_up", 1, s->ffn, s->dim, quants[t]);
            if (!b->o->quick && (quants[t] == RT_Q4_0 || quants[t] == RT_Q4_K))
                case_matmul(b, s->name, "ffn_up", prefill, s->ffn, s->dim, quants[t]);
        }
    }
    for (int pass = 0; pass < 2; pass++) { /* decode first: it is quick and what most people look for */
        int64_t m = pass == 0 ? 1 : prefill;
        for (int i = 0; i < n_models; i++) {
            const model_shape *s = &models[i];
            for (int t = 0; t < 2; t++) {
                case_matmul(b, s->name, "attn_q", m, s->dim, s->dim, wts[t]);
                case_matmul(b, s->name, "ffn_up", m, s->ffn, s->dim, wts[t]);
                case_matmul(b, s->name, "ffn_down", m, s->dim, s->ffn, wts[t]);
                if (!b->o->quick)
                    case_matmul(b, s->name, "output", m, s->vocab, s->dim, wts[t]);
            }
        }
    }
    for (int i = 0; i < n_models; i++) {
        const model_shape *s = &models[i];
        case_rmsnorm(b, s->name, 1, s->dim);
        case_rmsnorm(b, s->name, prefill, s->dim);
    }
    for (int i = 0; i < n_models; i++) {
        const model_shape *s = &models[i];
        char what[64];
        int64_t ctxs[2] = { 512, 4096 };
        for (int c = 0; c < (b->o->quick ? 1 : 2); c++) {
            snprintf(what, sizeof what, "%s scores ctx=%lld", s->name, (long long)ctxs[c]);
            case_softmax(b, what, s->heads, ctxs[c]);
        }
        snprintf(what, sizeof what, "%s output", s->name);
        case_softmax(b, what, 1, b->o->quick ? 4096 : s->vocab);
    }
    for (int i = 0; i < n_models; i++) {
        const model_shape *s = &models[i];
        case_rope(b, s->name, 1, s->heads, s->head_dim);
        case_rope(b, s->name, prefill, s->heads, s->head_dim);
    }
    static const int64_t ctxs[3] = { 512, 2048, 8192 };
    for (int i = 0; i < n_models; i++) {
        const model_shape *s = &models[i];
        for (int c = 0; c < (b->o->quick ? 1 : 3); c++) {
            case_attention(b, s->name, s->heads, s->kv_heads, s->head_dim, ctxs[c], RT_F16);
            if (!b->o->quick && c == 1)
                case_attention(b, s->name, s->heads, s->kv_heads, s->head_dim, ctxs[c], RT_F32);
        }
        case_attention_rows(b, s->name, s->heads, s->kv_heads, s->head_dim, prefill, RT_F16);
    }
    for (int i = 0; i < n_models; i++) {
        const model_shape *s = &models[i];
        case_get_rows(b, s->name, 1, s->vocab, s->dim, RT_F16);
        case_get_rows(b, s->name, prefill, s->vocab, s->dim, RT_F16);
        if (rt_dtype_row_bytes(RT_Q6_K, s->dim))
            case_get_rows(b, s->name, prefill, s->vocab, s->dim, RT_Q6_K);
    }
    for (int i = 0; i < n_models; i++) {
        const model_shape *s = &models[i];
        case_swiglu(b, s->name, 1, s->ffn);
        case_swiglu(b, s->name, prefill, s->ffn);
    }
}

/* ---------------------------------------------------------------- calibration */

/* Copy bandwidth: rt_op_copy_kernel over the largest buffer pair the device binds in one piece (up to
 * 256 MiB each; 16 MiB with --quick). Arithmetic: rt_op_fma_kernel, its loop length grown until one run
 * takes a few milliseconds. */
static int calibrate(bench *b)
{
    size_t n = b->o->quick ? (size_t)16 << 20 : (size_t)256 << 20;
    if (n > b->dev->max_storage_buffer_range)
        n = b->dev->max_storage_buffer_range / 16 * 16;
    if (n > b->heap / 8)
        n = b->heap / 8 / 16 * 16;
    rt_buffer *src = NULL, *dst = NULL;
    int rc = rt_buffer_create(b->ctx, RT_MEM_DEVICE, n, &src);
    if (!rc)
        rc = rt_buffer_create(b->ctx, RT_MEM_DEVICE, n, &dst);
    if (!rc)
        rc = rt_buffer_fill(src, 0, n, FILL_F32);
    if (rc) {
        app_fail("calibration: %s", rt_ctx_errmsg(b->ctx));
        goto out_free;
    }
    result r;
    memset(&r, 0, sizeof r);
    rt_seq_begin(b->seq);
    rt_op_copy_kernel(b->seq, rt_at(dst, 0), rt_at(src, 0), n);
    if ((rc = rt_seq_end(b->seq)) || (rc = measure(b, &r))) {
        app_fail("calibration copy: %s", rt_seq_errmsg(b->seq));
        goto out_free;
    }
    b->copy_bytes = 2.0 * (double)n;
    b->copy_ns = r.ns;

    /* enough invocations to fill any GPU (and every core of a CPU); the loop grows until a run takes
     * about 5 ms (20 ms without --quick) */
    int64_t threads = b->dev->type == RT_DEVICE_CPU ? 16384 : 1 << 20;
    double target = b->o->quick ? 5e6 : 20e6;
    int iters = 16;
    for (;;) {
        rt_seq_begin(b->seq);
        rt_op_fma_kernel(b->seq, rt_at(dst, 0), threads, iters);
        if ((rc = rt_seq_end(b->seq)) || (rc = measure(b, &r))) {
            app_fail("calibration fma: %s", rt_seq_errmsg(b->seq));
            goto out_free;
        }
        if (r.ns >= target / 2 || iters >= 1 << 20)
            break;
        double grow = r.ns > 0 ? target / r.ns : 64;
        iters = (int)(iters * (grow > 64 ? 64 : grow < 2 ? 2 : grow));
        if (iters > 1 << 20)
            iters = 1 << 20;
    }
    b->fma_flops = 64.0 * (double)threads * iters;
    b->fma_ns = r.ns;
out_free:
    rt_buffer_destroy(dst);
    rt_buffer_destroy(src);
    return rc;
}

static uint64_t largest_heap(const rt_device_info *d)
{
    uint64_t heap = 0;
    for (int h = 0; h < d->n_heaps; h++)
        if (d->heaps[h].device_local && d->heaps[h].size > heap)
            heap = d->heaps[h].size;
    for (int h = 0; h < d->n_heaps && !heap; h++) /* no device-local heap: the largest */
        if (d->heaps[h].size > heap)
            heap = d->heaps[h].size;
    return heap;
}

int bench_calibrate(rt_ctx *ctx, double *copy_gbs, double *fma_gflops)
{
    bench_opts o = { .quick = true };
    bench b = { .o = &o, .iters = 3, .budget_ns = 0.2e9, .ctx = ctx };
    b.dev = rt_ctx_device(ctx);
    b.timestamps = b.dev->timestamp_period_ns > 0;
    b.heap = largest_heap(b.dev);
    int rc = rt_seq_create(ctx, &b.seq);
    if (rc)
        return app_fail("%s", rt_ctx_errmsg(ctx));
    rc = calibrate(&b);
    rt_seq_destroy(b.seq);
    *copy_gbs = rc ? 0 : peak_gbps(&b);
    *fma_gflops = rc ? 0 : peak_gflops(&b);
    return rc;
}

/* ---------------------------------------------------------------- entry */

int bench_kernels(const bench_opts *o)
{
    bench b = { .o = o, .iters = o->iters ? o->iters : o->quick ? 3 : 10 };
    b.budget_ns = o->quick ? 0.2e9 : 1e9;
    rt_instance *inst;
    rt_instance_desc id = { .validation = o->dev.validation };
    int rc = rt_instance_create(&id, &inst);
    if (rc) {
        app_fail("%s", rt_instance_errmsg(inst));
        rt_instance_destroy(inst);
        return 1;
    }
    rt_ctx_desc cd = { .device = o->dev.device, .profiling = true };
    if ((rc = rt_ctx_create(inst, &cd, &b.ctx))) {
        app_fail("%s", rt_ctx_errmsg(b.ctx));
        goto out_destroy_ctx;
    }
    b.dev = rt_ctx_device(b.ctx);
    b.timestamps = b.dev->timestamp_period_ns > 0;
    b.heap = largest_heap(b.dev);
    if ((rc = rt_seq_create(b.ctx, &b.seq))) {
        app_fail("%s", rt_ctx_errmsg(b.ctx));
        goto out_destroy_ctx;
    }
    if ((rc = calibrate(&b)))
        goto out_destroy_seq;
    if (!o->json)
        print_header(&b);
    all_cases(&b);
    rc = b.status;
    if (!rc && b.n_res == 0)
        rc = app_fail("no case matches --filter '%s'", o->filter ? o->filter : "");
    if (!rc && o->json)
        rc = print_json(&b);
    if (!rc && inst && o->dev.validation && rt_instance_validation_count(inst))
        rc = app_fail("%u validation messages", rt_instance_validation_count(inst));
out_destroy_seq:
    rt_seq_destroy(b.seq);
out_destroy_ctx:
    rt_ctx_destroy(b.ctx);
    rt_instance_destroy(inst);
    free(b.res);
    return rc ? 1 : 0;
}
