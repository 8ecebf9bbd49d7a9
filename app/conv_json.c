/* conv_json.c: conversation files (conv_json.h), read and written with cJSON. */
#include "conv_json.h"

#include "app.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

void conv_free(conv *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        free(c->msgs[i].role);
        free(c->msgs[i].content);
    }
    free(c->msgs);
    c->msgs = NULL;
    c->n = 0;
}

/* The text of a content: a string, null, or a list of {"type": "text", "text": ...} parts joined. */
static char *content_text(const cJSON *content, size_t *len, const char *name, int i, char *err, size_t errlen)
{
    if (!content || cJSON_IsNull(content)) {
        *len = 0;
        return strdup("");
    }
    if (cJSON_IsString(content)) {
        *len = strlen(content->valuestring);
        return strdup(content->valuestring);
    }
    if (!cJSON_IsArray(content)) {
        fail(err, errlen, "%s: message %d: \"content\" is neither a string nor a list of parts", name, i + 1);
        return NULL;
    }
    size_t n = 0;
    const cJSON *part;
    int k = 0;
    cJSON_ArrayForEach(part, content) {
        k++;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || (type && !cJSON_IsString(type))) {
            fail(err, errlen, "%s: message %d: content part %d is not an object with a \"type\"", name, i + 1, k);
            return NULL;
        }
        if (type && strcmp(type->valuestring, "text")) {
            fail(err, errlen, "%s: message %d: content part %d is of type '%s'; only text is supported", name, i + 1,
                 k, type->valuestring);
            return NULL;
        }
        if (!cJSON_IsString(text)) {
            fail(err, errlen, "%s: message %d: content part %d has no \"text\" string", name, i + 1, k);
            return NULL;
        }
        n += strlen(text->valuestring);
    }
    char *s = malloc(n + 1);
    if (!s) {
        fail(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    size_t at = 0;
    cJSON_ArrayForEach(part, content) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t l = strlen(t);
        memcpy(s + at, t, l);
        at += l;
    }
    s[at] = 0;
    *len = at;
    return s;
}

/* Line and column (from 1) of byte offset off in text. */
static void line_col(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

bool conv_parse(const char *text, size_t len, const char *name, conv *out, char *err, size_t errlen)
{
    out->msgs = NULL;
    out->n = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
        int line, col;
        line_col(text, off, &line, &col);
        return fail(err, errlen, "%s: not valid JSON (line %d, column %d)", name, line, col);
    }
    bool ok = false;
    while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end && end < text + len) {
        int line, col;
        line_col(text, (size_t)(end - text), &line, &col);
        fail(err, errlen, "%s: text after the JSON value (line %d, column %d)", name, line, col);
        goto out;
    }
    const cJSON *list = root;
    if (cJSON_IsObject(root)) {
        list = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (!cJSON_IsArray(list)) {
            fail(err, errlen, "%s: an object without a \"messages\" array (a conversation is a list of "
                 "{\"role\", \"content\"} messages)", name);
            goto out;
        }
    } else if (!cJSON_IsArray(root)) {
        fail(err, errlen, "%s: not a conversation: want a list of {\"role\", \"content\"} messages", name);
        goto out;
    }
    int n = cJSON_GetArraySize(list);
    if (n > 0 && !(out->msgs = calloc((size_t)n, sizeof *out->msgs))) {
        fail(err, errlen, "%s: out of memory", name);
        goto out;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, list) {
        int i = out->n;
        if (!cJSON_IsObject(m)) {
            fail(err, errlen, "%s: message %d is not an object", name, i + 1);
            goto out;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role) || !role->valuestring[0]) {
            fail(err, errlen, "%s: message %d: \"role\" is %s", name, i + 1, role ? "not a string" : "missing");
            goto out;
        }
        size_t clen;
        char *content = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &clen, name, i, err, errlen);
        if (!content)
            goto out;
        char *r = strdup(role->valuestring);
        if (!r) {
            free(content);
            fail(err, errlen, "%s: out of memory", name);
            goto out;
        }
        out->msgs[i] = (conv_msg){ r, content, clen };
        out->n++;
    }
    ok = true;
out:
    cJSON_Delete(root);
    if (!ok)
        conv_free(out);
    return ok;
}

bool conv_load(const char *path, conv *out, char *err, size_t errlen)
{
    out->msgs = NULL;
    out->n = 0;
    size_t n;
    char *buf = app_slurp(path, &n, err, errlen);
    if (!buf)
        return false;
    const char *nul = memchr(buf, 0, n);
    if (nul) { /* the rule of every text file (app_read_text) */
        snprintf(err, errlen, "%s: byte %zu is a NUL byte: not text", path, (size_t)(nul - buf));
        free(buf);
        return false;
    }
    bool ok = conv_parse(buf, n, path, out, err, errlen);
    free(buf);
    return ok;
}

bool conv_save(const char *path, const conv_msg *msgs, int n, char *err, size_t errlen)
{
    cJSON *root = cJSON_CreateArray();
    bool ok = root != NULL;
    for (int i = 0; i < n && ok; i++) {
        cJSON *m = cJSON_CreateObject();
        ok = m && cJSON_AddStringToObject(m, "role", msgs[i].role) && cJSON_AddStringToObject(m, "content", msgs[i].content);
        if (ok)
            ok = cJSON_AddItemToArray(root, m);
        else
            cJSON_Delete(m);
    }
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return fail(err, errlen, "%s: out of memory", path);
    /* the JSON and its newline, written safely (a crash or a full disk leaves the old file as it was) */
    size_t tl = strlen(text);
    char *buf = malloc(tl + 1);
    if (!buf) {
        cJSON_free(text);
        return fail(err, errlen, "%s: out of memory", path);
    }
    memcpy(buf, text, tl);
    buf[tl] = '\n';
    ok = app_write_file(path, buf, tl + 1, err, errlen);
    free(buf);
    cJSON_free(text);
    return ok;
}

bool conv_load_chat(const char *path, lm_chat *c, char *err, size_t errlen)
{
    conv in, old = { 0 };
    if (!conv_load(path, &in, err, errlen))
        return false;
    /* the chat's messages now, to put back if the chat refuses one of the file's */
    int n_old = lm_chat_n_messages(c);
    bool ok = n_old == 0 || (old.msgs = calloc((size_t)n_old, sizeof *old.msgs));
    for (int i = 0; i < n_old && ok; i++) {
        size_t len;
        const char *s = lm_chat_content(c, i, &len);
        old.msgs[i].role = strdup(lm_chat_role(c, i));
        old.msgs[i].content = malloc(len + 1);
        old.n++;
        ok = old.msgs[i].role && old.msgs[i].content;
        if (ok) {
            memcpy(old.msgs[i].content, s, len + 1);
            old.msgs[i].len = len;
        }
    }
    if (!ok) {
        conv_free(&old);
        conv_free(&in);
        return fail(err, errlen, "%s: out of memory", path);
    }
    lm_chat_truncate(c, 0);
    char msg[512] = "";
    for (int i = 0; i < in.n && ok; i++)
        if (lm_chat_add(c, in.msgs[i].role, in.msgs[i].content, in.msgs[i].len, msg, sizeof msg)) {
            fail(err, errlen, "%s: message %d: %s", path, i + 1, msg);
            ok = false;
        }
    if (!ok) {
        lm_chat_truncate(c, 0);
        for (int i = 0; i < old.n; i++)
            lm_chat_add(c, old.msgs[i].role, old.msgs[i].content, old.msgs[i].len, NULL, 0);
    }
    conv_free(&old);
    conv_free(&in);
    return ok;
}

bool conv_save_chat(const char *path, const lm_chat *c, char *err, size_t errlen)
{
    int n = lm_chat_n_messages(c);
    conv_msg *m = n ? calloc((size_t)n, sizeof *m) : NULL;
    if (n && !m)
        return fail(err, errlen, "%s: out of memory", path);
    for (int i = 0; i < n; i++) {
        m[i].role = (char *)lm_chat_role(c, i);
        m[i].content = (char *)lm_chat_content(c, i, &m[i].len);
    }
    bool ok = conv_save(path, m, n, err, errlen);
    free(m);
    return ok;
}
