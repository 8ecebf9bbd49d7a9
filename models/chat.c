/* chat.c: conversations with a model (stub: being written). */
#include <stdio.h>

#include "lm.h"

static int stub(char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "chat: not built yet");
    return LM_ERR_UNSUPPORTED;
}

int lm_chat_create(lm_model *m, lm_session *s, const lm_chat_opts *opts, lm_chat **out, char *err, size_t errlen)
{
    (void)m; (void)s; (void)opts;
    *out = NULL;
    return stub(err, errlen);
}
void lm_chat_free(lm_chat *c) { (void)c; }
int lm_chat_add(lm_chat *c, const char *role, const char *content, size_t len, char *err, size_t errlen)
{
    (void)c; (void)role; (void)content; (void)len;
    return stub(err, errlen);
}
int lm_chat_n_messages(const lm_chat *c) { (void)c; return 0; }
const char *lm_chat_role(const lm_chat *c, int i) { (void)c; (void)i; return NULL; }
const char *lm_chat_content(const lm_chat *c, int i, size_t *len) { (void)c; (void)i; if (len) *len = 0; return NULL; }
void lm_chat_truncate(lm_chat *c, int n) { (void)c; (void)n; }
int lm_chat_set_system(lm_chat *c, const char *text, char *err, size_t errlen)
{
    (void)c; (void)text;
    return stub(err, errlen);
}
int lm_chat_render(const lm_chat *c, bool add_generation_prompt, char **out, size_t *len, char *err, size_t errlen)
{
    (void)c; (void)add_generation_prompt;
    *out = NULL; *len = 0;
    return stub(err, errlen);
}
int lm_chat_reply(lm_chat *c, const lm_chat_gen *g, lm_chat_stats *st, char *err, size_t errlen)
{
    (void)c; (void)g; (void)st;
    return stub(err, errlen);
}
