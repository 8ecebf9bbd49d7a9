/* cmd_quantize.c: `vkllm quantize IN.gguf OUT.gguf TYPE [--allow-requantize]`: a GGUF model into another
 * weight format, by llama-quantize's rules (models/quantize.c). Needs no device. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app_model.h"

static const char *const type_names[] = { "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                                          "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
                                          "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS" };
#define N_TYPE_NAMES (sizeof type_names / sizeof type_names[0])

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm quantize IN.gguf OUT.gguf TYPE [--allow-requantize]\n"
            "Writes IN's model to OUT with its weight matrices in TYPE, as llama-quantize does (no importance\n"
            "matrix): the _S/_M/_L mixes keep output.weight and some attn_v / ffn_down layers at higher\n"
            "precision; norms and other 1-D tensors are copied. All metadata is copied and general.file_type\n"
            "set. OUT appears only once it is complete.\n"
            "  TYPE                 one of (case-insensitive):");
    for (size_t i = 0; i < N_TYPE_NAMES; i++)
        fprintf(f, "%s%s", i % 10 ? " " : "\n                         ", type_names[i]);
    fprintf(f, "\n"
               "  --allow-requantize   also convert tensors that are already quantised (loses precision)\n");
}

typedef struct progress {
    bool tty;
} progress;

static void on_tensor(void *user, int64_t done, int64_t total, const char *tensor, int type)
{
    const progress *p = user;
    const char *tn = lm_gguf_type_name(type) ? lm_gguf_type_name(type) : "?";
    if (p->tty)
        fprintf(stderr, "\r[%4lld/%4lld] %-40.40s %-7s", (long long)done, (long long)total, tensor, tn);
    else
        fprintf(stderr, "[%4lld/%4lld] %s %s\n", (long long)done, (long long)total, tensor, tn);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double file_mib(const char *path)
{
    struct stat st;
    return stat(path, &st) ? 0 : (double)st.st_size / (1024.0 * 1024.0);
}

/* "Q4_K x6, Q6_K x3, F32 x3": the tensor types of a GGUF file, most frequent first. */
static void print_types(const char *path)
{
    lm_gguf *g;
    char err[256];
    int64_t count[LM_GGML_TYPE_COUNT] = { 0 };
    if (lm_gguf_open(path, &g, err, sizeof err))
        return;
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        count[t.type]++;
    }
    lm_gguf_close(g);
    fprintf(stderr, "tensor types: ");
    for (bool first = true;;) {
        int best = -1;
        for (int t = 0; t < LM_GGML_TYPE_COUNT; t++)
            if (count[t] && (best < 0 || count[t] > count[best]))
                best = t;
        if (best < 0)
            break;
        fprintf(stderr, "%s%s x%lld", first ? "" : ", ", lm_gguf_type_name(best), (long long)count[best]);
        count[best] = 0;
        first = false;
    }
    fputc('\n', stderr);
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3] = { NULL, NULL, NULL };
    int n_pos = 0;
    bool requant = false;
    bool operands = false; /* after "--" */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!operands && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            return 0;
        } else if (!operands && !strcmp(a, "--")) {
            operands = true;
        } else if (!operands && !strcmp(a, "--allow-requantize")) {
            requant = true;
        } else if (!operands && a[0] == '-' && a[1]) {
            return app_usage_fail(usage, "quantize: unknown option '%s'", a);
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            return app_usage_fail(usage, "quantize: too many arguments ('%s')", a);
        }
    }
    if (n_pos < 3)
        return app_usage_fail(usage, "quantize: give the input file, the output file and the type");
    const char *in = pos[0], *out = pos[1], *type = pos[2];
    int ftype = lm_ftype_from_name(type);
    if (ftype < 0)
        return app_fail("quantize: unknown type '%s' (`vkllm quantize --help` lists them)", type);

    if (app_file_expect(in, APP_FILE_GGUF, "the input")) /* also: a FIFO would block the reader's open */
        return 1;
    progress p = { .tty = isatty(2) };
    lm_quantize_opts o = { .ftype = ftype, .allow_requantize = requant, .progress = on_tensor, .user = &p };
    char err[1024] = "";
    double t0 = now_s();
    int rc = lm_quantize_file(in, out, &o, err, sizeof err);
    if (p.tty)
        fputc('\n', stderr);
    if (rc)
        return app_fail("%s", err[0] ? err : lm_status_string(rc));
    double in_mib = file_mib(in), out_mib = file_mib(out);
    fprintf(stderr, "%s (%.2f MiB) -> %s (%.2f MiB, %s, %.1f%%) in %.2f s\n", in, in_mib, out, out_mib,
            lm_ftype_name(ftype), in_mib > 0 ? 100.0 * out_mib / in_mib : 0.0, now_s() - t0);
    print_types(out);
    return 0;
}
