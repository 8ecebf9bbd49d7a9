/* tmpl_eval.c: the template evaluator (stub: being written). */
#include "tmpl_internal.h"

#include <stdio.h>

int lm_tmpl_parse(const char *src, size_t len, lm_tmpl **out, char *err, size_t errlen)
{
    (void)src;
    (void)len;
    *out = NULL;
    if (err && errlen) snprintf(err, errlen, "chat templates: not built yet");
    return LM_ERR_UNSUPPORTED;
}

void lm_tmpl_free(lm_tmpl *t)
{
    (void)t;
}

int lm_tmpl_render(const lm_tmpl *t, const char *context_json, size_t context_len, char **out, size_t *out_len,
                   char *err, size_t errlen)
{
    (void)t;
    (void)context_json;
    (void)context_len;
    *out = NULL;
    *out_len = 0;
    if (err && errlen) snprintf(err, errlen, "chat templates: not built yet");
    return LM_ERR_UNSUPPORTED;
}
