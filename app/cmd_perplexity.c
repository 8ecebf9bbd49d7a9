/* cmd_perplexity.c: `vkllm perplexity` (placeholder until implemented). */
#include "app.h"

int cmd_perplexity(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("'perplexity' is not implemented yet");
}
