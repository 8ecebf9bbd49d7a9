/* tmpl_parse.c: tokens to a syntax tree (recursive descent, Jinja2's precedence: conditional
 * expression, or, and, not, comparisons and in, + -, ~, * / // %, **, unary - +, primary with
 * postfix . [] (), then filters | and tests is). */
#include "tmpl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const tmpl_toks *t; size_t i;
    tmpl_arena *a;
    char *err; size_t errlen;
    int depth;
    bool failed;
} parser;

static const tmpl_tok *cur(parser *P) { return &P->t->v[P->i]; }

static node *fail(parser *P, const tmpl_tok *k, const char *fmt, const char *arg) {
    if (!P->failed) {
        char msg[160];
        snprintf(msg, sizeof msg, fmt, arg);
        snprintf(P->err, P->errlen, "line %d, column %d: %s", k->line, k->col, msg);
        P->failed = true;
    }
    return NULL;
}

static bool is_op(const tmpl_tok *k, const char *op) {
    return k->t == TK_OP && k->n == strlen(op) && !memcmp(k->s, op, k->n);
}
static bool is_name(const tmpl_tok *k, const char *nm) {
    return k->t == TK_NAME && k->n == strlen(nm) && !memcmp(k->s, nm, k->n);
}
static bool accept_op(parser *P, const char *op) {
    if (is_op(cur(P), op)) { P->i++; return true; }
    return false;
}
static bool accept_name(parser *P, const char *nm) {
    if (is_name(cur(P), nm)) { P->i++; return true; }
    return false;
}
static bool expect_op(parser *P, const char *op) {
    if (accept_op(P, op)) return true;
    fail(P, cur(P), "expected '%s'", op);
    return false;
}

static node *mk(parser *P, node_type t, const tmpl_tok *k) {
    node *n = ta_alloc(P->a, sizeof(*n));
    if (!n) return fail(P, k, "%s", "out of memory");
    n->t = t;
    n->line = k->line;
    n->col = k->col;
    return n;
}

static bool add_kid(parser *P, node *n, node *k) {
    if (!k) return false;
    node **v = ta_alloc(P->a, (n->nkids + 1) * sizeof(*v));
    if (!v) { fail(P, cur(P), "%s", "out of memory"); return false; }
    if (n->nkids) memcpy(v, n->kids, n->nkids * sizeof(*v));
    v[n->nkids++] = k;
    n->kids = v;
    return true;
}

static node *expr(parser *P);
static node *or_expr(parser *P);
static node *unary(parser *P, bool with_filter);

/* (args): positional and name=value */
static bool args(parser *P, node *n) {
    if (accept_op(P, ")")) return true;
    for (;;) {
        const tmpl_tok *k = cur(P);
        if (k->t == TK_NAME && is_op(&P->t->v[P->i + 1], "=")) {
            node *kw = mk(P, N_KWARG, k);
            if (!kw) return false;
            kw->s = k->s;
            kw->n = k->n;
            P->i += 2;
            kw->a = expr(P);
            if (!kw->a || !add_kid(P, n, kw)) return false;
        } else if (!add_kid(P, n, expr(P))) return false;
        if (accept_op(P, ",")) { if (accept_op(P, ")")) return true; continue; }
        return expect_op(P, ")");
    }
}

static node *primary(parser *P) {
    const tmpl_tok *k = cur(P);
    node *n = NULL;
    if (k->t == TK_NAME) {
        P->i++;
        n = mk(P, N_LIT, k);
        if (!n) return NULL;
        if (is_name(k, "true") || is_name(k, "True")) n->lit = tv_bool(P->a, true);
        else if (is_name(k, "false") || is_name(k, "False")) n->lit = tv_bool(P->a, false);
        else if (is_name(k, "none") || is_name(k, "None")) n->lit = &tv_none_v;
        else { n->t = N_NAME; n->s = k->s; n->n = k->n; }
    } else if (k->t == TK_STRING) {
        tbuf b = {0};
        while (cur(P)->t == TK_STRING) { tb_put(&b, cur(P)->s, cur(P)->n); P->i++; }
        n = mk(P, N_LIT, k);
        if (n) n->lit = tv_str(P->a, b.p ? b.p : "", b.n);
        tb_put(&b, "", 0);
        free(b.p);
    } else if (k->t == TK_INT) { P->i++; n = mk(P, N_LIT, k); if (n) n->lit = tv_int(P->a, k->i); }
    else if (k->t == TK_FLOAT) { P->i++; n = mk(P, N_LIT, k); if (n) n->lit = tv_float(P->a, k->f); }
    else if (is_op(k, "(")) {
        P->i++;
        if (accept_op(P, ")")) return mk(P, N_TUPLE, k);
        n = expr(P);
        if (n && is_op(cur(P), ",")) {
            node *t = mk(P, N_TUPLE, k);
            if (!t || !add_kid(P, t, n)) return NULL;
            while (accept_op(P, ",") && !is_op(cur(P), ")"))
                if (!add_kid(P, t, expr(P))) return NULL;
            n = t;
        }
        if (n && !expect_op(P, ")")) return NULL;
    } else if (is_op(k, "[")) {
        P->i++;
        n = mk(P, N_LIST, k);
        if (!n) return NULL;
        while (!accept_op(P, "]")) {
            if (!add_kid(P, n, expr(P))) return NULL;
            if (!accept_op(P, ",")) { if (!expect_op(P, "]")) return NULL; break; }
        }
    } else if (is_op(k, "{")) {
        P->i++;
        n = mk(P, N_DICT, k);
        if (!n) return NULL;
        while (!accept_op(P, "}")) {
            if (!add_kid(P, n, expr(P)) || !expect_op(P, ":") || !add_kid(P, n, expr(P))) return NULL;
            if (!accept_op(P, ",")) { if (!expect_op(P, "}")) return NULL; break; }
        }
    } else if (k->t == TK_EOF || k->t == TK_BLOCK_END || k->t == TK_VAR_END) {
        return fail(P, k, "%s", "unexpected end of expression");
    } else {
        char tok[40];
        snprintf(tok, sizeof tok, "%.*s", (int)(k->n < 30 ? k->n : 30), k->s ? k->s : "");
        return fail(P, k, "unexpected '%s'", tok);
    }
    if (!n) return NULL;
    /* postfix */
    for (;;) {
        const tmpl_tok *o = cur(P);
        if (accept_op(P, ".")) {
            const tmpl_tok *nm = cur(P);
            node *a = mk(P, N_ATTR, o);
            if (!a) return NULL;
            if (nm->t == TK_NAME) { a->s = nm->s; a->n = nm->n; }
            else if (nm->t == TK_INT) { a->t = N_ITEM; a->b = mk(P, N_LIT, nm); if (!a->b) return NULL; a->b->lit = tv_int(P->a, nm->i); }
            else return fail(P, nm, "%s", "expected a name after '.'");
            P->i++;
            a->a = n;
            n = a;
        } else if (accept_op(P, "[")) {
            node *a = mk(P, N_ITEM, o);
            if (!a) return NULL;
            a->a = n;
            node *lo = NULL, *hi = NULL, *st = NULL;
            bool slice = false;
            if (!is_op(cur(P), ":")) { lo = expr(P); if (!lo) return NULL; }
            if (accept_op(P, ":")) {
                slice = true;
                if (!is_op(cur(P), "]") && !is_op(cur(P), ":")) { hi = expr(P); if (!hi) return NULL; }
                if (accept_op(P, ":") && !is_op(cur(P), "]")) { st = expr(P); if (!st) return NULL; }
            }
            if (!expect_op(P, "]")) return NULL;
            if (slice) {
                node *s = mk(P, N_SLICE, o);
                if (!s) return NULL;
                s->a = lo; s->b = hi; s->c = st;
                a->t = N_SLICE;
                a->b = s;
            } else a->b = lo;
            n = a;
        } else if (accept_op(P, "(")) {
            node *c = mk(P, N_CALL, o);
            if (!c) return NULL;
            c->line = n->line; /* errors in a call point at what is called */
            c->col = n->col;
            c->a = n;
            if (!args(P, c)) return NULL;
            n = c;
        } else break;
    }
    return n;
}

static node *filters(parser *P, node *n) {
    for (;;) {
        const tmpl_tok *o = cur(P);
        if (accept_op(P, "|")) {
            node *f = mk(P, N_FILTER, o);
            if (!f) return NULL;
            const tmpl_tok *nm = cur(P);
            if (nm->t != TK_NAME) return fail(P, nm, "%s", "expected a filter name");
            P->i++;
            f->s = nm->s; f->n = nm->n; f->a = n;
            if (accept_op(P, "(") && !args(P, f)) return NULL;
            n = f;
        } else if (accept_name(P, "is")) {
            node *f = mk(P, N_TEST, o);
            if (!f) return NULL;
            f->neg = accept_name(P, "not");
            const tmpl_tok *nm = cur(P);
            if (nm->t != TK_NAME) return fail(P, nm, "%s", "expected a test name");
            P->i++;
            f->s = nm->s; f->n = nm->n; f->a = n;
            if (accept_op(P, "(")) { if (!args(P, f)) return NULL; }
            else {
                const tmpl_tok *x = cur(P);
                if (x->t == TK_STRING || x->t == TK_INT || x->t == TK_FLOAT ||
                    (x->t == TK_NAME && !is_name(x, "and") && !is_name(x, "or") && !is_name(x, "else") &&
                     !is_name(x, "if") && !is_name(x, "in") && !is_name(x, "is") && !is_name(x, "not")))
                    if (!add_kid(P, f, unary(P, false))) return NULL;
            }
            n = f;
        } else return n;
    }
}

static node *unary(parser *P, bool with_filter) {
    const tmpl_tok *k = cur(P);
    node *n;
    if (++P->depth > TMPL_MAX_DEPTH) return fail(P, k, "%s", "expression nested too deeply");
    if (accept_op(P, "-") || accept_op(P, "+")) {
        n = mk(P, is_op(k, "-") ? N_NEG : N_POS, k);
        if (!n || !(n->a = unary(P, false))) return NULL;
    } else n = primary(P);
    P->depth--;
    if (n && with_filter) n = filters(P, n);
    return n;
}

static node *bin(parser *P, node *l, const tmpl_tok *op, const char *name, node *r) {
    if (!l || !r) return NULL;
    node *n = mk(P, N_BIN, op);
    if (!n) return NULL;
    n->s = name; n->n = strlen(name); n->a = l; n->b = r;
    return n;
}

static node *pow_expr(parser *P) {
    node *l = unary(P, true);
    while (l && is_op(cur(P), "**")) { const tmpl_tok *o = cur(P); P->i++; l = bin(P, l, o, "**", unary(P, true)); }
    return l;
}
static node *math2(parser *P) {
    node *l = pow_expr(P);
    static const char *ops[] = { "*", "//", "/", "%" };
    for (;;) {
        const tmpl_tok *o = cur(P);
        size_t i;
        for (i = 0; i < 4 && !is_op(o, ops[i]); i++) {}
        if (i == 4 || !l) return l;
        P->i++;
        l = bin(P, l, o, ops[i], pow_expr(P));
    }
}
static node *concat(parser *P) {
    node *l = math2(P);
    while (l && is_op(cur(P), "~")) { const tmpl_tok *o = cur(P); P->i++; l = bin(P, l, o, "~", math2(P)); }
    return l;
}
static node *math1(parser *P) {
    node *l = concat(P);
    while (l && (is_op(cur(P), "+") || is_op(cur(P), "-"))) {
        const tmpl_tok *o = cur(P);
        P->i++;
        l = bin(P, l, o, is_op(o, "+") ? "+" : "-", concat(P));
    }
    return l;
}
static node *compare(parser *P) {
    node *l = math1(P);
    static const char *ops[] = { "==", "!=", "<=", ">=", "<", ">" };
    for (;;) {
        if (!l) return NULL;
        const tmpl_tok *o = cur(P);
        size_t i;
        for (i = 0; i < 6 && !is_op(o, ops[i]); i++) {}
        if (i < 6) { P->i++; l = bin(P, l, o, ops[i], math1(P)); continue; }
        if (is_name(o, "in")) { P->i++; l = bin(P, l, o, "in", math1(P)); continue; }
        if (is_name(o, "not") && is_name(&P->t->v[P->i + 1], "in")) { P->i += 2; l = bin(P, l, o, "notin", math1(P)); continue; }
        return l;
    }
}
static node *not_expr(parser *P) {
    const tmpl_tok *k = cur(P);
    if (accept_name(P, "not")) {
        if (++P->depth > TMPL_MAX_DEPTH) return fail(P, k, "%s", "expression nested too deeply");
        node *n = mk(P, N_NOT, k);
        if (!n || !(n->a = not_expr(P))) return NULL;
        P->depth--;
        return n;
    }
    return compare(P);
}
static node *and_expr(parser *P) {
    node *l = not_expr(P);
    while (l && is_name(cur(P), "and")) {
        const tmpl_tok *o = cur(P);
        P->i++;
        node *n = mk(P, N_AND, o);
        if (!n) return NULL;
        n->a = l;
        if (!(n->b = not_expr(P))) return NULL;
        l = n;
    }
    return l;
}
static node *or_expr(parser *P) {
    node *l = and_expr(P);
    while (l && is_name(cur(P), "or")) {
        const tmpl_tok *o = cur(P);
        P->i++;
        node *n = mk(P, N_OR, o);
        if (!n) return NULL;
        n->a = l;
        if (!(n->b = and_expr(P))) return NULL;
        l = n;
    }
    return l;
}
static node *expr(parser *P) {
    if (++P->depth > TMPL_MAX_DEPTH) return fail(P, cur(P), "%s", "expression nested too deeply");
    node *l = or_expr(P);
    while (l && is_name(cur(P), "if")) {
        const tmpl_tok *o = cur(P);
        P->i++;
        node *n = mk(P, N_COND, o);
        if (!n) return NULL;
        n->a = l;
        if (!(n->b = or_expr(P))) return NULL;
        if (accept_name(P, "else") && !(n->c = expr(P))) return NULL;
        l = n;
    }
    P->depth--;
    return l;
}

/* ---------------- statements ---------------- */

static bool end_block(parser *P) {
    if (cur(P)->t == TK_BLOCK_END) { P->i++; return true; }
    fail(P, cur(P), "%s", "expected '%}'");
    return false;
}

/* Parses statements until {% NAME %} with NAME one of ends ("a|b|c"); leaves P at that name. */
static node *body(parser *P, const char *ends, const tmpl_tok *open);

static node *name_target(parser *P) {
    const tmpl_tok *k = cur(P);
    if (k->t != TK_NAME) return fail(P, k, "%s", "expected a name");
    P->i++;
    node *n = mk(P, N_NAME, k);
    if (n) { n->s = k->s; n->n = k->n; }
    return n;
}

static node *statement(parser *P, const tmpl_tok *open) {
    const tmpl_tok *k = cur(P);
    if (accept_name(P, "if")) {
        node *n = mk(P, N_IF, k);
        if (!n || !add_kid(P, n, expr(P)) || !end_block(P) || !add_kid(P, n, body(P, "elif|else|endif", k))) return NULL;
        for (;;) {
            if (accept_name(P, "elif")) {
                if (!add_kid(P, n, expr(P)) || !end_block(P) || !add_kid(P, n, body(P, "elif|else|endif", k))) return NULL;
            } else if (accept_name(P, "else")) {
                if (!end_block(P) || !(n->else_body = body(P, "endif", k))) return NULL;
            } else { P->i++; break; }
        }
        return end_block(P) ? n : NULL;
    }
    if (accept_name(P, "for")) {
        node *n = mk(P, N_FOR, k);
        if (!n || !(n->a = name_target(P))) return NULL;
        if (is_op(cur(P), ",")) {
            node *t = mk(P, N_TUPLE, k);
            if (!t || !add_kid(P, t, n->a)) return NULL;
            while (accept_op(P, ","))
                if (!add_kid(P, t, name_target(P))) return NULL;
            n->a = t;
        }
        if (!accept_name(P, "in")) return fail(P, cur(P), "%s", "expected 'in'");
        if (!(n->b = or_expr(P))) return NULL;
        if (accept_name(P, "if") && !(n->c = or_expr(P))) return NULL;
        if (is_name(cur(P), "recursive")) return fail(P, cur(P), "%s", "recursive loops are not supported");
        if (!end_block(P) || !(n->body = body(P, "else|endfor", k))) return NULL;
        if (accept_name(P, "else")) { if (!end_block(P) || !(n->else_body = body(P, "endfor", k))) return NULL; }
        P->i++;
        return end_block(P) ? n : NULL;
    }
    if (accept_name(P, "set")) {
        node *n = mk(P, N_SET, k);
        if (!n || !(n->a = name_target(P))) return NULL;
        if (is_op(cur(P), ".")) {
            P->i++;
            const tmpl_tok *at = cur(P);
            if (at->t != TK_NAME) return fail(P, at, "%s", "expected an attribute name");
            P->i++;
            n->b = mk(P, N_NAME, at);
            if (!n->b) return NULL;
            n->b->s = at->s; n->b->n = at->n;
        } else if (is_op(cur(P), ",")) {
            node *t = mk(P, N_TUPLE, k);
            if (!t || !add_kid(P, t, n->a)) return NULL;
            while (accept_op(P, ","))
                if (!add_kid(P, t, name_target(P))) return NULL;
            n->a = t;
        }
        if (accept_op(P, "=")) {
            n->c = expr(P);
            if (n->c && is_op(cur(P), ",")) {
                node *t = mk(P, N_TUPLE, k);
                if (!t || !add_kid(P, t, n->c)) return NULL;
                while (accept_op(P, ","))
                    if (!add_kid(P, t, expr(P))) return NULL;
                n->c = t;
            }
            return n->c && end_block(P) ? n : NULL;
        }
        if (n->b || n->a->t != N_NAME) return fail(P, cur(P), "%s", "expected '='");
        n->t = N_SETBLOCK;
        if (!end_block(P) || !(n->body = body(P, "endset", k))) return NULL;
        P->i++;
        return end_block(P) ? n : NULL;
    }
    if (accept_name(P, "macro")) {
        node *n = mk(P, N_MACRO, k);
        const tmpl_tok *nm = cur(P);
        if (!n || nm->t != TK_NAME) return fail(P, nm, "%s", "expected a macro name");
        P->i++;
        n->s = nm->s; n->n = nm->n;
        if (!expect_op(P, "(") || !args(P, n)) return NULL;
        for (size_t i = 0; i < n->nkids; i++)
            if (n->kids[i]->t != N_NAME && n->kids[i]->t != N_KWARG)
                return fail(P, nm, "%s", "macro parameters must be names");
        if (!end_block(P) || !(n->body = body(P, "endmacro", k))) return NULL;
        P->i++;
        return end_block(P) ? n : NULL;
    }
    if (accept_name(P, "call")) {
        node *n = mk(P, N_CALLBLOCK, k);
        if (!n) return NULL;
        if (accept_op(P, "(") && !args(P, n)) return NULL;
        if (!(n->a = expr(P))) return NULL;
        if (n->a->t != N_CALL) return fail(P, k, "%s", "expected a macro call");
        if (!end_block(P) || !(n->body = body(P, "endcall", k))) return NULL;
        P->i++;
        return end_block(P) ? n : NULL;
    }
    if (accept_name(P, "filter")) { /* {% filter name(args) %}body{% endfilter %} */
        node *n = mk(P, N_FILTERBLOCK, k);
        const tmpl_tok *nm = cur(P);
        if (!n || nm->t != TK_NAME) return fail(P, nm, "%s", "expected a filter name");
        P->i++;
        n->s = nm->s; n->n = nm->n;
        if (accept_op(P, "(") && !args(P, n)) return NULL;
        if (!end_block(P) || !(n->body = body(P, "endfilter", k))) return NULL;
        P->i++;
        return end_block(P) ? n : NULL;
    }
    if (accept_name(P, "generation")) { /* Hugging Face's marker of the assistant's text: renders its body */
        node *n;
        if (!end_block(P) || !(n = body(P, "endgeneration", k))) return NULL;
        P->i++;
        return end_block(P) ? n : NULL;
    }
    if (accept_name(P, "break") || accept_name(P, "continue")) {
        node *n = mk(P, is_name(k, "break") ? N_BREAK : N_CONTINUE, k);
        return n && end_block(P) ? n : NULL;
    }
    (void)open;
    char nm[40];
    snprintf(nm, sizeof nm, "%.*s", (int)(k->n < 30 ? k->n : 30), k->s ? k->s : "");
    return fail(P, k, "unknown tag '%s'", nm);
}

static bool name_in(const tmpl_tok *k, const char *ends) {
    if (k->t != TK_NAME || !ends) return false;
    const char *p = ends;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == k->n && !memcmp(p, k->s, n)) return true;
        p += n + (e ? 1 : 0);
    }
    return false;
}

static node *body(parser *P, const char *ends, const tmpl_tok *open) {
    node *b = mk(P, N_BODY, cur(P));
    if (!b) return NULL;
    if (++P->depth > TMPL_MAX_DEPTH) return fail(P, cur(P), "%s", "blocks nested too deeply");
    for (;;) {
        const tmpl_tok *k = cur(P);
        if (k->t == TK_EOF) {
            if (!ends) break;
            char msg[64];
            snprintf(msg, sizeof msg, "'%.*s' is never closed (expected one of: %s)", (int)(open->n < 20 ? open->n : 20), open->s, ends);
            snprintf(P->err, P->errlen, "line %d, column %d: %s", open->line, open->col, msg);
            P->failed = true;
            return NULL;
        }
        if (k->t == TK_TEXT) {
            node *t = mk(P, N_TEXT, k);
            if (!t) return NULL;
            t->s = k->s; t->n = k->n;
            P->i++;
            if (!add_kid(P, b, t)) return NULL;
        } else if (k->t == TK_VAR_BEGIN) {
            P->i++;
            node *o = mk(P, N_OUT, k);
            if (!o || !(o->a = expr(P))) return NULL;
            if (cur(P)->t != TK_VAR_END) return fail(P, cur(P), "%s", "expected '}}'");
            P->i++;
            if (!add_kid(P, b, o)) return NULL;
        } else if (k->t == TK_BLOCK_BEGIN) {
            P->i++;
            if (name_in(cur(P), ends)) break;
            const tmpl_tok *nm = cur(P);
            if (nm->t == TK_NAME && (name_in(nm, "endif|endfor|endset|endmacro|endcall|endfilter|endgeneration|elif|else"))) {
                char w[40];
                snprintf(w, sizeof w, "%.*s", (int)(nm->n < 30 ? nm->n : 30), nm->s);
                return fail(P, nm, "unexpected '%s'", w);
            }
            if (!add_kid(P, b, statement(P, nm))) return NULL;
        } else return fail(P, k, "%s", "unexpected token");
    }
    P->depth--;
    return b;
}

int tmpl_parse_toks(const tmpl_toks *toks, tmpl_arena *a, node **root, char *err, size_t errlen) {
    parser P = { toks, 0, a, err, errlen, 0, false };
    *root = body(&P, NULL, NULL);
    if (!*root) {
        if (!P.failed) snprintf(err, errlen, "out of memory");
        return P.failed ? LM_ERR_INVALID : LM_ERR_NOMEM;
    }
    return LM_OK;
}
