/* cmd_bench.c: `vkllm bench` (placeholder until implemented). */
#include "app.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("'bench' is not implemented yet");
}
