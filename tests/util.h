/* util.h: what every test shares: checks that count failures, a seeded RNG, the normalised error, and
 * (for GPU tests) a Vulkan context with the validation layer on whose messages fail the test. */
#ifndef VKLLM_TEST_UTIL_H
#define VKLLM_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rt.h"

extern int tu_failures;

/* CHECK(cond, fmt, ...): on failure print file:line and the message, count it, go on. */
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            tu_failures++;                                                      \
        }                                                                       \
    } while (0)

/* TU_REFERENCE marks a test's plain-C reference (a triple loop over a GEMM, say): in the sanitizer build
 * (clang) it is left uninstrumented, as it is the yardstick and not the code under test; the library and
 * vkllm stay instrumented. Under ASan and UBSan such a loop ran 7x slower and took most of the suite. */
#if defined(__clang__)
#define TU_REFERENCE __attribute__((noinline, no_sanitize("address", "undefined", "coverage")))
#else
#define TU_REFERENCE
#endif

/* Ends a test's main: prints a summary, returns the exit status (0 only when nothing failed and no
 * validation message was seen). */
int tu_finish(const char *name);

/* Whether a kernel sweep runs its next case: always, but under the sanitizers (VKLLM_SANITIZED, which
 * the sanitizer build's ctest sets) one case in TU_SANITIZED_STRIDE, in turn. The host code a sweep
 * drives (recording, splitting, buffers) is the same for every shape, and the plain runs check each
 * shape's results; under ASan the whole sweeps cost CI minutes. tu_finish says how many were left out;
 * VKLLM_TEST_ALL_CASES=1 runs them all. */
#define TU_SANITIZED_STRIDE 4
bool tu_take_case(void);

/* Seeded RNG (xorshift64*): the seed is printed by tu_seed() so a failure can be replayed. */
typedef struct { uint64_t s; } tu_rng;
uint64_t tu_seed(const char *test);   /* VKLLM_TEST_SEED or a fixed default; printed */
uint32_t tu_u32(tu_rng *r);
float tu_uniform(tu_rng *r, float lo, float hi);
float tu_normal(tu_rng *r);

/* sum((a-b)^2) / sum(b^2); a NaN or inf in a gives INFINITY. */
double tu_nmse(const float *a, const double *ref, int64_t n);
/* Double-precision pieces of the reference forward passes (test_arch, test_families, test_encoders):
 * o = x / sqrt(mean(x^2) + eps) * w (o may be x); o[rows] = W[rows][cols] . x (+ b when not NULL). */
void tu_rmsnorm(double *o, const double *x, const double *w, int n, double eps);
void tu_matvec(double *o, const double *W, const double *x, const double *b, int rows, int cols);
/* the same against a float reference */
double tu_nmse_f(const float *a, const float *ref, int64_t n);

/* Path of a file under ../shared/models (VKLLM_MODELS); static buffer. */
const char *tu_model_path(const char *rel);
/* Reads a whole file (NUL-terminated); NULL on failure. Caller frees. */
char *tu_read_file(const char *path, size_t *len);

/* Runs a shell command, its stdout into out (NUL-terminated, cut at cap - 1 bytes); returns its exit
 * status, -1 when it could not run or did not exit. */
int tu_run(const char *cmd, char *out, size_t cap);

/* "--validation" for tests that run the vkllm binary, "" when VKLLM_NO_VALIDATION is set (a machine
 * without the layer). */
const char *tu_validation_flag(void);

/* GPU tests: an instance with validation on (messages counted and printed) and a context on the
 * default device (lavapipe in CI). tu_gpu_close() destroys them. */
typedef struct { rt_instance *inst; rt_ctx *ctx; } tu_gpu;
bool tu_gpu_open(tu_gpu *g);
void tu_gpu_close(tu_gpu *g);

/* Writes stories260K (../shared/models/gguf/stories260K.gguf) to out_path with tokenizer.chat_template set
 * to template_src (NULL: none), through the project's GGUF writer: the chat tests' model. */
#define TU_CHAT_TEMPLATE \
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}" \
    "{% if add_generation_prompt %}assistant:{% endif %}"
bool tu_chat_model(const char *template_src, const char *out_path);

/* Guard bytes: allocate outputs with TU_GUARD extra bytes filled with TU_GUARD_WORD, then check them. */
#define TU_GUARD 256
#define TU_GUARD_WORD 0xDEADBEEFu
bool tu_guard_fill(rt_buffer *b, size_t data_bytes);
bool tu_guard_check(rt_buffer *b, size_t data_bytes);

#endif
