/* test_paged_attention.c: rt_op_attention through block tables (a paged KV cache of many sequences)
 * against a double-precision reference, on seeded random data: each case makes a cache pool of random
 * keys and values, gives several sequences random block tables (blocks in any order, some shared
 * between sequences as after a fork), and evaluates rows of those sequences at random positions: decode
 * rows of different sequences, a prefill tile of one sequence (the kernels' shared-table path), a tile
 * mixing sequences, grouped-query heads, f32 and f16 caches, block sizes 1, 16 and 32, and key ranges
 * split and merged (long sequences); with the CPU drivers' kernels and with the GPU kernel (attention.comp,
 * VKLLM_ATTN_TILED=1), which alone takes head sizes that are no multiple of 8. Tolerance: nmse 1e-8 (f32 arithmetic against double). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static tu_rng R;

static float half_round(float f) /* f through an f16 and back, as the cache stores it */
{
    uint32_t x;
    memcpy(&x, &f, 4);
    /* round to nearest even at 10 mantissa bits (normal range only, as the data here) */
    uint32_t lsb = (x >> 13) & 1u;
    x = (x + 0x0fffu + lsb) & ~0x1fffu;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xff, m = (x >> 13) & 0x3ff;
    if (e < 113)
        return (uint16_t)sign; /* tiny: zero (not in the data) */
    return (uint16_t)(sign | ((e - 112) << 10) | m);
}

typedef struct pcase {
    const char *name;
    int n_heads, n_kv, hd, bs, n_seqs;
    int64_t rows, max_len; /* rows of the pass; a sequence's length at most */
    rt_dtype ct;
    int mode;              /* 0: rows round-robin over sequences (decode); 1: one sequence's consecutive rows */
} pcase;

static void run_case(rt_ctx *ctx, const pcase *c)
{
    int64_t kv_dim = (int64_t)c->n_kv * c->hd, q_dim = (int64_t)c->n_heads * c->hd;
    int32_t blocks_per_seq = (int32_t)((c->max_len + c->bs - 1) / c->bs);
    int32_t n_blocks = blocks_per_seq * c->n_seqs + 3;
    int64_t cap = (int64_t)n_blocks * c->bs;
    /* the pool: random keys and values (rounded to f16 when the cache is f16) */
    float *kf = malloc((size_t)(cap * kv_dim) * 4), *vf = malloc((size_t)(cap * kv_dim) * 4);
    for (int64_t i = 0; i < cap * kv_dim; i++) {
        kf[i] = tu_normal(&R);
        vf[i] = tu_normal(&R);
        if (c->ct == RT_F16)
            kf[i] = half_round(kf[i]), vf[i] = half_round(vf[i]);
    }
    /* block tables: a random permutation of the blocks, dealt out; sequence 1 shares sequence 0's first
     * blocks (a fork) */
    int32_t *perm = malloc((size_t)n_blocks * 4);
    for (int32_t i = 0; i < n_blocks; i++)
        perm[i] = i;
    for (int32_t i = n_blocks - 1; i > 0; i--) {
        int32_t j = (int32_t)(tu_u32(&R) % (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int32_t *tables = malloc((size_t)(c->n_seqs * blocks_per_seq) * 4);
    for (int s = 0; s < c->n_seqs; s++)
        for (int32_t b = 0; b < blocks_per_seq; b++)
            tables[s * blocks_per_seq + b] = s == 1 && b < blocks_per_seq / 2 ? tables[b] : perm[s * blocks_per_seq + b];
    /* rows: their sequence and position */
    int32_t *rseq = malloc((size_t)c->rows * 4), *pos = malloc((size_t)c->rows * 4);
    int64_t start = c->max_len - c->rows - (int64_t)(tu_u32(&R) % 5);
    for (int64_t r = 0; r < c->rows; r++) {
        if (c->mode == 0) {
            rseq[r] = (int32_t)(r % c->n_seqs);
            pos[r] = (int32_t)(tu_u32(&R) % (uint32_t)c->max_len);
        } else {
            rseq[r] = c->n_seqs - 1;
            pos[r] = (int32_t)(start + r);
        }
    }
    if (c->mode == 0 && c->rows > 1)
        pos[1] = (int32_t)(c->max_len - 1);
    /* the pages buffer: per row its table's start, then the tables */
    int64_t n_pages = c->rows + (int64_t)c->n_seqs * blocks_per_seq;
    int32_t *pages = malloc((size_t)n_pages * 4);
    for (int64_t r = 0; r < c->rows; r++)
        pages[r] = (int32_t)(c->rows + (int64_t)rseq[r] * blocks_per_seq);
    memcpy(pages + c->rows, tables, (size_t)(c->n_seqs * blocks_per_seq) * 4);
    float *qf = malloc((size_t)(c->rows * q_dim) * 4);
    for (int64_t i = 0; i < c->rows * q_dim; i++)
        qf[i] = tu_normal(&R);
    /* the reference */
    double *ref = calloc((size_t)(c->rows * q_dim), sizeof *ref), *sc = malloc((size_t)c->max_len * sizeof *sc);
    double scale = 1.0 / sqrt((double)c->hd);
    int g = c->n_heads / c->n_kv;
    for (int64_t r = 0; r < c->rows; r++)
        for (int h = 0; h < c->n_heads; h++) {
            const float *qh = qf + (r * c->n_heads + h) * c->hd;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= pos[r]; j++) {
                int64_t row = (int64_t)tables[rseq[r] * blocks_per_seq + j / c->bs] * c->bs + j % c->bs;
                const float *kr = kf + row * kv_dim + (h / g) * c->hd;
                double d = 0;
                for (int e = 0; e < c->hd; e++)
                    d += (double)qh[e] * kr[e];
                sc[j] = d * scale;
                mx = fmax(mx, sc[j]);
            }
            double *o = ref + (r * c->n_heads + h) * c->hd;
            for (int64_t j = 0; j <= pos[r]; j++) {
                int64_t row = (int64_t)tables[rseq[r] * blocks_per_seq + j / c->bs] * c->bs + j % c->bs;
                double w = exp(sc[j] - mx);
                sum += w;
                for (int e = 0; e < c->hd; e++)
                    o[e] += w * vf[row * kv_dim + (h / g) * c->hd + e];
            }
            for (int e = 0; e < c->hd; e++)
                o[e] /= sum;
        }
    /* the device */
    size_t cs = rt_dtype_size(c->ct), cache_bytes = (size_t)(cap * kv_dim) * cs;
    void *kc = malloc(cache_bytes), *vc = malloc(cache_bytes);
    for (int64_t i = 0; i < cap * kv_dim; i++) {
        if (c->ct == RT_F32) {
            ((float *)kc)[i] = kf[i];
            ((float *)vc)[i] = vf[i];
        } else {
            ((uint16_t *)kc)[i] = to_half(kf[i]);
            ((uint16_t *)vc)[i] = to_half(vf[i]);
        }
    }
    rt_buffer *bk = NULL, *bv = NULL, *bq = NULL, *bo = NULL, *bp = NULL, *bpg = NULL;
    rt_seq *seq = NULL;
    bool ok = !rt_buffer_create(ctx, RT_MEM_DEVICE, cache_bytes, &bk) && !rt_buffer_create(ctx, RT_MEM_DEVICE, cache_bytes, &bv) &&
              !rt_buffer_create(ctx, RT_MEM_DEVICE, (size_t)(c->rows * q_dim) * 4, &bq) &&
              !rt_buffer_create(ctx, RT_MEM_DEVICE, (size_t)(c->rows * q_dim) * 4, &bo) &&
              !rt_buffer_create(ctx, RT_MEM_UPLOAD, (size_t)c->rows * 4, &bp) &&
              !rt_buffer_create(ctx, RT_MEM_UPLOAD, (size_t)n_pages * 4, &bpg) && !rt_seq_create(ctx, &seq);
    CHECK(ok, "%s: buffers: %s", c->name, rt_ctx_errmsg(ctx));
    if (ok) {
        rt_buffer_write(bk, 0, kc, cache_bytes);
        rt_buffer_write(bv, 0, vc, cache_bytes);
        rt_buffer_write(bq, 0, qf, (size_t)(c->rows * q_dim) * 4);
        rt_buffer_write(bp, 0, pos, (size_t)c->rows * 4);
        rt_buffer_write(bpg, 0, pages, (size_t)n_pages * 4);
        rt_attn_desc a = { .n_heads = c->n_heads, .n_kv_heads = c->n_kv, .head_dim = c->hd, .scale = (float)scale,
                           .cap = cap, .cache_type = c->ct, .pages = rt_at(bpg, 0), .block_size = c->bs,
                           .max_keys = c->max_len };
        rt_seq_begin(seq);
        rt_op_attention(seq, rt_at(bo, 0), rt_at(bq, 0), rt_at(bk, 0), rt_at(bv, 0), rt_at(bp, 0), c->rows, &a);
        int rc = rt_seq_end(seq);
        if (!rc)
            rc = rt_seq_run(seq);
        CHECK(rc == RT_OK, "%s: %s", c->name, rt_seq_errmsg(seq));
        if (!rc) {
            float *y = malloc((size_t)(c->rows * q_dim) * 4);
            rt_buffer_read(bo, 0, y, (size_t)(c->rows * q_dim) * 4);
            double e = tu_nmse(y, ref, c->rows * q_dim);
            CHECK(e <= 1e-8, "%s: nmse %.3g", c->name, e);
            printf("%-34s nmse %.2g\n", c->name, e);
            free(y);
        }
    }
    rt_seq_destroy(seq);
    rt_buffer *all[] = { bk, bv, bq, bo, bp, bpg };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rt_buffer_destroy(all[i]);
    free(kf), free(vf), free(perm), free(tables), free(rseq), free(pos), free(pages), free(qf), free(ref), free(sc);
    free(kc), free(vc);
}

int main(void)
{
    R.s = tu_seed("test_paged_attention");
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_paged_attention");
    const pcase cases[] = {
        { "decode, 3 sequences, f16, bs 16", 8, 2, 64, 16, 3, 3, 300, RT_F16, 0 },
        { "decode, 1 row, f32, bs 32", 4, 4, 128, 32, 2, 1, 200, RT_F32, 0 },
        { "decode, 4 rows, mqa, bs 1", 4, 1, 64, 1, 4, 4, 40, RT_F16, 0 },
        { "prefill tile of one sequence, f16", 8, 2, 64, 16, 2, 37, 150, RT_F16, 1 },
        { "prefill, gqa 4, f32, bs 32", 8, 2, 128, 32, 3, 20, 90, RT_F32, 1 },
        { "mixed tile: 13 rows of 5 sequences", 4, 2, 64, 16, 5, 13, 120, RT_F16, 0 },
        { "mixed tile, f32, bs 1", 2, 2, 32, 1, 3, 9, 50, RT_F32, 0 },
        { "prefill split into ranges, f16", 4, 4, 128, 16, 2, 24, 2100, RT_F16, 1 },
        { "mixed rows split into ranges, f32", 4, 1, 64, 32, 3, 10, 3000, RT_F32, 0 },
        { "head size 20 (GPU kernel only), f16", 6, 2, 20, 16, 3, 7, 100, RT_F16, 0 },
        { "decode, gqa 3, f16, bs 16", 6, 2, 64, 16, 2, 2, 700, RT_F16, 0 },
    };
    /* the CPU drivers' kernels, then the GPU kernel (attention.comp: one row per workgroup when paged) */
    for (int pass = 0; pass < 2; pass++) {
        if (pass)
            setenv("VKLLM_ATTN_TILED", "1", 1);
        printf("%s\n", pass ? "GPU kernel (VKLLM_ATTN_TILED=1):" : "default kernels:");
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (cases[i].hd % 8 == 0 || pass)
                run_case(g.ctx, &cases[i]);
    }
    unsetenv("VKLLM_ATTN_TILED");
    tu_gpu_close(&g);
    return tu_finish("test_paged_attention");
}
