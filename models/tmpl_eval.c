/* tmpl_eval.c: the template evaluator: walks the syntax tree of tmpl_parse.c with Jinja2's semantics
 * (as Hugging Face configures it: undefined values print as nothing, a loop body and a macro are scopes
 * of their own while if is not, namespace() objects are the only ones whose attributes can be set) and
 * writes the output. Filters, tests, methods and global functions are in tmpl_builtins.c.
 *
 * Bounds: recursion depth TMPL_MAX_DEPTH (also of the values printed or compared), TMPL_MAX_ITERS loop
 * iterations per render (and items in a list made by + or range), TMPL_MAX_OUTPUT bytes of output and
 * of any one string (lm_tmpl_set_limits lowers the last two); each is an error naming itself. */
#include "tmpl_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct scope scope;
struct scope {
    scope *parent;
    tv *vars; /* a dict */
};

enum { CTL_NONE, CTL_BREAK, CTL_CONTINUE };

struct tmpl_ev {
    tmpl_arena *a;
    tbuf *out;
    char *err;
    size_t errlen;
    bool failed;
    int depth;
    int64_t iters;
    int ctl;
    scope *globals;
    int64_t now;
    int64_t max_iters;
    size_t max_output;
};

tmpl_arena *te_arena(tmpl_ev *E) { return E->a; }
bool te_failed(const tmpl_ev *E) { return E->failed; }
int64_t te_now(const tmpl_ev *E) { return E->now; }
int64_t te_max_iters(const tmpl_ev *E) { return E->max_iters; }
size_t te_max_output(const tmpl_ev *E) { return E->max_output; }

tv *te_fail(tmpl_ev *E, const node *at, const char *fmt, ...)
{
    if (!E->failed) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (at) snprintf(E->err, E->errlen, "line %d, column %d: %s", at->line, at->col, msg);
        else snprintf(E->err, E->errlen, "%s", msg);
        E->failed = true;
    }
    return NULL;
}

static tv *oom(tmpl_ev *E, const node *at) { return te_fail(E, at, "out of memory"); }

tv *targ(const targs *a, size_t i, const char *kw)
{
    if (kw) {
        size_t n = strlen(kw);
        for (size_t k = 0; k < a->nkw; k++)
            if (a->kw[k].n == n && !memcmp(a->kw[k].s, kw, n)) return a->kw[k].v;
    }
    return i < a->npos ? a->pos[i] : NULL;
}

tbuf te_buf(const tmpl_ev *E) { return (tbuf){ .max = E->max_output }; }

tv *te_buf_str(tmpl_ev *E, const node *at, tbuf *b)
{
    tv *r = NULL;
    if (b->deep) te_fail(E, at, "a value nested deeper than %d levels (or holding itself) cannot be printed", TMPL_MAX_DEPTH);
    else if (b->over) te_fail(E, at, "a string exceeds %zu bytes", b->max);
    else if (!b->oom) r = tv_str(E->a, b->p ? b->p : "", b->n);
    free(b->p);
    b->p = NULL;
    return r || E->failed ? r : oom(E, at);
}

tv *te_str_of(tmpl_ev *E, const node *at, const tv *v)
{
    if (v->t == TV_STR) return (tv *)v;
    tbuf b = te_buf(E);
    tv_to_str(v, &b);
    return te_buf_str(E, at, &b);
}

/* ---------------------------------------------------------------- scopes */

static scope *scope_new(tmpl_ev *E, scope *parent)
{
    scope *s = ta_alloc(E->a, sizeof(*s));
    if (!s) return NULL;
    s->parent = parent;
    s->vars = tv_new(E->a, TV_DICT);
    return s->vars ? s : NULL;
}

static tv *lookup(scope *s, const char *name, size_t n)
{
    for (; s; s = s->parent)
        for (size_t i = 0; i < s->vars->u.d.n; i++) {
            const tv *k = s->vars->u.d.k[i];
            if (k->u.s.n == n && !memcmp(k->u.s.s, name, n)) return s->vars->u.d.v[i];
        }
    return NULL;
}

static bool assign(tmpl_ev *E, scope *s, const char *name, size_t n, tv *v)
{
    tv *k = tv_str(E->a, name, n);
    return k && tv_dict_set(E->a, s->vars, k, v);
}

/* ---------------------------------------------------------------- output */

static bool emit(tmpl_ev *E, const node *at, const char *s, size_t n)
{
    if (E->out->n + n > E->max_output) {
        te_fail(E, at, "the output exceeds %zu bytes", E->max_output);
        return false;
    }
    tb_put(E->out, s, n);
    if (E->out->oom) {
        oom(E, at);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- expressions */

static tv *eval(tmpl_ev *E, scope *s, const node *n);
static bool exec_body(tmpl_ev *E, scope *s, const node *body);

static bool eval_args(tmpl_ev *E, scope *s, const node *n, size_t first, targs *out)
{
    out->npos = out->nkw = 0;
    for (size_t i = first; i < n->nkids; i++) {
        const node *k = n->kids[i];
        if (k->t == N_KWARG) {
            if (out->nkw == TMPL_MAX_ARGS) { te_fail(E, k, "too many arguments"); return false; }
            tv *v = eval(E, s, k->a);
            if (!v) return false;
            out->kw[out->nkw].s = k->s;
            out->kw[out->nkw].n = k->n;
            out->kw[out->nkw++].v = v;
        } else {
            if (out->npos == TMPL_MAX_ARGS) { te_fail(E, k, "too many arguments"); return false; }
            tv *v = eval(E, s, k);
            if (!v) return false;
            out->pos[out->npos++] = v;
        }
    }
    return true;
}

static int64_t cp_count(const tv *v) { return (int64_t)tb_utf8_len(v->u.s.s, v->u.s.n); }

/* byte offset of code point i (0 <= i <= count) */
static size_t cp_off(const char *s, size_t n, int64_t i)
{
    size_t b = 0;
    while (i > 0 && b < n) {
        b++;
        while (b < n && ((unsigned char)s[b] & 0xC0) == 0x80) b++;
        i--;
    }
    return b;
}

/* obj[key]: items of lists (negative indices count from the end), dicts and strings (one code point) */
static tv *get_item(tmpl_ev *E, const node *at, tv *obj, tv *key)
{
    (void)at;
    if (obj->t == TV_DICT) {
        tv *v = tv_dict_get(obj, key);
        return v ? v : &tv_undef_v;
    }
    if ((obj->t == TV_LIST || obj->t == TV_STR) && (key->t == TV_INT || key->t == TV_BOOL)) {
        int64_t i = key->t == TV_BOOL ? key->u.b : key->u.i;
        int64_t len = obj->t == TV_LIST ? (int64_t)obj->u.l.n : cp_count(obj);
        if (i < 0) i += len;
        if (i < 0 || i >= len) return &tv_undef_v;
        if (obj->t == TV_LIST) return obj->u.l.v[i];
        size_t b0 = cp_off(obj->u.s.s, obj->u.s.n, i), b1 = cp_off(obj->u.s.s, obj->u.s.n, i + 1);
        tv *r = tv_str(E->a, obj->u.s.s + b0, b1 - b0);
        return r ? r : oom(E, at);
    }
    return &tv_undef_v;
}

static tv *get_attr(tmpl_ev *E, const node *at, tv *obj, const char *name, size_t n)
{
    if (obj->t == TV_UNDEF)
        return te_fail(E, at, "cannot read attribute '%.*s' of an undefined value", (int)n, name);
    if (obj->t == TV_DICT) {
        tv k = { .t = TV_STR };
        k.u.s.s = name;
        k.u.s.n = n;
        tv *v = tv_dict_get(obj, &k);
        return v ? v : &tv_undef_v;
    }
    return &tv_undef_v;
}

static bool slice_bound(tmpl_ev *E, scope *s, const node *n, int64_t *out, bool *given)
{
    *given = false;
    if (!n) return true;
    tv *v = eval(E, s, n);
    if (!v) return false;
    if (v->t == TV_NONE) return true;
    if (v->t != TV_INT) { te_fail(E, n, "slice indices must be integers, not %s", tv_type_name(v)); return false; }
    *out = v->u.i;
    *given = true;
    return true;
}

/* Python's slice semantics: obj[lo:hi:step] */
static tv *eval_slice(tmpl_ev *E, scope *s, const node *n)
{
    tv *obj = eval(E, s, n->a);
    if (!obj) return NULL;
    const node *sl = n->b;
    int64_t lo = 0, hi = 0, st = 1;
    bool glo, ghi, gst;
    if (!slice_bound(E, s, sl->a, &lo, &glo) || !slice_bound(E, s, sl->b, &hi, &ghi) ||
        !slice_bound(E, s, sl->c, &st, &gst))
        return NULL;
    if (obj->t == TV_UNDEF) return &tv_undef_v;
    if (obj->t != TV_LIST && obj->t != TV_STR) return te_fail(E, n, "cannot slice a %s", tv_type_name(obj));
    if (st == 0) return te_fail(E, n, "slice step cannot be zero");
    int64_t len = obj->t == TV_LIST ? (int64_t)obj->u.l.n : cp_count(obj);
    if (!glo) lo = st > 0 ? 0 : len - 1;
    else if (lo < 0) { lo += len; if (lo < 0) lo = st > 0 ? 0 : -1; }
    else if (lo >= len) lo = st > 0 ? len : len - 1;
    if (!ghi) hi = st > 0 ? len : -1;
    else if (hi < 0) { hi += len; if (hi < 0) hi = st > 0 ? 0 : -1; }
    else if (hi >= len) hi = st > 0 ? len : len - 1;
    if (obj->t == TV_LIST) {
        tv *r = tv_new(E->a, TV_LIST);
        if (!r) return oom(E, n);
        for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st)
            if (!tv_list_push(E->a, r, obj->u.l.v[i])) return oom(E, n);
        return r;
    }
    if (st == 1) {
        if (hi < lo) hi = lo;
        size_t b0 = cp_off(obj->u.s.s, obj->u.s.n, lo), b1 = cp_off(obj->u.s.s, obj->u.s.n, hi);
        tv *r = tv_str(E->a, obj->u.s.s + b0, b1 - b0);
        return r ? r : oom(E, n);
    }
    tbuf b = { 0 };
    for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
        size_t b0 = cp_off(obj->u.s.s, obj->u.s.n, i), b1 = cp_off(obj->u.s.s, obj->u.s.n, i + 1);
        tb_put(&b, obj->u.s.s + b0, b1 - b0);
    }
    tv *r = b.oom ? NULL : tv_str(E->a, b.p ? b.p : "", b.n);
    free(b.p);
    return r ? r : oom(E, n);
}

static bool is_num(const tv *v) { return v->t == TV_INT || v->t == TV_FLOAT || v->t == TV_BOOL; }
static double num(const tv *v) { return v->t == TV_FLOAT ? v->u.f : v->t == TV_INT ? (double)v->u.i : v->u.b; }
static int64_t inum(const tv *v) { return v->t == TV_INT ? v->u.i : v->u.b; }

/* l + r, no longer than the loop bound (doubling a list in a loop would take memory without one) */
static tv *concat_lists(tmpl_ev *E, const node *at, const tv *l, const tv *r)
{
    if ((int64_t)(l->u.l.n + r->u.l.n) > E->max_iters)
        return te_fail(E, at, "a list longer than %lld items", (long long)E->max_iters);
    tv *o = tv_new(E->a, TV_LIST);
    if (!o) return oom(E, at);
    for (size_t i = 0; i < l->u.l.n; i++)
        if (!tv_list_push(E->a, o, l->u.l.v[i])) return oom(E, at);
    for (size_t i = 0; i < r->u.l.n; i++)
        if (!tv_list_push(E->a, o, r->u.l.v[i])) return oom(E, at);
    return o;
}

static tv *concat_strs(tmpl_ev *E, const node *at, const tv *l, const tv *r)
{
    if (l->u.s.n + r->u.s.n > E->max_output) return te_fail(E, at, "a string exceeds %zu bytes", E->max_output);
    tv *o = tv_new(E->a, TV_STR);
    char *p = ta_alloc(E->a, l->u.s.n + r->u.s.n + 1);
    if (!o || !p) return oom(E, at);
    memcpy(p, l->u.s.s, l->u.s.n);
    memcpy(p + l->u.s.n, r->u.s.s, r->u.s.n);
    o->u.s.s = p;
    o->u.s.n = l->u.s.n + r->u.s.n;
    return o;
}

/* x in y */
static int contains(tmpl_ev *E, const node *at, const tv *x, const tv *y)
{
    if (y->t == TV_STR) {
        if (x->t != TV_STR) { te_fail(E, at, "'in <string>' requires a string, not %s", tv_type_name(x)); return -1; }
        if (!x->u.s.n) return 1;
        if (x->u.s.n > y->u.s.n) return 0;
        return memmem(y->u.s.s, y->u.s.n, x->u.s.s, x->u.s.n) != NULL;
    }
    if (y->t == TV_LIST) {
        for (size_t i = 0; i < y->u.l.n; i++)
            if (tv_equal(y->u.l.v[i], x)) return 1;
        return 0;
    }
    if (y->t == TV_DICT) return tv_dict_get(y, x) != NULL;
    if (y->t == TV_UNDEF) return 0;
    te_fail(E, at, "cannot look into a %s with 'in'", tv_type_name(y));
    return -1;
}

static tv *binop(tmpl_ev *E, const node *n, tv *l, tv *r)
{
    const char *op = n->s;
    tmpl_arena *a = E->a;
    if (!strcmp(op, "~")) {
        tv *ls = te_str_of(E, n, l), *rs = ls ? te_str_of(E, n, r) : NULL;
        if (!ls || !rs) return NULL;
        return concat_strs(E, n, ls, rs);
    }
    if (!strcmp(op, "==")) return tv_bool(a, tv_equal(l, r));
    if (!strcmp(op, "!=")) return tv_bool(a, !tv_equal(l, r));
    if (!strcmp(op, "in") || !strcmp(op, "notin")) {
        int c = contains(E, n, l, r);
        if (c < 0) return NULL;
        return tv_bool(a, op[0] == 'i' ? c : !c);
    }
    if (op[0] == '<' || op[0] == '>') {
        bool ok;
        int c = tv_compare(l, r, &ok);
        if (!ok) return te_fail(E, n, "'%s' is not supported between %s and %s", op, tv_type_name(l), tv_type_name(r));
        bool res = !strcmp(op, "<") ? c < 0 : !strcmp(op, "<=") ? c <= 0 : !strcmp(op, ">") ? c > 0 : c >= 0;
        return tv_bool(a, res);
    }
    if (!strcmp(op, "+")) {
        if (l->t == TV_STR && r->t == TV_STR && (l->markup || r->markup)) { /* as markupsafe's Markup */
            tv *le = tb_escape(E, n, l), *re = le ? tb_escape(E, n, r) : NULL, *res = re ? concat_strs(E, n, le, re) : NULL;
            if (res) res->markup = true;
            return res;
        }
        if (l->t == TV_STR && r->t == TV_STR) return concat_strs(E, n, l, r);
        if (l->t == TV_LIST && r->t == TV_LIST) return concat_lists(E, n, l, r);
    }
    if (!strcmp(op, "*") && ((l->t == TV_STR && r->t == TV_INT) || (l->t == TV_INT && r->t == TV_STR))) {
        const tv *str = l->t == TV_STR ? l : r;
        int64_t k = l->t == TV_INT ? l->u.i : r->u.i;
        if (k <= 0 || !str->u.s.n) return tv_str(a, "", 0);
        if ((uint64_t)k * str->u.s.n > E->max_output) return te_fail(E, n, "a string exceeds %zu bytes", E->max_output);
        tbuf b = { 0 };
        for (int64_t i = 0; i < k; i++) tb_put(&b, str->u.s.s, str->u.s.n);
        tv *res = b.oom ? NULL : tv_str(a, b.p, b.n);
        free(b.p);
        return res ? res : oom(E, n);
    }
    if (!strcmp(op, "%") && l->t == TV_STR) {
        targs args = { .npos = 0 };
        if (r->t == TV_LIST) {
            for (size_t i = 0; i < r->u.l.n && i < TMPL_MAX_ARGS; i++) args.pos[args.npos++] = r->u.l.v[i];
        } else args.pos[args.npos++] = r;
        return tb_filter(E, n, "format", 6, l, &args);
    }
    if (!is_num(l) || !is_num(r))
        return te_fail(E, n, "unsupported operand types for '%s': %s and %s", op, tv_type_name(l), tv_type_name(r));
    bool fl = l->t == TV_FLOAT || r->t == TV_FLOAT;
    if (!strcmp(op, "/")) {
        if (num(r) == 0) return te_fail(E, n, "division by zero");
        return tv_float(a, num(l) / num(r));
    }
    if (!fl) {
        /* Python's integers do not overflow, ours are 64-bit: a result that does not fit is an error
         * (found by tests/fuzz: 9223372036854775807 * 2) */
        int64_t x = inum(l), y = inum(r), res;
        bool ovf = false;
        if (!strcmp(op, "+")) ovf = __builtin_add_overflow(x, y, &res);
        else if (!strcmp(op, "-")) ovf = __builtin_sub_overflow(x, y, &res);
        else if (!strcmp(op, "*")) ovf = __builtin_mul_overflow(x, y, &res);
        else if (!strcmp(op, "//") || !strcmp(op, "%")) {
            if (!y) return te_fail(E, n, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                ovf = op[0] != '%';
                res = 0;
            } else {
                int64_t q = x / y, m = x % y;
                if (m && ((m < 0) != (y < 0))) { q--; m += y; }
                res = op[0] == '%' ? m : q;
            }
        } else if (!strcmp(op, "**")) {
            if (y < 0) return tv_float(a, __builtin_pow((double)x, (double)y));
            res = 1;
            /* |x| >= 2 overflows by 64 steps; 0, 1 and -1 need no more than the parity of y */
            for (int64_t i = 0; i < y && !ovf; i++) {
                ovf = __builtin_mul_overflow(res, x, &res);
                if (i == 64) i = y - 1 - (y - 1 - i) % 2;
            }
        } else {
            return te_fail(E, n, "unknown operator '%s'", op);
        }
        if (ovf) return te_fail(E, n, "integer overflow in '%s' (results are 64-bit)", op);
        return tv_int(a, res);
    } else {
        double x = num(l), y = num(r);
        if (!strcmp(op, "+")) return tv_float(a, x + y);
        if (!strcmp(op, "-")) return tv_float(a, x - y);
        if (!strcmp(op, "*")) return tv_float(a, x * y);
        if (!strcmp(op, "**")) return tv_float(a, __builtin_pow(x, y));
        if (!strcmp(op, "//") || !strcmp(op, "%")) {
            if (y == 0) return te_fail(E, n, "float division or modulo by zero");
            double q = __builtin_floor(x / y);
            return tv_float(a, op[0] == '%' ? x - q * y : q);
        }
    }
    return te_fail(E, n, "unknown operator '%s'", op);
}

static tv *call_macro(tmpl_ev *E, const node *at, tv *m, const targs *args, tv *caller);

static tv *eval_call(tmpl_ev *E, scope *s, const node *n, tv *caller)
{
    const node *f = n->a;
    targs args;
    if (f->t == N_ATTR) {
        tv *obj = eval(E, s, f->a);
        if (!obj) return NULL;
        if (!eval_args(E, s, n, 0, &args)) return NULL;
        if (obj->t == TV_DICT) {
            tv *member = get_attr(E, f, obj, f->s, f->n);
            if (member && (member->t == TV_MACRO || member->t == TV_FUNC)) return call_macro(E, n, member, &args, caller);
        }
        bool found = false;
        tv *r = tb_method(E, n, obj, f->s, f->n, &args, &found);
        if (found || E->failed) return r;
        if (obj->t == TV_UNDEF) return te_fail(E, f, "cannot call '%.*s' of an undefined value", (int)f->n, f->s);
        return te_fail(E, f, "%s object has no method '%.*s'", tv_type_name(obj), (int)f->n, f->s);
    }
    tv *fn = eval(E, s, f);
    if (!fn) return NULL;
    if (!eval_args(E, s, n, 0, &args)) return NULL;
    if (fn->t == TV_UNDEF && f->t == N_NAME) return te_fail(E, f, "'%.*s' is undefined", (int)f->n, f->s);
    return call_macro(E, n, fn, &args, caller);
}

tv *te_call_value(tmpl_ev *E, const node *at, tv *fn, const targs *args) { return call_macro(E, at, fn, args, NULL); }

static tv *eval_test(tmpl_ev *E, scope *s, const node *n)
{
    tv *in;
    /* `x is defined` must not fail on an undefined x.y */
    in = eval(E, s, n->a);
    if (!in) return NULL;
    targs args;
    if (!eval_args(E, s, n, 0, &args)) return NULL;
    int r = tb_test(E, n, n->s, n->n, in, &args);
    if (r < 0) return NULL;
    return tv_bool(E->a, n->neg ? !r : r);
}

static tv *eval(tmpl_ev *E, scope *s, const node *n)
{
    if (E->failed) return NULL;
    if (++E->depth > TMPL_MAX_DEPTH) return te_fail(E, n, "recursion deeper than %d", TMPL_MAX_DEPTH);
    tv *r = NULL;
    switch (n->t) {
    case N_LIT: r = n->lit; break;
    case N_NAME: r = lookup(s, n->s, n->n); if (!r) r = &tv_undef_v; break;
    case N_ATTR: {
        tv *o = eval(E, s, n->a);
        if (o) r = get_attr(E, n, o, n->s, n->n);
        break;
    }
    case N_ITEM: {
        tv *o = eval(E, s, n->a), *k = o ? eval(E, s, n->b) : NULL;
        if (!k) break;
        if (o->t == TV_UNDEF) { r = te_fail(E, n, "cannot read an item of an undefined value"); break; }
        r = get_item(E, n, o, k);
        break;
    }
    case N_SLICE: r = eval_slice(E, s, n); break;
    case N_CALL: r = eval_call(E, s, n, NULL); break;
    case N_FILTER: {
        tv *in = eval(E, s, n->a);
        targs args;
        if (in && eval_args(E, s, n, 0, &args)) r = tb_filter(E, n, n->s, n->n, in, &args);
        break;
    }
    case N_TEST: r = eval_test(E, s, n); break;
    case N_NOT: { tv *v = eval(E, s, n->a); if (v) r = tv_bool(E->a, !tv_truthy(v)); break; }
    case N_NEG: case N_POS: {
        tv *v = eval(E, s, n->a);
        if (!v) break;
        if (!is_num(v)) { r = te_fail(E, n, "bad operand type for unary %c: %s", n->t == N_NEG ? '-' : '+', tv_type_name(v)); break; }
        if (n->t == N_POS) r = v->t == TV_BOOL ? tv_int(E->a, v->u.b) : v;
        else if (v->t == TV_FLOAT) r = tv_float(E->a, -v->u.f);
        else if (inum(v) == INT64_MIN) r = te_fail(E, n, "integer overflow in unary - (results are 64-bit)");
        else r = tv_int(E->a, -inum(v));
        break;
    }
    case N_BIN: {
        tv *l = eval(E, s, n->a), *rr = l ? eval(E, s, n->b) : NULL;
        if (rr) r = binop(E, n, l, rr);
        break;
    }
    case N_AND: { tv *l = eval(E, s, n->a); if (l) r = tv_truthy(l) ? eval(E, s, n->b) : l; break; }
    case N_OR: { tv *l = eval(E, s, n->a); if (l) r = tv_truthy(l) ? l : eval(E, s, n->b); break; }
    case N_COND: {
        tv *c = eval(E, s, n->b);
        if (c) r = tv_truthy(c) ? eval(E, s, n->a) : n->c ? eval(E, s, n->c) : &tv_undef_v;
        break;
    }
    case N_LIST: case N_TUPLE: {
        r = tv_new(E->a, TV_LIST);
        if (!r) { oom(E, n); break; }
        r->tuple = n->t == N_TUPLE;
        for (size_t i = 0; i < n->nkids; i++) {
            tv *v = eval(E, s, n->kids[i]);
            if (!v) { r = NULL; break; }
            if (!tv_list_push(E->a, r, v)) { r = oom(E, n); break; }
        }
        break;
    }
    case N_DICT: {
        r = tv_new(E->a, TV_DICT);
        if (!r) { oom(E, n); break; }
        for (size_t i = 0; i + 1 < n->nkids; i += 2) {
            tv *k = eval(E, s, n->kids[i]), *v = k ? eval(E, s, n->kids[i + 1]) : NULL;
            if (!v) { r = NULL; break; }
            if (!tv_dict_set(E->a, r, k, v)) { r = oom(E, n); break; }
        }
        break;
    }
    default: r = te_fail(E, n, "not an expression"); break;
    }
    E->depth--;
    if (!r && !E->failed) oom(E, n);
    return E->failed ? NULL : r;
}

/* ---------------------------------------------------------------- macros */

static tv *call_macro(tmpl_ev *E, const node *at, tv *m, const targs *args, tv *caller)
{
    if (m->t == TV_FUNC) return tb_call_fn(E, at, m->u.fn, args);
    if (m->t != TV_MACRO) return te_fail(E, at, "a %s cannot be called", tv_type_name(m));
    const node *def = m->u.m.node;
    /* N_MACRO: params in kids; N_CALLBLOCK (a caller()): params in kids */
    scope *ms = scope_new(E, (scope *)m->u.m.scope);
    if (!ms) return oom(E, at);
    tv *varargs = tv_new(E->a, TV_LIST), *kwargs = tv_new(E->a, TV_DICT);
    if (!varargs || !kwargs) return oom(E, at);
    size_t np = def->nkids;
    for (size_t i = 0; i < np; i++) {
        const node *p = def->kids[i];
        /* positional i, else the keyword of the same name, else the default */
        tv *v = i < args->npos ? args->pos[i] : NULL;
        for (size_t k = 0; !v && k < args->nkw; k++)
            if (args->kw[k].n == p->n && !memcmp(args->kw[k].s, p->s, p->n)) v = args->kw[k].v;
        if (!v && p->t == N_KWARG) {
            v = eval(E, ms, p->a);
            if (!v) return NULL;
        }
        if (!v) v = &tv_undef_v;
        if (!assign(E, ms, p->s, p->n, v)) return oom(E, at);
    }
    for (size_t i = np; i < args->npos; i++)
        if (!tv_list_push(E->a, varargs, args->pos[i])) return oom(E, at);
    for (size_t k = 0; k < args->nkw; k++) {
        bool param = false;
        for (size_t i = 0; i < np; i++)
            if (def->kids[i]->n == args->kw[k].n && !memcmp(def->kids[i]->s, args->kw[k].s, args->kw[k].n)) param = true;
        tv *key = param ? NULL : tv_str(E->a, args->kw[k].s, args->kw[k].n);
        if (!param && (!key || !tv_dict_set(E->a, kwargs, key, args->kw[k].v))) return oom(E, at);
    }
    if (!assign(E, ms, "varargs", 7, varargs) || !assign(E, ms, "kwargs", 6, kwargs)) return oom(E, at);
    if (caller && !assign(E, ms, "caller", 6, caller)) return oom(E, at);
    if (++E->depth > TMPL_MAX_DEPTH) return te_fail(E, at, "macro calls nested deeper than %d", TMPL_MAX_DEPTH);
    tbuf *saved = E->out, b = { 0 };
    E->out = &b;
    int saved_ctl = E->ctl;
    bool ok = exec_body(E, ms, def->body);
    E->ctl = saved_ctl;
    E->out = saved;
    E->depth--;
    tv *r = ok && !b.oom ? tv_str(E->a, b.p ? b.p : "", b.n) : NULL;
    free(b.p);
    if (!r && !E->failed) oom(E, at);
    return r;
}

/* ---------------------------------------------------------------- statements */

static bool unpack(tmpl_ev *E, scope *s, const node *target, tv *v)
{
    if (target->t == N_NAME) return assign(E, s, target->s, target->n, v) || oom(E, target);
    /* a tuple of names */
    if (v->t != TV_LIST || v->u.l.n != target->nkids) {
        te_fail(E, target, "cannot unpack a %s into %zu names", tv_type_name(v), target->nkids);
        return false;
    }
    for (size_t i = 0; i < target->nkids; i++)
        if (!assign(E, s, target->kids[i]->s, target->kids[i]->n, v->u.l.v[i])) { oom(E, target); return false; }
    return true;
}

/* The items a for loop walks: a list's items, a dict's keys, a string's characters. */
static tv *iterable(tmpl_ev *E, const node *at, tv *v)
{
    if (v->t == TV_LIST) return v;
    tv *l = tv_new(E->a, TV_LIST);
    if (!l) return oom(E, at);
    if (v->t == TV_UNDEF || v->t == TV_NONE) {
        if (v->t == TV_NONE) return te_fail(E, at, "cannot iterate over none");
        return l;
    }
    if (v->t == TV_DICT) {
        for (size_t i = 0; i < v->u.d.n; i++)
            if (!tv_list_push(E->a, l, v->u.d.k[i])) return oom(E, at);
        return l;
    }
    if (v->t == TV_STR) {
        size_t i = 0;
        while (i < v->u.s.n) {
            size_t j = i + 1;
            while (j < v->u.s.n && ((unsigned char)v->u.s.s[j] & 0xC0) == 0x80) j++;
            tv *c = tv_str(E->a, v->u.s.s + i, j - i);
            if (!c || !tv_list_push(E->a, l, c)) return oom(E, at);
            i = j;
        }
        return l;
    }
    return te_fail(E, at, "cannot iterate over a %s", tv_type_name(v));
}

static bool set_loop_var(tmpl_ev *E, tv *loop, const char *k, tv *v)
{
    tv *key = tv_str(E->a, k, strlen(k));
    return v && key && tv_dict_set(E->a, loop, key, v);
}

static bool exec_for(tmpl_ev *E, scope *s, const node *n)
{
    tv *it = eval(E, s, n->b);
    if (!it) return false;
    tv *items = iterable(E, n->b, it);
    if (!items) return false;
    if (n->c) { /* {% for x in xs if cond %}: filtered first, so loop.length counts what passes */
        tv *kept = tv_new(E->a, TV_LIST);
        if (!kept) return oom(E, n);
        for (size_t i = 0; i < items->u.l.n; i++) {
            scope *fs = scope_new(E, s);
            if (!fs || !unpack(E, fs, n->a, items->u.l.v[i])) return fs ? false : oom(E, n);
            tv *c = eval(E, fs, n->c);
            if (!c) return false;
            if (tv_truthy(c) && !tv_list_push(E->a, kept, items->u.l.v[i])) return oom(E, n);
        }
        items = kept;
    }
    size_t len = items->u.l.n;
    if (!len) return n->else_body ? exec_body(E, s, n->else_body) : true;
    for (size_t i = 0; i < len; i++) {
        if (++E->iters > E->max_iters) {
            te_fail(E, n, "more than %lld loop iterations", (long long)E->max_iters);
            return false;
        }
        scope *ls = scope_new(E, s);
        tv *loop = tv_new(E->a, TV_DICT);
        if (!ls || !loop) return oom(E, n);
        loop->loop = true;
        tmpl_arena *a = E->a;
        if (!set_loop_var(E, loop, "index", tv_int(a, (int64_t)i + 1)) ||
            !set_loop_var(E, loop, "index0", tv_int(a, (int64_t)i)) ||
            !set_loop_var(E, loop, "revindex", tv_int(a, (int64_t)(len - i))) ||
            !set_loop_var(E, loop, "revindex0", tv_int(a, (int64_t)(len - i - 1))) ||
            !set_loop_var(E, loop, "first", tv_bool(a, i == 0)) ||
            !set_loop_var(E, loop, "last", tv_bool(a, i + 1 == len)) ||
            !set_loop_var(E, loop, "length", tv_int(a, (int64_t)len)) ||
            !set_loop_var(E, loop, "depth", tv_int(a, 1)) || !set_loop_var(E, loop, "depth0", tv_int(a, 0)) ||
            !set_loop_var(E, loop, "previtem", i ? items->u.l.v[i - 1] : &tv_undef_v) ||
            !set_loop_var(E, loop, "nextitem", i + 1 < len ? items->u.l.v[i + 1] : &tv_undef_v) ||
            !assign(E, ls, "loop", 4, loop))
            return oom(E, n);
        if (!unpack(E, ls, n->a, items->u.l.v[i])) return false;
        if (!exec_body(E, ls, n->body)) return false;
        int ctl = E->ctl;
        E->ctl = CTL_NONE;
        if (ctl == CTL_BREAK) break;
    }
    return true;
}

/* What n's body writes, as a string (block set, filter blocks). */
static tv *render_body(tmpl_ev *E, scope *s, const node *n)
{
    tbuf *saved = E->out, b = { 0 };
    E->out = &b;
    bool ok = exec_body(E, s, n->body);
    E->out = saved;
    tv *v = ok && !b.oom ? tv_str(E->a, b.p ? b.p : "", b.n) : NULL;
    free(b.p);
    if (!v && ok) oom(E, n);
    return v;
}

static bool exec_stmt(tmpl_ev *E, scope *s, const node *n)
{
    switch (n->t) {
    case N_TEXT: return emit(E, n, n->s, n->n);
    case N_OUT: {
        tv *v = eval(E, s, n->a);
        if (!v) return false;
        if (v->t == TV_STR) return emit(E, n, v->u.s.s, v->u.s.n);
        tv *str = te_str_of(E, n, v);
        return str && emit(E, n, str->u.s.s, str->u.s.n);
    }
    case N_IF:
        for (size_t i = 0; i + 1 < n->nkids; i += 2) {
            tv *c = eval(E, s, n->kids[i]);
            if (!c) return false;
            if (tv_truthy(c)) return exec_body(E, s, n->kids[i + 1]);
        }
        return n->else_body ? exec_body(E, s, n->else_body) : true;
    case N_FOR: return exec_for(E, s, n);
    case N_SET: {
        tv *v = eval(E, s, n->c);
        if (!v) return false;
        if (n->b) { /* ns.attr = v */
            tv *obj = lookup(s, n->a->s, n->a->n);
            if (!obj || obj->t != TV_DICT || !obj->ns) {
                te_fail(E, n, "cannot set an attribute of '%.*s': only a namespace() has settable attributes",
                        (int)n->a->n, n->a->s);
                return false;
            }
            tv *k = tv_str(E->a, n->b->s, n->b->n);
            return (k && tv_dict_set(E->a, obj, k, v)) || oom(E, n);
        }
        return unpack(E, s, n->a, v);
    }
    case N_SETBLOCK: {
        tv *v = render_body(E, s, n);
        return v && unpack(E, s, n->a, v);
    }
    case N_MACRO: {
        tv *m = tv_new(E->a, TV_MACRO);
        if (!m) return oom(E, n);
        m->u.m.node = n;
        m->u.m.scope = s;
        return assign(E, s, n->s, n->n, m) || oom(E, n);
    }
    case N_CALLBLOCK: {
        tv *caller = tv_new(E->a, TV_MACRO);
        if (!caller) return oom(E, n);
        caller->u.m.node = n; /* its kids are caller's parameters, its body caller's body */
        caller->u.m.scope = s;
        tv *r = eval_call(E, s, n->a, caller);
        return r && emit(E, n, r->u.s.s, r->u.s.n);
    }
    case N_FILTERBLOCK: {
        tv *v = render_body(E, s, n);
        if (!v) return false;
        targs args;
        if (!eval_args(E, s, n, 0, &args)) return false;
        tv *r = tb_filter(E, n, n->s, n->n, v, &args);
        if (!r) return false;
        r = te_str_of(E, n, r);
        return r && emit(E, n, r->u.s.s, r->u.s.n);
    }
    case N_BREAK: E->ctl = CTL_BREAK; return true;
    case N_CONTINUE: E->ctl = CTL_CONTINUE; return true;
    case N_BODY: return exec_body(E, s, n);
    default: te_fail(E, n, "not a statement"); return false;
    }
}

static bool exec_body(tmpl_ev *E, scope *s, const node *body)
{
    for (size_t i = 0; i < body->nkids; i++) {
        if (!exec_stmt(E, s, body->kids[i])) return false;
        if (E->ctl != CTL_NONE) return true;
    }
    return true;
}

/* ---------------------------------------------------------------- public */

int lm_tmpl_parse(const char *src, size_t len, lm_tmpl **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = 0;
    *out = NULL;
    lm_tmpl *t = calloc(1, sizeof(*t));
    if (!t) { snprintf(err, errlen, "out of memory"); return LM_ERR_NOMEM; }
    t->max_iters = TMPL_MAX_ITERS;
    t->max_output = TMPL_MAX_OUTPUT;
    tmpl_toks toks = { 0 };
    int st = tmpl_lex(src, len, &t->arena, &toks, err, errlen);
    if (st == LM_OK) st = tmpl_parse_toks(&toks, &t->arena, &t->root, err, errlen);
    free(toks.v);
    if (st != LM_OK) {
        lm_tmpl_free(t);
        return st;
    }
    *out = t;
    return LM_OK;
}

void lm_tmpl_set_limits(lm_tmpl *t, int64_t max_iters, size_t max_output)
{
    t->max_iters = max_iters > 0 && max_iters < TMPL_MAX_ITERS ? max_iters : TMPL_MAX_ITERS;
    t->max_output = max_output && max_output < TMPL_MAX_OUTPUT ? max_output : TMPL_MAX_OUTPUT;
}

void lm_tmpl_free(lm_tmpl *t)
{
    if (!t) return;
    ta_free(&t->arena);
    free(t);
}

int lm_tmpl_render(const lm_tmpl *t, const char *context_json, size_t context_len, char **out, size_t *out_len,
                   char *err, size_t errlen)
{
    return lm_tmpl_render_at(t, context_json, context_len, (int64_t)time(NULL), out, out_len, err, errlen);
}

int lm_tmpl_render_at(const lm_tmpl *t, const char *context_json, size_t context_len, int64_t now, char **out,
                      size_t *out_len, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = 0;
    *out = NULL;
    if (out_len) *out_len = 0;
    tmpl_arena a = { 0 };
    tbuf b = { 0 };
    tmpl_ev E = { .a = &a, .out = &b, .err = err, .errlen = errlen, .now = now, .max_iters = t->max_iters,
                  .max_output = t->max_output };
    int st = LM_OK;
    tv *ctx = context_len ? tv_from_json(&a, context_json, context_len, err, errlen) : tv_new(&a, TV_DICT);
    if (!ctx) { st = err[0] ? LM_ERR_INVALID : LM_ERR_NOMEM; goto done; }
    if (ctx->t != TV_DICT) {
        snprintf(err, errlen, "the template's context must be a JSON object, not a %s", tv_type_name(ctx));
        st = LM_ERR_INVALID;
        goto done;
    }
    E.globals = scope_new(&E, NULL);
    scope *top = E.globals ? scope_new(&E, E.globals) : NULL;
    if (!top) { st = LM_ERR_NOMEM; goto done; }
    for (int f = 1; f < TB_FN_COUNT; f++) {
        tv *fn = tv_new(&a, TV_FUNC);
        if (!fn || !assign(&E, E.globals, tb_fn_names[f], strlen(tb_fn_names[f]), fn)) { st = LM_ERR_NOMEM; goto done; }
        fn->u.fn = f;
    }
    for (size_t i = 0; i < ctx->u.d.n; i++)
        if (ctx->u.d.k[i]->t == TV_STR && !tv_dict_set(&a, top->vars, ctx->u.d.k[i], ctx->u.d.v[i])) {
            st = LM_ERR_NOMEM;
            goto done;
        }
    if (!exec_body(&E, top, t->root)) {
        st = LM_ERR_INVALID;
        if (!err[0]) snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (b.oom) { st = LM_ERR_NOMEM; goto done; }
    tb_put(&b, "", 0);
    if (b.oom) { st = LM_ERR_NOMEM; goto done; }
    if (!b.p) {
        b.p = malloc(1);
        if (!b.p) { st = LM_ERR_NOMEM; goto done; }
    }
    b.p[b.n] = 0;
    *out = b.p;
    if (out_len) *out_len = b.n;
    b.p = NULL;
done:
    if (st == LM_ERR_NOMEM && !E.failed) snprintf(err, errlen, "out of memory");
    free(b.p);
    ta_free(&a);
    return st;
}
