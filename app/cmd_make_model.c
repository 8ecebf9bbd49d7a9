/* cmd_make_model.c: `vkllm make-model SHAPE TYPE -o FILE.gguf`: a model of a published shape with seeded
 * random weights, written as GGUF, so another engine can run the very file `-m synthetic:SHAPE:TYPE`
 * benchmarks. Needs no device. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_model.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vkllm make-model SHAPE TYPE -o FILE.gguf [--seed N]\n  SHAPE: ");
    for (int i = 0; lm_synthetic_shape_at(i); i++) {
        const lm_synthetic_shape *s = lm_synthetic_shape_at(i);
        fprintf(f, "%s%s (%.0fM)", i ? ", " : "", s->name, lm_synthetic_n_params(s) / 1e6);
    }
    fprintf(f, "\n  TYPE: a weight type vkllm runs: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,\n"
               "        Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS (rows the block does not divide take quantize's fallback)\n"
               "  --seed N   the weights' seed (default %d, the one -m synthetic:SHAPE:TYPE uses)\n",
            APP_SYNTHETIC_SEED);
}

static void progress(void *user, float done)
{
    int *last = user, pct = (int)(done * 100.0f);
    if (pct != *last && isatty(2)) {
        *last = pct;
        fprintf(stderr, "\rwriting: %3d%%%s", pct, pct == 100 ? "\n" : "");
    }
}

int cmd_make_model(int argc, char **argv)
{
    const char *shape = NULL, *type = NULL, *out = NULL;
    long seed = APP_SYNTHETIC_SEED;
    bool operands = false, bad = false; /* operands: after "--" */
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!operands && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            return 0;
        } else if (!operands && !strcmp(a, "--")) {
            operands = true;
        } else if (!operands && app_opt(a, "-o", "--output")) {
            bad = !app_arg_str(argc, argv, &i, &out);
        } else if (!operands && app_opt(a, NULL, "--seed")) {
            bad = !app_arg_int(argc, argv, &i, &seed, 0, 0x7fffffffL);
        } else if (!operands && a[0] == '-' && a[1]) {
            return app_usage_fail(usage, "make-model: unknown option '%s'", a);
        } else if (!shape) {
            shape = a;
        } else if (!type) {
            type = a;
        } else {
            return app_usage_fail(usage, "make-model: unexpected '%s'", a);
        }
    }
    if (bad)
        return app_bad_args(usage);
    if (!shape || !type || !out)
        return app_usage_fail(usage, "make-model: give SHAPE, TYPE and -o FILE");
    char spec[256], err[1024];
    snprintf(spec, sizeof spec, "synthetic:%s:%s", shape, type);
    const lm_synthetic_shape *sh;
    int t;
    if (lm_synthetic_parse(spec, &sh, &t, err, sizeof err)) return app_fail("%s", err);
    int last = -1;
    double t0 = app_now();
    if (lm_synthetic_write(sh, t, (uint64_t)seed, out, progress, &last, err, sizeof err)) return app_fail("%s", err);
    fprintf(stderr, "vkllm: wrote %s: %s %s, %.1fM parameters, in %.1f s\n", out, sh->name, lm_gguf_type_name(t),
            lm_synthetic_n_params(sh) / 1e6, app_now() - t0);
    return 0;
}
