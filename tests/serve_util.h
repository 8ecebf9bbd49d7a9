/* serve_util.h: what the `vkllm serve` tests share (included by each, all static): the server as a
 * child process (--port 0; the port read from what it prints; stopped by SIGTERM, its stderr searched
 * for validation messages), and the golden texts `vkllm run` gives for the tests' prompts. */
#ifndef VKLLM_TEST_SERVE_UTIL_H
#define VKLLM_TEST_SERVE_UTIL_H

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bin;
static char model[4096], dir[64];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ the server process */

typedef struct server {
    pid_t pid;
    int port;
    int out_fd;
    char err_path[128];
} server;

static bool server_start(server *s, const char *name, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    snprintf(s->err_path, sizeof s->err_path, "%s/%s.stderr", dir, name);
    int p[2];
    if (pipe(p))
        return false;
    const char *argv[40];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "serve";
    argv[n++] = "-m";
    argv[n++] = model;
    argv[n++] = "--port";
    argv[n++] = "0";
    if (*tu_validation_flag())
        argv[n++] = tu_validation_flag();
    for (int i = 0; extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid < 0)
        return false;
    if (s->pid == 0) {
        dup2(p[1], 1);
        int e = open(s->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (e >= 0)
            dup2(e, 2);
        close(p[0]);
        close(p[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    s->out_fd = p[0];
    char buf[512];
    size_t got = 0;
    double end = now_ms() + 120000;
    while (now_ms() < end && got + 1 < sizeof buf) {
        struct pollfd pf = { .fd = s->out_fd, .events = POLLIN };
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t k = read(s->out_fd, buf + got, sizeof buf - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        buf[got] = 0;
        const char *at = strstr(buf, "listening on http://127.0.0.1:");
        if (at && strchr(at, '\n')) {
            s->port = atoi(at + strlen("listening on http://127.0.0.1:"));
            printf("test_serve: server %s on port %d\n", name, s->port);
            return s->port > 0;
        }
    }
    fprintf(stderr, "test_serve: server %s did not say where it listens; it printed: %.*s\n", name, (int)got, buf);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return false;
}

/* SIGTERM, then its exit status (-1: it had to be killed) */
static int server_stop(server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    double end = now_ms() + 30000;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid)
            break;
        if (now_ms() > end) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            close(s->out_fd);
            s->pid = 0;
            return -1;
        }
        usleep(20000);
    }
    close(s->out_fd);
    s->pid = 0;
    /* a validation message from the server fails the test */
    char *err = tu_read_file(s->err_path, NULL);
    if (err && strstr(err, "validation:")) {
        fprintf(stderr, "test_serve: the server's stderr has validation messages:\n%s\n", err);
        tu_failures++;
    }
    free(err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ------------------------------------------------------------------------ golden text */

/* What `vkllm run` generates (greedy) for the prompt in file `path`: its stdout less the prompt and
 * the final newline. */
static char *run_golden(const char *path, int n, bool parse_special)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' run -m '%s' -f '%s' -n %d --temp 0 %s 2>/dev/null", bin, model, path, n,
             parse_special ? "--parse-special" : "");
    static char out[1 << 16];
    if (tu_run(cmd, out, sizeof out))
        return NULL;
    size_t plen;
    char *prompt = tu_read_file(path, &plen);
    size_t olen = strlen(out);
    if (!prompt || olen < plen + 1 || memcmp(out, prompt, plen)) {
        free(prompt);
        return NULL;
    }
    free(prompt);
    return strndup(out + plen, olen - plen - 1);
}

static bool write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(s, 1, strlen(s), f) == strlen(s);
    return fclose(f) == 0 && ok;
}

static char *golden_completion, *golden_chat;
#define PROMPT "Once upon a time"
#define N_GEN 40
#define CHAT_BODY(extra) \
    "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"You tell stories.\"},{\"role\":\"user\"," \
    "\"content\":[{\"type\":\"text\",\"text\":\"Tell me \"},{\"type\":\"text\",\"text\":\"a story\"}]}]," \
    "\"temperature\":0,\"max_tokens\":30" extra "}"
#define COMPLETION_BODY(extra) "{\"prompt\":\"" PROMPT "\",\"temperature\":0,\"max_tokens\":40" extra "}"

static bool make_goldens(void)
{
    char p[128], conv[128], rendered[128];
    snprintf(p, sizeof p, "%s/prompt.txt", dir);
    snprintf(conv, sizeof conv, "%s/conv.json", dir);
    snprintf(rendered, sizeof rendered, "%s/rendered.txt", dir);
    if (!write_file(p, PROMPT) ||
        !write_file(conv, "[{\"role\":\"system\",\"content\":\"You tell stories.\"},{\"role\":\"user\",\"content\":"
                          "\"Tell me a story\"}]"))
        return false;
    golden_completion = run_golden(p, N_GEN, false);
    char cmd[8192], out[8];
    snprintf(cmd, sizeof cmd, "'%s' template -m '%s' --chat-template chatml -f '%s' --add-generation-prompt > '%s'", bin,
             model, conv, rendered);
    if (tu_run(cmd, out, sizeof out))
        return false;
    golden_chat = run_golden(rendered, 30, true);
    printf("test_serve: golden completion '%s'\ntest_serve: golden chat '%s'\n", golden_completion ? golden_completion : "?",
           golden_chat ? golden_chat : "?");
    return golden_completion && golden_chat && *golden_completion && *golden_chat;
}

#endif
