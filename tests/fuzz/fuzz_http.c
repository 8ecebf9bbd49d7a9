/* fuzz_http.c: the HTTP layer of `vkllm serve` (app/serve_http.c on libmicrohttpd, with serve_api.c
 * and serve_metrics.c compiled in): the input's bytes are what a client sends on one connection
 * (request lines, headers, bodies, several requests kept alive or pipelined, chunked uploads), and
 * whatever comes back is read until the server closes. The engine is fake_engine.c: jobs end at once,
 * as the first two bytes say, so the server runs "external" on this thread (srv_http_run) and a run
 * is deterministic. When the server has nothing more to do the client half-closes, as one that leaves
 * (a stream in flight is then cancelled).
 *
 * Byte 0: bit 0 the server with an API key ("fuzz-key", bodies up to 64 KiB; the other takes 4 KiB),
 * bits 1-2 what submits answer (OK twice, queue full, stopping), bits 3-4 how jobs end (stop, length,
 * error, cancelled), bit 5 NaN embeddings, bit 6 embeddings fail as invalid input, bit 7 the device
 * is lost. Byte 1: tokens a job generates (& 15). The rest: the bytes sent. FUZZ_HTTP_ECHO=1 writes
 * what the server answers to stdout. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "fake_engine.h"
#include "serve_api.h"
#include "serve_http.h"

#include "fuzz_api.h"

static lm_vocab *vocab;
static lm_tmpl *tmpl;
static srv_api api;
static srv_http *servers[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_api_init(&api, &vocab, &tmpl, "fuzz_http");
    char err[512];
    for (int i = 0; i < 2; i++) {
        srv_http_opts o = { .api_key = i ? "fuzz-key" : NULL, .max_body = i ? 64 << 10 : 4 << 10,
                            .max_connections = 4, .external = true };
        /* the engine is never dereferenced by the fake: any non-NULL pointer stands for it */
        if (srv_http_start(&o, (srv_engine *)&api, &api, &servers[i], err, sizeof err)) {
            fprintf(stderr, "fuzz_http: %s\n", err);
            exit(1);
        }
    }
    return 0;
}

/* bytes written to the socket that the server has not read yet */
static int unread(int fd)
{
    int n = 0;
    return ioctl(fd, SIOCOUTQ, &n) ? 0 : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const enum srv_submit submits[4] = { SRV_SUBMIT_OK, SRV_SUBMIT_OK, SRV_SUBMIT_QUEUE_FULL, SRV_SUBMIT_STOPPING };
    static const enum srv_finish finishes[4] = { SRV_FINISH_STOP, SRV_FINISH_LENGTH, SRV_FINISH_ERROR, SRV_FINISH_CANCELLED };
    srv_http *h = servers[data[0] & 1];
    fake_engine.submit = submits[data[0] >> 1 & 3];
    fake_engine.finish = finishes[data[0] >> 3 & 3];
    fake_engine.embed_nan = data[0] >> 5 & 1;
    fake_engine.embed_rc = data[0] >> 6 & 1 ? LM_ERR_INVALID : LM_OK;
    fake_engine.device_lost = data[0] >> 7;
    fake_engine.n_gen = data[1] & 15;
    const uint8_t *req = data + 2;
    size_t len = size - 2, off = 0;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        perror("socketpair");
        abort();
    }
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    if (!srv_http_add_connection(h, sv[1])) {
        fprintf(stderr, "fuzz_http: the connection was refused\n");
        abort();
    }
    char buf[16384];
    static int echo = -1; /* FUZZ_HTTP_ECHO=1: what the server answers goes to stdout (to reproduce a case) */
    if (echo < 0)
        echo = getenv("FUZZ_HTTP_ECHO") && !strcmp(getenv("FUZZ_HTTP_ECHO"), "1");
    bool shut = false, eof = false;
    int idle = 0;
    for (long round = 0;; round++) {
        bool progress = false;
        if (off < len) {
            ssize_t k = send(sv[0], req + off, len - off, MSG_NOSIGNAL);
            if (k > 0)
                off += (size_t)k, progress = true;
            else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                off = len; /* the server closed: the rest is never sent */
        }
        srv_http_run(h);
        while (!eof) {
            ssize_t k = recv(sv[0], buf, sizeof buf, 0);
            if (k > 0 && echo)
                fwrite(buf, 1, (size_t)k, stdout);
            if (k > 0)
                progress = true;
            else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                eof = true;
            if (k <= 0)
                break;
        }
        if (eof && srv_http_connections(h) == 0)
            break;
        if (progress || unread(sv[0]) > 0 || off < len)
            idle = 0;
        else if (++idle >= 3 && !shut) {
            shutdown(sv[0], SHUT_WR); /* the client leaves */
            shut = true;
            idle = 0;
        }
        if (round > 200000) {
            fprintf(stderr, "fuzz_http: the server does not close the connection\n");
            abort();
        }
    }
    close(sv[0]);
    return 0;
}
