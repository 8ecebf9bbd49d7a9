/* tmpl_builtins.c: what a chat template can call: Jinja2's filters and tests that real templates use,
 * Python's string, list and dict methods, and the globals Hugging Face adds (raise_exception,
 * strftime_now) beside Jinja2's own (namespace, range, dict). Strings are UTF-8; lengths, indices and
 * case mapping work on code points (case through utf8proc). */
#include "tmpl_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

const char *const tb_fn_names[TB_FN_COUNT] = { "", "raise_exception", "strftime_now", "namespace", "range", "dict" };

#define A (te_arena(E))
#define NOMEM() te_fail(E, at, "out of memory")

size_t tb_utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

static bool name_is(const char *s, size_t n, const char *lit) { return strlen(lit) == n && !memcmp(s, lit, n); }

static tv *mkstr(tmpl_ev *E, const node *at, tbuf *b) { return te_buf_str(E, at, b); }

static bool py_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

/* strip / lstrip / rstrip: whitespace, or the characters of chars (single bytes or whole code points) */
static bool in_chars(const tv *chars, const char *s, size_t n, size_t i, size_t *clen)
{
    size_t j = i + 1;
    while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80) j++;
    *clen = j - i;
    if (!chars) return py_space((unsigned char)s[i]);
    for (size_t k = 0; k < chars->u.s.n;) {
        size_t m = k + 1;
        while (m < chars->u.s.n && ((unsigned char)chars->u.s.s[m] & 0xC0) == 0x80) m++;
        if (m - k == *clen && !memcmp(chars->u.s.s + k, s + i, *clen)) return true;
        k = m;
    }
    return false;
}

static tv *strip(tmpl_ev *E, const node *at, tv *s, const tv *chars, bool left, bool right)
{
    const char *p = s->u.s.s;
    size_t b = 0, e = s->u.s.n, cl;
    if (chars && chars->t != TV_STR) chars = NULL;
    while (left && b < e && in_chars(chars, p, e, b, &cl)) b += cl;
    while (right && e > b) {
        size_t st = e - 1;
        while (st > b && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
        if (!in_chars(chars, p, e, st, &cl)) break;
        e = st;
    }
    tv *r = tv_str(A, p + b, e - b);
    return r ? r : NOMEM();
}

typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE } case_mode;

static tv *change_case(tmpl_ev *E, const node *at, tv *s, case_mode mode)
{
    tbuf b = te_buf(E);
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s->u.s.s;
    utf8proc_ssize_t i = 0, n = (utf8proc_ssize_t)s->u.s.n;
    bool prev_cased = false, first = true;
    while (i < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, n - i, &c);
        if (k <= 0) { tb_put(&b, (const char *)p + i, 1); i++; continue; }
        utf8proc_int32_t o = c;
        bool cased = utf8proc_toupper(c) != c || utf8proc_tolower(c) != c;
        switch (mode) {
        case CASE_UPPER: o = utf8proc_toupper(c); break;
        case CASE_LOWER: o = utf8proc_tolower(c); break;
        case CASE_TITLE: o = prev_cased ? utf8proc_tolower(c) : utf8proc_totitle(c); break;
        case CASE_CAPITALIZE: o = first ? utf8proc_totitle(c) : utf8proc_tolower(c); break;
        }
        prev_cased = cased;
        first = false;
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t m = utf8proc_encode_char(o, enc);
        tb_put(&b, (const char *)enc, (size_t)m);
        i += k;
    }
    return mkstr(E, at, &b);
}

static tv *replace(tmpl_ev *E, const node *at, tv *s, tv *old, tv *new_, int64_t count)
{
    if (old->t != TV_STR || new_->t != TV_STR) return te_fail(E, at, "replace expects strings");
    tbuf b = te_buf(E);
    const char *p = s->u.s.s, *e = p + s->u.s.n;
    int64_t done = 0;
    if (!old->u.s.n) { /* Python inserts new between every character */
        for (size_t i = 0; i <= s->u.s.n; i++) {
            if ((i == s->u.s.n || ((unsigned char)p[i] & 0xC0) != 0x80) && (count < 0 || done < count)) {
                tb_put(&b, new_->u.s.s, new_->u.s.n);
                done++;
            }
            if (tb_stopped(&b)) break;
            if (i < s->u.s.n) tb_putc(&b, p[i]);
        }
        return mkstr(E, at, &b);
    }
    while (p < e) {
        const char *f = (count < 0 || done < count) ? memmem(p, (size_t)(e - p), old->u.s.s, old->u.s.n) : NULL;
        if (!f) { tb_put(&b, p, (size_t)(e - p)); break; }
        tb_put(&b, p, (size_t)(f - p));
        tb_put(&b, new_->u.s.s, new_->u.s.n);
        if (tb_stopped(&b)) break;
        p = f + old->u.s.n;
        done++;
    }
    return mkstr(E, at, &b);
}

static tv *split(tmpl_ev *E, const node *at, tv *s, const tv *sep, int64_t maxsplit)
{
    tv *l = tv_new(A, TV_LIST);
    if (!l) return NOMEM();
    const char *p = s->u.s.s, *e = p + s->u.s.n;
    if (!sep || sep->t == TV_NONE || sep->t == TV_UNDEF) {
        int64_t k = 0;
        while (p < e) {
            while (p < e && py_space((unsigned char)*p)) p++;
            if (p == e) break;
            const char *q = p;
            if (maxsplit >= 0 && k == maxsplit) {
                const char *t = e;
                while (t > q && py_space((unsigned char)t[-1])) t--;
                q = t;
            } else
                while (q < e && !py_space((unsigned char)*q)) q++;
            tv *w = tv_str(A, p, (size_t)(q - p));
            if (!w || !tv_list_push(A, l, w)) return NOMEM();
            k++;
            p = q;
        }
        return l;
    }
    if (sep->t != TV_STR) return te_fail(E, at, "split expects a string separator");
    if (!sep->u.s.n) return te_fail(E, at, "empty separator");
    int64_t k = 0;
    for (;;) {
        const char *f = (maxsplit < 0 || k < maxsplit) ? memmem(p, (size_t)(e - p), sep->u.s.s, sep->u.s.n) : NULL;
        tv *w = tv_str(A, p, f ? (size_t)(f - p) : (size_t)(e - p));
        if (!w || !tv_list_push(A, l, w)) return NOMEM();
        if (!f) break;
        p = f + sep->u.s.n;
        k++;
    }
    return l;
}

static bool prefix_match(const tv *s, const tv *x, bool end)
{
    if (x->t != TV_STR || x->u.s.n > s->u.s.n) return false;
    return !memcmp(end ? s->u.s.s + s->u.s.n - x->u.s.n : s->u.s.s, x->u.s.s, x->u.s.n);
}

static int starts_or_ends(tmpl_ev *E, const node *at, tv *s, tv *x, bool end)
{
    if (x->t == TV_LIST) {
        for (size_t i = 0; i < x->u.l.n; i++)
            if (prefix_match(s, x->u.l.v[i], end)) return 1;
        return 0;
    }
    if (x->t != TV_STR) { te_fail(E, at, "%s expects a string", end ? "endswith" : "startswith"); return -1; }
    return prefix_match(s, x, end);
}

static tv *join(tmpl_ev *E, const node *at, tv *items, const tv *sep, const tv *attr)
{
    if (items->t == TV_UNDEF) return tv_str(A, "", 0);
    if (items->t != TV_LIST) return te_fail(E, at, "join expects a list, not %s", tv_type_name(items));
    tbuf b = te_buf(E);
    for (size_t i = 0; i < items->u.l.n; i++) {
        if (i && sep && sep->t == TV_STR) tb_put(&b, sep->u.s.s, sep->u.s.n);
        tv *x = items->u.l.v[i];
        if (attr && attr->t == TV_STR && x->t == TV_DICT) {
            x = tv_dict_get(x, attr);
            if (!x) x = &tv_undef_v;
        }
        tv_to_str(x, &b);
        if (tb_stopped(&b)) break;
    }
    return mkstr(E, at, &b);
}

/* Items of a list, a dict's keys, a string's characters: list(x) */
static tv *to_list(tmpl_ev *E, const node *at, tv *v)
{
    if (v->t == TV_LIST) return v;
    tv *l = tv_new(A, TV_LIST);
    if (!l) return NOMEM();
    if (v->t == TV_UNDEF) return l;
    if (v->t == TV_DICT) {
        for (size_t i = 0; i < v->u.d.n; i++)
            if (!tv_list_push(A, l, v->u.d.k[i])) return NOMEM();
        return l;
    }
    if (v->t == TV_STR) {
        for (size_t i = 0; i < v->u.s.n;) {
            size_t j = i + 1;
            while (j < v->u.s.n && ((unsigned char)v->u.s.s[j] & 0xC0) == 0x80) j++;
            tv *c = tv_str(A, v->u.s.s + i, j - i);
            if (!c || !tv_list_push(A, l, c)) return NOMEM();
            i = j;
        }
        return l;
    }
    return te_fail(E, at, "a %s is not iterable", tv_type_name(v));
}

static tv *items_of(tmpl_ev *E, const node *at, tv *d)
{
    tv *l = tv_new(A, TV_LIST);
    if (!l) return NOMEM();
    if (d->t == TV_UNDEF) return l;
    if (d->t != TV_DICT) return te_fail(E, at, "items expects a dict, not %s", tv_type_name(d));
    for (size_t i = 0; i < d->u.d.n; i++) {
        tv *p = tv_new(A, TV_LIST);
        if (p) p->tuple = true;
        if (!p || !tv_list_push(A, p, d->u.d.k[i]) || !tv_list_push(A, p, d->u.d.v[i]) || !tv_list_push(A, l, p))
            return NOMEM();
    }
    return l;
}

/* attribute lookup for selectattr/map/sort/...: "a.b" walks dicts; missing gives undefined */
static tv *attr_path(tv *x, const tv *path)
{
    const char *p = path->u.s.s, *e = p + path->u.s.n;
    while (p <= e) {
        const char *d = memchr(p, '.', (size_t)(e - p));
        size_t n = d ? (size_t)(d - p) : (size_t)(e - p);
        if (x->t == TV_DICT) {
            tv k = { .t = TV_STR };
            k.u.s.s = p;
            k.u.s.n = n;
            x = tv_dict_get(x, &k);
            if (!x) return &tv_undef_v;
        } else if (x->t == TV_LIST) {
            char buf[24];
            snprintf(buf, sizeof buf, "%.*s", (int)(n < 20 ? n : 20), p);
            char *endp;
            long long i = strtoll(buf, &endp, 10);
            if (*endp || i < 0 || (size_t)i >= x->u.l.n) return &tv_undef_v;
            x = x->u.l.v[i];
        } else return &tv_undef_v;
        if (!d) break;
        p = d + 1;
    }
    return x;
}

static int cmp_ci(const tv *a, const tv *b, bool case_sensitive, bool *ok)
{
    if (!case_sensitive && a->t == TV_STR && b->t == TV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        for (size_t i = 0; i < n; i++) {
            int x = (unsigned char)a->u.s.s[i], y = (unsigned char)b->u.s.s[i];
            if (x >= 'A' && x <= 'Z') x += 32;
            if (y >= 'A' && y <= 'Z') y += 32;
            if (x != y) { *ok = true; return x - y; }
        }
        *ok = true;
        return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
    }
    return tv_compare(a, b, ok);
}

/* A stable merge sort of a list's items by key (attribute path or none). */
static tv *sorted(tmpl_ev *E, const node *at, tv *l, const tv *attr, bool reverse, bool case_sensitive, int pair_item)
{
    size_t n = l->u.l.n;
    tv *r = tv_new(A, TV_LIST);
    tv **tmp = ta_alloc(A, (n + 1) * sizeof(*tmp));
    if (!r || !tmp) return NOMEM();
    for (size_t i = 0; i < n; i++)
        if (!tv_list_push(A, r, l->u.l.v[i])) return NOMEM();
    bool ok = true;
    for (size_t w = 1; w < n && ok; w *= 2)
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                tv *x = r->u.l.v[i], *y = r->u.l.v[j];
                if (pair_item >= 0) { x = x->u.l.v[pair_item]; y = y->u.l.v[pair_item]; }
                if (attr) { x = attr_path(x, attr); y = attr_path(y, attr); }
                int c = cmp_ci(x, y, case_sensitive, &ok);
                if (!ok) break;
                if (reverse ? c >= 0 : c <= 0) tmp[k++] = r->u.l.v[i++];
                else tmp[k++] = r->u.l.v[j++];
            }
            if (!ok) break;
            while (i < mid) tmp[k++] = r->u.l.v[i++];
            while (j < hi) tmp[k++] = r->u.l.v[j++];
            memcpy(r->u.l.v + lo, tmp + lo, (hi - lo) * sizeof(*tmp));
        }
    if (!ok) return te_fail(E, at, "cannot sort items of different types");
    return r;
}

/* a float that int64_t holds (|int of one past it would be undefined in C; Python's int has no bound, so
 * those take the filter's default, as text that is no number does) */
static bool fits_i64(double f) { return f >= -9223372036854775808.0 && f < 9223372036854775808.0; }

/* s[0..n) under a %s spec ("%-10.3s"): precision and width count code points, as Python's do, and the
 * text is not cut at any length (out[] below holds numbers only) */
static void put_padded(tbuf *b, const char *s, size_t n, const char *spec)
{
    bool left = false;
    const char *q = spec + 1;
    for (; *q && strchr("-+ #0", *q); q++)
        left |= *q == '-';
    char *end;
    long width = strtol(q, &end, 10), prec = *end == '.' ? strtol(end + 1, NULL, 10) : -1;
    size_t cut = n;
    long cps = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (prec >= 0 && cps == prec) { cut = i; break; }
            cps++;
        }
    if (!left)
        for (long i = cps; i < width; i++) tb_putc(b, ' ');
    tb_put(b, s, cut);
    if (left)
        for (long i = cps; i < width; i++) tb_putc(b, ' ');
}

/* "%s %d %r %f %%" formatting (the format filter, and string % args) */
#define FMT_MAX 128
static tv *printf_format(tmpl_ev *E, const node *at, tv *fmt, const targs *args)
{
    tbuf b = te_buf(E);
    size_t ai = 0;
    const char *p = fmt->u.s.s, *e = p + fmt->u.s.n;
    while (p < e) {
        if (*p != '%') { tb_putc(&b, *p++); continue; }
        p++;
        if (p < e && *p == '%') { tb_putc(&b, '%'); p++; continue; }
        char spec[32] = "%";
        size_t sn = 1;
        while (p < e && strchr("-+ #0123456789.", *p) && sn < 20) spec[sn++] = *p++;
        if (p >= e) { free(b.p); return te_fail(E, at, "incomplete format"); }
        /* a width or precision past FMT_MAX would not fit out[] below (and a huge one costs its length
         * in padding on every call) */
        spec[sn] = 0;
        for (char *q = spec + 1; *q; q++)
            if (*q >= '1' && *q <= '9') {
                char *end;
                if (strtol(q, &end, 10) > FMT_MAX) {
                    free(b.p);
                    return te_fail(E, at, "format width or precision over %d", FMT_MAX);
                }
                q = end - 1;
            }
        char conv = *p++;
        if (ai >= args->npos) { free(b.p); return te_fail(E, at, "not enough arguments for the format string"); }
        tv *v = args->pos[ai++];
        char out[512];
        if (conv == 's' || conv == 'r') {
            tbuf t = te_buf(E);
            if (conv == 'r') tv_repr(v, &t); else tv_to_str(v, &t);
            spec[sn++] = 's';
            spec[sn] = 0;
            put_padded(&b, t.p ? t.p : "", t.n, spec);
            tb_stop_as(&b, &t);
            free(t.p);
        } else if (strchr("dixXo", conv)) {
            if (v->t != TV_INT && v->t != TV_BOOL && v->t != TV_FLOAT) { free(b.p); return te_fail(E, at, "%%%c needs a number", conv); }
            if (v->t == TV_FLOAT && !fits_i64(v->u.f)) { free(b.p); return te_fail(E, at, "%%%c of a number out of range", conv); }
            long long x = v->t == TV_INT ? v->u.i : v->t == TV_BOOL ? v->u.b : (long long)v->u.f;
            spec[sn++] = 'l'; spec[sn++] = 'l'; spec[sn++] = conv == 'i' ? 'd' : conv; spec[sn] = 0;
            snprintf(out, sizeof out, spec, x);
            tb_puts(&b, out);
        } else if (strchr("feEgG", conv)) {
            if (v->t != TV_INT && v->t != TV_BOOL && v->t != TV_FLOAT) { free(b.p); return te_fail(E, at, "%%%c needs a number", conv); }
            double x = v->t == TV_INT ? (double)v->u.i : v->t == TV_BOOL ? v->u.b : v->u.f;
            spec[sn++] = conv; spec[sn] = 0;
            snprintf(out, sizeof out, spec, x);
            tb_puts(&b, out);
        } else { free(b.p); return te_fail(E, at, "unsupported format character '%c'", conv); }
    }
    return mkstr(E, at, &b);
}

/* "{} {0} {name}".format(...) */
static tv *brace_format(tmpl_ev *E, const node *at, tv *fmt, const targs *args)
{
    tbuf b = te_buf(E);
    size_t auto_i = 0;
    const char *p = fmt->u.s.s, *e = p + fmt->u.s.n;
    while (p < e) {
        if (*p == '{' && p + 1 < e && p[1] == '{') { tb_putc(&b, '{'); p += 2; continue; }
        if (*p == '}' && p + 1 < e && p[1] == '}') { tb_putc(&b, '}'); p += 2; continue; }
        if (*p != '{') { tb_putc(&b, *p++); continue; }
        const char *q = memchr(p, '}', (size_t)(e - p));
        if (!q) { free(b.p); return te_fail(E, at, "unmatched '{' in a format string"); }
        const char *nm = p + 1;
        size_t n = (size_t)(q - nm);
        const char *colon = memchr(nm, ':', n);
        if (colon) n = (size_t)(colon - nm);
        tv *v = NULL;
        if (!n) v = targ(args, auto_i++, NULL);
        else if (*nm >= '0' && *nm <= '9') v = targ(args, (size_t)strtoul(nm, NULL, 10), NULL);
        else {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(n < 60 ? n : 60), nm);
            v = targ(args, SIZE_MAX, key);
        }
        if (!v) { free(b.p); return te_fail(E, at, "a format field has no argument"); }
        tv_to_str(v, &b);
        p = q + 1;
    }
    return mkstr(E, at, &b);
}

tv *tb_escape(tmpl_ev *E, const node *at, tv *s)
{
    if (s->markup) return s;
    tbuf b = te_buf(E);
    for (size_t i = 0; i < s->u.s.n; i++) {
        char c = s->u.s.s[i];
        switch (c) {
        case '&': tb_puts(&b, "&amp;"); break;
        case '<': tb_puts(&b, "&lt;"); break;
        case '>': tb_puts(&b, "&gt;"); break;
        case '"': tb_puts(&b, "&#34;"); break;
        case '\'': tb_puts(&b, "&#39;"); break;
        default: tb_putc(&b, c);
        }
    }
    tv *r = mkstr(E, at, &b);
    if (r) r->markup = true;
    return r;
}

static tv *indent(tmpl_ev *E, const node *at, tv *s, const tv *width, bool first, bool blank)
{
    tbuf pad = te_buf(E), b = te_buf(E);
    if (width && width->t == TV_STR) tb_put(&pad, width->u.s.s, width->u.s.n);
    else
        for (int64_t i = 0; i < (width && width->t == TV_INT ? width->u.i : 4) && i < 1000; i++) tb_putc(&pad, ' ');
    const char *p = s->u.s.s, *e = p + s->u.s.n;
    bool line_start = true, is_first = true;
    while (p <= e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
        if (line_start && (is_first ? first : true) && (blank || n) && !(is_first && !first))
            tb_put(&b, pad.p ? pad.p : "", pad.n);
        tb_put(&b, p, n);
        if (!nl) break;
        tb_putc(&b, '\n');
        p = nl + 1;
        is_first = false;
        line_start = true;
    }
    free(pad.p);
    return mkstr(E, at, &b);
}

static tv *to_int(tmpl_ev *E, tv *v, tv *dflt)
{
    switch (v->t) {
    case TV_INT: return v;
    case TV_BOOL: return tv_int(A, v->u.b);
    case TV_FLOAT: return fits_i64(v->u.f) ? tv_int(A, (int64_t)v->u.f) : dflt;
    case TV_STR: {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)(v->u.s.n < 60 ? v->u.s.n : 60), v->u.s.s);
        char *end;
        long long x = strtoll(buf, &end, 10);
        while (*end == ' ') end++;
        if (end != buf && !*end) return tv_int(A, x);
        double f = strtod(buf, &end);
        while (*end == ' ') end++;
        if (end != buf && !*end && fits_i64(f)) return tv_int(A, (int64_t)f);
        return dflt;
    }
    default: return dflt;
    }
}

static tv *to_float(tmpl_ev *E, tv *v, tv *dflt)
{
    switch (v->t) {
    case TV_INT: return tv_float(A, (double)v->u.i);
    case TV_BOOL: return tv_float(A, v->u.b);
    case TV_FLOAT: return v;
    case TV_STR: {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)(v->u.s.n < 60 ? v->u.s.n : 60), v->u.s.s);
        char *end;
        double f = strtod(buf, &end);
        while (*end == ' ') end++;
        return end != buf && !*end ? tv_float(A, f) : dflt;
    }
    default: return dflt;
    }
}

/* select / reject / selectattr / rejectattr: keep the items whose test (default: truthiness) is as wanted */
static tv *select_items(tmpl_ev *E, const node *at, tv *in, const targs *args, bool by_attr, bool keep)
{
    tv *l = tv_truthy(in) ? to_list(E, at, in) : tv_new(A, TV_LIST); /* Jinja2 selects nothing from none */
    if (!l) return NULL;
    size_t first = 0;
    const tv *attr = NULL;
    if (by_attr) {
        if (!args->npos || args->pos[0]->t != TV_STR) return te_fail(E, at, "selectattr needs an attribute name");
        attr = args->pos[0];
        first = 1;
    }
    const tv *test = args->npos > first ? args->pos[first] : NULL;
    if (test && test->t != TV_STR) return te_fail(E, at, "the test's name must be a string");
    targs targs_ = { .npos = 0 };
    for (size_t i = first + 1; i < args->npos; i++) targs_.pos[targs_.npos++] = args->pos[i];
    tv *r = tv_new(A, TV_LIST);
    if (!r) return NOMEM();
    for (size_t i = 0; i < l->u.l.n; i++) {
        tv *x = l->u.l.v[i], *y = attr ? attr_path(x, attr) : x;
        int ok = test ? tb_test(E, at, test->u.s.s, test->u.s.n, y, &targs_) : tv_truthy(y);
        if (ok < 0) return NULL;
        if ((ok != 0) == keep && !tv_list_push(A, r, x)) return NOMEM();
    }
    return r;
}

tv *tb_filter(tmpl_ev *E, const node *at, const char *nm, size_t nl, tv *in, const targs *args)
{
#define IS(lit) name_is(nm, nl, lit)
    tv *a0 = targ(args, 0, NULL);
    if (IS("safe")) {
        tv *s = te_str_of(E, at, in), *r = s ? tv_str(A, s->u.s.s, s->u.s.n) : NULL;
        if (!r) return NOMEM();
        r->markup = true;
        return r;
    }
    if (IS("string")) return te_str_of(E, at, in);
    if (IS("length") || IS("count")) {
        if (in->t == TV_STR) return tv_int(A, (int64_t)tb_utf8_len(in->u.s.s, in->u.s.n));
        if (in->t == TV_LIST) return tv_int(A, (int64_t)in->u.l.n);
        if (in->t == TV_DICT) return tv_int(A, (int64_t)in->u.d.n);
        if (in->t == TV_UNDEF) return tv_int(A, 0);
        return te_fail(E, at, "a %s has no length", tv_type_name(in));
    }
    if (IS("default") || IS("d")) {
        tv *dv = targ(args, 0, "default_value"), *bo = targ(args, 1, "boolean");
        bool use = in->t == TV_UNDEF || (bo && tv_truthy(bo) && !tv_truthy(in));
        return use ? (dv ? dv : tv_str(A, "", 0)) : in;
    }
    if (IS("tojson")) {
        tv *ind = targ(args, 0, "indent"), *sk = targ(args, SIZE_MAX, "sort_keys");
        int indent = -1;
        if (ind && ind->t == TV_INT) indent = ind->u.i > INT_MAX ? INT_MAX : ind->u.i < INT_MIN ? INT_MIN : (int)ind->u.i;
        tbuf b = te_buf(E);
        tv_to_json(in, &b, indent, sk && tv_truthy(sk), 0);
        return mkstr(E, at, &b);
    }
    if (IS("items")) return items_of(E, at, in);
    if (IS("list")) return to_list(E, at, in);
    if (IS("join")) return join(E, at, to_list(E, at, in) ? to_list(E, at, in) : in, a0 ? a0 : targ(args, SIZE_MAX, "d"),
                                targ(args, 1, "attribute"));
    if (IS("select")) return select_items(E, at, in, args, false, true);
    if (IS("reject")) return select_items(E, at, in, args, false, false);
    if (IS("selectattr")) return select_items(E, at, in, args, true, true);
    if (IS("rejectattr")) return select_items(E, at, in, args, true, false);
    if (IS("map")) {
        tv *l = tv_truthy(in) ? to_list(E, at, in) : tv_new(A, TV_LIST);
        if (!l) return NULL;
        tv *attr = targ(args, SIZE_MAX, "attribute"), *dflt = targ(args, SIZE_MAX, "default");
        tv *r = tv_new(A, TV_LIST);
        if (!r) return NOMEM();
        targs fa = { .npos = 0 };
        for (size_t i = 1; i < args->npos; i++) fa.pos[fa.npos++] = args->pos[i];
        for (size_t i = 0; i < l->u.l.n; i++) {
            tv *x;
            if (attr && attr->t == TV_STR) {
                x = attr_path(l->u.l.v[i], attr);
                if (x->t == TV_UNDEF && dflt) x = dflt;
            } else if (a0 && a0->t == TV_STR) x = tb_filter(E, at, a0->u.s.s, a0->u.s.n, l->u.l.v[i], &fa);
            else return te_fail(E, at, "map needs a filter name or attribute=");
            if (!x || !tv_list_push(A, r, x)) return x ? NOMEM() : NULL;
        }
        return r;
    }
    if (IS("first") || IS("last")) {
        tv *l = to_list(E, at, in);
        if (!l) return NULL;
        if (!l->u.l.n) return &tv_undef_v;
        return l->u.l.v[IS("first") ? 0 : l->u.l.n - 1];
    }
    if (IS("reverse")) {
        if (in->t == TV_STR) {
            tv *l = to_list(E, at, in);
            if (!l) return NULL;
            tbuf b = te_buf(E);
            for (size_t i = l->u.l.n; i-- > 0;) tb_put(&b, l->u.l.v[i]->u.s.s, l->u.l.v[i]->u.s.n);
            return mkstr(E, at, &b);
        }
        tv *l = to_list(E, at, in), *r = tv_new(A, TV_LIST);
        if (!l || !r) return l ? NOMEM() : NULL;
        for (size_t i = l->u.l.n; i-- > 0;)
            if (!tv_list_push(A, r, l->u.l.v[i])) return NOMEM();
        return r;
    }
    if (IS("unique")) {
        tv *l = to_list(E, at, in), *r = tv_new(A, TV_LIST);
        if (!l || !r) return l ? NOMEM() : NULL;
        tv *attr = targ(args, SIZE_MAX, "attribute");
        for (size_t i = 0; i < l->u.l.n; i++) {
            tv *x = attr && attr->t == TV_STR ? attr_path(l->u.l.v[i], attr) : l->u.l.v[i];
            bool seen = false;
            for (size_t j = 0; j < r->u.l.n && !seen; j++) {
                tv *y = attr && attr->t == TV_STR ? attr_path(r->u.l.v[j], attr) : r->u.l.v[j];
                bool ok;
                seen = x->t == TV_STR && y->t == TV_STR ? cmp_ci(x, y, false, &ok) == 0 : tv_equal(x, y);
            }
            if (!seen && !tv_list_push(A, r, l->u.l.v[i])) return NOMEM();
        }
        return r;
    }
    if (IS("sort")) {
        tv *l = to_list(E, at, in);
        if (!l) return NULL;
        tv *rev = targ(args, 0, "reverse"), *cs = targ(args, 1, "case_sensitive"), *attr = targ(args, 2, "attribute");
        return sorted(E, at, l, attr && attr->t == TV_STR ? attr : NULL, rev && tv_truthy(rev), cs && tv_truthy(cs), -1);
    }
    if (IS("dictsort")) {
        tv *l = items_of(E, at, in);
        if (!l) return NULL;
        tv *cs = targ(args, 0, "case_sensitive"), *by = targ(args, 1, "by"), *rev = targ(args, 2, "reverse");
        bool by_value = by && by->t == TV_STR && name_is(by->u.s.s, by->u.s.n, "value");
        return sorted(E, at, l, NULL, rev && tv_truthy(rev), cs && tv_truthy(cs), by_value ? 1 : 0);
    }
    if (IS("sum")) {
        tv *l = to_list(E, at, in);
        if (!l) return NULL;
        tv *attr = targ(args, 0, "attribute"), *start = targ(args, 1, "start");
        bool fl = start && start->t == TV_FLOAT;
        double f = start ? (start->t == TV_FLOAT ? start->u.f : (double)(start->t == TV_INT ? start->u.i : 0)) : 0;
        int64_t i = start && start->t == TV_INT ? start->u.i : 0;
        for (size_t k = 0; k < l->u.l.n; k++) {
            tv *x = attr && attr->t == TV_STR ? attr_path(l->u.l.v[k], attr) : l->u.l.v[k];
            if (x->t == TV_FLOAT) { fl = true; f += x->u.f; }
            else if (x->t == TV_INT || x->t == TV_BOOL) { int64_t v = x->t == TV_INT ? x->u.i : x->u.b; i += v; f += (double)v; }
            else return te_fail(E, at, "sum of a %s", tv_type_name(x));
        }
        return fl ? tv_float(A, f) : tv_int(A, i);
    }
    if (IS("min") || IS("max")) {
        tv *l = to_list(E, at, in);
        if (!l) return NULL;
        if (!l->u.l.n) return &tv_undef_v;
        tv *attr = targ(args, 1, "attribute"), *cs = targ(args, 0, "case_sensitive");
        tv *best = l->u.l.v[0];
        for (size_t k = 1; k < l->u.l.n; k++) {
            bool ok;
            tv *x = attr && attr->t == TV_STR ? attr_path(l->u.l.v[k], attr) : l->u.l.v[k];
            tv *y = attr && attr->t == TV_STR ? attr_path(best, attr) : best;
            int c = cmp_ci(x, y, cs && tv_truthy(cs), &ok);
            if (!ok) return te_fail(E, at, "cannot compare items of different types");
            if (IS("min") ? c < 0 : c > 0) best = l->u.l.v[k];
        }
        return best;
    }
    if (IS("int")) {
        tv *r = to_int(E, in, a0 ? a0 : tv_int(A, 0));
        return r ? r : NOMEM();
    }
    if (IS("float")) {
        tv *r = to_float(E, in, a0 ? a0 : tv_float(A, 0));
        return r ? r : NOMEM();
    }
    if (IS("abs")) {
        if (in->t == TV_INT && in->u.i == INT64_MIN) return te_fail(E, at, "integer overflow in abs (results are 64-bit)");
        if (in->t == TV_INT) return tv_int(A, in->u.i < 0 ? -in->u.i : in->u.i);
        if (in->t == TV_FLOAT) return tv_float(A, fabs(in->u.f));
        return te_fail(E, at, "abs of a %s", tv_type_name(in));
    }
    if (IS("round")) {
        tv *prec = targ(args, 0, "precision"), *method = targ(args, 1, "method");
        double x = in->t == TV_FLOAT ? in->u.f : in->t == TV_INT ? (double)in->u.i : NAN;
        if (isnan(x) && in->t != TV_FLOAT) return te_fail(E, at, "round of a %s", tv_type_name(in));
        double p = pow(10, prec && prec->t == TV_INT ? (double)prec->u.i : 0);
        const char *m = method && method->t == TV_STR ? method->u.s.s : "common";
        double r = !strncmp(m, "floor", 5) ? floor(x * p) / p : !strncmp(m, "ceil", 4) ? ceil(x * p) / p : rint(x * p) / p; /* Python's round: half to even */
        return tv_float(A, r);
    }
    if (IS("attr")) {
        if (!a0 || a0->t != TV_STR) return te_fail(E, at, "attr needs a name");
        return attr_path(in, a0);
    }
    if (IS("batch") || IS("slice")) return te_fail(E, at, "the '%.*s' filter is not supported", (int)nl, nm);
    /* string filters */
    if (IS("trim") || IS("upper") || IS("lower") || IS("title") || IS("capitalize") || IS("replace") ||
        IS("escape") || IS("e") || IS("indent") || IS("wordcount") || IS("format") || IS("center") ||
        IS("truncate") || IS("striptags")) {
        tv *s = in->t == TV_STR ? in : te_str_of(E, at, in);
        if (!s) return NOMEM();
        if (IS("trim")) return strip(E, at, s, a0, true, true);
        if (IS("upper")) return change_case(E, at, s, CASE_UPPER);
        if (IS("lower")) return change_case(E, at, s, CASE_LOWER);
        if (IS("title")) return change_case(E, at, s, CASE_TITLE);
        if (IS("capitalize")) return change_case(E, at, s, CASE_CAPITALIZE);
        if (IS("replace")) {
            tv *o = targ(args, 0, "old"), *nw = targ(args, 1, "new"), *c = targ(args, 2, "count");
            if (!o || !nw) return te_fail(E, at, "replace needs two strings");
            return replace(E, at, s, o, nw, c && c->t == TV_INT ? c->u.i : -1);
        }
        if (IS("escape") || IS("e")) return tb_escape(E, at, s);
        if (IS("indent")) {
            tv *f = targ(args, 1, "first"), *bl = targ(args, 2, "blank");
            return indent(E, at, s, targ(args, 0, "width"), f && tv_truthy(f), bl && tv_truthy(bl));
        }
        if (IS("wordcount")) {
            tv *w = split(E, at, s, NULL, -1);
            return w ? tv_int(A, (int64_t)w->u.l.n) : NULL;
        }
        if (IS("format")) return printf_format(E, at, s, args);
        if (IS("center")) {
            int64_t w = a0 && a0->t == TV_INT ? a0->u.i : 80, len = (int64_t)tb_utf8_len(s->u.s.s, s->u.s.n);
            if (w <= len || w > 100000) return s;
            int64_t l = (w - len) / 2 + ((w - len) & w & 1), r = w - len - l;
            tbuf b = te_buf(E);
            for (int64_t i = 0; i < l; i++) tb_putc(&b, ' ');
            tb_put(&b, s->u.s.s, s->u.s.n);
            for (int64_t i = 0; i < r; i++) tb_putc(&b, ' ');
            return mkstr(E, at, &b);
        }
        return te_fail(E, at, "the '%.*s' filter is not supported", (int)nl, nm);
    }
    return te_fail(E, at, "no filter named '%.*s'", (int)nl, nm);
#undef IS
}

int tb_test(tmpl_ev *E, const node *at, const char *nm, size_t nl, tv *in, const targs *args)
{
#define IS(lit) name_is(nm, nl, lit)
    tv *a0 = targ(args, 0, NULL);
    if (IS("defined")) return in->t != TV_UNDEF;
    if (IS("undefined")) return in->t == TV_UNDEF;
    if (IS("none")) return in->t == TV_NONE;
    if (IS("string")) return in->t == TV_STR;
    if (IS("number")) return in->t == TV_INT || in->t == TV_FLOAT || in->t == TV_BOOL;
    if (IS("integer")) return in->t == TV_INT;
    if (IS("float")) return in->t == TV_FLOAT;
    if (IS("boolean")) return in->t == TV_BOOL;
    if (IS("true")) return in->t == TV_BOOL && in->u.b;
    if (IS("false")) return in->t == TV_BOOL && !in->u.b;
    if (IS("mapping")) return in->t == TV_DICT;
    if (IS("iterable") || IS("sequence")) return in->t == TV_STR || in->t == TV_LIST || in->t == TV_DICT;
    if (IS("callable")) return in->t == TV_MACRO || in->t == TV_FUNC;
    if (IS("lower") || IS("upper")) {
        if (in->t != TV_STR) return 0;
        tv *c = change_case(E, at, in, IS("lower") ? CASE_LOWER : CASE_UPPER);
        return c ? tv_equal(c, in) : -1;
    }
    if (IS("even") || IS("odd") || IS("divisibleby")) {
        if (in->t != TV_INT) { te_fail(E, at, "'%.*s' needs an integer", (int)nl, nm); return -1; }
        if (IS("divisibleby")) {
            if (!a0 || a0->t != TV_INT || !a0->u.i) { te_fail(E, at, "divisibleby needs a non-zero integer"); return -1; }
            return in->u.i % a0->u.i == 0;
        }
        return (in->u.i % 2 == 0) == IS("even");
    }
    if (IS("eq") || IS("equalto") || IS("==") || IS("sameas")) return a0 && tv_equal(in, a0);
    if (IS("ne") || IS("!=")) return !a0 || !tv_equal(in, a0);
    if (IS("lt") || IS("le") || IS("gt") || IS("ge") || IS("lessthan") || IS("greaterthan")) {
        bool ok;
        if (!a0) { te_fail(E, at, "'%.*s' needs a value to compare with", (int)nl, nm); return -1; }
        int c = tv_compare(in, a0, &ok);
        if (!ok) { te_fail(E, at, "cannot compare a %s with a %s", tv_type_name(in), tv_type_name(a0)); return -1; }
        return IS("lt") || IS("lessthan") ? c < 0 : IS("le") ? c <= 0 : IS("gt") || IS("greaterthan") ? c > 0 : c >= 0;
    }
    if (IS("in")) {
        if (!a0) { te_fail(E, at, "'in' needs a container"); return -1; }
        if (a0->t == TV_STR) return in->t == TV_STR && memmem(a0->u.s.s, a0->u.s.n, in->u.s.s, in->u.s.n) != NULL;
        if (a0->t == TV_LIST) {
            for (size_t i = 0; i < a0->u.l.n; i++)
                if (tv_equal(a0->u.l.v[i], in)) return 1;
            return 0;
        }
        if (a0->t == TV_DICT) return tv_dict_get(a0, in) != NULL;
        return 0;
    }
    te_fail(E, at, "no test named '%.*s'", (int)nl, nm);
    return -1;
#undef IS
}

static tv *str_find(tmpl_ev *E, tv *s, tv *x, bool rev)
{
    if (x->t != TV_STR) return tv_int(A, -1);
    const char *p = s->u.s.s, *hit = NULL;
    if (!rev) hit = x->u.s.n <= s->u.s.n ? memmem(p, s->u.s.n, x->u.s.s, x->u.s.n) : NULL;
    else
        for (size_t i = s->u.s.n + 1; i-- > 0 && !hit;)
            if (i + x->u.s.n <= s->u.s.n && !memcmp(p + i, x->u.s.s, x->u.s.n)) hit = p + i;
    return tv_int(A, hit ? (int64_t)tb_utf8_len(p, (size_t)(hit - p)) : -1);
}

static int char_class(tv *s, int (*pred)(int))
{
    if (!s->u.s.n) return 0;
    for (size_t i = 0; i < s->u.s.n; i++)
        if (!pred((unsigned char)s->u.s.s[i])) return 0;
    return 1;
}
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }
static int is_alnum(int c) { return is_digit(c) || is_alpha(c); }
static int is_space(int c) { return py_space((unsigned char)c); }

tv *tb_method(tmpl_ev *E, const node *at, tv *obj, const char *nm, size_t nl, const targs *args, bool *found)
{
#define IS(lit) name_is(nm, nl, lit)
    tv *a0 = targ(args, 0, NULL), *a1 = targ(args, 1, NULL);
    *found = true;
    if (obj->t == TV_STR) {
        if (IS("strip")) return strip(E, at, obj, a0, true, true);
        if (IS("lstrip")) return strip(E, at, obj, a0, true, false);
        if (IS("rstrip")) return strip(E, at, obj, a0, false, true);
        if (IS("upper")) return change_case(E, at, obj, CASE_UPPER);
        if (IS("lower")) return change_case(E, at, obj, CASE_LOWER);
        if (IS("title")) return change_case(E, at, obj, CASE_TITLE);
        if (IS("capitalize")) return change_case(E, at, obj, CASE_CAPITALIZE);
        if (IS("split") || IS("rsplit")) {
            tv *sep = targ(args, 0, "sep"), *mx = targ(args, 1, "maxsplit");
            int64_t m = mx && mx->t == TV_INT ? mx->u.i : -1;
            if (IS("rsplit") && m >= 0) { /* split from the right: split all, then join the head back */
                tv *all = split(E, at, obj, sep, -1);
                if (!all || (int64_t)all->u.l.n <= m + 1) return all;
                size_t head = all->u.l.n - (size_t)m;
                tv *r = tv_new(A, TV_LIST);
                tbuf b = te_buf(E);
                for (size_t i = 0; i < head; i++) {
                    if (i) { if (sep && sep->t == TV_STR) tb_put(&b, sep->u.s.s, sep->u.s.n); else tb_putc(&b, ' '); }
                    tb_put(&b, all->u.l.v[i]->u.s.s, all->u.l.v[i]->u.s.n);
                }
                tv *h = mkstr(E, at, &b);
                if (!r || !h || !tv_list_push(A, r, h)) return NOMEM();
                for (size_t i = head; i < all->u.l.n; i++)
                    if (!tv_list_push(A, r, all->u.l.v[i])) return NOMEM();
                return r;
            }
            return split(E, at, obj, sep, m);
        }
        if (IS("splitlines")) {
            tv *r = tv_new(A, TV_LIST);
            if (!r) return NOMEM();
            const char *p = obj->u.s.s, *e = p + obj->u.s.n;
            while (p < e) {
                const char *q = p;
                while (q < e && *q != '\n' && *q != '\r') q++;
                tv *l = tv_str(A, p, (size_t)(q - p));
                if (!l || !tv_list_push(A, r, l)) return NOMEM();
                if (q < e && *q == '\r' && q + 1 < e && q[1] == '\n') q++;
                p = q < e ? q + 1 : q;
            }
            return r;
        }
        if (IS("startswith") || IS("endswith")) {
            if (!a0) return te_fail(E, at, "%.*s needs an argument", (int)nl, nm);
            int r = starts_or_ends(E, at, obj, a0, IS("endswith"));
            return r < 0 ? NULL : tv_bool(A, r);
        }
        if (IS("replace")) {
            if (!a0 || !a1) return te_fail(E, at, "replace needs two strings");
            tv *c = targ(args, 2, "count");
            return replace(E, at, obj, a0, a1, c && c->t == TV_INT ? c->u.i : -1);
        }
        if (IS("find") || IS("index") || IS("rfind") || IS("rindex")) {
            if (!a0) return te_fail(E, at, "%.*s needs an argument", (int)nl, nm);
            tv *r = str_find(E, obj, a0, nm[0] == 'r');
            if (r && r->u.i < 0 && (IS("index") || IS("rindex"))) return te_fail(E, at, "substring not found");
            return r;
        }
        if (IS("count")) {
            if (!a0 || a0->t != TV_STR) return te_fail(E, at, "count needs a string");
            int64_t c = 0;
            if (!a0->u.s.n) return tv_int(A, (int64_t)tb_utf8_len(obj->u.s.s, obj->u.s.n) + 1);
            for (const char *p = obj->u.s.s, *e = p + obj->u.s.n; (p = memmem(p, (size_t)(e - p), a0->u.s.s, a0->u.s.n));
                 p += a0->u.s.n)
                c++;
            return tv_int(A, c);
        }
        if (IS("join")) {
            tv *l = a0 ? to_list(E, at, a0) : NULL;
            return l ? join(E, at, l, obj, NULL) : te_fail(E, at, "join needs a list");
        }
        if (IS("format")) return brace_format(E, at, obj, args);
        if (IS("isdigit")) return tv_bool(A, char_class(obj, is_digit));
        if (IS("isalpha")) return tv_bool(A, char_class(obj, is_alpha));
        if (IS("isalnum")) return tv_bool(A, char_class(obj, is_alnum));
        if (IS("isspace")) return tv_bool(A, char_class(obj, is_space));
        if (IS("islower") || IS("isupper")) {
            tv *c = change_case(E, at, obj, IS("islower") ? CASE_LOWER : CASE_UPPER),
               *o = c ? change_case(E, at, obj, IS("islower") ? CASE_UPPER : CASE_LOWER) : NULL;
            return o ? tv_bool(A, tv_equal(c, obj) && !tv_equal(o, obj)) : NULL;
        }
    } else if (obj->t == TV_DICT) {
        if (IS("items")) return items_of(E, at, obj);
        if (IS("keys")) return to_list(E, at, obj);
        if (IS("values")) {
            tv *r = tv_new(A, TV_LIST);
            if (!r) return NOMEM();
            for (size_t i = 0; i < obj->u.d.n; i++)
                if (!tv_list_push(A, r, obj->u.d.v[i])) return NOMEM();
            return r;
        }
        if (IS("get")) {
            if (!a0) return te_fail(E, at, "get needs a key");
            tv *v = tv_dict_get(obj, a0);
            return v ? v : a1 ? a1 : &tv_none_v;
        }
        if (obj->loop && IS("cycle")) {
            if (!args->npos) return te_fail(E, at, "loop.cycle needs values");
            tv *i0 = tv_dict_gets(obj, "index0");
            return args->pos[(size_t)i0->u.i % args->npos];
        }
    } else if (obj->t == TV_LIST) {
        if (IS("index")) {
            for (size_t i = 0; a0 && i < obj->u.l.n; i++)
                if (tv_equal(obj->u.l.v[i], a0)) return tv_int(A, (int64_t)i);
            return te_fail(E, at, "the value is not in the list");
        }
        if (IS("count")) {
            int64_t c = 0;
            for (size_t i = 0; a0 && i < obj->u.l.n; i++) c += tv_equal(obj->u.l.v[i], a0);
            return tv_int(A, c);
        }
        if (IS("append") || IS("pop") || IS("extend") || IS("insert") || IS("remove") || IS("clear") || IS("sort") ||
            IS("reverse"))
            return te_fail(E, at, "lists cannot be changed in a chat template ('%.*s')", (int)nl, nm);
    }
    *found = false;
    return NULL;
#undef IS
}

tv *tb_call_fn(tmpl_ev *E, const node *at, int fn, const targs *args)
{
    tv *a0 = targ(args, 0, NULL);
    switch (fn) {
    case TB_FN_RAISE: {
        tbuf b = te_buf(E);
        if (a0) tv_to_str(a0, &b);
        te_fail(E, at, "template error: %s", b.p ? b.p : "");
        free(b.p);
        return NULL;
    }
    case TB_FN_STRFTIME: {
        if (!a0 || a0->t != TV_STR) return te_fail(E, at, "strftime_now needs a format string");
        char fmt[256], out[512];
        snprintf(fmt, sizeof fmt, "%.*s", (int)(a0->u.s.n < 250 ? a0->u.s.n : 250), a0->u.s.s);
        time_t now = (time_t)te_now(E);
        struct tm tm;
        if (!localtime_r(&now, &tm)) return te_fail(E, at, "strftime_now: no local time");
        size_t n = strftime(out, sizeof out, fmt, &tm);
        tv *r = tv_str(A, out, n);
        return r ? r : NOMEM();
    }
    case TB_FN_NAMESPACE: case TB_FN_DICT: {
        tv *d = tv_new(A, TV_DICT);
        if (!d) return NOMEM();
        d->ns = fn == TB_FN_NAMESPACE;
        if (a0 && a0->t == TV_DICT)
            for (size_t i = 0; i < a0->u.d.n; i++)
                if (!tv_dict_set(A, d, a0->u.d.k[i], a0->u.d.v[i])) return NOMEM();
        for (size_t k = 0; k < args->nkw; k++) {
            tv *key = tv_str(A, args->kw[k].s, args->kw[k].n);
            if (!key || !tv_dict_set(A, d, key, args->kw[k].v)) return NOMEM();
        }
        return d;
    }
    case TB_FN_RANGE: {
        int64_t v[3] = { 0, 0, 1 };
        if (!args->npos || args->npos > 3) return te_fail(E, at, "range takes 1 to 3 integers");
        for (size_t i = 0; i < args->npos; i++) {
            if (args->pos[i]->t != TV_INT) return te_fail(E, at, "range takes integers");
            v[args->npos == 1 ? 1 : i] = args->pos[i]->u.i;
        }
        if (!v[2]) return te_fail(E, at, "range step cannot be zero");
        tv *l = tv_new(A, TV_LIST);
        if (!l) return NOMEM();
        for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
            if ((int64_t)l->u.l.n >= te_max_iters(E))
                return te_fail(E, at, "range longer than %lld", (long long)te_max_iters(E));
            tv *x = tv_int(A, i);
            if (!x || !tv_list_push(A, l, x)) return NOMEM();
        }
        return l;
    }
    default: return te_fail(E, at, "unknown function");
    }
}
