/* tmpl_lex.c: splits a Jinja template into text and tag tokens, with whitespace control as Hugging
 * Face renders chat templates: trim_blocks (the newline after a block or comment tag goes),
 * lstrip_blocks (spaces and tabs before a block or comment tag at the start of a line go), `{%-` /
 * `-%}` / `{{-` / `-}}` (all whitespace on that side goes) and `{%+` / `+%}` (no lstrip / trim). */
#include "tmpl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *src; size_t len, pos;
    size_t lc_off; int lc_line, lc_col;   /* line / column cursor (monotonic) */
    tmpl_arena *a; tmpl_toks *out;
    char *err; size_t errlen;
} lexer;

static void where(lexer *L, size_t off, int *line, int *col) {
    if (off < L->lc_off) { L->lc_off = 0; L->lc_line = 1; L->lc_col = 1; }
    while (L->lc_off < off) {
        if (L->src[L->lc_off++] == '\n') { L->lc_line++; L->lc_col = 1; }
        else L->lc_col++;
    }
    *line = L->lc_line;
    *col = L->lc_col;
}

static int lex_fail(lexer *L, size_t off, const char *msg) {
    int line, col;
    where(L, off, &line, &col);
    snprintf(L->err, L->errlen, "line %d, column %d: %s", line, col, msg);
    return LM_ERR_INVALID;
}

static tmpl_tok *push(lexer *L, tk_type t, size_t off) {
    if (L->out->n == L->out->cap) {
        size_t cap = L->out->cap ? L->out->cap * 2 : 256;
        tmpl_tok *v = realloc(L->out->v, cap * sizeof(*v));
        if (!v) return NULL;
        L->out->v = v;
        L->out->cap = cap;
    }
    tmpl_tok *k = &L->out->v[L->out->n++];
    memset(k, 0, sizeof(*k));
    k->t = t;
    where(L, off, &k->line, &k->col);
    return k;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_id0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_dig(char c) { return c >= '0' && c <= '9'; }

static int lex_string(lexer *L) {
    size_t start = L->pos;
    char q = L->src[L->pos++];
    tbuf b = {0};
    while (L->pos < L->len && L->src[L->pos] != q) {
        char c = L->src[L->pos++];
        if (c == '\\' && L->pos < L->len) {
            c = L->src[L->pos++];
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '0': c = '\0'; break;
            case 'a': c = '\a'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'v': c = '\v'; break;
            case '\n': continue;  /* a backslash-newline joins lines */
            case '\\': case '\'': case '"': break;
            case 'x': case 'u': case 'U': { /* \xHH, \uHHHH, \UHHHHHHHH: a code point, UTF-8 encoded */
                int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
                uint32_t cp = 0;
                int d = 0;
                for (; d < digits && L->pos < L->len; d++) {
                    char h = L->src[L->pos];
                    int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (v < 0) break;
                    cp = cp * 16 + (uint32_t)v;
                    L->pos++;
                }
                if (d < digits || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
                    free(b.p);
                    return lex_fail(L, L->pos - 1, "bad escape in a string");
                }
                char u[4];
                int un = 0;
                if (cp < 0x80) u[un++] = (char)cp;
                else if (cp < 0x800) { u[un++] = (char)(0xC0 | cp >> 6); u[un++] = (char)(0x80 | (cp & 63)); }
                else if (cp < 0x10000) { u[un++] = (char)(0xE0 | cp >> 12); u[un++] = (char)(0x80 | (cp >> 6 & 63)); u[un++] = (char)(0x80 | (cp & 63)); }
                else { u[un++] = (char)(0xF0 | cp >> 18); u[un++] = (char)(0x80 | (cp >> 12 & 63)); u[un++] = (char)(0x80 | (cp >> 6 & 63)); u[un++] = (char)(0x80 | (cp & 63)); }
                tb_put(&b, u, (size_t)un);
                continue;
            }
            default: tb_putc(&b, '\\'); break;   /* Python keeps unknown escapes */
            }
        }
        tb_putc(&b, c);
    }
    if (L->pos >= L->len) { free(b.p); return lex_fail(L, start, "unterminated string"); }
    L->pos++;
    tmpl_tok *k = push(L, TK_STRING, start);
    char *s = ta_alloc(L->a, b.n + 1);
    if (!k || !s || b.oom) { free(b.p); return LM_ERR_NOMEM; }
    if (b.n) memcpy(s, b.p, b.n);
    free(b.p);
    k->s = s;
    k->n = b.n;
    return LM_OK;
}

/* Lexes the inside of a {{ }} or {% %} tag up to and including its end; *strip_after / *keep_nl
 * report a '-' / '+' before the end. */
static int lex_tag(lexer *L, bool block, size_t tag_off, bool *strip_after, bool *keep_nl) {
    static const char *ops2[] = { "//", "**", "==", "!=", "<=", ">=" };
    for (;;) {
        while (L->pos < L->len && is_ws(L->src[L->pos])) L->pos++;
        if (L->pos >= L->len) return lex_fail(L, tag_off, block ? "unclosed '{%'" : "unclosed '{{'");
        const char *p = L->src + L->pos;
        size_t rest = L->len - L->pos;
        const char *end2 = block ? "%}" : "}}";
        if (rest >= 3 && (p[0] == '-' || p[0] == '+') && !memcmp(p + 1, end2, 2)) {
            *strip_after = p[0] == '-';
            *keep_nl = p[0] == '+';
            if (!push(L, block ? TK_BLOCK_END : TK_VAR_END, L->pos)) return LM_ERR_NOMEM;
            L->pos += 3;
            return LM_OK;
        }
        if (rest >= 2 && !memcmp(p, end2, 2)) {
            if (!push(L, block ? TK_BLOCK_END : TK_VAR_END, L->pos)) return LM_ERR_NOMEM;
            L->pos += 2;
            return LM_OK;
        }
        char c = p[0];
        if (c == '\'' || c == '"') {
            int rc = lex_string(L);
            if (rc) return rc;
        } else if (is_id0(c)) {
            size_t s = L->pos;
            while (L->pos < L->len && (is_id0(L->src[L->pos]) || is_dig(L->src[L->pos]))) L->pos++;
            tmpl_tok *k = push(L, TK_NAME, s);
            if (!k) return LM_ERR_NOMEM;
            k->s = L->src + s;
            k->n = L->pos - s;
        } else if (is_dig(c)) {
            size_t s = L->pos;
            while (L->pos < L->len && (is_dig(L->src[L->pos]) || L->src[L->pos] == '_')) L->pos++;
            bool fl = false;
            if (L->pos + 1 < L->len && L->src[L->pos] == '.' && is_dig(L->src[L->pos + 1])) {
                fl = true;
                L->pos++;
                while (L->pos < L->len && is_dig(L->src[L->pos])) L->pos++;
            }
            if (L->pos < L->len && (L->src[L->pos] == 'e' || L->src[L->pos] == 'E')) {
                size_t q = L->pos + 1;
                if (q < L->len && (L->src[q] == '+' || L->src[q] == '-')) q++;
                if (q < L->len && is_dig(L->src[q])) {
                    fl = true;
                    L->pos = q;
                    while (L->pos < L->len && is_dig(L->src[L->pos])) L->pos++;
                }
            }
            char num[64];
            size_t n = 0;
            for (size_t i = s; i < L->pos && n + 1 < sizeof num; i++)
                if (L->src[i] != '_') num[n++] = L->src[i];
            num[n] = 0;
            tmpl_tok *k = push(L, fl ? TK_FLOAT : TK_INT, s);
            if (!k) return LM_ERR_NOMEM;
            if (fl) k->f = strtod(num, NULL);
            else k->i = strtoll(num, NULL, 10);
        } else {
            size_t n = 0;
            for (size_t i = 0; i < sizeof ops2 / sizeof *ops2; i++)
                if (rest >= 2 && !memcmp(p, ops2[i], 2)) n = 2;
            if (!n && strchr("+-*/%~<>=()[]{}.,:|!", c)) n = 1;
            if (!n || (n == 1 && c == '!')) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected character '%c'", c);
                return lex_fail(L, L->pos, msg);
            }
            tmpl_tok *k = push(L, TK_OP, L->pos);
            if (!k) return LM_ERR_NOMEM;
            k->s = p;
            k->n = n;
            L->pos += n;
        }
    }
}

int tmpl_lex(const char *src, size_t len, tmpl_arena *a, tmpl_toks *out, char *err, size_t errlen) {
    lexer L = { src, len, 0, 0, 1, 1, a, out, err, errlen };
    bool strip_next = false, line_starting = true;
    for (;;) {
        /* find the next tag opener */
        size_t t = L.pos;
        while (t + 1 < len && !(src[t] == '{' && (src[t + 1] == '{' || src[t + 1] == '%' || src[t + 1] == '#'))) t++;
        if (t + 1 >= len) t = len;
        size_t ts = L.pos, te = t;
        if (strip_next) while (ts < te && is_ws(src[ts])) ts++;
        strip_next = false;
        char kind = t < len ? src[t + 1] : 0;
        char mod = t + 2 < len ? src[t + 2] : 0;
        if (kind && mod == '-') {
            while (te > ts && is_ws(src[te - 1])) te--;
        } else if ((kind == '%' || kind == '#') && mod != '+') {
            /* lstrip_blocks */
            size_t l = te;
            while (l > ts && (src[l - 1] == ' ' || src[l - 1] == '\t')) l--;
            if ((l > ts && src[l - 1] == '\n') || (l == ts && (ts == 0 ? line_starting : (src[ts - 1] == '\n' || line_starting))))
                te = l;
        }
        if (te > ts) {
            tmpl_tok *k = push(&L, TK_TEXT, ts);
            if (!k) return LM_ERR_NOMEM;
            k->s = src + ts;
            k->n = te - ts;
        }
        if (t >= len) break;
        size_t tag_off = t;
        L.pos = t + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
        bool strip_after = false, keep_nl = false;
        if (kind == '#') {
            size_t e = L.pos;
            while (e + 1 < len && !(src[e] == '#' && src[e + 1] == '}')) e++;
            if (e + 1 >= len) return lex_fail(&L, tag_off, "unclosed comment");
            strip_after = e > L.pos && src[e - 1] == '-';
            keep_nl = e > L.pos && src[e - 1] == '+';
            L.pos = e + 2;
        } else {
            bool block = kind == '%';
            if (!push(&L, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, tag_off)) return LM_ERR_NOMEM;
            size_t first = L.out->n;
            int rc = lex_tag(&L, block, tag_off, &strip_after, &keep_nl);
            if (rc) return rc;
            /* {% raw %} ... {% endraw %}: the text between is kept as it is */
            if (block && L.out->n == first + 2 && L.out->v[first].t == TK_NAME && L.out->v[first].n == 3 &&
                !memcmp(L.out->v[first].s, "raw", 3)) {
                L.out->n -= 3;
                const char *e = NULL;
                for (size_t q = L.pos; q + 1 < len && !e; q++) {
                    if (src[q] != '{' || src[q + 1] != '%') continue;
                    size_t r = q + 2;
                    if (r < len && (src[r] == '-' || src[r] == '+')) r++;
                    while (r < len && is_ws(src[r])) r++;
                    if (len - r >= 6 && !memcmp(src + r, "endraw", 6)) e = src + q;
                }
                if (!e) return lex_fail(&L, tag_off, "missing endraw");
                size_t rs = L.pos, re = (size_t)(e - src);
                if (strip_after) while (rs < re && is_ws(src[rs])) rs++;
                else if (!keep_nl && rs < re && src[rs] == '\n') rs++;
                if (re > rs + 0 && e[2] == '-') while (re > rs && is_ws(src[re - 1])) re--;
                if (re > rs) {
                    tmpl_tok *k = push(&L, TK_TEXT, rs);
                    if (!k) return LM_ERR_NOMEM;
                    k->s = src + rs;
                    k->n = re - rs;
                }
                const char *close = memmem(e, len - (size_t)(e - src), "%}", 2); /* src is not NUL-terminated */
                if (!close) return lex_fail(&L, (size_t)(e - src), "unclosed '{%'");
                strip_after = close[-1] == '-';
                keep_nl = close[-1] == '+';
                L.pos = (size_t)(close - src) + 2;
            }
        }
        if (strip_after) strip_next = true;
        else if (kind != '{' && !keep_nl && L.pos < len && src[L.pos] == '\n') L.pos++;
        line_starting = L.pos > 0 && src[L.pos - 1] == '\n';
    }
    if (!push(&L, TK_EOF, len)) return LM_ERR_NOMEM;
    return LM_OK;
}
