/* app_model.c: what the model commands share: open a device, load a model (GGUF, or a llama2.c
 * checkpoint with --tokenizer), show progress while it loads. */
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

static void progress(void *user, float done)
{
    app_model *am = user;
    if (!am->show_progress)
        return;
    int pct = (int)(done * 100.0f);
    if (pct != am->last_pct) {
        am->last_pct = pct;
        fprintf(stderr, "\rloading %s: %3d%%", am->path, pct);
        if (pct == 100)
            fputc('\n', stderr);
    }
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
