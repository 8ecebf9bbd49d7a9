/* test_cli_embed: `vkllm embed` and `vkllm serve`'s /v1/embeddings ($VKLLM_BIN) on stories260K (dim 64,
 * last-token pooling: a decoder).
 *
 * embed: the JSON (OpenAI's shape) has one vector of 64 values per non-empty line, in order, each of L2
 * norm 1 (1e-4); --no-normalize gives the same direction (1e-5) with a norm that is not 1; the same
 * text twice gives the same vector, cosine similarity 1 (1e-5), and different texts less; the
 * --similarity matrix (json, table, array) is the cosines of the printed vectors, computed here in
 * double (1e-5); --batch 1 gives the vectors of one batch (1e-5); the array and table formats carry
 * the same values; usage errors exit 2 (the message before the usage), failures 1 (a missing file, an
 * empty one, invalid UTF-8 naming its line, a text longer than the context naming its line, a failed
 * write).
 * serve: a string, a list of strings, token ids and a list of them give `vkllm embed`'s vectors (1e-5:
 * the token ids are `vkllm tokenize`'s for the same text); base64 decodes to the floats of "float";
 * an empty input, an empty list, too many inputs, one longer than the context, a bad encoding_format
 * are 400s in OpenAI's error shape; /v1/models and completions still answer; the server stops with 0
 * and its stderr has no validation message. */
#include "serve_util.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define DIM 64      /* stories260K's embedding length */
#define MAXV 8
#define MAX_INPUTS 2048 /* what a request to serve may have (SRV_MAX_EMBED_INPUTS) */

static char out[1 << 18], err[1 << 16];

static const char *in_dir(const char *name)
{
    static char bufs[8][160];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 160, "%s/%s", dir, name);
    return b;
}

/* `vkllm embed ARGS` (ARGS may redirect): stdout into out, stderr into err; the exit status. */
static int embed(const char *args)
{
    char cmd[16384];
    const char *errpath = in_dir("stderr");
    snprintf(cmd, sizeof cmd, "'%s' embed %s %s 2>'%s'", bin, tu_validation_flag(), args, errpath);
    int st = tu_run(cmd, out, sizeof out);
    char *e = tu_read_file(errpath, NULL);
    snprintf(err, sizeof err, "%s", e ? e : "");
    free(e);
    if (strstr(err, "validation:")) {
        fprintf(stderr, "test_cli_embed: `vkllm embed %s` printed validation messages:\n%s\n", args, err);
        tu_failures++;
    }
    return st;
}

static void expect(const char *args, int want, const char *says)
{
    int st = embed(args);
    CHECK(st == want && strstr(err, says), "`vkllm embed %s`: exit %d (want %d), stderr must contain '%s':\n%s", args,
          st, want, says, err);
}

/* ------------------------------------------------------------------------ reading the output */

/* A flat JSON array of numbers at p ('[' after spaces): up to max into v; the count, -1 when malformed;
 * *end after the ']'. */
static int numbers(const char *p, double *v, int max, const char **end)
{
    while (*p == ' ' || *p == '\n')
        p++;
    if (*p++ != '[')
        return -1;
    int n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p == ']')
            break;
        char *e;
        double x = strtod(p, &e);
        if (e == p || n == max)
            return -1;
        v[n++] = x;
        p = e;
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p == ',')
            p++;
        else if (*p != ']')
            return -1;
    }
    if (end)
        *end = p + 1;
    return n;
}

/* The vectors of every "embedding": [...] member of json, in order; the count (-1: one is not DIM long
 * or not an array). */
static int vectors(const char *json, double v[][DIM], int max)
{
    int n = 0;
    for (const char *p = json; (p = strstr(p, "\"embedding\":")); p++) {
        if (n == max)
            return -1;
        double tmp[DIM + 1];
        if (numbers(p + strlen("\"embedding\":"), tmp, DIM + 1, NULL) != DIM)
            return -1;
        memcpy(v[n++], tmp, sizeof tmp[0] * DIM);
    }
    return n;
}

/* n rows of n numbers at p, '[' '[' ... ']' ']' (or, for table, lines of numbers after p) */
static bool matrix(const char *p, int n, double m[][MAXV], bool table)
{
    if (!table) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p++ != '[')
            return false;
    }
    for (int i = 0; i < n; i++) {
        if (table) {
            char *e;
            for (int j = 0; j < n; j++, p = e)
                if (m[i][j] = strtod(p, &e), e == p)
                    return false;
            continue;
        }
        while (*p == ' ' || *p == '\n' || *p == ',')
            p++;
        double row[MAXV + 1];
        if (numbers(p, row, MAXV + 1, &p) != n)
            return false;
        memcpy(m[i], row, sizeof row[0] * (size_t)n);
    }
    return true;
}

static double norm(const double *v)
{
    double s = 0;
    for (int i = 0; i < DIM; i++)
        s += v[i] * v[i];
    return sqrt(s);
}

static double cosine(const double *a, const double *b)
{
    double s = 0;
    for (int i = 0; i < DIM; i++)
        s += a[i] * b[i];
    return s / (norm(a) * norm(b));
}

static double max_diff(const double *a, const double *b)
{
    double d = 0;
    for (int i = 0; i < DIM; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

static bool write_text(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(s, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* ------------------------------------------------------------------------ vkllm embed */

#define TEXTS "Once upon a time\n\nThe dog ran to the park\r\nOnce upon a time\n"
static double ref[3][DIM]; /* TEXTS' vectors, normalised */

static void test_cli(void)
{
    char args[12288], texts_path[160], one_path[160];
    snprintf(texts_path, sizeof texts_path, "%s", in_dir("texts.txt"));
    snprintf(one_path, sizeof one_path, "%s", in_dir("one.txt"));
    CHECK(write_text(texts_path, TEXTS, strlen(TEXTS)) && write_text(one_path, "Once upon a time\n", 17),
          "cannot write the texts");

    /* JSON: OpenAI's shape, three vectors of norm 1, the first and last the same */
    snprintf(args, sizeof args, "-m '%s' -f '%s'", model, texts_path);
    int st = embed(args);
    CHECK(st == 0, "`embed %s`: exit %d: %s", args, st, err);
    CHECK(strstr(out, "\"object\": \"list\"") && strstr(out, "\"object\": \"embedding\", \"index\": 2") &&
              strstr(out, "\"model\": \"stories260K.gguf\"") && strstr(out, "\"prompt_tokens\": ") &&
              !strstr(out, "\"index\": 3") && !strstr(out, "cosineSimilarity"),
          "the JSON is not OpenAI's shape:\n%.2000s", out);
    const char *pt = strstr(out, "\"prompt_tokens\": ");
    CHECK(pt && atoi(pt + 17) >= 6, "usage.prompt_tokens: %s", pt ? pt : "none");
    int n = vectors(out, ref, 3);
    CHECK(n == 3, "%d vectors of %d values, want 3:\n%.2000s", n, DIM, out);
    for (int i = 0; i < n; i++)
        CHECK(fabs(norm(ref[i]) - 1) < 1e-4, "vector %d: L2 norm %.7f, want 1", i, norm(ref[i]));
    if (n == 3) {
        CHECK(max_diff(ref[0], ref[2]) < 1e-6, "the same text twice: vectors differ by %g", max_diff(ref[0], ref[2]));
        CHECK(cosine(ref[0], ref[2]) > 1 - 1e-5, "the same text twice: cosine %.7f", cosine(ref[0], ref[2]));
        CHECK(cosine(ref[0], ref[1]) < 1 - 1e-3, "different texts: cosine %.7f, want < 1", cosine(ref[0], ref[1]));
    }

    /* --no-normalize: the same direction, another length */
    snprintf(args, sizeof args, "-m '%s' -f '%s' --no-normalize", model, texts_path);
    double raw[3][DIM];
    st = embed(args);
    int nr = vectors(out, raw, 3);
    CHECK(st == 0 && nr == 3, "`embed %s`: exit %d, %d vectors: %s", args, st, nr, err);
    for (int i = 0; i < nr && n == 3; i++) {
        double l = norm(raw[i]), d = 0;
        for (int k = 0; k < DIM; k++)
            d = fmax(d, fabs(raw[i][k] / l - ref[i][k]));
        CHECK(fabs(l - 1) > 1e-3, "--no-normalize: vector %d has norm %.7f", i, l);
        CHECK(d < 1e-5, "--no-normalize: vector %d / its norm differs from the normalised one by %g", i, d);
    }

    /* --batch 1: one text per call, the same vectors */
    snprintf(args, sizeof args, "-m '%s' -f '%s' --batch 1", model, texts_path);
    double b1[3][DIM];
    st = embed(args);
    int nb = vectors(out, b1, 3);
    CHECK(st == 0 && nb == 3, "`embed %s`: exit %d, %d vectors", args, st, nb);
    for (int i = 0; i < nb && n == 3; i++)
        CHECK(max_diff(b1[i], ref[i]) < 1e-5, "--batch 1: vector %d differs by %g", i, max_diff(b1[i], ref[i]));

    /* --similarity, in each format: the cosines of the vectors printed */
    const char *fmts[] = { "json", "table", "array" };
    for (int f = 0; f < 3; f++) {
        snprintf(args, sizeof args, "-m '%s' -f '%s' --similarity --format %s", model, texts_path, fmts[f]);
        st = embed(args);
        CHECK(st == 0, "`embed %s`: exit %d: %s", args, st, err);
        double v[3][DIM], m[3][MAXV];
        int nv = 0;
        const char *at = NULL;
        if (f == 0) {
            nv = vectors(out, v, 3);
            at = strstr(out, "\"cosineSimilarity\": ");
            at = at ? at + strlen("\"cosineSimilarity\": ") : NULL;
        } else if (f == 2) {
            /* line 1: [[...],[...],[...]]; line 2: the matrix */
            const char *p = out + 1;
            while (*p == '[' && nv < 3 && numbers(p, v[nv], DIM, &p) == DIM) {
                nv++;
                if (*p == ',')
                    p++;
            }
            at = strchr(out, '\n');
        } else {
            /* "embedding I: v v v ... v v v": the first and last three */
            for (const char *p = out; nv < 3 && (p = strstr(p, "embedding ")); p++) {
                char *e;
                const char *q = strchr(p, ':') + 1;
                bool ok = true;
                for (int k = 0; k < 6 && ok; k++) {
                    v[nv][k < 3 ? k : DIM - 6 + k] = strtod(q, &e);
                    ok = e != q;
                    q = e;
                    if (k == 2) {
                        ok = ok && !strncmp(q, " ...", 4);
                        q += 4;
                    }
                }
                nv += ok;
            }
            at = strstr(out, "cosine similarity matrix:\n");
            at = at ? at + strlen("cosine similarity matrix:\n") : NULL;
        }
        CHECK(nv == 3, "--format %s: %d vectors read back:\n%.3000s", fmts[f], nv, out);
        bool ok = at && matrix(at, 3, m, f == 1);
        CHECK(ok, "--format %s: no 3x3 similarity matrix:\n%.3000s", fmts[f], out);
        for (int i = 0; ok && i < 3; i++)
            for (int j = 0; j < 3; j++) {
                double want = f == 1 ? cosine(ref[i], ref[j]) : cosine(v[i], v[j]);
                CHECK(fabs(m[i][j] - want) < 1e-5, "--format %s: similarity [%d][%d] %.7f, want %.7f", fmts[f], i, j,
                      m[i][j], want);
            }
        if (ok)
            CHECK(fabs(m[0][2] - 1) < 1e-5 && m[0][1] < 1 - 1e-3, "--format %s: similarity of the same texts %.7f, of "
                  "different ones %.7f", fmts[f], m[0][2], m[0][1]);
        /* the table shows 6 decimals; json and array every digit */
        for (int i = 0; i < 3 && nv == 3 && n == 3; i++)
            for (int k = 0; k < DIM; k++)
                if (f != 1 || k < 3 || k >= DIM - 3)
                    CHECK(fabs(v[i][k] - ref[i][k]) < (f == 1 ? 2e-6 : 1e-6), "--format %s: vector %d value %d "
                          "is %.9f, the JSON's %.9f", fmts[f], i, k, v[i][k], ref[i][k]);
    }
    /* the array of two identical texts: two identical arrays */
    snprintf(args, sizeof args, "-m '%s' -p \"$(printf 'The cat\\nThe cat')\" --format array", model);
    st = embed(args);
    const char *mid = strstr(out, "],[");
    size_t half = mid ? (size_t)(mid - out) : 0;
    CHECK(st == 0 && mid && !strncmp(out + 1, mid + 2, half) && !strcmp(mid + 2 + half, "]\n"),
          "--format array of the same text twice: exit %d\n%.2000s", st, out);
    /* the table of one text: every value */
    snprintf(args, sizeof args, "-m '%s' -f '%s' --format table", model, one_path);
    st = embed(args);
    double t[DIM];
    const char *q = strstr(out, "embedding 0:");
    int k = 0;
    for (char *e; q && k < DIM; k++, q = e)
        if (t[k] = strtod(k ? q : q + 12, &e), e == (k ? q : q + 12))
            break;
    CHECK(st == 0 && k == DIM && n == 3 && max_diff(t, ref[0]) < 2e-6, "--format table of one text: exit %d, "
          "%d values:\n%s", st, k, out);

    /* usage errors: 2, the message first */
    char base[4200];
    snprintf(base, sizeof base, "-m '%s'", model);
    snprintf(args, sizeof args, "%s", "-p hello");
    expect(args, 2, "-m FILE is required");
    snprintf(args, sizeof args, "%s", base);
    expect(args, 2, "exactly one of -p TEXT or -f FILE");
    snprintf(args, sizeof args, "%s -p a -f '%s'", base, one_path);
    expect(args, 2, "exactly one of -p TEXT or -f FILE");
    snprintf(args, sizeof args, "%s -p a -p b", base);
    expect(args, 2, "-p is given twice");
    snprintf(args, sizeof args, "%s -p a --format xml", base);
    expect(args, 2, "--format 'xml'");
    snprintf(args, sizeof args, "%s -p a --similarity", base);
    expect(args, 2, "at least 2");
    snprintf(args, sizeof args, "%s -p a --bogus", base);
    expect(args, 2, "unknown option '--bogus'");
    snprintf(args, sizeof args, "%s -p a --batch", base);
    expect(args, 2, "--batch needs a value");
    CHECK(strstr(err, "usage: vkllm embed") > strstr(err, "needs a value"), "the usage must follow the message:\n%s", err);
    /* failures: 1 */
    snprintf(args, sizeof args, "%s -p a --batch 0", base);
    expect(args, 1, "--batch");
    snprintf(args, sizeof args, "%s -f '%s/no-such-file.txt'", base, dir);
    expect(args, 1, "no-such-file.txt");
    snprintf(args, sizeof args, "-m '%s/no-such-model.gguf' -p a", dir);
    expect(args, 1, "no-such-model.gguf");
    char empty_p[160], bad_p[160], long_p[160];
    snprintf(empty_p, sizeof empty_p, "%s", in_dir("empty.txt"));
    snprintf(bad_p, sizeof bad_p, "%s", in_dir("bad.txt"));
    snprintf(long_p, sizeof long_p, "%s", in_dir("long.txt"));
    write_text(empty_p, "\n\n", 2);
    write_text(bad_p, "fine\nbad \xff byte\n", 15);
    size_t ln = 2 * 2100 + 8;
    char *long_text = malloc(ln + 1);
    memcpy(long_text, "short\n", 6);
    for (size_t i = 6; i + 2 < ln; i += 2)
        memcpy(long_text + i, "a ", 2);
    long_text[ln - 2] = 'a';
    long_text[ln - 1] = '\n';
    write_text(long_p, long_text, ln);
    free(long_text);
    snprintf(args, sizeof args, "%s -f '%s'", base, empty_p);
    expect(args, 1, "no text to embed");
    snprintf(args, sizeof args, "%s -f '%s'", base, bad_p);
    expect(args, 1, "line 2: not valid UTF-8");
    snprintf(args, sizeof args, "%s -f '%s'", base, long_p);
    expect(args, 1, "line 2: input 0 has");
    CHECK(!out[0], "a failed embed printed a partial output:\n%.300s", out);
    snprintf(args, sizeof args, "%s -p a > /dev/full", base);
    expect(args, 1, "cannot write the output");
}

/* ------------------------------------------------------------------------ /v1/embeddings */

/* POST body to path; the status (-1: no answer) and the response body into out. */
static int http_post(int port, const char *path, const char *body)
{
    out[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char head[512];
    size_t blen = strlen(body);
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      path, blen);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) || write(fd, head, (size_t)hn) != hn ||
        (blen && write(fd, body, blen) != (ssize_t)blen)) {
        close(fd);
        return -1;
    }
    static char raw[sizeof out];
    size_t n = 0;
    double end = now_ms() + 120000;
    while (n + 1 < sizeof raw && now_ms() < end) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t k = read(fd, raw + n, sizeof raw - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    raw[n] = 0;
    const char *b = strstr(raw, "\r\n\r\n");
    int status = -1;
    if (!b || sscanf(raw, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    snprintf(out, sizeof out, "%s", b + 4);
    return status;
}

static bool error_shape(const char *param)
{
    char want[96];
    snprintf(want, sizeof want, "\"param\":\"%s\"", param);
    return strstr(out, "{\"error\":{\"message\":\"") && strstr(out, "\"type\":\"invalid_request_error\"") &&
           strstr(out, want);
}

static int b64(char c)
{
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(tab, c) : NULL;
    return p ? (int)(p - tab) : -1;
}

/* The base64 strings of "embedding": "..." decoded as little-endian float32; the count. */
static int vectors_b64(const char *json, double v[][DIM], int max)
{
    int n = 0;
    for (const char *p = json; (p = strstr(p, "\"embedding\":\"")) && n < max; p++) {
        const char *s = p + strlen("\"embedding\":\"");
        unsigned char bytes[DIM * 4 + 3];
        size_t nb = 0;
        for (; s[0] && s[0] != '"'; s += 4) {
            int c[4];
            for (int k = 0; k < 4; k++)
                c[k] = s[k] == '=' ? 0 : b64(s[k]);
            if (c[0] < 0 || c[1] < 0 || c[2] < 0 || c[3] < 0 || nb + 3 > sizeof bytes)
                return -1;
            uint32_t x = (uint32_t)c[0] << 18 | (uint32_t)c[1] << 12 | (uint32_t)c[2] << 6 | (uint32_t)c[3];
            bytes[nb++] = (unsigned char)(x >> 16);
            if (s[2] != '=')
                bytes[nb++] = (unsigned char)(x >> 8);
            if (s[3] != '=')
                bytes[nb++] = (unsigned char)x;
        }
        if (nb != DIM * 4)
            return -1;
        for (int k = 0; k < DIM; k++) {
            uint32_t u = (uint32_t)bytes[4 * k] | (uint32_t)bytes[4 * k + 1] << 8 | (uint32_t)bytes[4 * k + 2] << 16 |
                         (uint32_t)bytes[4 * k + 3] << 24;
            float f;
            memcpy(&f, &u, 4);
            v[n][k] = f;
        }
        n++;
    }
    return n;
}

static void test_serve(void)
{
    server s;
    const char *extra[] = { NULL };
    if (!server_start(&s, "embed", extra)) {
        CHECK(false, "the server did not start");
        return;
    }
    double v[MAXV][DIM], w[MAXV][DIM];
    int st = http_post(s.port, "/v1/embeddings", "{\"model\":\"m\",\"input\":\"Once upon a time\"}");
    int n = vectors(out, v, MAXV);
    CHECK(st == 200 && n == 1 && strstr(out, "\"object\":\"list\"") && strstr(out, "\"index\":0") &&
              strstr(out, "\"model\":\"m\"") && strstr(out, "\"usage\":{\"prompt_tokens\":"),
          "a string input: status %d, %d vectors:\n%.2000s", st, n, out);
    if (n == 1)
        CHECK(max_diff(v[0], ref[0]) < 1e-5, "a string input: differs from `vkllm embed` by %g", max_diff(v[0], ref[0]));

    st = http_post(s.port, "/v1/embeddings",
                   "{\"input\":[\"Once upon a time\",\"The dog ran to the park\",\"Once upon a time\"]}");
    n = vectors(out, v, MAXV);
    CHECK(st == 200 && n == 3 && strstr(out, "\"index\":2") && strstr(out, "\"model\":\"stories260K.gguf\""),
          "a list input: status %d, %d vectors:\n%.2000s", st, n, out);
    for (int i = 0; i < n && n == 3; i++) {
        CHECK(fabs(norm(v[i]) - 1) < 1e-4, "list input %d: norm %.7f", i, norm(v[i]));
        CHECK(max_diff(v[i], ref[i]) < 1e-5, "list input %d: differs from `vkllm embed` by %g", i, max_diff(v[i], ref[i]));
    }

    /* token ids: `vkllm tokenize`'s (with BOS, as embeddings tokenize) give the text's vector */
    char cmd[8192], ids[1024], body[4096];
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' -p 'Once upon a time' --ids", bin, model);
    CHECK(tu_run(cmd, ids, sizeof ids) == 0, "vkllm tokenize failed");
    ids[strcspn(ids, "\n")] = 0;
    for (char *c = ids; *c; c++)
        *c = *c == ' ' ? ',' : *c;
    snprintf(body, sizeof body, "{\"input\":[%s]}", ids);
    st = http_post(s.port, "/v1/embeddings", body);
    n = vectors(out, v, MAXV);
    CHECK(st == 200 && n == 1, "token ids %s: status %d, %d vectors:\n%.1000s", body, st, n, out);
    if (n == 1)
        CHECK(max_diff(v[0], ref[0]) < 1e-5, "token ids: differ from the text's vector by %g", max_diff(v[0], ref[0]));
    snprintf(body, sizeof body, "{\"input\":[[%s],[%s]]}", ids, ids);
    st = http_post(s.port, "/v1/embeddings", body);
    n = vectors(out, v, MAXV);
    CHECK(st == 200 && n == 2, "lists of token ids: status %d, %d vectors:\n%.1000s", st, n, out);
    if (n == 2)
        CHECK(max_diff(v[0], ref[0]) < 1e-5 && max_diff(v[1], ref[0]) < 1e-5, "lists of token ids: differ by %g, %g",
              max_diff(v[0], ref[0]), max_diff(v[1], ref[0]));

    /* base64: the same floats */
    const char *two = "{\"input\":[\"Once upon a time\",\"The dog ran to the park\"]%s}";
    snprintf(body, sizeof body, two, "");
    st = http_post(s.port, "/v1/embeddings", body);
    n = vectors(out, v, MAXV);
    snprintf(body, sizeof body, two, ",\"encoding_format\":\"base64\"");
    int st2 = http_post(s.port, "/v1/embeddings", body);
    int n2 = vectors_b64(out, w, MAXV);
    CHECK(st == 200 && st2 == 200 && n == 2 && n2 == 2, "base64: status %d / %d, %d / %d vectors:\n%.1000s", st, st2, n,
          n2, out);
    for (int i = 0; i < 2 && n == 2 && n2 == 2; i++)
        CHECK(max_diff(v[i], w[i]) < 1e-7, "base64: vector %d differs from the floats by %g", i, max_diff(v[i], w[i]));

    /* 400s */
    static const struct {
        const char *body, *param, *says;
    } bad[] = {
        { "{\"input\":\"\"}", "input", "empty string" },
        { "{\"input\":[]}", "input", "empty array" },
        { "{\"input\":[[]]}", "input", "empty array of token ids" },
        { "{\"input\":[\"a\",\"\"]}", "input", "'input[1]' is an empty string" },
        { "{\"input\":[1,99999]}", "input", "not a token id" },
        { "{\"input\":[\"a\",3]}", "input", "'input[1]' must be a string" },
        { "{\"input\":7}", "input", "must be a string" },
        { "{}", "input", "'input' is required" },
        { "{\"input\":\"a\",\"encoding_format\":\"hex\"}", "encoding_format", "\\\"float\\\" or \\\"base64\\\"" },
        { "{\"input\":\"a\",\"dimensions\":3}", "dimensions", "have 64" },
        { "{\"input\":\"a\",\"model\":3}", "model", "must be a string" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = http_post(s.port, "/v1/embeddings", bad[i].body);
        CHECK(st == 400 && error_shape(bad[i].param) && strstr(out, bad[i].says), "%s: status %d (want 400, param %s, "
              "'%s'):\n%s", bad[i].body, st, bad[i].param, bad[i].says, out);
    }
    /* too many inputs; one longer than the context (2048) */
    size_t cap = 8 * (MAX_INPUTS + 1) + 64;
    char *big = malloc(cap > 3 * 2100 + 64 ? cap : 3 * 2100 + 64);
    size_t o = (size_t)sprintf(big, "{\"input\":[");
    for (int i = 0; i <= MAX_INPUTS; i++)
        o += (size_t)sprintf(big + o, i ? ",\"a\"" : "\"a\"");
    sprintf(big + o, "]}");
    st = http_post(s.port, "/v1/embeddings", big);
    CHECK(st == 400 && error_shape("input") && strstr(out, "at most 2048"), "2049 inputs: status %d:\n%s", st, out);
    o = (size_t)sprintf(big, "{\"input\":\"");
    for (int i = 0; i < 2100; i++)
        o += (size_t)sprintf(big + o, "a ");
    sprintf(big + o, "\"}");
    st = http_post(s.port, "/v1/embeddings", big);
    CHECK(st == 400 && error_shape("input") && strstr(out, "\"code\":\"context_length_exceeded\""),
          "an input longer than the context: status %d:\n%s", st, out);
    free(big);

    /* the rest of the server is as it was */
    st = http_post(s.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"temperature\":0}");
    CHECK(st == 200 && strstr(out, "\"text_completion\""), "a completion beside embeddings: status %d:\n%s", st, out);
    st = http_post(s.port, "/v1/embeddings", "{\"input\":\"Once upon a time\"}");
    n = vectors(out, v, MAXV);
    CHECK(st == 200 && n == 1 && max_diff(v[0], ref[0]) < 1e-5, "embeddings after a completion: status %d", st);
    int code = server_stop(&s);
    CHECK(code == 0, "the server exited with %d", code);
}

int main(void)
{
    bin = getenv("VKLLM_BIN");
    if (!bin || access(bin, X_OK)) {
        fprintf(stderr, "test_cli_embed: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    snprintf(model, sizeof model, "%s", tu_model_path("gguf/stories260K.gguf"));
    snprintf(dir, sizeof dir, "/tmp/vkllm-test-embed-XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_cli_embed: cannot make a temporary folder\n");
        return 1;
    }
    (void)make_goldens; /* serve_util.h's, not needed here */
    test_cli();
    test_serve();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    return tu_finish("test_cli_embed");
}
