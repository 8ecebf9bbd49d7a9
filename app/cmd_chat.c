/* cmd_chat.c: `vkllm chat -m FILE`: a conversation with a model in the terminal (or, with --window, in
 * the chat window of chat_window.c).
 *
 * On a terminal: a prompt with line editing and history (libedit); the reply streams to stdout as it
 * comes, then its speed and how much of the prompt came from the cache go to stderr. Ctrl-C stops a
 * reply (the text so far stays in the conversation); Ctrl-C twice at the prompt, Ctrl-D or /exit leave.
 * With standard input not a terminal: one message per line, and only the replies are printed, one after
 * the other, each ended by a newline. Lines starting with '/' are commands in both modes ("//" sends a
 * message that starts with '/'). */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "app_model.h"
#include "chat_opts.h"
#include "conv_json.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm chat -m FILE [options]\n"
            "  -m, --model FILE       GGUF model (or a llama2.c checkpoint with --tokenizer)\n"
            "  -z, --tokenizer FILE   llama2.c tokenizer.bin for a llama2.c checkpoint\n"
            "      --system TEXT      system prompt\n"
            "      --chat-template NAME  a built-in template instead of the model's:");
    for (int i = 0; lm_chat_builtin_name(i); i++)
        fprintf(f, " %s", lm_chat_builtin_name(i));
    fprintf(f,
            "\n"
            "      --template-file FILE  a Jinja chat template from a file\n"
            "      --stop TEXT        end a reply at TEXT (repeatable, up to %d)\n"
            "  -n, --n-predict N      tokens per reply at most (default -1: until the model ends it or the\n"
            "                         context is full)\n"
            "  -c, --ctx-size N       context positions (default: the model's, at most 4096); older turns are\n"
            "                         left out when the conversation no longer fits\n"
            "  -b, --batch-size N     prompt tokens per prefill pass (default 256)\n",
            APP_CHAT_MAX_STOP);
    fputs(app_sampling_usage, f);
    fprintf(f,
            "      --kv-f32           keep the KV cache in f32 (twice the memory of the default f16)\n"
            "      --device N         Vulkan device (see `vkllm devices`; or VKLLM_DEVICE=N)\n"
            "      --validation       enable the Khronos validation layer\n"
            "      --window           chat in a window instead of the terminal\n"
            "      --script FILE      (--window) send the lines of FILE as messages, one by one\n"
            "      --screenshot FILE  (--window) save the window as a PNG after the last reply\n"
            "\n"
            "In the chat: /clear, /system TEXT, /save FILE, /load FILE, /regen, /help, /exit.\n"
            "Ctrl-C stops a reply; Ctrl-C twice at the prompt, or Ctrl-D, leaves. With standard input not a\n"
            "terminal, each line is a message and only the replies are printed.\n");
}

/* Parses the flags into o; returns -1 to go on, else the exit status. */
static int parse_flags(int argc, char **argv, app_chat_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = -1;
    o->dev.device = -1;
    lm_sampler_defaults(&o->sampling);
    int n_stop = 0;
    bool bad = false;
    int i = 1;
    for (; i < argc && !bad; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (app_opt(a, "-m", "--model")) {
            bad = !app_arg_str(argc, argv, &i, &o->model);
        } else if (app_opt(a, "-z", "--tokenizer")) {
            bad = !app_arg_str(argc, argv, &i, &o->tokenizer);
        } else if (app_opt(a, NULL, "--system")) {
            bad = !app_arg_str(argc, argv, &i, &o->system);
        } else if (app_opt(a, NULL, "--chat-template")) {
            bad = !app_arg_str(argc, argv, &i, &o->chat_template);
        } else if (app_opt(a, NULL, "--template-file")) {
            bad = !app_arg_str(argc, argv, &i, &o->template_file);
        } else if (app_opt(a, NULL, "--script")) {
            bad = !app_arg_str(argc, argv, &i, &o->script);
        } else if (app_opt(a, NULL, "--screenshot")) {
            bad = !app_arg_str(argc, argv, &i, &o->screenshot);
        } else if (app_opt_multi(a, NULL, "--stop")) {
            const char *s;
            if (!(bad = !app_arg_str(argc, argv, &i, &s))) {
                if (!*s)
                    return app_fail("chat: --stop wants a non-empty text");
                if (n_stop == APP_CHAT_MAX_STOP)
                    return app_fail("chat: at most %d --stop texts", APP_CHAT_MAX_STOP);
                o->stop[n_stop++] = s;
            }
        } else if (app_opt(a, "-n", "--n-predict")) {
            if (!(bad = !app_arg_int(argc, argv, &i, &v, -1, 1 << 30)))
                o->n_predict = (int32_t)v;
        } else if (app_opt(a, "-c", "--ctx-size")) {
            if (!(bad = !app_arg_int(argc, argv, &i, &v, 0, 1 << 24)))
                o->n_ctx = (int32_t)v;
        } else if (app_opt(a, "-b", "--batch-size")) {
            if (!(bad = !app_arg_int(argc, argv, &i, &v, 1, 1 << 16)))
                o->n_batch = (int32_t)v;
        } else if (app_sampling_flag("chat", argc, argv, &i, &o->sampling, &bad)) {
            continue;
        } else if (!strcmp(a, "--kv-f32")) {
            o->kv_f32 = true;
        } else if (!strcmp(a, "--kv-f16")) {
            o->kv_f32 = false;
        } else if (!strcmp(a, "--window")) {
            o->window = true;
        } else if (!app_device_flag(argc, argv, &i, &o->dev, &bad)) {
            return app_usage_fail(usage, a[0] == '-' && a[1] ? "chat: unknown option '%s'"
                                                              : "chat: unexpected argument '%s'", a);
        }
    }
    if (bad)
        return app_bad_args(usage);
    if (i < argc)
        return app_usage_fail(usage, "chat: unexpected argument '%s'", argv[i]);
    if (o->chat_template && o->template_file)
        return app_usage_fail(usage, "chat: --chat-template and --template-file are two templates; give one");
    if (o->chat_template && !lm_chat_builtin(o->chat_template)) {
        app_fail("chat: no built-in template '%s'; there are:", o->chat_template);
        for (int i = 0; lm_chat_builtin_name(i); i++)
            fprintf(stderr, " %s", lm_chat_builtin_name(i));
        fputc('\n', stderr);
        return 1;
    }
    if (!o->window && (o->script || o->screenshot))
        return app_usage_fail(usage, "chat: --script and --screenshot are for the window (--window)");
    char msg[256];
    if (lm_sampler_params_check(&o->sampling, msg, sizeof msg))
        return app_fail("chat: %s", msg);
    if (!o->window && !o->model)
        return app_usage_fail(usage, "chat: -m FILE is required");
    return -1;
}

/* ------------------------------------------------------------------------ the terminal chat */

static volatile sig_atomic_t sigint_seen;
_Static_assert(_Generic((sig_atomic_t)0, int: 1, default: 0), "lm_chat_gen.abort points to an int");

static void on_sigint(int sig)
{
    (void)sig;
    sigint_seen = 1;
}

typedef struct term_chat {
    app_model am;
    lm_session *s;
    lm_chat *c;
    const app_chat_opts *o;
    lm_sampler_params sampling; /* o's, with a random seed resolved */
    bool tty;             /* standard input is a terminal */
    int32_t dropped;      /* the last reply's count, to tell when more turns were left out */
    /* the reply on stdout: leading white space skipped, trailing white space held back */
    bool started;
    char *pending;
    size_t n_pending, cap_pending;
} term_chat;

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
}

static bool on_text(void *user, const char *text, size_t len)
{
    term_chat *t = user;
    for (size_t i = 0; i < len; i++) {
        if (is_space(text[i])) {
            if (!t->started)
                continue;
            if (t->n_pending == t->cap_pending) {
                size_t cap = t->cap_pending ? t->cap_pending * 2 : 64;
                char *p = realloc(t->pending, cap);
                if (!p)
                    continue; /* out of memory: a space less on screen */
                t->pending = p;
                t->cap_pending = cap;
            }
            t->pending[t->n_pending++] = text[i];
            continue;
        }
        size_t j = i;
        while (j < len && !is_space(text[j]))
            j++;
        if (t->n_pending)
            fwrite(t->pending, 1, t->n_pending, stdout);
        t->n_pending = 0;
        fwrite(text + i, 1, j - i, stdout);
        t->started = true;
        i = j - 1;
    }
    fflush(stdout);
    return true;
}

/* Generates a reply to the conversation and shows it. false on an error (printed). */
static bool reply(term_chat *t)
{
    lm_chat_gen g = {
        .sampling = &t->sampling,
        .max_tokens = t->o->n_predict,
        .stop = t->o->stop[0] ? t->o->stop : NULL,
        .on_text = on_text,
        .user = t,
        .abort = &sigint_seen,
    };
    lm_chat_stats st;
    char err[1024];
    t->started = false;
    t->n_pending = 0;
    sigint_seen = 0;
    int rc = lm_chat_reply(t->c, &g, &st, err, sizeof err);
    sigint_seen = 0;
    if (rc) {
        if (t->started)
            fputc('\n', stdout);
        fflush(stdout);
        app_fail("%s", err);
        return false;
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (!t->tty)
        return true;
    if (st.finish == LM_CHAT_STOP_ABORT)
        fprintf(stderr, "[stopped]\n");
    else if (st.finish == LM_CHAT_STOP_CONTEXT)
        fprintf(stderr, "[the context is full: the reply was cut]\n");
    if (st.dropped > t->dropped)
        fprintf(stderr, "[%d older message%s left out to fit the context of %d positions]\n", st.dropped,
                st.dropped == 1 ? "" : "s", lm_session_n_ctx(t->s));
    t->dropped = st.dropped;
    fprintf(stderr, "[%lld tokens, %.1f tok/s; prompt: %lld new, %lld reused]\n", (long long)st.reply_tokens,
            st.reply_s > 0 ? st.reply_tokens / st.reply_s : 0.0, (long long)st.evaluated, (long long)st.reused);
    return true;
}

static void help(void)
{
    fprintf(stderr,
            "  /clear         start a new conversation (the system prompt stays)\n"
            "  /system TEXT   set the system prompt (/system alone removes it)\n"
            "  /save FILE     write the conversation to a JSON file\n"
            "  /load FILE     read a conversation from a JSON file\n"
            "  /regen         drop the last reply and generate it again\n"
            "  /help          this list\n"
            "  /exit          leave (also Ctrl-D, or Ctrl-C twice at the prompt)\n"
            "  Ctrl-C stops a reply. A message that starts with '/' is written '//...'.\n");
}

/* Runs a /command. Returns false when it failed (in piped mode the chat then ends) and sets *quit
 * for /exit. */
static bool command(term_chat *t, const char *line, bool *quit)
{
    const char *arg = line + strcspn(line, " \t");
    size_t nlen = (size_t)(arg - line);
    while (*arg == ' ' || *arg == '\t')
        arg++;
    char err[1024];
#define IS(name) (nlen == strlen(name) && !strncmp(line, name, nlen))
    if (IS("/exit") || IS("/quit")) {
        *quit = true;
    } else if (IS("/help")) {
        help();
    } else if (IS("/clear")) {
        const char *r0 = lm_chat_role(t->c, 0);
        lm_chat_truncate(t->c, r0 && !strcmp(r0, "system") ? 1 : 0);
        t->dropped = 0;
        if (t->tty)
            fprintf(stderr, "[a new conversation]\n");
    } else if (IS("/system")) {
        if (lm_chat_set_system(t->c, *arg ? arg : NULL, err, sizeof err)) {
            app_fail("%s", err);
            return false;
        }
        if (t->tty)
            fprintf(stderr, *arg ? "[system prompt set]\n" : "[system prompt removed]\n");
    } else if (IS("/save") || IS("/load")) {
        if (!*arg) {
            app_fail("%.5s wants a file name", line);
            return false;
        }
        bool ok = IS("/save") ? conv_save_chat(arg, t->c, err, sizeof err) : conv_load_chat(arg, t->c, err, sizeof err);
        if (!ok) {
            app_fail("%s", err);
            return false;
        }
        if (IS("/load"))
            t->dropped = 0;
        if (t->tty)
            fprintf(stderr, "[%s %d messages %s %s]\n", IS("/save") ? "saved" : "loaded", lm_chat_n_messages(t->c),
                    IS("/save") ? "to" : "from", arg);
    } else if (IS("/regen")) {
        int n = lm_chat_n_messages(t->c);
        const char *last = lm_chat_role(t->c, n - 1);
        if (last && !strcmp(last, "assistant"))
            lm_chat_truncate(t->c, --n);
        last = lm_chat_role(t->c, n - 1);
        if (!last || strcmp(last, "user")) {
            app_fail("/regen: no message to reply to");
            return false;
        }
        return reply(t);
    } else {
        app_fail("unknown command '%.*s' (/help lists them; '//' starts a message with '/')", (int)nlen, line);
        return false;
    }
#undef IS
    return true;
}

/* One line of input: a command or a message. false when it failed. */
static bool handle_line(term_chat *t, const char *line, bool *quit)
{
    if (line[0] == '/' && line[1] != '/')
        return command(t, line, quit);
    if (line[0] == '/')
        line++;
    char err[1024];
    int n = lm_chat_n_messages(t->c);
    if (lm_chat_add(t->c, "user", line, strlen(line), err, sizeof err)) {
        app_fail("%s", err);
        return false;
    }
    if (reply(t))
        return true;
    lm_chat_truncate(t->c, n); /* the message that could not be answered */
    return false;
}

static int run_tty(term_chat *t)
{
    const lm_hparams *hp = lm_model_hparams(t->am.model);
    fprintf(stderr, "vkllm chat: %s, context %d positions. /help for commands; Ctrl-C stops a reply, Ctrl-D leaves.\n",
            hp->name, lm_session_n_ctx(t->s));
    /* the line editor reads characters by the locale: UTF-8, so that Chinese, accents and emoji can be
     * typed and erased (only LC_CTYPE: numbers keep printing with a '.') */
    const char *loc = setlocale(LC_CTYPE, "");
    if (!loc || strcmp(nl_langinfo(CODESET), "UTF-8"))
        if (!setlocale(LC_CTYPE, "C.UTF-8"))
            fprintf(stderr, "vkllm: no UTF-8 locale: characters outside ASCII may not be typed at the prompt\n");
    rl_initialize();
    bool quit = false;
    int interrupts = 0;
    sigint_seen = 0;
    while (!quit) {
        char *line = readline("> ");
        if (!line) {
            if (!sigint_seen)
                break; /* Ctrl-D */
            sigint_seen = 0;
            if (++interrupts >= 2)
                break;
            fprintf(stderr, "\n[Ctrl-C again or Ctrl-D to leave]\n");
            continue;
        }
        sigint_seen = 0; /* a Ctrl-C that came while a line was typed counts for nothing */
        interrupts = 0;
        size_t n = strlen(line);
        while (n && is_space(line[n - 1]))
            line[--n] = 0;
        if (n) {
            add_history(line);
            handle_line(t, line, &quit);
        }
        free(line);
    }
    fputc('\n', stderr);
    return 0;
}

static int run_piped(term_chat *t)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool quit = false;
    int status = 0;
    while (!quit && (n = getline(&line, &cap, stdin)) >= 0) {
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (!n)
            continue;
        if (!handle_line(t, line, &quit)) {
            status = 1;
            break;
        }
    }
    free(line);
    return status;
}

static int terminal_chat(const app_chat_opts *o)
{
    term_chat t = { .o = o, .tty = isatty(0) };
    int status = 1;
    char *tmpl_text = NULL;
    char err[1024];
    const char *tmpl = NULL;
    if (o->template_file) {
        if (!(tmpl_text = app_read_text(o->template_file, NULL)))
            return 1;
        tmpl = tmpl_text;
    } else if (o->chat_template) {
        tmpl = lm_chat_builtin(o->chat_template);
    }
    /* on a terminal Ctrl-C stops a reply; a pipe keeps the default (Ctrl-C ends the process) */
    if (t.tty) {
        struct sigaction sa = { 0 };
        sa.sa_handler = on_sigint;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    if (app_model_open(&t.am, o->model, o->tokenizer, &o->dev))
        goto out;
    if (lm_model_is_encoder(t.am.model)) {
        app_fail("chat: %s is an encoder model: it computes embeddings (`vkllm embed`) and cannot chat", o->model);
        goto out;
    }
    lm_session_opts so = { .n_ctx = o->n_ctx, .n_batch = o->n_batch, .kv_f32 = o->kv_f32 };
    if (lm_session_create(t.am.model, &so, &t.s, err, sizeof err)) {
        app_fail("%s", err);
        goto out;
    }
    if (!tmpl && !lm_model_chat_template(t.am.model, NULL) && t.tty)
        fprintf(stderr, "vkllm: the model has no chat template: using chatml (--chat-template NAME to choose)\n");
    lm_chat_opts co = { .template_src = tmpl };
    if (lm_chat_create(t.am.model, t.s, &co, &t.c, err, sizeof err)) {
        app_fail("%s", err);
        goto out;
    }
    if (o->system && lm_chat_set_system(t.c, o->system, err, sizeof err)) {
        app_fail("--system: %s", err);
        goto out;
    }
    t.sampling = o->sampling;
    if (t.sampling.seed == LM_SAMPLER_SEED_RANDOM) {
        /* the sampler picks one; it is printed so that the chat can be replayed */
        lm_sampler *pick = NULL;
        if (lm_sampler_create(&t.sampling, lm_model_hparams(t.am.model)->n_vocab, &pick, err, sizeof err)) {
            app_fail("sampling: %s", err);
            goto out;
        }
        t.sampling.seed = lm_sampler_seed(pick);
        lm_sampler_free(pick);
        fprintf(stderr, "vkllm: seed %llu (pass --seed %llu to replay this chat)\n",
                (unsigned long long)t.sampling.seed, (unsigned long long)t.sampling.seed);
    }
    status = t.tty ? run_tty(&t) : run_piped(&t);
out:
    if (t.tty)
        signal(SIGINT, SIG_DFL);
    free(t.pending);
    free(tmpl_text);
    lm_chat_free(t.c);
    lm_session_free(t.s);
    app_model_close(&t.am);
    return status;
}

int cmd_chat(int argc, char **argv)
{
    app_chat_opts o;
    int rc = parse_flags(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.window)
        return chat_window_run(&o);
    return terminal_chat(&o);
}
