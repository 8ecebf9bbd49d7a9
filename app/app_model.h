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

/* Opens the device and loads path (a GGUF file; a llama2.c checkpoint, with its tokenizer; the format is
 * told by the file's first bytes; synthetic:SHAPE:TYPE, a model of that shape with seeded random
 * weights). Prints the error and returns 1 on failure (call app_model_close either way). */
int app_model_open(app_model *am, const char *path, const char *tokenizer, const app_device_opts *dev);
void app_model_close(app_model *am);

/* What a file is, by its first bytes (not its name): "GGUF"; a plausible llama2.c checkpoint header; a
 * llama2.c tokenizer (its token records end exactly at the end of the file). app_file_sniff also gives
 * the first (up to 4) bytes when first is not NULL. app_file_expect prints what the file is and what opt
 * (the option that named it) expected, and returns 1, unless the file is of kind want (then 0). */
typedef enum app_file_kind {
    APP_FILE_UNREADABLE,
    APP_FILE_NOT_REGULAR,
    APP_FILE_EMPTY,
    APP_FILE_GGUF,
    APP_FILE_LLAMA2C,
    APP_FILE_LLAMA2C_TOKENIZER,
    APP_FILE_OTHER,
    APP_FILE_MODEL, /* as the kind wanted: a GGUF file or a llama2.c checkpoint */
} app_file_kind;
app_file_kind app_file_sniff(const char *path, unsigned char first[4], size_t *n_first);
const char *app_file_kind_name(app_file_kind k);
int app_file_expect(const char *path, app_file_kind want, const char *opt);

#endif
