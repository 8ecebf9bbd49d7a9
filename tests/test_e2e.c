/* test_e2e.c: real models end to end against golden outputs: stories260K (GGUF and llama2.c) greedy text
 * token for token, prefill and decode agreeing, F16/BF16 files against their F32 twins, the vkllm run
 * command's output, and bad input rejected with a clear error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lm.h"
#include "util.h"

/* Reads the "tokens ..." line of a golden token file under expected/. */
/* where run_cli's commands write their stderr: one file per test process (parallel runs must not share) */
static char stderr_path[64];

static int read_tokens(const char *rel, int32_t *out, int cap)
{
    char *t = tu_read_file(tu_model_path(rel), NULL);
    if (!t)
        return -1;
    char *line = strstr(t, "\ntokens ");
    int n = 0;
    if (line)
        for (char *p = line + 8; n < cap;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p)
                break;
            out[n++] = (int32_t)v;
            p = end;
        }
    free(t);
    return n;
}

/* Greedy generation through the library: BOS + prompt, then steps; compares with the golden ids. */
static void golden(tu_gpu *g, lm_model *m, const char *prompt, const char *rel, int n_gen, const char *what)
{
    int32_t want[1024];
    int n_want = read_tokens(rel, want, 1024);
    CHECK(n_want > 0, "%s: cannot read %s", what, rel);
    const lm_vocab *v = lm_model_vocab(m);
    int32_t *ids;
    int64_t n;
    char err[512];
    CHECK(lm_tokenize(v, prompt, strlen(prompt), true, false, &ids, &n, err, sizeof err) == LM_OK, "%s: %s", what, err);
    for (int64_t i = 0; i < n && i < n_want; i++)
        CHECK(ids[i] == want[i], "%s: prompt token %lld is %d, expected %d", what, (long long)i, ids[i], want[i]);
    lm_session *s;
    lm_session_opts so = { .n_ctx = 512, .n_batch = 3, .kv_f32 = true }; /* a small batch: prefill in several passes */
    CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "%s: session: %s", what, err);
    if (n > 1)
        CHECK(lm_session_eval(s, ids, n - 1, NULL, false, err, sizeof err) == LM_OK, "%s: prefill: %s", what, err);
    int32_t cur = ids[n - 1];
    int mismatches = 0;
    for (int i = 0; i < n_gen && n + i < n_want; i++) {
        int32_t next;
        if (lm_session_step(s, cur, NULL, &next, err, sizeof err) != LM_OK) {
            CHECK(0, "%s: step %d: %s", what, i, err);
            break;
        }
        if (next != want[n + i] && mismatches++ == 0)
            CHECK(0, "%s: generated token %d is %d, expected %d", what, i, next, want[n + i]);
        cur = want[n + i]; /* stay on the golden path so one near-tie does not cascade */
    }
    CHECK(mismatches == 0, "%s: %d of %d generated tokens differ", what, mismatches, n_gen);
    lm_session_free(s);
    free(ids);
    (void)g;
}

/* Logits of one prompt, prefilled in one pass, versus token by token through the decode step. */
static void prefill_matches_decode(lm_model *m)
{
    static const int32_t ids[] = { 1, 403, 407, 261, 378, 432, 383, 286 };
    int n = 8, nv = lm_model_hparams(m)->n_vocab;
    float *a = malloc(sizeof *a * nv * n), *b = malloc(sizeof *b * nv);
    double *ref = malloc(sizeof *ref * nv);
    char err[512];
    lm_session *s;
    lm_session_opts so = { .n_ctx = 64, .kv_f32 = true };
    lm_session_create(m, &so, &s, err, sizeof err);
    CHECK(lm_session_eval(s, ids, n, a, true, err, sizeof err) == LM_OK, "eval all logits: %s", err);
    lm_session_rewind(s, 0);
    for (int i = 0; i < n; i++) {
        int32_t next;
        CHECK(lm_session_step(s, ids[i], b, &next, err, sizeof err) == LM_OK, "step: %s", err);
        for (int j = 0; j < nv; j++)
            ref[j] = a[i * nv + j];
        double e = tu_nmse(b, ref, nv);
        CHECK(e < 1e-10, "position %d: decode and prefill logits differ (nmse %g)", i, e);
    }
    /* past the context: a clear error */
    lm_session_rewind(s, 0);
    int32_t many[65] = { 0 };
    CHECK(lm_session_eval(s, many, 65, NULL, false, err, sizeof err) == LM_ERR_CONTEXT_FULL && strstr(err, "context"),
          "65 tokens in a context of 64 accepted");
    int32_t badid = 100000;
    CHECK(lm_session_eval(s, &badid, 1, NULL, false, err, sizeof err) == LM_ERR_INVALID, "token id out of range accepted");
    lm_session_free(s);
    free(a);
    free(b);
    free(ref);
}

static lm_model *load(tu_gpu *g, const char *rel)
{
    lm_model *m = NULL;
    char err[512];
    int rc = lm_model_load(g->ctx, tu_model_path(rel), NULL, &m, err, sizeof err);
    CHECK(rc == LM_OK, "load %s: %s", rel, err);
    return m;
}

/* The last-position logits of a prompt on model `rel` versus on its F32 twin. */
static void twin(tu_gpu *g, const char *rel, const char *twin_rel, double tol)
{
    lm_model *a = load(g, rel), *b = load(g, twin_rel);
    if (!a || !b) {
        lm_model_free(a);
        lm_model_free(b);
        return;
    }
    static const int32_t ids[] = { 1, 403, 407, 261, 378, 17, 99 };
    int nv = lm_model_hparams(a)->n_vocab;
    float *la = malloc(sizeof *la * nv), *lb = malloc(sizeof *lb * nv);
    double *ref = malloc(sizeof *ref * nv);
    char err[512];
    lm_session *sa, *sb;
    lm_session_create(a, NULL, &sa, err, sizeof err);
    lm_session_create(b, NULL, &sb, err, sizeof err);
    CHECK(lm_session_eval(sa, ids, 7, la, false, err, sizeof err) == LM_OK, "%s: %s", rel, err);
    CHECK(lm_session_eval(sb, ids, 7, lb, false, err, sizeof err) == LM_OK, "%s: %s", twin_rel, err);
    for (int j = 0; j < nv; j++)
        ref[j] = lb[j];
    double e = tu_nmse(la, ref, nv);
    printf("%s vs %s: logits nmse %.3g\n", rel, twin_rel, e);
    CHECK(e < tol, "%s: logits differ from the F32 twin (nmse %g > %g)", rel, e, tol);
    lm_session_free(sa);
    lm_session_free(sb);
    lm_model_free(a);
    lm_model_free(b);
    free(la);
    free(lb);
    free(ref);
}

/* Runs the vkllm binary; returns its exit status, stdout in *out (malloc'd), stderr appended to a file. */
static int run_cli(const char *args, char **out)
{
    char cmd[4096];
    const char *bin = getenv("VKLLM_BIN");
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", bin ? bin : "build/vkllm", args, stderr_path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0)
        n += r;
    buf[n] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Whether JSON text s has a member "key" whose value starts with value, whatever the spacing. */
static bool json_member(const char *s, const char *key, const char *value)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    for (const char *p = s; (p = strstr(p, pat)); ) {
        p += strlen(pat);
        p += strspn(p, " \t\r\n");
        if (!strncmp(p, value, strlen(value)))
            return true;
    }
    return false;
}

static void cli(void)
{
    char args[2048], *out;
    char *want = tu_read_file(tu_model_path("expected/stories260K.greedy.once-upon-a-time.64.txt"), NULL);
    snprintf(args, sizeof args, "run %s -m %s -p 'Once upon a time' -n 60 --temp 0", tu_validation_flag(),
             tu_model_path("gguf/stories260K.gguf"));
    int rc = run_cli(args, &out);
    CHECK(rc == 0, "vkllm run exited %d", rc);
    CHECK(want && !strncmp(out, want, strlen(want)) && !strcmp(out + strlen(want), "\n"),
          "vkllm run printed:\n%s\nexpected:\n%s", out, want ? want : "(missing)");
    char *errs = tu_read_file(stderr_path, NULL);
    CHECK(errs && !strstr(errs, "validation:"), "validation messages from vkllm run:\n%s", errs ? errs : "");
    CHECK(errs && strstr(errs, "tokens/s"), "no speed report on stderr");
    free(errs);
    free(out);
    free(want);

    /* --profile: the decode step's kernels timed on the GPU */
    snprintf(args, sizeof args, "run -m %s -p 'Once' -n 4 --temp 0 --profile", tu_model_path("gguf/stories260K.gguf"));
    rc = run_cli(args, &out);
    errs = tu_read_file(stderr_path, NULL);
    CHECK(rc == 0 && errs && strstr(errs, "dispatches") && strstr(errs, "attention"), "vkllm run --profile: %s",
          errs ? errs : "");
    free(errs);
    free(out);

    /* --seed -1: a random seed, printed to stderr; passing it back replays the run (llama2.c's sampler) */
    snprintf(args, sizeof args, "run -m %s -p 'Once' -n 24 --seed -1 --sampler llama2c",
             tu_model_path("gguf/stories260K.gguf"));
    rc = run_cli(args, &out);
    errs = tu_read_file(stderr_path, NULL);
    const char *sl = errs ? strstr(errs, "vkllm: seed ") : NULL;
    unsigned long long seed = sl ? strtoull(sl + 12, NULL, 10) : 0;
    CHECK(rc == 0 && sl && seed, "vkllm run --seed -1 prints its seed: %s", errs ? errs : "");
    free(errs);
    if (sl) {
        char *again;
        snprintf(args, sizeof args, "run -m %s -p 'Once' -n 24 --seed %llu --sampler llama2c",
                 tu_model_path("gguf/stories260K.gguf"), seed);
        rc = run_cli(args, &again);
        CHECK(rc == 0 && !strcmp(out, again), "--seed %llu replays:\n%s\nvs\n%s", seed, out, again);
        free(again);
    }
    free(out);
    rc = run_cli("run -m x --sampler nope", &out);
    CHECK(rc != 0, "--sampler nope is refused");
    free(out);

    /* a llama2.c checkpoint stops at BOS (llama2.c's run.c): seed 1 ends its story before the context is full */
    char ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s", tu_model_path("llama2c/stories260K.bin")); /* tu_model_path is static */
    snprintf(args, sizeof args, "run -m %s -z %s -n -1 --temp 1 --sampler llama2c --seed 1", ckpt,
             tu_model_path("llama2c/tok512.bin"));
    rc = run_cli(args, &out);
    errs = tu_read_file(stderr_path, NULL);
    CHECK(rc == 0 && errs && !strstr(errs, "context is full"), "llama2.c run should end at BOS:\n%s", errs ? errs : "");
    free(errs);
    free(out);

    /* the describing commands: JSON that starts right and names what it must */
    snprintf(args, sizeof args, "info -m %s --json", tu_model_path("gguf/stories260K.gguf"));
    rc = run_cli(args, &out);
    CHECK(rc == 0 && out[0] == '{' && strstr(out, "\"llama\"") && strstr(out, "512"),
          "vkllm info --json exited %d:\n%s", rc, out);
    free(out);
    rc = run_cli("devices --json", &out);
    CHECK(rc == 0 && out[0] == '[' && strstr(out, "\"subgroup_size\"") && json_member(out, "default", "true"),
          "vkllm devices --json exited %d:\n%s", rc, out);
    free(out);

    /* bad input: a clear error and a non-zero exit, never a crash */
    struct { const char *args; const char *says; } bad[] = {
        { "run -m /nonexistent.gguf -p hi", "nonexistent" },
        { "run -m %s -p 'Once upon a time there was' -c 4", "context" },
        { "run -m %s -p \"$(printf '\\377\\376')\"", "UTF-8" },
        { "run -m %s -n x", "integer" },
        { "run -m %s --temp -1", "temp" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char a[2048];
        snprintf(a, sizeof a, bad[i].args, tu_model_path("gguf/stories260K.gguf"));
        rc = run_cli(a, &out);
        char *e = tu_read_file(stderr_path, NULL);
        CHECK(rc == 1 && e && strstr(e, bad[i].says), "`vkllm %s` exited %d, stderr: %s", a, rc, e ? e : "");
        free(e);
        free(out);
    }
}

int main(void)
{
    snprintf(stderr_path, sizeof stderr_path, "/tmp/vkllm-e2e-stderr-%d.txt", (int)getpid());
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_e2e");
    lm_model *m = load(&g, "gguf/stories260K.gguf");
    if (m) {
        golden(&g, m, "Once upon a time", "expected/stories260K.greedy.once-upon-a-time.64.tokens.txt", 60, "gguf prompt");
        golden(&g, m, "", "expected/stories260K.greedy.noprompt.256.tokens.txt", 256, "gguf no prompt");
        prefill_matches_decode(m);
        lm_model_free(m);
    }
    lm_model *l2 = NULL;
    char err[512];
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s", tu_model_path("llama2c/stories260K.bin")); /* tu_model_path is static */
    CHECK(lm_model_load_llama2c(g.ctx, ckpt, tu_model_path("llama2c/tok512.bin"), NULL, &l2, err, sizeof err) == LM_OK,
          "llama2.c: %s", err);
    if (l2) {
        golden(&g, l2, "Once upon a time", "expected/stories260K.greedy.once-upon-a-time.64.tokens.txt", 60, "llama2.c");
        lm_model_free(l2);
    }
    twin(&g, "quant/kq-f16.gguf", "quant/kq-f16.dequant-f32.gguf", 1e-9);
    twin(&g, "quant/kq-bf16.gguf", "quant/kq-bf16.dequant-f32.gguf", 1e-9);
    cli();
    unlink(stderr_path);
    tu_gpu_close(&g);
    return tu_finish("test_e2e");
}
