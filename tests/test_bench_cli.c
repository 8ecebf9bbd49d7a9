/* test_bench_cli.c: `vkllm bench kernels --quick --json --validation` runs, exits 0 and prints one valid
 * JSON object with the device, the calibration and a result with a positive time for every kind of kernel.
 * A structural check only: speeds are not asserted (they are what `vkllm bench` is for). The binary is
 * $VKLLM_BIN, set by tests/CMakeLists.txt. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---------------------------------------------------------------- a JSON validator (RFC 8259 grammar) */

typedef struct jp {
    const char *s;
    int depth;
} jp;

static void ws(jp *p)
{
    while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
        p->s++;
}

static bool value(jp *p);

static bool string(jp *p)
{
    if (*p->s != '"')
        return false;
    for (p->s++; *p->s != '"'; p->s++) {
        unsigned char c = (unsigned char)*p->s;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            p->s++;
            if (*p->s == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p->s[i]))
                        return false;
                p->s += 4;
            } else if (!strchr("\"\\/bfnrt", *p->s) || !*p->s)
                return false;
        }
    }
    p->s++;
    return true;
}

static bool number(jp *p)
{
    const char *s = p->s;
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (isdigit((unsigned char)*s))
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    p->s = s;
    return true;
}

static bool container(jp *p, char open, char close, bool object)
{
    if (*p->s != open || ++p->depth > 64)
        return false;
    p->s++;
    ws(p);
    if (*p->s == close) {
        p->s++;
        p->depth--;
        return true;
    }
    for (;;) {
        ws(p);
        if (object) {
            if (!string(p))
                return false;
            ws(p);
            if (*p->s++ != ':')
                return false;
        }
        if (!value(p))
            return false;
        ws(p);
        if (*p->s == ',') {
            p->s++;
            continue;
        }
        if (*p->s++ != close)
            return false;
        p->depth--;
        return true;
    }
}

static bool value(jp *p)
{
    ws(p);
    switch (*p->s) {
    case '{': return container(p, '{', '}', true);
    case '[': return container(p, '[', ']', false);
    case '"': return string(p);
    case 't': return !strncmp(p->s, "true", 4) ? (p->s += 4, true) : false;
    case 'f': return !strncmp(p->s, "false", 5) ? (p->s += 5, true) : false;
    case 'n': return !strncmp(p->s, "null", 4) ? (p->s += 4, true) : false;
    default: return number(p);
    }
}

static bool valid_json(const char *s)
{
    jp p = { s, 0 };
    if (!value(&p))
        return false;
    ws(&p);
    return *p.s == 0;
}

/* ---------------------------------------------------------------- the checks */

/* The value of the first member "key" at or after from, past the spacing after its colon (any spacing);
 * NULL when there is none. */
static const char *member(const char *from, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *k = strstr(from, pat);
    return k ? k + strlen(pat) + strspn(k + strlen(pat), " \t\r\n") : NULL;
}

/* The number of the first member "key" at or after from; NAN when absent or not a number. */
static double number_after(const char *from, const char *key, const char **end)
{
    const char *k = member(from, key);
    if (!k)
        return NAN;
    char *e;
    double v = strtod(k, &e);
    if (e == k)
        return NAN;
    if (end)
        *end = e;
    return v;
}

static char *run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t n;
    while (out && (n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *o = realloc(out, cap *= 2);
            if (!o) {
                free(out);
                out = NULL;
            } else
                out = o;
        }
    }
    *status = pclose(f);
    if (out)
        out[len] = 0;
    return out;
}

int main(void)
{
    const char *bin = getenv("VKLLM_BIN");
    if (!bin || !*bin) {
        CHECK(0, "VKLLM_BIN is not set (ctest sets it to the vkllm binary)");
        return tu_finish("test_bench_cli");
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' bench kernels --quick --json %s", bin, tu_validation_flag());
    printf("running: %s\n", cmd);
    int status;
    char *out = run(cmd, &status);
    CHECK(out != NULL, "could not run %s", cmd);
    if (!out)
        return tu_finish("test_bench_cli");
    CHECK(status == 0, "exit status %d", status);
    CHECK(valid_json(out), "the output is not one valid JSON value:\n%s", out);

    const char *dev = member(out, "device");
    CHECK(dev && *dev == '{' && member(dev, "name") && *member(dev, "name") == '"', "no device name");
    double bw = number_after(out, "copy_gbps", NULL), fl = number_after(out, "fma_gflops", NULL);
    CHECK(bw > 0 && fl > 0, "calibration: copy %g GB/s, fma %g GFLOP/s", bw, fl);

    /* every result has a positive time; every kind of kernel is there */
    const char *res = member(out, "results");
    CHECK(res && *res == '[', "no results array");
    if (res && *res != '[')
        res = NULL;
    int n = 0;
    for (const char *p = res; p && (p = strstr(p, "\"name\":")); n++) {
        const char *end = p + 1;
        double t = number_after(p, "time_us", &end);
        char name[96] = "";
        sscanf(p, "\"name\": \"%95[^\"]", name);
        CHECK(t > 0, "result %d (%s): time %g us", n, name, t);
        p = end;
    }
    CHECK(n >= 10, "only %d results", n);
    static const char *kinds[] = { "\"matmul f32 m=1 ", "\"matmul f16 m=64 ", "\"rmsnorm ", "\"softmax ",
                                   "\"rope ", "\"attention ", "\"get_rows ", "\"swiglu " };
    for (size_t i = 0; res && i < sizeof kinds / sizeof kinds[0]; i++)
        CHECK(strstr(res, kinds[i]) != NULL, "no result for %s", kinds[i]);

    /* --filter keeps only what matches; a filter matching nothing fails */
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' bench kernels --quick --json --filter rmsnorm", bin);
    out = run(cmd, &status);
    CHECK(out && status == 0 && valid_json(out) && strstr(out, "rmsnorm") && !strstr(out, "\"matmul"),
          "--filter rmsnorm: status %d", status);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' bench kernels --quick --filter no-such-kernel 2>/dev/null", bin);
    out = run(cmd, &status);
    CHECK(status != 0, "a filter matching nothing exited 0");
    free(out);
    return tu_finish("test_bench_cli");
}
