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

/* Prints "vkllm: <message>" to stderr, the message made safe for a terminal (app_safe: it may quote a
 * model file's text); returns 1 (use as `return app_fail(...)`). */
int app_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Exit statuses, the same in every command: 0 done, 1 failed (a file, a value an option refuses, the
 * device), 2 a usage error (an unknown option, a missing value or argument, an option given twice, two
 * options that conflict): the message, then the usage text. */
#define APP_EXIT_FAIL 1
#define APP_EXIT_USAGE 2
/* A usage error: "vkllm: <message>", then usage(stderr) (when not NULL); returns APP_EXIT_USAGE. */
int app_usage_fail(void (*usage)(FILE *), const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Options as getopt_long reads them. app_opt(argv[i], "-n", "--n-predict") is true when argv[i] is that
 * option (either name may be NULL): alone, its value the next argument, or with the value attached
 * ("-n3", "--n-predict=3"). The app_arg_* call that must follow takes the value from where it is; it
 * refuses an option given a second time (app_opt_multi: an option that may be repeated). "--" ends the
 * options: the commands treat what follows as operands. */
bool app_opt(const char *arg, const char *short_name, const char *long_name);
bool app_opt_multi(const char *arg, const char *short_name, const char *long_name);

/* Flag parsing helpers: on `--name VALUE` or `-n VALUE` at argv[*i] (or what app_opt matched), store the
 * value and advance *i. They return false (after printing why) when the value is missing or malformed,
 * or the option was given twice. app_bad_args(usage) is then the exit status: APP_EXIT_USAGE (after the
 * usage text) when the command line was malformed, APP_EXIT_FAIL when a value was refused. */
bool app_arg_str(int argc, char **argv, int *i, const char **out);
bool app_arg_int(int argc, char **argv, int *i, long *out, long lo, long hi);
bool app_arg_float(int argc, char **argv, int *i, double *out, double lo, double hi);
int app_bad_args(void (*usage)(FILE *));

/* The input flags the model commands share: -m/--model FILE, --tokenizer/-z FILE (a llama2.c tokenizer),
 * -p/--prompt TEXT (only when prompt is not NULL) and -f/--file FILE, through app_opt (each at most once).
 * Consumes the flag at argv[*i] and returns true if it is one of them (*bad set when its value is missing or
 * it was given before). */
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

/* Text in and out (app_text.c). Files are read whole, NUL-terminated ("-": standard input), within a
 * bound: a named file must be a regular file (a FIFO or a device is refused, as -m refuses it) of at most
 * APP_FILE_MAX bytes; standard input may be a pipe (read up to the bound) but not a device such as
 * /dev/zero. app_read_file prints why and returns NULL on failure; app_slurp is the same without
 * printing (the reason goes to err). app_read_text, for the files the commands read as text (prompts,
 * perplexity texts, templates, conversations), also refuses a NUL byte: every command takes text the
 * same way. */
#define APP_FILE_MAX ((size_t)256 << 20)
char *app_read_file(const char *path, size_t *len);
char *app_slurp(const char *path, size_t *len, char *err, size_t errlen);
char *app_read_text(const char *path, size_t *len);

/* Writes data[0..n) as the whole of file path, safely: into a new temporary file beside it (mkstemp: never
 * a file or a link already there), flushed and synced, given the usual mode, and renamed onto path only
 * when complete, so that a crash or a full disk never leaves a truncated file under path. false with
 * the reason in err (the temporary file removed). */
bool app_write_file(const char *path, const void *data, size_t n, char *err, size_t errlen);

/* Length of the valid UTF-8 character at s (n bytes left), 0 when there is none. */
int app_utf8_char(const char *s, size_t n);

/* Text from a model file (or anything not ours) for a terminal: control characters (C0, DEL, C1), the
 * bidirectional overrides, and bytes that are not UTF-8 as \xNN (newline and carriage return as \n and
 * \r), so that it cannot move the cursor, clear the screen, set a title or forge a line. quoted also
 * escapes \, ' and " and the tab, for text shown between quotes. app_safe does the same into buf (cap
 * bytes, cut between escapes) and returns buf. */
void app_put_safe(FILE *f, const char *s, size_t len, bool quoted);
const char *app_safe(const char *s, char *buf, size_t cap);

/* A JSON string of len bytes that is always valid UTF-8: invalid sequences (and NUL bytes) become U+FFFD. */
struct cJSON *app_json_str(const char *s, size_t len);

/* The end of a command that writes to stdout: flushes it, and when a write failed (a full disk, a closed
 * pipe) prints "vkllm: CMD: cannot write the output" and returns 1; else returns status. */
int app_stdout_status(const char *cmd, int status);

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
 * newline to stdout, flushed, and frees it; when ok is false (a member was lost) or printing fails it prints
 * nothing and fails (returns 1), and when the write fails it says so (once: app_stdout_status does not
 * repeat it) and returns 1. */
struct cJSON;
bool app_json_add(struct cJSON *parent, const char *key, struct cJSON *item);
struct cJSON *app_json_num(double v);
struct cJSON *app_json_int(long long v);
struct cJSON *app_json_uint(unsigned long long v);
int app_json_print(struct cJSON *root, bool ok);

#endif
