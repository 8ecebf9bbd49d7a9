/* lm_internal.h: what every file of models/ shares and nothing outside it sees. */
#ifndef VKLLM_LM_INTERNAL_H
#define VKLLM_LM_INTERNAL_H

#include "lm.h"

/* printf into err (may be NULL); returns status (use as `return lm_fail(err, errlen, LM_ERR_..., ...)`). */
int lm_fail(char *err, size_t errlen, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
