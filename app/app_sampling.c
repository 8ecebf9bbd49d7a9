/* app_sampling.c: the sampling flags that `vkllm run` and `vkllm chat` share (app.h). */
#include "app.h"
#include "lm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char app_sampling_usage[] =
    "      --temp T           temperature (default 0.8; 0: greedy)\n"
    "      --top-k N          (default 40; 0: off)\n"
    "      --top-p P          (default 0.95; 1: off)\n"
    "      --min-p P          (default 0.05; 0: off)\n"
    "      --repeat-penalty F (default 1.0: off)\n"
    "      --repeat-last-n N  tokens the penalty looks back over (default 64)\n"
    "  -s, --seed N           sampling seed (default: fixed, so runs repeat; -1: random, printed)\n"
    "      --sampler NAME     llama.cpp (the default chain) or llama2c (llama2.c's run.c sampler)\n";

bool app_sampling_flag(const char *cmd, int argc, char **argv, int *i, lm_sampler_params *p, bool *bad)
{
    const char *a = argv[*i];
    double d;
    long l;
    if (app_opt(a, NULL, "--temp")) {
        if (!app_arg_float(argc, argv, i, &d, 0, 100))
            *bad = true;
        else
            p->temp = (float)d;
    } else if (app_opt(a, NULL, "--top-k")) {
        if (!app_arg_int(argc, argv, i, &l, 0, 1 << 24))
            *bad = true;
        else
            p->top_k = (int32_t)l;
    } else if (app_opt(a, NULL, "--top-p")) {
        if (!app_arg_float(argc, argv, i, &d, 0, 1))
            *bad = true;
        else
            p->top_p = (float)d;
    } else if (app_opt(a, NULL, "--min-p")) {
        if (!app_arg_float(argc, argv, i, &d, 0, 1))
            *bad = true;
        else
            p->min_p = (float)d;
    } else if (app_opt(a, NULL, "--repeat-penalty")) {
        if (!app_arg_float(argc, argv, i, &d, 0, 100))
            *bad = true;
        else
            p->repeat_penalty = (float)d;
    } else if (app_opt(a, NULL, "--repeat-last-n")) {
        if (!app_arg_int(argc, argv, i, &l, 0, 1 << 20))
            *bad = true;
        else
            p->repeat_last_n = (int32_t)l;
    } else if (app_opt(a, "-s", "--seed")) {
        /* any 64-bit seed (a printed random seed must replay), or -1 for a random one */
        const char *t;
        if (!app_arg_str(argc, argv, i, &t)) {
            *bad = true;
        } else if (!strcmp(t, "-1")) {
            p->seed = LM_SAMPLER_SEED_RANDOM;
        } else {
            char *end;
            errno = 0;
            unsigned long long x = strtoull(t, &end, 10);
            if (!*t || *end || errno || *t == '-' || x == LM_SAMPLER_SEED_RANDOM) {
                app_fail("%s: --seed wants an integer in [0, 2^64 - 2] or -1, not '%s'", cmd, t);
                *bad = true;
            } else {
                p->seed = (uint64_t)x;
            }
        }
    } else if (app_opt(a, NULL, "--sampler")) {
        const char *name;
        if (!app_arg_str(argc, argv, i, &name)) {
            *bad = true;
        } else if (!strcmp(name, "llama2c")) {
            p->llama2c = true;
        } else if (!strcmp(name, "llama.cpp") || !strcmp(name, "default")) {
            p->llama2c = false;
        } else {
            app_fail("%s: --sampler wants llama.cpp or llama2c, not '%s'", cmd, name);
            *bad = true;
        }
    } else {
        return false;
    }
    return true;
}
