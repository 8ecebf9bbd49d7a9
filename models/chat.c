/* chat.c: conversations with a model (lm_chat in lm.h).
 *
 * A chat keeps its messages and re-renders the whole conversation through the chat template for every
 * reply, as Hugging Face's apply_chat_template does: the template sees
 *   {"messages": [{"role": .., "content": ..}, ...], "add_generation_prompt": true,
 *    "bos_token": "<s>", "eos_token": "</s>"}
 * The render is tokenized (parse_special, so the template's turn markers become their tokens) and
 * lm_session_sync() keeps the longest common prefix of it and the cached tokens: a new turn evaluates
 * only its own tokens, a regenerated or edited last turn everything after the edit.
 *
 * When the render does not leave n_reserve positions for the reply, whole turns (a user message and
 * what follows it up to the next user message) are left out of the render, oldest first, after the
 * leading system message; the last user message is never dropped. The count of dropped messages is
 * kept from one reply to the next (while it still falls on a turn boundary) so that the rendered
 * prefix, and with it the cache, stays the same until the context fills again.
 *
 * Generation streams text through on_text as it becomes final: complete UTF-8 characters (lm_detok)
 * that cannot be the beginning of a stop string; text that could be is held back until the next
 * token decides, and released at the end of the reply. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lm_internal.h"
#include "tok_internal.h"

typedef struct chat_msg {
    char *role;
    char *content;   /* NUL-terminated */
    size_t len;
} chat_msg;

struct lm_chat {
    lm_model *m;
    lm_session *s;
    const lm_vocab *v;
    lm_tmpl *t;
    int32_t n_reserve;
    chat_msg *msgs;
    int n, cap;
    int32_t dropped;            /* messages after the system prompt left out of the last reply's render */
    lm_sampler *smp;            /* kept between replies: the RNG goes on, so a regenerated reply differs */
    lm_sampler_params smp_params;
    lm_detok *dt;
    float *logits;              /* n_vocab */
};

/* ------------------------------------------------------------------------ a growable byte buffer */

typedef struct cbuf {
    char *p;
    size_t n, cap;
    bool oom;
} cbuf;

static void cb_put(cbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void cb_puts(cbuf *b, const char *s)
{
    cb_put(b, s, strlen(s));
}

/* s[0..n) as a JSON string: quotes, backslashes and control characters escaped (\n \t \r as such,
 * the others as \u00XX); the rest, UTF-8 included, as it is. */
static void cb_json_str(cbuf *b, const char *s, size_t n)
{
    cb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        cb_put(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, esc[2] = 0;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r', esc[2] = 0;
        } else {
            static const char hex[] = "0123456789abcdef";
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], esc[6] = 0;
        }
        cb_puts(b, esc);
    }
    cb_put(b, s + run, n - run);
    cb_put(b, "\"", 1);
}

/* ------------------------------------------------------------------------ messages */

static bool utf8_valid(const char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k <= 0) {
            *bad = i;
            return false;
        }
        i += (size_t)k;
    }
    return true;
}

static bool role_known(const char *role)
{
    static const char *const roles[] = { "system", "user", "assistant", "tool" };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(role, roles[i]))
            return true;
    return false;
}

static void msg_free(chat_msg *m)
{
    free(m->role);
    free(m->content);
}

/* A new message (role and content copied) at index at. */
static int msg_insert(lm_chat *c, int at, const char *role, const char *content, size_t len, char *err,
                      size_t errlen)
{
    if (!role || !role_known(role))
        return lm_fail(err, errlen, LM_ERR_INVALID, "chat: role '%s' is not system, user, assistant or tool",
                       role ? role : "(null)");
    if (!content && len)
        return lm_fail(err, errlen, LM_ERR_INVALID, "chat: no content");
    size_t bad;
    if (!utf8_valid(content ? content : "", len, &bad))
        return lm_fail(err, errlen, LM_ERR_INVALID, "chat: the %s message is not valid UTF-8 (byte %zu)", role, bad);
    if (memchr(content ? content : "", 0, len))
        return lm_fail(err, errlen, LM_ERR_INVALID, "chat: the %s message holds a NUL byte", role);
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        chat_msg *p = realloc(c->msgs, sizeof *p * (size_t)cap);
        if (!p)
            return lm_fail(err, errlen, LM_ERR_NOMEM, "chat: out of memory");
        c->msgs = p;
        c->cap = cap;
    }
    chat_msg m = { strdup(role), malloc(len + 1), len };
    if (!m.role || !m.content) {
        msg_free(&m);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "chat: out of memory");
    }
    if (len)
        memcpy(m.content, content, len);
    m.content[len] = 0;
    memmove(c->msgs + at + 1, c->msgs + at, sizeof *c->msgs * (size_t)(c->n - at));
    c->msgs[at] = m;
    c->n++;
    return LM_OK;
}

static void msg_remove(lm_chat *c, int at)
{
    msg_free(&c->msgs[at]);
    memmove(c->msgs + at, c->msgs + at + 1, sizeof *c->msgs * (size_t)(c->n - at - 1));
    c->n--;
}

static bool has_system(const lm_chat *c)
{
    return c->n > 0 && !strcmp(c->msgs[0].role, "system");
}

/* ------------------------------------------------------------------------ create / free */

int lm_chat_create(lm_model *m, lm_session *s, const lm_chat_opts *opts, lm_chat **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!m || !s)
        return lm_fail(err, errlen, LM_ERR_INVALID, "chat: no model or session");
    const char *src = opts && opts->template_src ? opts->template_src : lm_model_chat_template(m, NULL);
    if (!src)
        src = lm_chat_builtin("chatml");
    lm_chat *c = calloc(1, sizeof *c);
    if (!c)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "chat: out of memory");
    c->m = m;
    c->s = s;
    c->v = lm_model_vocab(m);
    int32_t n_ctx = lm_session_n_ctx(s);
    c->n_reserve = opts && opts->n_reserve > 0 ? opts->n_reserve : (n_ctx / 4 < 512 ? n_ctx / 4 : 512);
    if (c->n_reserve >= n_ctx)
        c->n_reserve = n_ctx - 1;
    int rc;
    char msg[512] = "";
    if ((rc = lm_tmpl_parse(src, strlen(src), &c->t, msg, sizeof msg))) {
        lm_fail(err, errlen, rc, "chat template: %s", msg);
        goto out_free;
    }
    if (lm_detok_create(c->v, false, &c->dt) ||
        !(c->logits = malloc(sizeof *c->logits * (size_t)lm_model_hparams(m)->n_vocab))) {
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "chat: out of memory");
        goto out_free;
    }
    *out = c;
    return LM_OK;
out_free:
    lm_chat_free(c);
    return rc;
}

void lm_chat_free(lm_chat *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        msg_free(&c->msgs[i]);
    free(c->msgs);
    lm_tmpl_free(c->t);
    lm_sampler_free(c->smp);
    lm_detok_free(c->dt);
    free(c->logits);
    free(c);
}

/* ------------------------------------------------------------------------ the message list */

int lm_chat_add(lm_chat *c, const char *role, const char *content, size_t len, char *err, size_t errlen)
{
    return msg_insert(c, c->n, role, content, len, err, errlen);
}

int lm_chat_n_messages(const lm_chat *c)
{
    return c ? c->n : 0;
}

const char *lm_chat_role(const lm_chat *c, int i)
{
    return c && i >= 0 && i < c->n ? c->msgs[i].role : NULL;
}

const char *lm_chat_content(const lm_chat *c, int i, size_t *len)
{
    if (!c || i < 0 || i >= c->n) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = c->msgs[i].len;
    return c->msgs[i].content;
}

void lm_chat_truncate(lm_chat *c, int n)
{
    if (n < 0)
        n = 0;
    while (c->n > n)
        msg_remove(c, c->n - 1);
}

int lm_chat_set_system(lm_chat *c, const char *text, char *err, size_t errlen)
{
    if (!text) {
        if (has_system(c))
            msg_remove(c, 0);
        return LM_OK;
    }
    if (has_system(c)) {
        /* check and copy first, so that a bad text leaves the old prompt in place */
        int rc = msg_insert(c, 1, "system", text, strlen(text), err, errlen);
        if (rc)
            return rc;
        msg_remove(c, 0);
        return LM_OK;
    }
    return msg_insert(c, 0, "system", text, strlen(text), err, errlen);
}

/* ------------------------------------------------------------------------ rendering */

static const char *special_text(const lm_vocab *v, int32_t id)
{
    const char *s = id >= 0 ? lm_token_text(v, id, NULL) : NULL;
    return s ? s : "";
}

/* Renders messages [0, n_head) and [from, c->n) (the ones between are dropped for the context). */
static int render_range(const lm_chat *c, int n_head, int from, bool add_generation_prompt, char **out,
                        size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    cbuf b = { 0 };
    cb_puts(&b, "{\"messages\":[");
    bool first = true;
    for (int i = 0; i < c->n; i++) {
        if (i >= n_head && i < from)
            continue;
        cb_puts(&b, first ? "{\"role\":" : ",{\"role\":");
        first = false;
        cb_json_str(&b, c->msgs[i].role, strlen(c->msgs[i].role));
        cb_puts(&b, ",\"content\":");
        cb_json_str(&b, c->msgs[i].content, c->msgs[i].len);
        cb_puts(&b, "}");
    }
    cb_puts(&b, add_generation_prompt ? "],\"add_generation_prompt\":true" : "],\"add_generation_prompt\":false");
    const char *bos = special_text(c->v, lm_vocab_bos(c->v)), *eos = special_text(c->v, lm_vocab_eos(c->v));
    cb_puts(&b, ",\"bos_token\":");
    cb_json_str(&b, bos, strlen(bos));
    cb_puts(&b, ",\"eos_token\":");
    cb_json_str(&b, eos, strlen(eos));
    cb_puts(&b, "}");
    if (b.oom) {
        free(b.p);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "chat: out of memory");
    }
    char msg[512] = "";
    int rc = lm_tmpl_render(c->t, b.p, b.n, out, len, msg, sizeof msg);
    free(b.p);
    if (rc)
        return lm_fail(err, errlen, rc, "chat template: %s", msg);
    return LM_OK;
}

int lm_chat_render(const lm_chat *c, bool add_generation_prompt, char **out, size_t *len, char *err, size_t errlen)
{
    return render_range(c, 0, 0, add_generation_prompt, out, len, err, errlen);
}

/* The rendered conversation as tokens, with messages [head, head + drop) left out. */
static int render_tokens(const lm_chat *c, int head, int drop, int32_t **ids, int64_t *n, char *err,
                         size_t errlen)
{
    char *text;
    size_t len;
    int rc = render_range(c, head, head + drop, true, &text, &len, err, errlen);
    if (rc)
        return rc;
    unsigned warn = 0;
    char msg[512] = "";
    rc = lm_tokenize_w(c->v, text, len, true, true, ids, n, &warn, msg, sizeof msg);
    free(text);
    if (rc)
        return lm_fail(err, errlen, rc, "chat: tokenizing the conversation: %s", msg);
    if (*n == 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "chat: the template rendered no tokens");
    return LM_OK;
}

/* The tokens to send: the whole conversation, or with the oldest turns after the system prompt left
 * out until n_reserve positions stay free. *dropped: messages left out. */
static int fit_context(lm_chat *c, int32_t **ids, int64_t *n, int32_t *dropped, char *err, size_t errlen)
{
    int head = has_system(c) ? 1 : 0, last_user = -1;
    for (int i = c->n - 1; i >= 0 && last_user < 0; i--)
        if (!strcmp(c->msgs[i].role, "user"))
            last_user = i;
    int64_t n_ctx = lm_session_n_ctx(c->s);
    /* start from the last reply's drop point while it is still the start of a turn before the last
     * user message: the rendered prefix then stays the same */
    int d = c->dropped;
    if (d > 0 && (head + d > last_user || strcmp(c->msgs[head + d].role, "user")))
        d = 0;
    for (;;) {
        int rc = render_tokens(c, head, d, ids, n, err, errlen);
        if (rc)
            return rc;
        if (*n + c->n_reserve <= n_ctx)
            break;
        /* the next whole turn: one message, then up to the next user message */
        int k = head + d + 1;
        while (k < c->n && strcmp(c->msgs[k].role, "user"))
            k++;
        if (k > last_user || k >= c->n) {
            if (*n < n_ctx) /* no room for the whole reserve, but some */
                break;
            free(*ids);
            *ids = NULL;
            return lm_fail(err, errlen, LM_ERR_CONTEXT_FULL,
                           "the conversation needs %lld tokens even with the older turns left out, and the "
                           "context has %lld positions", (long long)*n, (long long)n_ctx);
        }
        free(*ids);
        *ids = NULL;
        d = k - head;
    }
    *dropped = d;
    return LM_OK;
}

/* ------------------------------------------------------------------------ replies */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool same_params(const lm_sampler_params *a, const lm_sampler_params *b)
{
    return a->temp == b->temp && a->top_k == b->top_k && a->top_p == b->top_p && a->min_p == b->min_p &&
           a->repeat_penalty == b->repeat_penalty && a->frequency_penalty == b->frequency_penalty &&
           a->presence_penalty == b->presence_penalty && a->repeat_last_n == b->repeat_last_n &&
           a->seed == b->seed && a->llama2c == b->llama2c;
}

/* The chat's sampler for these params: kept while they stay the same. */
static int get_sampler(lm_chat *c, const lm_sampler_params *p, char *err, size_t errlen)
{
    if (c->smp && same_params(&c->smp_params, p))
        return LM_OK;
    lm_sampler_free(c->smp);
    c->smp = NULL;
    char msg[256] = "";
    int rc = lm_sampler_create(p, lm_model_hparams(c->m)->n_vocab, &c->smp, msg, sizeof msg);
    if (rc)
        return lm_fail(err, errlen, rc, "sampling: %s", msg);
    c->smp_params = *p;
    return LM_OK;
}

/* The reply being generated: its text, how much of it went out, and the stop strings. */
typedef struct reply {
    cbuf text;
    size_t emitted;
    const lm_chat_gen *g;
    size_t max_stop;
    bool refused;     /* on_text returned false */
} reply;

/* Sends text[emitted, upto) to on_text. */
static void reply_emit(reply *r, size_t upto)
{
    if (upto <= r->emitted)
        return;
    if (r->g->on_text && !r->refused && !r->g->on_text(r->g->user, r->text.p + r->emitted, upto - r->emitted))
        r->refused = true;
    r->emitted = upto;
}

/* After new text: true when a stop string now appears (the text is cut before it). Otherwise emits
 * what can no longer be the start of a stop string. */
static bool reply_check(reply *r)
{
    const char *const *stop = r->g->stop;
    size_t n = r->text.n;
    if (stop && r->max_stop) {
        /* a match begins at or after the emitted text: what went out was no stop string's start */
        size_t best = n;
        for (int k = 0; stop[k]; k++) {
            size_t sl = strlen(stop[k]);
            if (!sl || sl > n - r->emitted)
                continue;
            const char *hit = memmem(r->text.p + r->emitted, n - r->emitted, stop[k], sl);
            if (hit && (size_t)(hit - r->text.p) < best)
                best = (size_t)(hit - r->text.p);
        }
        if (best < n) {
            r->text.n = best;
            r->text.p[best] = 0;
            reply_emit(r, best);
            return true;
        }
        /* hold back the longest tail that is a proper prefix of a stop string */
        size_t hold = 0;
        for (size_t t = (n - r->emitted < r->max_stop - 1 ? n - r->emitted : r->max_stop - 1); t > 0 && !hold; t--)
            for (int k = 0; stop[k] && !hold; k++)
                if (strlen(stop[k]) > t && !memcmp(r->text.p + n - t, stop[k], t))
                    hold = t;
        reply_emit(r, n - hold);
        return false;
    }
    reply_emit(r, n);
    return false;
}

static bool is_end(const lm_vocab *v, int32_t id)
{
    /* a BOS inside a reply ends it too (llama2.c checkpoints end their stories with BOS) */
    return lm_vocab_is_eog(v, id) || id == lm_vocab_bos(v);
}

int lm_chat_reply(lm_chat *c, const lm_chat_gen *g, lm_chat_stats *st, char *err, size_t errlen)
{
    lm_chat_stats local;
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    static const lm_chat_gen no_gen = { 0 };
    if (!g)
        g = &no_gen;
    lm_sampler_params sp;
    if (g->sampling) {
        sp = *g->sampling;
    } else {
        lm_sampler_defaults(&sp);
        sp.temp = 0;
    }
    int rc = get_sampler(c, &sp, err, errlen);
    if (rc)
        return rc;
    bool greedy = lm_sampler_is_greedy(&sp);

    /* the prompt: render, fit, sync */
    int32_t *ids = NULL;
    int64_t n = 0, reused = 0;
    int32_t dropped = 0;
    if ((rc = fit_context(c, &ids, &n, &dropped, err, errlen)))
        return rc;
    c->dropped = dropped;
    double t0 = now_s();
    int64_t ev0 = lm_session_n_evaluated(c->s);
    if ((rc = lm_session_sync(c->s, ids, n, c->logits, &reused, err, errlen))) {
        free(ids);
        return rc;
    }
    st->prompt_tokens = n;
    st->reused = reused;
    st->evaluated = lm_session_n_evaluated(c->s) - ev0;
    st->dropped = dropped;
    double t1 = now_s();
    st->prompt_s = t1 - t0;
    /* the penalty window sees the prompt, as in `vkllm run` */
    int64_t from = sp.repeat_last_n > 0 && n > sp.repeat_last_n ? n - sp.repeat_last_n : 0;
    for (int64_t i = from; i < n; i++)
        lm_sampler_accept(c->smp, ids[i]);
    /* the detokeniser sees the prompt's last token first, so that the reply's first piece keeps its
     * leading space (what the model wrote, and what re-tokenizes to the same tokens next turn) */
    const char *piece;
    size_t plen;
    lm_detok_reset(c->dt);
    lm_detok_push(c->dt, ids[n - 1], &piece, &plen);
    free(ids);

    reply r = { .g = g };
    for (int k = 0; g->stop && g->stop[k]; k++)
        if (strlen(g->stop[k]) > r.max_stop)
            r.max_stop = strlen(g->stop[k]);
    int32_t next = lm_sampler_sample(c->smp, c->logits);
    enum lm_chat_finish finish = LM_CHAT_STOP_EOG;
    for (;;) {
        lm_sampler_accept(c->smp, next);
        st->reply_tokens++;
        if (is_end(c->v, next)) {
            finish = LM_CHAT_STOP_EOG;
            break;
        }
        if ((rc = lm_detok_push(c->dt, next, &piece, &plen))) {
            lm_fail(err, errlen, rc, "chat: token %d: %s", next, lm_status_string(rc));
            goto fail;
        }
        cb_put(&r.text, piece, plen);
        if (reply_check(&r)) {
            finish = LM_CHAT_STOP_STRING;
            break;
        }
        if (r.refused || (g->abort && *g->abort)) {
            finish = LM_CHAT_STOP_ABORT;
            break;
        }
        if (g->max_tokens > 0 && st->reply_tokens >= g->max_tokens) {
            finish = LM_CHAT_STOP_LENGTH;
            break;
        }
        if (lm_session_n_past(c->s) >= lm_session_n_ctx(c->s)) {
            finish = LM_CHAT_STOP_CONTEXT;
            break;
        }
        if ((rc = lm_session_step(c->s, next, greedy ? NULL : c->logits, &next, err, errlen)))
            goto fail;
        if (!greedy)
            next = lm_sampler_sample(c->smp, c->logits);
    }
    if (finish != LM_CHAT_STOP_STRING) {
        if (lm_detok_flush(c->dt, &piece, &plen) == LM_OK)
            cb_put(&r.text, piece, plen);
        if (reply_check(&r))
            finish = LM_CHAT_STOP_STRING;
    }
    reply_emit(&r, r.text.n); /* the held-back tail */
    if (r.text.oom) {
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "chat: out of memory");
        goto fail;
    }
    st->finish = finish;
    st->reply_s = now_s() - t1;
    rc = lm_chat_add(c, "assistant", r.text.p ? r.text.p : "", r.text.n, err, errlen);
    free(r.text.p);
    return rc;
fail:
    free(r.text.p);
    return rc;
}
