/* test_cli_chat: `vkllm chat` ($VKLLM_BIN) on stories260K with a chat template.
 *
 * Through a pseudo-terminal (the chat's terminal mode): a message is answered; Ctrl-C (byte 0x03, which
 * the terminal turns into SIGINT) in the middle of a long reply stops it, and the chat answers the next
 * message; /save writes the conversation; Ctrl-C at the prompt says how to leave, and a second one
 * leaves with status 0, as Ctrl-D does. Then, with standard input a pipe:
 * /load of that file and /save again in a new process write the same bytes; a message is answered with
 * only the reply on stdout, the same text as on the terminal; a bad file and a missing model fail with
 * status 1. Every wait has a timeout, so the test cannot hang. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 120000

static const char *bin;
static char model[128], dir[64];

/* ------------------------------------------------------------------------ a chat on a pseudo-terminal */

typedef struct pty_proc {
    int fd;            /* the master side */
    pid_t pid;
    char out[1 << 20]; /* everything the chat wrote, NUL-terminated */
    size_t n, mark;    /* expect() looks after mark */
} pty_proc;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool pty_start(pty_proc *p, char *const *args)
{
    p->n = p->mark = 0;
    p->out[0] = 0;
    p->fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (p->fd < 0 || grantpt(p->fd) || unlockpt(p->fd) || !ptsname(p->fd))
        return false;
    char name[256];
    snprintf(name, sizeof name, "%s", ptsname(p->fd));
    p->pid = fork();
    if (p->pid < 0)
        return false;
    if (p->pid == 0) {
        /* the child: a new session whose controlling terminal is the pty's slave side */
        setsid();
        int s = open(name, O_RDWR);
        if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
            _exit(126);
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        if (s > 2)
            close(s);
        close(p->fd);
        setenv("TERM", "dumb", 1);
        execv(bin, args);
        _exit(127);
    }
    return true;
}

/* Reads what is there, waiting up to ms; false when the chat's side closed. */
static bool pty_read(pty_proc *p, int ms)
{
    struct pollfd pf = { .fd = p->fd, .events = POLLIN };
    if (poll(&pf, 1, ms) <= 0)
        return true;
    ssize_t k = read(p->fd, p->out + p->n, sizeof p->out - 1 - p->n);
    if (k <= 0)
        return false; /* EIO: the child closed the terminal */
    p->n += (size_t)k;
    p->out[p->n] = 0;
    return true;
}

/* Waits until needle appears after the mark, then moves the mark past it. */
static bool expect(pty_proc *p, const char *needle, int ms)
{
    double end = now_ms() + ms;
    for (;;) {
        char *hit = strstr(p->out + p->mark, needle);
        if (hit) {
            p->mark = (size_t)(hit - p->out) + strlen(needle);
            return true;
        }
        if (now_ms() > end || p->n + 1 >= sizeof p->out || !pty_read(p, 100)) {
            fprintf(stderr, "test_cli_chat: no '%s' in the chat's output after byte %zu:\n%s\n", needle, p->mark,
                    p->out + p->mark);
            return false;
        }
    }
}

/* Types s. When the chat has just printed its prompt, first a pause, as a person's would be: the line
 * editor prints the prompt before it puts the terminal in its own mode, and input that comes in between
 * can be dropped by that switch. */
static void send_str(pty_proc *p, const char *s)
{
    size_t n = strlen(s);
    if (p->n >= 2 && !memcmp(p->out + p->n - 2, "> ", 2))
        usleep(300000);
    while (n) {
        ssize_t k = write(p->fd, s, n);
        if (k <= 0 && errno != EINTR)
            return;
        if (k > 0)
            s += k, n -= (size_t)k;
    }
}

/* Waits for the child to exit (killed after ms); its exit status, -1 when it did not exit. */
static int pty_wait(pty_proc *p, int ms)
{
    double end = now_ms() + ms;
    int st;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid)
            break;
        if (now_ms() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            close(p->fd);
            return -1;
        }
        pty_read(p, 50);
    }
    close(p->fd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The reply text between the end of the echoed line (the mark) and the stats line: \r\n made \n, the
 * echo of the line itself skipped (it may come twice: the terminal's and the line editor's). */
static void reply_text(const pty_proc *p, size_t from, size_t to, const char *line, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = from; i < to && o + 1 < cap; i++)
        if (p->out[i] != '\r')
            out[o++] = p->out[i];
    out[o] = 0;
    size_t ll = strlen(line), skip = 0;
    while (!strncmp(out + skip, line, ll) && out[skip + ll] == '\n')
        skip += ll + 1;
    while (out[skip] == '\n')
        skip++;
    memmove(out, out + skip, o - skip + 1);
    o -= skip;
    while (o && out[o - 1] == '\n')
        out[--o] = 0;
}

static void test_terminal(char *hello_reply, size_t cap)
{
    char save1[128];
    snprintf(save1, sizeof save1, "%s/conv1.json", dir);
    char *args[] = { (char *)bin, "chat", "-m", model, "-n", "1000", "-c", "1024", "--temp", "0",
                     (char *)tu_validation_flag(), NULL };
    if (!args[10][0])
        args[10] = NULL;
    static pty_proc p;
    if (!pty_start(&p, args)) {
        CHECK(0, "cannot start vkllm chat on a pseudo-terminal: %s", strerror(errno));
        return;
    }
    bool ok = expect(&p, "> ", TIMEOUT_MS);
    CHECK(ok, "no prompt");
    if (ok) {
        /* a message, answered */
        send_str(&p, "Hello\n");
        size_t from = p.mark;
        ok = expect(&p, "tok/s; prompt:", TIMEOUT_MS);
        CHECK(ok, "no reply to 'Hello'");
        size_t to = p.mark;
        if (ok) {
            while (to > from && p.out[to - 1] != '[')
                to--;
            reply_text(&p, from, to ? to - 1 : to, "Hello", hello_reply, cap);
            CHECK(strlen(hello_reply) > 10, "the reply to 'Hello' is '%s'", hello_reply);
            ok = expect(&p, "> ", TIMEOUT_MS);
        }
    }
    if (ok) {
        /* Ctrl-C once the reply streams: it stops, the chat goes on. The reply has begun when 40 bytes
         * follow the last echo of the line (the terminal's and the line editor's) and are not another */
        const char *msg = "Tell me a long story about a dog and a cat.";
        size_t from = p.mark;
        send_str(&p, msg);
        send_str(&p, "\n");
        double end = now_ms() + TIMEOUT_MS;
        bool streaming = false;
        while (!streaming && now_ms() < end && pty_read(&p, 100)) {
            size_t at = from;
            for (char *e; (e = strstr(p.out + at, msg)) && e[strlen(msg)] == '\r' && e[strlen(msg) + 1] == '\n';)
                at = (size_t)(e - p.out) + strlen(msg) + 2;
            streaming = at > from && p.n >= at + 40 && strncmp(p.out + at, msg, 7);
        }
        ok = streaming;
        CHECK(ok, "the reply to '%s' did not start:\n%s", msg, p.out + from);
        send_str(&p, "\x03");
        ok = ok && expect(&p, "[stopped]", TIMEOUT_MS);
        CHECK(ok, "Ctrl-C did not stop the reply");
        ok = ok && expect(&p, "> ", TIMEOUT_MS);
    }
    if (ok) {
        send_str(&p, "What did the dog do?\n");
        ok = expect(&p, "tok/s; prompt:", TIMEOUT_MS) && expect(&p, "> ", TIMEOUT_MS);
        CHECK(ok, "no reply after Ctrl-C");
    }
    if (ok) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "/save %s\n", save1);
        send_str(&p, cmd);
        ok = expect(&p, "[saved 6 messages", TIMEOUT_MS) && expect(&p, "> ", TIMEOUT_MS);
        CHECK(ok, "/save did not save 6 messages");
    }
    if (ok) {
        /* Ctrl-C at the prompt: a notice; a second one leaves */
        send_str(&p, "\x03");
        ok = expect(&p, "[Ctrl-C again or Ctrl-D to leave]", TIMEOUT_MS) && expect(&p, "> ", TIMEOUT_MS);
        CHECK(ok, "no notice after Ctrl-C at the prompt");
        if (ok)
            send_str(&p, "\x03");
    }
    int st = pty_wait(&p, ok ? TIMEOUT_MS : 1000);
    CHECK(!strstr(p.out, "validation:"), "validation messages from `vkllm chat`:\n%s", p.out);
    CHECK(ok && st == 0, "the terminal chat exited with status %d", st);
    printf("terminal: a reply, Ctrl-C in the middle of the next, another reply, /save, Ctrl-C twice: %s\n",
           ok && st == 0 ? "ok" : "FAILED");

    /* Ctrl-D at the prompt leaves at once */
    if (!pty_start(&p, args)) {
        CHECK(0, "cannot start vkllm chat on a pseudo-terminal: %s", strerror(errno));
        return;
    }
    ok = expect(&p, "> ", TIMEOUT_MS);
    if (ok)
        send_str(&p, "\x04");
    st = pty_wait(&p, ok ? TIMEOUT_MS : 1000);
    CHECK(ok && st == 0, "Ctrl-D: the terminal chat exited with status %d", st);
}

/* ------------------------------------------------------------------------ piped */

static int run_piped(const char *input, const char *flags, char *out, size_t cap)
{
    char in[128], cmd[2048];
    snprintf(in, sizeof in, "%s/input.txt", dir);
    FILE *f = fopen(in, "w");
    if (!f)
        return -1;
    fputs(input, f);
    fclose(f);
    /* an option may be given once: -n 1000 unless flags has its own */
    snprintf(cmd, sizeof cmd, "'%s' chat -m '%s' %s -c 1024 --temp 0 %s %s < '%s' 2> '%s/stderr.txt'", bin, model,
             strstr(flags, "-n ") ? "" : "-n 1000", flags, tu_validation_flag(), in, dir);
    int st = tu_run(cmd, out, cap);
    /* what went to stderr: shown, and no validation message in it */
    snprintf(in, sizeof in, "%s/stderr.txt", dir);
    char *err = tu_read_file(in, NULL);
    if (err && err[0])
        fprintf(stderr, "vkllm chat said: %s", err);
    CHECK(!err || !strstr(err, "validation:"), "validation messages from `vkllm chat`");
    free(err);
    return st;
}

static void test_piped(const char *hello_reply)
{
    static char out[1 << 16];
    char save1[128], save2[128], input[512];
    snprintf(save1, sizeof save1, "%s/conv1.json", dir);
    snprintf(save2, sizeof save2, "%s/conv2.json", dir);

    /* /load and /save in a new process: the same file */
    snprintf(input, sizeof input, "/load %s\n/save %s\n", save1, save2);
    int st = run_piped(input, "", out, sizeof out);
    size_t n1, n2;
    char *a = tu_read_file(save1, &n1), *b = tu_read_file(save2, &n2);
    CHECK(st == 0 && a && b && n1 == n2 && !memcmp(a, b, n1), "/load then /save: status %d, %s", st,
          a && b ? "the files differ" : "a file is missing");
    CHECK(out[0] == 0, "/load and /save printed '%s'", out);
    CHECK(a && strstr(a, "Tell me a long story about a dog and a cat.") && strstr(a, "What did the dog do?"),
          "the saved conversation lacks the messages:\n%s", a ? a : "");
    free(a);
    free(b);

    /* a message: only its reply, as on the terminal */
    st = run_piped("Hello\n", "", out, sizeof out);
    size_t n = strlen(out);
    CHECK(st == 0 && n > 0 && out[n - 1] == '\n', "piped: status %d, output '%s'", st, out);
    if (n)
        out[n - 1] = 0;
    CHECK(!strcmp(out, hello_reply), "piped reply differs from the terminal's:\n'%s'\n'%s'", out, hello_reply);
    CHECK(!strstr(out, "> ") && !strstr(out, "tok/s"), "piped mode printed more than the reply: '%s'", out);

    /* two messages, two replies */
    st = run_piped("Hello\nHow are you?\n", "-n 8", out, sizeof out);
    CHECK(st == 0 && strlen(out) > 4, "two piped messages: status %d, '%s'", st, out);

    /* errors: a bad conversation file, a missing model */
    FILE *f = fopen(save2, "w");
    if (f) {
        fputs("[{\"role\": \"user\", \"content\": 5}]", f);
        fclose(f);
    }
    snprintf(input, sizeof input, "/load %s\nHello\n", save2);
    st = run_piped(input, "", out, sizeof out);
    CHECK(st == 1 && out[0] == 0, "/load of a bad file: status %d (want 1), output '%s'", st, out);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' chat -m '%s/none.gguf' < /dev/null 2>/dev/null", bin, dir);
    st = tu_run(cmd, out, sizeof out);
    CHECK(st == 1, "a missing model: status %d (want 1)", st);
    snprintf(cmd, sizeof cmd, "'%s' chat -m '%s' --chat-template nosuch < /dev/null 2>/dev/null", bin, model);
    st = tu_run(cmd, out, sizeof out);
    CHECK(st == 1, "an unknown template name: status %d (want 1)", st);
    printf("piped: /load + /save, replies only, errors: done\n");
}

int main(void)
{
    bin = getenv("VKLLM_BIN");
    if (!bin || access(bin, X_OK)) {
        fprintf(stderr, "test_cli_chat: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/vkllm_cli_chat_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_cli_chat: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(model, sizeof model, "%s/chat.gguf", dir);
    static char hello[1 << 16];
    if (tu_chat_model(TU_CHAT_TEMPLATE, model)) {
        test_terminal(hello, sizeof hello);
        test_piped(hello);
    } else {
        CHECK(0, "cannot write the chat model");
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    char out[16];
    tu_run(cmd, out, sizeof out);
    return tu_finish("test_cli_chat");
}
