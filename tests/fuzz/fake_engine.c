/* fake_engine.c: serve_engine.h without a device, for fuzzing the HTTP layer (fuzz_http.c). A job
 * "generates" its prompt's tokens back, one per poll (fake_engine.n_gen of them at most, max_tokens
 * too), with log-probabilities when asked, then ends as fake_engine.finish says; submits and
 * embeddings answer as the settings say. Nothing waits: an external srv_http serves it on one thread. */
#include "fake_engine.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

fake_engine_settings fake_engine = { .submit = SRV_SUBMIT_OK, .finish = SRV_FINISH_STOP, .n_gen = 4, .dim = 4 };

struct srv_job {
    int32_t *ids;
    int64_t n, pos, max;
    int n_logprobs;
    atomic_int refs;
    bool submitted;
    bool ended, end_taken;  /* the job has ended (finish); its end has been polled */
    enum srv_finish finish;
};

void srv_engine_get_stats(srv_engine *e, srv_engine_stats *st)
{
    (void)e;
    memset(st, 0, sizeof *st);
    st->n_slots = 4;
    st->active = 1;
    st->queued = 2;
    st->kv_blocks = 64;
    st->kv_block_size = 16;
    st->kv_used = 3;
    st->kv_cached = 5;
    st->kv_bytes = 1 << 20;
    st->kv_used_bytes = 3 << 14;
    st->prefix_queries = 10;
    st->prefix_hits = 4;
    st->passes = 7;
    st->batch_rows = 21;
    st->device_lost = fake_engine.device_lost;
}

int32_t srv_engine_n_ctx(const srv_engine *e)
{
    (void)e;
    return 512;
}

int64_t srv_engine_kv_positions(const srv_engine *e)
{
    (void)e;
    return 2048;
}

srv_job *srv_job_create(const int32_t *ids, int64_t n, const srv_gen *g)
{
    srv_job *j = calloc(1, sizeof *j);
    if (!j || !(j->ids = malloc(sizeof *ids * (size_t)n))) {
        free(j);
        return NULL;
    }
    memcpy(j->ids, ids, sizeof *ids * (size_t)n);
    j->n = n;
    j->max = fake_engine.n_gen < n ? fake_engine.n_gen : n;
    if (g->max_tokens > 0 && g->max_tokens < j->max)
        j->max = g->max_tokens;
    j->n_logprobs = g->n_logprobs;
    atomic_init(&j->refs, 1);
    return j;
}

enum srv_submit srv_engine_submit(srv_engine *e, srv_job *j)
{
    (void)e;
    if (fake_engine.submit == SRV_SUBMIT_OK) {
        j->submitted = true;
        atomic_fetch_add(&j->refs, 1); /* the engine's reference, dropped when the job ends */
    }
    return fake_engine.submit;
}

/* the job ends: the engine drops its reference (the caller still holds one) */
static void end_job(srv_job *j, enum srv_finish f)
{
    if (j->ended)
        return;
    j->ended = true;
    j->finish = f;
    srv_job_release(j);
}

bool srv_job_poll(srv_job *j, int ms, srv_update *u)
{
    (void)ms;
    memset(u, 0, sizeof *u);
    if (!j->submitted || j->end_taken)
        return false;
    if (!j->ended && j->pos == j->max)
        end_job(j, fake_engine.finish);
    if (j->ended) {
        j->end_taken = true;
        u->done = true;
        u->finish = j->finish;
        u->prompt_tokens = j->n;
        u->cached_tokens = j->n / 2;
        u->completion_tokens = j->pos;
        u->prompt_s = 0.01;
        u->gen_s = 0.02;
        strcpy(u->error, j->finish == SRV_FINISH_ERROR ? "a fake device error" : "cancelled");
        return true;
    }
    /* one token: a piece of text that is complete UTF-8 (the engine's promise) */
    static const char *const pieces[] = { "Hello", " world", ",", " \xc3\xa9t\xc3\xa9", " \xe6\x97\xa5", "\n", "\"q\"", "\\" };
    const char *p = pieces[j->pos % 8];
    u->n_text = strlen(p);
    if (!(u->text = strdup(p)))
        return false;
    if (j->n_logprobs >= 0) {
        if (!(u->toks = calloc(1, sizeof *u->toks))) {
            srv_update_free(u);
            return false;
        }
        u->n_toks = 1;
        u->toks[0].id = j->ids[j->pos];
        u->toks[0].logprob = -0.25f * (float)j->pos;
        u->toks[0].n_top = j->n_logprobs < 3 ? j->n_logprobs : 3;
        for (int k = 0; k < u->toks[0].n_top; k++) {
            u->toks[0].top_id[k] = j->ids[(j->pos + k) % j->n];
            u->toks[0].top_lp[k] = -1.0f - (float)k;
        }
    }
    j->pos++;
    return true;
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
    if (j->submitted)
        end_job(j, SRV_FINISH_CANCELLED);
}

void srv_job_release(srv_job *j)
{
    if (j && atomic_fetch_sub(&j->refs, 1) == 1) {
        free(j->ids);
        free(j);
    }
}

enum srv_submit srv_engine_embed(srv_engine *e, const int32_t *const *ids, const int64_t *n_ids, int n, bool normalize,
                                 float *out, int *rc, char *err, size_t errlen)
{
    (void)e;
    (void)normalize;
    *rc = fake_engine.embed_rc;
    if (fake_engine.submit != SRV_SUBMIT_OK || *rc) {
        snprintf(err, errlen, "a fake embedding error");
        return fake_engine.submit;
    }
    for (int i = 0; i < n; i++)
        for (int d = 0; d < fake_engine.dim; d++)
            out[(size_t)i * (size_t)fake_engine.dim + (size_t)d] =
                fake_engine.embed_nan && d == 1 ? NAN : (float)(ids[i][d % n_ids[i]] % 7) * 0.125f - 0.3f;
    return SRV_SUBMIT_OK;
}
