/* app.h: the vkllm command. Each subcommand lives in its own app/cmd_*.c and is listed in main.c. */
#ifndef VKLLM_APP_H
#define VKLLM_APP_H

#include <stdbool.h>
#include <stdio.h>

/* A subcommand: argv[0] is the subcommand's name. Returns the process exit status. */
typedef int (*app_cmd_fn)(int argc, char **argv);

int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_make_model(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "vkllm: <message>" to stderr; returns 1 (use as `return app_fail(...)`). */
int app_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Flag parsing helpers: on `--name VALUE` or `-n VALUE` at argv[*i], store the value and advance *i.
 * They return false (after printing why) when the value is missing or malformed. */
bool app_arg_str(int argc, char **argv, int *i, const char **out);
bool app_arg_int(int argc, char **argv, int *i, long *out, long lo, long hi);
bool app_arg_float(int argc, char **argv, int *i, double *out, double lo, double hi);

/* The input flags the model commands share: -m/--model FILE, --tokenizer/-z FILE (a llama2.c tokenizer),
 * -p/--prompt TEXT (only when prompt is not NULL) and -f/--file FILE. Consumes the flag at argv[*i] and
 * returns true if it is one of them (*bad set when its value is missing). */
bool app_input_flag(int argc, char **argv, int *i, const char **model, const char **tokenizer, const char **prompt,
                    const char **file, bool *bad);

/* The shared device flags: `--device N` (else VKLLM_DEVICE, else the best device) and
 * `--validation`. app_device_flag() consumes them from argv[*i] and returns true if it did. */
typedef struct app_device_opts {
    int device;
    bool validation;
    bool profiling; /* GPU timestamps per dispatch (set by commands that report them) */
} app_device_opts;
bool app_device_flag(int argc, char **argv, int *i, app_device_opts *o, bool *bad);

/* The sampling flags of `run` and `chat` (app_sampling.c): --temp --top-k --top-p --min-p
 * --repeat-penalty --repeat-last-n, -s/--seed N (-1: LM_SAMPLER_SEED_RANDOM) and --sampler NAME.
 * Consumes the flag at argv[*i] into *p and returns true if it is one of them (*bad set, after printing
 * why with cmd as the prefix, when its value is missing or malformed). app_sampling_usage is their
 * lines of --help. */
struct lm_sampler_params;
bool app_sampling_flag(const char *cmd, int argc, char **argv, int *i, struct lm_sampler_params *p, bool *bad);
extern const char app_sampling_usage[];

/* Reads a whole file ("-": standard input), NUL-terminated; prints why and returns NULL on failure.
 * app_slurp is the same without printing: the reason goes to err. */
char *app_read_file(const char *path, size_t *len);
char *app_slurp(const char *path, size_t *len, char *err, size_t errlen);

/* qsort's comparison of doubles, ascending. app_now: a monotonic clock, in seconds (app_model.c). */
int app_cmp_double(const void *a, const void *b);
double app_now(void);

/* One decode step's (prefill: one prefill pass's) GPU time by kernel (lm_session_profile), with the
 * commands and barriers recorded per layer, summed and printed to stderr under
 * a heading, with GB/s and GFLOP/s, and their fractions of the device's calibration when it is given
 * (copy_gbs, fma_gflops > 0); says so when the device has no timestamps (app_profile.c). */
struct lm_session;
void app_profile_print(const struct lm_session *s, bool prefill, const char *heading, double copy_gbs,
                       double fma_gflops);

/* JSON output, built with cJSON (a struct cJSON * is a cJSON *). app_json_add puts item into parent, as
 * member key of an object, or at the end of an array when key is NULL; when that fails (item NULL: out of
 * memory) it frees item and returns false, for the caller to gather into one flag; so fill an object or
 * array first, then add it. app_json_num gives null for NaN and infinities; app_json_int and
 * app_json_uint keep every digit of a 64-bit integer. app_json_print writes root, formatted, and a
 * newline to stdout and frees it; when ok is false (a member was lost) or printing fails it prints
 * nothing and fails (returns 1). */
struct cJSON;
bool app_json_add(struct cJSON *parent, const char *key, struct cJSON *item);
struct cJSON *app_json_num(double v);
struct cJSON *app_json_int(long long v);
struct cJSON *app_json_uint(unsigned long long v);
int app_json_print(struct cJSON *root, bool ok);

#endif
