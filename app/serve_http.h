/* serve_http.h: the HTTP side of `vkllm serve` on libmicrohttpd: routes, the API key, body limits,
 * server-sent events, disconnects. One thread per connection; generation happens in the engine. */
#ifndef VKLLM_SERVE_HTTP_H
#define VKLLM_SERVE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "serve_api.h"
#include "serve_engine.h"

typedef struct srv_http srv_http;

typedef struct srv_http_opts {
    const char *host;          /* address to bind (numeric or a name; IPv6 allowed) */
    int port;                  /* 0: any free port (srv_http_port says which) */
    const char *api_key;       /* NULL: no key */
    size_t max_body;           /* request bodies larger than this get 413 */
    unsigned timeout_s;        /* idle connections are closed after this (0: never) */
    unsigned max_connections;  /* connections at once */
    bool external;             /* no listening socket and no threads of its own: connections are handed
                                * over by srv_http_add_connection and served by srv_http_run on the
                                * caller's thread, without logging (tests and fuzzing; the engine must then
                                * never block) */
} srv_http_opts;

/* Starts listening; the engine and api must outlive the server. */
int srv_http_start(const srv_http_opts *o, srv_engine *e, const srv_api *a, srv_http **out, char *err, size_t errlen);
int srv_http_port(const srv_http *h);
/* "http://HOST:PORT" as bound */
const char *srv_http_url(const srv_http *h);
/* Stop in two steps: srv_http_stopping() makes every waiting request give up (their jobs cancelled) and
 * new ones get 503; srv_http_stop() closes every connection, joins their threads and frees h. */
void srv_http_stopping(srv_http *h);
/* external servers: serves fd (a connected stream socket, which h then owns and closes); false when
 * refused (the connection limit, out of memory) */
bool srv_http_add_connection(srv_http *h, int fd);
/* external servers: one round of reading, answering and writing on every connection, without waiting */
void srv_http_run(srv_http *h);
/* the connections open now */
unsigned srv_http_connections(const srv_http *h);
void srv_http_stop(srv_http *h);

#endif
