/* kld.c: the KL-divergence base file (format at the top of kld.h) and the statistics of a comparison,
 * computed as llama.cpp's llama-perplexity computes them. */
#include "kld.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"

static bool host_little_endian(void)
{
    const uint32_t one = 1;
    return *(const uint8_t *)&one == 1;
}

double kld_log_sum_exp(const float *logits, int32_t n)
{
    float mx = logits[0];
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - mx);
    return (double)mx + log(sum);
}

void kld_log_softmax(const float *logits, int32_t n, float *lp)
{
    double lse = kld_log_sum_exp(logits, n);
    for (int32_t i = 0; i < n; i++)
        lp[i] = (float)((double)logits[i] - lse);
}

/* ---- writing ---- */

int kld_writer_open(kld_writer *w, const char *path, int32_t n_vocab, int32_t n_ctx, int32_t n_chunks,
                    int32_t bos, const int32_t *tokens)
{
    memset(w, 0, sizeof *w);
    if (!host_little_endian())
        return app_fail("%s: the KL-divergence base file is little-endian; this machine is not", path);
    size_t len = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(len);
    if (!w->path || !w->tmp) {
        kld_writer_abort(w);
        return app_fail("out of memory");
    }
    /* a new file of our own beside path (never one, or a link, already there), renamed onto path when
     * complete: a crash or a full disk leaves no truncated base file under its name */
    snprintf(w->tmp, len, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        app_fail("%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            remove(w->tmp);
        }
        free(w->path);
        free(w->tmp);
        memset(w, 0, sizeof *w);
        return 1;
    }
    w->n_vocab = n_vocab;
    uint32_t h[8] = { 0, KLD_VERSION, (uint32_t)n_vocab, (uint32_t)n_ctx, (uint32_t)n_chunks,
                      (uint32_t)(n_ctx / 2), (uint32_t)bos, 0 };
    memcpy(h, KLD_MAGIC, 4);
    size_t nt = (size_t)n_chunks * (size_t)n_ctx;
    if (fwrite(h, sizeof h, 1, w->f) != 1 || fwrite(tokens, sizeof *tokens, nt, w->f) != nt) {
        app_fail("%s: %s", w->tmp, strerror(errno));
        kld_writer_abort(w);
        return 1;
    }
    return 0;
}

int kld_writer_row(kld_writer *w, const float *lp)
{
    if (fwrite(lp, sizeof *lp, (size_t)w->n_vocab, w->f) != (size_t)w->n_vocab)
        return app_fail("%s: %s", w->tmp, strerror(errno));
    return 0;
}

int kld_writer_finish(kld_writer *w)
{
    int rc = 0;
    if (fflush(w->f) || fsync(fileno(w->f)))
        rc = app_fail("%s: %s", w->tmp, strerror(errno));
    if (fclose(w->f) && !rc)
        rc = app_fail("%s: %s", w->tmp, strerror(errno));
    w->f = NULL;
    mode_t um = umask(0); /* mkstemp makes it 0600: the usual 0666 less the umask */
    umask(um);
    if (!rc && chmod(w->tmp, 0666 & ~um))
        rc = app_fail("%s: %s", w->tmp, strerror(errno));
    if (!rc && rename(w->tmp, w->path))
        rc = app_fail("renaming %s to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc)
        remove(w->tmp);
    free(w->path);
    free(w->tmp);
    w->path = w->tmp = NULL;
    return rc;
}

void kld_writer_abort(kld_writer *w)
{
    if (w->f) {
        fclose(w->f);
        remove(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

/* ---- reading ---- */

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int kld_base_open(kld_base *b, const char *path, int32_t n_vocab)
{
    memset(b, 0, sizeof *b);
    b->path = path;
    if (!host_little_endian())
        return app_fail("%s: the KL-divergence base file is little-endian; this machine is not", path);
    b->f = fopen(path, "rb");
    if (!b->f)
        return app_fail("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(b->f), &st))
        return app_fail("%s: %s", path, strerror(errno));
    unsigned char h[KLD_HEADER_BYTES];
    size_t got = fread(h, 1, sizeof h, b->f);
    if (got >= 8 && !memcmp(h, "_logits_", 8))
        return app_fail("%s is a llama.cpp log-probability file; --kl-divergence-base reads only files written by "
                        "`vkllm perplexity --kl-divergence-base`",
                        path);
    if (got < 4 || memcmp(h, KLD_MAGIC, 4))
        return app_fail("%s is not a KL-divergence base file (no \"%s\" magic); write one with `vkllm perplexity -m "
                        "BASE -f TEXT --kl-divergence-base %s`",
                        path, KLD_MAGIC, path);
    if (got < sizeof h)
        return app_fail("%s is truncated: %zu bytes, shorter than the %d-byte header", path, got, KLD_HEADER_BYTES);
    uint32_t version = get_u32(h + 4), nv = get_u32(h + 8), nc = get_u32(h + 12), nk = get_u32(h + 16),
             first = get_u32(h + 20), bos = get_u32(h + 24);
    if (version != KLD_VERSION)
        return app_fail("%s: KL-divergence base file version %u; this vkllm reads version %u", path, version,
                        KLD_VERSION);
    if (nv != (uint32_t)n_vocab)
        return app_fail("%s was made with a vocabulary of %u tokens; this model has %d: KL divergence needs the same "
                        "vocabulary",
                        path, nv, n_vocab);
    if (nc < 4 || nc > (1u << 20) || nk < 1 || nk > (1u << 30) || first != nc / 2 ||
        ((int32_t)bos != -1 && bos >= nv) || get_u32(h + 28))
        return app_fail("%s: corrupt header (n_ctx %u, n_chunks %u, first %u, bos %d)", path, nc, nk, first,
                        (int32_t)bos);
    /* at most 2^30 chunks * 2^20 tokens * 2^31 vocab * 4: fits in 2^83, so check in steps */
    uint64_t n_tok = (uint64_t)nk * nc, rows = (uint64_t)nk * (nc - 1 - first);
    uint64_t expect = KLD_HEADER_BYTES + 4 * n_tok;
    bool big = rows > (UINT64_MAX / 8) / nv;
    if (!big)
        expect += 4 * rows * nv;
    if (big || (uint64_t)st.st_size != expect)
        return app_fail("%s is truncated or corrupt: %lld bytes, where %u chunks of %u tokens with a vocabulary of %u "
                        "take %llu",
                        path, (long long)st.st_size, nk, nc, nv, (unsigned long long)expect);
    b->n_vocab = n_vocab;
    b->n_ctx = (int32_t)nc;
    b->n_chunks = (int32_t)nk;
    b->first = (int32_t)first;
    b->bos = (int32_t)bos;
    b->tokens = malloc(sizeof *b->tokens * (size_t)n_tok);
    b->row = malloc(sizeof *b->row * (size_t)nv);
    if (!b->tokens || !b->row)
        return app_fail("%s: out of memory", path);
    if (fread(b->tokens, sizeof *b->tokens, (size_t)n_tok, b->f) != (size_t)n_tok)
        return app_fail("%s: read error", path);
    for (uint64_t i = 0; i < n_tok; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= n_vocab)
            return app_fail("%s: corrupt: token %llu is %d, outside the vocabulary", path, (unsigned long long)i,
                            b->tokens[i]);
    return 0;
}

int kld_base_next(kld_base *b)
{
    if (fread(b->row, sizeof *b->row, (size_t)b->n_vocab, b->f) != (size_t)b->n_vocab)
        return app_fail("%s: read error at position %lld", b->path, (long long)b->rows_read);
    b->rows_read++;
    return 0;
}

void kld_base_close(kld_base *b)
{
    if (b->f)
        fclose(b->f);
    free(b->tokens);
    free(b->row);
    memset(b, 0, sizeof *b);
}

/* ---- statistics ---- */

int kld_stats_init(kld_stats *s, int64_t cap)
{
    memset(s, 0, sizeof *s);
    s->cap = cap;
    s->kld_values = malloc(sizeof *s->kld_values * (size_t)(cap > 0 ? cap : 1));
    s->p_diff_values = malloc(sizeof *s->p_diff_values * (size_t)(cap > 0 ? cap : 1));
    if (!s->kld_values || !s->p_diff_values) {
        kld_stats_free(s);
        return app_fail("out of memory");
    }
    return 0;
}

void kld_stats_free(kld_stats *s)
{
    free(s->kld_values);
    free(s->p_diff_values);
    memset(s, 0, sizeof *s);
}

/* KL(base || model) = sum_i p_base(i) (log p_base(i) - log p(i)), over the whole vocabulary, in double.
 * llama.cpp skips base log-probs under -16 (its 16-bit range); they are kept here. The base row must
 * sum to 1 (within float rounding): anything else is a corrupt file, not a divergence. */
bool kld_stats_add(kld_stats *s, const float *lp, const float *base, int32_t n_vocab, int32_t tok)
{
    int32_t imax = 0, imax_base = 0;
    double kld = 0, psum = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (!(base[i] <= 0.0f)) /* also NaN */
            return false;
        double p = exp((double)base[i]);
        psum += p;
        kld += p * ((double)base[i] - lp[i]);
        if (lp[i] > lp[imax])
            imax = i;
        if (base[i] > base[imax_base])
            imax_base = i;
    }
    if (fabs(psum - 1) > 1e-3 || s->count >= s->cap)
        return false;
    double nll = -(double)lp[tok], nll_base = -(double)base[tok];
    s->sum_nll += nll;
    s->sum_nll2 += nll * nll;
    s->sum_nll_base += nll_base;
    s->sum_nll_base2 += nll_base * nll_base;
    s->sum_nll_nll_base += nll * nll_base;
    s->sum_kld += kld;
    s->sum_kld2 += kld * kld;
    double p_diff = exp(-nll) - exp(-nll_base), p_diff2 = p_diff * p_diff;
    s->sum_p_diff += p_diff;
    s->sum_p_diff2 += p_diff2;
    s->sum_p_diff4 += p_diff2 * p_diff2;
    s->n_same_top += imax == imax_base;
    s->kld_values[s->count] = (float)kld;
    s->p_diff_values[s->count] = (float)p_diff;
    s->count++;
    return true;
}

/* The mean of the values and its standard error, sqrt(var / (n - 1)), as llama-perplexity gives it
 * (no uncertainty under 11 values). */
static void mean_unc(double sum, double sum2, int64_t n, double *mean, double *unc)
{
    *mean = n > 0 ? sum / n : 0;
    double var = n > 0 ? sum2 / n - *mean * *mean : 0;
    *unc = var > 0 && n > 10 ? sqrt(var / (n - 1)) : 0;
}

/* The covariance of the two means (llama-perplexity's: none under 10 values). */
static double cov_means(double sa, double sb, double sab, int64_t n)
{
    return n < 10 ? 0 : (sab / n - (sa / n) * (sb / n)) / (n - 1);
}

/* ascending, NaN last (a model that gives NaN logits must not break the sort) */
static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    if (isnan(x) || isnan(y))
        return (isnan(x) != 0) - (isnan(y) != 0);
    return (x > y) - (x < y);
}

/* The value at a fraction of a sorted array, interpolated between its neighbours. */
static double percentile(const float *v, int64_t n, double fraction)
{
    if (fraction <= 0)
        return v[0];
    if (fraction >= 1)
        return v[n - 1];
    double p = fraction * (double)(n - 1);
    int64_t ip = (int64_t)p;
    p -= (double)ip;
    return (1 - p) * v[ip] + p * v[ip + 1 < n ? ip + 1 : n - 1];
}

static double median(const float *v, int64_t n)
{
    return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2] + v[n / 2 - 1]);
}

/* A KLD as llama-perplexity prints it (%10.6f), except that a value under 1e-4 keeps its digits in
 * %10.4e: small divergences (F16 against F32) would otherwise read as 0. */
static const char *kld_num(char buf[32], double x)
{
    snprintf(buf, 32, x != 0 && fabs(x) < 1e-4 ? "%10.4e" : "%10.6f", x);
    return buf;
}

void kld_stats_print(const kld_stats *s, FILE *f)
{
    char b1[32], b2[32];
    int64_t n = s->count;
    if (n < 1) {
        fprintf(f, "no positions compared\n");
        return;
    }
    double lq, ulq, lb, ulb;
    mean_unc(s->sum_nll, s->sum_nll2, n, &lq, &ulq);
    mean_unc(s->sum_nll_base, s->sum_nll_base2, n, &lb, &ulb);
    double cov = cov_means(s->sum_nll, s->sum_nll_base, s->sum_nll_nll_base, n);
    double ppl = exp(lq), ppl_unc = ppl * ulq, ppl_b = exp(lb), ppl_b_unc = ppl_b * ulb;
    double cor = ulq > 0 && ulb > 0 ? cov / (ulq * ulb) : 1;
    double lr = lq - lb, lr_var = ulq * ulq + ulb * ulb - 2 * cov, lr_unc = lr_var > 0 ? sqrt(lr_var) : 0;
    double d_var = ppl_unc * ppl_unc + ppl_b_unc * ppl_b_unc - 2 * ppl * ppl_b * cov;
    fprintf(f, "\n====== Perplexity statistics ======\n");
    fprintf(f, "Mean PPL(Q)                   : %10.6f ± %10.6f\n", ppl, ppl_unc);
    fprintf(f, "Mean PPL(base)                : %10.6f ± %10.6f\n", ppl_b, ppl_b_unc);
    fprintf(f, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100 * cor);
    fprintf(f, "Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", lr, lr_unc);
    fprintf(f, "Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", exp(lr), exp(lr) * lr_unc);
    fprintf(f, "Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", ppl - ppl_b, d_var > 0 ? sqrt(d_var) : 0);

    float *kv = malloc(sizeof *kv * (size_t)n), *pv = malloc(sizeof *pv * (size_t)n);
    if (!kv || !pv) {
        free(kv);
        free(pv);
        fprintf(f, "(out of memory for the percentiles)\n");
        return;
    }
    memcpy(kv, s->kld_values, sizeof *kv * (size_t)n);
    memcpy(pv, s->p_diff_values, sizeof *pv * (size_t)n);
    qsort(kv, (size_t)n, sizeof *kv, cmp_float);
    qsort(pv, (size_t)n, sizeof *pv, cmp_float);

    double m, u;
    mean_unc(s->sum_kld, s->sum_kld2, n, &m, &u);
    fprintf(f, "\n====== KL divergence statistics ======\n");
    fprintf(f, "Mean    KLD: %s ± %s\n", kld_num(b1, m), kld_num(b2, u));
    fprintf(f, "Maximum KLD: %s\n", kld_num(b1, kv[n - 1]));
    static const double hi[] = { 0.999, 0.990, 0.950, 0.900 }, lo[] = { 0.100, 0.050, 0.010, 0.001 };
    for (size_t i = 0; i < sizeof hi / sizeof hi[0]; i++)
        fprintf(f, "%4.1f%%   KLD: %s\n", 100 * hi[i], kld_num(b1, percentile(kv, n, hi[i])));
    fprintf(f, "Median  KLD: %s\n", kld_num(b1, median(kv, n)));
    for (size_t i = 0; i < sizeof lo / sizeof lo[0]; i++)
        fprintf(f, "%4.1f%%   KLD: %s\n", 100 * lo[i], kld_num(b1, percentile(kv, n, lo[i])));
    fprintf(f, "Minimum KLD: %s\n", kld_num(b1, kv[0]));

    mean_unc(s->sum_p_diff, s->sum_p_diff2, n, &m, &u);
    fprintf(f, "\n====== Token probability statistics ======\n");
    fprintf(f, "Mean    Δp: %6.3f ± %5.3f %%\n", 100 * m, 100 * u);
    fprintf(f, "Maximum Δp: %6.3f%%\n", 100 * pv[n - 1]);
    static const double phi[] = { 0.999, 0.990, 0.950, 0.900, 0.750 }, plo[] = { 0.250, 0.100, 0.050, 0.010, 0.001 };
    for (size_t i = 0; i < sizeof phi / sizeof phi[0]; i++)
        fprintf(f, "%4.1f%%   Δp: %6.3f%%\n", 100 * phi[i], 100 * percentile(pv, n, phi[i]));
    fprintf(f, "Median  Δp: %6.3f%%\n", 100 * median(pv, n));
    for (size_t i = 0; i < sizeof plo / sizeof plo[0]; i++)
        fprintf(f, "%4.1f%%   Δp: %6.3f%%\n", 100 * plo[i], 100 * percentile(pv, n, plo[i]));
    fprintf(f, "Minimum Δp: %6.3f%%\n", 100 * pv[0]);
    mean_unc(s->sum_p_diff2, s->sum_p_diff4, n, &m, &u);
    double rms = sqrt(m), rms_unc = rms > 0 ? 0.5 / rms * u : 0;
    fprintf(f, "RMS Δp    : %6.3f ± %5.3f %%\n", 100 * rms, 100 * rms_unc);
    double top = (double)s->n_same_top / n, top_unc = n > 1 ? sqrt(top * (1 - top) / (n - 1)) : 0;
    fprintf(f, "Same top p: %6.3f ± %5.3f %%\n", 100 * top, 100 * top_unc);
    free(kv);
    free(pv);
}
