/* lm_internal.h: what every file of models/ shares and nothing outside it sees. */
#ifndef VKLLM_LM_INTERNAL_H
#define VKLLM_LM_INTERNAL_H

#include "lm.h"

/* printf into err (may be NULL); returns status (use as `return lm_fail(err, errlen, LM_ERR_..., ...)`). */
int lm_fail(char *err, size_t errlen, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The type a row of ne0 elements gets when type's block does not divide it (quantize.c): the nearest
 * 32-element format, else F16; type itself when it fits. */
int lm_quant_fallback(int type, int64_t ne0);

#endif
