/* app_model.c: what the model commands share: open a device, load a model (GGUF, a llama2.c
 * checkpoint with --tokenizer, or synthetic:SHAPE:TYPE), show progress while it loads. */
#include <stdlib.h>
#include <string.h>
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
    size_t n = strlen(path);
    bool llama2c = tokenizer || (n > 4 && !strcmp(path + n - 4, ".bin"));
    if (llama2c && !tokenizer)
        return app_fail("%s looks like a llama2.c checkpoint: give its tokenizer with --tokenizer FILE", path);
    if (llama2c)
        rc = lm_model_load_llama2c(am->ctx, path, tokenizer, &lo, &am->model, err, sizeof err);
    else
        rc = lm_model_load(am->ctx, path, &lo, &am->model, err, sizeof err);
    if (rc)
        return app_fail("%s", err);
    am->load_s = app_now() - t0;
    return 0;
}

void app_model_close(app_model *am)
{
    lm_model_free(am->model);
    rt_ctx_destroy(am->ctx);
    rt_instance_destroy(am->inst);
    memset(am, 0, sizeof *am);
}
