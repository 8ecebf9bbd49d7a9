/* app_profile.c: `--profile` of run and bench: one decode step's GPU time, summed by kernel. */
#include <string.h>

#include "app.h"
#include "lm.h"

#define MAX_KERNELS 48

typedef struct {
    int n;
    struct { const char *kernel; int count; double ns; } k[MAX_KERNELS];
    double total;
} kernel_sums;

static void add(void *user, const char *kernel, double ns)
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
    p->total += ns;
}

void app_profile_print(const struct lm_session *s, const char *heading)
{
    kernel_sums p = { 0 };
    int n = lm_session_step_timings(s, add, &p);
    if (!n) {
        fprintf(stderr, "vkllm: no GPU timings (the device's queue has no timestamps, or no token was decoded)\n");
        return;
    }
    fprintf(stderr, "vkllm: %s: %.3f ms in %d dispatches\n", heading, p.total / 1e6, n);
    fprintf(stderr, "  %-18s %6s %12s %7s\n", "kernel", "count", "total us", "share");
    for (int i = 0; i < p.n; i++)
        fprintf(stderr, "  %-18s %6d %12.1f %6.1f%%\n", p.k[i].kernel, p.k[i].count, p.k[i].ns / 1e3,
                100.0 * p.k[i].ns / p.total);
}
