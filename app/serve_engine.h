/* serve_engine.h: the generation engine behind `vkllm serve`, apart from HTTP and JSON.
 *
 * Requests (jobs: prompt token ids and generation settings) wait in a bounded queue; one worker thread
 * owns the device and one batched context (lm_ctx: a pool of paged KV blocks shared by up to n_parallel
 * sequences) and serves the jobs by continuous batching: between two passes it admits queued jobs into
 * the running batch (each one an lm_ctx sequence), and every pass is one lm_ctx_eval of one decode row
 * for each generating sequence plus chunks of the prompts still being evaluated, n_batch rows at most.
 * A new sequence first takes the cached KV blocks that hold the start of its prompt (a shared system
 * prompt, the earlier turns of a chat); a finished one is freed, its full blocks left cached. When the
 * pool runs out the newest sequence is preempted: freed and recomputed later, its stream continuing
 * where it was.
 *
 * The HTTP side creates a job, submits it, then polls it for output: final text (complete UTF-8, cut
 * before a stop string, never a piece of one), per-token log-probabilities when asked, and at the end
 * the finish reason and counts. A job is reference-counted between the two sides; cancelling it (a
 * client that left) frees its sequence before the next pass. Embeddings requests (srv_engine_embed) wait
 * in a queue of their own and run on the worker too, one between two passes. */
#ifndef VKLLM_SERVE_ENGINE_H
#define VKLLM_SERVE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm.h"

#define SRV_MAX_STOP 16
#define SRV_MAX_TOP_LOGPROBS 20
#define SRV_MAX_BIAS 300

typedef struct srv_engine srv_engine;
typedef struct srv_job srv_job;

typedef struct srv_engine_opts {
    int n_parallel;      /* sequences generated at once (1..256) */
    int32_t n_ctx;       /* positions per sequence; 0: min(n_ctx_train, 4096) */
    int32_t n_batch;     /* rows per pass (decode rows and prompt chunks together); 0: 256 */
    int32_t n_kv_blocks; /* KV blocks (16 positions each) in the pool; 0: room for n_parallel sequences of n_ctx */
    bool kv_f32;         /* f32 KV cache */
    int queue_size;      /* jobs waiting for a sequence at most, >= 0 (submit refuses past it) */
} srv_engine_opts;

/* How one job generates. */
typedef struct srv_gen {
    lm_sampler_params sampling;
    int32_t max_tokens;               /* tokens to generate at most; <= 0: until the context is full */
    const char *stop[SRV_MAX_STOP];   /* stop strings (copied by srv_job_create), n_stop of them */
    int n_stop;
    int n_logprobs;                   /* -1: no log-probabilities; else alternatives per token (0..20) */
    bool ignore_eos;                  /* end-of-generation tokens do not end it (llama.cpp's ignore_eos) */
    int n_bias;                       /* OpenAI's logit_bias: added to the logits before sampling */
    int32_t bias_id[SRV_MAX_BIAS];
    float bias[SRV_MAX_BIAS];
} srv_gen;

/* One generated token's log-probability (natural log, of the model's distribution before sampling) and
 * the n_top most likely alternatives. */
typedef struct srv_token {
    int32_t id;
    float logprob;
    int n_top;
    int32_t top_id[SRV_MAX_TOP_LOGPROBS];
    float top_lp[SRV_MAX_TOP_LOGPROBS];
} srv_token;

enum srv_finish {
    SRV_RUNNING = 0,
    SRV_FINISH_STOP,      /* end-of-generation token or a stop string */
    SRV_FINISH_LENGTH,    /* max_tokens, or the context is full */
    SRV_FINISH_CANCELLED, /* srv_job_cancel, or the engine shut down */
    SRV_FINISH_ERROR,     /* a device error: the message says what */
};

/* What srv_job_poll hands over: output new since the last poll (malloc'd; srv_update_free frees it) and,
 * once done, the end. */
typedef struct srv_update {
    char *text;           /* final text (NUL-terminated), or NULL */
    size_t n_text;
    srv_token *toks;      /* log-probability entries (when asked for), or NULL */
    int64_t n_toks;
    bool done;
    enum srv_finish finish;           /* when done */
    int64_t prompt_tokens;            /* when done: the prompt's tokens */
    int64_t cached_tokens;            /* of those, taken from the prefix cache */
    int64_t completion_tokens;        /* tokens generated (an end-of-generation token included) */
    double prompt_s, gen_s;           /* prompt evaluation and generation wall time */
    char error[512];                  /* SRV_FINISH_ERROR / CANCELLED: why */
} srv_update;

enum srv_submit { SRV_SUBMIT_OK = 0, SRV_SUBMIT_QUEUE_FULL, SRV_SUBMIT_STOPPING };

/* A snapshot for /metrics. */
typedef struct srv_engine_stats {
    int n_slots, active, queued;  /* sequences at most; running; waiting (preempted ones included) */
    int preempted;                /* of the waiting, those preempted (they keep their slot) */
    uint64_t kv_bytes;            /* KV pool memory */
    uint64_t kv_used_bytes;       /* the part in blocks that sequences hold now */
    int32_t kv_blocks, kv_block_size, kv_used, kv_cached; /* the pool (lm_ctx_kv_stats) after the last pass */
    int64_t kv_tokens;            /* tokens the running sequences hold then */
    int64_t prefix_queries, prefix_hits;  /* blocks looked up in the prefix cache, and found */
    int64_t passes, batch_rows;   /* passes evaluated, and their rows all together */
    int32_t last_batch;           /* rows of the last pass */
    int64_t preemptions;          /* sequences freed for lack of KV blocks (recomputed later) */
    int64_t prompt_tokens, cached_tokens, gen_tokens;   /* totals of finished and running jobs */
    double prompt_s, gen_s;       /* totals */
    int64_t jobs_done, jobs_cancelled, jobs_failed;
    bool device_lost;             /* the device is gone: the server is unhealthy */
} srv_engine_stats;

/* CONSTRUCTOR: creates the batched context on m's device and starts the worker. m must outlive the engine. */
int srv_engine_create(lm_model *m, const srv_engine_opts *o, srv_engine **out, char *err, size_t errlen);
/* Stops the worker: every queued and running job ends SRV_FINISH_CANCELLED ("the server is stopping"),
 * later submits are refused. Jobs may still be polled, cancelled and released afterwards. */
void srv_engine_shutdown(srv_engine *e);
/* DESTRUCTOR: shuts down if needed and frees the context. Every job must have been released (by the
 * HTTP side) before; NULL is a no-op. */
void srv_engine_destroy(srv_engine *e);
int32_t srv_engine_n_ctx(const srv_engine *e);
/* Positions the whole KV pool holds: what one request (prompt and generation) can use at most. */
int64_t srv_engine_kv_positions(const srv_engine *e);
void srv_engine_get_stats(srv_engine *e, srv_engine_stats *st);

/* A job for ids[0..n) (n >= 1; copied) with g (its stop strings copied); NULL when out of memory. The
 * caller holds one reference. */
srv_job *srv_job_create(const int32_t *ids, int64_t n, const srv_gen *g);
/* Queues j (the engine takes its own reference when it accepts it). */
enum srv_submit srv_engine_submit(srv_engine *e, srv_job *j);
/* Embeds ids[i][0..n_ids[i]) for i < n into out [n][dim] (lm_embed_tokens) on the worker, between two
 * passes: its context is on the engine's device, where two contexts must not run at once. Blocks until
 * done. SRV_SUBMIT_OK when it ran (*rc its status, err why it failed), SRV_SUBMIT_QUEUE_FULL when more
 * than queue_size embeddings requests wait already, SRV_SUBMIT_STOPPING when the engine stops first. */
enum srv_submit srv_engine_embed(srv_engine *e, const int32_t *const *ids, const int64_t *n_ids, int n, bool normalize,
                                 float *out, int *rc, char *err, size_t errlen);
/* Waits up to ms for output or the end; true when u got something (u zeroed otherwise). */
bool srv_job_poll(srv_job *j, int ms, srv_update *u);
void srv_update_free(srv_update *u);
/* Asks the engine to stop j: it leaves the queue at once, or frees its sequence before the next pass. */
void srv_job_cancel(srv_job *j);
/* Drops the caller's reference (NULL is a no-op). */
void srv_job_release(srv_job *j);

#endif
