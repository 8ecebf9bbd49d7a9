/* test_serve: `vkllm serve` ($VKLLM_BIN) on stories260K, as child processes on free loopback ports
 * (--port 0: the server prints the port it got), talked to over plain sockets.
 *
 * Server A (--parallel 4, -c 256, -b 8: prompts evaluated in chunks beside the other sequences' decode
 * rows): /health, /v1/models; greedy completions and chat, streamed and not,
 * give the text `vkllm run` gives for the same prompt (the chat's prompt rendered by `vkllm template`
 * and run with --parse-special); stop strings, logprobs; every malformed request is a 400 in OpenAI's
 * error shape (bad JSON, wrong types, ranges, huge numbers, invalid UTF-8, NUL, a prompt longer than
 * the context, max_tokens past it, n = 2, ...), 404, 405; 16 concurrent clients (valid requests,
 * streams, malformed JSON, clients that leave mid-stream): every valid one answered right, no 5xx;
 * /metrics parsed back (the KV pool back to no block used).
 * Server B (--parallel 1 --queue-size 1 --api-key --max-body 4096 --timeout 2): 401 without or with a
 * wrong key; 413; 503 with Retry-After when the queue is full; a client that leaves mid-stream frees
 * the sequence at once; an idle connection is closed after the timeout while a long generation is not.
 * Server C (--parallel 8, -b 16): continuous batching: 8 requests at once (completions of their own
 * prompts, completions and chats, streamed and not) each give `vkllm run`'s text for its prompt, the
 * passes batched; a long system prompt asked again (another question, the same one) is taken from the
 * prefix cache (usage's cached_tokens, /metrics' hits) and answers the same; a load test of 32 clients
 * x 3 requests (greedy and sampled streams, plain answers, clients that leave early, malformed bodies)
 * within a minute: no 5xx, every valid request answered right, the KV pool back to no block used.
 * Server D (--parallel 4, --kv-blocks 8, -b 3): the pool cannot hold the requests at once, so the
 * newest are preempted and evaluated again; every answer is still `vkllm run`'s; passes of 3 rows, fewer
 * than the decoding sequences, which take turns; a request larger than the pool is a 400, and one
 * without max_tokens that fills the pool alone ends "length".
 * All stop on SIGTERM with status 0, B in the middle of a stream. The servers run with --validation
 * and their stderr is searched for validation messages. Every wait is bounded. */
#include "serve_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQ_TIMEOUT_MS 120000

/* ------------------------------------------------------------------------ HTTP over a socket */

static int http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        s += k;
        n -= (size_t)k;
    }
    return true;
}

static bool http_send(int fd, const char *method, const char *path, const char *headers, const char *body, size_t n)
{
    char head[2048];
    int h = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s", method, path,
                     headers ? headers : "", body ? "Content-Type: application/json\r\n" : "");
    if (body)
        h += snprintf(head + h, sizeof head - (size_t)h, "Content-Length: %zu\r\n", n);
    h += snprintf(head + h, sizeof head - (size_t)h, "\r\n");
    return send_all(fd, head, (size_t)h) && (!body || send_all(fd, body, n));
}

/* Reads until the server closes (or until stop_at appears, when given); false on the deadline. */
static bool read_all(int fd, char **buf, size_t *n, int ms, const char *stop_at)
{
    size_t cap = 1 << 16;
    *buf = malloc(cap);
    *n = 0;
    double end = now_ms() + ms;
    while (*buf) {
        double left = end - now_ms();
        if (left <= 0)
            return false;
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        if (poll(&pf, 1, (int)(left < 100 ? left + 1 : 100)) <= 0)
            continue;
        if (*n + 4096 + 1 > cap) {
            char *p = realloc(*buf, cap * 2);
            if (!p)
                break;
            *buf = p;
            cap *= 2;
        }
        ssize_t k = recv(fd, *buf + *n, cap - *n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        *n += (size_t)k;
        (*buf)[*n] = 0;
        if (stop_at && strstr(*buf, stop_at))
            return true;
    }
    if (*buf)
        (*buf)[*n] = 0;
    return *buf != NULL;
}

typedef struct resp {
    int status;
    char *raw;      /* the whole response */
    char *body;     /* after the headers, chunked encoding undone (points into raw) */
    size_t n_body;
} resp;

static void resp_free(resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

/* A header's value (in r->raw), NULL when absent; case-insensitive name. */
static bool has_header(const resp *r, const char *name, char *val, size_t cap)
{
    size_t ln = strlen(name);
    for (const char *p = r->raw ? strstr(r->raw, "\r\n") : NULL; p && p < r->body; p = strstr(p + 2, "\r\n")) {
        if (!strncasecmp(p + 2, name, ln) && p[2 + ln] == ':') {
            const char *v = p + 3 + ln;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            snprintf(val, cap, "%.*s", (int)k, v);
            return true;
        }
    }
    return false;
}

static bool parse_resp(char *raw, size_t n, resp *r)
{
    r->raw = raw;
    if (n < 12 || strncmp(raw, "HTTP/1.", 7))
        return false;
    r->status = atoi(raw + 9);
    char *b = strstr(raw, "\r\n\r\n");
    if (!b)
        return false;
    r->body = b + 4;
    r->n_body = n - (size_t)(r->body - raw);
    char te[64];
    if (has_header(r, "Transfer-Encoding", te, sizeof te) && strstr(te, "chunked")) {
        /* undo the chunks in place */
        char *in = r->body, *out = r->body, *end = raw + n;
        while (in < end) {
            char *e;
            unsigned long k = strtoul(in, &e, 16);
            char *crlf = strstr(in, "\r\n");
            if (!crlf || e == in)
                break;
            in = crlf + 2;
            if (k == 0 || in + k > end)
                break;
            memmove(out, in, k);
            out += k;
            in += k + 2;
        }
        *out = 0;
        r->n_body = (size_t)(out - r->body);
    }
    return true;
}

/* One request on a new connection; false when it could not be made or timed out. */
static bool request(int port, const char *method, const char *path, const char *headers, const char *body, size_t n,
                    resp *r)
{
    memset(r, 0, sizeof *r);
    int fd = http_connect(port);
    if (fd < 0)
        return false;
    char *raw = NULL;
    size_t got = 0;
    bool ok = http_send(fd, method, path, headers, body, n) && read_all(fd, &raw, &got, REQ_TIMEOUT_MS, NULL);
    close(fd);
    if (!ok || !parse_resp(raw, got, r)) {
        if (!r->raw)
            free(raw);
        resp_free(r);
        r->status = -1;
        return false;
    }
    return true;
}

static bool post(int port, const char *path, const char *body, resp *r)
{
    return request(port, "POST", path, NULL, body, strlen(body), r);
}

/* ------------------------------------------------------------------------ JSON, by hand */

static void put_utf8(char **o, unsigned cp)
{
    unsigned char *p = (unsigned char *)*o;
    if (cp < 0x80) {
        *p++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *p++ = (unsigned char)(0xC0 | cp >> 6);
        *p++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *p++ = (unsigned char)(0xE0 | cp >> 12);
        *p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *p++ = (unsigned char)(0xF0 | cp >> 18);
        *p++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *p++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *o = (char *)p;
}

/* The string value of the first "key": in s, unescaped (malloc'd); NULL when absent or not a string. */
static char *json_str(const char *s, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = s ? strstr(s, pat) : NULL;
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != '"')
        return NULL;
    p++;
    char *out = malloc(strlen(p) * 2 + 1), *o = out;
    while (out && *p && *p != '"') {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        char c = *p++;
        switch (c) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned cp = (unsigned)strtoul((char[5]){ p[0], p[1], p[2], p[3], 0 }, NULL, 16);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[5]){ p[2], p[3], p[4], p[5], 0 }, NULL, 16);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(&o, cp);
            break;
        }
        default: *o++ = c; break;
        }
    }
    if (out)
        *o = 0;
    return out;
}

static double json_num(const char *s, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = s ? strstr(s, pat) : NULL;
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The streamed text: "content" (chat) or "text" (completions) of every data event, joined; the last
 * finish_reason into finish; whether it ended with [DONE]. */
static char *sse_text(const char *body, const char *field, char *finish, size_t cap, bool *done, int *events)
{
    size_t n = 0;
    char *out = calloc(1, strlen(body) + 1);
    *done = false;
    *events = 0;
    finish[0] = 0;
    for (const char *p = strstr(body, "data: "); out && p; p = strstr(p + 1, "\ndata: ")) {
        if (*p == '\n')
            p++;
        p += 6;
        const char *end = strstr(p, "\n\n");
        if (!end)
            break;
        if (!strncmp(p, "[DONE]", 6)) {
            *done = true;
            continue;
        }
        char *ev = strndup(p, (size_t)(end - p));
        (*events)++;
        char *t = json_str(ev, field), *f = json_str(ev, "finish_reason");
        if (t) {
            memcpy(out + n, t, strlen(t));
            n += strlen(t);
            out[n] = 0;
        }
        if (f)
            snprintf(finish, cap, "%s", f);
        free(t);
        free(f);
        free(ev);
    }
    return out;
}

/* ------------------------------------------------------------------------ server A: answers */

/* Returns the number of completions answered 200. */
static int test_answers(int port)
{
    int n200 = 0;
    resp r;
    CHECK(request(port, "GET", "/health", NULL, NULL, 0, &r) && r.status == 200 && strstr(r.body, "\"ok\""),
          "/health: %d %s", r.status, r.body);
    resp_free(&r);
    CHECK(request(port, "GET", "/v1/models", NULL, NULL, 0, &r) && r.status == 200 &&
              strstr(r.body, "\"id\":\"stories260K.gguf\"") && strstr(r.body, "\"object\":\"list\""),
          "/v1/models: %d %s", r.status, r.body);
    resp_free(&r);

    /* completions */
    CHECK(post(port, "/v1/completions", COMPLETION_BODY(""), &r) && r.status == 200, "completion: %d", r.status);
    n200 += r.status == 200;
    char *t = json_str(r.body, "text"), *f = json_str(r.body, "finish_reason"), *o = json_str(r.body, "object");
    CHECK(t && !strcmp(t, golden_completion), "completion text '%s', `vkllm run` gives '%s'", t ? t : "(none)",
          golden_completion);
    CHECK(f && !strcmp(f, "length"), "completion finish_reason %s", f ? f : "(none)");
    CHECK(o && !strcmp(o, "text_completion"), "completion object %s", o ? o : "(none)");
    CHECK(json_num(r.body, "completion_tokens") == N_GEN && json_num(r.body, "prompt_tokens") > 0 &&
              json_num(r.body, "total_tokens") == json_num(r.body, "prompt_tokens") + N_GEN,
          "completion usage: %s", r.body);
    CHECK(strstr(r.body, "\"id\":\"cmpl-") && strstr(r.body, "\"created\":"), "completion id/created: %s", r.body);
    free(t), free(f), free(o);
    resp_free(&r);

    char finish[32];
    bool done;
    int events;
    CHECK(post(port, "/v1/completions", COMPLETION_BODY(",\"stream\":true"), &r) && r.status == 200,
          "stream: %d", r.status);
    n200 += r.status == 200;
    char ct[128] = "";
    CHECK(has_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/event-stream"), "stream type '%s'", ct);
    t = sse_text(r.body, "text", finish, sizeof finish, &done, &events);
    CHECK(t && !strcmp(t, golden_completion), "streamed completion '%s', `vkllm run` gives '%s'", t ? t : "",
          golden_completion);
    CHECK(done && !strcmp(finish, "length") && events > 2, "stream end: [DONE] %d, finish %s, %d events", done, finish,
          events);
    free(t);
    resp_free(&r);

    /* stop strings: cut before the first one, finish_reason "stop" */
    const char *cut = strstr(golden_completion, " little");
    if (cut) {
        CHECK(post(port, "/v1/completions", COMPLETION_BODY(",\"stop\":[\"zzz\",\" little\"]"), &r) && r.status == 200,
              "stop: %d", r.status);
        n200 += r.status == 200;
        t = json_str(r.body, "text");
        f = json_str(r.body, "finish_reason");
        CHECK(t && strlen(t) == (size_t)(cut - golden_completion) && !strncmp(t, golden_completion, strlen(t)),
              "stop text '%s'", t ? t : "");
        CHECK(f && !strcmp(f, "stop"), "stop finish_reason %s", f ? f : "");
        free(t), free(f);
        resp_free(&r);
        CHECK(post(port, "/v1/completions", COMPLETION_BODY(",\"stop\":\" little\",\"stream\":true"), &r) && r.status == 200,
              "stop stream: %d", r.status);
        n200 += r.status == 200;
        t = sse_text(r.body, "text", finish, sizeof finish, &done, &events);
        CHECK(t && strlen(t) == (size_t)(cut - golden_completion) && !strncmp(t, golden_completion, strlen(t)) &&
                  !strcmp(finish, "stop"),
              "streamed stop text '%s' finish %s", t ? t : "", finish);
        free(t);
        resp_free(&r);
    }

    /* the prompt as token ids (BOS and "Once upon a time", ../shared/models/expected/) */
    CHECK(post(port, "/v1/completions", "{\"prompt\":[1,403,407,261,378],\"temperature\":0,\"max_tokens\":40}", &r) &&
              r.status == 200, "token ids: %d", r.status);
    n200 += r.status == 200;
    t = json_str(r.body, "text");
    CHECK(t && !strcmp(t, golden_completion), "the prompt as token ids gives '%s'", t ? t : "");
    free(t);
    resp_free(&r);

    /* logit_bias: EOS (id 2) forced ends the completion at once */
    CHECK(post(port, "/v1/completions", COMPLETION_BODY(",\"logit_bias\":{\"2\":100}"), &r) && r.status == 200,
          "logit_bias: %d", r.status);
    n200 += r.status == 200;
    t = json_str(r.body, "text");
    f = json_str(r.body, "finish_reason");
    CHECK(t && !*t && f && !strcmp(f, "stop") && json_num(r.body, "completion_tokens") == 1, "logit_bias: %s", r.body);
    free(t), free(f);
    resp_free(&r);

    /* logprobs */
    CHECK(post(port, "/v1/completions", "{\"prompt\":\"" PROMPT "\",\"temperature\":0,\"max_tokens\":3,\"logprobs\":2}",
               &r) && r.status == 200 && strstr(r.body, "\"token_logprobs\":[") && strstr(r.body, "\"text_offset\":[0,"),
          "completion logprobs: %s", r.body);
    n200 += r.status == 200;
    resp_free(&r);

    /* chat */
    CHECK(post(port, "/v1/chat/completions", CHAT_BODY(""), &r) && r.status == 200, "chat: %d", r.status);
    t = json_str(r.body, "content");
    o = json_str(r.body, "object");
    char *role = json_str(r.body, "role");
    CHECK(t && !strcmp(t, golden_chat), "chat reply '%s', `vkllm run` of the rendered chat gives '%s'", t ? t : "",
          golden_chat);
    CHECK(o && !strcmp(o, "chat.completion") && role && !strcmp(role, "assistant"), "chat object %s role %s",
          o ? o : "", role ? role : "");
    CHECK(strstr(r.body, "\"model\":\"x\"") && strstr(r.body, "\"usage\":{\"prompt_tokens\":"), "chat: %s", r.body);
    free(t), free(o), free(role);
    resp_free(&r);

    CHECK(post(port, "/v1/chat/completions", CHAT_BODY(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"), &r) &&
              r.status == 200, "chat stream: %d", r.status);
    t = sse_text(r.body, "content", finish, sizeof finish, &done, &events);
    CHECK(t && !strcmp(t, golden_chat), "streamed chat '%s', `vkllm run` gives '%s'", t ? t : "", golden_chat);
    CHECK(done && strstr(r.body, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}") &&
              strstr(r.body, "\"object\":\"chat.completion.chunk\"") && strstr(r.body, "\"choices\":[],\"usage\":{"),
          "chat stream shape: %s", r.body);
    free(t);
    resp_free(&r);

    CHECK(post(port, "/v1/chat/completions",
               "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"temperature\":0.8,\"seed\":7,"
               "\"top_k\":20,\"top_p\":0.9,\"min_p\":0.1,\"presence_penalty\":0.5,\"frequency_penalty\":0.5,"
               "\"logprobs\":true,\"top_logprobs\":3,\"n\":1,\"unknown_field\":{\"x\":[1,2]},\"user\":\"u\"}",
               &r) && r.status == 200 && strstr(r.body, "\"logprobs\":{\"content\":[{\"token\":") &&
              strstr(r.body, "\"top_logprobs\":[{"),
          "chat with every sampling field and logprobs: %d %s", r.status, r.body);
    resp_free(&r);
    return n200;
}

/* ------------------------------------------------------------------------ server A: errors */

typedef struct bad_case {
    const char *method, *path, *body;
    int status;
    const char *in_message;  /* a piece of the error message */
} bad_case;

/* Returns the number of completions answered 400. */
static int test_errors(int port)
{
    int n400 = 0;
    static char long_prompt[8192], deep[8192];
    strcpy(long_prompt, "{\"prompt\":\"");
    for (int i = 0; i < 400; i++)
        strcat(long_prompt, "a b ");
    strcat(long_prompt, "\"}");
    for (int i = 0; i < 3000; i++)
        deep[i] = '[';
    const bad_case cases[] = {
        { "POST", "/v1/completions", "{\"prompt\":", 400, "not valid JSON" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\"} {}", 400, "text after" },
        { "POST", "/v1/completions", "[1,2]", 400, "must be a JSON object" },
        { "POST", "/v1/completions", "", 400, "not valid JSON" },
        { "POST", "/v1/completions", deep, 400, "not valid JSON" },
        { "POST", "/v1/completions", "{\"prompt\":\"\xff\xfe\"}", 400, "UTF-8" },
        { "POST", "/v1/completions", "{\"prompt\":\"\xed\xa0\x80\"}", 400, "UTF-8" },
        { "POST", "/v1/completions", "{\"prompt\":\"a\\u0000b\"}", 400, "NUL" },
        { "POST", "/v1/completions", "{\"prompt\":\"\\ud800\"}", 400, "not valid JSON" },
        { "POST", "/v1/completions", "{}", 400, "'prompt' is required" },
        { "POST", "/v1/completions", "{\"prompt\":5}", 400, "'prompt' must be" },
        { "POST", "/v1/completions", "{\"prompt\":[\"a\",\"b\"]}", 400, "only one" },
        { "POST", "/v1/completions", "{\"prompt\":[1,99999]}", 400, "token id" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"temperature\":\"hot\"}", 400, "'temperature' must be a number" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"temperature\":3}", 400, "'temperature' must be a number in" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"top_p\":-0.1}", 400, "'top_p'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"top_k\":2.5}", 400, "'top_k' must be an integer" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"min_p\":2}", 400, "'min_p'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"presence_penalty\":9}", 400, "'presence_penalty'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":1.5}", 400, "'max_tokens' must be an integer" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":1e400}", 400, "'max_tokens'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":-5}", 400, "'max_tokens'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":99999999999999999999999}", 400, "'max_tokens'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"seed\":1e30}", 400, "'seed'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"stream\":\"yes\"}", 400, "'stream' must be a boolean" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"stop\":[1]}", 400, "'stop'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"stop\":\"\"}", 400, "'stop'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"n\":2}", 400, "only n = 1" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"logprobs\":true}", 400, "'logprobs' must be an integer" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"echo\":true}", 400, "'echo'" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"logit_bias\":{\"abc\":1}}", 400, "not a token id" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"logit_bias\":{\"5\":500}}", 400, "[-100, 100]" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"model\":7}", 400, "'model' must be a string" },
        { "POST", "/v1/completions", long_prompt, 400, "the context holds 256" },
        { "POST", "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":300}", 400, "more than the context" },
        { "POST", "/v1/chat/completions", "{\"messages\":\"hi\"}", 400, "'messages' must be an array" },
        { "POST", "/v1/chat/completions", "{\"messages\":[]}", 400, "must not be empty" },
        { "POST", "/v1/chat/completions", "{\"prompt\":\"x\"}", 400, "'messages' is required" },
        { "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", 400, "'messages[0].role'" },
        { "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\"}]}", 400, "'messages[0].content' is missing" },
        { "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "must be a string or" },
        { "POST", "/v1/chat/completions",
          "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}", 400,
          "only text parts" },
        { "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", 400,
          "needs 'logprobs'" },
        { "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,"
          "\"top_logprobs\":50}", 400, "'top_logprobs'" },
        { "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3}", 400, "only n = 1" },
        { "GET", "/v1/nothing", NULL, 404, "Invalid URL" },
        { "POST", "/", "{}", 404, "Invalid URL" },
        { "GET", "/v1/completions", NULL, 405, "not allowed" },
        { "DELETE", "/v1/chat/completions", NULL, 405, "not allowed" },
        { "POST", "/health", "{}", 405, "not allowed" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        resp r;
        bool ok = request(port, c->method, c->path, NULL, c->body, c->body ? strlen(c->body) : 0, &r);
        char *msg = ok ? json_str(r.body, "message") : NULL;
        char *type = ok ? json_str(r.body, "type") : NULL;
        CHECK(ok && r.status == c->status && msg && type && strstr(msg, c->in_message) && strstr(r.body, "\"param\":") &&
                  strstr(r.body, "\"code\":") && !strncmp(r.body, "{\"error\":{", 10),
              "case %zu (%s %s %.60s): want %d '%s', got %d %s", i, c->method, c->path, c->body ? c->body : "",
              c->status, c->in_message, r.status, ok ? r.body : "(no response)");
        n400 += ok && r.status == 400 && !strcmp(c->path, "/v1/completions");
        free(msg);
        free(type);
        resp_free(&r);
    }
    /* the server is still there */
    resp r;
    CHECK(request(port, "GET", "/health", NULL, NULL, 0, &r) && r.status == 200, "/health after the errors: %d", r.status);
    resp_free(&r);
    return n400;
}

/* ------------------------------------------------------------------------ server A: concurrency */

typedef struct client {
    int port, kind;
    int status;
    bool right;       /* the answer was what it should be */
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    resp r;
    c->right = false;
    if (c->kind == 0) {         /* a completion */
        post(c->port, "/v1/completions", COMPLETION_BODY(""), &r);
        char *t = json_str(r.body, "text");
        c->right = r.status == 200 && t && !strcmp(t, golden_completion);
        free(t);
    } else if (c->kind == 1) {  /* a streamed chat */
        post(c->port, "/v1/chat/completions", CHAT_BODY(",\"stream\":true"), &r);
        char finish[32];
        bool done;
        int events;
        char *t = r.body ? sse_text(r.body, "content", finish, sizeof finish, &done, &events) : NULL;
        c->right = r.status == 200 && t && !strcmp(t, golden_chat) && done;
        free(t);
    } else if (c->kind == 2) {  /* malformed JSON */
        post(c->port, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}", &r);
        c->right = r.status == 400;
    } else {                    /* a stream left after its first event */
        memset(&r, 0, sizeof r);
        int fd = http_connect(c->port);
        const char *body = "{\"prompt\":\"" PROMPT "\",\"max_tokens\":200,\"ignore_eos\":true,\"stream\":true}";
        char *raw = NULL;
        size_t n;
        if (fd >= 0 && http_send(fd, "POST", "/v1/completions", NULL, body, strlen(body)) &&
            read_all(fd, &raw, &n, REQ_TIMEOUT_MS, "data: ")) {
            r.status = atoi(raw + 9);
            c->right = r.status == 200;
        }
        free(raw);
        if (fd >= 0)
            close(fd);
    }
    c->status = r.status;
    resp_free(&r);
    return NULL;
}

static void test_concurrent(int port)
{
    enum { N = 16 };
    client cs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        cs[i] = (client){ .port = port, .kind = i % 4 };
        if (pthread_create(&th[i], NULL, client_main, &cs[i]))
            cs[i].status = -2;
    }
    int fives = 0;
    for (int i = 0; i < N; i++) {
        if (cs[i].status != -2)
            pthread_join(th[i], NULL);
        CHECK(cs[i].right, "concurrent client %d (kind %d): status %d, wrong answer", i, cs[i].kind, cs[i].status);
        fives += cs[i].status >= 500;
    }
    CHECK(fives == 0, "%d concurrent requests got a 5xx", fives);
}

/* ------------------------------------------------------------------------ /metrics */

/* the value of the sample whose line starts with name (labels included), -1 when absent */
static double metric(const char *text, const char *name)
{
    size_t l = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, l) && p[l] == ' ')
            return strtod(p + l + 1, NULL);
    return -1;
}

static void test_metrics(int port, int completions_200, int completions_400)
{
    resp r = { 0 };
    /* the streams left by their clients end at the engine's next round */
    double end = now_ms() + 20000;
    for (;;) {
        resp_free(&r);
        if (!request(port, "GET", "/metrics", NULL, NULL, 0, &r) || r.status != 200)
            break;
        if (metric(r.body, "vkllm_requests_processing") == 0 || now_ms() > end)
            break;
        usleep(50000);
    }
    CHECK(r.status == 200 && r.body, "/metrics: %d", r.status);
    if (!r.body)
        return;
    char ct[128] = "";
    CHECK(has_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/plain"), "/metrics type '%s'", ct);
    /* every line: a comment, or NAME{LABELS} VALUE */
    int samples = 0;
    for (char *line = r.body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        size_t len = strcspn(line, "\n");
        if (line[0] == '#') {
            CHECK(!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7), "metrics line '%.*s'", (int)len, line);
            continue;
        }
        const char *sp = memchr(line, ' ', len);
        char *e = NULL;
        double v = sp ? strtod(sp + 1, &e) : 0;
        CHECK(sp && e == line + len && v >= 0 && strncmp(line, "vkllm_", 6) == 0, "metrics line '%.*s'", (int)len, line);
        samples++;
    }
    CHECK(samples > 10, "%d samples", samples);
    double c200 = metric(r.body, "vkllm_requests_total{endpoint=\"/v1/completions\",code=\"200\"}");
    double c400 = metric(r.body, "vkllm_requests_total{endpoint=\"/v1/completions\",code=\"400\"}");
    CHECK(c200 == completions_200, "completions answered 200: %g, want %d", c200, completions_200);
    CHECK(c400 == completions_400, "completions answered 400: %g, want %d", c400, completions_400);
    CHECK(metric(r.body, "vkllm_requests_total{endpoint=\"/v1/chat/completions\",code=\"500\"}") < 0 &&
              metric(r.body, "vkllm_requests_total{endpoint=\"/v1/completions\",code=\"500\"}") < 0,
          "500s in /metrics");
    CHECK(metric(r.body, "vkllm_requests_total{endpoint=\"other\",code=\"404\"}") == 2, "404 count");
    CHECK(metric(r.body, "vkllm_queue_depth") == 0 && metric(r.body, "vkllm_requests_processing") == 0,
          "queue %g processing %g", metric(r.body, "vkllm_queue_depth"), metric(r.body, "vkllm_requests_processing"));
    CHECK(metric(r.body, "vkllm_generation_tokens_total") > 300 && metric(r.body, "vkllm_prompt_tokens_total") > 50 &&
              metric(r.body, "vkllm_generation_tokens_per_second") > 0 && metric(r.body, "vkllm_kv_cache_bytes") > 0 &&
              metric(r.body, "vkllm_sequences") == 4,
          "token counts in /metrics:\n%s", r.body);
    CHECK(metric(r.body, "vkllm_streams_cancelled_total") == 4, "streams cancelled %g, want 4",
          metric(r.body, "vkllm_streams_cancelled_total"));
    CHECK(metric(r.body, "vkllm_kv_blocks_total") == 4 * 256 / 16 && metric(r.body, "vkllm_kv_blocks_used") == 0 &&
              metric(r.body, "vkllm_kv_blocks_cached") > 0 && metric(r.body, "vkllm_kv_block_size") == 16 &&
              metric(r.body, "vkllm_passes_total") > 0 && metric(r.body, "vkllm_batch_size_avg") >= 1 &&
              metric(r.body, "vkllm_prefix_cache_queries_total") >= metric(r.body, "vkllm_prefix_cache_hits_total") &&
              metric(r.body, "vkllm_prefix_cache_hit_rate") >= 0 && metric(r.body, "vkllm_prefix_cache_hit_rate") <= 1,
          "the KV pool in /metrics:\n%s", r.body);
    resp_free(&r);
}

/* ------------------------------------------------------------------------ server B: limits */

/* Starts a long stream (ignore_eos) and returns its socket once its first event came (-1 on failure). */
static int open_long_stream(int port, const char *auth)
{
    int fd = http_connect(port);
    const char *body = "{\"prompt\":\"" PROMPT "\",\"max_tokens\":1800,\"ignore_eos\":true,\"stream\":true}";
    char *raw = NULL;
    size_t n;
    bool ok = fd >= 0 && http_send(fd, "POST", "/v1/completions", auth, body, strlen(body)) &&
              read_all(fd, &raw, &n, REQ_TIMEOUT_MS, "data: ") && !strncmp(raw, "HTTP/1.1 200", 12);
    free(raw);
    if (!ok && fd >= 0)
        close(fd);
    return ok ? fd : -1;
}

static double metric_now(int port, const char *auth, const char *name)
{
    resp r;
    double v = -1;
    if (request(port, "GET", "/metrics", auth, NULL, 0, &r) && r.status == 200)
        v = metric(r.body, name);
    resp_free(&r);
    return v;
}

static void test_limits(int port)
{
    const char *auth = "Authorization: Bearer sekret-key\r\n";
    resp r;
    /* the key */
    const char *body = "{\"prompt\":\"" PROMPT "\",\"max_tokens\":4,\"temperature\":0}";
    const char *wrong[] = { NULL, "Authorization: Bearer sekret-kez\r\n", "Authorization: Bearer sekret\r\n",
                            "Authorization: Bearer sekret-key-and-more\r\n", "Authorization: Basic c2VrcmV0\r\n" };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        request(port, "POST", "/v1/completions", wrong[i], body, strlen(body), &r);
        char *code = json_str(r.body, "code");
        CHECK(r.status == 401 && code && !strcmp(code, "invalid_api_key"), "key %zu: %d %s", i, r.status,
              r.body ? r.body : "");
        free(code);
        resp_free(&r);
    }
    CHECK(request(port, "GET", "/v1/models", NULL, NULL, 0, &r) && r.status == 401, "/v1/models without a key: %d",
          r.status);
    resp_free(&r);
    CHECK(request(port, "GET", "/health", NULL, NULL, 0, &r) && r.status == 200, "/health without a key: %d", r.status);
    resp_free(&r);
    CHECK(request(port, "POST", "/v1/completions", auth, body, strlen(body), &r) && r.status == 200, "with the key: %d",
          r.status);
    resp_free(&r);

    /* 413: over --max-body 4096 */
    static char big[6000];
    memset(big, ' ', sizeof big - 1);
    memcpy(big, "{\"prompt\":\"x\"}", 14);
    CHECK(request(port, "POST", "/v1/completions", auth, big, strlen(big), &r) && r.status == 413 &&
              strstr(r.body, "\"error\""),
          "413: %d", r.status);
    resp_free(&r);
    /* the same without a Content-Length: chunks past the limit are dropped, then 413 */
    int cfd = http_connect(port);
    char chead[512];
    snprintf(chead, sizeof chead,
             "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sTransfer-Encoding: chunked\r\n\r\n"
             "%zx\r\n", auth, strlen(big));
    char *craw = NULL;
    size_t cn = 0;
    bool cok = cfd >= 0 && send_all(cfd, chead, strlen(chead)) && send_all(cfd, big, strlen(big)) &&
               send_all(cfd, "\r\n0\r\n\r\n", 7) && read_all(cfd, &craw, &cn, REQ_TIMEOUT_MS, NULL);
    CHECK(cok && cn > 12 && !strncmp(craw, "HTTP/1.1 413", 12), "413 for a chunked body: %s", craw ? craw : "");
    free(craw);
    if (cfd >= 0)
        close(cfd);

    /* 503 when the one sequence is busy and the one queue place taken */
    int a = open_long_stream(port, auth);
    CHECK(a >= 0, "a long stream");
    int q = http_connect(port);
    const char *qbody = "{\"prompt\":\"" PROMPT "\",\"max_tokens\":2,\"stream\":true}";
    CHECK(q >= 0 && http_send(q, "POST", "/v1/completions", auth, qbody, strlen(qbody)), "a queued request");
    double end = now_ms() + 20000;
    while (metric_now(port, auth, "vkllm_queue_depth") != 1 && now_ms() < end)
        usleep(20000);
    CHECK(request(port, "POST", "/v1/completions", auth, body, strlen(body), &r) && r.status == 503, "503: %d %s",
          r.status, r.body ? r.body : "");
    char ra[32] = "";
    CHECK(has_header(&r, "Retry-After", ra, sizeof ra) && atoi(ra) >= 1, "Retry-After '%s'", ra);
    resp_free(&r);
    /* the client of the long stream leaves: its sequence goes to the queued request at once */
    double t0 = now_ms();
    if (a >= 0)
        close(a);
    char *raw = NULL;
    size_t n;
    CHECK(q >= 0 && read_all(q, &raw, &n, 20000, NULL) && strstr(raw, "data: [DONE]"), "the queued request: %s",
          raw ? raw : "");
    double waited = now_ms() - t0;
    CHECK(waited < 3000, "the queued request waited %.0f ms after the stream's client left", waited);
    free(raw);
    if (q >= 0)
        close(q);
    CHECK(metric_now(port, auth, "vkllm_streams_cancelled_total") == 1, "streams cancelled");

    /* a client that leaves while its plain (not streamed) request generates frees the sequence too */
    int l = http_connect(port);
    const char *lbody = "{\"prompt\":\"" PROMPT "\",\"max_tokens\":1800,\"ignore_eos\":true}";
    CHECK(l >= 0 && http_send(l, "POST", "/v1/completions", auth, lbody, strlen(lbody)), "a long plain request");
    end = now_ms() + 20000;
    while (metric_now(port, auth, "vkllm_requests_processing") != 1 && now_ms() < end)
        usleep(20000);
    usleep(200000);
    if (l >= 0)
        close(l);
    t0 = now_ms();
    CHECK(request(port, "POST", "/v1/completions", auth, body, strlen(body), &r) && r.status == 200,
          "after a client left: %d", r.status);
    waited = now_ms() - t0;
    CHECK(waited < 3000, "a request waited %.0f ms after the plain request's client left", waited);
    resp_free(&r);
    CHECK(metric_now(port, auth, "vkllm_requests_total{endpoint=\"/v1/completions\",code=\"499\"}") == 1,
          "the request whose client left is counted as 499");

    /* idle timeout (--timeout 2): an idle connection is closed; a generation longer than that is not */
    int idle = http_connect(port);
    double ti = now_ms();
    char *ib = NULL;
    size_t in;
    read_all(idle, &ib, &in, 15000, NULL);
    double idle_ms = now_ms() - ti;
    CHECK(in == 0 && idle_ms > 1500 && idle_ms < 10000, "the idle connection was closed after %.0f ms (%zu bytes)",
          idle_ms, in);
    free(ib);
    close(idle);
    const char *longer = "{\"prompt\":\"" PROMPT "\",\"max_tokens\":1500,\"ignore_eos\":true}";
    t0 = now_ms();
    CHECK(request(port, "POST", "/v1/completions", auth, longer, strlen(longer), &r) && r.status == 200 &&
              json_num(r.body, "completion_tokens") == 1500,
          "a long generation: %d", r.status);
    printf("test_serve: 1500 tokens in %.0f ms (the idle timeout is 2 s)\n", now_ms() - t0);
    resp_free(&r);
}

/* ------------------------------------------------------------------------ continuous batching */

/* Prompts of their own (and their `vkllm run` texts) for the batched and preemption tests. */
#define N_OWN 4
static const char *own_prompt[N_OWN] = { "The little dog", "Lily and Ben went to the", "One day, a big red ball",
                                         "Tim had a toy" };
static char *own_golden[N_OWN];

static bool make_own_goldens(void)
{
    for (int i = 0; i < N_OWN; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/own%d.txt", dir, i);
        if (!write_file(p, own_prompt[i]) || !(own_golden[i] = run_golden(p, N_GEN, false)))
            return false;
    }
    return true;
}

/* One request on its own thread: the answer's text (streamed or not) against what it should be. */
typedef struct job_client {
    int port;
    const char *path, *field;  /* "text" (completions) or "content" (chat) */
    char body[1024];
    bool stream;
    const char *want;          /* the text it must give */
    int status;
    bool right;
    char *got;
} job_client;

static void *job_main(void *arg)
{
    job_client *c = arg;
    resp r;
    post(c->port, c->path, c->body, &r);
    c->status = r.status;
    if (c->stream) {
        char finish[32];
        bool done = false;
        int events;
        c->got = r.body ? sse_text(r.body, c->field, finish, sizeof finish, &done, &events) : NULL;
        c->right = r.status == 200 && done && c->got && !strcmp(c->got, c->want);
    } else {
        c->got = json_str(r.body, c->field);
        c->right = r.status == 200 && c->got && !strcmp(c->got, c->want);
    }
    resp_free(&r);
    return NULL;
}

/* Runs the clients at once; returns how many gave the right answer. */
static int run_jobs(job_client *cs, int n, const char *what)
{
    pthread_t th[64];
    bool started[64];
    for (int i = 0; i < n; i++)
        started[i] = !pthread_create(&th[i], NULL, job_main, &cs[i]);
    int right = 0;
    for (int i = 0; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        CHECK(cs[i].right, "%s: request %d (%s%s): status %d, '%s', want '%s'", what, i, cs[i].path,
              cs[i].stream ? ", streamed" : "", cs[i].status, cs[i].got ? cs[i].got : "(none)", cs[i].want);
        right += cs[i].right;
        free(cs[i].got);
        cs[i].got = NULL;
    }
    return right;
}

static void own_completion(job_client *c, int port, int i, bool stream)
{
    *c = (job_client){ .port = port, .path = "/v1/completions", .field = "text", .stream = stream,
                       .want = own_golden[i] };
    snprintf(c->body, sizeof c->body, "{\"prompt\":\"%s\",\"temperature\":0,\"max_tokens\":%d%s}", own_prompt[i], N_GEN,
             stream ? ",\"stream\":true" : "");
}

/* Waits (20 s at most) for the server to be idle: nothing running or queued, no KV block held. */
static bool wait_idle(int port)
{
    double end = now_ms() + 20000;
    while (now_ms() < end) {
        if (metric_now(port, NULL, "vkllm_requests_processing") == 0 && metric_now(port, NULL, "vkllm_queue_depth") == 0 &&
            metric_now(port, NULL, "vkllm_kv_blocks_used") == 0)
            return true;
        usleep(50000);
    }
    return false;
}

/* Eight requests at once on --parallel 8: each one's text is what `vkllm run` gives it alone, and
 * the passes were batched (more than one row each, on average). */
static void test_eight(int port)
{
    job_client cs[8];
    for (int i = 0; i < N_OWN; i++)
        own_completion(&cs[i], port, i, i % 2 == 1);
    cs[4] = (job_client){ .port = port, .path = "/v1/completions", .field = "text", .want = golden_completion };
    snprintf(cs[4].body, sizeof cs[4].body, "%s", COMPLETION_BODY(""));
    cs[5] = cs[4];
    cs[5].stream = true;
    snprintf(cs[5].body, sizeof cs[5].body, "%s", COMPLETION_BODY(",\"stream\":true"));
    cs[6] = (job_client){ .port = port, .path = "/v1/chat/completions", .field = "content", .want = golden_chat };
    snprintf(cs[6].body, sizeof cs[6].body, "%s", CHAT_BODY(""));
    cs[7] = cs[6];
    cs[7].stream = true;
    snprintf(cs[7].body, sizeof cs[7].body, "%s", CHAT_BODY(",\"stream\":true"));
    int right = run_jobs(cs, 8, "8 at once");
    double passes = metric_now(port, NULL, "vkllm_passes_total"), rows = metric_now(port, NULL, "vkllm_batch_rows_total");
    CHECK(passes > 0 && rows / passes > 2, "8 requests at once: %g rows in %g passes: not batched", rows, passes);
    printf("test_serve: 8 requests at once: %d right, %g rows in %g passes\n", right, rows, passes);
}

/* A long system prompt, twice: the second request takes the first one's KV blocks from the prefix
 * cache (usage's cached_tokens, /metrics' hits) and answers the same. */
static void test_prefix(int port)
{
    static char body[4096];
    char sys[2048] = "";
    for (int i = 0; i < 3; i++)
        strcat(sys, "You are a kind storyteller who tells short happy stories about a little cat and her friends. ");
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},{\"role\":\"user\",\"content\":\"%s\"}],"
             "\"temperature\":0,\"max_tokens\":12}", sys, "Tell me a story");
    double hits0 = metric_now(port, NULL, "vkllm_prefix_cache_hits_total");
    resp r1, r2;
    CHECK(post(port, "/v1/chat/completions", body, &r1) && r1.status == 200, "prefix: first request %d %s", r1.status,
          r1.body ? r1.body : "");
    double prompt = json_num(r1.body, "prompt_tokens"), cached1 = json_num(r1.body, "cached_tokens");
    /* another user message after the same system prompt: the system prompt's blocks are shared */
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},{\"role\":\"user\",\"content\":\"%s\"}],"
             "\"temperature\":0,\"max_tokens\":12}", sys, "What did the cat find?");
    CHECK(post(port, "/v1/chat/completions", body, &r2) && r2.status == 200, "prefix: second request %d", r2.status);
    double cached2 = json_num(r2.body, "cached_tokens");
    /* the first request again: all its whole blocks are cached, and the answer is the same */
    resp r3;
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},{\"role\":\"user\",\"content\":\"%s\"}],"
             "\"temperature\":0,\"max_tokens\":12}", sys, "Tell me a story");
    CHECK(post(port, "/v1/chat/completions", body, &r3) && r3.status == 200, "prefix: third request %d", r3.status);
    double cached3 = json_num(r3.body, "cached_tokens");
    char *t1 = json_str(r1.body, "content"), *t3 = json_str(r3.body, "content");
    /* (the first request may find the chat template's first block cached) */
    CHECK(prompt > 100 && cached1 <= 16 && cached2 >= prompt - 48 && cached2 < prompt && cached3 >= prompt - 16 &&
              cached3 < prompt,
          "prefix: %g prompt tokens, cached %g, then %g (another user message), then %g (the same)", prompt, cached1,
          cached2, cached3);
    CHECK(t1 && t3 && !strcmp(t1, t3), "prefix: the cached prompt gives '%s', evaluated '%s'", t3 ? t3 : "",
          t1 ? t1 : "");
    double hits = metric_now(port, NULL, "vkllm_prefix_cache_hits_total");
    CHECK(hits - hits0 >= (cached2 + cached3) / 16, "prefix: %g block hits in /metrics", hits - hits0);
    CHECK(metric_now(port, NULL, "vkllm_prefix_cache_hit_rate") > 0, "prefix: hit rate 0");
    printf("test_serve: prefix cache: %g prompt tokens, %g then %g cached\n", prompt, cached2, cached3);
    free(t1), free(t3);
    resp_free(&r1);
    resp_free(&r2);
    resp_free(&r3);
}

/* The load test: 32 clients at once, 3 requests each (96 in all): streams and plain answers that
 * must be `vkllm run`'s text, sampled streams, clients that leave early, malformed requests. No 5xx,
 * every valid one answered, the KV pool back to no block used, all within a minute. */
typedef struct load_client {
    int port, id;
    int valid, answered, fives, wrong;
} load_client;

static void *load_main(void *arg)
{
    load_client *c = arg;
    for (int k = 0; k < 3; k++) {
        int kind = (c->id * 3 + k) % 8;
        resp r = { 0 };
        if (kind <= 3) { /* greedy: own prompts (streamed or not), the chat */
            job_client j;
            if (kind < 2)
                own_completion(&j, c->port, (c->id + k) % N_OWN, kind == 1);
            else {
                j = (job_client){ .port = c->port, .path = "/v1/chat/completions", .field = "content",
                                  .want = golden_chat, .stream = kind == 3 };
                snprintf(j.body, sizeof j.body, "%s",
                         kind == 3 ? CHAT_BODY(",\"stream\":true") : CHAT_BODY(""));
            }
            job_main(&j);
            c->valid++;
            c->answered += j.status == 200;
            c->wrong += !j.right;
            c->fives += j.status >= 500;
            if (!j.right)
                fprintf(stderr, "test_serve: load client %d kind %d: status %d '%s'\n", c->id, kind, j.status,
                        j.got ? j.got : "");
            free(j.got);
            continue;
        }
        if (kind == 4) { /* sampled, streamed */
            char body[256];
            snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"temperature\":0.9,\"top_p\":0.95,\"max_tokens\":24,"
                                        "\"stream\":true}", own_prompt[c->id % N_OWN]);
            post(c->port, "/v1/completions", body, &r);
            c->valid++;
            c->answered += r.status == 200 && r.body && strstr(r.body, "data: [DONE]");
            c->fives += r.status >= 500;
        } else if (kind == 5 || kind == 6) { /* a stream left after its first event; a plain request left */
            int fd = http_connect(c->port);
            const char *body = kind == 5
                                   ? "{\"prompt\":\"" PROMPT "\",\"max_tokens\":150,\"ignore_eos\":true,\"stream\":true}"
                                   : "{\"prompt\":\"" PROMPT "\",\"max_tokens\":150,\"ignore_eos\":true}";
            char *raw = NULL;
            size_t n;
            if (fd >= 0 && http_send(fd, "POST", "/v1/completions", NULL, body, strlen(body))) {
                if (kind == 5) {
                    if (read_all(fd, &raw, &n, REQ_TIMEOUT_MS, "data: "))
                        c->fives += atoi(raw + 9) >= 500;
                } else {
                    usleep(30000);
                }
            }
            free(raw);
            if (fd >= 0)
                close(fd);
        } else { /* malformed: bad JSON, a field out of range */
            post(c->port, "/v1/completions",
                 c->id % 2 ? "{\"prompt\":\"x\",\"max_tokens\":" : "{\"prompt\":\"x\",\"top_k\":\"a\"}", &r);
            c->fives += r.status >= 500;
            c->wrong += r.status != 400;
        }
        resp_free(&r);
    }
    return NULL;
}

static void test_load(int port)
{
    enum { N = 32 };
    load_client cs[N];
    pthread_t th[N];
    bool started[N];
    double t0 = now_ms();
    for (int i = 0; i < N; i++) {
        cs[i] = (load_client){ .port = port, .id = i };
        started[i] = !pthread_create(&th[i], NULL, load_main, &cs[i]);
    }
    int valid = 0, answered = 0, fives = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        CHECK(started[i], "load client %d did not start", i);
        valid += cs[i].valid;
        answered += cs[i].answered;
        fives += cs[i].fives;
        wrong += cs[i].wrong;
    }
    double ms = now_ms() - t0;
    CHECK(fives == 0, "load: %d answers were 5xx", fives);
    CHECK(answered == valid && wrong == 0, "load: %d of %d valid requests answered, %d wrong answers", answered, valid,
          wrong);
    CHECK(ms < 60000, "load: %.0f ms for 96 requests", ms);
    CHECK(wait_idle(port), "load: the server is not idle with no KV block used after the load");
    CHECK(metric_now(port, NULL, "vkllm_requests_total{endpoint=\"/v1/completions\",code=\"500\"}") < 0 &&
              metric_now(port, NULL, "vkllm_requests_total{endpoint=\"/v1/chat/completions\",code=\"500\"}") < 0 &&
              metric_now(port, NULL, "vkllm_requests_total{endpoint=\"/v1/completions\",code=\"503\"}") < 0,
          "load: 5xx in /metrics");
    printf("test_serve: load: 32 clients, 96 requests (%d valid, all answered) in %.0f ms, batch size %.2f on average\n",
           valid, ms, metric_now(port, NULL, "vkllm_batch_size_avg"));
}

/* --parallel 4 with a pool of 8 blocks (128 positions): the requests cannot all hold their KV blocks
 * at once, so the newest are preempted and evaluated again later; every answer is still right. */
static void test_preemption(int port)
{
    job_client cs[6];
    for (int i = 0; i < N_OWN; i++)
        own_completion(&cs[i], port, i, i % 2 == 0);
    cs[4] = (job_client){ .port = port, .path = "/v1/chat/completions", .field = "content", .want = golden_chat,
                          .stream = true };
    snprintf(cs[4].body, sizeof cs[4].body, "%s", CHAT_BODY(",\"stream\":true"));
    cs[5] = (job_client){ .port = port, .path = "/v1/completions", .field = "text", .want = golden_completion };
    snprintf(cs[5].body, sizeof cs[5].body, "%s", COMPLETION_BODY(""));
    int right = run_jobs(cs, 6, "preemption");
    double pre = metric_now(port, NULL, "vkllm_preemptions_total");
    CHECK(pre > 0, "preemption: none happened (%g)", pre);
    CHECK(wait_idle(port), "preemption: KV blocks still used at the end");
    CHECK(metric_now(port, NULL, "vkllm_kv_blocks_total") == 8, "preemption: the pool is not 8 blocks");
    /* a request that cannot fit the pool at all is refused with a clear message */
    resp r;
    CHECK(post(port, "/v1/completions", "{\"prompt\":\"" PROMPT "\",\"max_tokens\":124}", &r) && r.status == 400 &&
              strstr(r.body, "KV cache holds (128 positions; --kv-blocks)"),
          "a request larger than the pool: %d %s", r.status, r.body ? r.body : "");
    resp_free(&r);
    /* a chat without max_tokens that never ends (ignore_eos) alone fills the whole pool: it ends there,
     * "length", as at a full context (129 tokens: the last one sampled has no position) */
    CHECK(post(port, "/v1/chat/completions",
               "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":0,\"ignore_eos\":true}", &r) &&
              r.status == 200 && strstr(r.body, "\"finish_reason\":\"length\"") &&
              json_num(r.body, "prompt_tokens") + json_num(r.body, "completion_tokens") == 129,
          "a generation that fills the pool: %d %s", r.status, r.body ? r.body : "");
    resp_free(&r);
    CHECK(wait_idle(port), "preemption: KV blocks still used after filling the pool");
    printf("test_serve: preemption: %d of 6 right, %g preemptions\n", right, pre);
}

int main(void)
{
    bin = getenv("VKLLM_BIN");
    if (!bin || access(bin, X_OK)) {
        fprintf(stderr, "test_serve: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(model, sizeof model, "%s", tu_model_path("gguf/stories260K.gguf"));
    snprintf(dir, sizeof dir, "/tmp/vkllm_serve_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_serve: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    if (!make_goldens()) {
        CHECK(0, "cannot get the golden texts from `vkllm run`");
        return tu_finish("test_serve");
    }
    server a, b;
    const char *a_args[] = { "--parallel", "4", "--ctx-size", "256", "--batch-size", "8", NULL };
    if (server_start(&a, "a", a_args)) {
        int ok_completions = test_answers(a.port);
        int bad_completions = test_errors(a.port);
        test_concurrent(a.port);
        /* the concurrent clients: 4 completions and 4 streams left early (200 too) */
        test_metrics(a.port, ok_completions + 8, bad_completions);
        CHECK(server_stop(&a) == 0, "server A did not stop with status 0 on SIGTERM");
    } else {
        CHECK(0, "server A did not start");
    }
    const char *b_args[] = { "--parallel", "1", "--queue-size", "1", "--api-key", "sekret-key", "--max-body", "4096",
                             "--timeout", "2", NULL };
    if (server_start(&b, "b", b_args)) {
        test_limits(b.port);
        /* SIGTERM in the middle of a stream: the stream ends, the server exits 0 */
        int s = open_long_stream(b.port, "Authorization: Bearer sekret-key\r\n");
        CHECK(s >= 0, "a stream before SIGTERM");
        double t0 = now_ms();
        CHECK(server_stop(&b) == 0, "server B did not stop with status 0 on SIGTERM in the middle of a stream");
        printf("test_serve: server B stopped in %.0f ms\n", now_ms() - t0);
        char *raw = NULL;
        size_t n = 0;
        CHECK(s >= 0 && read_all(s, &raw, &n, 10000, NULL) && strstr(raw, "the server is stopping"),
              "the stream cut by SIGTERM ends with an error event: %s", raw ? raw + (n > 300 ? n - 300 : 0) : "");
        free(raw);
        if (s >= 0)
            close(s);
    } else {
        CHECK(0, "server B did not start");
    }
    /* server C: continuous batching of 8 sequences */
    server c, d;
    CHECK(make_own_goldens(), "cannot get the golden texts of the batching tests from `vkllm run`");
    const char *c_args[] = { "--parallel", "8", "--ctx-size", "256", "--batch-size", "16", NULL };
    if (own_golden[N_OWN - 1] && server_start(&c, "c", c_args)) {
        test_eight(c.port);
        test_prefix(c.port);
        test_load(c.port);
        CHECK(server_stop(&c) == 0, "server C did not stop with status 0 on SIGTERM");
    } else {
        CHECK(0, "server C did not start");
    }
    /* server D: a KV pool too small for its requests at once, and passes of 3 rows: fewer than the
     * sequences that decode (they take turns, and a row is left for a prompt) */
    const char *d_args[] = { "--parallel", "4", "--ctx-size", "256", "--batch-size", "3", "--kv-blocks", "8", NULL };
    if (own_golden[N_OWN - 1] && server_start(&d, "d", d_args)) {
        test_preemption(d.port);
        CHECK(server_stop(&d) == 0, "server D did not stop with status 0 on SIGTERM");
    } else {
        CHECK(0, "server D did not start");
    }
    for (int i = 0; i < N_OWN; i++)
        free(own_golden[i]);
    char cmd[128], out[16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, out, sizeof out);
    free(golden_completion);
    free(golden_chat);
    return tu_finish("test_serve");
}
