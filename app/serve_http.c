/* serve_http.c: the HTTP server of `vkllm serve` (serve_http.h), on libmicrohttpd with one thread per
 * connection.
 *
 * A generation request is parsed and checked on its connection's thread (serve_api.c), queued in the
 * engine, then waited for on that thread: a plain response is written when the job ends; a stream is
 * a chunked response whose content callback waits for the job's next output and writes it as
 * server-sent events. While waiting, the connection's socket is polled every 50 ms for the client
 * having gone (POLLRDHUP), so that a client who leaves cancels its generation at once and frees its
 * sequence; a failed write does the same through the response's free callback. The idle timeout is off
 * while a job runs (generation is not idleness) and set again, which restarts it, when the job ends. */
#include "serve_http.h"

#include <microhttpd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "serve_metrics.h"

#define POLL_MS 50

struct srv_http {
    struct MHD_Daemon *d;
    srv_engine *e;
    const srv_api *a;
    char *api_key;
    size_t key_len, max_body;
    unsigned timeout_s;
    atomic_int stopping;
    atomic_int live_streams; /* streams whose last event has not been handed to the connection yet */
    srv_metrics m;
    int port;
    char url[300];
    long long started;   /* unix time, /v1/models' "created" */
};

/* One request (MHD's per-request pointer). */
typedef struct req {
    srv_http *h;
    enum srv_endpoint ep;
    bool embed;          /* /v1/embeddings (counted as "other" in /metrics: serve_metrics.h has no label for it) */
    int status;          /* what was answered, for the metrics (0: nothing yet) */
    bool post;
    bool too_large;      /* the body passed max_body: the rest is read and dropped, then 413 */
    char *body;
    size_t n, cap;
    size_t dropped;
} req;

/* A streamed response: owned by the MHD response, freed by its free callback. */
typedef struct stream {
    srv_http *h;
    struct MHD_Connection *conn;
    int fd;
    srv_job *job;
    srv_request r;
    char id[64];
    long long created;
    char *buf;           /* SSE bytes not yet handed to MHD: buf[off..n) */
    size_t n, off, cap;
    bool finished;       /* the job ended and everything is in buf */
    size_t text_offset;
} stream;

/* ------------------------------------------------------------------------ helpers */

static enum srv_endpoint endpoint_of(const char *url)
{
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions"))
        return SRV_EP_CHAT;
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/completions"))
        return SRV_EP_COMPLETIONS;
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models"))
        return SRV_EP_MODELS;
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/health"))
        return SRV_EP_HEALTH;
    if (!strcmp(url, "/metrics"))
        return SRV_EP_METRICS;
    if (!strcmp(url, "/v1/embeddings") || !strcmp(url, "/embeddings"))
        return SRV_EP_EMBEDDINGS;
    return SRV_EP_OTHER;
}

static enum MHD_Result send_text(struct MHD_Connection *c, req *q, int status, char *text, const char *type,
                                 const char *hdr, const char *hdr_value)
{
    const char *fallback = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
    if (!text) {
        status = 500;
        type = "application/json";
    }
    struct MHD_Response *r =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(strlen(fallback), (void *)fallback, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (hdr)
        MHD_add_response_header(r, hdr, hdr_value);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    q->status = status;
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, req *q, int status, char *json)
{
    return send_text(c, q, status, json, "application/json", NULL, NULL);
}

static enum MHD_Result send_error(struct MHD_Connection *c, req *q, const srv_error *err)
{
    const char *hdr = NULL, *val = NULL;
    if (err->status == 503)
        hdr = MHD_HTTP_HEADER_RETRY_AFTER, val = "1";
    else if (err->status == 401)
        hdr = MHD_HTTP_HEADER_WWW_AUTHENTICATE, val = "Bearer";
    return send_text(c, q, err->status, srv_error_json(err), "application/json", hdr, val);
}

static bool authorized(const srv_http *h, struct MHD_Connection *c)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v || strncasecmp(v, "Bearer ", 7))
        return false;
    v += 7;
    while (*v == ' ')
        v++;
    /* in constant time: every byte of the key is compared whatever the token */
    size_t n = strlen(v);
    volatile unsigned char diff = n != h->key_len;
    for (size_t i = 0; i < h->key_len; i++)
        diff |= (unsigned char)h->api_key[i] ^ (unsigned char)(i < n ? v[i] : 0);
    return diff == 0;
}

static int conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* false when the client has closed its side (or the socket failed) */
static bool client_alive(int fd)
{
    if (fd < 0)
        return true;
    struct pollfd p = { .fd = fd, .events = POLLRDHUP };
    if (poll(&p, 1, 0) <= 0)
        return true;
    return !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void set_timeout(struct MHD_Connection *c, unsigned s)
{
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s);
}

/* ------------------------------------------------------------------------ GET endpoints */

static enum MHD_Result get_health(struct MHD_Connection *c, req *q)
{
    srv_engine_stats st;
    srv_engine_get_stats(q->h->e, &st);
    bool stopping = atomic_load(&q->h->stopping), ok = !stopping && !st.device_lost;
    char *s = malloc(256);
    if (s)
        snprintf(s, 256, "{\"status\":\"%s\",\"slots_idle\":%d,\"slots_processing\":%d,\"queue\":%d}",
                 st.device_lost ? "unhealthy: device lost" : stopping ? "unavailable" : "ok",
                 st.n_slots - st.active - st.preempted, st.active, st.queued);
    return send_json(c, q, ok ? 200 : 503, s);
}

static enum MHD_Result get_metrics(struct MHD_Connection *c, req *q)
{
    srv_engine_stats st;
    srv_engine_get_stats(q->h->e, &st);
    return send_text(c, q, 200, srv_metrics_text(&q->h->m, &st), "text/plain; version=0.0.4; charset=utf-8", NULL,
                     NULL);
}

/* ------------------------------------------------------------------------ streams */

static bool buf_put(stream *st, const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
    if (st->n + la + lb + lc > st->cap) {
        size_t cap = st->cap ? st->cap : 1024;
        while (cap < st->n + la + lb + lc)
            cap *= 2;
        char *p = realloc(st->buf, cap);
        if (!p)
            return false;
        st->buf = p;
        st->cap = cap;
    }
    memcpy(st->buf + st->n, a, la);
    if (b)
        memcpy(st->buf + st->n + la, b, lb);
    if (c)
        memcpy(st->buf + st->n + la + lb, c, lc);
    st->n += la + lb + lc;
    return true;
}

/* One event: "data: JSON\n\n" (json freed). */
static bool put_event(stream *st, char *json)
{
    if (!json)
        return false;
    bool ok = buf_put(st, "data: ", json, "\n\n");
    free(json);
    return ok;
}

/* The job's new output as events; at the end the last chunk, usage when asked, and [DONE]. */
static bool put_update(stream *st, const srv_update *u)
{
    const srv_api *a = st->h->a;
    if (u->n_text || u->n_toks)
        if (!put_event(st, srv_json_chunk(a, &st->r, st->id, st->created, u->text ? u->text : "", u->n_text, u->toks,
                                          u->n_toks, NULL, false, &st->text_offset)))
            return false;
    if (!u->done)
        return true;
    st->finished = true;
    if (u->finish == SRV_FINISH_ERROR || u->finish == SRV_FINISH_CANCELLED) {
        srv_error err;
        if (u->finish == SRV_FINISH_ERROR)
            srv_error_set(&err, 500, "server_error", NULL, NULL, "generation failed: %s", u->error);
        else
            srv_error_set(&err, 503, "unavailable_error", NULL, NULL, "%s", u->error);
        return put_event(st, srv_error_json(&err));
    }
    if (!put_event(st, srv_json_chunk(a, &st->r, st->id, st->created, "", 0, NULL, 0, srv_finish_reason(u->finish),
                                      false, &st->text_offset)))
        return false;
    if (st->r.include_usage && !put_event(st, srv_json_usage_chunk(a, &st->r, st->id, st->created, u)))
        return false;
    return buf_put(st, "data: [DONE]\n\n", NULL, NULL);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream *st = cls;
    for (;;) {
        if (st->off < st->n) {
            size_t k = st->n - st->off < max ? st->n - st->off : max;
            memcpy(buf, st->buf + st->off, k);
            st->off += k;
            if (st->off == st->n)
                st->off = st->n = 0;
            return (ssize_t)k;
        }
        if (st->finished) {
            set_timeout(st->conn, st->h->timeout_s);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        /* (when the server stops, the engine ends the job: its error event is the stream's last) */
        if (!client_alive(st->fd)) {
            srv_metrics_stream_cancelled(&st->h->m);
            srv_job_cancel(st->job);
            st->finished = true;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        srv_update u;
        if (srv_job_poll(st->job, POLL_MS, &u)) {
            bool ok = put_update(st, &u);
            srv_update_free(&u);
            if (!ok) {
                srv_job_cancel(st->job);
                st->finished = true;
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
    }
}

static void stream_free(void *cls)
{
    stream *st = cls;
    atomic_fetch_sub(&st->h->live_streams, 1);
    if (!st->finished)
        srv_metrics_stream_cancelled(&st->h->m); /* a write failed: the client left */
    srv_job_cancel(st->job);                     /* a no-op when it has ended */
    srv_job_release(st->job);
    srv_request_free(&st->r);
    free(st->buf);
    free(st);
}

static enum MHD_Result start_stream(struct MHD_Connection *c, req *q, srv_request *r, srv_job *j)
{
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        srv_job_cancel(j);
        srv_job_release(j);
        srv_request_free(r);
        return send_json(c, q, 500, NULL);
    }
    st->h = q->h;
    atomic_fetch_add(&q->h->live_streams, 1);
    st->conn = c;
    st->fd = conn_fd(c);
    st->job = j;
    st->r = *r;
    st->created = (long long)time(NULL);
    srv_make_id(st->id, sizeof st->id, r->kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
    if (r->kind == SRV_CHAT &&
        !put_event(st, srv_json_chunk(q->h->a, &st->r, st->id, st->created, "", 0, NULL, 0, NULL, true, &st->text_offset))) {
        stream_free(st);
        return send_json(c, q, 500, NULL);
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st,
                                                                  stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    set_timeout(c, 0);
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    q->status = 200;
    return rc;
}

/* ------------------------------------------------------------------------ generation */

/* Waits for j's end on the connection's thread, gathering its output, and answers. */
static enum MHD_Result wait_and_answer(struct MHD_Connection *c, req *q, srv_request *r, srv_job *j)
{
    srv_http *h = q->h;
    int fd = conn_fd(c);
    char *text = NULL;
    size_t n_text = 0;
    srv_token *toks = NULL;
    int64_t n_toks = 0;
    srv_update end = { 0 };
    bool oom = false, left = false;
    set_timeout(c, 0);
    for (;;) {
        if (atomic_load(&h->stopping) || !client_alive(fd)) {
            left = !atomic_load(&h->stopping);
            srv_job_cancel(j);
            if (left)
                break;
        }
        srv_update u;
        if (!srv_job_poll(j, POLL_MS, &u))
            continue;
        if (u.n_text && !oom) {
            char *p = realloc(text, n_text + u.n_text + 1);
            if (p) {
                memcpy(p + n_text, u.text, u.n_text);
                n_text += u.n_text;
                p[n_text] = 0;
                text = p;
            } else {
                oom = true;
            }
        }
        if (u.n_toks && !oom) {
            srv_token *p = realloc(toks, sizeof *toks * (size_t)(n_toks + u.n_toks));
            if (p) {
                memcpy(p + n_toks, u.toks, sizeof *toks * (size_t)u.n_toks);
                n_toks += u.n_toks;
                toks = p;
            } else {
                oom = true;
            }
        }
        bool done = u.done;
        if (done) {
            end = u;
            end.text = NULL;
            end.toks = NULL;
        }
        srv_update_free(&u);
        if (done)
            break;
    }
    srv_job_release(j);
    enum MHD_Result rc;
    if (left) {
        q->status = 499;
        rc = MHD_NO; /* close the connection */
    } else if (oom) {
        rc = send_json(c, q, 500, NULL);
    } else if (end.finish == SRV_FINISH_ERROR || end.finish == SRV_FINISH_CANCELLED) {
        srv_error err;
        if (end.finish == SRV_FINISH_ERROR)
            srv_error_set(&err, 500, "server_error", NULL, NULL, "generation failed: %s", end.error);
        else
            srv_error_set(&err, 503, "unavailable_error", NULL, NULL, "%s", end.error);
        rc = send_error(c, q, &err);
    } else {
        char id[64];
        srv_make_id(id, sizeof id, r->kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
        rc = send_json(c, q, 200,
                       srv_json_response(h->a, r, id, (long long)time(NULL), text ? text : "", n_text, toks, n_toks, &end));
    }
    set_timeout(c, h->timeout_s);
    free(text);
    free(toks);
    srv_request_free(r);
    return rc;
}

static enum MHD_Result generate(struct MHD_Connection *c, req *q)
{
    srv_http *h = q->h;
    srv_request r;
    srv_error err;
    if (!srv_parse_request(h->a, q->ep == SRV_EP_CHAT ? SRV_CHAT : SRV_COMPLETION, q->body ? q->body : "", q->n, &r,
                           &err)) {
        srv_request_free(&r);
        return send_error(c, q, &err);
    }
    srv_job *j = srv_job_create(r.ids, r.n_ids, &r.gen);
    if (!j) {
        srv_request_free(&r);
        return send_json(c, q, 500, NULL);
    }
    enum srv_submit s = atomic_load(&h->stopping) ? SRV_SUBMIT_STOPPING : srv_engine_submit(h->e, j);
    if (s != SRV_SUBMIT_OK) {
        srv_job_release(j);
        srv_request_free(&r);
        srv_error_set(&err, 503, "unavailable_error", NULL, NULL, "%s",
                      s == SRV_SUBMIT_QUEUE_FULL ? "the server is busy: every sequence is generating and the queue is "
                                                   "full; retry later"
                                                 : "the server is stopping");
        return send_error(c, q, &err);
    }
    if (r.stream)
        return start_stream(c, q, &r, j);
    return wait_and_answer(c, q, &r, j);
}

/* ------------------------------------------------------------------------ embeddings */

/* Checked here, embedded on the engine's worker (which owns the device), answered at once. */
static enum MHD_Result embed(struct MHD_Connection *c, req *q)
{
    srv_http *h = q->h;
    srv_embed_request r;
    srv_error err;
    if (!srv_parse_embed_request(h->a, q->body ? q->body : "", q->n, &r, &err)) {
        srv_embed_request_free(&r);
        return send_error(c, q, &err);
    }
    float *vecs = malloc(sizeof *vecs * (size_t)r.n_inputs * (size_t)h->a->dim);
    if (!vecs) {
        srv_embed_request_free(&r);
        return send_json(c, q, 500, NULL);
    }
    int rc = 0;
    char msg[512] = "";
    set_timeout(c, 0);
    enum srv_submit s = atomic_load(&h->stopping) ? SRV_SUBMIT_STOPPING
                                                   : srv_engine_embed(h->e, (const int32_t *const *)r.ids, r.n_ids,
                                                                      r.n_inputs, true, vecs, &rc, msg, sizeof msg);
    set_timeout(c, h->timeout_s);
    char *json = NULL;
    bool finite = true;
    if (s != SRV_SUBMIT_OK)
        srv_error_set(&err, 503, "unavailable_error", NULL, NULL, "%s",
                      s == SRV_SUBMIT_QUEUE_FULL ? "the server is busy: the queue of embeddings requests is full; "
                                                   "retry later"
                                                 : "the server is stopping");
    else if (rc == LM_ERR_INVALID || rc == LM_ERR_CONTEXT_FULL)
        srv_error_set(&err, 400, "invalid_request_error", NULL, "input", "%s", msg);
    else if (rc)
        srv_error_set(&err, 500, "server_error", NULL, NULL, "embedding failed: %s", msg);
    else if (!(json = srv_json_embeddings(h->a, &r, vecs, &finite)) && !finite)
        srv_error_set(&err, 500, "server_error", NULL, NULL,
                      "embedding failed: the model's output is not finite (NaN or infinite)");
    free(vecs);
    srv_embed_request_free(&r);
    if (s != SRV_SUBMIT_OK || rc || !finite)
        return send_error(c, q, &err);
    return send_json(c, q, 200, json);
}

/* ------------------------------------------------------------------------ the handler */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_http *h = cls;
    req *q = *con_cls;
    srv_error err;
    if (!q) {
        if (!(q = calloc(1, sizeof *q)))
            return MHD_NO;
        q->h = h;
        *con_cls = q;
        q->ep = endpoint_of(url);
        q->embed = q->ep == SRV_EP_EMBEDDINGS;
        q->post = q->embed || q->ep == SRV_EP_CHAT || q->ep == SRV_EP_COMPLETIONS;
        if (q->ep == SRV_EP_OTHER) {
            srv_error_set(&err, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%.16s %.200s)", method, url);
            return send_error(c, q, &err);
        }
        bool get_ok = !q->post && (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
        if (q->post ? strcmp(method, "POST") : !get_ok) {
            srv_error_set(&err, 405, "invalid_request_error", NULL, NULL, "%.16s is not allowed on %s (use %s)", method,
                          srv_endpoint_path(q->ep), q->post ? "POST" : "GET");
            return send_text(c, q, 405, srv_error_json(&err), "application/json", MHD_HTTP_HEADER_ALLOW,
                             q->post ? "POST" : "GET, HEAD");
        }
        if (h->api_key && q->ep != SRV_EP_HEALTH && !authorized(h, c)) {
            srv_error_set(&err, 401, "invalid_request_error", "invalid_api_key", NULL,
                          "a missing or wrong API key: send the header 'Authorization: Bearer KEY'");
            return send_error(c, q, &err);
        }
        if (!q->post)
            return q->ep == SRV_EP_HEALTH ? get_health(c, q)
                   : q->ep == SRV_EP_METRICS ? get_metrics(c, q)
                                             : send_json(c, q, 200, srv_json_models(h->a, h->started));
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->max_body) {
            srv_error_set(&err, 413, "invalid_request_error", NULL, NULL,
                          "the request body is %.20s bytes: at most %zu are accepted", cl, h->max_body);
            return send_error(c, q, &err);
        }
        return MHD_YES; /* the body comes next */
    }
    if (*upload_size) {
        size_t k = *upload_size;
        *upload_size = 0;
        /* libmicrohttpd 0.9.75 cannot answer before the body has been read: a body too large (sent
         * without a Content-Length) is read and dropped, up to a bound past which the connection is
         * closed */
        if (q->too_large || q->n + k > h->max_body) {
            q->too_large = true;
            q->dropped += k;
            return q->dropped > 64 * (size_t)1 << 20 ? MHD_NO : MHD_YES;
        }
        if (q->n + k + 1 > q->cap) {
            size_t cap = q->cap ? q->cap : 4096;
            while (cap < q->n + k + 1)
                cap *= 2;
            char *p = realloc(q->body, cap);
            if (!p)
                return MHD_NO;
            q->body = p;
            q->cap = cap;
        }
        memcpy(q->body + q->n, upload, k);
        q->n += k;
        q->body[q->n] = 0;
        return MHD_YES;
    }
    if (q->status)
        return MHD_YES;
    if (q->too_large) {
        srv_error_set(&err, 413, "invalid_request_error", NULL, NULL,
                      "the request body is larger than the %zu bytes accepted", h->max_body);
        return send_error(c, q, &err);
    }
    return q->embed ? embed(c, q) : generate(c, q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    srv_http *h = cls;
    req *q = *con_cls;
    if (!q)
        return;
    if (q->status)
        srv_metrics_count(&h->m, q->ep, q->status);
    free(q->body);
    free(q);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fputs("vkllm: serve: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* ------------------------------------------------------------------------ the server */

int srv_http_start(const srv_http_opts *o, srv_engine *e, const srv_api *a, srv_http **out, char *err, size_t errlen)
{
    *out = NULL;
    srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    h->e = e;
    h->a = a;
    h->max_body = o->max_body;
    h->timeout_s = o->timeout_s;
    h->started = (long long)time(NULL);
    atomic_init(&h->stopping, 0);
    atomic_init(&h->live_streams, 0);
    if (o->api_key) {
        h->api_key = strdup(o->api_key);
        h->key_len = strlen(o->api_key);
    }
    srv_metrics_init(&h->m);
    if (o->external) {
        h->d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request, h,
                                MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL, MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT,
                                o->max_connections, MHD_OPTION_END);
        if (!h->d) {
            snprintf(err, errlen, "cannot start the HTTP server");
            srv_metrics_destroy(&h->m);
            free(h->api_key);
            free(h);
            return 1;
        }
        snprintf(h->url, sizeof h->url, "http://external");
        *out = h;
        return 0;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV },
                    *ai = NULL;
    int g = getaddrinfo(o->host, port, &hints, &ai);
    if (g || !ai) {
        snprintf(err, errlen, "--host %s: %s", o->host, g ? gai_strerror(g) : "no address");
        srv_metrics_destroy(&h->m);
        free(h->api_key);
        free(h);
        return 1;
    }
    bool v6 = ai->ai_family == AF_INET6;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_CONNECTION_LIMIT, o->max_connections, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                            MHD_OPTION_END);
    char numeric[INET6_ADDRSTRLEN + 1] = "";
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, numeric, sizeof numeric, NULL, 0, NI_NUMERICHOST))
        snprintf(numeric, sizeof numeric, "%s", o->host);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen on %s port %d (in use, or not an address of this machine?)", o->host,
                 o->port);
        srv_metrics_destroy(&h->m);
        free(h->api_key);
        free(h);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : o->port;
    snprintf(h->url, sizeof h->url, v6 ? "http://[%s]:%d" : "http://%s:%d", numeric, h->port);
    *out = h;
    return 0;
}

int srv_http_port(const srv_http *h)
{
    return h->port;
}

const char *srv_http_url(const srv_http *h)
{
    return h->url;
}

void srv_http_stopping(srv_http *h)
{
    if (h)
        atomic_store(&h->stopping, 1);
}

bool srv_http_add_connection(srv_http *h, int fd)
{
    /* libmicrohttpd wants the peer's address: a loopback one stands for it */
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return MHD_add_connection(h->d, fd, (const struct sockaddr *)&peer, sizeof peer) == MHD_YES;
}

void srv_http_run(srv_http *h)
{
    MHD_run(h->d);
}

unsigned srv_http_connections(const srv_http *h)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di ? di->num_connections : 0;
}

void srv_http_stop(srv_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    /* the engine has ended every job: give the streams up to 3 s to deliver their last event before the
     * connections close */
    for (int i = 0; i < 300 && atomic_load(&h->live_streams) > 0; i++)
        usleep(10000);
    MHD_stop_daemon(h->d);
    srv_metrics_destroy(&h->m);
    free(h->api_key);
    free(h);
}
