/* test_moe_ops.c: the mixture-of-experts ops (runtime/rt_ops_moe.c) against plain C references on seeded
 * random data.
 *
 * rt_op_moe_route: ids must equal the reference exactly (a stable sort by logit descending, index
 *   ascending), including rows of many equal logits (drawn from five values) where only the lower-index
 *   rule decides; k = 1, k = n_expert, n_expert above the workgroup size, renorm on and off. Weights: the
 *   softmax in double, |w - ref| <= 1e-6 + 1e-5 |ref| (f32 exp and sums over at most 200 values).
 * rt_op_matmul_id: Y against a double product of the dequantised experts (lm_dequantize: the floats the
 *   device must see), nmse < 1e-9 (what is left is f32 accumulation, ~k 2^-48; a wrong expert, row or
 *   scale is of order 1). F32 (k % 8 == 0 and value by value), Q8_0 and Q4_K in full: m = 1 and 7,
 *   x_per_slot both ways, w_up both ways, under both kernels (VKLLM_MATMUL=cpu|gpu); one case of every
 *   other weight type. The experts that no id names are filled with 0xFF bytes (NaN scales or values): a
 *   kernel that reads them yields NaN, which fails. One id out of range must give a zero row. Experts
 *   start 48 bytes into their buffer, W_up after W in the same buffer; guard bytes after Y.
 * rt_op_moe_combine: X + sum_s w Y in double, nmse < 1e-12.
 * Experts too large for one binding: RT_ERR_LIMIT, the message naming maxStorageBufferRange. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm.h"
#include "util.h"

#define TOL_MM 1e-9
#define TOL_COMBINE 1e-12

static tu_gpu G;
static tu_rng R;
static uint64_t SEED;

static rt_buffer *buf(size_t bytes, const void *data)
{
    rt_buffer *b = NULL;
    CHECK(rt_buffer_create(G.ctx, RT_MEM_DEVICE, bytes + TU_GUARD, &b) == RT_OK, "buffer: %s", rt_ctx_errmsg(G.ctx));
    if (!b)
        return NULL;
    rt_buffer_fill(b, 0, (bytes + TU_GUARD) / 4 * 4, TU_GUARD_WORD);
    if (data)
        CHECK(rt_buffer_write(b, 0, data, bytes) == RT_OK, "write: %s", rt_ctx_errmsg(G.ctx));
    return b;
}

static bool run(rt_seq *s, const char *what)
{
    int rc = rt_seq_end(s);
    if (rc == RT_OK)
        rc = rt_seq_run(s);
    CHECK(rc == RT_OK, "%s: %s: %s", what, rt_status_string(rc), rt_seq_errmsg(s));
    return rc == RT_OK;
}

/* ---------------------------------------------------------------- routing */

static void route_case(int64_t rows, int n_expert, int k, bool renorm, bool ties)
{
    char what[128];
    snprintf(what, sizeof what, "route rows=%lld experts=%d k=%d renorm=%d ties=%d (seed %llu)", (long long)rows,
             n_expert, k, renorm, ties, (unsigned long long)SEED);
    size_t nl = (size_t)(rows * n_expert), no = (size_t)(rows * k);
    float *l = malloc(nl * 4), *w = malloc(no * 4);
    int32_t *ids = malloc(no * 4), *order = malloc((size_t)n_expert * 4);
    for (size_t i = 0; i < nl; i++)
        l[i] = ties ? 0.5f * (float)(tu_u32(&R) % 5) - 1.0f : 3.0f * tu_normal(&R);
    const size_t lo = 16; /* the logits at an offset */
    rt_buffer *L = buf(lo + nl * 4, NULL), *I = buf(no * 4, NULL), *W = buf(no * 4, NULL);
    rt_seq *s = NULL;
    rt_seq_create(G.ctx, &s);
    if (L && I && W && s) {
        rt_buffer_write(L, lo, l, nl * 4);
        rt_seq_begin(s);
        rt_op_moe_route(s, rt_at(I, 0), rt_at(W, 0), rt_at(L, lo), rows, n_expert, k, renorm);
        if (run(s, what)) {
            rt_buffer_read(I, 0, ids, no * 4);
            rt_buffer_read(W, 0, w, no * 4);
            int bad_ids = 0, bad_w = 0;
            for (int64_t r = 0; r < rows; r++) {
                const float *x = l + r * n_expert;
                /* insertion sort: stable, so equal logits keep the lower index first */
                for (int i = 0; i < n_expert; i++) {
                    int j = i;
                    while (j > 0 && x[order[j - 1]] < x[i])
                        order[j] = order[j - 1], j--;
                    order[j] = i;
                }
                double mx = -INFINITY, se = 0, sel = 0;
                for (int i = 0; i < n_expert; i++)
                    mx = x[i] > mx ? x[i] : mx;
                for (int i = 0; i < n_expert; i++)
                    se += exp(x[i] - mx);
                for (int j = 0; j < k; j++)
                    sel += exp(x[order[j]] - mx) / se;
                for (int j = 0; j < k; j++) {
                    double ref = exp(x[order[j]] - mx) / se / (renorm ? sel : 1.0), got = w[r * k + j];
                    bad_ids += ids[r * k + j] != order[j];
                    bad_w += !(fabs(got - ref) <= 1e-6 + 1e-5 * fabs(ref));
                }
            }
            CHECK(bad_ids == 0, "%s: %d ids differ from the reference", what, bad_ids);
            CHECK(bad_w == 0, "%s: %d weights differ from the reference", what, bad_w);
            CHECK(tu_guard_check(I, no * 4) && tu_guard_check(W, no * 4), "%s: wrote past its outputs", what);
        }
    }
    rt_seq_destroy(s);
    rt_buffer_destroy(L), rt_buffer_destroy(I), rt_buffer_destroy(W);
    free(l), free(w), free(ids), free(order);
}

/* ---------------------------------------------------------------- expert products */

/* n_expert experts [n][k] of type t, quantised from random floats: their device bytes (rt_expert_stride
 * apart, the unused ones all 0xFF) and the dequantised values (deq [n_expert][n][k]). */
static void *make_experts(rt_dtype t, int n_expert, int64_t n, int64_t k, const bool *used, float *deq)
{
    size_t stride = rt_expert_stride(t, n, k), fb = rt_dtype_row_bytes(t, k) * (size_t)n;
    uint8_t *dev = malloc(stride * (size_t)n_expert);
    float *wf = malloc((size_t)(n * k) * 4);
    void *wq = malloc(fb);
    memset(dev, 0xFF, stride * (size_t)n_expert);
    for (int e = 0; e < n_expert; e++) {
        for (int64_t i = 0; i < n * k; i++)
            wf[i] = tu_normal(&R) * (i % 97 == 0 ? 2.0f : 0.5f);
        CHECK(lm_quantize(t, wf, wq, n * k) == LM_OK, "quantize type %d", (int)t);
        CHECK(lm_dequantize(t, wq, deq + (size_t)e * n * k, n * k) == LM_OK, "dequantize type %d", (int)t);
        if (used[e])
            rt_weight_repack(t, wq, dev + (size_t)e * stride, n, k);
    }
    free(wf), free(wq);
    return dev;
}

typedef struct mm_case {
    rt_dtype t;
    int64_t m, n, k;
    int n_used, n_expert;
    bool x_per_slot, gate, bad_id;
} mm_case;

static void matmul_id_case(const mm_case *c, const char *way)
{
    rt_dtype_traits tr;
    rt_dtype_info((int)c->t, &tr);
    char what[192];
    snprintf(what, sizeof what, "matmul_id %s m=%lld n=%lld k=%lld %d of %d%s%s%s (%s, seed %llu)", tr.name,
             (long long)c->m, (long long)c->n, (long long)c->k, c->n_used, c->n_expert,
             c->x_per_slot ? " x_per_slot" : "", c->gate ? " gated" : "", c->bad_id ? " bad id" : "", way,
             (unsigned long long)SEED);
    int64_t m = c->m, n = c->n, k = c->k, pairs = m * c->n_used;
    int ne = c->n_expert;
    /* ids from the even experts and the last one only: the odd ones below it are never read */
    bool used[64] = { 0 };
    int32_t *ids = malloc((size_t)pairs * 4);
    for (int64_t i = 0; i < pairs; i++) {
        int e = (int)(tu_u32(&R) % (uint32_t)((ne + 1) / 2)) * 2;
        ids[i] = e < ne ? e : ne - 1;
    }
    if (c->bad_id)
        ids[pairs - 1] = ne; /* out of range: a zero row */
    for (int64_t i = 0; i < pairs; i++)
        if (ids[i] >= 0 && ids[i] < ne)
            used[ids[i]] = true;
    size_t stride = rt_expert_stride(c->t, n, k), wb = stride * (size_t)ne, w_off = 48;
    float *dg = malloc((size_t)ne * n * k * 4), *du = malloc((size_t)ne * n * k * 4);
    void *wg = make_experts(c->t, ne, n, k, used, dg), *wu = c->gate ? make_experts(c->t, ne, n, k, used, du) : NULL;
    int64_t xr = c->x_per_slot ? pairs : m;
    float *x = malloc((size_t)(xr * k) * 4), *y = malloc((size_t)(pairs * n) * 4);
    double *ref = malloc((size_t)(pairs * n) * sizeof(double));
    for (int64_t i = 0; i < xr * k; i++)
        x[i] = tu_uniform(&R, -1.0f, 1.0f);
    for (int64_t p = 0; p < pairs; p++) {
        const float *xv = x + (c->x_per_slot ? p : p / c->n_used) * k;
        for (int64_t j = 0; j < n; j++) {
            if (ids[p] < 0 || ids[p] >= ne) {
                ref[p * n + j] = 0;
                continue;
            }
            const float *g = dg + ((size_t)ids[p] * n + j) * k, *u = du + ((size_t)ids[p] * n + j) * k;
            double a = 0, b = 0;
            for (int64_t q = 0; q < k; q++) {
                a += (double)xv[q] * g[q];
                if (c->gate)
                    b += (double)xv[q] * u[q];
            }
            ref[p * n + j] = c->gate ? a / (1 + exp(-a)) * b : a;
        }
    }
    rt_buffer *W = buf(w_off + 2 * wb, NULL), *X = buf(16 + (size_t)(xr * k) * 4, NULL), *I = buf((size_t)pairs * 4, ids);
    rt_buffer *Y = buf((size_t)(pairs * n) * 4, NULL);
    rt_seq *s = NULL;
    rt_seq_create(G.ctx, &s);
    if (W && X && I && Y && s) {
        rt_buffer_write(W, w_off, wg, wb);
        if (wu)
            rt_buffer_write(W, w_off + wb, wu, wb);
        rt_buffer_write(X, 16, x, (size_t)(xr * k) * 4);
        rt_matmul_id_desc d = { .y = rt_at(Y, 0), .x = rt_at(X, 16), .w = rt_at(W, w_off),
                                .w_up = c->gate ? rt_at(W, w_off + wb) : (rt_ref){ 0 }, .ids = rt_at(I, 0),
                                .wt = c->t, .m = m, .n = n, .k = k, .n_used = c->n_used, .n_expert = ne,
                                .x_per_slot = c->x_per_slot };
        rt_seq_begin(s);
        rt_op_matmul_id(s, &d);
        if (run(s, what)) {
            rt_buffer_read(Y, 0, y, (size_t)(pairs * n) * 4);
            double e = tu_nmse(y, ref, pairs * n);
            CHECK(e < TOL_MM, "%s: nmse %.3g", what, e);
            if (c->bad_id) {
                bool zero = true;
                for (int64_t j = 0; j < n; j++)
                    zero = zero && y[(pairs - 1) * n + j] == 0.0f;
                CHECK(zero, "%s: an out-of-range id gave no zero row", what);
            }
            CHECK(tu_guard_check(Y, (size_t)(pairs * n) * 4), "%s: wrote past its output", what);
        }
    }
    rt_seq_destroy(s);
    rt_buffer_destroy(W), rt_buffer_destroy(X), rt_buffer_destroy(I), rt_buffer_destroy(Y);
    free(ids), free(dg), free(du), free(wg), free(wu), free(x), free(y), free(ref);
}

/* ---------------------------------------------------------------- combine */

static void combine_case(int64_t rows, int n_used, int64_t dim)
{
    char what[96];
    snprintf(what, sizeof what, "combine rows=%lld n_used=%d dim=%lld (seed %llu)", (long long)rows, n_used,
             (long long)dim, (unsigned long long)SEED);
    size_t nx = (size_t)(rows * dim), ny = nx * (size_t)n_used, nw = (size_t)rows * (size_t)n_used;
    float *x = malloc(nx * 4), *y = malloc(ny * 4), *w = malloc(nw * 4), *out = malloc(nx * 4);
    double *ref = malloc(nx * sizeof(double));
    for (size_t i = 0; i < nx; i++)
        x[i] = tu_normal(&R);
    for (size_t i = 0; i < ny; i++)
        y[i] = tu_normal(&R);
    for (size_t i = 0; i < nw; i++)
        w[i] = tu_uniform(&R, 0, 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < dim; c++) {
            double a = x[r * dim + c];
            for (int s = 0; s < n_used; s++)
                a += (double)w[r * n_used + s] * y[(r * n_used + s) * dim + c];
            ref[r * dim + c] = a;
        }
    rt_buffer *X = buf(4 + nx * 4, NULL), *Y = buf(ny * 4, y), *W = buf(8 + nw * 4, NULL);
    rt_seq *s = NULL;
    rt_seq_create(G.ctx, &s);
    if (X && Y && W && s) {
        rt_buffer_write(X, 4, x, nx * 4);
        rt_buffer_write(W, 8, w, nw * 4);
        rt_seq_begin(s);
        rt_op_moe_combine(s, rt_at(X, 4), rt_at(Y, 0), rt_at(W, 8), rows, n_used, dim);
        if (run(s, what)) {
            rt_buffer_read(X, 4, out, nx * 4);
            double e = tu_nmse(out, ref, (int64_t)nx);
            CHECK(e < TOL_COMBINE, "%s: nmse %.3g", what, e);
            CHECK(tu_guard_check(X, 4 + nx * 4), "%s: wrote past its output", what);
        }
    }
    rt_seq_destroy(s);
    rt_buffer_destroy(X), rt_buffer_destroy(Y), rt_buffer_destroy(W);
    free(x), free(y), free(w), free(out), free(ref);
}

/* Experts that do not fit one binding: refused when recorded, with both sizes in the message. */
static void too_large(void)
{
    const rt_device_info *d = rt_ctx_device(G.ctx);
    int64_t n = 1024, k = 1024;
    size_t per = rt_expert_stride(RT_F32, n, k);
    uint64_t ne = d->max_storage_buffer_range / per + 1;
    CHECK(per == (size_t)(n * k * 4), "expert stride %zu of an f32 1024 x 1024", per);
    CHECK(rt_expert_stride(RT_Q4_0, 3, 32) == 64, "Q4_0 3 x 32: stride %zu, want 64 (54 bytes, rounded to 16)",
          rt_expert_stride(RT_Q4_0, 3, 32));
    CHECK(rt_expert_stride(RT_Q4_K, 3, 100) == 0, "a bad shape has stride 0");
    if (ne > 1u << 30)
        return;
    rt_buffer *B = buf(1 << 16, NULL);
    rt_seq *s = NULL;
    rt_seq_create(G.ctx, &s);
    if (B && s) {
        rt_matmul_id_desc desc = { .y = rt_at(B, 0), .x = rt_at(B, 0), .w = rt_at(B, 0), .ids = rt_at(B, 0),
                                   .wt = RT_F32, .m = 1, .n = n, .k = k, .n_used = 1, .n_expert = (int)ne };
        rt_seq_begin(s);
        int rc = rt_op_matmul_id(s, &desc);
        CHECK(rc == RT_ERR_LIMIT, "experts over the binding range: %s, want RT_ERR_LIMIT", rt_status_string(rc));
        CHECK(strstr(rt_seq_errmsg(s), "maxStorageBufferRange") != NULL, "message: %s", rt_seq_errmsg(s));
        CHECK(rt_seq_end(s) == RT_ERR_LIMIT, "the error is sticky");
    }
    rt_seq_destroy(s);
    rt_buffer_destroy(B);
}

int main(void)
{
    SEED = R.s = tu_seed("test_moe_ops");
    if (!tu_gpu_open(&G))
        return tu_finish("test_moe_ops");

    route_case(5, 8, 2, true, false);     /* Mixtral */
    route_case(3, 8, 2, false, true);
    route_case(4, 8, 1, false, true);     /* k = 1 */
    route_case(4, 8, 1, true, false);     /* renorm of one: weight 1 */
    route_case(3, 8, 8, true, true);      /* k = n_expert */
    route_case(2, 8, 8, false, false);
    route_case(7, 128, 8, true, false);   /* Qwen3-MoE */
    route_case(7, 128, 8, false, true);
    route_case(3, 200, 5, true, true);    /* more experts than threads, not a power of two */
    route_case(1, 3, 3, false, true);

    const char *own = rt_ctx_device(G.ctx)->type == RT_DEVICE_CPU ? "cpu" : "gpu";
    const char *other = !strcmp(own, "cpu") ? "gpu" : "cpu";
    const char *ways[2] = { own, other };
    /* the full set for F32 (k % 8 == 0), Q8_0 and Q4_K, under both kernels */
    static const struct { rt_dtype t; int64_t k; } full[] = { { RT_F32, 328 }, { RT_Q8_0, 288 }, { RT_Q4_K, 512 } };
    for (int w = 0; w < 2; w++) {
        setenv("VKLLM_MATMUL", ways[w], 1);
        for (size_t i = 0; i < sizeof full / sizeof full[0]; i++)
            for (int v = 0; v < 8; v++) {
                mm_case c = { .t = full[i].t, .m = v & 1 ? 7 : 1, .n = 67, .k = full[i].k, .n_used = v & 1 ? 2 : 4,
                              .n_expert = 7, .x_per_slot = v & 2, .gate = v & 4, .bad_id = v == 5 };
                matmul_id_case(&c, ways[w]);
            }
        /* f32 rows of any length (value by value) */
        matmul_id_case(&(mm_case){ RT_F32, 3, 19, 37, 2, 5, true, false, false }, ways[w]);
    }
    unsetenv("VKLLM_MATMUL");
    /* one case of every other weight type, gated, on the device's own kernel */
    static const rt_dtype rest[] = { RT_F16, RT_BF16, RT_Q4_0, RT_Q4_1, RT_Q5_0, RT_Q5_1, RT_Q2_K, RT_Q3_K,
                                     RT_Q5_K, RT_Q6_K, RT_IQ4_NL, RT_IQ4_XS };
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        rt_dtype_traits tr;
        rt_dtype_info((int)rest[i], &tr);
        int64_t k = tr.block == 1 ? 64 : tr.block == 32 ? 32 * 5 : 256 * 2;
        matmul_id_case(&(mm_case){ rest[i], 2, 33, k, 3, 6, false, true, false }, own);
    }

    combine_case(1, 8, 64);
    combine_case(7, 2, 67);
    combine_case(5, 3, 1000);

    too_large();
    tu_gpu_close(&G);
    return tu_finish("test_moe_ops");
}
