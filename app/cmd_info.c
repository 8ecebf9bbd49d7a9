/* cmd_info.c: `vkllm info` (placeholder until implemented). */
#include "app.h"

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("'info' is not implemented yet");
}
