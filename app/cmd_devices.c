/* cmd_devices.c: `vkllm devices` (placeholder until implemented). */
#include "app.h"

int cmd_devices(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("'devices' is not implemented yet");
}
