/* serve_metrics.h: the counters `vkllm serve` shows at /metrics (Prometheus text format 0.0.4):
 * requests by endpoint and status, with the engine's token counts, speeds, queue, KV pool (blocks used
 * and cached, the prefix cache's hits), preemptions and batch sizes. */
#ifndef VKLLM_SERVE_METRICS_H
#define VKLLM_SERVE_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "serve_engine.h"

enum srv_endpoint { SRV_EP_CHAT = 0, SRV_EP_COMPLETIONS, SRV_EP_MODELS, SRV_EP_HEALTH, SRV_EP_METRICS,
                    SRV_EP_EMBEDDINGS, SRV_EP_OTHER, SRV_EP_COUNT };
#define SRV_N_CODES 10

typedef struct srv_metrics {
    pthread_mutex_t mu;
    uint64_t requests[SRV_EP_COUNT][SRV_N_CODES];
    uint64_t streams_cancelled;  /* clients that left in the middle of a stream */
    uint64_t rejected_full;      /* 503s for a full queue */
} srv_metrics;

/* The path /metrics labels an endpoint with. */
const char *srv_endpoint_path(enum srv_endpoint ep);
void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
/* One request answered with an HTTP status (499: the client left before the answer). */
void srv_metrics_count(srv_metrics *m, enum srv_endpoint ep, int status);
void srv_metrics_stream_cancelled(srv_metrics *m);
/* The whole /metrics text (malloc'd), NULL when out of memory. */
char *srv_metrics_text(srv_metrics *m, const srv_engine_stats *st);

#endif
