/* cmd_bench.c: `vkllm bench <what>`: benchmarks. `bench kernels` times each kernel (app/bench_kernels.c). */
#include <string.h>

#include "app.h"
#include "bench_kernels.h"
#include "bench_shader.h"
#include "bench_model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm bench -m FILE [-p N,...] [-n N,...] [-b N,...] [-d N,...] [-r N] [-o md|csv|json]\n"
            "       vkllm bench kernels [--json] [--filter SUBSTRING] [--iters N] [--quick] [--device N]\n"
            "       vkllm bench shader FILE.comp [--buffer SIZE[:INIT]]... [--push T:V,...] [--groups X,Y,Z] ...\n"
            "\n"
            "bench shader: compiles and times a GLSL compute shader of yours (`vkllm bench shader --help`).\n"
            "\n"
            "bench -m: prompt processing and text generation speed of a model, as llama-bench (`vkllm bench -m\n"
            "FILE --help` for its options).\n"
            "\n"
            "bench kernels: times each kernel at the sizes of Llama models of 135M, 1B and 7B parameters (matrix products\n"
            "for one row, decode, and 512 rows, prefill, with f32 and f16 weights, and decode with every block\n"
            "format (bf16, q8_0, q4_0 ... iq4_xs) at the 1B and 7B shapes; rmsnorm, softmax, rope,\n"
            "attention against a KV cache, get_rows, swiglu) with GPU timestamps: warm-up, then the median of\n"
            "N runs. Two calibration kernels first measure the device's own copy bandwidth and FMA rate;\n"
            "each result shows its GB/s and GFLOP/s and their fraction of those.\n"
            "\n"
            "  --json            one JSON object instead of the table\n"
            "  --filter S        only the cases whose name contains S (e.g. matmul, f16, m=1, 7B)\n"
            "  --iters N         timed runs per case (default 10; a case stops early after ~1 s)\n"
            "  --quick           small sizes only (seconds, even on a CPU driver)\n"
            "  --device N        the Vulkan device (see `vkllm devices`); also VKLLM_DEVICE=N\n"
            "  --validation      with the Khronos validation layer\n");
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (argv[1][0] == '-' && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))
        return bench_model(argc, argv); /* bench -m FILE ...: llama-bench's tests */
    if (!strcmp(argv[1], "shader"))
        return bench_shader(argc - 1, argv + 1);
    if (strcmp(argv[1], "kernels")) {
        app_fail("bench: unknown benchmark '%s'", argv[1]);
        usage(stderr);
        return 2;
    }
    bench_opts o = { .dev = { .device = -1 } };
    bool bad = false;
    for (int i = 2; i < argc; i++) {
        long v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json"))
            o.json = true;
        else if (!strcmp(argv[i], "--quick"))
            o.quick = true;
        else if (app_opt(argv[i], NULL, "--filter")) {
            if (!app_arg_str(argc, argv, &i, &o.filter))
                return app_bad_args(usage);
        } else if (app_opt(argv[i], NULL, "--iters")) {
            if (!app_arg_int(argc, argv, &i, &v, 1, 100000))
                return app_bad_args(usage);
            o.iters = (int)v;
        } else if (!app_device_flag(argc, argv, &i, &o.dev, &bad)) {
            return app_usage_fail(usage, "bench: unknown option '%s'", argv[i]);
        }
        if (bad)
            return app_bad_args(usage);
    }
    return bench_kernels(&o);
}
