/* app_profile.c: `--profile` of run and bench: one decode step's GPU time, summed by kernel. */
#include <string.h>

#include "app.h"
#include "lm.h"

#define MAX_KERNELS 48

typedef struct {
    int n;
    struct { const char *kernel; int count; double ns, bytes, flops; } k[MAX_KERNELS];
    double total, bytes, flops;
} kernel_sums;

static void add(void *user, const char *kernel, double ns, double bytes, double flops)
{
    kernel_sums *p = user;
    int i = 0;
    while (i < p->n && strcmp(p->k[i].kernel, kernel))
        i++;
    if (i == p->n) {
        if (p->n == MAX_KERNELS)
            return;
        p->k[p->n++].kernel = kernel;
    }
    p->k[i].count++;
    p->k[i].ns += ns;
    p->k[i].bytes += bytes;
    p->k[i].flops += flops;
    p->total += ns;
    p->bytes += bytes;
    p->flops += flops;
}

static void rates(double bytes, double flops, double ns, double copy_gbs, double fma_gflops)
{
    double gbs = ns > 0 ? bytes / ns : 0, gfl = ns > 0 ? flops / ns : 0;
    fprintf(stderr, " %9.2f", gbs);
    if (copy_gbs > 0)
        fprintf(stderr, " %5.0f%%", 100.0 * gbs / copy_gbs);
    if (flops > 0)
        fprintf(stderr, " %9.2f", gfl);
    else
        fprintf(stderr, " %9s", "-");
    if (fma_gflops > 0)
        flops > 0 ? fprintf(stderr, " %5.0f%%", 100.0 * gfl / fma_gflops) : fprintf(stderr, " %6s", "-");
    fputc('\n', stderr);
}

void app_profile_print(const struct lm_session *s, bool prefill, const char *heading, double copy_gbs,
                       double fma_gflops)
{
    kernel_sums p = { 0 };
    int n = lm_session_profile(s, prefill, add, &p);
    if (!n) {
        fprintf(stderr, "vkllm: no GPU timings (the device's queue has no timestamps, or no %s)\n",
                prefill ? "prompt was evaluated" : "token was decoded");
        return;
    }
    int commands, barriers, n_layers = lm_model_hparams(lm_session_model(s))->n_layers;
    lm_session_counts(s, prefill, &commands, &barriers);
    fprintf(stderr, "vkllm: %s: %.3f ms in %d dispatches (recorded: %d commands, %d barriers; %.1f and %.1f per layer)\n",
            heading, p.total / 1e6, n, commands, barriers, (double)commands / n_layers, (double)barriers / n_layers);
    fprintf(stderr, "  %-18s %6s %12s %7s %9s%s %9s%s\n", "kernel", "count", "total us", "share", "GB/s",
            copy_gbs > 0 ? "  %bw" : "", "GFLOP/s", fma_gflops > 0 ? "  %fma" : "");
    for (int i = 0; i < p.n; i++) {
        fprintf(stderr, "  %-18s %6d %12.1f %6.1f%%", p.k[i].kernel, p.k[i].count, p.k[i].ns / 1e3,
                100.0 * p.k[i].ns / p.total);
        rates(p.k[i].bytes, p.k[i].flops, p.k[i].ns, copy_gbs, fma_gflops);
    }
    fprintf(stderr, "  %-18s %6d %12.1f %6.1f%%", "all", n, p.total / 1e3, 100.0);
    rates(p.bytes, p.flops, p.total, copy_gbs, fma_gflops);
    if (copy_gbs > 0)
        fprintf(stderr, "  (device calibration: copy %.2f GB/s, fma %.2f GFLOP/s; bytes are what each dispatch "
                        "binds: attention counts its whole KV cache)\n",
                copy_gbs, fma_gflops);
}