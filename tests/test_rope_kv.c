/* test_rope_kv.c: rt_op_rope_kv (a layer's Q, K and V into place in one dispatch) equals the ops it
 * replaces, rt_op_rope on Q and K and rt_op_kv_write of K and V (both checked against double references
 * in test_kernels), on seeded random data: every rope mode and scaling, partial rotation, freq factors,
 * grouped-query shapes, f32 and f16 caches, caches at an offset, positions past the cache (not written:
 * the cache keeps its earlier contents), rows of a prefill at random positions, and cache rows given
 * apart from the positions (a paged cache: kv_write at those rows is the reference).
 * Tolerance: the same formula in two kernels, nmse <= 1e-12 for Q and an f32 cache (only a fused
 * multiply-add placed differently may differ), and for an f16 cache at most one unit in the last place of
 * a half per value (a value that lies at a rounding boundary). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static tu_rng R;

typedef struct shape {
    int64_t rows, cap;
    int n_heads, n_kv, hd;
    rt_dtype ct;
    rt_rope_desc rd;
    bool ff;
    const char *name;
    bool slotted;        /* cache rows from a slots buffer (a paged cache), not the positions */
} shape;

static uint16_t half_bits(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* a buffer with data, or zero-filled when data is NULL */
static rt_buffer *buf(rt_ctx *ctx, rt_mem kind, size_t bytes, const void *data)
{
    rt_buffer *b = NULL;
    CHECK(rt_buffer_create(ctx, kind, bytes, &b) == RT_OK, "buffer: %s", rt_ctx_errmsg(ctx));
    if (!b)
        return NULL;
    if (data)
        CHECK(rt_buffer_write(b, 0, data, bytes) == RT_OK, "write: %s", rt_ctx_errmsg(ctx));
    else
        CHECK(rt_buffer_fill(b, 0, bytes, 0x3c003c00u) == RT_OK, "fill: %s", rt_ctx_errmsg(ctx)); /* 1.0 in f16 */
    return b;
}

static void run_case(rt_ctx *ctx, const shape *c)
{
    int64_t q_dim = (int64_t)c->n_heads * c->hd, kv_dim = (int64_t)c->n_kv * c->hd, ld = q_dim + 2 * kv_dim;
    size_t cs = rt_dtype_size(c->ct), coff = 64; /* the caches start 64 bytes into their buffers */
    size_t qkv_n = (size_t)(c->rows * ld), cache_bytes = coff + (size_t)(c->cap * kv_dim) * cs;
    float *qkv = malloc(qkv_n * 4), *ff = malloc((size_t)c->rd.n_rot / 2 * 4);
    int32_t *pos = malloc((size_t)c->rows * 4);
    for (size_t i = 0; i < qkv_n; i++)
        qkv[i] = tu_normal(&R);
    for (int i = 0; i < c->rd.n_rot / 2; i++)
        ff[i] = tu_uniform(&R, 1, 8);
    int32_t *slot = malloc((size_t)c->rows * 4);
    /* distinct positions (two rows writing one cache row would race), some past the cache: the first rows
     * of a shuffle of 0 .. cap + max(4, rows) - 1; distinct slots likewise, from a shuffle of the cache's
     * rows (the slotted cases have no more rows than the cache) */
    int64_t np = c->cap + (c->rows > 4 ? c->rows : 4);
    int32_t *perm = malloc((size_t)np * 4);
    for (int pass = 0; pass < 2; pass++) {
        int64_t n = pass ? c->cap : np;
        for (int64_t i = 0; i < n; i++)
            perm[i] = (int32_t)i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = tu_u32(&R) % (uint32_t)(i + 1);
            int32_t t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (int64_t r = 0; r < c->rows; r++)
            (pass ? slot : pos)[r] = perm[r % n];
    }
    free(perm);
    /* fused: QKV -> Q, caches; apart: Q, K, V copies -> rope, rope, kv_write x2 */
    rt_buffer *bqkv = buf(ctx, RT_MEM_DEVICE, qkv_n * 4, qkv), *bpos = buf(ctx, RT_MEM_UPLOAD, (size_t)c->rows * 4, pos),
              *bff = buf(ctx, RT_MEM_DEVICE, (size_t)c->rd.n_rot / 2 * 4, ff),
              *fq = buf(ctx, RT_MEM_DEVICE, (size_t)(c->rows * q_dim) * 4, NULL),
              *fk = buf(ctx, RT_MEM_DEVICE, cache_bytes, NULL), *fv = buf(ctx, RT_MEM_DEVICE, cache_bytes, NULL),
              *aq = buf(ctx, RT_MEM_DEVICE, (size_t)(c->rows * q_dim) * 4, NULL),
              *ak = buf(ctx, RT_MEM_DEVICE, (size_t)(c->rows * kv_dim) * 4, NULL),
              *av = buf(ctx, RT_MEM_DEVICE, (size_t)(c->rows * kv_dim) * 4, NULL),
              *ck = buf(ctx, RT_MEM_DEVICE, cache_bytes, NULL), *cv = buf(ctx, RT_MEM_DEVICE, cache_bytes, NULL),
              *bslot = buf(ctx, RT_MEM_UPLOAD, (size_t)c->rows * 4, slot);
    rt_ref rows_at = rt_at(c->slotted ? bslot : bpos, 0); /* where the apart ops write the caches */
    rt_seq *seq = NULL;
    CHECK(rt_seq_create(ctx, &seq) == RT_OK, "seq: %s", rt_ctx_errmsg(ctx));
    if (!bqkv || !bpos || !bff || !fq || !fk || !fv || !aq || !ak || !av || !ck || !cv || !bslot || !seq)
        goto out;
    float *part = malloc((size_t)(c->rows * q_dim) * 4);
    for (int p = 0; p < 3; p++) { /* the parts of QKV apart, row by row */
        int64_t w = p ? kv_dim : q_dim, col = p == 0 ? 0 : p == 1 ? q_dim : q_dim + kv_dim;
        for (int64_t r = 0; r < c->rows; r++)
            memcpy(part + r * w, qkv + r * ld + col, (size_t)w * 4);
        rt_buffer_write(p == 0 ? aq : p == 1 ? ak : av, 0, part, (size_t)(c->rows * w) * 4);
    }
    free(part);
    rt_rope_desc rd = c->rd;
    if (c->ff)
        rd.freq_factors = rt_at(bff, 0);
    rt_seq_begin(seq);
    rt_op_rope_kv(seq, rt_at(fq, 0), rt_at(fk, coff), rt_at(fv, coff), c->ct, rt_at(bqkv, 0), rt_at(bpos, 0),
                  c->slotted ? rt_at(bslot, 0) : (rt_ref){ 0 }, c->rows, c->n_heads, c->n_kv, c->hd, c->cap, &rd);
    rt_op_rope(seq, rt_at(aq, 0), rt_at(bpos, 0), c->rows, c->n_heads, c->hd, &rd);
    rt_op_rope(seq, rt_at(ak, 0), rt_at(bpos, 0), c->rows, c->n_kv, c->hd, &rd);
    rt_op_kv_write(seq, rt_at(ck, coff), c->ct, rt_at(ak, 0), rows_at, c->rows, kv_dim, c->cap);
    rt_op_kv_write(seq, rt_at(cv, coff), c->ct, rt_at(av, 0), rows_at, c->rows, kv_dim, c->cap);
    int rc = rt_seq_end(seq);
    if (!rc)
        rc = rt_seq_run(seq);
    CHECK(rc == RT_OK, "%s: %s", c->name, rt_seq_errmsg(seq));
    if (rc)
        goto out;
    size_t qb = (size_t)(c->rows * q_dim) * 4;
    float *y = malloc(qb), *yr = malloc(qb);
    rt_buffer_read(fq, 0, y, qb);
    rt_buffer_read(aq, 0, yr, qb);
    double e = tu_nmse_f(y, yr, c->rows * q_dim);
    CHECK(e <= 1e-12, "%s: Q nmse %.3g", c->name, e);
    uint8_t *h = malloc(cache_bytes), *hr = malloc(cache_bytes);
    for (int p = 0; p < 2; p++) {
        rt_buffer_read(p ? fv : fk, 0, h, cache_bytes);
        rt_buffer_read(p ? cv : ck, 0, hr, cache_bytes);
        int64_t n = c->cap * kv_dim, bad = 0;
        if (c->ct == RT_F32) {
            e = tu_nmse_f((const float *)(h + coff), (const float *)(hr + coff), n);
            CHECK(e <= 1e-12, "%s: %s cache nmse %.3g", c->name, p ? "V" : "K", e);
        } else {
            for (int64_t i = 0; i < n; i++) {
                int d = half_bits(h + coff + 2 * i) - half_bits(hr + coff + 2 * i);
                bad += d < -1 || d > 1;
            }
            CHECK(bad == 0, "%s: %s cache: %lld f16 values more than 1 ulp apart", c->name, p ? "V" : "K",
                  (long long)bad);
        }
        CHECK(!memcmp(h, hr, coff), "%s: the bytes before the %s cache changed", c->name, p ? "V" : "K");
    }
    printf("%-28s Q nmse %.2g\n", c->name, tu_nmse_f(y, yr, c->rows * q_dim));
    free(y), free(yr), free(h), free(hr);
out:
    rt_seq_destroy(seq);
    rt_buffer *all[] = { bqkv, bpos, bff, fq, fk, fv, aq, ak, av, ck, cv, bslot };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rt_buffer_destroy(all[i]);
    free(qkv), free(ff), free(pos), free(slot);
}

int main(void)
{
    R.s = tu_seed("test_rope_kv");
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_rope_kv");
    const enum rt_rope_mode ADJ = RT_ROPE_ADJACENT, NEOX = RT_ROPE_NEOX;
#define RD(mode_, n_rot_, fs_, ext_) \
    ((rt_rope_desc){ .mode = mode_, .n_rot = n_rot_, .base = 10000, .freq_scale = fs_, .ext_factor = ext_, \
                     .attn_factor = 1, .beta_fast = 32, .beta_slow = 1, .n_ctx_orig = 4096 })
    const shape cases[] = {
        { 1, 64, 4, 4, 16, RT_F32, RD(ADJ, 16, 1, 0), false, "decode adjacent f32", false },
        { 1, 64, 4, 4, 16, RT_F16, RD(ADJ, 16, 1, 0), false, "decode adjacent f16", false },
        { 1, 64, 8, 2, 64, RT_F16, RD(NEOX, 64, 1, 0), false, "decode neox gqa f16", false },
        { 9, 32, 6, 2, 48, RT_F32, RD(NEOX, 16, 1, 0), false, "prefill neox partial f32", false },
        { 9, 32, 6, 2, 48, RT_F16, RD(ADJ, 24, 0.25f, 0), true, "prefill adj linear ff f16", false },
        { 17, 40, 4, 1, 128, RT_F16, RD(NEOX, 128, 0.25f, 1), false, "prefill yarn mqa f16", false },
        { 5, 16, 3, 3, 8, RT_F32, RD(ADJ, 8, 1, 0), false, "small heads f32", false },
        { 33, 8, 2, 2, 32, RT_F16, RD(NEOX, 32, 1, 0), true, "positions past cap f16", false },
        { 4, 16, 2, 2, 8, RT_F16, RD(NEOX, 6, 1, 0), false, "n_rot 6 of 8 neox f16", false },
        { 4, 16, 3, 1, 12, RT_F32, RD(ADJ, 10, 1, 0), true, "n_rot 10 of 12 adjacent f32", false },
        { 9, 32, 6, 2, 48, RT_F16, RD(NEOX, 48, 1, 0), false, "slots (paged) neox f16", true },
        { 5, 16, 4, 4, 16, RT_F32, RD(ADJ, 16, 1, 0), true, "slots (paged) adjacent f32", true },
        { 4, 16, 2, 2, 8, RT_F16, RD(NEOX, 6, 1, 0), false, "slots n_rot 6 of 8 f16", true },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(g.ctx, &cases[i]);

    /* bad shapes are refused when recorded */
    rt_seq *seq = NULL;
    rt_buffer *b = NULL;
    if (rt_seq_create(g.ctx, &seq) == RT_OK && rt_buffer_create(g.ctx, RT_MEM_DEVICE, 4096, &b) == RT_OK) {
        rt_rope_desc odd = RD(ADJ, 7, 1, 0), ok = RD(ADJ, 2, 1, 0);
        rt_seq_begin(seq);
        CHECK(rt_op_rope_kv(seq, rt_at(b, 0), rt_at(b, 0), rt_at(b, 0), RT_F32, rt_at(b, 0), rt_at(b, 0), (rt_ref){ 0 }, 1, 1, 1, 8, 4,
                            &odd) == RT_ERR_INVALID,
              "odd n_rot accepted");
        rt_seq_end(seq);
        rt_seq_begin(seq);
        CHECK(rt_op_rope_kv(seq, rt_at(b, 0), rt_at(b, 0), rt_at(b, 0), RT_F16, rt_at(b, 0), rt_at(b, 0), (rt_ref){ 0 }, 1, 1, 1, 3, 4,
                            &ok) == RT_ERR_INVALID,
              "an f16 cache of odd rows accepted");
        rt_seq_end(seq);
    }
    rt_buffer_destroy(b);
    rt_seq_destroy(seq);
    tu_gpu_close(&g);
    return tu_finish("test_rope_kv");
}
