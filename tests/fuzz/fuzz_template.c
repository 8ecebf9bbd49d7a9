/* fuzz_template.c: the chat-template engine. The input up to its first NUL is the template's text, the
 * rest the JSON context it renders with (a fixed conversation when there is no NUL). The engine bounds
 * its own recursion, loops and output; this checks that a render ends, and that its output is what it
 * says. The bounds are lowered (lm_tmpl_set_limits): a render that runs to the defaults takes seconds
 * under the sanitizers, and the code that a bound stops is the same at either size. */
#include "lm.h"

#include "fuzz_util.h"

static const char CONTEXT[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
    "\"Hi!\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"}, {\"role\": \"user\", \"content\": "
    "\"\\u4f60\\u597d\"}], \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";
#define NOW 1721995200 /* a fixed clock for strftime_now: runs are reproducible */
#define MAX_ITERS 20000
#define MAX_OUTPUT (256u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    const char *ctx = nul ? (const char *)nul + 1 : CONTEXT;
    size_t clen = nul ? size - slen - 1 : sizeof CONTEXT - 1;
    char err[512];
    lm_tmpl *t = NULL;
    int rc = lm_tmpl_parse(src, slen, &t, err, sizeof err);
    if (rc != LM_OK) {
        if (rc != LM_ERR_INVALID && rc != LM_ERR_NOMEM)
            abort();
        return 0;
    }
    lm_tmpl_set_limits(t, MAX_ITERS, MAX_OUTPUT);
    char *out = NULL;
    size_t len = 0;
    rc = lm_tmpl_render_at(t, ctx, clen, NOW, &out, &len, err, sizeof err);
    if (rc == LM_OK) {
        if (!out || out[len] != '\0' || len > MAX_OUTPUT)
            abort();
    } else if (rc != LM_ERR_INVALID && rc != LM_ERR_NOMEM) {
        abort();
    }
    free(out);
    lm_tmpl_free(t);
    return 0;
}
