/* bench_kernels.h: `vkllm bench kernels`, the kernel benchmark (app/bench_kernels.c), called by
 * app/cmd_bench.c. */
#ifndef VKLLM_BENCH_KERNELS_H
#define VKLLM_BENCH_KERNELS_H

#include <stdbool.h>

#include "app.h"
#include "rt.h"

typedef struct bench_opts {
    app_device_opts dev;
    const char *filter; /* run only the cases whose name contains this; NULL: all */
    int iters;          /* timed runs per case (median); 0: the default */
    bool quick;         /* small sizes, for tests */
    bool json;
} bench_opts;

/* Calibrates the device, runs every case, prints a table or JSON; returns the exit status. */
int bench_kernels(const bench_opts *o);

/* The two calibration kernels alone (quick sizes) on ctx, which must have profiling on: the device's
 * copy bandwidth (GB/s, read + written) and FMA rate (GFLOP/s). Prints why and returns 1 on failure. */
int bench_calibrate(rt_ctx *ctx, double *copy_gbs, double *fma_gflops);

#endif
