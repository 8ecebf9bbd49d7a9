/* chat_opts.h: the options of `vkllm chat`, shared by the terminal chat (cmd_chat.c) and the window
 * (chat_window*.c). cmd_chat.c parses the flags; with --window it hands them to chat_window_run(). */
#ifndef VKLLM_CHAT_OPTS_H
#define VKLLM_CHAT_OPTS_H

#include "app.h"
#include "lm.h"

#define APP_CHAT_MAX_STOP 16

typedef struct app_chat_opts {
    const char *model;          /* -m FILE (the window may start without one) */
    const char *tokenizer;      /* -z FILE: llama2.c tokenizer */
    const char *system;         /* --system TEXT */
    const char *chat_template;  /* --chat-template NAME: a built-in (lm_chat_builtin) */
    const char *template_file;  /* --template-file FILE */
    const char *script;         /* --script FILE (window): messages to send, one per line */
    const char *screenshot;     /* --screenshot FILE.png (window): saved after the last reply */
    const char *stop[APP_CHAT_MAX_STOP + 1]; /* --stop TEXT (repeatable); NULL-terminated */
    lm_sampler_params sampling; /* --temp --top-k --top-p --min-p --repeat-penalty ... --seed --sampler */
    int32_t n_ctx;              /* -c */
    int32_t n_batch;            /* -b */
    int32_t n_predict;          /* -n: reply length bound, -1 none */
    bool kv_f32;                /* --kv-f32 */
    bool window;                /* --window */
    app_device_opts dev;        /* --device, --validation */
} app_chat_opts;

/* The window: runs until it is closed; returns the process exit status. (chat_window.c) */
int chat_window_run(const app_chat_opts *o);

#endif
