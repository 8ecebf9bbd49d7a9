/* cmd_run.c: `vkllm run` (placeholder until implemented). */
#include "app.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("'run' is not implemented yet");
}
