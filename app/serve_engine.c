/* serve_engine.c: the queue, the worker thread and the generation loop of `vkllm serve`
 * (serve_engine.h). The worker is the only thread that touches the device: it creates the sessions at
 * start, then serves the active jobs round-robin, one prompt or one decode step each per round.
 *
 * A prompt is evaluated a chunk (the batch size) per round, so that a long one does not stall the
 * other sequences. Generation follows `vkllm run` exactly (so that greedy output is the same text): the cache is synced
 * with every prompt token but the last, the last goes through the first decode step, and the
 * detokeniser sees it first (for word boundaries) without printing it. */
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

typedef struct slot {
    lm_session *s;
    srv_job *job;            /* NULL: free */
    bool started;            /* its prompt has been evaluated */
    bool prefilling;         /* its prompt is being evaluated, chunk by chunk */
    int64_t pre_done;        /* prompt tokens in the cache so far */
    lm_sampler *smp;
    lm_detok *dt;
    int32_t cur;             /* the token the next decode step evaluates */
    int64_t n_gen;
    char *pend;              /* decoded text held back: it may be the start of a stop string */
    size_t n_pend, cap_pend;
    double t0, t_prompt_end;
    int64_t cached;
    int32_t n_past;          /* a copy for the stats (engine mutex) */
} slot;

struct srv_engine {
    lm_model *m;
    const lm_vocab *v;
    int32_t n_vocab, n_ctx;
    int n_slots, queue_size;
    int32_t chunk;           /* prompt tokens evaluated per round */
    slot *slots;
    float *logits;           /* n_vocab, the worker's */
    float *lp_scratch;       /* n_vocab */
    uint64_t kv_bytes_per_slot;

    pthread_mutex_t mu;
    pthread_cond_t cv;       /* the worker waits on it for work */
    pthread_t thread;
    bool thread_started, stopping;
    srv_job *q_head, *q_tail;
    int n_queued, n_active;
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
    /* a queued job leaves the queue now; a running one is stopped by the worker at its next round */
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

enum srv_submit srv_engine_submit(srv_engine *e, srv_job *j)
{
    pthread_mutex_lock(&e->mu);
    enum srv_submit rc = SRV_SUBMIT_OK;
    if (e->stopping) {
        rc = SRV_SUBMIT_STOPPING;
    } else if (e->n_queued >= e->queue_size + (e->n_slots - e->n_active)) {
        /* full: the queued jobs that free sessions will take at once do not count */
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
    st->active = e->n_active;
    st->queued = e->n_queued;
    st->kv_bytes = e->kv_bytes_per_slot * (uint64_t)e->n_slots;
    for (int i = 0; i < e->n_slots; i++)
        st->kv_used_bytes += e->n_ctx ? e->kv_bytes_per_slot * (uint64_t)e->slots[i].n_past / (uint64_t)e->n_ctx : 0;
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

/* Tokens at the start of ids that slot's session has cached. */
static int64_t common_prefix(const slot *sl, const srv_job *j)
{
    int32_t n;
    const int32_t *t = lm_session_tokens(sl->s, &n);
    int64_t k = 0;
    while (k < n && k < j->n_ids - 1 && t[k] == j->ids[k])
        k++;
    return k;
}

/* Gives free sessions to queued jobs (engine mutex held): the first job in the queue gets the free
 * session that has the most of its prompt cached. */
static void assign(srv_engine *e)
{
    while (e->q_head && e->n_active < e->n_slots) {
        srv_job *j = e->q_head;
        e->q_head = j->next;
        if (!e->q_head)
            e->q_tail = NULL;
        e->n_queued--;
        int best = -1;
        int64_t best_k = -1;
        for (int i = 0; i < e->n_slots; i++) {
            if (e->slots[i].job)
                continue;
            int64_t k = common_prefix(&e->slots[i], j);
            if (k > best_k)
                best = i, best_k = k;
        }
        slot *sl = &e->slots[best];
        sl->job = j;
        sl->started = false;
        sl->prefilling = false;
        e->n_active++;
    }
}

/* Ends the slot's job (worker, without the engine mutex): the held-back text goes out unless a stop
 * string ended it, the end is recorded, the session freed for the next job. */
static void finish_as(srv_engine *e, slot *sl, enum srv_finish how, const char *error, bool flush)
{
    srv_job *j = sl->job;
    const char *piece;
    size_t plen;
    if (flush && how != SRV_FINISH_ERROR && how != SRV_FINISH_CANCELLED && sl->started) {
        if (sl->dt && lm_detok_flush(sl->dt, &piece, &plen) == LM_OK)
            job_put_text(j, sl->pend, sl->n_pend), job_put_text(j, piece, plen);
        else
            job_put_text(j, sl->pend, sl->n_pend);
    }
    sl->n_pend = 0;
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
    sl->job = NULL;
    sl->prefilling = false;
    sl->n_past = lm_session_n_past(sl->s);
    e->n_active--;
    pthread_mutex_unlock(&e->mu);
    srv_job_release(j);
}

static void finish(srv_engine *e, slot *sl, enum srv_finish how, const char *error)
{
    finish_as(e, sl, how, error, true);
}

/* The prompt, one chunk per call: first the sampler and detokeniser, then the cache synced with one
 * more chunk of the prompt tokens but the last; once they are all in, the last goes to the detokeniser
 * (unprinted, for word boundaries) and the first decode step evaluates it. */
static void prefill(srv_engine *e, slot *sl)
{
    srv_job *j = sl->job;
    char err[512];
    if (!sl->prefilling) {
        sl->t0 = now_s();
        sl->n_gen = 0;
        sl->n_pend = 0;
        sl->cached = 0;
        sl->pre_done = -1;
        lm_sampler_free(sl->smp);
        sl->smp = NULL;
        if (lm_sampler_create(&j->gen.sampling, e->n_vocab, &sl->smp, err, sizeof err)) {
            finish(e, sl, SRV_FINISH_ERROR, err);
            return;
        }
        lm_detok_reset(sl->dt);
        for (int64_t i = 0; i < j->n_ids; i++)
            lm_sampler_accept(sl->smp, j->ids[i]);
        sl->prefilling = true;
    }
    int64_t want = j->n_ids - 1;
    if (want == 0) {
        lm_session_rewind(sl->s, 0);
    } else {
        int64_t from = sl->pre_done < 0 ? common_prefix(sl, j) : sl->pre_done;
        int64_t to = from + e->chunk < want ? from + e->chunk : want;
        int64_t reused = 0;
        if (lm_session_sync(sl->s, j->ids, to, NULL, &reused, err, sizeof err)) {
            lm_session_rewind(sl->s, 0);
            finish(e, sl, SRV_FINISH_ERROR, err);
            return;
        }
        if (sl->pre_done < 0)
            sl->cached = reused;
        sl->pre_done = to;
        pthread_mutex_lock(&e->mu);
        sl->n_past = lm_session_n_past(sl->s);
        pthread_mutex_unlock(&e->mu);
        if (to < want)
            return; /* the next chunk at the next round */
    }
    const char *piece;
    size_t plen;
    sl->cur = j->ids[j->n_ids - 1];
    lm_detok_push(sl->dt, sl->cur, &piece, &plen);
    sl->prefilling = false;
    sl->started = true;
    sl->t_prompt_end = now_s();
    pthread_mutex_lock(&e->mu);
    e->prompt_tokens += j->n_ids;
    e->cached_tokens += sl->cached;
    e->prompt_s += sl->t_prompt_end - sl->t0;
    sl->n_past = lm_session_n_past(sl->s);
    pthread_mutex_unlock(&e->mu);
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

/* One decode step of the slot's job. */
static void decode(srv_engine *e, slot *sl)
{
    srv_job *j = sl->job;
    const srv_gen *g = &j->gen;
    if (g->max_tokens > 0 && sl->n_gen >= g->max_tokens) {
        finish(e, sl, SRV_FINISH_LENGTH, NULL);
        return;
    }
    if (lm_session_n_past(sl->s) >= lm_session_n_ctx(sl->s)) {
        finish(e, sl, SRV_FINISH_LENGTH, NULL);
        return;
    }
    bool greedy = lm_sampler_is_greedy(&g->sampling) && !g->n_bias;
    bool want_logits = !greedy || g->n_logprobs >= 0;
    char err[512];
    int32_t next;
    if (lm_session_step(sl->s, sl->cur, want_logits ? e->logits : NULL, &next, err, sizeof err)) {
        lm_session_rewind(sl->s, 0);
        finish(e, sl, SRV_FINISH_ERROR, err);
        return;
    }
    srv_token t;
    bool lp = g->n_logprobs >= 0;
    if (lp)
        memcpy(e->lp_scratch, e->logits, sizeof *e->logits * (size_t)e->n_vocab);
    for (int i = 0; i < g->n_bias; i++)
        e->logits[g->bias_id[i]] += g->bias[i];
    if (!greedy)
        next = lm_sampler_sample(sl->smp, e->logits);
    lm_sampler_accept(sl->smp, next);
    sl->n_gen++;
    pthread_mutex_lock(&e->mu);
    sl->n_past = lm_session_n_past(sl->s);
    pthread_mutex_unlock(&e->mu);
    /* the end of generation: as lm_chat_reply, an EOG token or a BOS */
    if (!g->ignore_eos && (lm_vocab_is_eog(e->v, next) || next == lm_vocab_bos(e->v))) {
        finish(e, sl, SRV_FINISH_STOP, NULL);
        return;
    }
    if (lp) {
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
    sl->cur = next;
    if (g->max_tokens > 0 && sl->n_gen >= g->max_tokens)
        finish(e, sl, SRV_FINISH_LENGTH, NULL);
}

static void *worker(void *arg)
{
    srv_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        assign(e);
        if (!e->n_active) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        for (int i = 0; i < e->n_slots; i++) {
            slot *sl = &e->slots[i];
            if (!sl->job)
                continue;
            if (atomic_load(&sl->job->cancel))
                finish(e, sl, SRV_FINISH_CANCELLED, "cancelled");
            else if (!sl->started)
                prefill(e, sl);
            else
                decode(e, sl);
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_slots; i++)
        if (e->slots[i].job)
            finish(e, &e->slots[i], SRV_FINISH_CANCELLED, "the server is stopping");
    return NULL;
}

int srv_engine_create(lm_model *m, const srv_engine_opts *o, srv_engine **out, char *err, size_t errlen)
{
    *out = NULL;
    if (o->n_parallel < 1 || o->queue_size < 0) {
        snprintf(err, errlen, "the engine needs at least one sequence and a queue size >= 0");
        return LM_ERR_INVALID;
    }
    srv_engine *e = calloc(1, sizeof *e);
    if (!e)
        goto out_nomem;
    e->m = m;
    e->v = lm_model_vocab(m);
    e->n_vocab = lm_model_hparams(m)->n_vocab;
    e->n_slots = o->n_parallel;
    e->queue_size = o->queue_size;
    e->chunk = o->n_batch > 0 ? o->n_batch : 256;
    e->slots = calloc((size_t)e->n_slots, sizeof *e->slots);
    e->logits = malloc(sizeof *e->logits * (size_t)e->n_vocab);
    e->lp_scratch = malloc(sizeof *e->lp_scratch * (size_t)e->n_vocab);
    if (!e->slots || !e->logits || !e->lp_scratch)
        goto out_nomem;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    lm_session_opts so = { .n_ctx = o->n_ctx, .n_batch = o->n_batch, .kv_f32 = o->kv_f32 };
    for (int i = 0; i < e->n_slots; i++) {
        int rc = lm_session_create(m, &so, &e->slots[i].s, err, errlen);
        if (rc) {
            srv_engine_destroy(e);
            return rc;
        }
        if (lm_detok_create(e->v, false, &e->slots[i].dt))
            goto out_nomem_destroy;
    }
    e->n_ctx = lm_session_n_ctx(e->slots[0].s);
    uint64_t scratch;
    lm_session_memory(e->slots[0].s, &e->kv_bytes_per_slot, &scratch);
    if (pthread_create(&e->thread, NULL, worker, e)) {
        snprintf(err, errlen, "cannot start the engine's thread");
        srv_engine_destroy(e);
        return LM_ERR_NOMEM;
    }
    e->thread_started = true;
    *out = e;
    return LM_OK;
out_nomem_destroy:
    srv_engine_destroy(e);
    snprintf(err, errlen, "out of memory");
    return LM_ERR_NOMEM;
out_nomem:
    if (e) {
        free(e->slots);
        free(e->logits);
        free(e->lp_scratch);
        free(e);
    }
    snprintf(err, errlen, "out of memory");
    return LM_ERR_NOMEM;
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
    if (!was && e->thread_started)
        pthread_join(e->thread, NULL);
    e->thread_started = false;
}

void srv_engine_destroy(srv_engine *e)
{
    if (!e)
        return;
    srv_engine_shutdown(e);
    for (int i = 0; i < e->n_slots; i++) {
        lm_sampler_free(e->slots[i].smp);
        lm_detok_free(e->slots[i].dt);
        free(e->slots[i].pend);
        lm_session_free(e->slots[i].s);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->slots);
    free(e->logits);
    free(e->lp_scratch);
    free(e);
}
