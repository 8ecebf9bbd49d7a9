/* fuzz_conv.c: the conversation JSON loader of `vkllm chat` /load, the chat window and `vkllm template`
 * (app/conv_json.c) on any text; what it accepts is saved and read back the same. */
#include "conv_json.h"

#include "app.h"

#include "fuzz_util.h"

static char save_path[64];

/* app/main.c's, which the target leaves out: the loader's messages are not printed here */
int app_fail(const char *fmt, ...)
{
    (void)fmt;
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(save_path, sizeof save_path, "/tmp/fuzz_conv.%d.json", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    conv c = { 0 };
    if (!conv_parse((const char *)data, size, "fuzz", &c, err, sizeof err)) {
        if (c.n || c.msgs)
            abort(); /* empty on failure */
        return 0;
    }
    for (int i = 0; i < c.n; i++)
        if (!c.msgs[i].role || !c.msgs[i].content || c.msgs[i].content[c.msgs[i].len] != '\0')
            abort();
    /* a round trip now and then (it writes a file) */
    if (size % 16 == 0 && c.n) {
        conv back = { 0 };
        if (!conv_save(save_path, c.msgs, c.n, err, sizeof err) || !conv_load(save_path, &back, err, sizeof err))
            abort();
        /* a content with a NUL is cut there when read back (the rule of every text file) */
        if (back.n != c.n)
            abort();
        for (int i = 0; i < c.n; i++)
            if (strcmp(back.msgs[i].role, c.msgs[i].role) ||
                (!memchr(c.msgs[i].content, 0, c.msgs[i].len) &&
                 (back.msgs[i].len != c.msgs[i].len || memcmp(back.msgs[i].content, c.msgs[i].content, c.msgs[i].len))))
                abort();
        conv_free(&back);
        unlink(save_path);
    }
    conv_free(&c);
    return 0;
}
