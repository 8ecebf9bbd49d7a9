/* cmd_template.c: `vkllm template` (stub: being written). */
#include "app.h"

int cmd_template(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("template: not built yet");
}
