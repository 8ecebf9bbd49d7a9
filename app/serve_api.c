/* serve_api.c: OpenAI's request and response JSON for `vkllm serve` (serve_api.h), with cJSON.
 *
 * Checking follows OpenAI's API reference: a field that is present and not null must have its type and
 * range, unknown fields are ignored, and what this server cannot do (n > 1, echo, image parts) is a
 * clear 400 rather than a silently different answer. */
#include "serve_api.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_PARAM 63

void srv_error_set(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt,
                   ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* A 400 about one field; returns false. */
static bool bad_field(srv_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool bad_field(srv_error *e, const char *param, const char *fmt, ...)
{
    e->status = 400;
    e->type = "invalid_request_error";
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}
#define BAD(param, ...) bad_field(e, param, __VA_ARGS__)

static bool add(cJSON *parent, const char *key, cJSON *item)
{
    bool ok = parent && item && (key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item));
    if (!ok)
        cJSON_Delete(item);
    return ok;
}

/* cJSON_PrintUnformatted and free, NULL when anything was lost (ok false) */
static char *print(cJSON *root, bool ok)
{
    char *s = ok && root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s)
        return NULL;
    char *out = strdup(s); /* the caller frees with free(), whatever cJSON's allocator */
    cJSON_free(s);
    return out;
}

char *srv_error_json(const srv_error *e)
{
    cJSON *root = cJSON_CreateObject(), *err = cJSON_CreateObject();
    bool ok = add(err, "message", cJSON_CreateString(e->message)) &&
              add(err, "type", cJSON_CreateString(e->type ? e->type : "server_error")) &&
              add(err, "param", e->param[0] ? cJSON_CreateString(e->param) : cJSON_CreateNull()) &&
              add(err, "code", e->code ? cJSON_CreateString(e->code) : cJSON_CreateNull());
    ok = add(root, "error", err) && ok;
    return print(root, ok);
}

long srv_utf8_invalid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0)
            k = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            k = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return (long)i;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return (long)i;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += k + 1;
    }
    return -1;
}

/* Whether the JSON text has a \u0000 escape inside a string (cJSON would cut the string there). */
static bool has_nul_escape(const char *s, size_t n)
{
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_str = false;
        } else if (s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4))
                return true;
            i++;
        }
    }
    return false;
}

void srv_make_id(char *out, size_t cap, const char *prefix)
{
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
        for (size_t i = 0; i < sizeof r; i++, x = x * 6364136223846793005ull + 1442695040888963407ull)
            r[i] = (unsigned char)(x >> 56);
    }
    int n = snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof r && n > 0 && (size_t)n + 2 < cap; i++, n += 2)
        snprintf(out + n, cap - (size_t)n, "%02x", r[i]);
}

/* ------------------------------------------------------------------------ fields */

/* The member key of o, NULL when absent or null (OpenAI treats null as not given). */
static const cJSON *field(const cJSON *o, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

static bool get_num(const cJSON *o, const char *key, double lo, double hi, bool lo_open, double *out, srv_error *e)
{
    const cJSON *f = field(o, key);
    if (!f)
        return true;
    if (!cJSON_IsNumber(f))
        return BAD(key, "'%s' must be a number", key);
    double v = f->valuedouble;
    if (!isfinite(v) || v < lo || v > hi || (lo_open && v == lo))
        return BAD(key, "'%s' must be a number in %c%g, %g]", key, lo_open ? '(' : '[', lo, hi);
    *out = v;
    return true;
}

static bool get_int(const cJSON *o, const char *key, double lo, double hi, long long *out, srv_error *e)
{
    const cJSON *f = field(o, key);
    if (!f)
        return true;
    if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble) || f->valuedouble != floor(f->valuedouble) ||
        f->valuedouble < lo || f->valuedouble > hi)
        return BAD(key, "'%s' must be an integer in [%.0f, %.0f]", key, lo, hi);
    *out = (long long)f->valuedouble;
    return true;
}

static bool get_bool(const cJSON *o, const char *key, bool *out, srv_error *e)
{
    const cJSON *f = field(o, key);
    if (!f)
        return true;
    if (!cJSON_IsBool(f))
        return BAD(key, "'%s' must be a boolean", key);
    *out = cJSON_IsTrue(f);
    return true;
}

/* "stop": a string or an array of strings, each non-empty. */
static bool get_stop(const cJSON *o, srv_request *r, srv_error *e)
{
    const cJSON *f = field(o, "stop");
    if (!f)
        return true;
    const cJSON *list[SRV_MAX_STOP];
    int n = 0;
    if (cJSON_IsString(f)) {
        list[n++] = f;
    } else if (cJSON_IsArray(f)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, f) {
            if (!cJSON_IsString(s))
                return BAD("stop", "'stop' must be a string or an array of strings");
            if (n == SRV_MAX_STOP)
                return BAD("stop", "'stop' has more than %d strings", SRV_MAX_STOP);
            list[n++] = s;
        }
    } else {
        return BAD("stop", "'stop' must be a string or an array of strings");
    }
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]->valuestring);
        if (!l)
            return BAD("stop", "'stop' strings must not be empty");
        bytes += l + 1;
    }
    if (!(r->stop_mem = malloc(bytes + 1))) {
        srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    char *p = r->stop_mem;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]->valuestring);
        memcpy(p, list[i]->valuestring, l + 1);
        r->gen.stop[i] = p;
        p += l + 1;
    }
    r->gen.n_stop = n;
    return true;
}

/* "logit_bias": {"token id": bias in [-100, 100], ...} */
static bool get_bias(const srv_api *a, const cJSON *o, srv_request *r, srv_error *e)
{
    const cJSON *f = field(o, "logit_bias");
    if (!f)
        return true;
    if (!cJSON_IsObject(f))
        return BAD("logit_bias", "'logit_bias' must be an object of token ids and biases");
    const cJSON *b;
    int32_t nv = lm_vocab_n_tokens(a->v);
    cJSON_ArrayForEach(b, f) {
        char *end;
        long id = strtol(b->string, &end, 10);
        if (!b->string[0] || *end || id < 0 || id >= nv)
            return BAD("logit_bias", "'logit_bias' key '%.32s' is not a token id in [0, %d)", b->string, nv);
        if (!cJSON_IsNumber(b) || !isfinite(b->valuedouble) || b->valuedouble < -100 || b->valuedouble > 100)
            return BAD("logit_bias", "'logit_bias' of token %ld must be a number in [-100, 100]", id);
        if (r->gen.n_bias == SRV_MAX_BIAS)
            return BAD("logit_bias", "'logit_bias' has more than %d tokens", SRV_MAX_BIAS);
        r->gen.bias_id[r->gen.n_bias] = (int32_t)id;
        /* -100 bans the token, as OpenAI says */
        r->gen.bias[r->gen.n_bias++] = b->valuedouble <= -100 ? -INFINITY : (float)b->valuedouble;
    }
    return true;
}

/* The sampling fields over the server's defaults. */
static bool get_sampling(const srv_api *a, const cJSON *o, srv_request *r, srv_error *e)
{
    lm_sampler_params *p = &r->gen.sampling;
    *p = a->defaults;
    double d;
    long long l;
    d = p->temp;
    if (!get_num(o, "temperature", 0, 2, false, &d, e))
        return false;
    p->temp = (float)d;
    d = p->top_p;
    if (!get_num(o, "top_p", 0, 1, false, &d, e))
        return false;
    p->top_p = d > 0 ? (float)d : 1e-9f; /* 0: only the most likely token */
    l = p->top_k;
    if (!get_int(o, "top_k", 0, 2147483647.0, &l, e))
        return false;
    p->top_k = (int32_t)l;
    d = p->min_p;
    if (!get_num(o, "min_p", 0, 1, false, &d, e))
        return false;
    p->min_p = (float)d;
    d = p->presence_penalty;
    if (!get_num(o, "presence_penalty", -2, 2, false, &d, e))
        return false;
    p->presence_penalty = (float)d;
    d = p->frequency_penalty;
    if (!get_num(o, "frequency_penalty", -2, 2, false, &d, e))
        return false;
    p->frequency_penalty = (float)d;
    d = p->repeat_penalty; /* llama.cpp's, beside OpenAI's */
    if (!get_num(o, "repeat_penalty", 0, 100, true, &d, e))
        return false;
    p->repeat_penalty = (float)d;
    const cJSON *seed = field(o, "seed");
    if (seed) {
        if (!cJSON_IsNumber(seed) || !isfinite(seed->valuedouble) || seed->valuedouble != floor(seed->valuedouble) ||
            seed->valuedouble < -1 || seed->valuedouble > 9007199254740992.0)
            return BAD("seed", "'seed' must be an integer in [0, 2^53] (or -1: a random seed)");
        p->seed = seed->valuedouble < 0 ? LM_SAMPLER_SEED_RANDOM : (uint64_t)seed->valuedouble;
    }
    char msg[256];
    if (lm_sampler_params_check(p, msg, sizeof msg))
        return BAD(NULL, "%s", msg);
    return true;
}

/* ------------------------------------------------------------------------ prompts */

static bool oom(srv_error *e)
{
    srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

static bool tokenize(const srv_api *a, const char *text, size_t len, bool parse_special, srv_request *r,
                     srv_error *e)
{
    char msg[512];
    int rc = lm_tokenize(a->v, text, len, true, parse_special, &r->ids, &r->n_ids, msg, sizeof msg);
    if (rc == LM_ERR_NOMEM)
        return oom(e);
    if (rc)
        return BAD(r->kind == SRV_CHAT ? "messages" : "prompt", "the prompt cannot be tokenized: %s", msg);
    if (r->n_ids == 0) {
        /* an empty prompt starts from BOS, as `vkllm run` does */
        int32_t bos = lm_vocab_bos(a->v);
        if (bos < 0)
            return BAD("prompt", "an empty prompt needs a BOS token, and this model's vocabulary has none");
        free(r->ids);
        if (!(r->ids = malloc(sizeof *r->ids)))
            return oom(e);
        r->ids[0] = bos;
        r->n_ids = 1;
    }
    return true;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts (joined); null only
 * for an assistant's message. */
static bool content_text(const cJSON *c, int i, bool null_ok, cJSON **out, srv_error *e)
{
    char param[MAX_PARAM + 1];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (!c || cJSON_IsNull(c)) {
        if (!null_ok)
            return BAD(param, "'%s' is missing", param);
        *out = cJSON_CreateString("");
        return *out ? true : oom(e);
    }
    if (cJSON_IsString(c)) {
        *out = cJSON_CreateString(c->valuestring);
        return *out ? true : oom(e);
    }
    if (!cJSON_IsArray(c))
        return BAD(param, "'%s' must be a string or an array of text parts", param);
    size_t n = 0;
    const cJSON *part;
    int k = 0;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return BAD(param, "'%s[%d]' must be an object with a \"type\"", param, k);
        if (strcmp(type->valuestring, "text"))
            return BAD(param, "'%s[%d]' is of type '%.64s': only text parts are supported", param, k,
                       type->valuestring);
        if (!cJSON_IsString(text))
            return BAD(param, "'%s[%d].text' must be a string", param, k);
        n += strlen(text->valuestring);
        k++;
    }
    char *s = malloc(n + 1);
    if (!s)
        return oom(e);
    size_t at = 0;
    cJSON_ArrayForEach(part, c) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t l = strlen(t);
        memcpy(s + at, t, l);
        at += l;
    }
    s[at] = 0;
    *out = cJSON_CreateString(s);
    free(s);
    return *out ? true : oom(e);
}

/* "messages" rendered with the chat template, then tokenized (special tokens parsed, as lm_chat does). */
static bool chat_prompt(const srv_api *a, const cJSON *root, srv_request *r, srv_error *e)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs)
        return BAD("messages", "'messages' is required");
    if (!cJSON_IsArray(msgs))
        return BAD("messages", "'messages' must be an array of messages");
    if (!cJSON_GetArraySize(msgs))
        return BAD("messages", "'messages' must not be empty");
    cJSON *ctx = cJSON_CreateObject(), *list = cJSON_CreateArray();
    bool ok = add(ctx, "messages", list);
    if (!ok) {
        cJSON_Delete(ctx);
        return oom(e);
    }
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, msgs) {
        char param[MAX_PARAM + 1];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) {
            cJSON_Delete(ctx);
            return BAD(param, "'%s' must be an object with \"role\" and \"content\"", param);
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!cJSON_IsString(role)) {
            cJSON_Delete(ctx);
            return BAD(param, "'%s' must be a string", param);
        }
        const char *rs = role->valuestring;
        if (!strcmp(rs, "developer"))
            rs = "system"; /* OpenAI's newer name for it */
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
            cJSON_Delete(ctx);
            return BAD(param, "'%s' is '%.64s': it must be system, user or assistant", param, role->valuestring);
        }
        cJSON *content = NULL;
        if (!content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, !strcmp(rs, "assistant"), &content, e)) {
            cJSON_Delete(ctx);
            return false;
        }
        cJSON *o = cJSON_CreateObject();
        if (!add(o, "role", cJSON_CreateString(rs)) || !add(o, "content", content) || !add(list, NULL, o)) {
            cJSON_Delete(o);
            cJSON_Delete(ctx);
            return oom(e);
        }
        i++;
    }
    size_t blen, elen;
    int32_t bos = lm_vocab_bos(a->v), eos = lm_vocab_eos(a->v);
    const char *bt = bos >= 0 ? lm_token_text(a->v, bos, &blen) : "";
    const char *et = eos >= 0 ? lm_token_text(a->v, eos, &elen) : "";
    ok = add(ctx, "add_generation_prompt", cJSON_CreateTrue()) && add(ctx, "bos_token", cJSON_CreateString(bt ? bt : "")) &&
         add(ctx, "eos_token", cJSON_CreateString(et ? et : ""));
    char *json = print(ctx, ok);
    if (!json)
        return oom(e);
    char *text = NULL, msg[512];
    size_t tlen;
    int rc = lm_tmpl_render(a->tmpl, json, strlen(json), &text, &tlen, msg, sizeof msg);
    free(json);
    if (rc == LM_ERR_NOMEM)
        return oom(e);
    if (rc)
        return BAD("messages", "the chat template cannot render these messages: %s", msg);
    ok = tokenize(a, text, tlen, true, r, e);
    free(text);
    return ok;
}

/* "prompt": a string, an array of one string, or token ids (an array of integers, or of one). */
static bool completion_prompt(const srv_api *a, const cJSON *root, srv_request *r, srv_error *e)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p || cJSON_IsNull(p))
        return BAD("prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && (cJSON_IsString(p->child) || cJSON_IsArray(p->child)))
        p = p->child;
    if (cJSON_IsString(p))
        return tokenize(a, p->valuestring, strlen(p->valuestring), false, r, e);
    if (!cJSON_IsArray(p))
        return BAD("prompt", "'prompt' must be a string, or an array of token ids");
    int n = cJSON_GetArraySize(p);
    if (n == 0)
        return BAD("prompt", "'prompt' is an empty array");
    if (!(r->ids = malloc(sizeof *r->ids * (size_t)n)))
        return oom(e);
    const cJSON *t;
    int32_t nv = lm_vocab_n_tokens(a->v);
    cJSON_ArrayForEach(t, p) {
        if (cJSON_IsString(t))
            return BAD("prompt", "'prompt' has several prompts: only one per request is supported");
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 || t->valuedouble >= nv)
            return BAD("prompt", "'prompt[%lld]' is not a token id in [0, %d)", (long long)r->n_ids, nv);
        r->ids[r->n_ids++] = (int32_t)t->valuedouble;
    }
    return true;
}

void srv_request_free(srv_request *r)
{
    free(r->model);
    free(r->stop_mem);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

/* The body as one JSON object: valid UTF-8, no NUL, nothing after it. NULL with e filled otherwise. */
static cJSON *parse_body(const char *body, size_t len, srv_error *e)
{
    long bad = srv_utf8_invalid(body, len);
    if (bad >= 0)
        return BAD(NULL, "the request body is not valid UTF-8 (byte %ld)", bad), NULL;
    if (has_nul_escape(body, len))
        return BAD(NULL, "the request has a \\u0000 character in a string: NUL characters are not supported"), NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        size_t off = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        return BAD(NULL, "the request body is not valid JSON (at byte %zu)", off), NULL;
    }
    while (end && end < body + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end && end < body + len)
        BAD(NULL, "the request body has text after its JSON value (at byte %zu)", (size_t)(end - body));
    else if (!cJSON_IsObject(root))
        BAD(NULL, "the request body must be a JSON object");
    else
        return root;
    cJSON_Delete(root);
    return NULL;
}

bool srv_parse_request(const srv_api *a, enum srv_kind kind, const char *body, size_t len, srv_request *r,
                       srv_error *e)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->gen.n_logprobs = -1;
    if (a->encoder)
        return BAD("model", "%s is an encoder: it computes embeddings (POST /v1/embeddings) and cannot generate text",
                   a->model_id);
    cJSON *root = parse_body(body, len, e);
    if (!root)
        return false;
    bool ok = false;
    const cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model)) {
        BAD("model", "'model' must be a string");
        goto out;
    }
    if (model && !(r->model = strdup(model->valuestring))) {
        oom(e);
        goto out;
    }
    long long n = 1;
    if (!get_int(root, "n", 0, 1e9, &n, e))
        goto out;
    if (n != 1) {
        BAD("n", "'n' is %lld: only n = 1 is supported", n);
        goto out;
    }
    if (!get_bool(root, "stream", &r->stream, e))
        goto out;
    const cJSON *so = field(root, "stream_options");
    if (so && !cJSON_IsObject(so)) {
        BAD("stream_options", "'stream_options' must be an object");
        goto out;
    }
    if (so && !get_bool(so, "include_usage", &r->include_usage, e))
        goto out;
    if (!get_sampling(a, root, r, e) || !get_stop(root, r, e) || !get_bool(root, "ignore_eos", &r->gen.ignore_eos, e) ||
        !get_bias(a, root, r, e))
        goto out;
    /* the length: max_completion_tokens (chat's newer name) before max_tokens */
    long long max = 0;
    const char *max_key = field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    bool max_given = field(root, max_key) != NULL;
    if (!get_int(root, max_key, 1, 2147483647.0, &max, e))
        goto out;
    if (!max_given && kind == SRV_COMPLETION)
        max = 16; /* OpenAI's default for completions */
    r->gen.max_tokens = (int32_t)max;
    if (kind == SRV_CHAT) {
        bool lp = false;
        long long top = -1;
        if (!get_bool(root, "logprobs", &lp, e) || !get_int(root, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &top, e))
            goto out;
        if (top >= 0 && !lp) {
            BAD("top_logprobs", "'top_logprobs' needs 'logprobs': true");
            goto out;
        }
        r->gen.n_logprobs = lp ? (int)(top < 0 ? 0 : top) : -1;
        if (!chat_prompt(a, root, r, e))
            goto out;
    } else {
        long long lp = -1;
        if (!get_int(root, "logprobs", 0, SRV_MAX_TOP_LOGPROBS, &lp, e))
            goto out;
        r->gen.n_logprobs = (int)lp;
        bool echo = false;
        if (!get_bool(root, "echo", &echo, e))
            goto out;
        if (echo) {
            BAD("echo", "'echo' is not supported");
            goto out;
        }
        long long best_of = 1;
        if (!get_int(root, "best_of", 0, 1e9, &best_of, e))
            goto out;
        if (best_of != 1) {
            BAD("best_of", "'best_of' is %lld: only 1 is supported", best_of);
            goto out;
        }
        const cJSON *suffix = field(root, "suffix");
        if (suffix && (!cJSON_IsString(suffix) || suffix->valuestring[0])) {
            BAD("suffix", "'suffix' is not supported");
            goto out;
        }
        if (!completion_prompt(a, root, r, e))
            goto out;
    }
    if (r->n_ids >= a->n_ctx) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", kind == SRV_CHAT ? "messages" : "prompt",
                      "the prompt is %lld tokens and the context holds %d: it must be shorter (or the server's "
                      "--ctx-size larger)", (long long)r->n_ids, a->n_ctx);
        goto out;
    }
    if (max_given && r->n_ids + max > a->n_ctx) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", max_key,
                      "'%s' is %lld: with the prompt's %lld tokens that is more than the context of %d tokens",
                      max_key, max, (long long)r->n_ids, a->n_ctx);
        goto out;
    }
    /* a request must fit the KV pool alone (a pool smaller than a context: --kv-blocks) */
    if (a->kv_positions && r->n_ids >= a->kv_positions) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", kind == SRV_CHAT ? "messages" : "prompt",
                      "the prompt is %lld tokens and the server's KV cache holds %lld positions in all: it must be "
                      "shorter (or the server's --kv-blocks more)", (long long)r->n_ids, (long long)a->kv_positions);
        goto out;
    }
    if (a->kv_positions && max_given && r->n_ids + max > a->kv_positions) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", max_key,
                      "'%s' is %lld: with the prompt's %lld tokens that is more than the server's KV cache holds "
                      "(%lld positions; --kv-blocks)", max_key, max, (long long)r->n_ids, (long long)a->kv_positions);
        goto out;
    }
    ok = true;
out:
    cJSON_Delete(root);
    return ok;
}

/* ------------------------------------------------------------------------ responses */

const char *srv_finish_reason(enum srv_finish f)
{
    return f == SRV_FINISH_LENGTH ? "length" : "stop";
}

/* A token's text as a JSON string: its bytes, with those that are not valid UTF-8 (half a character)
 * as U+FFFD. */
static cJSON *token_string(const lm_vocab *v, int32_t id, const char **bytes, size_t *n)
{
    const char *p = lm_token_piece(v, id, n);
    if (!p)
        p = "", *n = 0;
    *bytes = p;
    char *s = malloc(*n * 3 + 1);
    if (!s)
        return NULL;
    size_t o = 0, i = 0;
    while (i < *n) {
        long bad = srv_utf8_invalid(p + i, *n - i);
        size_t good = bad < 0 ? *n - i : (size_t)bad;
        memcpy(s + o, p + i, good);
        o += good;
        i += good;
        if (bad >= 0) {
            memcpy(s + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    for (size_t k = 0; k < o; k++)
        if (!s[k])
            s[k] = ' '; /* cJSON strings end at NUL */
    s[o] = 0;
    cJSON *j = cJSON_CreateString(s);
    free(s);
    return j;
}

static cJSON *bytes_array(const char *b, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        if (!add(a, NULL, cJSON_CreateNumber((unsigned char)b[i]))) {
            cJSON_Delete(a);
            return NULL;
        }
    return a;
}

/* chat: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]} */
static cJSON *chat_logprobs(const srv_api *a, const srv_token *toks, int64_t n)
{
    cJSON *root = cJSON_CreateObject(), *content = cJSON_CreateArray();
    bool ok = add(root, "content", content);
    for (int64_t i = 0; i < n && ok; i++) {
        cJSON *t = cJSON_CreateObject(), *top = cJSON_CreateArray();
        const char *b;
        size_t bn;
        ok = add(t, "token", token_string(a->v, toks[i].id, &b, &bn)) &&
             add(t, "logprob", cJSON_CreateNumber(toks[i].logprob)) && add(t, "bytes", bytes_array(b, bn));
        for (int k = 0; k < toks[i].n_top && ok; k++) {
            cJSON *alt = cJSON_CreateObject();
            ok = add(alt, "token", token_string(a->v, toks[i].top_id[k], &b, &bn)) &&
                 add(alt, "logprob", cJSON_CreateNumber(toks[i].top_lp[k])) && add(alt, "bytes", bytes_array(b, bn));
            ok = add(top, NULL, alt) && ok;
        }
        ok = add(t, "top_logprobs", top) && ok;
        ok = add(content, NULL, t) && ok;
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* completions: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"} */
static cJSON *completion_logprobs(const srv_api *a, const srv_token *toks, int64_t n, size_t *offset)
{
    cJSON *root = cJSON_CreateObject(), *tokens = cJSON_CreateArray(), *lps = cJSON_CreateArray(),
          *tops = cJSON_CreateArray(), *offs = cJSON_CreateArray();
    bool ok = add(root, "tokens", tokens) && add(root, "token_logprobs", lps) && add(root, "top_logprobs", tops) &&
              add(root, "text_offset", offs);
    for (int64_t i = 0; i < n && ok; i++) {
        const char *b;
        size_t bn;
        ok = add(tokens, NULL, token_string(a->v, toks[i].id, &b, &bn)) &&
             add(lps, NULL, cJSON_CreateNumber(toks[i].logprob)) && add(offs, NULL, cJSON_CreateNumber((double)*offset));
        *offset += bn;
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < toks[i].n_top && ok; k++) {
            cJSON *s = token_string(a->v, toks[i].top_id[k], &b, &bn);
            ok = s && s->valuestring;
            if (ok && !cJSON_GetObjectItemCaseSensitive(top, s->valuestring))
                ok = add(top, s->valuestring, cJSON_CreateNumber(toks[i].top_lp[k]));
            cJSON_Delete(s);
        }
        ok = add(tops, NULL, top) && ok;
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* id, object, created, model: what every response and chunk starts with */
static cJSON *head(const srv_api *a, const srv_request *r, const char *id, const char *object, long long created)
{
    cJSON *root = cJSON_CreateObject();
    if (!add(root, "id", cJSON_CreateString(id)) || !add(root, "object", cJSON_CreateString(object)) ||
        !add(root, "created", cJSON_CreateNumber((double)created)) ||
        !add(root, "model", cJSON_CreateString(r->model && r->model[0] ? r->model : a->model_id)) ||
        !add(root, "system_fingerprint", cJSON_CreateString("vkllm"))) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* a string of n bytes (cJSON strings end at a NUL: NUL bytes become spaces) */
static cJSON *string_n(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++)
        c[i] = s[i] ? s[i] : ' ';
    c[n] = 0;
    cJSON *j = cJSON_CreateString(c);
    free(c);
    return j;
}

static cJSON *usage(const srv_update *end)
{
    cJSON *u = cJSON_CreateObject(), *details = cJSON_CreateObject();
    bool ok = add(u, "prompt_tokens", cJSON_CreateNumber((double)end->prompt_tokens)) &&
              add(u, "completion_tokens", cJSON_CreateNumber((double)end->completion_tokens)) &&
              add(u, "total_tokens", cJSON_CreateNumber((double)(end->prompt_tokens + end->completion_tokens))) &&
              add(details, "cached_tokens", cJSON_CreateNumber((double)end->cached_tokens));
    ok = add(u, "prompt_tokens_details", details) && ok;
    if (!ok) {
        cJSON_Delete(u);
        return NULL;
    }
    return u;
}

char *srv_json_response(const srv_api *a, const srv_request *r, const char *id, long long created, const char *text,
                        size_t n_text, const srv_token *toks, int64_t n_toks, const srv_update *end)
{
    bool chat = r->kind == SRV_CHAT;
    cJSON *root = head(a, r, id, chat ? "chat.completion" : "text_completion", created);
    cJSON *choices = cJSON_CreateArray(), *c = cJSON_CreateObject();
    bool ok = root != NULL && add(c, "index", cJSON_CreateNumber(0));
    if (chat) {
        cJSON *msg = cJSON_CreateObject();
        ok = add(msg, "role", cJSON_CreateString("assistant")) && add(msg, "content", string_n(text, n_text)) && ok;
        ok = add(c, "message", msg) && ok;
    } else {
        ok = add(c, "text", string_n(text, n_text)) && ok;
    }
    size_t off = 0;
    if (r->gen.n_logprobs >= 0)
        ok = add(c, "logprobs", chat ? chat_logprobs(a, toks, n_toks) : completion_logprobs(a, toks, n_toks, &off)) && ok;
    else
        ok = add(c, "logprobs", cJSON_CreateNull()) && ok;
    ok = add(c, "finish_reason", cJSON_CreateString(srv_finish_reason(end->finish))) && ok;
    ok = add(choices, NULL, c) && ok;
    ok = add(root, "choices", choices) && ok;
    ok = add(root, "usage", usage(end)) && ok;
    return print(root, ok);
}

char *srv_json_chunk(const srv_api *a, const srv_request *r, const char *id, long long created, const char *text,
                     size_t n_text, const srv_token *toks, int64_t n_toks, const char *finish, bool role,
                     size_t *text_offset)
{
    bool chat = r->kind == SRV_CHAT;
    cJSON *root = head(a, r, id, chat ? "chat.completion.chunk" : "text_completion", created);
    cJSON *choices = cJSON_CreateArray(), *c = cJSON_CreateObject();
    bool ok = root != NULL && add(c, "index", cJSON_CreateNumber(0));
    if (chat) {
        cJSON *delta = cJSON_CreateObject();
        if (role)
            ok = add(delta, "role", cJSON_CreateString("assistant")) && add(delta, "content", cJSON_CreateString("")) && ok;
        else if (n_text || !finish)
            ok = add(delta, "content", string_n(text, n_text)) && ok;
        ok = add(c, "delta", delta) && ok;
    } else {
        ok = add(c, "text", string_n(text, n_text)) && ok;
    }
    if (r->gen.n_logprobs >= 0 && n_toks)
        ok = add(c, "logprobs", chat ? chat_logprobs(a, toks, n_toks) : completion_logprobs(a, toks, n_toks, text_offset)) &&
             ok;
    else
        ok = add(c, "logprobs", cJSON_CreateNull()) && ok;
    ok = add(c, "finish_reason", finish ? cJSON_CreateString(finish) : cJSON_CreateNull()) && ok;
    ok = add(choices, NULL, c) && ok;
    ok = add(root, "choices", choices) && ok;
    return print(root, ok);
}

char *srv_json_usage_chunk(const srv_api *a, const srv_request *r, const char *id, long long created,
                           const srv_update *end)
{
    bool chat = r->kind == SRV_CHAT;
    cJSON *root = head(a, r, id, chat ? "chat.completion.chunk" : "text_completion", created);
    bool ok = root != NULL && add(root, "choices", cJSON_CreateArray());
    ok = add(root, "usage", usage(end)) && ok;
    return print(root, ok);
}

char *srv_json_models(const srv_api *a, long long created)
{
    cJSON *root = cJSON_CreateObject(), *data = cJSON_CreateArray(), *m = cJSON_CreateObject();
    bool ok = add(root, "object", cJSON_CreateString("list")) && add(m, "id", cJSON_CreateString(a->model_id)) &&
              add(m, "object", cJSON_CreateString("model")) && add(m, "created", cJSON_CreateNumber((double)created)) &&
              add(m, "owned_by", cJSON_CreateString("vkllm"));
    cJSON *meta = cJSON_CreateObject();
    ok = add(meta, "n_ctx", cJSON_CreateNumber(a->n_ctx)) &&
         add(meta, "n_vocab", cJSON_CreateNumber(lm_vocab_n_tokens(a->v))) && ok;
    ok = add(m, "meta", meta) && ok;
    ok = add(data, NULL, m) && ok;
    ok = add(root, "data", data) && ok;
    return print(root, ok);
}

/* ------------------------------------------------------------------------ embeddings */

void srv_embed_request_free(srv_embed_request *r)
{
    for (int i = 0; r->ids && i < r->n_inputs; i++)
        free(r->ids[i]);
    free(r->ids);
    free(r->n_ids);
    free(r->model);
    memset(r, 0, sizeof *r);
}

/* One input's tokens into r->ids[r->n_inputs]: a string (tokenized as lm_embed_texts does: with the
 * vocabulary's special tokens, [CLS] .. [SEP] or BOS) or an array of token ids. param names it. */
static bool embed_input(const srv_api *a, const cJSON *in, const char *param, srv_embed_request *r, srv_error *e)
{
    int k = r->n_inputs++; /* counted now: srv_embed_request_free frees what it holds on any failure */
    if (cJSON_IsString(in)) {
        if (!in->valuestring[0])
            return BAD("input", "'%s' is an empty string", param);
        char msg[512];
        int rc = lm_tokenize(a->v, in->valuestring, strlen(in->valuestring), true, false, &r->ids[k], &r->n_ids[k], msg,
                             sizeof msg);
        if (rc == LM_ERR_NOMEM)
            return oom(e);
        if (rc)
            return BAD("input", "'%s' cannot be tokenized: %s", param, msg);
    } else {
        int n = cJSON_GetArraySize(in);
        if (!n)
            return BAD("input", "'%s' is an empty array of token ids", param);
        if (!(r->ids[k] = malloc(sizeof *r->ids[k] * (size_t)n)))
            return oom(e);
        const cJSON *t;
        int32_t nv = lm_vocab_n_tokens(a->v);
        cJSON_ArrayForEach(t, in) {
            if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
                t->valuedouble >= nv)
                return BAD("input", "'%s[%lld]' is not a token id in [0, %d)", param, (long long)r->n_ids[k], nv);
            r->ids[k][r->n_ids[k]++] = (int32_t)t->valuedouble;
        }
    }
    if (!r->n_ids[k])
        return BAD("input", "'%s' has no tokens", param);
    if (r->n_ids[k] > a->embed_ctx) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", "input",
                      "'%s' is %lld tokens, more than the model's context of %d", param, (long long)r->n_ids[k],
                      a->embed_ctx);
        return false;
    }
    r->n_tokens += r->n_ids[k];
    return true;
}

bool srv_parse_embed_request(const srv_api *a, const char *body, size_t len, srv_embed_request *r, srv_error *e)
{
    memset(r, 0, sizeof *r);
    cJSON *root = parse_body(body, len, e);
    if (!root)
        return false;
    bool ok = false;
    const cJSON *model = field(root, "model"), *fmt = field(root, "encoding_format"), *in = field(root, "input");
    long long dims = a->dim;
    if (model && !cJSON_IsString(model)) {
        BAD("model", "'model' must be a string");
        goto out;
    }
    if (model && !(r->model = strdup(model->valuestring))) {
        oom(e);
        goto out;
    }
    if (fmt && (!cJSON_IsString(fmt) || (strcmp(fmt->valuestring, "float") && strcmp(fmt->valuestring, "base64")))) {
        BAD("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        goto out;
    }
    r->base64 = fmt && !strcmp(fmt->valuestring, "base64");
    if (!get_int(root, "dimensions", 1, 1e9, &dims, e))
        goto out;
    if (dims != a->dim) {
        BAD("dimensions", "'dimensions' is %lld: this model's embeddings have %d", dims, a->dim);
        goto out;
    }
    if (!in) {
        BAD("input", "'input' is required");
        goto out;
    }
    /* one input (a string, or an array of token ids), or an array of them */
    bool many = cJSON_IsArray(in) && cJSON_GetArraySize(in) && !cJSON_IsNumber(in->child);
    int n = many ? cJSON_GetArraySize(in) : 1;
    if (!cJSON_IsString(in) && !cJSON_IsArray(in)) {
        BAD("input", "'input' must be a string, an array of strings, an array of token ids or an array of those");
        goto out;
    }
    if (cJSON_IsArray(in) && !cJSON_GetArraySize(in)) {
        BAD("input", "'input' is an empty array");
        goto out;
    }
    if (n > SRV_MAX_EMBED_INPUTS) {
        BAD("input", "'input' has %d inputs: at most %d per request", n, SRV_MAX_EMBED_INPUTS);
        goto out;
    }
    if (!(r->ids = calloc((size_t)n, sizeof *r->ids)) || !(r->n_ids = calloc((size_t)n, sizeof *r->n_ids))) {
        oom(e);
        goto out;
    }
    if (!many) {
        if (!embed_input(a, in, "input", r, e))
            goto out;
    } else {
        const cJSON *x;
        int i = 0;
        cJSON_ArrayForEach(x, in) {
            char param[MAX_PARAM + 1];
            snprintf(param, sizeof param, "input[%d]", i++);
            if (!cJSON_IsString(x) && !cJSON_IsArray(x)) {
                BAD("input", "'%s' must be a string or an array of token ids (as every input is)", param);
                goto out;
            }
            if (!embed_input(a, x, param, r, e))
                goto out;
        }
    }
    ok = true;
out:
    cJSON_Delete(root);
    return ok;
}

/* a vector as JSON numbers: %.9g gives every float32 back exactly */
static char *float_list(const float *v, int32_t dim)
{
    size_t cap = (size_t)dim * 18 + 3, n = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[n++] = '[';
    for (int32_t i = 0; i < dim; i++)
        n += (size_t)snprintf(s + n, cap - n, i ? ",%.9g" : "%.9g", (double)v[i]);
    s[n++] = ']';
    s[n] = 0;
    return s;
}

/* the float32 values' little-endian bytes in base64 (RFC 4648, padded) */
static char *float_base64(const float *v, int32_t dim)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = (size_t)dim * 4;
    unsigned char *b = malloc(nb);
    char *s = malloc((nb + 2) / 3 * 4 + 1);
    if (!b || !s) {
        free(b);
        free(s);
        return NULL;
    }
    for (int32_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            b[(size_t)i * 4 + (size_t)k] = (unsigned char)(u >> (8 * k));
    }
    size_t o = 0;
    for (size_t i = 0; i < nb; i += 3) {
        uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < nb ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < nb ? b[i + 2] : 0);
        s[o++] = tab[x >> 18 & 63];
        s[o++] = tab[x >> 12 & 63];
        s[o++] = i + 1 < nb ? tab[x >> 6 & 63] : '=';
        s[o++] = i + 2 < nb ? tab[x & 63] : '=';
    }
    s[o] = 0;
    free(b);
    return s;
}

char *srv_json_embeddings(const srv_api *a, const srv_embed_request *r, const float *vecs, bool *finite)
{
    *finite = true;
    for (size_t i = 0; i < (size_t)r->n_inputs * (size_t)a->dim; i++)
        if (!isfinite(vecs[i]))
            return *finite = false, NULL;
    cJSON *root = cJSON_CreateObject(), *data = cJSON_CreateArray(), *u = cJSON_CreateObject();
    bool ok = add(root, "object", cJSON_CreateString("list"));
    for (int i = 0; i < r->n_inputs && ok; i++) {
        const float *v = vecs + (size_t)i * (size_t)a->dim;
        char *text = r->base64 ? float_base64(v, a->dim) : float_list(v, a->dim);
        cJSON *d = cJSON_CreateObject();
        ok = text && add(d, "object", cJSON_CreateString("embedding")) && add(d, "index", cJSON_CreateNumber(i)) &&
             add(d, "embedding", r->base64 ? cJSON_CreateString(text) : cJSON_CreateRaw(text));
        free(text);
        ok = add(data, NULL, d) && ok;
    }
    ok = add(root, "data", data) && ok;
    ok = add(root, "model", cJSON_CreateString(r->model && r->model[0] ? r->model : a->model_id)) && ok;
    ok = add(u, "prompt_tokens", cJSON_CreateNumber((double)r->n_tokens)) &&
         add(u, "total_tokens", cJSON_CreateNumber((double)r->n_tokens)) && ok;
    ok = add(root, "usage", u) && ok;
    return print(root, ok);
}
