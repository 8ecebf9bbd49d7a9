/* serve_metrics.c: the /metrics counters and their Prometheus text (serve_metrics.h). */
#include "serve_metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int codes[SRV_N_CODES] = { 200, 400, 401, 404, 405, 413, 499, 500, 503, 0 /* other */ };
static const char *const paths[SRV_EP_COUNT] = { "/v1/chat/completions", "/v1/completions", "/v1/models", "/health",
                                                 "/metrics", "/v1/embeddings", "other" };

const char *srv_endpoint_path(enum srv_endpoint ep)
{
    return ep >= 0 && ep < SRV_EP_COUNT ? paths[ep] : "other";
}

void srv_metrics_init(srv_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(srv_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

static int code_index(int status)
{
    for (int i = 0; i < SRV_N_CODES - 1; i++)
        if (codes[i] == status)
            return i;
    return SRV_N_CODES - 1;
}

void srv_metrics_count(srv_metrics *m, enum srv_endpoint ep, int status)
{
    pthread_mutex_lock(&m->mu);
    m->requests[ep][code_index(status)]++;
    if (status == 503)
        m->rejected_full++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_stream_cancelled(srv_metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->streams_cancelled++;
    pthread_mutex_unlock(&m->mu);
}

typedef struct text {
    char *s;
    size_t n, cap;
    bool oom;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = t->oom ? 0 : vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (t->oom || k < 0)
            return;
        if ((size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)k + 1;
        char *p = realloc(t->s, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
}

static void metric(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *srv_metrics_text(srv_metrics *m, const srv_engine_stats *st)
{
    text t = { .cap = 4096 };
    if (!(t.s = malloc(t.cap)))
        return NULL;
    t.s[0] = 0;
    pthread_mutex_lock(&m->mu);
    metric(&t, "vkllm_requests_total", "counter", "HTTP requests answered, by endpoint and status code (499: the client left first).");
    for (int ep = 0; ep < SRV_EP_COUNT; ep++)
        for (int c = 0; c < SRV_N_CODES; c++)
            if (m->requests[ep][c] || (c == 0 && ep != SRV_EP_OTHER)) {
                char code[16];
                if (codes[c])
                    snprintf(code, sizeof code, "%d", codes[c]);
                else
                    snprintf(code, sizeof code, "other");
                put(&t, "vkllm_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n", paths[ep], code,
                    (unsigned long long)m->requests[ep][c]);
            }
    metric(&t, "vkllm_streams_cancelled_total", "counter", "Streamed generations whose client disconnected before the end.");
    put(&t, "vkllm_streams_cancelled_total %llu\n", (unsigned long long)m->streams_cancelled);
    metric(&t, "vkllm_requests_rejected_total", "counter", "Requests refused with 503 (the queue was full or the server stopping).");
    put(&t, "vkllm_requests_rejected_total %llu\n", (unsigned long long)m->rejected_full);
    pthread_mutex_unlock(&m->mu);

    metric(&t, "vkllm_prompt_tokens_total", "counter", "Prompt tokens of the requests served (cached ones included).");
    put(&t, "vkllm_prompt_tokens_total %lld\n", (long long)st->prompt_tokens);
    metric(&t, "vkllm_prompt_tokens_cached_total", "counter", "Prompt tokens taken from the prefix cache instead of evaluated.");
    put(&t, "vkllm_prompt_tokens_cached_total %lld\n", (long long)st->cached_tokens);
    metric(&t, "vkllm_generation_tokens_total", "counter", "Tokens generated.");
    put(&t, "vkllm_generation_tokens_total %lld\n", (long long)st->gen_tokens);
    metric(&t, "vkllm_prompt_seconds_total", "counter", "Time spent evaluating prompts.");
    put(&t, "vkllm_prompt_seconds_total %.6f\n", st->prompt_s);
    metric(&t, "vkllm_generation_seconds_total", "counter", "Time sequences spent generating (summed over sequences).");
    put(&t, "vkllm_generation_seconds_total %.6f\n", st->gen_s);
    metric(&t, "vkllm_prompt_tokens_per_second", "gauge", "Prompt tokens evaluated per second, over all requests so far.");
    put(&t, "vkllm_prompt_tokens_per_second %.3f\n",
        st->prompt_s > 0 ? (double)(st->prompt_tokens - st->cached_tokens) / st->prompt_s : 0.0);
    metric(&t, "vkllm_generation_tokens_per_second", "gauge", "Tokens generated per second of one sequence, over all requests so far.");
    put(&t, "vkllm_generation_tokens_per_second %.3f\n", st->gen_s > 0 ? (double)st->gen_tokens / st->gen_s : 0.0);
    metric(&t, "vkllm_queue_depth", "gauge", "Requests waiting for a sequence (preempted ones included).");
    put(&t, "vkllm_queue_depth %d\n", st->queued);
    metric(&t, "vkllm_requests_processing", "gauge", "Requests being generated now.");
    put(&t, "vkllm_requests_processing %d\n", st->active);
    metric(&t, "vkllm_sequences", "gauge", "Sequences that can generate at once (--parallel), batched together.");
    put(&t, "vkllm_sequences %d\n", st->n_slots);
    metric(&t, "vkllm_kv_cache_bytes", "gauge", "Device memory of the KV cache (one pool of blocks for all sequences).");
    put(&t, "vkllm_kv_cache_bytes %llu\n", (unsigned long long)st->kv_bytes);
    metric(&t, "vkllm_kv_cache_used_bytes", "gauge", "The part of the KV cache in blocks that running sequences hold.");
    put(&t, "vkllm_kv_cache_used_bytes %llu\n", (unsigned long long)st->kv_used_bytes);
    metric(&t, "vkllm_kv_blocks_total", "gauge", "KV cache blocks in the pool (--kv-blocks).");
    put(&t, "vkllm_kv_blocks_total %d\n", st->kv_blocks);
    metric(&t, "vkllm_kv_block_size", "gauge", "Positions per KV cache block.");
    put(&t, "vkllm_kv_block_size %d\n", st->kv_block_size);
    metric(&t, "vkllm_kv_blocks_used", "gauge", "KV cache blocks that running sequences hold.");
    put(&t, "vkllm_kv_blocks_used %d\n", st->kv_used);
    metric(&t, "vkllm_kv_tokens", "gauge",
           "Tokens the running sequences hold (kv_blocks_used * kv_block_size over it: KV memory per live token).");
    put(&t, "vkllm_kv_tokens %lld\n", (long long)st->kv_tokens);
    metric(&t, "vkllm_kv_blocks_cached", "gauge", "KV cache blocks of finished sequences kept for the prefix cache.");
    put(&t, "vkllm_kv_blocks_cached %d\n", st->kv_cached);
    metric(&t, "vkllm_prefix_cache_queries_total", "counter", "KV blocks looked up in the prefix cache by new sequences.");
    put(&t, "vkllm_prefix_cache_queries_total %lld\n", (long long)st->prefix_queries);
    metric(&t, "vkllm_prefix_cache_hits_total", "counter", "KV blocks found in the prefix cache (their tokens not evaluated again).");
    put(&t, "vkllm_prefix_cache_hits_total %lld\n", (long long)st->prefix_hits);
    metric(&t, "vkllm_prefix_cache_hit_rate", "gauge", "Prefix cache hits / queries, so far (0 before any query).");
    put(&t, "vkllm_prefix_cache_hit_rate %.6f\n",
        st->prefix_queries > 0 ? (double)st->prefix_hits / (double)st->prefix_queries : 0.0);
    metric(&t, "vkllm_preemptions_total", "counter", "Sequences preempted for lack of KV blocks (evaluated again later).");
    put(&t, "vkllm_preemptions_total %lld\n", (long long)st->preemptions);
    metric(&t, "vkllm_passes_total", "counter", "Batched passes evaluated (a decode row per generating sequence, prompt chunks).");
    put(&t, "vkllm_passes_total %lld\n", (long long)st->passes);
    metric(&t, "vkllm_batch_rows_total", "counter", "Rows (tokens) of all passes together.");
    put(&t, "vkllm_batch_rows_total %lld\n", (long long)st->batch_rows);
    metric(&t, "vkllm_batch_size", "gauge", "Rows of the last pass.");
    put(&t, "vkllm_batch_size %d\n", st->last_batch);
    metric(&t, "vkllm_batch_size_avg", "gauge", "Rows per pass, over all passes so far.");
    put(&t, "vkllm_batch_size_avg %.3f\n", st->passes > 0 ? (double)st->batch_rows / (double)st->passes : 0.0);
    metric(&t, "vkllm_jobs_total", "counter", "Generations by how they ended.");
    put(&t, "vkllm_jobs_total{result=\"done\"} %lld\n", (long long)st->jobs_done);
    put(&t, "vkllm_jobs_total{result=\"cancelled\"} %lld\n", (long long)st->jobs_cancelled);
    put(&t, "vkllm_jobs_total{result=\"failed\"} %lld\n", (long long)st->jobs_failed);
    if (t.oom) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
