/* test_template.c: the chat-template engine against Jinja2. Every shared real chat template
 * (../shared/models/chat-templates) renders its conversation byte for byte as Jinja2 does (the
 * reference strings in template_refs.inc, written by template_refs.py), without and with the
 * generation prompt; so do the feature templates of template_features.py; templates that cannot be
 * rendered fail with a message naming the line and column; the built-in templates render. */
#include <stdlib.h>
#include <string.h>

#include "lm.h"
#include "util.h"

typedef struct { const char *name, *conversation, *plain, *with_prompt; } tmpl_ref;
typedef struct { const char *name, *src, *expected; } tmpl_feat;
typedef struct { const char *name, *src, *error; } tmpl_err;
#include "template_refs.inc"

#define NOW 1721995200 /* 2024-07-26 12:00 UTC, the time template_refs.py renders at */


/* Prints where two strings first differ. */
static void show_diff(const char *what, const char *got, const char *want)
{
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  %s: first difference at byte %zu\n    got:  \"%.80s\"\n    want: \"%.80s\"\n", what, i, got + from,
            want + from);
}

static char *context(const char *conversation, bool gen)
{
    char path[512];
    snprintf(path, sizeof path, "chat-templates/%s", conversation);
    size_t n;
    char *msgs = tu_read_file(tu_model_path(path), &n);
    if (!msgs) return NULL;
    size_t cap = n + 256;
    char *ctx = malloc(cap);
    if (ctx)
        snprintf(ctx, cap,
                 "{\"messages\": %s, \"add_generation_prompt\": %s, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
                 " \"date_string\": \"26 Jul 2024\"}",
                 msgs, gen ? "true" : "false");
    free(msgs);
    return ctx;
}

static void test_real_templates(void)
{
    int passed = 0;
    for (size_t i = 0; i < sizeof REFS / sizeof REFS[0]; i++) {
        char path[512], err[512] = "";
        snprintf(path, sizeof path, "chat-templates/%s.jinja", REFS[i].name);
        size_t n;
        char *src = tu_read_file(tu_model_path(path), &n);
        CHECK(src, "%s: cannot read the template", REFS[i].name);
        if (!src) continue;
        lm_tmpl *t = NULL;
        int st = lm_tmpl_parse(src, n, &t, err, sizeof err);
        CHECK(st == LM_OK, "%s: parse: %s", REFS[i].name, err);
        bool ok = st == LM_OK;
        for (int g = 0; g < 2 && t; g++) {
            char *ctx = context(REFS[i].conversation, g);
            char *out = NULL;
            size_t len = 0;
            st = lm_tmpl_render_at(t, ctx, strlen(ctx), NOW, &out, &len, err, sizeof err);
            CHECK(st == LM_OK, "%s: render: %s", REFS[i].name, err);
            const char *want = g ? REFS[i].with_prompt : REFS[i].plain;
            if (st == LM_OK) {
                bool same = len == strlen(want) && !memcmp(out, want, len);
                CHECK(same, "%s (%s the generation prompt): differs from Jinja2", REFS[i].name, g ? "with" : "without");
                if (!same) show_diff(REFS[i].name, out, want);
                ok = ok && same;
            } else ok = false;
            free(out);
            free(ctx);
        }
        passed += ok;
        lm_tmpl_free(t);
        free(src);
    }
    printf("real chat templates: %d of %zu render as Jinja2 does\n", passed, sizeof REFS / sizeof REFS[0]);
}

static void test_features(void)
{
    int passed = 0;
    for (size_t i = 0; i < sizeof FEATS / sizeof FEATS[0]; i++) {
        char err[512] = "";
        lm_tmpl *t = NULL;
        int st = lm_tmpl_parse(FEATS[i].src, strlen(FEATS[i].src), &t, err, sizeof err);
        CHECK(st == LM_OK, "feature %s: parse: %s", FEATS[i].name, err);
        if (st != LM_OK) continue;
        char *out = NULL;
        size_t len = 0;
        st = lm_tmpl_render_at(t, FEAT_CONTEXT, strlen(FEAT_CONTEXT), NOW, &out, &len, err, sizeof err);
        CHECK(st == LM_OK, "feature %s: render: %s", FEATS[i].name, err);
        if (st == LM_OK) {
            bool same = len == strlen(FEATS[i].expected) && !memcmp(out, FEATS[i].expected, len);
            CHECK(same, "feature %s: differs from Jinja2", FEATS[i].name);
            if (!same) show_diff(FEATS[i].name, out, FEATS[i].expected);
            passed += same;
        }
        free(out);
        lm_tmpl_free(t);
    }
    printf("feature templates: %d of %zu render as Jinja2 does\n", passed, sizeof FEATS / sizeof FEATS[0]);
}

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof ERRS / sizeof ERRS[0]; i++) {
        char err[512] = "";
        lm_tmpl *t = NULL;
        int st = lm_tmpl_parse(ERRS[i].src, strlen(ERRS[i].src), &t, err, sizeof err);
        char *out = NULL;
        size_t len;
        if (st == LM_OK) st = lm_tmpl_render_at(t, "{}", 2, NOW, &out, &len, err, sizeof err);
        CHECK(st == LM_ERR_INVALID, "error %s: status %d, not LM_ERR_INVALID", ERRS[i].name, st);
        CHECK(strstr(err, ERRS[i].error) != NULL, "error %s: message \"%s\", expected \"%s\"", ERRS[i].name, err,
              ERRS[i].error);
        free(out);
        lm_tmpl_free(t);
    }
    /* a context that is not a JSON object, and broken JSON */
    lm_tmpl *t = NULL;
    char err[256] = "", *out = NULL;
    size_t len;
    CHECK(lm_tmpl_parse("x", 1, &t, err, sizeof err) == LM_OK, "parse: %s", err);
    CHECK(lm_tmpl_render(t, "[1]", 3, &out, &len, err, sizeof err) == LM_ERR_INVALID, "a list as the context");
    CHECK(lm_tmpl_render(t, "{\"a\": ", 6, &out, &len, err, sizeof err) == LM_ERR_INVALID, "truncated JSON");
    lm_tmpl_free(t);
    /* the source is (pointer, length), not NUL-terminated: an endraw tag cut short at the end was
     * searched for its '%}' past the end (found by fuzz_template; ASan sees the read past this copy) */
    static const char cut[] = "{% raw %}x{% endraw";
    char *src = malloc(sizeof cut - 1);
    if (src) {
        memcpy(src, cut, sizeof cut - 1);
        t = NULL;
        CHECK(lm_tmpl_parse(src, sizeof cut - 1, &t, err, sizeof err) == LM_ERR_INVALID && strstr(err, "unclosed"),
              "an endraw tag cut short at the end: \"%s\"", err);
        lm_tmpl_free(t);
        free(src);
    }
}

/* Output bound: a template that doubles a string until it passes the limit. */
static void test_output_bound(void)
{
    const char *src = "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}";
    lm_tmpl *t = NULL;
    char err[256] = "", *out = NULL;
    size_t len;
    CHECK(lm_tmpl_parse(src, strlen(src), &t, err, sizeof err) == LM_OK, "parse: %s", err);
    int st = lm_tmpl_render(t, "{}", 2, &out, &len, err, sizeof err);
    CHECK(st == LM_ERR_INVALID && strstr(err, "exceeds"), "output bound: status %d, \"%s\"", st, err);
    free(out);
    lm_tmpl_free(t);
}

/* Renders src with its bounds lowered to iters and output (0: the defaults); the status, the message in err. */
static int render_limited(const char *src, int64_t iters, size_t output, char *err, size_t errlen)
{
    lm_tmpl *t = NULL;
    char *out = NULL;
    size_t len;
    int st = lm_tmpl_parse(src, strlen(src), &t, err, errlen);
    CHECK(st == LM_OK, "parse %s: %s", src, err);
    if (st != LM_OK) return st;
    lm_tmpl_set_limits(t, iters, output);
    st = lm_tmpl_render_at(t, "{}", 2, NOW, &out, &len, err, errlen);
    free(out);
    lm_tmpl_free(t);
    return st;
}

/* lm_tmpl_set_limits: a lowered bound is the bound's error, the defaults stay; and the bounds of values:
 * too deep or holding itself (printed, compared), a list doubled, an indent or replace that would be huge */
static void test_limits(void)
{
    static const struct { const char *src; int64_t iters; size_t output; const char *error; } cases[] = {
        { "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", 5000, 0,
          "more than 5000 loop iterations" },
        { "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", 0, 0, NULL },
        { "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", 20000000, 0, NULL },
        { "{{ range(6000)|length }}", 5000, 0, "range longer than 5000" },
        { "{% for i in range(20) %}{{ 'x' * 100 }}{% endfor %}", 0, 1000, "the output exceeds 1000 bytes" },
        { "{{ 'x' * 1001 }}", 0, 1000, "a string exceeds 1000 bytes" },
        { "{{ ('x' * 600) ~ ('y' * 600) }}", 0, 1000, "a string exceeds 1000 bytes" },
        { "{{ (range(100)|list)|string|length }}", 0, 100, "a string exceeds 100 bytes" },
        { "{{ [1, [2, 3]]|tojson(indent=2000000000) }}", 0, 0, "a string exceeds 16777216 bytes" },
        { "{{ ('a' * 5000)|replace('', 'b' * 5000) }}", 0, 0, "a string exceeds 16777216 bytes" },
        { "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", 0, 0,
          "a list longer than 1000000 items" },
        { "{{ 2.331e25|int }}{{ '-2.2e23'|int(5) }}{{ 9.3e18|int }}{{ -9.2e18|int }}", 0, 0, NULL },
        { "{{ '%d' % 1e30 }}", 0, 0, "%d of a number out of range" },
        { "{{ '%3333333s' % 'x' }}", 0, 0, "format width or precision over 128" },
        { "{{ '%.1000000f'|format(1.5) }}", 0, 0, "format width or precision over 128" },
        { "{{ '%-0128d|%.128s|%05.3f' % (7, 'ab', 2.5) }}", 0, 0, NULL },
        { "{% set ns = namespace(a=1) %}{% set ns.b = ns %}{{ ns|tojson }}", 0, 0, "cannot be printed" },
        { "{% set ns = namespace(a=1) %}{% set ns.b = [ns] %}{{ ns.b }}{{ ns.b|tojson }}", 0, 0,
          "cannot be printed" },
        { "{% set ns = namespace(a=1) %}{% set ns.b = ns %}{{ ns == ns.b }}", 0, 0, NULL },
        { "{% set ns = namespace(a=[]) %}{% for i in range(300) %}{% set ns.a = [ns.a] %}{% endfor %}"
          "{{ ns.a == ns.a }}{{ ns.a < ns.a }}", 0, 0, "not supported between list and list" },
        { "{% set ns = namespace(a=[]) %}{% for i in range(300) %}{% set ns.a = [ns.a] %}{% endfor %}{{ ns.a }}", 0, 0,
          "a value nested deeper than 200 levels" },
        /* a list that holds one list twice, 150 times nested: 2^150 items to walk, compared and printed */
        { "{% set ns = namespace(a=[], b=[]) %}{% for i in range(150) %}{% set ns.a = [ns.a, ns.a] %}"
          "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}", 0, 0, NULL },
        { "{% set ns = namespace(a=[], b=[]) %}{% for i in range(150) %}{% set ns.a = [ns.a, ns.a] %}"
          "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a < ns.b }}", 0, 0, "not supported between list and list" },
        { "{% set ns = namespace(a=[]) %}{% for i in range(150) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
          "{{ ns.a|tojson }}", 0, 0, "a string exceeds" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        int st = render_limited(cases[i].src, cases[i].iters, cases[i].output, err, sizeof err);
        if (!cases[i].error) CHECK(st == LM_OK, "limits %zu: %s", i, err);
        else
            CHECK(st == LM_ERR_INVALID && strstr(err, cases[i].error), "limits %zu: status %d, \"%s\", expected \"%s\"",
                  i, st, err, cases[i].error);
    }
}

static void test_builtins(void)
{
    const char *ctx = "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U1\"},"
                      " {\"role\": \"assistant\", \"content\": \"A1\"}, {\"role\": \"user\", \"content\": \"U2\"}],"
                      " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";
    for (int i = 0; lm_chat_builtin_name(i); i++) {
        const char *name = lm_chat_builtin_name(i), *src = lm_chat_builtin(name);
        lm_tmpl *t = NULL;
        char err[256] = "", *out = NULL;
        size_t len = 0;
        int st = lm_tmpl_parse(src, strlen(src), &t, err, sizeof err);
        CHECK(st == LM_OK, "built-in %s: parse: %s", name, err);
        if (st == LM_OK) st = lm_tmpl_render(t, ctx, strlen(ctx), &out, &len, err, sizeof err);
        CHECK(st == LM_OK, "built-in %s: render: %s", name, err);
        /* every message's text is in the prompt, in order */
        const char *p = out ? out : "";
        const char *parts[] = { "U1", "A1", "U2" };
        for (int k = 0; k < 3 && st == LM_OK; k++) {
            const char *q = strstr(p, parts[k]);
            CHECK(q, "built-in %s: '%s' missing or out of order in:\n%s", name, parts[k], out);
            if (q) p = q;
        }
        CHECK(out && strstr(out, "S"), "built-in %s: the system prompt is missing", name);
        free(out);
        lm_tmpl_free(t);
    }
    CHECK(lm_chat_builtin("nosuch") == NULL, "an unknown built-in");
}

int main(void)
{
    test_real_templates();
    test_features();
    test_errors();
    test_output_bound();
    test_limits();
    test_builtins();
    return tu_finish("test_template");
}
