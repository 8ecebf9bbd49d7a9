/* lm.h: the vkllm models layer: GGUF and llama2.c readers, tokenizers, architectures, sampler,
 * sessions with their KV cache. This header is the whole contract of models/; it uses the runtime only
 * through rt.h. Nothing here prints or exits: functions return an lm_status and fill an error message.
 *
 * Conventions: opaque handles, lm_x_open/create(..., &out) and lm_x_close/destroy(x); destroy(NULL) is
 * a no-op. Functions that can fail take `char *err, size_t errlen` (may be NULL) or keep a per-handle
 * message. int64_t for element counts, size_t for byte offsets.
 */
#ifndef VKLLM_LM_H
#define VKLLM_LM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lm_status {
    LM_OK = 0,
    LM_ERR_IO,          /* cannot open / read / map a file */
    LM_ERR_FORMAT,      /* malformed file: the message says what and where */
    LM_ERR_UNSUPPORTED, /* valid but not supported here: architecture, tensor type, tokenizer */
    LM_ERR_TYPE,        /* a metadata key has another type than asked for */
    LM_ERR_NOT_FOUND,   /* no such key / tensor / token */
    LM_ERR_INVALID,     /* bad argument or input (invalid UTF-8, prompt longer than the context) */
    LM_ERR_NOMEM,       /* host memory exhausted */
    LM_ERR_DEVICE,      /* the runtime failed: the message carries its explanation */
};
const char *lm_status_string(int status);

/* ======================================================================== GGUF (models/gguf.c) */

/* ======================================================================== tokenizer (models/tok_*.c) */

/* ======================================================================== model (models/model*.c) */

/* ======================================================================== sampler (models/sampler.c) */

#ifdef __cplusplus
}
#endif
#endif
