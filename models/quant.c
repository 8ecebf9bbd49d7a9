/* quant.c: GGML's weight formats on the CPU. For each format a decoder (one block to floats, exactly
 * as llama.cpp's dequantize_row_* computes them) and a round-to-nearest encoder (the scale searches of
 * llama.cpp's reference quantisers, without an importance matrix), and lm_dequantize / lm_quantize
 * (models/lm.h) that run them block by block: the scalar types, the 32-element formats, IQ4_NL and
 * IQ4_XS, the K-quants (their layouts are at the head of their section), the dispatch.
 *
 * Layouts, little-endian, byte offsets in a block; "f16" is an IEEE half, q the stored integers:
 *
 *   F32     1 elem,  4 B   the float                        F16 / BF16  1 elem, 2 B
 *   Q4_0   32 elem, 18 B   f16 d | qs[16]                   x = (q - 8) * d
 *   Q4_1   32 elem, 20 B   f16 d | f16 m | qs[16]           x = q * d + m
 *   Q5_0   32 elem, 22 B   f16 d | u32 qh | qs[16]          x = (q - 16) * d
 *   Q5_1   32 elem, 24 B   f16 d | f16 m | u32 qh | qs[16]  x = q * d + m
 *   Q8_0   32 elem, 34 B   f16 d | i8 qs[32]                x = q * d
 *   IQ4_NL 32 elem, 18 B   f16 d | qs[16]                   x = d * grid[q]
 *   IQ4_XS 256 elem, 136 B f16 d | u16 scales_h | scales_l[4] | qs[128]
 *                          8 sub-blocks of 32, 6-bit scale s (low 4 bits in a nibble of scales_l[ib/2],
 *                          high 2 bits at bit 2*ib of scales_h): x = (d * (s - 32)) * grid[q]
 *
 * In the 32-element formats element j < 16 is the low nibble of qs[j], element j + 16 the high nibble;
 * the fifth bit of element j (Q5_*) is bit j of qh. IQ4_XS packs each sub-block of 32 the same way in
 * its 16 bytes of qs. grid is the 16-entry non-linear table below.
 *
 * Decoding must give llama.cpp's floats bit for bit, so every expression keeps llama.cpp's order of
 * operations in float and nothing may be fused into a multiply-add (the build is ISO C, which keeps GCC
 * from contracting; clang is told below). Most products are exact anyway (an f16 times a few-bit
 * integer); Q6_K's (d * scale) * q is where the order shows. Encoding follows llama.cpp's float order
 * too, so it writes the very blocks llama-quantize writes (tests/test_quant.c checks both on the
 * fixtures in ../shared/models/quant). */
#include "lm.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ---------------------------------------------------------------- scalars */

/* Little-endian fields at any alignment (blocks are 18, 22, 110, ... bytes, so fields are unaligned). */
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

/* v rounded to the nearest integer, halves to even (the default rounding mode), as llama.cpp's
 * nearest_int for the magnitudes that occur (well under 2^22). */
static int round_even(float v)
{
    return (int)rintf(v);
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE half to float, exact. */
static float half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 31) /* inf; nan with its payload, made quiet as the conversion instructions do */
        return f32_from_bits(sign | 0x7F800000u | m << 13 | (m ? 0x400000u : 0));
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return f32_from_bits(sign | (e + 112) << 23 | m << 13); /* rebias 15 -> 127 */
}

/* Float to IEEE half, rounding to nearest even; overflow gives inf. */
static uint16_t f32_to_half(float f)
{
    uint32_t u = f32_to_bits(f), a = u & 0x7FFFFFFFu;
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
    if (a > 0x7F800000u) /* nan: a quiet one */
        return sign | 0x7E00;
    if (a >= 0x477FF000u) /* 65520 (halfway between 65504 and 65536) and above: inf */
        return sign | 0x7C00;
    if (a < 0x33000000u) /* below or at 2^-25, half the smallest subnormal: zero (a tie goes to even 0) */
        return sign;
    uint32_t h, rest, halfway;
    if (a >= 0x38800000u) { /* a normal half: rebias the exponent, keep 10 mantissa bits */
        h = (a - 0x38000000u) >> 13;
        rest = a & 0x1FFF;
        halfway = 0x1000;
    } else { /* a subnormal half: the value in units of 2^-24 */
        uint32_t m = (a & 0x7FFFFF) | 0x800000;
        int shift = 126 - (int)(a >> 23); /* 14 .. 24 */
        h = m >> shift;
        rest = m & ((1u << shift) - 1);
        halfway = 1u << (shift - 1);
    }
    if (rest > halfway || (rest == halfway && (h & 1)))
        h++; /* a carry out of the mantissa steps the exponent, as it should */
    return sign | (uint16_t)h;
}

/* bfloat16 is the top half of a float; encoding rounds to nearest even (as ggml's GGML_FP32_TO_BF16). */
static float bf16_to_f32(uint16_t b)
{
    return f32_from_bits((uint32_t)b << 16);
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) /* nan: the top half, made quiet */
        return (uint16_t)(u >> 16 | 0x40);
    return (uint16_t)((u + 0x7FFF + (u >> 16 & 1)) >> 16); /* round to nearest even */
}

static void f32_decode(const uint8_t *b, float *y)
{
    memcpy(y, b, 4);
}

static void f32_encode(const float *x, uint8_t *b)
{
    memcpy(b, x, 4);
}

static void f16_decode(const uint8_t *b, float *y)
{
    *y = half_to_f32(get16(b));
}

static void f16_encode(const float *x, uint8_t *b)
{
    put16(b, f32_to_half(*x));
}

static void bf16_decode(const uint8_t *b, float *y)
{
    *y = bf16_to_f32(get16(b));
}

static void bf16_encode(const float *x, uint8_t *b)
{
    put16(b, f32_to_bf16(*x));
}

/* ---------------------------------------------------------------- 32-element blocks */

/* The value of largest magnitude among x[0..n), with its sign (the first one on a tie); 0 if all are 0. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            vmax = x[i];
        }
    return vmax;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The integer part of r (r >= 0 in use) clamped to [0, hi]. The encoders of Q4_0 .. Q5_1 round by adding
 * 0.5 (and the zero point) in one float addition and truncating, so halves go up, not to even. */
static int trunc_level(float r, int hi)
{
    return r <= 0 ? 0 : r >= (float)hi ? hi : (int)r;
}

static void q4_0_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b));
    for (int j = 0; j < 16; j++) {
        y[j] = ((b[2 + j] & 0xF) - 8) * d;
        y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
    }
}

/* Symmetric: the value of largest magnitude becomes level 0 (-8 * d), so its sign picks d's sign and
 * the one-sided level 7 falls on the other side. */
static void q4_0_encode(const float *x, uint8_t *b)
{
    float d = signed_absmax(x, 32) / -8, id = d != 0 ? 1.0f / d : 0.0f;
    put16(b, f32_to_half(d));
    for (int j = 0; j < 16; j++)
        b[2 + j] = (uint8_t)(trunc_level(x[j] * id + 8.5f, 15) | trunc_level(x[j + 16] * id + 8.5f, 15) << 4);
}

static void q4_1_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b)), m = half_to_f32(get16(b + 2));
    for (int j = 0; j < 16; j++) {
        y[j] = (b[4 + j] & 0xF) * d + m;
        y[j + 16] = (b[4 + j] >> 4) * d + m;
    }
}

/* The smallest and the largest of x[0..n). */
static void min_max(const float *x, int n, float *lo, float *hi)
{
    *lo = FLT_MAX;
    *hi = -FLT_MAX;
    for (int i = 0; i < n; i++) {
        if (x[i] < *lo)
            *lo = x[i];
        if (x[i] > *hi)
            *hi = x[i];
    }
}

/* Offset: m = the block's minimum, d = its range / 15, levels (x - m) / d. */
static void q4_1_encode(const float *x, uint8_t *b)
{
    float lo, hi;
    min_max(x, 32, &lo, &hi);
    float d = (hi - lo) / 15, id = d != 0 ? 1.0f / d : 0.0f;
    put16(b, f32_to_half(d));
    put16(b + 2, f32_to_half(lo));
    for (int j = 0; j < 16; j++)
        b[4 + j] = (uint8_t)(trunc_level((x[j] - lo) * id + 0.5f, 15) |
                             trunc_level((x[j + 16] - lo) * id + 0.5f, 15) << 4);
}

/* The 5-bit q of element j of a Q5_* block: nibble from qs, fifth bit from qh. */
static int q5_level(const uint8_t *qs, uint32_t qh, int j)
{
    int nib = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return nib | (int)(qh >> j & 1) << 4;
}

static void q5_pack(const int *q, uint8_t *qh4, uint8_t *qs)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
    for (int j = 0; j < 32; j++)
        qh |= (uint32_t)(q[j] >> 4 & 1) << j;
    put32(qh4, qh);
}

static void q5_0_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b));
    uint32_t qh = get32(b + 2);
    for (int j = 0; j < 32; j++)
        y[j] = (q5_level(b + 6, qh, j) - 16) * d;
}

/* As Q4_0 with levels 0 .. 31 (the largest magnitude on level 0, -16 * d). */
static void q5_0_encode(const float *x, uint8_t *b)
{
    float d = signed_absmax(x, 32) / -16, id = d != 0 ? 1.0f / d : 0.0f;
    int q[32];
    for (int j = 0; j < 32; j++)
        q[j] = trunc_level(x[j] * id + 16.5f, 31);
    put16(b, f32_to_half(d));
    q5_pack(q, b + 2, b + 6);
}

static void q5_1_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b)), m = half_to_f32(get16(b + 2));
    uint32_t qh = get32(b + 4);
    for (int j = 0; j < 32; j++)
        y[j] = q5_level(b + 8, qh, j) * d + m;
}

/* As Q4_1 with levels 0 .. 31. */
static void q5_1_encode(const float *x, uint8_t *b)
{
    float lo, hi;
    min_max(x, 32, &lo, &hi);
    float d = (hi - lo) / 31, id = d != 0 ? 1.0f / d : 0.0f;
    int q[32];
    for (int j = 0; j < 32; j++)
        q[j] = trunc_level((x[j] - lo) * id + 0.5f, 31);
    put16(b, f32_to_half(d));
    put16(b + 2, f32_to_half(lo));
    q5_pack(q, b + 4, b + 8);
}

static void q8_0_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b));
    for (int j = 0; j < 32; j++)
        y[j] = (int8_t)b[2 + j] * d;
}

/* d = max|x| / 127, q = x / d rounded half away from zero (roundf), as llama.cpp does. */
static void q8_0_encode(const float *x, uint8_t *b)
{
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
    put16(b, f32_to_half(d));
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)clampi((int)roundf(x[j] * id), -127, 127);
}

/* ---------------------------------------------------------------- IQ4_NL, IQ4_XS */

/* The 16 levels of IQ4_NL / IQ4_XS (llama.cpp's kvalues_iq4nl): denser near zero, as the values of
 * normally distributed weights are. */
static const int8_t iq4_grid[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

/* The index of the grid level nearest v (the upper one on a tie). */
static int iq4_nearest(float v)
{
    if (v <= iq4_grid[0])
        return 0;
    if (v >= iq4_grid[15])
        return 15;
    int k = 1;
    while (v >= iq4_grid[k]) /* ends with grid[k-1] <= v < grid[k] */
        k++;
    return v - iq4_grid[k - 1] < iq4_grid[k] - v ? k - 1 : k;
}

/* sum(w q x) and sum(w q^2) over 32 values, q the grid level nearest id * x, weights w = x^2. */
static void iq4_sums(const float *x, float id, float *sqx, float *sq2)
{
    *sqx = *sq2 = 0;
    for (int j = 0; j < 32; j++) {
        float q = iq4_grid[iq4_nearest(id * x[j])], w = x[j] * x[j];
        *sqx += w * q * x[j];
        *sq2 += w * q * q;
    }
}

/* The scale d of 32 values on the grid (x ~ d * grid[q]) by weighted least squares: the levels are
 * picked with the value of largest magnitude at +127 (clipped to the top level), then at -127 + t for
 * t = -7 .. 7 (around the bottom level); the try whose fit explains the most (largest
 * sum(w q x)^2 / sum(w q^2)) gives d. 0 for an all-zero block. */
static float iq4_fit(const float *x)
{
    float vmax = signed_absmax(x, 32), sqx, sq2;
    if (fabsf(vmax) < 1e-15f)
        return 0;
    iq4_sums(x, 1 / (-vmax / iq4_grid[0]), &sqx, &sq2);
    float d = sq2 > 0 ? sqx / sq2 : 0.0f, best = d * sqx;
    for (int t = -7; t <= 7; t++) {
        iq4_sums(x, (t + iq4_grid[0]) / vmax, &sqx, &sq2);
        if (sq2 > 0 && sqx * sqx > best * sq2) {
            d = sqx / sq2;
            best = d * sqx;
        }
    }
    return d;
}

/* Nibble packing of 32 grid indices into 16 bytes (element j low, j + 16 high). */
static void iq4_pack(const float *x, float id, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(iq4_nearest(id * x[j]) | iq4_nearest(id * x[j + 16]) << 4);
}

static void iq4_nl_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b));
    for (int j = 0; j < 16; j++) {
        y[j] = d * iq4_grid[b[2 + j] & 0xF];
        y[j + 16] = d * iq4_grid[b[2 + j] >> 4];
    }
}

/* llama.cpp's quantize_row_iq4_nl_ref skips the scale search (a fixed start); llama-quantize runs it
 * (quantize_iq4_nl), and so do we, to write the same files. */
static void iq4_nl_encode(const float *x, uint8_t *b)
{
    float d = iq4_fit(x);
    put16(b, f32_to_half(d));
    iq4_pack(x, d != 0 ? 1 / d : 0.0f, b + 2);
}

static void iq4_xs_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b));
    uint16_t sh = get16(b + 2);
    for (int ib = 0; ib < 8; ib++) {
        int s = (b[4 + ib / 2] >> 4 * (ib % 2) & 0xF) | (sh >> 2 * ib & 3) << 4;
        float dl = d * (s - 32);
        const uint8_t *qs = b + 8 + 16 * ib;
        for (int j = 0; j < 16; j++) {
            y[32 * ib + j] = dl * iq4_grid[qs[j] & 0xF];
            y[32 * ib + j + 16] = dl * iq4_grid[qs[j] >> 4];
        }
    }
}

/* A scale per sub-block of 32 (iq4_fit), then the super-block d = -(the one of largest magnitude) / 32,
 * each sub-block's scale rounded to a 6-bit multiple of d, and the levels picked again for it. As
 * llama.cpp, the levels are picked for the float d, not its f16 rounding. */
static void iq4_xs_encode(const float *x, uint8_t *b)
{
    float sc[8];
    for (int ib = 0; ib < 8; ib++)
        sc[ib] = iq4_fit(x + 32 * ib);
    float d = -signed_absmax(sc, 8) / 32, id = d != 0 ? 1 / d : 0.0f;
    uint16_t sh = 0;
    memset(b + 4, 0, 4);
    for (int ib = 0; ib < 8; ib++) {
        int l = clampi(round_even(id * sc[ib]), -32, 31);
        float dl = d * l;
        iq4_pack(x + 32 * ib, dl != 0 ? 1 / dl : 0.0f, b + 8 + 16 * ib);
        l += 32;
        b[4 + ib / 2] |= (uint8_t)((l & 0xF) << 4 * (ib % 2));
        sh |= (uint16_t)((l >> 4) << 2 * ib);
    }
    put16(b, f32_to_half(d));
    put16(b + 2, sh);
}

/* ---------------------------------------------------------------- K-quants: scale fits */

/* Levels l in [-nmax, nmax) of n <= 32 values for the inverse scale iscale, with sum(w l x) and
 * sum(w l^2) for the weights w = x^2. */
static void sym_levels(int n, int nmax, const float *x, float iscale, int8_t *l, float *slx, float *sl2)
{
    *slx = *sl2 = 0;
    for (int i = 0; i < n; i++) {
        l[i] = (int8_t)clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
        float w = x[i] * x[i];
        *slx += w * x[i] * l[i];
        *sl2 += w * l[i] * l[i];
    }
}

/* Symmetric levels for n <= 32 values (llama.cpp's make_qx_quants, weights x^2): q[i] in [0, 2*nmax)
 * stands for q - nmax, x ~ scale * (q - nmax). The value of largest magnitude is put on level -nmax,
 * then on -(nmax + 0.1 k) for k = -9 .. 9; each try picks the levels by rounding and is scored by how
 * much its least-squares scale explains (sum(w l x)^2 / sum(w l^2)); the best try is kept. */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *q)
{
    float vmax = signed_absmax(x, n), slx, sl2;
    if (fabsf(vmax) < 1e-15f) {
        memset(q, 0, (size_t)n);
        return 0;
    }
    sym_levels(n, nmax, x, -nmax / vmax, q, &slx, &sl2);
    float scale = sl2 != 0 ? slx / sl2 : 0.0f, best = scale * slx;
    for (int k = -9; k <= 9; k++) {
        int8_t l[32];
        if (k == 0)
            continue;
        sym_levels(n, nmax, x, -(nmax + 0.1f * k) / vmax, l, &slx, &sl2);
        if (sl2 > 0 && slx * slx > best * sl2) {
            memcpy(q, l, (size_t)n);
            scale = slx / sl2;
            best = scale * slx;
        }
    }
    for (int i = 0; i < n; i++)
        q[i] = (int8_t)(q[i] + nmax);
    return scale;
}

/* Levels -4 .. 3 for 16 values (llama.cpp's make_q3_quants with its refinement): rounding against the
 * value of largest magnitude on level -4, then up to 5 sweeps that move single levels to where the current
 * least-squares scale (weights x^2) wants them, keeping a move when the fit improves. q gets level + 4. */
static float fit_q3(const float *x, int8_t *q)
{
    float vmax = signed_absmax(x, 16);
    if (fabsf(vmax) < 1e-15f) {
        memset(q, 0, 16);
        return 0;
    }
    float iscale = -4 / vmax, slx = 0, sl2 = 0;
    for (int i = 0; i < 16; i++) {
        q[i] = (int8_t)clampi(round_even(iscale * x[i]), -4, 3);
        float w = x[i] * x[i];
        slx += w * x[i] * q[i];
        sl2 += w * q[i] * q[i];
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int moved = 0;
        for (int i = 0; i < 16; i++) {
            float w = x[i] * x[i], s1 = slx - w * x[i] * q[i];
            if (s1 <= 0)
                continue;
            float s2 = sl2 - w * q[i] * q[i];
            int l = clampi(round_even(x[i] * s2 / s1), -4, 3);
            if (l == q[i])
                continue;
            s1 += w * x[i] * l;
            s2 += w * l * l;
            if (s2 > 0 && s1 * s1 * sl2 > slx * slx * s2) { /* s1^2/s2 > slx^2/sl2 */
                q[i] = (int8_t)l;
                slx = s1;
                sl2 = s2;
                moved++;
            }
        }
        if (!moved)
            break;
    }
    for (int i = 0; i < 16; i++)
        q[i] += 4;
    return sl2 > 0 ? slx / sl2 : 0.0f;
}

/* Levels 0 .. nmax with an offset for n <= 32 values (llama.cpp's make_qkx2_quants): x ~ scale * q - *mn
 * with *mn >= 0. Rounding over [min(x, 0), max x] first, then nstep + 1 tries that stretch the range to
 * (nmax + rmin + rdelta k) steps, each refitted by weighted least squares for scale and offset (offset
 * held at 0 when the fit wants it positive) and scored by the weighted error (absolute when mad, else
 * squared); the best try is kept. As in llama.cpp an accepted try's offset is the lower end of the range
 * of the tries after it. */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *q, float *mn, float rmin,
                        float rdelta, int nstep, bool mad)
{
    float lo = x[0], hi = x[0], sw = 0, sx = 0;
    for (int i = 0; i < n; i++) {
        if (x[i] < lo)
            lo = x[i];
        if (x[i] > hi)
            hi = x[i];
        sw += w[i];
        sx += w[i] * x[i];
    }
    if (lo > 0)
        lo = 0;
    if (hi == lo) {
        memset(q, 0, (size_t)n);
        *mn = -lo;
        return 0;
    }
    float iscale = nmax / (hi - lo), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        q[i] = (uint8_t)clampi(round_even(iscale * (x[i] - lo)), 0, nmax);
        float e = scale * q[i] + lo - x[i];
        best += w[i] * (mad ? fabsf(e) : e * e);
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        uint8_t l[32];
        for (int i = 0; i < n; i++) {
            l[i] = (uint8_t)clampi(round_even(iscale * (x[i] - lo)), 0, nmax);
            sl += w[i] * l[i];
            sl2 += w[i] * l[i] * l[i];
            sxl += w[i] * l[i] * x[i];
        }
        float det = sw * sl2 - sl * sl;
        if (det <= 0)
            continue;
        float s = (sw * sxl - sx * sl) / det, m = (sl2 * sx - sl * sxl) / det;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * l[i] + m - x[i];
            err += w[i] * (mad ? fabsf(e) : e * e);
        }
        if (err < best) {
            memcpy(q, l, (size_t)n);
            best = err;
            scale = s;
            lo = m;
        }
    }
    *mn = -lo;
    return scale;
}

/* ---------------------------------------------------------------- K-quants: blocks of 256
 *
 *   Q2_K  84 B  scales[16] | qs[64] | f16 d | f16 dmin
 *               16 groups of 16; scales[g] = sc | m << 4: x = (d * sc) * q - (dmin * m), q 2 bits
 *   Q3_K 110 B  hmask[32] | qs[64] | scales[12] | f16 d
 *               16 groups of 16, 6-bit s: x = (d * (s - 32)) * (q - 4), q = 2 low bits + 1 high bit
 *   Q4_K 144 B  f16 d | f16 dmin | scales[12] | qs[128]
 *               8 groups of 32, 6-bit sc and m: x = (d * sc) * q - (dmin * m), q 4 bits
 *   Q5_K 176 B  f16 d | f16 dmin | scales[12] | qh[32] | qs[128]   as Q4_K with a fifth bit
 *   Q6_K 210 B  ql[128] | qh[64] | i8 scales[16] | f16 d
 *               16 groups of 16: x = (d * scale) * (q - 32), q = 4 low bits + 2 high bits
 *
 * Bit placement of element e (0 .. 255):
 *   Q2_K, Q3_K low bits:  byte 32 * (e / 128) + e % 32 of qs, bits 2 * ((e % 128) / 32)
 *   Q3_K high bit:        byte e % 32 of hmask, bit e / 32 (a set bit means q >= 4)
 *   Q3_K 6-bit s of group g: low 4 bits in scales[g % 8] (low nibble for g < 8, high nibble after),
 *                         high 2 bits at bit 2 * (g / 4) of scales[8 + g % 4]
 *   Q4_K, Q5_K nibble:    byte 32 * (e / 64) + e % 32 of qs, low nibble when e % 64 < 32
 *   Q5_K fifth bit:       byte e % 32 of qh, bit e / 32
 *   Q4_K, Q5_K 6-bit sc, m of group g: g < 4: scales[g], scales[g + 4] (low 6 bits); g >= 4: low 4 bits
 *                         in the nibbles of scales[g + 4], high 2 bits in the top bits of scales[g - 4]
 *                         (sc) and scales[g] (m)
 *   Q6_K low 4 bits:      byte 64 * (e / 128) + e % 64 of ql, low nibble when e % 128 < 64
 *   Q6_K high 2 bits:     byte 32 * (e / 128) + e % 32 of qh, bits 2 * ((e % 128) / 32)
 */

/* The 2-bit field of element e (of 256) in a Q2_K / Q3_K qs. */
static int k_2bit(const uint8_t *qs, int e)
{
    return qs[32 * (e / 128) + e % 32] >> 2 * (e % 128 / 32) & 3;
}

static void k_2bit_pack(const uint8_t *l, uint8_t *qs)
{
    memset(qs, 0, 64);
    for (int e = 0; e < 256; e++)
        qs[32 * (e / 128) + e % 32] |= (uint8_t)((l[e] & 3) << 2 * (e % 128 / 32));
}

/* The 6-bit scale and min of group g of a Q4_K / Q5_K block. */
static void k_scale_min(const uint8_t *s, int g, int *sc, int *m)
{
    if (g < 4) {
        *sc = s[g] & 63;
        *m = s[g + 4] & 63;
    } else {
        *sc = (s[g + 4] & 0xF) | (s[g - 4] >> 6) << 4;
        *m = (s[g + 4] >> 4) | (s[g] >> 6) << 4;
    }
}

static void k_scale_min_pack(const int *sc, const int *m, uint8_t *s)
{
    memset(s, 0, 12);
    for (int g = 0; g < 8; g++) {
        if (g < 4) {
            s[g] = (uint8_t)sc[g];
            s[g + 4] = (uint8_t)m[g];
        } else {
            s[g + 4] = (uint8_t)((sc[g] & 0xF) | (m[g] & 0xF) << 4);
            s[g - 4] |= (uint8_t)((sc[g] >> 4) << 6);
            s[g] |= (uint8_t)((m[g] >> 4) << 6);
        }
    }
}

/* The 6-bit scale (0 .. 63, standing for s - 32) of group g of a Q3_K block. */
static int q3_k_scale(const uint8_t *s, int g)
{
    int lo = g < 8 ? s[g] & 0xF : s[g - 8] >> 4;
    return lo | (s[8 + g % 4] >> 2 * (g / 4) & 3) << 4;
}

static void q2_k_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b + 80)), dmin = half_to_f32(get16(b + 82));
    for (int g = 0; g < 16; g++) {
        float dl = d * (b[g] & 0xF), ml = dmin * (b[g] >> 4);
        for (int e = 16 * g; e < 16 * g + 16; e++)
            y[e] = dl * k_2bit(b + 16, e) - ml;
    }
}

/* Per group of 16 an offset fit (levels 0 .. 3, weights |x|, absolute error), then the 16 scales and
 * the 16 offsets each as 4-bit multiples of a super-block step (largest / 15), and the levels picked
 * again for the stored (f16-rounded) steps. */
static void q2_k_encode(const float *x, uint8_t *b)
{
    uint8_t l[256];
    float sc[16], mn[16], w[16], max_sc = 0, max_mn = 0;
    for (int g = 0; g < 16; g++) {
        for (int i = 0; i < 16; i++)
            w[i] = fabsf(x[16 * g + i]);
        sc[g] = fit_affine(16, 3, x + 16 * g, w, l + 16 * g, &mn[g], -0.5f, 0.1f, 15, true);
        max_sc = sc[g] > max_sc ? sc[g] : max_sc;
        max_mn = mn[g] > max_mn ? mn[g] : max_mn;
    }
    float isc = max_sc > 0 ? 15.f / max_sc : 0.0f, imn = max_mn > 0 ? 15.f / max_mn : 0.0f;
    for (int g = 0; g < 16; g++)
        b[g] = (uint8_t)(clampi(round_even(isc * sc[g]), 0, 15) | clampi(round_even(imn * mn[g]), 0, 15) << 4);
    put16(b + 80, f32_to_half(max_sc > 0 ? max_sc / 15.f : 0.0f));
    put16(b + 82, f32_to_half(max_mn > 0 ? max_mn / 15.f : 0.0f));
    float d = half_to_f32(get16(b + 80)), dmin = half_to_f32(get16(b + 82));
    for (int g = 0; g < 16; g++) {
        float dl = d * (b[g] & 0xF), ml = dmin * (b[g] >> 4);
        if (dl == 0)
            continue;
        for (int e = 16 * g; e < 16 * g + 16; e++)
            l[e] = (uint8_t)clampi(round_even((x[e] + ml) / dl), 0, 3);
    }
    k_2bit_pack(l, b + 16);
}

static void q3_k_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b + 108));
    for (int g = 0; g < 16; g++) {
        float dl = d * (q3_k_scale(b + 96, g) - 32);
        for (int e = 16 * g; e < 16 * g + 16; e++)
            y[e] = dl * (k_2bit(b + 32, e) - (b[e % 32] >> (e / 32) & 1 ? 0 : 4));
    }
}

/* Per group of 16 a symmetric fit (fit_q3), the 16 signed scales as 6-bit multiples of a super-block
 * step (the one of largest magnitude on -32), and the levels picked again for the stored step. */
static void q3_k_encode(const float *x, uint8_t *b)
{
    int8_t l[256];
    float sc[16];
    for (int g = 0; g < 16; g++)
        sc[g] = fit_q3(x + 16 * g, l + 16 * g);
    float max_sc = signed_absmax(sc, 16);
    uint8_t *s = b + 96;
    memset(s, 0, 12);
    if (max_sc != 0) {
        float iscale = -32.f / max_sc;
        for (int g = 0; g < 16; g++) {
            int v = clampi(round_even(iscale * sc[g]), -32, 31) + 32;
            s[g % 8] |= (uint8_t)((v & 0xF) << (g < 8 ? 0 : 4));
            s[8 + g % 4] |= (uint8_t)((v >> 4) << 2 * (g / 4));
        }
        put16(b + 108, f32_to_half(1 / iscale));
    } else {
        put16(b + 108, 0);
    }
    float d = half_to_f32(get16(b + 108));
    for (int g = 0; g < 16; g++) {
        float dl = d * (q3_k_scale(s, g) - 32);
        if (dl == 0)
            continue;
        for (int e = 16 * g; e < 16 * g + 16; e++)
            l[e] = (int8_t)(clampi(round_even(x[e] / dl), -4, 3) + 4);
    }
    uint8_t low[256];
    memset(b, 0, 32);
    for (int e = 0; e < 256; e++) {
        if (l[e] > 3)
            b[e % 32] |= (uint8_t)(1 << e / 32);
        low[e] = (uint8_t)(l[e] & 3);
    }
    k_2bit_pack(low, b + 32);
}

/* Q4_K and Q5_K share everything but the level count (15 or 31) and the search range of the fit. */
static void k_offset_decode(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y)
{
    float d = half_to_f32(get16(b)), dmin = half_to_f32(get16(b + 2));
    for (int g = 0; g < 8; g++) {
        int sc, m;
        k_scale_min(b + 4, g, &sc, &m);
        float dl = d * sc, ml = dmin * m;
        for (int e = 32 * g; e < 32 * g + 32; e++) {
            int q = qs[32 * (e / 64) + e % 32] >> (e % 64 < 32 ? 0 : 4) & 0xF;
            if (qh)
                q += (qh[e % 32] >> (e / 32) & 1) << 4;
            y[e] = dl * q - ml;
        }
    }
}

/* Per group of 32 an offset fit (weights rms(x) + |x|, squared error), then the 8 scales and 8 offsets
 * as 6-bit multiples of super-block steps (largest / 63), and the levels picked again for the stored
 * steps. l gets the 256 levels. */
static void k_offset_encode(const float *x, uint8_t *b, int nmax, float rmin, int nstep, uint8_t *l)
{
    float sc[8], mn[8], w[32], max_sc = 0, max_mn = 0;
    for (int g = 0; g < 8; g++) {
        const float *xg = x + 32 * g;
        float sum_x2 = 0;
        for (int i = 0; i < 32; i++)
            sum_x2 += xg[i] * xg[i];
        float rms = sqrtf(sum_x2 / 32);
        for (int i = 0; i < 32; i++)
            w[i] = rms + fabsf(xg[i]);
        sc[g] = fit_affine(32, nmax, xg, w, l + 32 * g, &mn[g], rmin, 0.1f, nstep, false);
        max_sc = sc[g] > max_sc ? sc[g] : max_sc;
        max_mn = mn[g] > max_mn ? mn[g] : max_mn;
    }
    float isc = max_sc > 0 ? 63.f / max_sc : 0.0f, imn = max_mn > 0 ? 63.f / max_mn : 0.0f;
    int qsc[8], qmn[8];
    for (int g = 0; g < 8; g++) {
        qsc[g] = clampi(round_even(isc * sc[g]), 0, 63);
        qmn[g] = clampi(round_even(imn * mn[g]), 0, 63);
    }
    k_scale_min_pack(qsc, qmn, b + 4);
    put16(b, f32_to_half(max_sc / 63.f));
    put16(b + 2, f32_to_half(max_mn / 63.f));
    float d = half_to_f32(get16(b)), dmin = half_to_f32(get16(b + 2));
    for (int g = 0; g < 8; g++) {
        float dl = d * qsc[g], ml = dmin * qmn[g];
        if (dl == 0)
            continue;
        for (int e = 32 * g; e < 32 * g + 32; e++)
            l[e] = (uint8_t)clampi(round_even((x[e] + ml) / dl), 0, nmax);
    }
}

static void q4_k_decode(const uint8_t *b, float *y)
{
    k_offset_decode(b, NULL, b + 16, y);
}

static void q4_k_encode(const float *x, uint8_t *b)
{
    uint8_t l[256];
    k_offset_encode(x, b, 15, -1.f, 20, l);
    for (int e = 0; e < 256; e += 64)
        for (int i = 0; i < 32; i++)
            b[16 + e / 2 + i] = (uint8_t)(l[e + i] | l[e + i + 32] << 4);
}

static void q5_k_decode(const uint8_t *b, float *y)
{
    k_offset_decode(b, b + 16, b + 48, y);
}

static void q5_k_encode(const float *x, uint8_t *b)
{
    uint8_t l[256];
    k_offset_encode(x, b, 31, -0.5f, 15, l);
    memset(b + 16, 0, 32);
    for (int e = 0; e < 256; e++)
        b[16 + e % 32] |= (uint8_t)((l[e] >> 4) << (e / 32));
    for (int e = 0; e < 256; e += 64)
        for (int i = 0; i < 32; i++)
            b[48 + e / 2 + i] = (uint8_t)((l[e + i] & 0xF) | (l[e + i + 32] & 0xF) << 4);
}

static void q6_k_decode(const uint8_t *b, float *y)
{
    float d = half_to_f32(get16(b + 208));
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128;
        int lo = b[64 * h + r % 64] >> (r < 64 ? 0 : 4) & 0xF;
        int hi = b[128 + 32 * h + r % 32] >> 2 * (r / 32) & 3;
        y[e] = d * (int8_t)b[192 + e / 16] * ((lo | hi << 4) - 32); /* (d * scale) * q */
    }
}

/* Per group of 16 a symmetric fit (fit_symmetric, levels -32 .. 31), the 16 signed scales as 8-bit
 * multiples of a super-block step (the one of largest magnitude on -128), the levels picked again for
 * the stored step. An all-zero block is all zero bytes. */
static void q6_k_encode(const float *x, uint8_t *b)
{
    int8_t l[256];
    float sc[16];
    for (int g = 0; g < 16; g++)
        sc[g] = fit_symmetric(16, 32, x + 16 * g, l + 16 * g);
    float max_sc = signed_absmax(sc, 16);
    memset(b, 0, 210);
    if (fabsf(max_sc) < 1e-15f)
        return;
    float iscale = -128.f / max_sc;
    put16(b + 208, f32_to_half(1 / iscale));
    for (int g = 0; g < 16; g++)
        b[192 + g] = (uint8_t)clampi(round_even(iscale * sc[g]), -128, 127);
    float d = half_to_f32(get16(b + 208));
    for (int g = 0; g < 16; g++) {
        float dl = d * (int8_t)b[192 + g];
        if (dl == 0)
            continue;
        for (int e = 16 * g; e < 16 * g + 16; e++)
            l[e] = (int8_t)(clampi(round_even(x[e] / dl), -32, 31) + 32);
    }
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128;
        b[64 * h + r % 64] |= (uint8_t)((l[e] & 0xF) << (r < 64 ? 0 : 4));
        b[128 + 32 * h + r % 32] |= (uint8_t)((l[e] >> 4) << 2 * (r / 32));
    }
}

/* ---------------------------------------------------------------- dispatch */

typedef struct {
    int64_t block; /* elements per block */
    size_t bytes;  /* bytes per block (the same as lm_gguf_type_size) */
    void (*decode)(const uint8_t *b, float *y);
    void (*encode)(const float *x, uint8_t *b);
} codec;

static const codec codecs[LM_GGML_TYPE_COUNT] = {
    [LM_GGML_F32] = { 1, 4, f32_decode, f32_encode },
    [LM_GGML_F16] = { 1, 2, f16_decode, f16_encode },
    [LM_GGML_BF16] = { 1, 2, bf16_decode, bf16_encode },
    [LM_GGML_Q4_0] = { 32, 18, q4_0_decode, q4_0_encode },
    [LM_GGML_Q4_1] = { 32, 20, q4_1_decode, q4_1_encode },
    [LM_GGML_Q5_0] = { 32, 22, q5_0_decode, q5_0_encode },
    [LM_GGML_Q5_1] = { 32, 24, q5_1_decode, q5_1_encode },
    [LM_GGML_Q8_0] = { 32, 34, q8_0_decode, q8_0_encode },
    [LM_GGML_Q2_K] = { 256, 84, q2_k_decode, q2_k_encode },
    [LM_GGML_Q3_K] = { 256, 110, q3_k_decode, q3_k_encode },
    [LM_GGML_Q4_K] = { 256, 144, q4_k_decode, q4_k_encode },
    [LM_GGML_Q5_K] = { 256, 176, q5_k_decode, q5_k_encode },
    [LM_GGML_Q6_K] = { 256, 210, q6_k_decode, q6_k_encode },
    [LM_GGML_IQ4_NL] = { 32, 18, iq4_nl_decode, iq4_nl_encode },
    [LM_GGML_IQ4_XS] = { 256, 136, iq4_xs_decode, iq4_xs_encode },
};

bool lm_quant_supported(int type)
{
    return type >= 0 && type < LM_GGML_TYPE_COUNT && codecs[type].decode;
}

/* The codec of type for n elements, or the status that refuses them. */
static int codec_for(int type, int64_t n, const void *a, const void *b, const codec **out)
{
    if (!lm_quant_supported(type))
        return LM_ERR_UNSUPPORTED;
    *out = &codecs[type];
    if (n < 0 || n % (*out)->block || (n > 0 && (!a || !b)))
        return LM_ERR_INVALID;
    return LM_OK;
}

int lm_dequantize(int type, const void *src, float *dst, int64_t n)
{
    const codec *c;
    int rc = codec_for(type, n, src, dst, &c);
    if (rc)
        return rc;
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / c->block; i++)
        c->decode(p + (size_t)i * c->bytes, dst + i * c->block);
    return LM_OK;
}

int lm_quantize(int type, const float *src, void *dst, int64_t n)
{
    const codec *c;
    int rc = codec_for(type, n, src, dst, &c);
    if (rc)
        return rc;
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / c->block; i++)
        c->encode(src + i * c->block, p + (size_t)i * c->bytes);
    return LM_OK;
}
