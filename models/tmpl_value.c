/* tmpl_value.c: the template interpreter's values: arena, byte buffer, Python-like printing and
 * comparison, and a small JSON reader / writer for the render context and the tojson filter. */
#include "tmpl_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================== arena ======================== */

struct tmpl_arena_block { tmpl_arena_block *next; size_t size; max_align_t data[]; };
#define TA_BLOCK (64u << 10)

void *ta_alloc(tmpl_arena *a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!a->head || a->used + n > a->head->size) {
        size_t sz = n > TA_BLOCK ? n : TA_BLOCK;
        tmpl_arena_block *b = malloc(sizeof(*b) + sz);
        if (!b) return NULL;
        b->next = a->head;
        b->size = sz;
        a->head = b;
        a->used = 0;
    }
    void *p = (char *)a->head->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void ta_free(tmpl_arena *a) {
    tmpl_arena_block *b = a->head;
    while (b) {
        tmpl_arena_block *nx = b->next;
        free(b);
        b = nx;
    }
    a->head = NULL;
    a->used = 0;
}

/* ======================== buffer ======================== */

void tb_put(tbuf *b, const char *s, size_t n) {
    if (tb_stopped(b)) return;
    if (b->max && n > b->max - b->n) { b->over = true; return; }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
void tb_puts(tbuf *b, const char *s) { tb_put(b, s, strlen(s)); }
void tb_putc(tbuf *b, char c) { tb_put(b, &c, 1); }

/* ======================== values ======================== */

tv tv_undef_v = { .t = TV_UNDEF };
tv tv_none_v = { .t = TV_NONE };

tv *tv_new(tmpl_arena *a, tv_type t) {
    tv *v = ta_alloc(a, sizeof(*v));
    if (v) v->t = t;
    return v;
}
tv *tv_str(tmpl_arena *a, const char *s, size_t n) {
    tv *v = tv_new(a, TV_STR);
    char *p = ta_alloc(a, n + 1);
    if (!v || !p) return NULL;
    if (n) memcpy(p, s, n);
    v->u.s.s = p;
    v->u.s.n = n;
    return v;
}
tv *tv_int(tmpl_arena *a, int64_t i) { tv *v = tv_new(a, TV_INT); if (v) v->u.i = i; return v; }
tv *tv_float(tmpl_arena *a, double f) { tv *v = tv_new(a, TV_FLOAT); if (v) v->u.f = f; return v; }
tv *tv_bool(tmpl_arena *a, bool b) { tv *v = tv_new(a, TV_BOOL); if (v) v->u.b = b; return v; }

bool tv_list_push(tmpl_arena *a, tv *l, tv *x) {
    if (l->u.l.n == l->u.l.cap) {
        size_t cap = l->u.l.cap ? l->u.l.cap * 2 : 8;
        tv **nv = ta_alloc(a, cap * sizeof(*nv));
        if (!nv) return false;
        if (l->u.l.n) memcpy(nv, l->u.l.v, l->u.l.n * sizeof(*nv));
        l->u.l.v = nv;
        l->u.l.cap = cap;
    }
    l->u.l.v[l->u.l.n++] = x;
    return true;
}

tv *tv_dict_get(const tv *d, const tv *k) {
    for (size_t i = 0; i < d->u.d.n; i++)
        if (tv_equal(d->u.d.k[i], k)) return d->u.d.v[i];
    return NULL;
}
tv *tv_dict_gets(const tv *d, const char *k) {
    size_t n = strlen(k);
    for (size_t i = 0; i < d->u.d.n; i++) {
        const tv *kk = d->u.d.k[i];
        if (kk->t == TV_STR && kk->u.s.n == n && memcmp(kk->u.s.s, k, n) == 0) return d->u.d.v[i];
    }
    return NULL;
}
bool tv_dict_set(tmpl_arena *a, tv *d, tv *k, tv *v) {
    for (size_t i = 0; i < d->u.d.n; i++)
        if (tv_equal(d->u.d.k[i], k)) { d->u.d.v[i] = v; return true; }
    if (d->u.d.n == d->u.d.cap) {
        size_t cap = d->u.d.cap ? d->u.d.cap * 2 : 8;
        tv **nk = ta_alloc(a, cap * sizeof(*nk)), **nv = ta_alloc(a, cap * sizeof(*nv));
        if (!nk || !nv) return false;
        if (d->u.d.n) {
            memcpy(nk, d->u.d.k, d->u.d.n * sizeof(*nk));
            memcpy(nv, d->u.d.v, d->u.d.n * sizeof(*nv));
        }
        d->u.d.k = nk;
        d->u.d.v = nv;
        d->u.d.cap = cap;
    }
    d->u.d.k[d->u.d.n] = k;
    d->u.d.v[d->u.d.n++] = v;
    return true;
}

bool tv_truthy(const tv *v) {
    switch (v->t) {
    case TV_UNDEF: case TV_NONE: return false;
    case TV_BOOL: return v->u.b;
    case TV_INT: return v->u.i != 0;
    case TV_FLOAT: return v->u.f != 0.0;
    case TV_STR: return v->u.s.n != 0;
    case TV_LIST: return v->u.l.n != 0;
    case TV_DICT: return v->u.d.n != 0;
    default: return true;
    }
}

static bool tv_is_num(const tv *v) { return v->t == TV_INT || v->t == TV_FLOAT || v->t == TV_BOOL; }
static double tv_num(const tv *v) {
    return v->t == TV_FLOAT ? v->u.f : v->t == TV_INT ? (double)v->u.i : (double)v->u.b;
}

/* Comparing lists and dicts is bounded: depth levels down (TMPL_MAX_DEPTH: a namespace can hold itself),
 * and a budget of items looked at in one comparison (lists that hold one list twice, nested, double
 * the work at each level). Past a bound, the two are unequal and cannot be ordered. */
#define TV_CMP_BUDGET (1 << 16)

static bool equal_at(const tv *a, const tv *b, int depth, int64_t *budget);

static tv *dict_get_at(const tv *d, const tv *k, int depth, int64_t *budget) {
    for (size_t i = 0; i < d->u.d.n; i++)
        if (equal_at(d->u.d.k[i], k, depth, budget)) return d->u.d.v[i];
    return NULL;
}

static bool equal_at(const tv *a, const tv *b, int depth, int64_t *budget) {
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a->t != TV_FLOAT && b->t != TV_FLOAT)
            return (a->t == TV_INT ? a->u.i : a->u.b) == (b->t == TV_INT ? b->u.i : b->u.b);
        return tv_num(a) == tv_num(b);
    }
    if (a->t != b->t) return false;
    switch (a->t) {
    case TV_UNDEF: case TV_NONE: return true;
    case TV_STR: return a->u.s.n == b->u.s.n && memcmp(a->u.s.s, b->u.s.s, a->u.s.n) == 0;
    case TV_LIST:
        if (a == b) return true; /* as Python's containers: an item is itself */
        if (a->u.l.n != b->u.l.n || depth >= TMPL_MAX_DEPTH) return false;
        for (size_t i = 0; i < a->u.l.n; i++)
            if (--*budget < 0 || !equal_at(a->u.l.v[i], b->u.l.v[i], depth + 1, budget)) return false;
        return true;
    case TV_DICT:
        if (a == b) return true;
        if (a->u.d.n != b->u.d.n || depth >= TMPL_MAX_DEPTH) return false;
        for (size_t i = 0; i < a->u.d.n; i++) {
            if (--*budget < 0) return false;
            tv *o = dict_get_at(b, a->u.d.k[i], depth + 1, budget);
            if (!o || !equal_at(a->u.d.v[i], o, depth + 1, budget)) return false;
        }
        return true;
    default: return a == b;
    }
}

bool tv_equal(const tv *a, const tv *b) {
    int64_t budget = TV_CMP_BUDGET;
    return equal_at(a, b, 0, &budget);
}

static int compare_at(const tv *a, const tv *b, bool *ok, int depth, int64_t *budget) {
    *ok = true;
    if (tv_is_num(a) && tv_is_num(b)) {
        double x = tv_num(a), y = tv_num(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a->t == TV_STR && b->t == TV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int c = memcmp(a->u.s.s, b->u.s.s, n);
        if (c) return c;
        return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n ? 1 : 0;
    }
    if (a->t == TV_LIST && b->t == TV_LIST && depth < TMPL_MAX_DEPTH) {
        for (size_t i = 0; i < a->u.l.n && i < b->u.l.n; i++) {
            if (--*budget < 0) break;
            int c = compare_at(a->u.l.v[i], b->u.l.v[i], ok, depth + 1, budget);
            if (!*ok || c) return c;
        }
        if (*budget >= 0) return a->u.l.n < b->u.l.n ? -1 : a->u.l.n > b->u.l.n ? 1 : 0;
    }
    *ok = false;
    return 0;
}

int tv_compare(const tv *a, const tv *b, bool *ok) {
    int64_t budget = TV_CMP_BUDGET;
    return compare_at(a, b, ok, 0, &budget);
}

const char *tv_type_name(const tv *v) {
    static const char *names[] = { "undefined", "none", "boolean", "integer", "float", "string", "list",
                                   "dict", "macro", "function" };
    return names[v->t];
}

/* Python's repr of a float: the shortest digits that read back, with ".0" when integral */
static void put_float(tbuf *b, double f) {
    char s[80];
    if (isnan(f)) { tb_puts(b, "nan"); return; }
    if (isinf(f)) { tb_puts(b, f < 0 ? "-inf" : "inf"); return; }
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*g", p, f);
        if (strtod(s, NULL) == f) break;
    }
    /* Python uses exponent form only below 1e-4 or from 1e16 */
    double af = fabs(f);
    if (strchr(s, 'e') && af >= 1e-4 && af < 1e16) {
        char t[64];
        snprintf(t, sizeof t, "%.17f", f);
        /* trim to the shortest that reads back */
        size_t n = strlen(t);
        while (n > 0 && t[n - 1] == '0') n--;
        t[n] = 0;
        snprintf(s, sizeof s, "%s", t);
    }
    if (!strchr(s, '.') && !strchr(s, 'e') && !strchr(s, 'n') && !strchr(s, 'i')) {
        tb_puts(b, s);
        tb_puts(b, ".0");
        return;
    }
    if (s[strlen(s) - 1] == '.') { tb_puts(b, s); tb_putc(b, '0'); return; }
    /* Python writes e+16 as e+16, C as e+16: same; but C may give e+05 where Python gives e+05 too */
    tb_puts(b, s);
}

static void put_pyrepr_str(tbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    tb_putc(b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == (unsigned char)q || c == '\\') { tb_putc(b, '\\'); tb_putc(b, (char)c); }
        else if (c == '\n') tb_puts(b, "\\n");
        else if (c == '\r') tb_puts(b, "\\r");
        else if (c == '\t') tb_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f) { char e[8]; snprintf(e, sizeof e, "\\x%02x", c); tb_puts(b, e); }
        else tb_putc(b, (char)c);
    }
    tb_putc(b, q);
}

static void to_str_at(const tv *v, tbuf *b, int depth);

static void repr_at(const tv *v, tbuf *b, int depth) {
    if (v->t == TV_STR) put_pyrepr_str(b, v->u.s.s, v->u.s.n);
    else to_str_at(v, b, depth);
}

void tv_repr(const tv *v, tbuf *b) { repr_at(v, b, 0); }

/* str(v), depth levels down the value printed */
static void to_str_at(const tv *v, tbuf *b, int depth) {
    char s[32];
    if (tb_stopped(b)) return;
    if ((v->t == TV_LIST || (v->t == TV_DICT && !v->ns)) && depth >= TMPL_MAX_DEPTH) { b->deep = true; return; }
    switch (v->t) {
    case TV_UNDEF: break;
    case TV_NONE: tb_puts(b, "None"); break;
    case TV_BOOL: tb_puts(b, v->u.b ? "True" : "False"); break;
    case TV_INT: snprintf(s, sizeof s, "%lld", (long long)v->u.i); tb_puts(b, s); break;
    case TV_FLOAT: put_float(b, v->u.f); break;
    case TV_STR: tb_put(b, v->u.s.s, v->u.s.n); break;
    case TV_LIST:
        tb_putc(b, v->tuple ? '(' : '[');
        for (size_t i = 0; i < v->u.l.n && !tb_stopped(b); i++) {
            if (i) tb_puts(b, ", ");
            repr_at(v->u.l.v[i], b, depth + 1);
        }
        if (v->tuple && v->u.l.n == 1) tb_putc(b, ',');
        tb_putc(b, v->tuple ? ')' : ']');
        break;
    case TV_DICT:
        if (v->ns) { tb_puts(b, "<Namespace>"); break; }
        tb_putc(b, '{');
        for (size_t i = 0; i < v->u.d.n && !tb_stopped(b); i++) {
            if (i) tb_puts(b, ", ");
            repr_at(v->u.d.k[i], b, depth + 1);
            tb_puts(b, ": ");
            repr_at(v->u.d.v[i], b, depth + 1);
        }
        tb_putc(b, '}');
        break;
    case TV_MACRO: tb_puts(b, "<macro>"); break;
    case TV_FUNC: tb_puts(b, "<function>"); break;
    }
}

void tv_to_str(const tv *v, tbuf *b) { to_str_at(v, b, 0); }

/* ======================== JSON ======================== */

static void put_json_str(tbuf *b, const char *s, size_t n) {
    tb_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': tb_puts(b, "\\\""); break;
        case '\\': tb_puts(b, "\\\\"); break;
        case '\n': tb_puts(b, "\\n"); break;
        case '\r': tb_puts(b, "\\r"); break;
        case '\t': tb_puts(b, "\\t"); break;
        case '\b': tb_puts(b, "\\b"); break;
        case '\f': tb_puts(b, "\\f"); break;
        default:
            if (c < 0x20) { char e[8]; snprintf(e, sizeof e, "\\u%04x", c); tb_puts(b, e); }
            else tb_putc(b, (char)c);
        }
    }
    tb_putc(b, '"');
}

static void json_nl(tbuf *b, int indent, int level) {
    tb_putc(b, '\n');
    for (int64_t i = 0; i < (int64_t)indent * level && !tb_stopped(b); i++) tb_putc(b, ' ');
}

static int key_cmp_str(const tv *a, const tv *b) {
    bool ok;
    return tv_compare(a, b, &ok);
}

void tv_to_json(const tv *v, tbuf *b, int indent, bool sort_keys, int level) {
    if (tb_stopped(b)) return;
    if ((v->t == TV_LIST || v->t == TV_DICT) && level >= TMPL_MAX_DEPTH) { b->deep = true; return; }
    switch (v->t) {
    case TV_UNDEF: case TV_NONE: tb_puts(b, "null"); break;
    case TV_BOOL: tb_puts(b, v->u.b ? "true" : "false"); break;
    case TV_INT: case TV_FLOAT: tv_to_str(v, b); break;
    case TV_STR: put_json_str(b, v->u.s.s, v->u.s.n); break;
    case TV_LIST:
        if (!v->u.l.n) { tb_puts(b, "[]"); break; }
        tb_putc(b, '[');
        for (size_t i = 0; i < v->u.l.n && !tb_stopped(b); i++) {
            if (i) tb_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(b, indent, level + 1);
            tv_to_json(v->u.l.v[i], b, indent, sort_keys, level + 1);
        }
        if (indent >= 0) json_nl(b, indent, level);
        tb_putc(b, ']');
        break;
    case TV_DICT: {
        if (!v->u.d.n) { tb_puts(b, "{}"); break; }
        size_t n = v->u.d.n;
        size_t *ord = malloc(n * sizeof(*ord));
        if (!ord) { b->oom = true; break; }
        for (size_t i = 0; i < n; i++) ord[i] = i;
        if (sort_keys)   /* insertion sort: dicts in templates are small */
            for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && key_cmp_str(v->u.d.k[ord[j - 1]], v->u.d.k[ord[j]]) > 0; j--) {
                    size_t t = ord[j]; ord[j] = ord[j - 1]; ord[j - 1] = t;
                }
        tb_putc(b, '{');
        for (size_t i = 0; i < n && !tb_stopped(b); i++) {
            if (i) tb_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(b, indent, level + 1);
            const tv *k = v->u.d.k[ord[i]];
            if (k->t == TV_STR) put_json_str(b, k->u.s.s, k->u.s.n);
            else {
                tbuf t = { .max = b->max };
                tv_to_json(k, &t, -1, false, level + 1);
                put_json_str(b, t.p ? t.p : "", t.n);
                tb_stop_as(b, &t);
                free(t.p);
            }
            tb_puts(b, ": ");
            tv_to_json(v->u.d.v[ord[i]], b, indent, sort_keys, level + 1);
        }
        free(ord);
        if (indent >= 0) json_nl(b, indent, level);
        tb_putc(b, '}');
        break;
    }
    default: tb_puts(b, "null"); break;
    }
}

typedef struct { tmpl_arena *a; const char *s, *e, *p; char *err; size_t errlen; int depth; } jr;

static void jr_ws(jr *r) { while (r->p < r->e && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++; }

static tv *jr_fail(jr *r, const char *what) {
    if (r->err && r->errlen && !r->err[0])
        snprintf(r->err, r->errlen, "context JSON, offset %zu: %s", (size_t)(r->p - r->s), what);
    return NULL;
}

static void put_utf8(tbuf *b, uint32_t c) {
    char u[4];
    if (c < 0x80) { u[0] = (char)c; tb_put(b, u, 1); }
    else if (c < 0x800) { u[0] = (char)(0xC0 | c >> 6); u[1] = (char)(0x80 | (c & 63)); tb_put(b, u, 2); }
    else if (c < 0x10000) {
        u[0] = (char)(0xE0 | c >> 12); u[1] = (char)(0x80 | ((c >> 6) & 63)); u[2] = (char)(0x80 | (c & 63));
        tb_put(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | c >> 18); u[1] = (char)(0x80 | ((c >> 12) & 63));
        u[2] = (char)(0x80 | ((c >> 6) & 63)); u[3] = (char)(0x80 | (c & 63));
        tb_put(b, u, 4);
    }
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static tv *jr_string(jr *r) {
    tbuf b = {0};
    r->p++;
    while (r->p < r->e && *r->p != '"') {
        char c = *r->p++;
        if ((unsigned char)c < 0x20) { free(b.p); return jr_fail(r, "control character in a string"); }
        if (c != '\\') { tb_putc(&b, c); continue; }
        if (r->p >= r->e) break;
        c = *r->p++;
        switch (c) {
        case '"': case '\\': case '/': tb_putc(&b, c); break;
        case 'n': tb_putc(&b, '\n'); break;
        case 't': tb_putc(&b, '\t'); break;
        case 'r': tb_putc(&b, '\r'); break;
        case 'b': tb_putc(&b, '\b'); break;
        case 'f': tb_putc(&b, '\f'); break;
        case 'u': {
            int h = r->e - r->p >= 4 ? hex4(r->p) : -1;
            if (h < 0) { free(b.p); return jr_fail(r, "bad \\u escape"); }
            r->p += 4;
            uint32_t cp = (uint32_t)h;
            if (cp >= 0xD800 && cp < 0xDC00 && r->e - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
                int lo = hex4(r->p + 2);
                if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (uint32_t)(lo - 0xDC00); r->p += 6; }
            }
            put_utf8(&b, cp);
            break;
        }
        default: free(b.p); return jr_fail(r, "bad escape");
        }
    }
    if (r->p >= r->e) { free(b.p); return jr_fail(r, "unterminated string"); }
    r->p++;
    tv *v = b.oom ? NULL : tv_str(r->a, b.p ? b.p : "", b.n);
    free(b.p);
    return v;
}

static tv *jr_value(jr *r) {
    jr_ws(r);
    if (r->p >= r->e) return jr_fail(r, "unexpected end");
    if (++r->depth > TMPL_MAX_DEPTH) return jr_fail(r, "nested too deeply");
    tv *v = NULL;
    char c = *r->p;
    if (c == '"') v = jr_string(r);
    else if (c == '[') {
        r->p++;
        v = tv_new(r->a, TV_LIST);
        jr_ws(r);
        if (r->p < r->e && *r->p == ']') r->p++;
        else for (;;) {
            tv *x = jr_value(r);
            if (!x || !v || !tv_list_push(r->a, v, x)) return NULL;
            jr_ws(r);
            if (r->p < r->e && *r->p == ',') { r->p++; continue; }
            if (r->p < r->e && *r->p == ']') { r->p++; break; }
            return jr_fail(r, "expected ',' or ']'");
        }
    } else if (c == '{') {
        r->p++;
        v = tv_new(r->a, TV_DICT);
        jr_ws(r);
        if (r->p < r->e && *r->p == '}') r->p++;
        else for (;;) {
            jr_ws(r);
            if (r->p >= r->e || *r->p != '"') return jr_fail(r, "expected a string key");
            tv *k = jr_string(r);
            if (!k) return NULL;
            jr_ws(r);
            if (r->p >= r->e || *r->p != ':') return jr_fail(r, "expected ':'");
            r->p++;
            tv *x = jr_value(r);
            if (!x || !v || !tv_dict_set(r->a, v, k, x)) return NULL;
            jr_ws(r);
            if (r->p < r->e && *r->p == ',') { r->p++; continue; }
            if (r->p < r->e && *r->p == '}') { r->p++; break; }
            return jr_fail(r, "expected ',' or '}'");
        }
    } else if ((size_t)(r->e - r->p) >= 4 && !memcmp(r->p, "true", 4)) { r->p += 4; v = tv_bool(r->a, true); }
    else if ((size_t)(r->e - r->p) >= 5 && !memcmp(r->p, "false", 5)) { r->p += 5; v = tv_bool(r->a, false); }
    else if ((size_t)(r->e - r->p) >= 4 && !memcmp(r->p, "null", 4)) { r->p += 4; v = &tv_none_v; }
    else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *q = r->p;
        bool fl = false;
        if (*q == '-') q++;
        while (q < r->e && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-')) {
            if (*q == '.' || *q == 'e' || *q == 'E') fl = true;
            q++;
        }
        char num[64];
        size_t n = (size_t)(q - r->p);
        if (n >= sizeof num) return jr_fail(r, "number too long");
        memcpy(num, r->p, n);
        num[n] = 0;
        char *end;
        if (fl) { double f = strtod(num, &end); v = tv_float(r->a, f); }
        else { long long i = strtoll(num, &end, 10); v = tv_int(r->a, i); }
        if (*end) return jr_fail(r, "bad number");
        r->p = q;
    } else return jr_fail(r, "unexpected character");
    r->depth--;
    return v;
}

tv *tv_from_json(tmpl_arena *a, const char *s, size_t n, char *err, size_t errlen) {
    jr r = { a, s, s + n, s, err, errlen, 0 };
    if (err && errlen) err[0] = 0;
    tv *v = jr_value(&r);
    if (!v) return v ? v : jr_fail(&r, "out of memory");
    jr_ws(&r);
    if (r.p != r.e) return jr_fail(&r, "trailing characters");
    return v;
}
