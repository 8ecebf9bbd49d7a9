/* cmd_chat.c: `vkllm chat` (stub: being written). */
#include "chat_opts.h"

int cmd_chat(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return app_fail("chat: not built yet");
}
