/* test_faults.c: device faults injected on purpose (rt_ctx_fault, $VKLLM_FAULT) drive every path that
 * allocates or submits into failure, and each must give a clear error, free what it made and leave the
 * process usable:
 *   1. in the library: a failed submission leaves the session where it was and the next evaluation gives
 *      the clean run's logits; every allocation of a session's creation failed in turn leaks nothing
 *      (the context's memory in use comes back to what it was) and the next creation works; a memory cap
 *      is an error, lifting it works again; a lost device is reported as such and stays lost;
 *   2. `vkllm run` with the Nth buffer allocation failed, for every N until the run needs no more, and
 *      with the Nth submission failed, for every N: exit status 1 and a message saying why, never a
 *      crash or a hang (and no validation message);
 *   3. `vkllm serve`: a failed pass fails its request (500) and the next request is answered; a lost
 *      device makes /health say unhealthy (503) instead of hanging. */
#include "util.h"

#include "lm.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_IDS 6
static const int32_t ids[N_IDS] = { 1, 403, 407, 261, 378, 429 };

static void library(tu_gpu *g, const char *path)
{
    char err[512];
    lm_model *m = NULL;
    int rc = lm_model_load(g->ctx, path, NULL, &m, err, sizeof err);
    CHECK(rc == LM_OK, "load %s: %s", path, err);
    if (rc)
        return;
    int32_t nv = lm_model_hparams(m)->n_vocab;
    float *want = malloc(sizeof *want * (size_t)nv), *got = malloc(sizeof *got * (size_t)nv);
    lm_session_opts so = { .n_ctx = 64 };
    lm_session *s = NULL;
    CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "session: %s", err);
    CHECK(lm_session_eval(s, ids, N_IDS, want, false, err, sizeof err) == LM_OK, "clean eval: %s", err);

    /* a failed submission: an error, nothing evaluated; the next evaluation is the clean one */
    lm_session_rewind(s, 0);
    CHECK(rt_ctx_fault(g->ctx, "submit:1") == RT_OK, "rt_ctx_fault: %s", rt_ctx_errmsg(g->ctx));
    rc = lm_session_eval(s, ids, N_IDS, got, false, err, sizeof err);
    CHECK(rc == LM_ERR_DEVICE && strstr(err, "VK_ERROR_OUT_OF_DEVICE_MEMORY") && lm_session_n_past(s) == 0,
          "eval with a failed submission: %s, \"%s\", n_past %d", lm_status_string(rc), err, lm_session_n_past(s));
    CHECK(lm_session_eval(s, ids, N_IDS, got, false, err, sizeof err) == LM_OK, "eval after it: %s", err);
    double worst = 0;
    for (int32_t i = 0; i < nv; i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]));
    CHECK(worst == 0, "the logits after a failed pass differ from the clean run's by %g", worst);
    lm_session_free(s);

    /* each allocation of a session's creation failed in turn: an error, nothing kept */
    uint64_t reserved, used0, used;
    rt_ctx_memory_usage(g->ctx, &reserved, &used0);
    int n_fail = 0;
    for (int n = 1; n < 200; n++) {
        char spec[32];
        snprintf(spec, sizeof spec, "alloc:%d", n);
        rt_ctx_fault(g->ctx, spec);
        s = NULL;
        rc = lm_session_create(m, &so, &s, err, sizeof err);
        rt_ctx_memory_usage(g->ctx, &reserved, &used);
        if (rc == LM_OK) {
            lm_session_free(s);
            break;
        }
        n_fail++;
        CHECK(rc == LM_ERR_DEVICE && strstr(err, "device memory exhausted") && !s,
              "session with allocation %d failed: %s, \"%s\"", n, lm_status_string(rc), err);
        CHECK(used == used0, "session with allocation %d failed: %llu bytes in use after, %llu before", n,
              (unsigned long long)used, (unsigned long long)used0);
    }
    CHECK(n_fail >= 10, "only %d allocations in a session's creation", n_fail);
    rt_ctx_fault(g->ctx, "none");
    CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "session after the faults: %s", err);
    lm_session_free(s);

    /* a memory cap below what a session needs, then lifted */
    CHECK(rt_ctx_fault(g->ctx, "mem:1M") == RT_OK, "mem:1M: %s", rt_ctx_errmsg(g->ctx));
    rc = lm_session_create(m, &so, &s, err, sizeof err);
    CHECK(rc == LM_ERR_DEVICE && strstr(err, "device memory exhausted"), "capped session: %s, \"%s\"",
          lm_status_string(rc), err);
    rt_ctx_fault(g->ctx, "");
    CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "session after the cap: %s", err);

    /* specs it cannot read */
    const char *bad[] = { "alloc:0", "alloc:x", "submit", "lost:-1", "mem:12Q", "oom:1", NULL };
    for (int i = 0; bad[i]; i++)
        CHECK(rt_ctx_fault(g->ctx, bad[i]) == RT_ERR_INVALID && strstr(rt_ctx_errmsg(g->ctx), "is not one of"),
              "rt_ctx_fault(\"%s\") accepted", bad[i]);
    CHECK(rt_ctx_fault(g->ctx, "alloc:3,submit:2,mem:4G") == RT_OK, "a list of faults refused");
    rt_ctx_fault(g->ctx, NULL);

    /* a lost device: reported as such, and it stays lost (last: the context is of no use after it) */
    CHECK(!lm_model_device_lost(m), "the device is lost before any fault");
    rt_ctx_fault(g->ctx, "lost:1");
    rc = lm_session_eval(s, ids, N_IDS, got, false, err, sizeof err);
    CHECK(rc == LM_ERR_DEVICE && strstr(err, "VK_ERROR_DEVICE_LOST") && lm_model_device_lost(m) &&
              rt_ctx_lost(g->ctx),
          "eval on a lost device: %s, \"%s\"", lm_status_string(rc), err);
    rt_ctx_fault(g->ctx, "none");
    rc = lm_session_eval(s, ids, N_IDS, got, false, err, sizeof err);
    CHECK(rc == LM_ERR_DEVICE && strstr(err, "VK_ERROR_DEVICE_LOST"), "a lost device came back: %s", err);
    lm_session_free(s);
    lm_model_free(m);
    free(want);
    free(got);
}

/* ---------------------------------------------------------------- the command line */

static const char *bin;

/* `VKLLM_FAULT=spec vkllm run ...`: its exit status, stderr into err */
static int run_with(const char *spec, const char *model, char *err, size_t cap)
{
    char cmd[4096], errpath[128], out[4096];
    snprintf(errpath, sizeof errpath, "/tmp/vkllm-test-faults-%d.stderr", (int)getpid());
    snprintf(cmd, sizeof cmd, "VKLLM_FAULT='%s' timeout 60 '%s' run -m '%s' -p 'Once upon' -n 4 --temp 0 %s 2>'%s'",
             spec, bin, model, tu_validation_flag(), errpath);
    int st = tu_run(cmd, out, sizeof out);
    char *e = tu_read_file(errpath, NULL);
    snprintf(err, cap, "%s", e ? e : "");
    free(e);
    unlink(errpath);
    return st;
}

static void command_line(const char *model)
{
    char err[8192];
    const struct { const char *kind, *says; } sweeps[] = {
        { "alloc", "device memory exhausted" },
        { "submit", "VK_ERROR_OUT_OF_DEVICE_MEMORY" },
    };
    for (size_t k = 0; k < sizeof sweeps / sizeof sweeps[0]; k++) {
        int n = 1, st = 1;
        for (; n < 300; n++) {
            char spec[32];
            snprintf(spec, sizeof spec, "%s:%d", sweeps[k].kind, n);
            st = run_with(spec, model, err, sizeof err);
            if (st == 0)
                break;
            CHECK(st == 1 && strstr(err, sweeps[k].says) && !strstr(err, "alidation"),
                  "run with %s: exit %d (want 1), stderr must say '%s':\n%s", spec, st, sweeps[k].says, err);
            if (st != 1)
                break;
        }
        CHECK(st == 0 && n > 3, "run with %s faults: %d failed runs, then exit %d", sweeps[k].kind, n - 1, st);
        printf("run: %d %s faults, each a clear error; then a clean run\n", n - 1, sweeps[k].kind);
    }
    int st = run_with("lost:1", model, err, sizeof err);
    CHECK(st == 1 && strstr(err, "VK_ERROR_DEVICE_LOST"), "run on a lost device: exit %d, %s", st, err);
    st = run_with("mem:64K", model, err, sizeof err);
    CHECK(st == 1 && strstr(err, "device memory exhausted"), "run under a 64 KiB cap: exit %d, %s", st, err);
    st = run_with("alloc:two", model, err, sizeof err);
    CHECK(st == 1 && strstr(err, "VKLLM_FAULT"), "run with VKLLM_FAULT=alloc:two: exit %d, %s", st, err);
}

/* ---------------------------------------------------------------- the server */

/* `vkllm serve` with VKLLM_FAULT=spec on a port of its choosing; its pid and port. */
static pid_t serve_start(const char *spec, const char *model, int *port, const char *log)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "VKLLM_FAULT='%s' exec '%s' serve -m '%s' --port 0 %s > '%s.out' 2> '%s'", spec, bin,
             model, tu_validation_flag(), log, log);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    *port = 0;
    char out_path[256];
    snprintf(out_path, sizeof out_path, "%s.out", log);
    for (int i = 0; i < 1200 && !*port; i++) { /* 120 s */
        usleep(100000);
        char *o = tu_read_file(out_path, NULL);
        const char *at = o ? strstr(o, "listening on http://127.0.0.1:") : NULL;
        if (at)
            *port = atoi(at + strlen("listening on http://127.0.0.1:"));
        free(o);
    }
    return pid;
}

/* The HTTP status of a request (curl), its body into body. */
static int http(int port, const char *path, const char *json, char *body, size_t cap)
{
    char cmd[1024];
    if (json)
        snprintf(cmd, sizeof cmd,
                 "curl -s -m 60 -w '\\n%%{http_code}' -H 'Content-Type: application/json' -d '%s' http://127.0.0.1:%d%s",
                 json, port, path);
    else
        snprintf(cmd, sizeof cmd, "curl -s -m 60 -w '\\n%%{http_code}' http://127.0.0.1:%d%s", port, path);
    if (tu_run(cmd, body, cap) != 0)
        return -1;
    char *nl = strrchr(body, '\n');
    return nl ? atoi(nl + 1) : -1;
}

static void server(const char *model)
{
    static const char *req = "{\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"temperature\":0}";
    char body[1 << 14], log[128];
    snprintf(log, sizeof log, "/tmp/vkllm-test-faults-%d-serve", (int)getpid());
    int port;
    /* the first pass fails: its request gets an error, the next one is answered */
    pid_t pid = serve_start("submit:1", model, &port, log);
    CHECK(port > 0, "serve with submit:1 did not start");
    if (port > 0) {
        int st = http(port, "/v1/completions", req, body, sizeof body);
        CHECK(st == 500, "the request whose pass failed: HTTP %d: %s", st, body);
        st = http(port, "/v1/completions", req, body, sizeof body);
        CHECK(st == 200 && strstr(body, "\"text\""), "the next request: HTTP %d: %s", st, body);
        st = http(port, "/health", NULL, body, sizeof body);
        CHECK(st == 200 && strstr(body, "\"ok\""), "health after a failed pass: HTTP %d: %s", st, body);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    /* the device lost: requests fail, /health says so */
    pid = serve_start("lost:1", model, &port, log);
    CHECK(port > 0, "serve with lost:1 did not start");
    if (port > 0) {
        int st = http(port, "/v1/completions", req, body, sizeof body);
        CHECK(st >= 500, "a request on a lost device: HTTP %d: %s", st, body);
        st = http(port, "/health", NULL, body, sizeof body);
        CHECK(st == 503 && strstr(body, "device lost"), "health on a lost device: HTTP %d: %s", st, body);
    }
    kill(pid, SIGTERM);
    int wst = 0;
    waitpid(pid, &wst, 0);
    char *e = tu_read_file(log, NULL);
    CHECK(!e || !strstr(e, "alidation"), "the server's stderr has validation messages:\n%s", e);
    free(e);
    char out_path[256];
    snprintf(out_path, sizeof out_path, "%s.out", log);
    unlink(out_path);
    unlink(log);
}

int main(void)
{
    tu_seed("test_faults");
    bin = getenv("VKLLM_BIN");
    const char *model = tu_model_path("gguf/stories260K.gguf");
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_faults");
    library(&g, model);
    tu_gpu_close(&g);
    if (!bin) {
        fprintf(stderr, "test_faults: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    command_line(model);
    server(model);
    return tu_finish("test_faults");
}
