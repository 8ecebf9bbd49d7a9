/* cmd_tokenize.c: `vkllm tokenize` (placeholder until implemented). */
#include "app.h"

int cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("'tokenize' is not implemented yet");
}
