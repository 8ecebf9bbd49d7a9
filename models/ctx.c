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
#include "model_internal.h"

enum { OUT_LOGITS = 1, OUT_ARGMAX = 2 };
#define N_RECORDED 8
#define MAX_SEQS 256 /* sequences in one pass at most (n_seq_max) */

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
    rt_buffer *xsel;           /* [n_batch][dim] the rows that produce logits, gathered */
    int32_t logit_rows;        /* rows the logits buffers hold now (grown when more are asked for) */
    int32_t logit_rows_max;    /* what one binding of logits allows */
    rt_buffer *logits;         /* [logit_rows][n_vocab] */
    rt_buffer *logits_host;    /* [logit_rows][n_vocab] readback */
    rt_buffer *next;           /* [n_batch] int32 argmax of the logits rows (readback) */
    /* the inputs (upload memory), and their device-local copies where that memory is not device-local */
    rt_buffer *in[5], *in_dev[5];
    int32_t *h_in[5];          /* host staging of the inputs */
    size_t in_elems[5];
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
enum { IN_IDS, IN_POS, IN_ROW, IN_PAGES, IN_SEL };

static rt_ref at(rt_buffer *b, int64_t elem_off) { return rt_at(b, (size_t)elem_off * 4); }
static rt_ref input(const lm_ctx *c, int i) { return at(c->in_dev[i] ? c->in_dev[i] : c->in[i], 0); }

/* ---------------------------------------------------------------- the forward pass */

/* Records the pass of n rows (inputs in c->in) that gives logits for n_sel of them (out: OUT_*). */
static int record_forward(lm_ctx *c, rt_seq *seq, int64_t n, int64_t n_sel, int out)
{
    const lm_model *m = c->m;
    const lm_hparams *hp = &m->hp;
    int64_t dim = hp->dim, hd = hp->head_dim, q_dim = (int64_t)hp->n_heads * hd, kv_dim = (int64_t)hp->n_kv_heads * hd;
    int64_t ld = q_dim + 2 * kv_dim;
    rt_ref none = { 0 };
    rt_rope_desc rope = {
        .mode = hp->rope_mode, .n_rot = hp->n_rot, .base = hp->rope_base,
        .freq_scale = hp->rope_scaling == LM_ROPE_SCALING_NONE ? 1.0f : 1.0f / hp->rope_factor,
        .ext_factor = hp->rope_scaling == LM_ROPE_SCALING_YARN ? 1.0f : 0.0f,
        .attn_factor = hp->rope_scaling == LM_ROPE_SCALING_YARN ? hp->yarn_attn_factor : 1.0f,
        .beta_fast = hp->yarn_beta_fast, .beta_slow = hp->yarn_beta_slow, .n_ctx_orig = hp->rope_n_ctx_orig,
        .freq_factors = m->rope_freqs.buf ? rt_at(m->rope_freqs.buf, 0) : none,
    };
    int64_t pool_rows = (int64_t)c->n_blocks * c->bs;
    rt_attn_desc attn = { .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads, .head_dim = hp->head_dim,
                          .scale = 1.0f / sqrtf((float)hd), .cap = pool_rows, .cache_type = c->kv_type,
                          .block_size = c->bs, .pages = input(c, IN_PAGES), .max_keys = c->n_ctx };
    rt_ref X = at(c->x, 0), QKV = at(c->qkv, 0), Q = at(c->q, 0), ATT = at(c->att, 0), HB = at(c->hb, 0),
           IDS = input(c, IN_IDS), POS = input(c, IN_POS), ROW = input(c, IN_ROW);
#define B(w) ((w).buf ? rt_at((w).buf, 0) : none)

    rt_seq_begin(seq);
    for (int i = 0; i < 5; i++)
        if (c->in_dev[i])
            rt_seq_copy(seq, at(c->in_dev[i], 0), at(c->in[i], 0),
                        (i == IN_PAGES ? c->in_elems[i] : i == IN_SEL ? (size_t)n_sel : (size_t)n) * 4);
    rt_op_get_rows(seq, X, rt_at(m->tok_embd.buf, 0), m->tok_embd.type, IDS, n, hp->n_vocab, dim);
    for (int l = 0; l < hp->n_layers; l++) {
        const lm_layer *L = &m->layers[l];
        /* attention: x += wo · attention(rope(wq · norm(x)), cache(rope(wk · norm(x))), cache(wv · norm(x))):
         * the three projections in one product where the model loaded them as one matrix (else three
         * products into the columns of one QKV), the norm folded in; then Q and K rotated, and K and V
         * written to the rows of the cache that the block tables give, in one dispatch */
        rt_ref attn_norm = rt_at(L->attn_norm.buf, 0);
        if (L->wqkv.buf) {
            rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = QKV, .x = X, .w = rt_at(L->wqkv.buf, 0), .wt = L->wqkv.type,
                                                    .bias = B(L->bqkv), .m = n, .n = ld, .k = dim,
                                                    .norm_w = attn_norm, .norm_eps = hp->norm_eps });
        } else {
            const lm_weight *w[3] = { &L->wq, &L->wk, &L->wv }, *b[3] = { &L->bq, &L->bk, &L->bv };
            int64_t cols[3] = { q_dim, kv_dim, kv_dim }, col = 0;
            rt_seq_parallel(seq, true);
            for (int i = 0; i < 3; col += cols[i++])
                rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = at(c->qkv, col), .ldy = ld, .x = X,
                                                        .w = rt_at(w[i]->buf, 0), .wt = w[i]->type, .bias = B(*b[i]),
                                                        .m = n, .n = cols[i], .k = dim, .norm_w = attn_norm,
                                                        .norm_eps = hp->norm_eps });
            rt_seq_parallel(seq, false);
        }
        rt_op_rope_kv(seq, Q, rt_at(c->kc[l], 0), rt_at(c->vc[l], 0), c->kv_type, QKV, POS, ROW, n, hp->n_heads,
                      hp->n_kv_heads, (int)hd, pool_rows, &rope);
        rt_op_attention(seq, ATT, Q, rt_at(c->kc[l], 0), rt_at(c->vc[l], 0), POS, n, &attn);
        rt_op_matmul_acc(seq, X, ATT, rt_at(L->wo.buf, 0), L->wo.type, none, n, dim, q_dim);
        /* feed-forward: x += w_down · (silu(w_gate · norm(x)) * (w_up · norm(x))), the norm, both
         * projections and the SwiGLU in one dispatch */
        rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = HB, .x = X, .w = rt_at(L->w_gate.buf, 0),
                                                .wt = L->w_gate.type, .m = n, .n = hp->ffn_dim, .k = dim,
                                                .norm_w = rt_at(L->ffn_norm.buf, 0), .norm_eps = hp->norm_eps,
                                                .w_up = rt_at(L->w_up.buf, 0), .w_up_type = L->w_up.type });
        rt_op_matmul_acc(seq, X, HB, rt_at(L->w_down.buf, 0), L->w_down.type, none, n, dim, hp->ffn_dim);
    }
    if (n_sel > 0) {
        /* logits = output · norm(x) of the rows asked for: gathered first unless they are all the rows */
        rt_ref xl = X;
        if (n_sel < n) {
            xl = at(c->xsel, 0);
            rt_op_get_rows(seq, xl, X, RT_F32, input(c, IN_SEL), n_sel, n, dim);
        }
        rt_op_matmul_ex(seq, &(rt_matmul_desc){ .y = rt_at(c->logits, 0), .x = xl, .w = rt_at(m->output.buf, 0),
                                                .wt = m->output.type, .m = n_sel, .n = hp->n_vocab, .k = dim,
                                                .norm_w = rt_at(m->out_norm.buf, 0), .norm_eps = hp->norm_eps });
        if (out & OUT_ARGMAX)
            rt_op_argmax(seq, rt_at(c->next, 0), rt_at(c->logits, 0), n_sel, hp->n_vocab);
        if (out & OUT_LOGITS)
            rt_seq_copy(seq, rt_at(c->logits_host, 0), rt_at(c->logits, 0), (size_t)n_sel * hp->n_vocab * 4);
    }
#undef B
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
    rt_buffer *bufs[] = { c->x, c->qkv, c->q, c->att, c->hb, c->xsel, c->logits, c->logits_host, c->next };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        rt_buffer_destroy(bufs[i]);
    for (int i = 0; i < 5; i++) {
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
    int64_t vocab_bytes = (int64_t)hp->n_vocab * 4, fit = (int64_t)room / vocab_bytes;
    c->logit_rows_max = fit < 1 ? 1 : fit < c->n_batch ? (int32_t)fit : c->n_batch;
    c->logit_rows = c->n_seq_max < c->logit_rows_max ? c->n_seq_max : c->logit_rows_max;
    c->kc = calloc((size_t)hp->n_layers, sizeof *c->kc);
    c->vc = calloc((size_t)hp->n_layers, sizeof *c->vc);
    int64_t B = c->n_batch;
    c->in_elems[IN_IDS] = c->in_elems[IN_POS] = c->in_elems[IN_ROW] = c->in_elems[IN_SEL] = (size_t)B;
    c->in_elems[IN_PAGES] = (size_t)B + (size_t)c->n_seq_max * (size_t)c->max_blocks;
    for (int i = 0; i < 5; i++)
        c->h_in[i] = calloc(c->in_elems[i], sizeof(int32_t));
    if (!c->kv || !c->kc || !c->vc || !c->h_in[0] || !c->h_in[1] || !c->h_in[2] || !c->h_in[3] || !c->h_in[4]) {
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
    for (int i = 0; i < 5 && !rc; i++)
        rc = rt_buffer_create(ctx, RT_MEM_UPLOAD, c->in_elems[i] * 4, &c->in[i]);
    for (int i = 0; i < 5 && !rc; i++)
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
    size_t bytes = (size_t)rows * (size_t)c->m->hp.n_vocab * 4;
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
                         .free = k.free, .n_seqs = k.n_seqs, .prefix_queries = k.prefix_queries,
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
    rt_buffer *bufs[] = { c->x, c->qkv, c->q, c->att, c->hb, c->xsel, c->logits, c->logits_host, c->next };
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
    for (int64_t i = 0; i < n; i++) {
        int32_t k = 0;
        while (seqs[k] != b->seq[r0 + i])
            k++;
        pages[i] = starts[k];
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
    size_t sizes[5] = { (size_t)n, (size_t)n, (size_t)n, (size_t)n_pages, (size_t)n_sel };
    for (int i = 0; i < 5 && !rc; i++)
        if (sizes[i] && rt_buffer_write(c->in[i], 0, c->h_in[i], sizes[i] * 4))
            rc = lm_fail(err, errlen, LM_ERR_DEVICE, "writing inputs: %s", rt_ctx_errmsg(c->m->ctx));
    if (!rc && rt_seq_submit(seq))
        rc = lm_fail(err, errlen, LM_ERR_DEVICE, "forward pass: %s", rt_seq_errmsg(seq));
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
    int32_t n_vocab = c->m->hp.n_vocab;
    int rc = LM_OK;
    if (rt_seq_wait(seq))
        rc = lm_fail(err, errlen, LM_ERR_DEVICE, "forward pass: %s", rt_seq_errmsg(seq));
    else if (pd->n_sel && pd->logits &&
             rt_buffer_read(c->logits_host, 0, pd->logits + pd->n_out * n_vocab, (size_t)pd->n_sel * n_vocab * 4))
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
