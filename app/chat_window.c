/* chat_window.c: `vkllm chat --window` (stub: being written). */
#include "chat_opts.h"

int chat_window_run(const app_chat_opts *o)
{
    (void)o;
    return app_fail("chat --window: not built yet");
}
