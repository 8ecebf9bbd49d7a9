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
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (!app_arg_str(argc, argv, &i, &out)) return 1;
        } else if (!strcmp(argv[i], "--seed")) {
            if (!app_arg_int(argc, argv, &i, &seed, 0, 0x7fffffffL)) return 1;
        } else if (argv[i][0] == '-') {
            usage(stderr);
            return app_fail("make-model: unknown option '%s'", argv[i]);
        } else if (!shape) shape = argv[i];
        else if (!type) type = argv[i];
        else {
            usage(stderr);
            return app_fail("make-model: unexpected '%s'", argv[i]);
        }
    }
    if (!shape || !type || !out) {
        usage(stderr);
        return app_fail("make-model: give SHAPE, TYPE and -o FILE");
    }
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
