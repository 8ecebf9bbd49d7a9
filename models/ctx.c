/* ctx.c: a batched context on the device: the KV cache as a pool of blocks shared by many sequences
 * (models/kv_blocks.c keeps the books), the activation buffers of one pass of up to n_batch rows, and
 * the forward pass recorded from runtime ops (read it top to bottom like llama2.c's forward()). A
 * pass's rows may belong to different sequences at different positions: each row's keys and values are
 * written to the cache row its sequence's block table gives, and its attention reads its own
 * sequence's keys through that table. Passes are recorded once per shape (rows, logits rows, what
 * comes back) and replayed with the inputs in host-written buffers: token ids, positions, cache rows,
 * the block tables and the rows that produce logits. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kv_blocks.h"
#include "arch.h"

enum { OUT_LOGITS = 1, OUT_ARGMAX = 2 };
#define N_RECORDED 8
#define MAX_SEQS 256 /* sequences in one pass at most (n_seq_max) */
/* the inputs: token ids, positions, cache rows, block tables, the rows that give outputs, and each row's
 * last key (its position; an encoder's: its sequence's last in the pass) */
enum { IN_IDS, IN_POS, IN_ROW, IN_PAGES, IN_SEL, IN_KEND, N_IN };

typedef struct recorded {
    rt_seq *seq;
    int64_t rows, n_sel;
    int out;
    uint64_t used;          /* when it was last replayed, for eviction */
    bool valid;
} recorded;

struct lm_ctx {
    lm_model *m;
    int32_t n_ctx, n_batch, n_seq_max, bs, n_blocks, max_blocks;
    rt_dtype kv_type;
    kvb_pool *kv;
    rt_buffer **kc, **vc;      /* per layer: [n_blocks * bs][n_kv_heads * head_dim] */
    rt_buffer *x;              /* [n_batch][dim] the residual stream */
    rt_buffer *qkv;            /* [n_batch][q_dim + 2 kv_dim] this pass's queries, keys and values */
    rt_buffer *q;              /* [n_batch][q_dim] the queries rotated */
    rt_buffer *att;            /* [n_batch][q_dim] attention output */
    rt_buffer *hb;             /* [n_batch][ffn_dim] silu(gate) * up */
    rt_buffer *t;              /* [n_batch][dim] a sub-layer's output before its post-norm */
    rt_buffer *moe[5];         /* models with experts: lm_fwd's moe_logits, moe_ids, moe_w, moe_h, moe_o */
    rt_buffer *xsel;           /* [n_batch][dim] the rows that produce logits, gathered */
    int32_t logit_rows;        /* rows the logits buffers hold now (grown when more are asked for) */
    int32_t logit_rows_max;    /* what one binding of logits allows */
    int32_t out_w;             /* floats of an output row: n_vocab, or dim for a context of embeddings */
    bool embeddings;
    rt_buffer *logits;         /* [logit_rows][out_w] */
    rt_buffer *logits_host;    /* [logit_rows][out_w] readback */
    rt_buffer *next;           /* [n_batch] int32 argmax of the logits rows (readback) */
    /* the inputs (upload memory), and their device-local copies where that memory is not device-local */
    rt_buffer *in[N_IN], *in_dev[N_IN];
    int32_t *h_in[N_IN];       /* host staging of the inputs */
    size_t in_elems[N_IN];
    recorded rec[N_RECORDED];
    uint64_t clock;
    rt_seq *copies;            /* block copies (copy on write), recorded when needed */
    const rt_seq *last_step, *last_pass;
    int64_t n_evaluated;
    atomic_bool abort;
    /* the pass submitted and not waited for yet (lm_ctx_submit): where its outputs go, and how to undo it */
    struct pending {
        rt_seq *seq;
        int64_t n, n_sel, n_out;
        float *logits;
        int32_t *argmax;
        int32_t n_seqs, seqs[256];
        int64_t before[256];
    } pend;
};

static rt_ref at(rt_buffer *b, int64_t elem_off) { return rt_at(b, (size_t)elem_off * 4); }
static rt_ref input(const lm_ctx *c, int i) { return at(c->in_dev[i] ? c->in_dev[i] : c->in[i], 0); }

/* ---------------------------------------------------------------- the forward pass */

/* Records the pass of n rows (inputs in c->in) that gives logits for n_sel of them (out: OUT_*): the
 * embeddings, the family's layers, then the logits of the rows asked for. */
static int record_forward(lm_ctx *c, rt_seq *seq, int64_t n, int64_t n_sel, int out)
{
    const lm_model *m = c->m;
    const lm_hparams *hp = &m->hp;
    const lm_arch *a = m->arch;
    lm_fwd f = { .seq = seq, .m = m, .hp = hp, .n = n, .x = at(c->x, 0), .qkv = at(c->qkv, 0), .q = at(c->q, 0),
                 .att = at(c->att, 0), .hb = at(c->hb, 0), .t = at(c->t, 0), .ids = input(c, IN_IDS),
                 .pos = input(c, IN_POS), .slots = input(c, IN_ROW), .pages = input(c, IN_PAGES), .kc = c->kc,
                 .vc = c->vc, .cache_rows = (int64_t)c->n_blocks * c->bs, .cache_type = c->kv_type,
                 .block_size = c->bs, .max_keys = c->n_ctx };
    /* a row's last key: its position, but for an encoder its sequence's last (an input of its own, which
     * a decoder neither fills nor uploads) */
    bool both_ways = lm_model_is_encoder(m);
    f.kend = both_ways ? input(c, IN_KEND) : f.pos;
    if (c->moe[0]) {
        f.moe_logits = at(c->moe[0], 0), f.moe_ids = at(c->moe[1], 0), f.moe_w = at(c->moe[2], 0);
        f.moe_h = at(c->moe[3], 0), f.moe_o = at(c->moe[4], 0);
    }

    rt_seq_begin(seq);
    for (int i = 0; i < N_IN; i++)
        if (c->in_dev[i] && (i != IN_KEND || both_ways))
            rt_seq_copy(seq, at(c->in_dev[i], 0), at(c->in[i], 0),
                        (i == IN_PAGES ? c->in_elems[i] : i == IN_SEL ? (size_t)n_sel : (size_t)n) * 4);
    (a->embed ? a->embed : lm_fwd_embed)(&f);
    for (int l = 0; l < hp->n_layers; l++)
        a->layer(&f, l);
    if (n_sel > 0) {
        /* logits = output · norm(x) of the rows asked for: gathered first unless they are all the rows */
        rt_ref xl = f.x;
        if (n_sel < n) {
            xl = at(c->xsel, 0);
            rt_op_get_rows(seq, xl, f.x, RT_F32, input(c, IN_SEL), n_sel, n, hp->dim);
        }
        rt_ref logits = rt_at(c->logits, 0);
        const lm_weight *on = &m->g.out_norm;
        if (c->embeddings) { /* the hidden states, through the output norm where the model has one */
            if (on->buf && m->g.out_norm_b.buf)
                rt_op_layernorm(seq, logits, xl, lm_w(on), lm_w(&m->g.out_norm_b), n_sel, hp->dim, hp->norm_eps);
            else if (on->buf)
                rt_op_rmsnorm(seq, logits, xl, lm_w(on), n_sel, hp->dim, hp->norm_eps);
            rt_seq_copy(seq, rt_at(c->logits_host, 0), on->buf ? logits : xl, (size_t)n_sel * hp->dim * 4);
            return rt_seq_end(seq);
        }
        rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = logits, .x = xl, .w = lm_w(&m->g.output), .wt = m->g.output.type,
                                                .m = n_sel, .n = hp->n_vocab, .k = hp->dim, .norm_w = lm_w(on),
                                                .norm_eps = hp->norm_eps });
        if (a->logits)
            a->logits(&f, logits, n_sel);
        if (out & OUT_ARGMAX)
            rt_op_argmax(seq, rt_at(c->next, 0), logits, n_sel, hp->n_vocab);
        if (out & OUT_LOGITS)
            rt_seq_copy(seq, rt_at(c->logits_host, 0), logits, (size_t)n_sel * hp->n_vocab * 4);
    }
    return rt_seq_end(seq);
}

/* The pass of this shape, recorded on first use (evicting the least recently used recording). */
static rt_seq *pass_for(lm_ctx *c, int64_t n, int64_t n_sel, int out, char *err, size_t errlen)
{
    recorded *r = NULL, *lru = &c->rec[0];
    for (int i = 0; i < N_RECORDED; i++) {
        recorded *e = &c->rec[i];
        if (e->valid && e->rows == n && e->n_sel == n_sel && e->out == out)
            r = e;
        if (!e->valid || (lru->valid && e->used < lru->used))
            lru = e;
    }
    if (!r) {
        r = lru;
        r->valid = false;
        if (record_forward(c, r->seq, n, n_sel, out)) {
            lm_fail(err, errlen, LM_ERR_DEVICE, "forward pass: %s", rt_seq_errmsg(r->seq));
            return NULL;
        }
        *r = (recorded){ .seq = r->seq, .rows = n, .n_sel = n_sel, .out = out, .valid = true };
    }
    r->used = ++c->clock;
    return r->seq;
}

/* A recording whose submission or wait failed keeps its error (sequences' errors are sticky): it is
 * recorded anew on its next use, so that one failed pass does not fail every later one. */
static void forget(lm_ctx *c, const rt_seq *seq)
{
    for (int i = 0; i < N_RECORDED; i++)
        if (c->rec[i].seq == seq)
            c->rec[i].valid = false;
    if (c->last_step == seq)
        c->last_step = NULL;
    if (c->last_pass == seq)
        c->last_pass = NULL;
}

/* ---------------------------------------------------------------- creation */

static int finish_pass(lm_ctx *c, char *err, size_t errlen);

void lm_ctx_free(lm_ctx *c)
{
    if (!c)
        return;
    finish_pass(c, NULL, 0); /* a pass in flight ends first */
    for (int i = 0; i < N_RECORDED; i++)
        rt_seq_destroy(c->rec[i].seq);
    rt_seq_destroy(c->copies);
    if (c->kc)
        for (int l = 0; l < c->m->hp.n_layers; l++) {
            rt_buffer_destroy(c->kc[l]);
            rt_buffer_destroy(c->vc[l]);
        }
    free(c->kc);
    free(c->vc);
    for (int i = 0; i < 5; i++)
        rt_buffer_destroy(c->moe[i]);
    rt_buffer *bufs[] = { c->x, c->t, c->qkv, c->q, c->att, c->hb, c->xsel, c->logits, c->logits_host, c->next };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        rt_buffer_destroy(bufs[i]);
    for (int i = 0; i < N_IN; i++) {
        rt_buffer_destroy(c->in[i]);
        rt_buffer_destroy(c->in_dev[i]);
        free(c->h_in[i]);
    }
    kvb_destroy(c->kv);
    c->m->n_sessions--;
    free(c);
}

int lm_ctx_create(lm_model *m, const lm_ctx_opts *o, lm_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    const lm_hparams *hp = &m->hp;
    lm_ctx_opts def = { 0 };
    if (!o)
        o = &def;
    if (o->n_ctx < 0 || o->n_batch < 0 || o->n_seq_max < 0 || o->n_seq_max > MAX_SEQS || o->n_kv_blocks < 0 ||
        o->block_size < 0 ||
        (o->block_size && (o->block_size > 256 || (o->block_size & (o->block_size - 1)))))
        return lm_fail(err, errlen, LM_ERR_INVALID, "context options out of range (block size %d: a power of 2 up to 256)",
                       o->block_size);
    lm_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    c->m = m;
    m->n_sessions++;
    c->n_ctx = o->n_ctx ? o->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    c->n_batch = o->n_batch ? o->n_batch : 256;
    c->n_seq_max = o->n_seq_max ? o->n_seq_max : 1;
    if (c->n_batch > c->n_ctx * c->n_seq_max)
        c->n_batch = c->n_ctx * c->n_seq_max;
    c->bs = o->block_size ? o->block_size : 16;
    c->max_blocks = (c->n_ctx + c->bs - 1) / c->bs;
    int64_t blocks = o->n_kv_blocks ? o->n_kv_blocks : (int64_t)c->max_blocks * c->n_seq_max;
    /* f16 rows are written in pairs: a model with an odd KV width keeps an f32 cache */
    int64_t q_dim = (int64_t)hp->n_heads * hp->head_dim, kv_dim = (int64_t)hp->n_kv_heads * hp->head_dim;
    c->kv_type = o->kv_f32 || kv_dim % 2 ? RT_F32 : RT_F16;
    const rt_device_info *dev = rt_ctx_device(m->ctx);
    size_t row_bytes = (size_t)kv_dim * rt_dtype_size(c->kv_type), room = (size_t)dev->max_storage_buffer_range - 1024;
    if (blocks * c->bs * (int64_t)row_bytes > (int64_t)room || blocks > INT32_MAX / c->bs) {
        lm_fail(err, errlen, LM_ERR_INVALID,
                "a KV cache of %lld positions needs %.1f MiB per layer, more than this device binds at once (%.0f MiB): "
                "ask for a smaller context or fewer sequences%s",
                (long long)(blocks * c->bs), (double)blocks * c->bs * row_bytes / 1048576.0, room / 1048576.0,
                c->kv_type == RT_F32 ? ", or an f16 cache" : "");
        lm_ctx_free(c);
        return LM_ERR_INVALID;
    }
    c->n_blocks = (int32_t)blocks;
    c->kv = kvb_create(c->n_blocks, c->bs);
    c->embeddings = o->embeddings;
    c->out_w = c->embeddings ? hp->dim : hp->n_vocab;
    int64_t vocab_bytes = (int64_t)c->out_w * 4, fit = (int64_t)room / vocab_bytes;
    c->logit_rows_max = fit < 1 ? 1 : fit < c->n_batch ? (int32_t)fit : c->n_batch;
    c->logit_rows = c->n_seq_max < c->logit_rows_max ? c->n_seq_max : c->logit_rows_max;
    c->kc = calloc((size_t)hp->n_layers, sizeof *c->kc);
    c->vc = calloc((size_t)hp->n_layers, sizeof *c->vc);
    int64_t B = c->n_batch;
    for (int i = 0; i < N_IN; i++)
        c->in_elems[i] = (size_t)B;
    c->in_elems[IN_PAGES] = (size_t)B + (size_t)c->n_seq_max * (size_t)c->max_blocks;
    bool host_ok = c->kv && c->kc && c->vc;
    for (int i = 0; i < N_IN; i++)
        host_ok &= (c->h_in[i] = calloc(c->in_elems[i], sizeof(int32_t))) != NULL;
    if (!host_ok) {
        lm_ctx_free(c);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    }
    rt_ctx *ctx = m->ctx;
    size_t cache_bytes = (size_t)blocks * (size_t)c->bs * row_bytes;
    int rc = RT_OK;
    for (int l = 0; l < hp->n_layers && !rc; l++)
        if (!(rc = rt_buffer_create(ctx, RT_MEM_DEVICE, cache_bytes, &c->kc[l])))
            rc = rt_buffer_create(ctx, RT_MEM_DEVICE, cache_bytes, &c->vc[l]);
    struct { rt_buffer **b; rt_mem kind; int64_t bytes; } want[] = {
        { &c->x, RT_MEM_DEVICE, B * hp->dim * 4 },
        { &c->t, RT_MEM_DEVICE, B * hp->dim * 4 },
        { &c->qkv, RT_MEM_DEVICE, B * (q_dim + 2 * kv_dim) * 4 },
        { &c->q, RT_MEM_DEVICE, B * q_dim * 4 },
        { &c->att, RT_MEM_DEVICE, B * q_dim * 4 },
        { &c->hb, RT_MEM_DEVICE, B * hp->ffn_dim * 4 },
        { &c->xsel, RT_MEM_DEVICE, B * hp->dim * 4 },
        { &c->logits, RT_MEM_DEVICE, c->logit_rows * vocab_bytes },
        { &c->logits_host, RT_MEM_READBACK, c->logit_rows * vocab_bytes },
        { &c->next, RT_MEM_READBACK, B * 4 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0] && !rc; i++)
        rc = rt_buffer_create(ctx, want[i].kind, (size_t)want[i].bytes, want[i].b);
    if (hp->n_expert > 0) {
        int64_t used = hp->n_expert_used;
        int64_t moe_bytes[5] = { B * hp->n_expert * 4, B * used * 4, B * used * 4, B * used * hp->expert_ffn_dim * 4,
                                 B * used * hp->dim * 4 };
        for (int i = 0; i < 5 && !rc; i++)
            rc = rt_buffer_create(ctx, RT_MEM_DEVICE, (size_t)moe_bytes[i], &c->moe[i]);
    }
    for (int i = 0; i < N_IN && !rc; i++)
        rc = rt_buffer_create(ctx, RT_MEM_UPLOAD, c->in_elems[i] * 4, &c->in[i]);
    for (int i = 0; i < N_IN && !rc; i++)
        if (!rt_buffer_device_local(c->in[i]))
            rc = rt_buffer_create(ctx, RT_MEM_DEVICE, c->in_elems[i] * 4, &c->in_dev[i]);
    if (rc) {
        lm_fail(err, errlen, LM_ERR_DEVICE, "a context of %d positions (KV cache %.1f MiB) does not fit: %s", c->n_ctx,
                2.0 * hp->n_layers * cache_bytes / 1048576.0, rt_ctx_errmsg(ctx));
        lm_ctx_free(c);
        return LM_ERR_DEVICE;
    }
    for (int i = 0; i < N_RECORDED && !rc; i++)
        rc = rt_seq_create(ctx, &c->rec[i].seq);
    if (rc || rt_seq_create(ctx, &c->copies)) {
        lm_fail(err, errlen, LM_ERR_DEVICE, "command buffers: %s", rt_ctx_errmsg(ctx));
        lm_ctx_free(c);
        return LM_ERR_DEVICE;
    }
    *out = c;
    return LM_OK;
}

/* Makes the logits buffers hold `rows` rows (at most logit_rows_max): the recordings bind the old ones
 * and are made again on their next use. */
static int logits_reserve(lm_ctx *c, int32_t rows, char *err, size_t errlen)
{
    if (rows > c->logit_rows_max)
        rows = c->logit_rows_max;
    if (rows <= c->logit_rows)
        return LM_OK;
    size_t bytes = (size_t)rows * (size_t)c->out_w * 4;
    rt_buffer *dev = NULL, *host = NULL;
    if (rt_buffer_create(c->m->ctx, RT_MEM_DEVICE, bytes, &dev) ||
        rt_buffer_create(c->m->ctx, RT_MEM_READBACK, bytes, &host)) {
        rt_buffer_destroy(dev);
        return lm_fail(err, errlen, LM_ERR_DEVICE, "logits of %d rows: %s", rows, rt_ctx_errmsg(c->m->ctx));
    }
    rt_buffer_destroy(c->logits);
    rt_buffer_destroy(c->logits_host);
    c->logits = dev;
    c->logits_host = host;
    c->logit_rows = rows;
    for (int i = 0; i < N_RECORDED; i++)
        c->rec[i].valid = false;
    c->last_step = c->last_pass = NULL;
    return LM_OK;
}

/* ---------------------------------------------------------------- sequences */

int32_t lm_ctx_seq_new(lm_ctx *c)
{
    int32_t id = kvb_seq_new(c->kv);
    return id >= 0 ? id : -LM_ERR_NOMEM;
}

void lm_ctx_seq_free(lm_ctx *c, int32_t seq) { kvb_seq_free(c->kv, seq); }

int32_t lm_ctx_seq_fork(lm_ctx *c, int32_t seq)
{
    int32_t id = kvb_seq_fork(c->kv, seq);
    return id >= 0 ? id : -LM_ERR_NOMEM;
}

void lm_ctx_seq_truncate(lm_ctx *c, int32_t seq, int64_t n) { kvb_seq_truncate(c->kv, seq, n); }

const int32_t *lm_ctx_seq_tokens(const lm_ctx *c, int32_t seq, int64_t *n) { return kvb_seq_tokens(c->kv, seq, n); }

int64_t lm_ctx_seq_reuse(lm_ctx *c, int32_t seq, const int32_t *tokens, int64_t n)
{
    return kvb_match_prefix(c->kv, seq, tokens, n);
}

void lm_ctx_kv_stats(const lm_ctx *c, lm_kv_stats *st)
{
    kvb_stats k;
    kvb_get_stats(c->kv, &k);
    *st = (lm_kv_stats){ .n_blocks = k.n_blocks, .block_size = k.block_size, .used = k.used, .cached = k.cached,
                         .free = k.free, .n_seqs = k.n_seqs, .tokens = k.tokens, .prefix_queries = k.prefix_queries,
                         .prefix_hits = k.prefix_hits };
}

int32_t lm_ctx_n_ctx(const lm_ctx *c) { return c->n_ctx; }
int32_t lm_ctx_n_batch(const lm_ctx *c) { return c->n_batch; }
int64_t lm_ctx_n_evaluated(const lm_ctx *c) { return c->n_evaluated; }
const lm_model *lm_ctx_model(const lm_ctx *c) { return c->m; }
void lm_ctx_abort(lm_ctx *c) { atomic_store(&c->abort, true); }

void lm_ctx_memory(const lm_ctx *c, uint64_t *kv_bytes, uint64_t *scratch_bytes)
{
    uint64_t kv = 0, other = 0;
    for (int l = 0; l < c->m->hp.n_layers; l++)
        kv += rt_buffer_size(c->kc[l]) + rt_buffer_size(c->vc[l]);
    for (int i = 0; i < 5; i++)
        rt_buffer_destroy(c->moe[i]);
    rt_buffer *bufs[] = { c->x, c->t, c->qkv, c->q, c->att, c->hb, c->xsel, c->logits, c->logits_host, c->next };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        other += rt_buffer_size(bufs[i]);
    for (int i = 0; i < 5; i++)
        other += rt_buffer_size(c->in[i]) + (c->in_dev[i] ? rt_buffer_size(c->in_dev[i]) : 0);
    if (kv_bytes)
        *kv_bytes = kv;
    if (scratch_bytes)
        *scratch_bytes = other;
}

/* ---------------------------------------------------------------- evaluation */

/* The copies that copy on write asked for, done on the device before the pass writes the rows. */
static int do_copies(lm_ctx *c, char *err, size_t errlen)
{
    int32_t n;
    const kvb_copy *cp = kvb_take_copies(c->kv, &n);
    if (!n)
        return LM_OK;
    size_t row_bytes = (size_t)c->m->hp.n_kv_heads * c->m->hp.head_dim * rt_dtype_size(c->kv_type);
    rt_seq_begin(c->copies);
    for (int32_t i = 0; i < n; i++)
        for (int l = 0; l < c->m->hp.n_layers; l++) {
            size_t src = (size_t)cp[i].src * c->bs * row_bytes, dst = (size_t)cp[i].dst * c->bs * row_bytes;
            rt_seq_copy(c->copies, rt_at(c->kc[l], dst), rt_at(c->kc[l], src), (size_t)cp[i].rows * row_bytes);
            rt_seq_copy(c->copies, rt_at(c->vc[l], dst), rt_at(c->vc[l], src), (size_t)cp[i].rows * row_bytes);
        }
    if (rt_seq_end(c->copies) || rt_seq_run(c->copies))
        return lm_fail(err, errlen, LM_ERR_DEVICE, "copying KV blocks: %s", rt_seq_errmsg(c->copies));
    return LM_OK;
}

/* One pass: rows [r0, r0 + n) of the batch, whose sequences have room in the pool (checked). */
static int eval_pass(lm_ctx *c, const lm_batch *b, int64_t r0, int64_t n, const int8_t *want, float *logits,
                     int32_t *argmax, int64_t *n_out, char *err, size_t errlen)
{
    int32_t *ids = c->h_in[IN_IDS], *pos = c->h_in[IN_POS], *row = c->h_in[IN_ROW], *pages = c->h_in[IN_PAGES],
            *sel = c->h_in[IN_SEL];
    int64_t n_sel = 0, n_pages = n, before[MAX_SEQS];
    int32_t seqs[MAX_SEQS], starts[MAX_SEQS], n_seqs = 0;
    int rc = LM_OK;
    for (int64_t i = 0; i < n; i++) { /* the sequences of the pass, and their lengths before it */
        int32_t s = b->seq[r0 + i], k = 0;
        while (k < n_seqs && seqs[k] != s)
            k++;
        if (k == n_seqs) {
            seqs[n_seqs] = s;
            kvb_seq_tokens(c->kv, s, &before[n_seqs++]);
        }
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t s = b->seq[r0 + i];
        int64_t len, slot;
        kvb_seq_tokens(c->kv, s, &len);
        if (kvb_append(c->kv, s, &b->tokens[r0 + i], 1, &slot)) {
            rc = lm_fail(err, errlen, LM_ERR_KV_FULL, "the KV cache has no free block");
            goto fail;
        }
        ids[i] = b->tokens[r0 + i];
        pos[i] = (int32_t)len;
        row[i] = (int32_t)slot;
        if (want[r0 + i])
            sel[n_sel++] = (int32_t)i;
    }
    /* the block tables, once per sequence, after the appends (a table grows as its rows are added) */
    for (int32_t k = 0; k < n_seqs; k++) {
        int32_t nt;
        const int32_t *tab = kvb_seq_table(c->kv, seqs[k], &nt);
        starts[k] = (int32_t)n_pages;
        memcpy(pages + n_pages, tab, (size_t)nt * sizeof *tab);
        n_pages += nt;
    }
    int32_t *kend = c->h_in[IN_KEND];
    bool both_ways = lm_model_is_encoder(c->m);
    for (int64_t i = 0; i < n; i++) {
        int32_t k = 0;
        while (seqs[k] != b->seq[r0 + i])
            k++;
        pages[i] = starts[k];
        if (both_ways) { /* an encoder's row sees its sequence's every row, this pass's included */
            int64_t len;
            kvb_seq_tokens(c->kv, seqs[k], &len);
            kend[i] = (int32_t)len - 1;
        }
    }
    if ((rc = do_copies(c, err, errlen)))
        goto fail;
    int out = (logits ? OUT_LOGITS : 0) | (argmax ? OUT_ARGMAX : 0);
    if (!out)
        n_sel = 0;
    rt_seq *seq = pass_for(c, n, n_sel, n_sel ? out : 0, err, errlen);
    if (!seq) {
        rc = LM_ERR_DEVICE;
        goto fail;
    }
    size_t sizes[N_IN] = { (size_t)n, (size_t)n, (size_t)n, (size_t)n_pages, (size_t)n_sel,
                           both_ways ? (size_t)n : 0 };
    for (int i = 0; i < N_IN && !rc; i++)
        if (sizes[i] && rt_buffer_write(c->in[i], 0, c->h_in[i], sizes[i] * 4))
            rc = lm_fail(err, errlen, LM_ERR_DEVICE, "writing inputs: %s", rt_ctx_errmsg(c->m->ctx));
    if (!rc && rt_seq_submit(seq)) {
        rc = lm_fail(err, errlen, LM_ERR_DEVICE, "forward pass: %s", rt_seq_errmsg(seq));
        forget(c, seq);
    }
    if (rc)
        goto fail;
    struct pending *pd = &c->pend;
    *pd = (struct pending){ .seq = seq, .n = n, .n_sel = n_sel, .n_out = *n_out, .logits = logits, .argmax = argmax,
                            .n_seqs = n_seqs };
    memcpy(pd->seqs, seqs, (size_t)n_seqs * sizeof *seqs);
    memcpy(pd->before, before, (size_t)n_seqs * sizeof *before);
    *n_out += n_sel;
    return LM_OK;
fail: /* the pass's rows were not written: the sequences go back to where they were */
    for (int32_t k = 0; k < n_seqs; k++)
        kvb_seq_rollback(c->kv, seqs[k], before[k]);
    return rc;
}

/* Waits for the pass submitted last and reads its outputs (on failure its rows are undone). */
static int finish_pass(lm_ctx *c, char *err, size_t errlen)
{
    struct pending *pd = &c->pend;
    rt_seq *seq = pd->seq;
    if (!seq)
        return LM_OK;
    pd->seq = NULL;
    int32_t w = c->out_w;
    int rc = LM_OK;
    if (rt_seq_wait(seq)) {
        rc = lm_fail(err, errlen, LM_ERR_DEVICE, "forward pass: %s", rt_seq_errmsg(seq));
        forget(c, seq);
    }
    else if (pd->n_sel && pd->logits &&
             rt_buffer_read(c->logits_host, 0, pd->logits + pd->n_out * w, (size_t)pd->n_sel * w * 4))
        rc = lm_fail(err, errlen, LM_ERR_DEVICE, "reading logits: %s", rt_ctx_errmsg(c->m->ctx));
    else if (pd->n_sel && pd->argmax && rt_buffer_read(c->next, 0, pd->argmax + pd->n_out, (size_t)pd->n_sel * 4))
        rc = lm_fail(err, errlen, LM_ERR_DEVICE, "reading tokens: %s", rt_ctx_errmsg(c->m->ctx));
    if (rc) {
        for (int32_t k = 0; k < pd->n_seqs; k++)
            kvb_seq_rollback(c->kv, pd->seqs[k], pd->before[k]);
        return rc;
    }
    if (pd->n == 1)
        c->last_step = seq;
    else
        c->last_pass = seq;
    c->n_evaluated += pd->n;
    return LM_OK;
}

int lm_ctx_wait(lm_ctx *c, char *err, size_t errlen) { return finish_pass(c, err, errlen); }
bool lm_ctx_pending(const lm_ctx *c) { return c->pend.seq != NULL; }

int lm_ctx_eval(lm_ctx *c, const lm_batch *b, float *logits, int32_t *argmax, char *err, size_t errlen)
{
    int rc = lm_ctx_submit(c, b, logits, argmax, err, errlen);
    return rc ? rc : finish_pass(c, err, errlen);
}

int lm_ctx_submit(lm_ctx *c, const lm_batch *b, float *logits, int32_t *argmax, char *err, size_t errlen)
{
    int rc0 = finish_pass(c, err, errlen); /* one pass in flight at most */
    if (rc0)
        return rc0;
    atomic_store(&c->abort, false);
    if (!b || b->n <= 0 || !b->tokens || !b->seq)
        return lm_fail(err, errlen, LM_ERR_INVALID, "no tokens to evaluate");
    int32_t n_vocab = c->m->hp.n_vocab, max_id = 0;
    for (int64_t i = 0; i < b->n; i++) {
        if (!kvb_seq_valid(c->kv, b->seq[i]))
            return lm_fail(err, errlen, LM_ERR_INVALID, "row %lld: no sequence %d", (long long)i, b->seq[i]);
        if (b->tokens[i] < 0 || b->tokens[i] >= n_vocab)
            return lm_fail(err, errlen, LM_ERR_INVALID, "token id %d is outside the vocabulary (%d)", b->tokens[i],
                           n_vocab);
        max_id = b->seq[i] > max_id ? b->seq[i] : max_id;
    }
    /* each sequence's rows, its room in the context, and the blocks they all need, before anything changes;
     * by default the last row of each sequence produces logits */
    int64_t *rows = calloc((size_t)max_id + 1, sizeof *rows);
    int8_t *want = malloc((size_t)b->n);
    if (!rows || !want) {
        free(rows);
        free(want);
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
    }
    for (int64_t i = 0; i < b->n; i++)
        rows[b->seq[i]]++;
    int64_t n_want = 0;
    int32_t blocks = 0;
    int rc = LM_OK;
    for (int64_t i = b->n - 1; i >= 0; i--) {
        int32_t s = b->seq[i];
        bool last = rows[s] > 0; /* the first row of s seen from the end */
        if (last) {
            int64_t len;
            kvb_seq_tokens(c->kv, s, &len);
            if (len + rows[s] > c->n_ctx && !rc)
                rc = lm_fail(err, errlen, LM_ERR_CONTEXT_FULL, "%lld tokens after %lld exceed the context of %d positions",
                             (long long)rows[s], (long long)len, c->n_ctx);
            blocks += kvb_blocks_needed(c->kv, s, rows[s]);
            rows[s] = -rows[s];
        }
        want[i] = b->want ? b->want[i] != 0 : last;
        n_want += want[i];
    }
    free(rows);
    kvb_stats st;
    kvb_get_stats(c->kv, &st);
    if (!rc && blocks > st.free + st.cached)
        rc = lm_fail(err, errlen, LM_ERR_KV_FULL, "the batch needs %d KV blocks, %d are free", blocks, st.free + st.cached);
    if (!rc && (logits || argmax))
        rc = logits_reserve(c, (int32_t)(n_want < c->n_batch ? n_want : c->n_batch), err, errlen);
    /* passes of at most n_batch rows, n_seq_max sequences and logit_rows rows of logits */
    int64_t n_out = 0;
    for (int64_t r0 = 0; r0 < b->n && !rc;) {
        int64_t n = 0, sel = 0;
        int32_t seqs[MAX_SEQS], n_seqs = 0;
        while (r0 + n < b->n && n < c->n_batch) {
            int32_t s = b->seq[r0 + n], k = 0;
            while (k < n_seqs && seqs[k] != s)
                k++;
            if (k == n_seqs && n_seqs == c->n_seq_max)
                break;
            if (want[r0 + n] && (logits || argmax) && sel == c->logit_rows)
                break;
            if (k == n_seqs)
                seqs[n_seqs++] = s;
            sel += want[r0 + n];
            n++;
        }
        if (r0 > 0 && !(rc = finish_pass(c, err, errlen)) && atomic_load(&c->abort))
            rc = lm_fail(err, errlen, LM_ERR_ABORTED, "aborted after %lld of %lld tokens", (long long)r0, (long long)b->n);
        if (!rc)
            rc = eval_pass(c, b, r0, n, want, logits, argmax, &n_out, err, errlen);
        r0 += n;
    }
    free(want);
    return rc;
}

int lm_ctx_profile(const lm_ctx *c, bool prefill,
                   void (*fn)(void *user, const char *kernel, double ns, double bytes, double flops), void *user)
{
    const rt_seq *seq = prefill ? c->last_pass : c->last_step;
    int n = seq ? rt_seq_timing_count(seq) : 0;
    for (int i = 0; i < n; i++) {
        const char *kernel;
        double ns, bytes = 0, flops = 0;
        if (rt_seq_timing(seq, i, &kernel, &ns) == RT_OK) {
            rt_seq_timing_cost(seq, i, &bytes, &flops);
            fn(user, kernel, ns, bytes, flops);
        }
    }
    return n;
}

void lm_ctx_counts(const lm_ctx *c, bool prefill, int *commands, int *barriers)
{
    const rt_seq *seq = prefill ? c->last_pass : c->last_step;
    *commands = *barriers = 0;
    if (seq)
        rt_seq_counts(seq, commands, barriers);
}
