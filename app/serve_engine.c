/* serve_engine.c: the queue, the worker thread and the scheduler of `vkllm serve` (serve_engine.h).
 * The worker is the only thread that touches the device: it owns one batched context (lm_ctx) whose
 * sequences are the running requests, and loops over passes:
 *
 *   1. requests whose client left are freed; queued ones are admitted while a sequence is free and
 *      the KV pool has blocks for their prompt (a preempted request first, before anything new);
 *   2. the batch: one decode row for every generating sequence first (so that streams never stall
 *      behind a long prompt), then the next chunks of the prompts being evaluated, oldest request
 *      first, n_batch rows in all; logits are wanted for each decode row and for the last prompt row
 *      of a sequence whose prompt ends in this pass;
 *   3. one lm_ctx_eval; when it says LM_ERR_KV_FULL the newest running sequence is preempted (freed:
 *      its full blocks stay cached, its tokens so far kept, it waits at the head of the queue and is
 *      recomputed later) and the batch is built again;
 *   4. each sequence whose row produced logits samples its next token with its own sampler.
 *
 * Generation follows `vkllm run` (so that greedy output is the same text): the sampler sees the
 * prompt, the detokeniser sees the prompt's last token first (for word boundaries) without printing
 * it, and a request ends at an end-of-generation token or BOS, max_tokens, or a full context. */
#include "serve_engine.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct srv_job {
    /* set at creation, read-only after */
    int32_t *ids;
    int64_t n_ids;
    srv_gen gen;             /* stop strings point into stop_buf */
    char *stop_buf;
    srv_engine *e;           /* set by submit */

    atomic_int cancel;
    pthread_mutex_t mu;      /* guards what follows */
    pthread_cond_t cv;
    int refs;
    char *text;              /* final text not yet polled */
    size_t n_text, cap_text;
    srv_token *toks;         /* log-probability entries not yet polled */
    int64_t n_toks, cap_toks;
    bool done, end_taken;
    srv_update end;          /* the end (counts, finish, error), handed over by one poll */

    srv_job *next;           /* the queue (engine mutex) */
};

/* An embeddings request waiting for the worker: on its caller's stack (the caller waits until done, and
 * the worker does not touch it after setting done). */
typedef struct embed_task {
    const int32_t *const *ids;
    const int64_t *n_ids;
    int n;
    bool normalize;
    float *out;
    int rc;
    char err[512];
    bool done, stopped;      /* engine mutex */
    struct embed_task *next;
} embed_task;

enum slot_state {
    SLOT_FREE = 0,
    SLOT_WAITING,            /* preempted: no sequence now; recomputed when admitted again */
    SLOT_RUNNING,            /* its tokens are being evaluated (a prompt, or one decode row a pass) */
};

/* A request being served, with everything that outlives a preemption: its tokens so far, sampler,
 * detokeniser and held-back text. Only the worker touches a slot, except state and job, which are
 * also read for the stats under the engine mutex. */
typedef struct slot {
    srv_job *job;
    enum slot_state state;
    int32_t seq;             /* its lm_ctx sequence, -1 when none */
    int32_t *toks;           /* [n_ctx + 1] the prompt, then the tokens generated */
    int64_t n_toks;
    int64_t n_done;          /* tokens of toks in the sequence; the rest are evaluated next */
    int64_t n_rows;          /* rows of toks in the pass being built */
    uint64_t order;          /* when it was first admitted: the newest is preempted first */
    bool started;            /* its first token has been sampled */
    lm_sampler *smp;
    lm_detok *dt;
    int64_t n_gen;
    char *pend;              /* decoded text held back: it may be the start of a stop string */
    size_t n_pend, cap_pend;
    double t0, t_prompt_end;
    int64_t cached;          /* prompt tokens taken from the prefix cache at the first admission */
} slot;

struct srv_engine {
    lm_model *m;
    const lm_vocab *v;
    lm_ctx *c;
    int32_t n_vocab, n_ctx, n_batch, block_size;
    int64_t kv_positions;
    int n_slots, queue_size;
    slot *slots;
    /* the batch being built, and what the pass gives back: [n_batch] rows; [n_slots] logits rows */
    int32_t *b_tok, *b_seq;
    int8_t *b_want;
    int *b_slot;             /* [n_slots] the slot of each wanted row, in row order */
    float *logits;           /* [n_slots][n_vocab] */
    int32_t *argmax;         /* [n_slots] */
    float *lp_scratch;       /* [n_vocab] */
    uint64_t order;          /* admissions so far */
    int rr;                  /* where the decode rows start when they are more than a pass holds */
    uint64_t kv_bytes;

    pthread_mutex_t mu;
    pthread_cond_t cv;       /* the worker waits on it for work */
    pthread_t thread;
    bool thread_started, stopping;
    atomic_bool worker_done; /* the worker has left its loop */
    srv_job *q_head, *q_tail;
    int n_queued, n_active;  /* n_active: slots that hold a job (waiting ones included) */
    embed_task *eq_head, *eq_tail; /* embeddings requests, in order */
    int n_embed_queued;
    pthread_cond_t embed_cv; /* the callers of srv_engine_embed wait on it */
    int n_waiting;           /* slots preempted, waiting to be admitted again */
    lm_kv_stats kv;          /* after the last pass (the worker's copy, published under mu) */
    int64_t passes, batch_rows, preemptions;
    int32_t last_batch;
    int64_t prompt_tokens, cached_tokens, gen_tokens, jobs_done, jobs_cancelled, jobs_failed;
    double prompt_s, gen_s;
};

/* ------------------------------------------------------------------------ jobs */

srv_job *srv_job_create(const int32_t *ids, int64_t n, const srv_gen *g)
{
    if (n < 1)
        return NULL;
    srv_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->ids = malloc(sizeof *ids * (size_t)n);
    size_t stop_bytes = 0;
    for (int i = 0; i < g->n_stop; i++)
        stop_bytes += strlen(g->stop[i]) + 1;
    j->stop_buf = malloc(stop_bytes + 1);
    if (!j->ids || !j->stop_buf) {
        free(j->ids);
        free(j->stop_buf);
        free(j);
        return NULL;
    }
    memcpy(j->ids, ids, sizeof *ids * (size_t)n);
    j->n_ids = n;
    j->gen = *g;
    char *p = j->stop_buf;
    for (int i = 0; i < g->n_stop && i < SRV_MAX_STOP; i++) {
        size_t l = strlen(g->stop[i]);
        memcpy(p, g->stop[i], l + 1);
        j->gen.stop[i] = p;
        p += l + 1;
    }
    atomic_init(&j->cancel, 0);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    return j;
}

static void job_free(srv_job *j)
{
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->ids);
    free(j->stop_buf);
    free(j->text);
    free(j->toks);
    free(j);
}

void srv_job_release(srv_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last)
        job_free(j);
}

bool srv_job_poll(srv_job *j, int ms, srv_update *u)
{
    memset(u, 0, sizeof *u);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
#define READY (j->n_text || j->n_toks || (j->done && !j->end_taken))
    while (!READY)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until))
            break;
    bool got = READY;
#undef READY
    if (got) {
        if (j->done && !j->end_taken) {
            *u = j->end;
            u->done = true;
            j->end_taken = true;
        }
        u->text = j->text;
        u->n_text = j->n_text;
        u->toks = j->toks;
        u->n_toks = j->n_toks;
        j->text = NULL;
        j->n_text = j->cap_text = 0;
        j->toks = NULL;
        j->n_toks = j->cap_toks = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return got;
}

void srv_update_free(srv_update *u)
{
    free(u->text);
    free(u->toks);
    u->text = NULL;
    u->toks = NULL;
}

void srv_job_cancel(srv_job *j)
{
    atomic_store(&j->cancel, 1);
    srv_engine *e = j->e;
    if (!e)
        return;
    /* a queued job leaves the queue now; a running one is stopped by the worker before its next pass */
    pthread_mutex_lock(&e->mu);
    srv_job **pp = &e->q_head, *prev = NULL;
    bool found = false;
    while (*pp) {
        if (*pp == j) {
            *pp = j->next;
            if (e->q_tail == j)
                e->q_tail = prev;
            e->n_queued--;
            e->jobs_cancelled++;
            found = true;
            break;
        }
        prev = *pp;
        pp = &(*pp)->next;
    }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (found) {
        pthread_mutex_lock(&j->mu);
        j->end.finish = SRV_FINISH_CANCELLED;
        j->end.prompt_tokens = j->n_ids;
        snprintf(j->end.error, sizeof j->end.error, "cancelled");
        j->done = true;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        srv_job_release(j); /* the queue's reference */
    }
}

/* Appends final text to j's output (the worker). false when out of memory. */
static bool job_put_text(srv_job *j, const char *s, size_t n)
{
    if (!n)
        return true;
    pthread_mutex_lock(&j->mu);
    bool ok = true;
    if (j->n_text + n + 1 > j->cap_text) {
        size_t cap = j->cap_text ? j->cap_text : 256;
        while (cap < j->n_text + n + 1)
            cap *= 2;
        char *p = realloc(j->text, cap);
        if (p) {
            j->text = p;
            j->cap_text = cap;
        } else {
            ok = false;
        }
    }
    if (ok) {
        memcpy(j->text + j->n_text, s, n);
        j->n_text += n;
        j->text[j->n_text] = 0;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

static bool job_put_token(srv_job *j, const srv_token *t)
{
    pthread_mutex_lock(&j->mu);
    bool ok = true;
    if (j->n_toks == j->cap_toks) {
        int64_t cap = j->cap_toks ? j->cap_toks * 2 : 16;
        srv_token *p = realloc(j->toks, sizeof *p * (size_t)cap);
        if (p) {
            j->toks = p;
            j->cap_toks = cap;
        } else {
            ok = false;
        }
    }
    if (ok) {
        j->toks[j->n_toks++] = *t;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

/* ------------------------------------------------------------------------ the engine */

int32_t srv_engine_n_ctx(const srv_engine *e)
{
    return e->n_ctx;
}

int64_t srv_engine_kv_positions(const srv_engine *e)
{
    return e->kv_positions;
}

enum srv_submit srv_engine_submit(srv_engine *e, srv_job *j)
{
    pthread_mutex_lock(&e->mu);
    enum srv_submit rc = SRV_SUBMIT_OK;
    if (e->stopping) {
        rc = SRV_SUBMIT_STOPPING;
    } else if (e->n_queued >= e->queue_size + (e->n_slots - e->n_active)) {
        /* full: the queued jobs that free sequences will take at once do not count */
        rc = SRV_SUBMIT_QUEUE_FULL;
    } else {
        pthread_mutex_lock(&j->mu);
        j->refs++;
        pthread_mutex_unlock(&j->mu);
        j->e = e;
        j->next = NULL;
        if (e->q_tail)
            e->q_tail->next = j;
        else
            e->q_head = j;
        e->q_tail = j;
        e->n_queued++;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void srv_engine_get_stats(srv_engine *e, srv_engine_stats *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&e->mu);
    st->n_slots = e->n_slots;
    st->active = e->n_active - e->n_waiting;
    st->queued = e->n_queued + e->n_waiting;
    st->preempted = e->n_waiting;
    st->kv_bytes = e->kv_bytes;
    st->kv_blocks = e->kv.n_blocks;
    st->kv_block_size = e->kv.block_size;
    st->kv_used = e->kv.used;
    st->kv_cached = e->kv.cached;
    st->kv_tokens = e->kv.tokens;
    st->kv_used_bytes = e->kv.n_blocks ? e->kv_bytes * (uint64_t)e->kv.used / (uint64_t)e->kv.n_blocks : 0;
    st->prefix_queries = e->kv.prefix_queries;
    st->prefix_hits = e->kv.prefix_hits;
    st->passes = e->passes;
    st->device_lost = lm_model_device_lost(e->m);
    st->batch_rows = e->batch_rows;
    st->last_batch = e->last_batch;
    st->preemptions = e->preemptions;
    st->prompt_tokens = e->prompt_tokens;
    st->cached_tokens = e->cached_tokens;
    st->gen_tokens = e->gen_tokens;
    st->prompt_s = e->prompt_s;
    st->gen_s = e->gen_s;
    st->jobs_done = e->jobs_done;
    st->jobs_cancelled = e->jobs_cancelled;
    st->jobs_failed = e->jobs_failed;
    pthread_mutex_unlock(&e->mu);
}

/* The pool's counts for the stats (the worker: lm_ctx is the worker's alone). */
static void publish_kv(srv_engine *e)
{
    lm_kv_stats k;
    lm_ctx_kv_stats(e->c, &k);
    pthread_mutex_lock(&e->mu);
    e->kv = k;
    pthread_mutex_unlock(&e->mu);
}

/* Ends the slot's job (worker): the held-back text goes out unless a stop string ended it, the end is
 * recorded, the sequence freed (its full blocks stay cached) and the slot with it. */
static void finish_as(srv_engine *e, slot *sl, enum srv_finish how, const char *error, bool flush)
{
    srv_job *j = sl->job;
    const char *piece;
    size_t plen;
    if (flush && how != SRV_FINISH_ERROR && how != SRV_FINISH_CANCELLED && sl->started) {
        if (lm_detok_flush(sl->dt, &piece, &plen) == LM_OK)
            job_put_text(j, sl->pend, sl->n_pend), job_put_text(j, piece, plen);
        else
            job_put_text(j, sl->pend, sl->n_pend);
    }
    sl->n_pend = 0;
    if (sl->seq >= 0) {
        lm_ctx_seq_free(e->c, sl->seq);
        sl->seq = -1;
    }
    double t = now_s();
    pthread_mutex_lock(&j->mu);
    j->end.finish = how;
    j->end.prompt_tokens = j->n_ids;
    j->end.cached_tokens = sl->started ? sl->cached : 0;
    j->end.completion_tokens = sl->n_gen;
    j->end.prompt_s = sl->started ? sl->t_prompt_end - sl->t0 : 0;
    j->end.gen_s = sl->started ? t - sl->t_prompt_end : 0;
    snprintf(j->end.error, sizeof j->end.error, "%s", error ? error : "");
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);

    pthread_mutex_lock(&e->mu);
    if (sl->started) {
        e->gen_tokens += sl->n_gen;
        e->gen_s += t - sl->t_prompt_end;
    }
    if (how == SRV_FINISH_CANCELLED)
        e->jobs_cancelled++;
    else if (how == SRV_FINISH_ERROR)
        e->jobs_failed++;
    else
        e->jobs_done++;
    if (sl->state == SLOT_WAITING)
        e->n_waiting--;
    sl->state = SLOT_FREE;
    sl->job = NULL;
    e->n_active--;
    pthread_mutex_unlock(&e->mu);
    srv_job_release(j);
}

static void finish(srv_engine *e, slot *sl, enum srv_finish how, const char *error)
{
    finish_as(e, sl, how, error, true);
}

static int64_t blocks_for(const srv_engine *e, int64_t n)
{
    return (n + e->block_size - 1) / e->block_size;
}

/* The blocks the running sequences still take for the tokens they have yet to evaluate and one more
 * each, so that a new admission does not at once make the next pass preempt. */
static int64_t blocks_reserved(const srv_engine *e)
{
    int64_t r = 0;
    for (int i = 0; i < e->n_slots; i++) {
        const slot *sl = &e->slots[i];
        if (sl->state == SLOT_RUNNING)
            r += blocks_for(e, sl->n_toks + 1) - blocks_for(e, sl->n_done);
    }
    return r;
}

/* Whether n tokens more fit in the pool beside the running sequences (any request fits an idle pool:
 * a prompt that the pool cannot hold at all is refused by the pass, with a message). */
static bool pool_has_room(srv_engine *e, int64_t n)
{
    int running = 0;
    for (int i = 0; i < e->n_slots; i++)
        running += e->slots[i].state == SLOT_RUNNING;
    if (!running)
        return true;
    lm_kv_stats k;
    lm_ctx_kv_stats(e->c, &k);
    return blocks_for(e, n + 1) <= (int64_t)k.free + k.cached - blocks_reserved(e);
}

/* A slot's sequence: a new one that takes the cached blocks holding the start of its tokens. */
static bool slot_attach(srv_engine *e, slot *sl)
{
    int32_t seq = lm_ctx_seq_new(e->c);
    if (seq < 0)
        return false;
    sl->seq = seq;
    sl->n_done = lm_ctx_seq_reuse(e->c, seq, sl->toks, sl->n_toks);
    sl->state = SLOT_RUNNING;
    return true;
}

/* A job's start in a free slot: its sampler (which sees the prompt), its detokeniser (which sees the
 * prompt's last token, unprinted), its tokens. */
static void slot_start(srv_engine *e, slot *sl, srv_job *j)
{
    char err[512];
    sl->t0 = now_s();
    sl->order = ++e->order;
    sl->started = false;
    sl->n_gen = 0;
    sl->n_pend = 0;
    sl->cached = 0;
    sl->seq = -1;
    sl->n_done = 0;
    lm_sampler_free(sl->smp);
    sl->smp = NULL;
    if (j->n_ids >= e->n_ctx || j->n_ids >= e->kv_positions) {
        snprintf(err, sizeof err, "the prompt is %lld tokens: the context holds %d and the KV pool %lld",
                 (long long)j->n_ids, e->n_ctx, (long long)e->kv_positions);
        finish(e, sl, SRV_FINISH_ERROR, err);
        return;
    }
    if (lm_sampler_create(&j->gen.sampling, e->n_vocab, &sl->smp, err, sizeof err)) {
        finish(e, sl, SRV_FINISH_ERROR, err);
        return;
    }
    for (int64_t i = 0; i < j->n_ids; i++)
        lm_sampler_accept(sl->smp, j->ids[i]);
    lm_detok_reset(sl->dt);
    const char *piece;
    size_t plen;
    lm_detok_push(sl->dt, j->ids[j->n_ids - 1], &piece, &plen);
    memcpy(sl->toks, j->ids, sizeof *j->ids * (size_t)j->n_ids);
    sl->n_toks = j->n_ids;
    if (!slot_attach(e, sl)) {
        finish(e, sl, SRV_FINISH_ERROR, "out of memory");
        return;
    }
    sl->cached = sl->n_done;
}

/* Admits requests into the running batch while a slot is free and the pool has room: a preempted one
 * first (the oldest), and nothing new while one waits. */
static void admit(srv_engine *e)
{
    for (;;) {
        slot *w = NULL;
        for (int i = 0; i < e->n_slots; i++) {
            slot *sl = &e->slots[i];
            if (sl->state == SLOT_WAITING && (!w || sl->order < w->order))
                w = sl;
        }
        if (w) {
            if (!pool_has_room(e, w->n_toks) || !slot_attach(e, w))
                return;
            pthread_mutex_lock(&e->mu);
            e->n_waiting--;
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        slot *sl = NULL;
        for (int i = 0; i < e->n_slots && !sl; i++)
            if (e->slots[i].state == SLOT_FREE)
                sl = &e->slots[i];
        if (!sl)
            return;
        pthread_mutex_lock(&e->mu);
        srv_job *j = e->q_head;
        if (j && pool_has_room(e, j->n_ids)) {
            e->q_head = j->next;
            if (!e->q_head)
                e->q_tail = NULL;
            e->n_queued--;
            sl->job = j;
            sl->state = SLOT_RUNNING;
            e->n_active++;
        } else {
            j = NULL;
        }
        pthread_mutex_unlock(&e->mu);
        if (!j)
            return;
        slot_start(e, sl, j);
    }
}

/* Frees the newest running sequence for lack of KV blocks: its tokens so far are kept, and it waits at
 * the head of the queue to be evaluated again. false when it is the only one running. */
static bool preempt_newest(srv_engine *e)
{
    slot *newest = NULL;
    int running = 0;
    for (int i = 0; i < e->n_slots; i++) {
        slot *sl = &e->slots[i];
        if (sl->state != SLOT_RUNNING)
            continue;
        running++;
        if (!newest || sl->order > newest->order)
            newest = sl;
    }
    if (running < 2)
        return false;
    lm_ctx_seq_free(e->c, newest->seq);
    newest->seq = -1;
    newest->n_done = 0;
    newest->state = SLOT_WAITING;
    pthread_mutex_lock(&e->mu);
    e->n_waiting++;
    e->preemptions++;
    pthread_mutex_unlock(&e->mu);
    return true;
}

/* Adds the slot's tokens [n_done, n_done + k) to the batch; the last of its tokens wants logits. */
static void add_rows(srv_engine *e, int i, int64_t k, int64_t *n, int *n_want)
{
    slot *sl = &e->slots[i];
    for (int64_t r = 0; r < k; r++) {
        e->b_tok[*n] = sl->toks[sl->n_done + r];
        e->b_seq[*n] = sl->seq;
        e->b_want[*n] = sl->n_done + r == sl->n_toks - 1;
        if (e->b_want[*n])
            e->b_slot[(*n_want)++] = i;
        (*n)++;
    }
    sl->n_rows = k;
}

/* The next pass: a decode row for each generating sequence (from e->rr on, when they are more than
 * a pass holds; one row is then left for the prompts, so that they move too), then prompt chunks,
 * oldest request first. Returns the rows. */
static int64_t build_batch(srv_engine *e, int *n_want)
{
    int n_dec = 0, n_pre = 0;
    for (int i = 0; i < e->n_slots; i++) {
        slot *sl = &e->slots[i];
        sl->n_rows = 0;
        if (sl->state == SLOT_RUNNING && sl->n_toks - sl->n_done == 1)
            n_dec++;
        else if (sl->state == SLOT_RUNNING)
            n_pre++;
    }
    int64_t n = 0, dec_room = e->n_batch - (n_pre && n_dec >= e->n_batch ? 1 : 0);
    *n_want = 0;
    int start = e->rr;
    for (int k = 0; k < e->n_slots && n < dec_room; k++) {
        int i = (start + k) % e->n_slots;
        slot *sl = &e->slots[i];
        if (sl->state == SLOT_RUNNING && sl->n_toks - sl->n_done == 1) {
            add_rows(e, i, 1, &n, n_want);
            if (n_dec > dec_room) /* the next pass starts with those left out of this one */
                e->rr = (i + 1) % e->n_slots;
        }
    }
    while (n < e->n_batch) {
        int best = -1;
        for (int i = 0; i < e->n_slots; i++) {
            slot *sl = &e->slots[i];
            if (sl->state == SLOT_RUNNING && !sl->n_rows && sl->n_toks - sl->n_done > 1 &&
                (best < 0 || sl->order < e->slots[best].order))
                best = i;
        }
        if (best < 0)
            break;
        slot *sl = &e->slots[best];
        int64_t k = sl->n_toks - sl->n_done;
        add_rows(e, best, k < e->n_batch - n ? k : e->n_batch - n, &n, n_want);
    }
    return n;
}

/* Log-probabilities of the raw logits: the chosen token's and the top n (descending, ties by id). */
static void logprobs(const srv_engine *e, const float *logits, int32_t id, int n_top, srv_token *t)
{
    float mx = -INFINITY;
    for (int32_t i = 0; i < e->n_vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < e->n_vocab; i++)
        sum += isnan(logits[i]) ? 0 : exp((double)logits[i] - mx);
    float lse = mx + (float)log(sum);
    memset(t, 0, sizeof *t);
    t->id = id;
    t->logprob = logits[id] - lse;
    t->n_top = 0;
    for (int k = 0; k < n_top && k < e->n_vocab; k++) {
        int32_t best = -1;
        for (int32_t i = 0; i < e->n_vocab; i++) {
            if (isnan(logits[i]))
                continue;
            bool taken = false;
            for (int m = 0; m < t->n_top && !taken; m++)
                taken = t->top_id[m] == i;
            if (taken)
                continue;
            if (best < 0 || logits[i] > logits[best])
                best = i;
        }
        if (best < 0)
            break;
        t->top_id[t->n_top] = best;
        t->top_lp[t->n_top] = logits[best] - lse;
        t->n_top++;
    }
}

/* The held-back text after a new piece: returns the stop string's offset in it when one is complete,
 * else -1 and emits what can no longer be the start of a stop string. */
static long stop_scan(slot *sl, const srv_gen *g)
{
    long found = -1;
    for (int i = 0; i < g->n_stop; i++) {
        size_t l = strlen(g->stop[i]);
        if (l > sl->n_pend)
            continue;
        for (size_t at = 0; at + l <= sl->n_pend; at++)
            if (!memcmp(sl->pend + at, g->stop[i], l)) {
                if (found < 0 || (long)at < found)
                    found = (long)at;
                break;
            }
    }
    if (found >= 0)
        return found;
    /* the longest tail of the held-back text that a stop string starts with */
    size_t hold = 0;
    for (int i = 0; i < g->n_stop; i++) {
        size_t l = strlen(g->stop[i]);
        for (size_t k = l - 1 < sl->n_pend ? l - 1 : sl->n_pend; k > hold; k--)
            if (!memcmp(sl->pend + sl->n_pend - k, g->stop[i], k)) {
                hold = k;
                break;
            }
    }
    size_t out = sl->n_pend - hold;
    job_put_text(sl->job, sl->pend, out);
    memmove(sl->pend, sl->pend + out, hold);
    sl->n_pend = hold;
    return -1;
}

static bool pend_add(slot *sl, const char *s, size_t n)
{
    if (sl->n_pend + n > sl->cap_pend) {
        size_t cap = sl->cap_pend ? sl->cap_pend : 64;
        while (cap < sl->n_pend + n)
            cap *= 2;
        char *p = realloc(sl->pend, cap);
        if (!p)
            return false;
        sl->pend = p;
        sl->cap_pend = cap;
    }
    memcpy(sl->pend + sl->n_pend, s, n);
    sl->n_pend += n;
    return true;
}

/* Whether the slot's sampling needs the logits (else the device's argmax is the token). */
static bool wants_logits(const slot *sl)
{
    const srv_gen *g = &sl->job->gen;
    return !lm_sampler_is_greedy(&g->sampling) || g->n_bias || g->n_logprobs >= 0;
}

/* The slot's next token from its row of logits (NULL when none came back: argmax is the token). */
static void take_token(srv_engine *e, slot *sl, float *logits, int32_t argmax)
{
    srv_job *j = sl->job;
    const srv_gen *g = &j->gen;
    if (!sl->started) {
        sl->started = true;
        sl->t_prompt_end = now_s();
        pthread_mutex_lock(&e->mu);
        e->prompt_tokens += j->n_ids;
        e->cached_tokens += sl->cached;
        e->prompt_s += sl->t_prompt_end - sl->t0;
        pthread_mutex_unlock(&e->mu);
    }
    int32_t next = argmax;
    bool lp = g->n_logprobs >= 0 && logits;
    if (lp)
        memcpy(e->lp_scratch, logits, sizeof *logits * (size_t)e->n_vocab);
    if (logits && (!lm_sampler_is_greedy(&g->sampling) || g->n_bias)) {
        for (int i = 0; i < g->n_bias; i++)
            logits[g->bias_id[i]] += g->bias[i];
        next = lm_sampler_sample(sl->smp, logits);
    }
    lm_sampler_accept(sl->smp, next);
    sl->n_gen++;
    /* the end of generation: as lm_chat_reply, an EOG token or a BOS */
    if (!g->ignore_eos && (lm_vocab_is_eog(e->v, next) || next == lm_vocab_bos(e->v))) {
        finish(e, sl, SRV_FINISH_STOP, NULL);
        return;
    }
    if (lp) {
        srv_token t;
        logprobs(e, e->lp_scratch, next, g->n_logprobs, &t);
        job_put_token(j, &t);
    }
    const char *piece;
    size_t plen;
    if (lm_detok_push(sl->dt, next, &piece, &plen) == LM_OK && plen) {
        if (!g->n_stop) {
            job_put_text(j, piece, plen);
        } else {
            if (!pend_add(sl, piece, plen)) {
                finish(e, sl, SRV_FINISH_ERROR, "out of memory");
                return;
            }
            long at = stop_scan(sl, g);
            if (at >= 0) {
                job_put_text(j, sl->pend, (size_t)at);
                sl->n_pend = 0;
                finish_as(e, sl, SRV_FINISH_STOP, NULL, false); /* what follows the stop string is dropped */
                return;
            }
        }
    }
    sl->toks[sl->n_toks++] = next;
    if (g->max_tokens > 0 && sl->n_gen >= g->max_tokens)
        finish(e, sl, SRV_FINISH_LENGTH, NULL);
}

/* One pass: ends, admissions, the batch, its evaluation (preempting while the pool is short), and
 * every wanted row's token. */
static void step(srv_engine *e)
{
    char err[512];
    for (int i = 0; i < e->n_slots; i++) {
        slot *sl = &e->slots[i];
        if (sl->state == SLOT_FREE)
            continue;
        if (atomic_load(&sl->job->cancel))
            finish(e, sl, SRV_FINISH_CANCELLED, "cancelled");
        else if (sl->n_toks > e->n_ctx) /* the context is full: the last token has no position */
            finish(e, sl, SRV_FINISH_LENGTH, NULL);
    }
    admit(e);
    int n_want;
    int64_t n;
    bool need_logits;
    int rc;
    for (;;) {
        n = build_batch(e, &n_want);
        if (!n) {
            publish_kv(e);
            return;
        }
        need_logits = false;
        for (int w = 0; w < n_want; w++)
            need_logits = need_logits || wants_logits(&e->slots[e->b_slot[w]]);
        lm_batch b = { .n = n, .tokens = e->b_tok, .seq = e->b_seq, .want = e->b_want };
        rc = lm_ctx_eval(e->c, &b, need_logits ? e->logits : NULL, e->argmax, err, sizeof err);
        if (rc != LM_ERR_KV_FULL || !preempt_newest(e))
            break;
    }
    if (rc == LM_ERR_KV_FULL) {
        /* one sequence alone has the whole pool: a generation ends there as at a full context; a
         * prompt (which the HTTP side checks against the pool) that does not fit is an error */
        for (int i = 0; i < e->n_slots; i++) {
            slot *sl = &e->slots[i];
            if (sl->state != SLOT_RUNNING)
                continue;
            if (sl->started) {
                finish(e, sl, SRV_FINISH_LENGTH, NULL);
            } else {
                snprintf(err, sizeof err,
                         "the request's %lld tokens need more KV blocks than the pool has (%lld positions)",
                         (long long)sl->n_toks, (long long)e->kv_positions);
                finish(e, sl, SRV_FINISH_ERROR, err);
            }
        }
    } else if (rc == LM_ERR_ABORTED) {
        /* the server is stopping: the worker ends every request */
    } else if (rc) {
        for (int i = 0; i < e->n_slots; i++)
            if (e->slots[i].n_rows && e->slots[i].state == SLOT_RUNNING)
                finish(e, &e->slots[i], SRV_FINISH_ERROR, err);
    } else {
        for (int i = 0; i < e->n_slots; i++)
            e->slots[i].n_done += e->slots[i].n_rows;
        pthread_mutex_lock(&e->mu);
        e->passes++;
        e->batch_rows += n;
        e->last_batch = (int32_t)n;
        pthread_mutex_unlock(&e->mu);
        for (int w = 0; w < n_want; w++) {
            slot *sl = &e->slots[e->b_slot[w]];
            take_token(e, sl, need_logits ? e->logits + (size_t)w * (size_t)e->n_vocab : NULL, e->argmax[w]);
        }
    }
    publish_kv(e);
}

/* ------------------------------------------------------------------------ embeddings */

enum srv_submit srv_engine_embed(srv_engine *e, const int32_t *const *ids, const int64_t *n_ids, int n, bool normalize,
                                 float *out, int *rc, char *err, size_t errlen)
{
    embed_task t = { .ids = ids, .n_ids = n_ids, .n = n, .normalize = normalize, .out = out };
    pthread_mutex_lock(&e->mu);
    if (e->stopping || e->n_embed_queued > e->queue_size) {
        enum srv_submit s = e->stopping ? SRV_SUBMIT_STOPPING : SRV_SUBMIT_QUEUE_FULL;
        pthread_mutex_unlock(&e->mu);
        return s;
    }
    if (e->eq_tail)
        e->eq_tail->next = &t;
    else
        e->eq_head = &t;
    e->eq_tail = &t;
    e->n_embed_queued++;
    pthread_cond_signal(&e->cv);
    while (!t.done)
        pthread_cond_wait(&e->embed_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (t.stopped)
        return SRV_SUBMIT_STOPPING;
    *rc = t.rc;
    snprintf(err, errlen, "%s", t.err);
    return SRV_SUBMIT_OK;
}

/* The next embeddings request off the queue (engine mutex held), NULL when none. */
static embed_task *embed_pop(srv_engine *e)
{
    embed_task *t = e->eq_head;
    if (t) {
        e->eq_head = t->next;
        if (!e->eq_head)
            e->eq_tail = NULL;
        e->n_embed_queued--;
    }
    return t;
}

static void embed_done(srv_engine *e, embed_task *t, bool stopped)
{
    pthread_mutex_lock(&e->mu);
    t->stopped = stopped;
    t->done = true;
    pthread_cond_broadcast(&e->embed_cv);
    pthread_mutex_unlock(&e->mu);
}

/* The worker: one embeddings request (when one waits) and one pass (when a job runs or waits) a turn,
 * so that neither kind holds the other up for long. */
static void *worker(void *arg)
{
    srv_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->n_active && !e->q_head && !e->eq_head)
            pthread_cond_wait(&e->cv, &e->mu);
        bool stop = e->stopping, gen = e->n_active || e->q_head;
        embed_task *t = stop ? NULL : embed_pop(e);
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;
        if (t) {
            t->rc = lm_embed_tokens(e->m, t->ids, t->n_ids, t->n, t->normalize, t->out, t->err, sizeof t->err);
            embed_done(e, t, false);
        }
        if (gen)
            step(e);
    }
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].state != SLOT_FREE)
            finish(e, &e->slots[i], SRV_FINISH_CANCELLED, "the server is stopping");
    publish_kv(e);
    atomic_store(&e->worker_done, true);
    return NULL;
}

int srv_engine_create(lm_model *m, const srv_engine_opts *o, srv_engine **out, char *err, size_t errlen)
{
    *out = NULL;
    if (o->n_parallel < 1 || o->n_parallel > 256 || o->queue_size < 0 || o->n_kv_blocks < 0) {
        snprintf(err, errlen, "the engine needs 1 to 256 sequences, a queue size >= 0 and a KV pool >= 0 blocks");
        return LM_ERR_INVALID;
    }
    srv_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return LM_ERR_NOMEM;
    }
    e->m = m;
    e->v = lm_model_vocab(m);
    e->n_vocab = lm_model_hparams(m)->n_vocab;
    e->n_slots = o->n_parallel;
    e->queue_size = o->queue_size;
    atomic_init(&e->worker_done, false);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->embed_cv, NULL);
    lm_ctx_opts co = { .n_ctx = o->n_ctx, .n_batch = o->n_batch, .n_seq_max = o->n_parallel,
                       .n_kv_blocks = o->n_kv_blocks, .kv_f32 = o->kv_f32 };
    int rc = lm_ctx_create(m, &co, &e->c, err, errlen);
    if (rc) {
        srv_engine_destroy(e);
        return rc;
    }
    e->n_ctx = lm_ctx_n_ctx(e->c);
    e->n_batch = lm_ctx_n_batch(e->c);
    lm_ctx_kv_stats(e->c, &e->kv);
    e->block_size = e->kv.block_size;
    e->kv_positions = (int64_t)e->kv.n_blocks * e->kv.block_size;
    uint64_t scratch;
    lm_ctx_memory(e->c, &e->kv_bytes, &scratch);
    size_t ns = (size_t)e->n_slots;
    e->slots = calloc(ns, sizeof *e->slots);
    e->b_tok = malloc(sizeof *e->b_tok * (size_t)e->n_batch);
    e->b_seq = malloc(sizeof *e->b_seq * (size_t)e->n_batch);
    e->b_want = malloc((size_t)e->n_batch);
    e->b_slot = malloc(sizeof *e->b_slot * ns);
    e->logits = malloc(sizeof *e->logits * ns * (size_t)e->n_vocab);
    e->argmax = malloc(sizeof *e->argmax * ns);
    e->lp_scratch = malloc(sizeof *e->lp_scratch * (size_t)e->n_vocab);
    bool ok = e->slots && e->b_tok && e->b_seq && e->b_want && e->b_slot && e->logits && e->argmax && e->lp_scratch;
    for (int i = 0; ok && i < e->n_slots; i++) {
        slot *sl = &e->slots[i];
        sl->seq = -1;
        ok = (sl->toks = malloc(sizeof *sl->toks * ((size_t)e->n_ctx + 2))) && !lm_detok_create(e->v, false, &sl->dt);
    }
    if (!ok) {
        srv_engine_destroy(e);
        snprintf(err, errlen, "out of memory");
        return LM_ERR_NOMEM;
    }
    if (pthread_create(&e->thread, NULL, worker, e)) {
        snprintf(err, errlen, "cannot start the engine's thread");
        srv_engine_destroy(e);
        return LM_ERR_NOMEM;
    }
    e->thread_started = true;
    *out = e;
    return LM_OK;
}

void srv_engine_shutdown(srv_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    bool was = e->stopping;
    e->stopping = true;
    /* queued jobs end now */
    srv_job *q = e->q_head;
    e->q_head = e->q_tail = NULL;
    e->n_queued = 0;
    /* and the embeddings requests waiting (one running finishes) */
    for (embed_task *t; (t = embed_pop(e));) {
        t->stopped = true;
        t->done = true;
    }
    pthread_cond_broadcast(&e->embed_cv);
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    while (q) {
        srv_job *j = q;
        q = q->next;
        pthread_mutex_lock(&j->mu);
        j->end.finish = SRV_FINISH_CANCELLED;
        j->end.prompt_tokens = j->n_ids;
        snprintf(j->end.error, sizeof j->end.error, "the server is stopping");
        j->done = true;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        srv_job_release(j);
    }
    if (!was && e->thread_started) {
        /* an evaluation of several passes stops after the current one; lm_ctx_eval clears the request
         * when it starts, so it is repeated until the worker has left */
        while (!atomic_load(&e->worker_done)) {
            lm_ctx_abort(e->c);
            nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
        }
        pthread_join(e->thread, NULL);
    }
    e->thread_started = false;
}

void srv_engine_destroy(srv_engine *e)
{
    if (!e)
        return;
    srv_engine_shutdown(e);
    for (int i = 0; e->slots && i < e->n_slots; i++) {
        lm_sampler_free(e->slots[i].smp);
        lm_detok_free(e->slots[i].dt);
        free(e->slots[i].pend);
        free(e->slots[i].toks);
    }
    lm_ctx_free(e->c);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->embed_cv);
    free(e->slots);
    free(e->b_tok);
    free(e->b_seq);
    free(e->b_want);
    free(e->b_slot);
    free(e->logits);
    free(e->argmax);
    free(e->lp_scratch);
    free(e);
}
