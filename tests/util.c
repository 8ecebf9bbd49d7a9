#include "util.h"

#include "lm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int tu_failures;
static rt_instance *tu_inst;  /* the open instance, for the validation count in tu_finish */
static uint32_t tu_vmsgs_closed; /* validation messages of instances already destroyed */

static int cases_seen, cases_left_out;

bool tu_take_case(void)
{
    static int sanitized = -1;
    if (sanitized < 0)
        sanitized = getenv("VKLLM_SANITIZED") && !getenv("VKLLM_TEST_ALL_CASES");
    if (!sanitized)
        return true;
    if (cases_seen++ % TU_SANITIZED_STRIDE == 0)
        return true;
    cases_left_out++;
    return false;
}

int tu_finish(const char *name)
{
    uint32_t vmsgs = tu_vmsgs_closed + (tu_inst ? rt_instance_validation_count(tu_inst) : 0);
    if (vmsgs) {
        fprintf(stderr, "%s: %u validation message(s)\n", name, vmsgs);
        tu_failures++;
    }
    if (tu_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, tu_failures);
        return 1;
    }
    if (cases_left_out)
        printf("%s: %d of %d sweep cases run (one in %d under the sanitizers, VKLLM_SANITIZED)\n", name,
               cases_seen - cases_left_out, cases_seen, TU_SANITIZED_STRIDE);
    printf("%s: all checks passed\n", name);
    return 0;
}

uint64_t tu_seed(const char *test)
{
    const char *e = getenv("VKLLM_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : 0x5EEDC0FFEEull;
    if (s == 0)
        s = 1;
    printf("%s: seed %llu (set VKLLM_TEST_SEED to replay)\n", test, (unsigned long long)s);
    return s;
}

uint32_t tu_u32(tu_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1Dull) >> 32);
}

float tu_uniform(tu_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((tu_u32(r) >> 8) / 16777216.0);
}

float tu_normal(tu_rng *r)
{
    double u1 = ((tu_u32(r) >> 8) + 0.5) / 16777216.0, u2 = (tu_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* sum((a - ref)^2) / sum(ref^2) with ref[i] read through get */
static double nmse_of(const float *a, const void *ref, int64_t n, double (*get)(const void *, int64_t))
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double r = get(ref, i), d = (double)a[i] - r;
        num += d * d;
        den += r * r;
    }
    return den > 0 ? num / den : num;
}

static double get_d(const void *p, int64_t i) { return ((const double *)p)[i]; }
static double get_f(const void *p, int64_t i) { return ((const float *)p)[i]; }

double tu_nmse(const float *a, const double *ref, int64_t n) { return nmse_of(a, ref, n, get_d); }
double tu_nmse_f(const float *a, const float *ref, int64_t n) { return nmse_of(a, ref, n, get_f); }

const char *tu_model_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("VKLLM_MODELS");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared/models", rel);
    return buf;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return p;
}

const char *tu_validation_flag(void)
{
    return getenv("VKLLM_NO_VALIDATION") ? "" : "--validation";
}

static void tu_on_message(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "VALIDATION: %s\n", msg);
}

bool tu_gpu_open(tu_gpu *g)
{
    memset(g, 0, sizeof *g);
    rt_instance_desc id = { .validation = getenv("VKLLM_NO_VALIDATION") == NULL,
                            .on_message = tu_on_message };
    int rc = rt_instance_create(&id, &g->inst);
    if (rc) {
        fprintf(stderr, "instance: %s: %s\n", rt_status_string(rc), rt_instance_errmsg(g->inst));
        tu_failures++;
        return false;
    }
    tu_inst = g->inst;
    rt_ctx_desc cd = { .device = -1, .pipeline_cache = "" };
    rc = rt_ctx_create(g->inst, &cd, &g->ctx);
    if (rc) {
        fprintf(stderr, "context: %s: %s\n", rt_status_string(rc), rt_ctx_errmsg(g->ctx));
        tu_failures++;
        return false;
    }
    const rt_device_info *d = rt_ctx_device(g->ctx);
    printf("device: %s (subgroup %u)\n", d->name, d->subgroup_size);
    return true;
}

void tu_gpu_close(tu_gpu *g)
{
    rt_ctx_destroy(g->ctx);
    g->ctx = NULL;
    if (g->inst == tu_inst) {
        tu_vmsgs_closed += rt_instance_validation_count(tu_inst);
        tu_inst = NULL;
    }
    rt_instance_destroy(g->inst);
    g->inst = NULL;
}

bool tu_guard_fill(rt_buffer *b, size_t data_bytes)
{
    return rt_buffer_fill(b, data_bytes, TU_GUARD, TU_GUARD_WORD) == RT_OK;
}

bool tu_guard_check(rt_buffer *b, size_t data_bytes)
{
    uint32_t w[TU_GUARD / 4];
    if (rt_buffer_read(b, data_bytes, w, TU_GUARD) != RT_OK)
        return false;
    for (int i = 0; i < TU_GUARD / 4; i++)
        if (w[i] != TU_GUARD_WORD)
            return false;
    return true;
}

int tu_run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool tu_chat_model(const char *template_src, const char *out_path)
{
    char err[512] = "";
    lm_gguf *g = NULL;
    lm_gguf_writer *w = NULL;
    if (lm_gguf_open(tu_model_path("gguf/stories260K.gguf"), &g, err, sizeof err) != LM_OK) goto fail;
    if (lm_gguf_writer_create(out_path, &w, err, sizeof err) != LM_OK) goto fail;
    for (int64_t i = 0; i < lm_gguf_n_kv(g); i++)
        if (lm_gguf_writer_copy_kv(w, g, i) != LM_OK) goto fail_w;
    if (template_src && lm_gguf_writer_set_str(w, "tokenizer.chat_template", template_src) != LM_OK) goto fail_w;
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        if (lm_gguf_tensor(g, i, &t) != LM_OK ||
            lm_gguf_writer_add_tensor(w, t.name, t.n_dims, t.ne, t.type, t.data, t.size) != LM_OK)
            goto fail_w;
    }
    lm_gguf_close(g);
    if (lm_gguf_writer_finish(w, err, sizeof err) != LM_OK) {
        fprintf(stderr, "tu_chat_model: %s\n", err);
        return false;
    }
    return true;
fail_w:
    snprintf(err, sizeof err, "%s", lm_gguf_writer_errmsg(w));
    lm_gguf_writer_abort(w);
fail:
    fprintf(stderr, "tu_chat_model: %s\n", err);
    lm_gguf_close(g);
    return false;
}

void tu_rmsnorm(double *o, const double *x, const double *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        o[i] = x[i] * r * w[i];
}

void tu_matvec(double *o, const double *W, const double *x, const double *b, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = b ? b[r] : 0;
        const double *w = W + (size_t)r * cols;
        for (int c = 0; c < cols; c++)
            s += w[c] * x[c];
        o[r] = s;
    }
}
