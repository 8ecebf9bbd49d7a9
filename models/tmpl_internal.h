/* tmpl_internal.h: the Jinja chat-template interpreter's private parts: values (tmpl_value.c), the
 * lexer (tmpl_lex.c), the parser (tmpl_parse.c) and the evaluator (tmpl_eval.c).
 * Values live in an arena owned by one render (or one parse, for literals): nothing is freed one by one. */
#ifndef VKLLM_TMPL_INTERNAL_H
#define VKLLM_TMPL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm.h"

/* ---- limits ---- */
#define TMPL_MAX_DEPTH 200            /* parser nesting and evaluator recursion (macro calls, expressions) */
#define TMPL_MAX_ITERS 1000000        /* loop iterations in one render, all loops together */
#define TMPL_MAX_OUTPUT (16u << 20)   /* bytes of output in one render, and of any one string */
/* (the last two are the defaults: lm_tmpl_set_limits lowers them for one template) */

/* ---- arena ---- */
typedef struct tmpl_arena_block tmpl_arena_block;
typedef struct { tmpl_arena_block *head; size_t used; } tmpl_arena;
void *ta_alloc(tmpl_arena *a, size_t n);   /* zeroed; NULL when out of memory */
void ta_free(tmpl_arena *a);

/* ---- growable byte buffer (malloc'd) ----
 * max (0: none) bounds its length: a put past it sets over. deep is set by the printers (tv_to_str,
 * tv_repr, tv_to_json) given a value nested deeper than TMPL_MAX_DEPTH, or one that holds itself (a
 * namespace can). Each of oom, over and deep stops the buffer: later puts and prints do nothing. */
typedef struct { char *p; size_t n, cap, max; bool oom, over, deep; } tbuf;
static inline bool tb_stopped(const tbuf *b) { return b->oom || b->over || b->deep; }
/* b stops as from did */
static inline void tb_stop_as(tbuf *b, const tbuf *from)
{
    b->oom |= from->oom;
    b->over |= from->over;
    b->deep |= from->deep;
}
void tb_put(tbuf *b, const char *s, size_t n);
void tb_puts(tbuf *b, const char *s);
void tb_putc(tbuf *b, char c);

/* ---- values ---- */
typedef enum { TV_UNDEF, TV_NONE, TV_BOOL, TV_INT, TV_FLOAT, TV_STR, TV_LIST, TV_DICT, TV_MACRO, TV_FUNC } tv_type;
typedef struct tv tv;
struct tv {
    tv_type t;
    bool ns;                 /* a dict made by namespace(): its attributes may be set */
    bool markup;             /* a string marked safe (|safe, |escape): adding a plain string to it escapes that */
    bool tuple;              /* a list that prints as a Python tuple: (a, b) */
    bool loop;               /* the dict of a for loop's `loop` variable (it has loop.cycle()) */
    union {
        bool b;
        int64_t i;
        double f;
        struct { const char *s; size_t n; } s;
        struct { tv **v; size_t n, cap; } l;
        struct { tv **k, **v; size_t n, cap; } d;   /* insertion order kept */
        struct { const void *node; void *scope; } m;  /* a macro (tmpl_eval.c) */
        int fn;                                    /* a builtin global (tmpl_eval.c) */
    } u;
};

tv *tv_new(tmpl_arena *a, tv_type t);
tv *tv_str(tmpl_arena *a, const char *s, size_t n);   /* copies s */
tv *tv_int(tmpl_arena *a, int64_t i);
tv *tv_float(tmpl_arena *a, double f);
tv *tv_bool(tmpl_arena *a, bool b);
extern tv tv_undef_v, tv_none_v;
bool tv_list_push(tmpl_arena *a, tv *l, tv *x);
bool tv_dict_set(tmpl_arena *a, tv *d, tv *k, tv *v);
tv *tv_dict_get(const tv *d, const tv *k);            /* NULL when absent */
tv *tv_dict_gets(const tv *d, const char *k);
bool tv_truthy(const tv *v);
/* (lists and dicts nested deeper than TMPL_MAX_DEPTH, or with more than 64k items to look at, compare
 * unequal and cannot be ordered) */
bool tv_equal(const tv *a, const tv *b);
/* <0, 0, >0; *ok false when the two cannot be ordered */
int tv_compare(const tv *a, const tv *b, bool *ok);
/* str(v) as Python prints it (None, True, 1.5, ['a'], {'k': 1}); undefined is "" */
void tv_to_str(const tv *v, tbuf *b);
/* repr(v): strings quoted */
void tv_repr(const tv *v, tbuf *b);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: none), sort_keys) */
void tv_to_json(const tv *v, tbuf *b, int indent, bool sort_keys, int level);
/* Parses JSON text into values; NULL and a message on error */
tv *tv_from_json(tmpl_arena *a, const char *s, size_t n, char *err, size_t errlen);
const char *tv_type_name(const tv *v);

/* ---- lexer ---- */
typedef enum {
    TK_EOF, TK_TEXT, TK_BLOCK_BEGIN, TK_BLOCK_END, TK_VAR_BEGIN, TK_VAR_END,
    TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP
} tk_type;
typedef struct {
    tk_type t;
    const char *s; size_t n;     /* text (TK_TEXT: after whitespace control; TK_STRING: unescaped) */
    int64_t i; double f;
    int line, col;
} tmpl_tok;
typedef struct { tmpl_tok *v; size_t n, cap; } tmpl_toks;
/* Splits src into tokens (strings unescaped into the arena); LM_ERR_INVALID with "line L, column C: ..." */
int tmpl_lex(const char *src, size_t len, tmpl_arena *a, tmpl_toks *out, char *err, size_t errlen);

/* ---- syntax tree ---- */
typedef enum {
    /* statements */
    N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK, N_BREAK, N_CONTINUE, N_BODY,
    /* expressions */
    N_LIT, N_NAME, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER, N_TEST, N_NOT, N_NEG, N_POS, N_BIN,
    N_AND, N_OR, N_COND, N_LIST, N_DICT, N_TUPLE, N_KWARG
} node_type;
typedef struct node node;
struct node {
    node_type t;
    int line, col;
    const char *s; size_t n;   /* N_TEXT text; names (N_NAME, N_ATTR, N_FILTER, N_TEST, N_MACRO, N_KWARG, N_SET) ; N_BIN op */
    tv *lit;                   /* N_LIT */
    node *a, *b, *c;           /* operands; N_FOR: a=target (N_NAME or N_TUPLE), b=iter, c=cond */
    node **kids; size_t nkids; /* N_BODY statements; call/filter/test args; list/dict/tuple items;
                                  N_IF: cond, body, cond, body, ..., [else body]; N_MACRO params */
    node *body, *else_body;    /* N_FOR, N_SETBLOCK, N_MACRO, N_CALLBLOCK */
    bool neg;                  /* N_TEST: is not */
};

struct lm_tmpl {
    tmpl_arena arena;
    node *root;
    int64_t max_iters;    /* TMPL_MAX_ITERS unless lm_tmpl_set_limits lowered it */
    size_t max_output;    /* TMPL_MAX_OUTPUT, likewise */
};

int tmpl_parse_toks(const tmpl_toks *toks, tmpl_arena *a, node **root, char *err, size_t errlen);

/* ---- evaluation (tmpl_eval.c), built-in filters, tests, methods and functions (tmpl_builtins.c) ---- */
typedef struct tmpl_ev tmpl_ev;
#define TMPL_MAX_ARGS 16
/* A call's arguments, evaluated: positional, then name=value. */
typedef struct {
    tv *pos[TMPL_MAX_ARGS];
    size_t npos;
    struct { const char *s; size_t n; tv *v; } kw[TMPL_MAX_ARGS];
    size_t nkw;
} targs;
tmpl_arena *te_arena(tmpl_ev *E);
/* Records an error at node at ("line L, column C: ..."); returns NULL for the caller to pass up. */
tv *te_fail(tmpl_ev *E, const node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool te_failed(const tmpl_ev *E);
int64_t te_now(const tmpl_ev *E);   /* strftime_now's clock, seconds since 1970 */
int64_t te_max_iters(const tmpl_ev *E);   /* the render's bounds (the template's) */
size_t te_max_output(const tmpl_ev *E);
/* Calls a macro or function value with args. */
tv *te_call_value(tmpl_ev *E, const node *at, tv *fn, const targs *args);
/* The named keyword argument, or positional i (-1: none), or NULL. */
tv *targ(const targs *a, size_t i, const char *kw);

tv *tb_filter(tmpl_ev *E, const node *at, const char *name, size_t n, tv *in, const targs *args);
/* A test's result, or -1 after an error. */
int tb_test(tmpl_ev *E, const node *at, const char *name, size_t n, tv *in, const targs *args);
/* obj.name(args) for strings, lists and dicts; found false when obj has no such method. */
tv *tb_method(tmpl_ev *E, const node *at, tv *obj, const char *name, size_t n, const targs *args, bool *found);
/* Global functions: raise_exception, strftime_now, namespace, range, dict. */
enum { TB_FN_RAISE = 1, TB_FN_STRFTIME, TB_FN_NAMESPACE, TB_FN_RANGE, TB_FN_DICT, TB_FN_COUNT };
extern const char *const tb_fn_names[TB_FN_COUNT];
tv *tb_call_fn(tmpl_ev *E, const node *at, int fn, const targs *args);
/* Helpers the two files share. */
tv *te_str_of(tmpl_ev *E, const node *at, const tv *v);   /* str(v) as a string value; NULL after an error */
tbuf te_buf(const tmpl_ev *E);                            /* an empty buffer bounded by the render's output bound */
/* b's text as a string value (b is freed); NULL after an error: out of memory, over its bound, a value
 * too deep to print */
tv *te_buf_str(tmpl_ev *E, const node *at, tbuf *b);
tv *tb_escape(tmpl_ev *E, const node *at, tv *s);    /* HTML-escaped, as a markup string (markup stays as it is) */
size_t tb_utf8_len(const char *s, size_t n);        /* code points */

#endif
