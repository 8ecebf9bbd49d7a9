/* rt_ops.c: the small ops (elementwise, norms, softmax, RoPE, row gather, KV writes, argmax, calibration
 * kernels) and the helpers every op uses to bind tensors and size dispatches. */
#include <string.h>

#include "rt_ops.h"

int rt_op_typed(const int16_t *table, rt_dtype t)
{
    return (int)t >= 0 && (int)t < RT_SHADER_DTYPES ? table[t] - 1 : -1;
}

int rt_op_bind(rt_seq *seq, rt_ref ref, size_t elem_size, int64_t n_elems, rt_bind *b, uint32_t *off_elems)
{
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    if (!ref.buf || n_elems <= 0)
        return rt_seq_fail(seq, RT_ERR_INVALID, "an op was given no buffer or no elements");
    if (ref.off % elem_size)
        return rt_seq_fail(seq, RT_ERR_INVALID, "a tensor of %zu-byte elements at the unaligned offset %zu", elem_size,
                           ref.off);
    uint32_t off;
    if (rt_op_bind_bytes(seq, ref, (size_t)n_elems * elem_size, b, &off))
        return rt_seq_status(seq);
    *off_elems = (uint32_t)(off / elem_size);
    return RT_OK;
}

int rt_op_bind_bytes(rt_seq *seq, rt_ref ref, size_t bytes, rt_bind *b, uint32_t *off_bytes)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    if (!ref.buf || bytes == 0)
        return rt_seq_fail(seq, RT_ERR_INVALID, "an op was given no buffer or no elements");
    size_t size = rt_buffer_size(ref.buf);
    if (ref.off > size || bytes > size - ref.off)
        return rt_seq_fail(seq, RT_ERR_INVALID, "a tensor of %zu bytes at offset %zu does not fit its buffer of %zu",
                           bytes, ref.off, size);
    size_t aligned = ref.off / ctx->storage_align * ctx->storage_align;
    size_t range = (ref.off - aligned + bytes + 3) / 4 * 4;
    if (range > ctx->info.max_storage_buffer_range)
        return rt_seq_fail(seq, RT_ERR_LIMIT, "a tensor of %zu bytes exceeds the device's binding range (%llu)",
                           bytes, (unsigned long long)ctx->info.max_storage_buffer_range);
    *b = (rt_bind){ ref.buf, aligned, range };
    *off_bytes = (uint32_t)(ref.off - aligned);
    return RT_OK;
}

uint32_t rt_op_wg(rt_seq *seq, uint32_t want)
{
    uint32_t max = rt_seq_ctx(seq)->info.max_workgroup_invocations;
    while (want > max)
        want /= 2;
    return want;
}

void rt_op_grid_rows(rt_seq *seq, int64_t rows, uint32_t *gx, uint32_t *gy)
{
    uint32_t lim = rt_seq_ctx(seq)->info.max_workgroup_count[0];
    if (lim > 65535)
        lim = 65535;
    *gx = rows < lim ? (uint32_t)rows : lim;
    *gy = (uint32_t)((rows + *gx - 1) / *gx);
}

uint32_t rt_op_groups(rt_seq *seq, int64_t n, uint32_t wg)
{
    int64_t g = (n + wg - 1) / wg;
    uint32_t lim = rt_seq_ctx(seq)->info.max_workgroup_count[0];
    if (lim > 65535)
        lim = 65535;
    return g < 1 ? 1 : g > lim ? lim : (uint32_t)g;
}

int rt_op_pipeline(rt_seq *seq, enum rt_shader_id shader, const uint32_t *spec, int n_spec, int n_bindings,
                   uint32_t push_size, rt_pipeline **p)
{
    rt_ctx *ctx = rt_seq_ctx(seq);
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    int rc = rt_pipeline_get(ctx, shader, spec, n_spec, n_bindings, push_size, p);
    return rc ? rt_seq_fail(seq, rc, "%s", rt_ctx_errmsg(ctx)) : RT_OK;
}

static bool too_big(int64_t n) { return n <= 0 || n > 0xFFFFFFFFll; }

/* ---------------------------------------------------------------- elementwise */

static int eltwise(rt_seq *seq, uint32_t op, rt_ref y, rt_ref a, rt_ref b, int64_t n, int64_t nb, float s)
{
    if (too_big(n) || (b.buf && too_big(nb)))
        return rt_seq_fail(seq, RT_ERR_INVALID, "eltwise: bad size %lld", (long long)n);
    rt_pc_eltwise pc = { .n = (uint32_t)n, .nb = (uint32_t)(b.buf ? nb : 1), .op = op, .s = s };
    rt_bind bind[3];
    rt_op_bind(seq, y, 4, n, &bind[0], &pc.off_y);
    rt_op_bind(seq, a, 4, n, &bind[1], &pc.off_a);
    if (b.buf)
        rt_op_bind(seq, b, 4, nb, &bind[2], &pc.off_b);
    else
        bind[2] = bind[1]; /* unused by the kernel for this op */
    uint32_t wg = rt_op_wg(seq, 256);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_eltwise, &wg, 1, 3, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, bind, 3, &pc, rt_op_groups(seq, n, wg), 1, 1);
}

int rt_op_add(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n, int64_t nb)
{
    return eltwise(seq, RT_ELT_ADD, y, a, b, n, nb, 0);
}

int rt_op_mul(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n, int64_t nb)
{
    return eltwise(seq, RT_ELT_MUL, y, a, b, n, nb, 0);
}

int rt_op_scale(rt_seq *seq, rt_ref y, rt_ref x, int64_t n, float s)
{
    return eltwise(seq, RT_ELT_SCALE, y, x, (rt_ref){ 0 }, n, 0, s);
}

int rt_op_swiglu(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n)
{
    return eltwise(seq, RT_ELT_SWIGLU, y, a, b, n, n, 0);
}

int rt_op_gelu(rt_seq *seq, rt_ref y, rt_ref x, int64_t n)
{
    return eltwise(seq, RT_ELT_GELU, y, x, (rt_ref){ 0 }, n, 0, 0);
}

int rt_op_geglu(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n)
{
    return eltwise(seq, RT_ELT_GEGLU, y, a, b, n, n, 0);
}

int rt_op_softcap(rt_seq *seq, rt_ref y, rt_ref x, int64_t n, float cap)
{
    if (!(cap > 0))
        return rt_seq_fail(seq, RT_ERR_INVALID, "softcap: cap %g", (double)cap);
    return eltwise(seq, RT_ELT_SOFTCAP, y, x, (rt_ref){ 0 }, n, 0, cap);
}

/* ---------------------------------------------------------------- row reductions */

/* One workgroup per group of dim values (rows * groups of them), at X[r ldx + g dim], Y[r ldy + g dim]. */
static int norm(rt_seq *seq, bool layer, const rt_norm_desc *d, rt_ref b)
{
    int64_t rows = d->rows, dim = d->dim, groups = d->groups ? d->groups : 1;
    int64_t ldx = d->ldx ? d->ldx : groups * dim, ldy = d->ldy ? d->ldy : groups * dim;
    if (too_big(rows) || too_big(dim) || too_big(groups) || too_big(rows * groups) || ldx < groups * dim ||
        ldy < groups * dim || too_big(rows * ldx) || too_big(rows * ldy))
        return rt_seq_fail(seq, RT_ERR_INVALID, "norm: bad shape %lld x %lld x %lld (ldx %lld, ldy %lld)",
                           (long long)rows, (long long)groups, (long long)dim, (long long)ldx, (long long)ldy);
    int64_t nx = (rows - 1) * ldx + groups * dim, ny = (rows - 1) * ldy + groups * dim;
    /* Y += norm(X) reads Y after other groups' invocations may have read X: no overlap at all */
    if (d->accumulate && d->y.buf == d->x.buf && d->y.off < d->x.off + (size_t)nx * 4 &&
        d->x.off < d->y.off + (size_t)ny * 4)
        return rt_seq_fail(seq, RT_ERR_INVALID, "norm: an accumulated Y overlaps X");
    rt_pc_norm pc = { .rows = (uint32_t)rows, .dim = (uint32_t)dim, .layer = layer, .has_bias = b.buf != NULL,
                      .eps = d->eps, .groups = (uint32_t)groups, .ldx = (uint32_t)ldx, .ldy = (uint32_t)ldy,
                      .accumulate = d->accumulate };
    rt_bind bind[4];
    rt_op_bind(seq, d->y, 4, ny, &bind[0], &pc.off_y);
    rt_op_bind(seq, d->x, 4, nx, &bind[1], &pc.off_x);
    rt_op_bind(seq, d->w, 4, dim, &bind[2], &pc.off_w);
    if (b.buf)
        rt_op_bind(seq, b, 4, dim, &bind[3], &pc.off_b);
    else
        bind[3] = bind[2];
    uint32_t wg = rt_op_wg(seq, dim >= 1024 ? 256 : 64), gx, gy;
    rt_op_grid_rows(seq, rows * groups, &gx, &gy);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_norm, &wg, 1, 4, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, bind, 4, &pc, gx, gy, 1);
}

int rt_op_rmsnorm_ex(rt_seq *seq, const rt_norm_desc *d)
{
    return norm(seq, false, d, (rt_ref){ 0 });
}

int rt_op_rmsnorm(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, int64_t rows, int64_t dim, float eps)
{
    rt_norm_desc d = { .y = y, .x = x, .w = w, .rows = rows, .dim = dim, .eps = eps };
    return norm(seq, false, &d, (rt_ref){ 0 });
}

int rt_op_layernorm(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_ref b, int64_t rows, int64_t dim, float eps)
{
    rt_norm_desc d = { .y = y, .x = x, .w = w, .rows = rows, .dim = dim, .eps = eps };
    return norm(seq, true, &d, b);
}

int rt_op_softmax(rt_seq *seq, rt_ref y, rt_ref x, int64_t rows, int64_t cols, float scale)
{
    if (too_big(rows) || too_big(cols) || too_big(rows * cols))
        return rt_seq_fail(seq, RT_ERR_INVALID, "softmax: bad shape");
    rt_pc_softmax pc = { .rows = (uint32_t)rows, .cols = (uint32_t)cols, .scale = scale };
    rt_bind bind[2];
    rt_op_bind(seq, y, 4, rows * cols, &bind[0], &pc.off_y);
    rt_op_bind(seq, x, 4, rows * cols, &bind[1], &pc.off_x);
    uint32_t wg = rt_op_wg(seq, cols >= 1024 ? 256 : 64), gx, gy;
    rt_op_grid_rows(seq, rows, &gx, &gy);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_softmax, &wg, 1, 2, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, bind, 2, &pc, gx, gy, 1);
}

int rt_op_argmax(rt_seq *seq, rt_ref out, rt_ref x, int64_t rows, int64_t cols)
{
    if (too_big(rows) || too_big(cols) || too_big(rows * cols))
        return rt_seq_fail(seq, RT_ERR_INVALID, "argmax: bad shape");
    rt_pc_argmax pc = { .rows = (uint32_t)rows, .cols = (uint32_t)cols };
    rt_bind bind[2];
    rt_op_bind(seq, out, 4, rows, &bind[0], &pc.off_out);
    rt_op_bind(seq, x, 4, rows * cols, &bind[1], &pc.off_x);
    uint32_t wg = rt_op_wg(seq, 256), gx, gy;
    rt_op_grid_rows(seq, rows, &gx, &gy);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_argmax, &wg, 1, 2, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, bind, 2, &pc, gx, gy, 1);
}

/* ---------------------------------------------------------------- positions */

int rt_op_rope(rt_seq *seq, rt_ref x, rt_ref pos, int64_t rows, int n_heads, int head_dim, const rt_rope_desc *r)
{
    if (too_big(rows) || n_heads <= 0 || head_dim <= 0 || r->n_rot <= 0 || r->n_rot > head_dim || r->n_rot % 2 ||
        too_big(rows * n_heads * head_dim))
        return rt_seq_fail(seq, RT_ERR_INVALID, "rope: bad shape (n_rot %d, head_dim %d)", r->n_rot, head_dim);
    rt_pc_rope pc = { .rows = (uint32_t)rows, .n_heads = (uint32_t)n_heads, .head_dim = (uint32_t)head_dim,
                      .n_rot = (uint32_t)r->n_rot, .mode = r->mode, .has_ff = r->freq_factors.buf != NULL,
                      .base = r->base, .freq_scale = r->freq_scale ? r->freq_scale : 1.0f,
                      .ext_factor = r->ext_factor, .attn_factor = r->attn_factor ? r->attn_factor : 1.0f,
                      .beta_fast = r->beta_fast, .beta_slow = r->beta_slow, .n_ctx_orig = (float)r->n_ctx_orig };
    rt_bind bind[3];
    rt_op_bind(seq, x, 4, rows * n_heads * head_dim, &bind[0], &pc.off_x);
    rt_op_bind(seq, pos, 4, rows, &bind[1], &pc.off_pos);
    if (r->freq_factors.buf)
        rt_op_bind(seq, r->freq_factors, 4, r->n_rot / 2, &bind[2], &pc.off_ff);
    else
        bind[2] = bind[1];
    int64_t n = rows * n_heads * (r->n_rot / 2);
    uint32_t wg = rt_op_wg(seq, 256);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_rope, &wg, 1, 3, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, bind, 3, &pc, rt_op_groups(seq, n, wg), 1, 1);
}

int rt_op_get_rows(rt_seq *seq, rt_ref y, rt_ref table, rt_dtype t, rt_ref ids, int64_t rows, int64_t n_table,
                   int64_t dim)
{
    rt_dtype_traits tr;
    size_t row_bytes = rt_dtype_row_bytes(t, dim);
    if (too_big(rows) || too_big(n_table) || too_big(dim) || too_big(rows * dim) || !rt_dtype_info((int)t, &tr) ||
        !row_bytes)
        return rt_seq_fail(seq, RT_ERR_INVALID, "get_rows: bad shape or type (%lld values per row of type %d)",
                           (long long)dim, (int)t);
    /* 8 values at a time where the rows allow (as in matmul); block formats in rt_weight_bytes' two planes */
    bool vec = dim % 8 == 0 && table.off % 16 == 0;
    size_t s_row = 0;
    if (tr.block > 1) {
        row_bytes = (size_t)(dim / tr.block) * tr.q_bytes;
        s_row = (size_t)(dim / tr.block) * (tr.block_bytes - tr.q_bytes);
    }
    size_t splane = table.off + ((size_t)n_table * row_bytes + 15) / 16 * 16;
    if ((tr.block > 1 && !vec) || (tr.block == 1 && table.off % tr.block_bytes))
        return rt_seq_fail(seq, RT_ERR_INVALID, "get_rows: a %s table at a misaligned offset", tr.name);
    rt_ctx *ctx = rt_seq_ctx(seq);
    /* bind the table in pieces that fit the binding range */
    int64_t per = (int64_t)((ctx->info.max_storage_buffer_range - ctx->storage_align - 16) / row_bytes);
    if (per < 1)
        return rt_seq_fail(seq, RT_ERR_LIMIT, "get_rows: one row exceeds the binding range");
    uint32_t wg = rt_op_wg(seq, 64), gx, gy, spec[2] = { wg, vec };
    rt_op_grid_rows(seq, rows, &gx, &gy);
    int id = rt_op_typed(rt_shader_get_rows, t);
    if (id < 0)
        return rt_seq_fail(seq, RT_ERR_UNSUPPORTED, "get_rows: no kernel for %s", tr.name);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, (enum rt_shader_id)id, spec, 2, 4, sizeof(rt_pc_get_rows), &p))
        return rt_seq_status(seq);
    rt_seq_parallel(seq, true);
    for (int64_t r0 = 0; r0 < n_table; r0 += per) {
        int64_t nb = n_table - r0 < per ? n_table - r0 : per;
        rt_pc_get_rows pc = { .rows = (uint32_t)rows, .dim = (uint32_t)dim, .n_table = (uint32_t)n_table,
                              .row_bytes = (uint32_t)row_bytes, .row0 = (uint32_t)r0, .n_bound = (uint32_t)nb,
                              .s_row = (uint32_t)s_row };
        rt_bind bind[4];
        rt_op_bind(seq, y, 4, rows * dim, &bind[0], &pc.off_y);
        rt_op_bind_bytes(seq, rt_at(table.buf, table.off + (size_t)r0 * row_bytes), (size_t)nb * row_bytes, &bind[1],
                         &pc.off_t);
        rt_op_bind(seq, ids, 4, rows, &bind[2], &pc.off_ids);
        if (s_row)
            rt_op_bind_bytes(seq, rt_at(table.buf, splane + (size_t)r0 * s_row), (size_t)nb * s_row, &bind[3],
                             &pc.off_s);
        else
            bind[3] = bind[1];
        int64_t units = vec ? dim / 8 : dim;
        uint32_t gxx = (uint32_t)((units + wg - 1) / wg);
        if (gxx > 64)
            gxx = 64;
        /* the rows gathered (at most: rows of this piece), not the table */
        rt_seq_cost(seq, (double)rows * (double)(row_bytes + s_row + 4 * (size_t)dim + 4), 0);
        rt_seq_dispatch(seq, p, bind, 4, &pc, gxx, gx, gy);
    }
    rt_seq_parallel(seq, false);
    return rt_seq_status(seq);
}

int rt_op_kv_write(rt_seq *seq, rt_ref cache, rt_dtype t, rt_ref src, rt_ref pos, int64_t rows, int64_t dim,
                   int64_t cap)
{
    if (too_big(rows) || too_big(dim) || too_big(cap) || too_big(cap * dim) || (t != RT_F32 && t != RT_F16) ||
        (t == RT_F16 && dim % 2))
        return rt_seq_fail(seq, RT_ERR_INVALID, "kv_write: bad shape or type");
    rt_pc_kv_write pc = { .rows = (uint32_t)rows, .dim = (uint32_t)dim, .cap = (uint32_t)cap, .dtype = t };
    rt_bind bind[3];
    rt_op_bind(seq, cache, rt_dtype_size(t), cap * dim, &bind[0], &pc.off_c);
    if (t == RT_F16 && pc.off_c % 2)
        return rt_seq_fail(seq, RT_ERR_INVALID, "kv_write: an f16 cache must start at a 4-byte boundary");
    rt_op_bind(seq, src, 4, rows * dim, &bind[1], &pc.off_src);
    rt_op_bind(seq, pos, 4, rows, &bind[2], &pc.off_pos);
    uint32_t wg = rt_op_wg(seq, 64), gx, gy;
    rt_op_grid_rows(seq, rows, &gx, &gy);
    uint32_t gxx = (uint32_t)((dim + wg - 1) / wg);
    if (gxx > 64)
        gxx = 64;
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_kv_write, &wg, 1, 3, sizeof pc, &p))
        return rt_seq_status(seq);
    rt_seq_cost(seq, (double)rows * (double)dim * (4.0 + (double)rt_dtype_size(t)) + 4.0 * (double)rows, 0);
    return rt_seq_dispatch(seq, p, bind, 3, &pc, gxx, gx, gy);
}

int rt_op_rope_kv(rt_seq *seq, rt_ref q, rt_ref kcache, rt_ref vcache, rt_dtype t, rt_ref qkv, rt_ref pos,
                  rt_ref slots, int64_t rows, int n_heads, int n_kv_heads, int head_dim, int64_t cap,
                  const rt_rope_desc *r)
{
    int64_t q_dim = (int64_t)n_heads * head_dim, kv_dim = (int64_t)n_kv_heads * head_dim, ld = q_dim + 2 * kv_dim;
    if (too_big(rows) || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || too_big(cap) || too_big(rows * ld) ||
        too_big(cap * kv_dim) || r->n_rot < 0 || r->n_rot > head_dim || r->n_rot % 2 ||
        (t != RT_F32 && t != RT_F16) || (t == RT_F16 && kv_dim % 2))
        return rt_seq_fail(seq, RT_ERR_INVALID, "rope_kv: bad shape or type (n_rot %d, head_dim %d)", r->n_rot,
                           head_dim);
    rt_pc_rope_kv pc = { .rows = (uint32_t)rows, .n_heads = (uint32_t)n_heads, .n_kv_heads = (uint32_t)n_kv_heads,
                         .head_dim = (uint32_t)head_dim, .n_rot = (uint32_t)r->n_rot, .mode = r->mode,
                         .has_ff = r->freq_factors.buf != NULL, .ld = (uint32_t)ld, .cap = (uint32_t)cap,
                         .ctype = t, .base = r->base, .freq_scale = r->freq_scale ? r->freq_scale : 1.0f,
                         .ext_factor = r->ext_factor, .attn_factor = r->attn_factor ? r->attn_factor : 1.0f,
                         .beta_fast = r->beta_fast, .beta_slow = r->beta_slow, .n_ctx_orig = (float)r->n_ctx_orig };
    size_t cs = rt_dtype_size(t);
    rt_bind bind[7];
    rt_op_bind(seq, qkv, 4, rows * ld, &bind[0], &pc.off_qkv);
    rt_op_bind(seq, q, 4, rows * q_dim, &bind[1], &pc.off_q);
    rt_op_bind(seq, kcache, cs, cap * kv_dim, &bind[2], &pc.off_k);
    rt_op_bind(seq, vcache, cs, cap * kv_dim, &bind[3], &pc.off_v);
    rt_op_bind(seq, pos, 4, rows, &bind[4], &pc.off_pos);
    if (r->freq_factors.buf)
        rt_op_bind(seq, r->freq_factors, 4, r->n_rot / 2, &bind[5], &pc.off_ff);
    else
        bind[5] = bind[4];
    if (slots.buf) {
        rt_op_bind(seq, slots, 4, rows, &bind[6], &pc.off_slot);
        pc.has_slots = 1;
    } else {
        bind[6] = bind[4];
    }
    if (t == RT_F16 && (pc.off_k % 2 || pc.off_v % 2))
        return rt_seq_fail(seq, RT_ERR_INVALID, "rope_kv: an f16 cache must start at a 4-byte boundary");
    /* a row's units (rope_kv.comp): with n_rot % 4 == 0, two pairs rotated per unit, the values past n_rot
     * and V copied (by words of the cache: two values when f16); else a word of Q, K or V per unit */
    int64_t per = t == RT_F16 ? 2 : 1, units;
    if (r->n_rot % 4 == 0)
        units = (int64_t)(n_heads + n_kv_heads) * (r->n_rot / 4) + (int64_t)n_heads * (head_dim - r->n_rot) +
                (int64_t)n_kv_heads * (head_dim - r->n_rot) / per + kv_dim / per;
    else
        units = q_dim + 2 * kv_dim / per;
    if (too_big(rows * units))
        return rt_seq_fail(seq, RT_ERR_INVALID, "rope_kv: %lld rows of %lld units", (long long)rows, (long long)units);
    pc.units = (uint32_t)units;
    /* one grid-stride loop over all rows' units: a CPU driver pays for every workgroup, so it gets at most
     * 64 of them (with as many as lavapipe's loop limit needs: 60000 iterations per invocation at most) */
    uint32_t wg = rt_op_wg(seq, 64), gx = rt_op_groups(seq, rows * units, wg);
    if (rt_seq_ctx(seq)->info.type == RT_DEVICE_CPU) {
        int64_t least = (rows * units + (int64_t)wg * 60000 - 1) / ((int64_t)wg * 60000);
        gx = gx < 64 ? gx : least > 64 ? (uint32_t)least : 64;
    }
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_rope_kv, &wg, 1, 7, sizeof pc, &p))
        return rt_seq_status(seq);
    /* what moves: the rows of QKV read, Q and one row of each cache written per row */
    rt_seq_cost(seq, (double)rows * (4.0 * (double)(ld + q_dim) + 2.0 * (double)cs * (double)kv_dim + 4.0), 0);
    return rt_seq_dispatch(seq, p, bind, 7, &pc, gx, 1, 1);
}

/* ---------------------------------------------------------------- calibration */

int rt_op_copy_kernel(rt_seq *seq, rt_ref dst, rt_ref src, size_t n)
{
    if (n == 0 || n % 16 || n / 16 > 0xFFFFFFFFu)
        return rt_seq_fail(seq, RT_ERR_INVALID, "copy kernel: size must be a positive multiple of 16");
    rt_pc_bench pc = { .n = (uint32_t)(n / 16) };
    rt_bind bind[2];
    uint32_t o1, o2;
    rt_op_bind(seq, dst, 16, (int64_t)(n / 16), &bind[0], &o1);
    rt_op_bind(seq, src, 16, (int64_t)(n / 16), &bind[1], &o2);
    if (!rt_seq_status(seq) && (o1 || o2))
        return rt_seq_fail(seq, RT_ERR_INVALID, "copy kernel: buffers must be bound at aligned offsets");
    uint32_t wg = rt_op_wg(seq, 256);
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_bench_copy, &wg, 1, 2, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, bind, 2, &pc, rt_op_groups(seq, pc.n, wg), 1, 1);
}

int rt_op_fma_kernel(rt_seq *seq, rt_ref dst, int64_t n_threads, int iters)
{
    if (too_big(n_threads) || iters <= 0)
        return rt_seq_fail(seq, RT_ERR_INVALID, "fma kernel: bad size");
    rt_pc_bench pc = { .n = (uint32_t)n_threads, .iters = (uint32_t)iters };
    rt_bind bind[1];
    uint32_t o;
    rt_op_bind(seq, dst, 4, n_threads, &bind[0], &o);
    /* the kernel writes from the start of its binding: it has no element offset */
    if (!rt_seq_status(seq) && o)
        return rt_seq_fail(seq, RT_ERR_INVALID, "fma kernel: dst must be at an aligned offset");
    uint32_t wg = rt_op_wg(seq, 256);
    if ((n_threads + wg - 1) / wg > rt_seq_ctx(seq)->info.max_workgroup_count[0])
        return rt_seq_fail(seq, RT_ERR_LIMIT, "fma kernel: too many threads");
    rt_pipeline *p;
    if (rt_op_pipeline(seq, RT_SHADER_bench_fma, &wg, 1, 1, sizeof pc, &p))
        return rt_seq_status(seq);
    return rt_seq_dispatch(seq, p, bind, 1, &pc, (uint32_t)((n_threads + wg - 1) / wg), 1, 1);
}
