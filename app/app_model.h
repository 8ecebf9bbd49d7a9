/* app_model.h: a device and a model loaded on it, for the model commands. */
#ifndef VKLLM_APP_MODEL_H
#define VKLLM_APP_MODEL_H

#include "app.h"
#include "lm.h"

typedef struct app_model {
    rt_instance *inst;
    rt_ctx *ctx;
    lm_model *model;
    const char *path;
    double load_s;
    int last_pct;
    bool show_progress;
} app_model;

#define APP_SYNTHETIC_SEED 1234 /* the weights of synthetic:SHAPE:TYPE and of make-model's default */

/* Opens the device and loads path (a GGUF file; a llama2.c checkpoint when tokenizer is given or the
 * name ends in .bin; synthetic:SHAPE:TYPE, a model of that shape with seeded random weights). Prints the error and returns 1 on failure (call app_model_close either way). */
int app_model_open(app_model *am, const char *path, const char *tokenizer, const app_device_opts *dev);
void app_model_close(app_model *am);

#endif
