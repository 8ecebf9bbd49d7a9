/* app_model.c: what the model commands share: open a device, load a model (GGUF, a llama2.c
 * checkpoint with --tokenizer, or synthetic:SHAPE:TYPE), show progress while it loads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app_model.h"

double app_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_message(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "vkllm: validation: %s\n", msg);
}

static void show_progress(app_model *am, const char *what, float done)
{
    if (!am->show_progress)
        return;
    int pct = (int)(done * 100.0f);
    if (pct != am->last_pct) {
        am->last_pct = pct;
        fprintf(stderr, "\r%s %s: %3d%%", what, am->path, pct);
        if (pct == 100)
            fputc('\n', stderr);
    }
}

static void progress(void *user, float done) { show_progress(user, "loading", done); }
static void synth_progress(void *user, float done) { show_progress(user, "building", done); }

/* synthetic:SHAPE:TYPE: the model is written to a private temporary folder, loaded, and deleted (the
 * loaded model needs only its metadata afterwards, which stays mapped). */
static int load_synthetic(app_model *am, const char *spec, lm_load_opts *lo)
{
    char err[1024];
    const lm_synthetic_shape *sh;
    int type;
    if (lm_synthetic_parse(spec, &sh, &type, err, sizeof err))
        return app_fail("%s", err);
    const char *tmp = getenv("TMPDIR");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/vkllm-synthetic-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return app_fail("%s: cannot make a temporary folder for the synthetic model", dir);
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    int rc = lm_synthetic_write(sh, type, APP_SYNTHETIC_SEED, path, synth_progress, am, err, sizeof err);
    am->last_pct = -1;
    if (!rc)
        rc = lm_model_load(am->ctx, path, lo, &am->model, err, sizeof err);
    unlink(path);
    rmdir(dir);
    return rc ? app_fail("%s", err) : 0;
}

int app_model_open(app_model *am, const char *path, const char *tokenizer, const app_device_opts *dev)
{
    double t0 = app_now();
    am->path = path;
    am->last_pct = -1;
    am->show_progress = isatty(2);
    rt_instance_desc id = { .validation = dev->validation, .on_message = on_message };
    if (rt_instance_create(&id, &am->inst)) {
        app_fail("%s", rt_instance_errmsg(am->inst));
        return 1;
    }
    rt_ctx_desc cd = { .device = dev->device, .profiling = dev->profiling };
    if (rt_ctx_create(am->inst, &cd, &am->ctx)) {
        app_fail("%s", rt_ctx_errmsg(am->ctx));
        return 1;
    }
    char err[1024];
    lm_load_opts lo = { .progress = progress, .user = am };
    int rc;
    if (!strncmp(path, "synthetic:", 10)) {
        if (load_synthetic(am, path, &lo))
            return 1;
        am->load_s = app_now() - t0;
        return 0;
    }
    /* the format by the file's first bytes, not its name */
    app_file_kind kind = app_file_sniff(path, NULL, 0);
    if (kind == APP_FILE_LLAMA2C && !tokenizer)
        return app_fail("%s is a llama2.c checkpoint: give its tokenizer with --tokenizer FILE", path);
    if (kind == APP_FILE_GGUF && tokenizer)
        return app_fail("%s is a GGUF file, which carries its own tokenizer: leave out --tokenizer %s", path,
                        tokenizer);
    if (kind != APP_FILE_GGUF && kind != APP_FILE_LLAMA2C)
        return app_file_expect(path, APP_FILE_MODEL, "-m");
    if (kind == APP_FILE_LLAMA2C) {
        if (app_file_expect(tokenizer, APP_FILE_LLAMA2C_TOKENIZER, "--tokenizer"))
            return 1;
        rc = lm_model_load_llama2c(am->ctx, path, tokenizer, &lo, &am->model, err, sizeof err);
    } else {
        rc = lm_model_load(am->ctx, path, &lo, &am->model, err, sizeof err);
    }
    if (rc)
        return app_fail("%s", err);
    am->load_s = app_now() - t0;
    return 0;
}

/* ---------------------------------------------------------------- what a file is */

/* llama2.c checkpoint header: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len) within what a model can have; the loader checks the rest. */
static bool llama2c_header(const int32_t h[7])
{
    return h[0] > 0 && h[0] <= 65536 && h[1] > 0 && h[1] <= (1 << 20) && h[2] > 0 && h[2] <= 1024 && h[3] > 0 &&
           h[3] <= 1024 && h[4] > 0 && h[4] <= h[3] && h[3] % h[4] == 0 && h[0] % h[3] == 0 && h[5] != 0 &&
           h[5] >= -(1 << 24) && h[5] <= (1 << 24) && h[6] > 0 && h[6] <= (1 << 24);
}

/* llama2.c tokenizer: int32 max_token_length (1 .. 2^20), then tokens (f32 score, int32 length at most
 * max_token_length, the bytes) to the exact end of the file, as the tokenizer loader reads it. */
static bool llama2c_tokenizer(FILE *f, uint64_t size)
{
    int32_t max_len;
    if (fseek(f, 0, SEEK_SET) || fread(&max_len, 4, 1, f) != 1 || max_len <= 0 || max_len > (1 << 20))
        return false;
    uint64_t pos = 4;
    while (pos < size) {
        unsigned char e[8];
        int32_t len;
        if (size - pos < 8 || fread(e, 8, 1, f) != 1)
            return false;
        memcpy(&len, e + 4, 4);
        pos += 8;
        if (len < 0 || len > max_len || (uint64_t)len > size - pos || fseek(f, len, SEEK_CUR))
            return false;
        pos += (uint64_t)len;
    }
    return pos == size;
}

app_file_kind app_file_sniff(const char *path, unsigned char first[4], size_t *n_first)
{
    struct stat st;
    if (stat(path, &st))
        return APP_FILE_UNREADABLE;
    if (!S_ISREG(st.st_mode))
        return APP_FILE_NOT_REGULAR;
    if (st.st_size == 0)
        return APP_FILE_EMPTY;
    FILE *f = fopen(path, "rb");
    if (!f)
        return APP_FILE_UNREADABLE;
    unsigned char head[28];
    size_t n = fread(head, 1, sizeof head, f);
    if (first)
        memcpy(first, head, n < 4 ? n : 4);
    if (n_first)
        *n_first = n < 4 ? n : 4;
    app_file_kind kind = APP_FILE_OTHER;
    int32_t h[7];
    memcpy(h, head, n == sizeof head ? sizeof h : 0);
    if (n >= 4 && !memcmp(head, "GGUF", 4))
        kind = APP_FILE_GGUF;
    else if (n == sizeof head && llama2c_header(h))
        kind = APP_FILE_LLAMA2C;
    else if (llama2c_tokenizer(f, (uint64_t)st.st_size))
        kind = APP_FILE_LLAMA2C_TOKENIZER;
    fclose(f);
    return kind;
}

const char *app_file_kind_name(app_file_kind k)
{
    switch (k) {
    case APP_FILE_GGUF: return "a GGUF file";
    case APP_FILE_LLAMA2C: return "a llama2.c checkpoint";
    case APP_FILE_LLAMA2C_TOKENIZER: return "a llama2.c tokenizer";
    case APP_FILE_MODEL: return "a GGUF file or a llama2.c checkpoint";
    case APP_FILE_EMPTY: return "empty (0 bytes)";
    case APP_FILE_NOT_REGULAR: return "not a regular file (a folder, a device or a FIFO)";
    default: return "not a model file";
    }
}

int app_file_expect(const char *path, app_file_kind want, const char *opt)
{
    unsigned char b[4];
    size_t nb = 0;
    app_file_kind k = app_file_sniff(path, b, &nb);
    if (k == want || (want == APP_FILE_MODEL && (k == APP_FILE_GGUF || k == APP_FILE_LLAMA2C)))
        return 0;
    if (k == APP_FILE_UNREADABLE) {
        FILE *f = fopen(path, "rb"); /* for errno's reason */
        int e = errno;
        if (f)
            fclose(f);
        return app_fail("%s: %s", path, f ? "cannot read" : strerror(e));
    }
    const char *expected = app_file_kind_name(want);
    struct stat st;
    if (k == APP_FILE_NOT_REGULAR && !stat(path, &st))
        return app_fail("%s is %s, not a regular file (for %s, which wants %s)", path,
                        S_ISDIR(st.st_mode)                           ? "a folder"
                        : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                        : S_ISFIFO(st.st_mode)                        ? "a FIFO"
                                                                      : "a socket",
                        opt, expected);
    if (k == APP_FILE_OTHER) {
        char bytes[32] = "";
        for (size_t i = 0, at = 0; i < nb; i++)
            at += (size_t)snprintf(bytes + at, sizeof bytes - at, "%s%02x", i ? " " : "", b[i]);
        return app_fail("%s is not %s (for %s): it starts with the bytes %s%s", path, expected, opt, bytes,
                        want == APP_FILE_GGUF || want == APP_FILE_MODEL ? ", not \"GGUF\"" : "");
    }
    const char *hint = "";
    if (k == APP_FILE_LLAMA2C_TOKENIZER)
        hint = ": give a llama2.c tokenizer with --tokenizer FILE";
    else if (k == APP_FILE_LLAMA2C && want == APP_FILE_LLAMA2C_TOKENIZER)
        hint = ": the checkpoint goes with -m FILE, its tokenizer with --tokenizer FILE";
    else if (k == APP_FILE_GGUF)
        hint = ": a GGUF file carries its own tokenizer; give it with -m FILE";
    return app_fail("%s is %s, not %s (for %s)%s", path, app_file_kind_name(k), expected, opt, hint);
}

void app_model_close(app_model *am)
{
    lm_model_free(am->model);
    rt_ctx_destroy(am->ctx);
    rt_instance_destroy(am->inst);
    memset(am, 0, sizeof *am);
}
