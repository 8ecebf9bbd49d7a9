/* test_sampler.c: the token sampler (models/sampler.c), no GPU.
 *
 * - params: defaults are llama.cpp's; bad values are refused with LM_ERR_INVALID and a message;
 * - greedy: argmax, lowest id on ties, NaN never wins; top_k 1 is greedy at any temperature;
 * - seeds: the same seed repeats the choices, another seed does not, reset replays, a random seed is
 *   reported and replays;
 * - distributions: over 200,000 draws the frequencies of every token match the probabilities of a
 *   plain reference of the chain (full sort, double precision) within 5 standard deviations
 *   (|f - p| <= 5 sqrt(p (1 - p) / N) + 1e-4), and tokens the chain excludes are never drawn: plain
 *   temperature, top-k, top-p, min-p and all at once, on small hand-made logits;
 * - a 151,936-token vocabulary: every draw lies in the reference's support for the defaults, top-p
 *   without top-k (peaked and flat logits), min-p alone; the time per token is printed;
 * - repetition penalties: llama.cpp's rule on positive and negative logits, once per distinct token,
 *   the window sliding, frequency and presence penalties, reset;
 * - llama2.c mode: choices computed by hand from llama2.c's RNG for seeds 7 and 133742
 *   (multinomial, top-p, temperature), greedy, seed 0 refused.
 */
#include "lm.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BIG_VOCAB 151936

/* ---------------------------------------------------------------- helpers */

static lm_sampler *make(const lm_sampler_params *p, int32_t n)
{
    lm_sampler *s = NULL;
    char err[256] = "";
    int rc = lm_sampler_create(p, n, &s, err, sizeof err);
    CHECK(rc == LM_OK && s, "lm_sampler_create(n_vocab %d): %s (%s)", (int)n, lm_status_string(rc), err);
    return s;
}

/* One choice on a copy of the logits (the sampler modifies what it is given). */
static int32_t pick(lm_sampler *s, const float *logits, int32_t n, float *scratch)
{
    memcpy(scratch, logits, (size_t)n * sizeof *scratch);
    return lm_sampler_sample(s, scratch);
}

static int32_t ref_argmax(const float *l, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return b;
}

static const float *cmp_logits;
static int cmp_desc(const void *a, const void *b)
{
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (cmp_logits[i] != cmp_logits[j])
        return cmp_logits[i] > cmp_logits[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

/* The reference chain (no penalties): full sort, top-k, top-p at temperature 1, min-p, softmax at
 * temp, in double. prob[n] gets the final distribution (0 for excluded tokens). */
static void ref_chain(const lm_sampler_params *p, const float *l, int32_t n, double *prob)
{
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    for (int32_t i = 0; i < n; i++)
        idx[i] = i;
    cmp_logits = l;
    qsort(idx, (size_t)n, sizeof *idx, cmp_desc);
    double M = l[idx[0]];
    int64_t k = n;
    if (p->top_k > 0 && p->top_k < n)
        k = p->top_k;
    if (p->top_p < 1.0f) {
        double z = 0, cum = 0;
        for (int64_t i = 0; i < k; i++)
            z += exp(l[idx[i]] - M);
        for (int64_t i = 0; i < k; i++) {
            cum += exp(l[idx[i]] - M) / z;
            if (cum >= p->top_p) {
                k = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        float thr = (float)M + logf(p->min_p);
        int64_t keep = 1;
        while (keep < k && l[idx[keep]] >= thr)
            keep++;
        k = keep;
    }
    double z = 0;
    for (int32_t i = 0; i < n; i++)
        prob[i] = 0;
    for (int64_t i = 0; i < k; i++)
        z += prob[idx[i]] = exp((l[idx[i]] - M) / p->temp);
    for (int64_t i = 0; i < k; i++)
        prob[idx[i]] /= z;
    free(idx);
}

static lm_sampler_params params(float temp, int top_k, float top_p, float min_p)
{
    lm_sampler_params p;
    lm_sampler_defaults(&p);
    p.temp = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    return p;
}

/* ---------------------------------------------------------------- params */

static void check_params(void)
{
    lm_sampler_params p;
    lm_sampler_defaults(&p);
    CHECK(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f && p.repeat_penalty == 1.0f &&
              p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f && p.repeat_last_n == 64 &&
              p.seed == LM_SAMPLER_DEFAULT_SEED && !p.llama2c,
          "lm_sampler_defaults are not llama.cpp's");
    char err[256];
    CHECK(lm_sampler_params_check(&p, err, sizeof err) == LM_OK, "defaults refused: %s", err);

    static const struct {
        const char *what;
        int field;
        float value;
        const char *msg;
    } bad[] = {
        { "temp nan", 0, NAN, "temp" },          { "temp inf", 0, INFINITY, "temp" },
        { "top_k -1", 1, -1, "top_k" },          { "top_p 0", 2, 0.0f, "top_p" },
        { "top_p 1.5", 2, 1.5f, "top_p" },       { "top_p -0.1", 2, -0.1f, "top_p" },
        { "top_p nan", 2, NAN, "top_p" },        { "min_p -0.1", 3, -0.1f, "min_p" },
        { "min_p 1.1", 3, 1.1f, "min_p" },       { "repeat_penalty 0", 4, 0.0f, "repeat_penalty" },
        { "repeat_penalty -1", 4, -1.0f, "repeat_penalty" }, { "repeat_penalty inf", 4, INFINITY, "repeat_penalty" },
        { "repeat_last_n -1", 5, -1, "repeat_last_n" }, { "frequency nan", 6, NAN, "frequency_penalty" },
        { "presence inf", 7, INFINITY, "presence_penalty" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_sampler_defaults(&p);
        switch (bad[i].field) {
        case 0: p.temp = bad[i].value; break;
        case 1: p.top_k = (int32_t)bad[i].value; break;
        case 2: p.top_p = bad[i].value; break;
        case 3: p.min_p = bad[i].value; break;
        case 4: p.repeat_penalty = bad[i].value; break;
        case 5: p.repeat_last_n = (int32_t)bad[i].value; break;
        case 6: p.frequency_penalty = bad[i].value; break;
        case 7: p.presence_penalty = bad[i].value; break;
        }
        err[0] = 0;
        lm_sampler *s = (lm_sampler *)&p; /* must be overwritten with NULL */
        int rc = lm_sampler_create(&p, 100, &s, err, sizeof err);
        CHECK(rc == LM_ERR_INVALID && s == NULL, "%s: accepted (rc %d)", bad[i].what, rc);
        CHECK(strstr(err, bad[i].msg) != NULL, "%s: message '%s' does not name %s", bad[i].what, err, bad[i].msg);
        CHECK(lm_sampler_params_check(&p, NULL, 0) == LM_ERR_INVALID, "%s: params_check accepts", bad[i].what);
    }
    lm_sampler_defaults(&p);
    lm_sampler *s = NULL;
    CHECK(lm_sampler_create(&p, 0, &s, err, sizeof err) == LM_ERR_INVALID && !s && strstr(err, "n_vocab"),
          "n_vocab 0 accepted");
    /* edges that are valid */
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.top_k = 0;
    p.repeat_last_n = 0;
    p.temp = -1.0f;
    CHECK(lm_sampler_params_check(&p, err, sizeof err) == LM_OK, "valid edges refused: %s", err);
    /* llama2.c mode: top_p 0 is "off", the chain's fields are ignored, seed 0 is refused */
    lm_sampler_defaults(&p);
    p.llama2c = true;
    p.top_p = 0.0f;
    p.top_k = -5;
    CHECK(lm_sampler_params_check(&p, err, sizeof err) == LM_OK, "llama2c top_p 0 refused: %s", err);
    p.seed = 0;
    CHECK(lm_sampler_params_check(&p, err, sizeof err) == LM_ERR_INVALID && strstr(err, "seed"),
          "llama2c seed 0 accepted");
    p.seed = 1;
    p.top_p = 1.5f;
    CHECK(lm_sampler_params_check(&p, err, sizeof err) == LM_ERR_INVALID, "llama2c top_p 1.5 accepted");
    lm_sampler_free(NULL);

    /* is_greedy */
    lm_sampler_defaults(&p);
    CHECK(!lm_sampler_is_greedy(&p), "defaults reported greedy");
    p.temp = 0.0f;
    CHECK(lm_sampler_is_greedy(&p), "temp 0 not greedy");
    p.temp = -0.5f;
    CHECK(lm_sampler_is_greedy(&p), "temp -0.5 not greedy");
    p.repeat_penalty = 1.1f;
    CHECK(!lm_sampler_is_greedy(&p), "temp 0 with a repeat penalty reported greedy");
    p.repeat_last_n = 0;
    CHECK(lm_sampler_is_greedy(&p), "temp 0 with an empty penalty window not greedy");
    p.repeat_last_n = 64;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.5f;
    CHECK(!lm_sampler_is_greedy(&p), "temp 0 with a presence penalty reported greedy");
}

/* ---------------------------------------------------------------- greedy */

static void check_greedy(tu_rng *rng)
{
    float scratch[8];
    for (int t = 0; t < 2; t++) {
        lm_sampler_params p = params(t ? -1.0f : 0.0f, 40, 0.95f, 0.05f);
        lm_sampler *s = make(&p, 5);
        if (!s)
            return;
        const float ties[5] = { 1, 3, 3, 2, -5 };
        CHECK(pick(s, ties, 5, scratch) == 1, "greedy temp %g: ties must give the lowest id", (double)p.temp);
        const float nan0[5] = { NAN, 1, 2, NAN, 2 };
        CHECK(pick(s, nan0, 5, scratch) == 2, "greedy: NaN must not win");
        const float ninf[5] = { -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY };
        CHECK(pick(s, ninf, 5, scratch) == 0, "greedy: all -inf gives 0");
        lm_sampler_free(s);
    }

    /* a big vocabulary */
    float *l = malloc(BIG_VOCAB * sizeof *l), *sc = malloc(BIG_VOCAB * sizeof *sc);
    lm_sampler_params p = params(0.0f, 40, 0.95f, 0.05f);
    lm_sampler *s = make(&p, BIG_VOCAB);
    if (s) {
        for (int t = 0; t < 5; t++) {
            for (int32_t i = 0; i < BIG_VOCAB; i++)
                l[i] = 4.0f * tu_normal(rng);
            if (t == 4)
                l[BIG_VOCAB - 1] = l[ref_argmax(l, BIG_VOCAB)]; /* a tie at the very end */
            int32_t want = ref_argmax(l, BIG_VOCAB), got = pick(s, l, BIG_VOCAB, sc);
            CHECK(got == want, "greedy over %d: got %d, want %d", BIG_VOCAB, (int)got, (int)want);
        }
    }
    lm_sampler_free(s);

    /* top_k 1 is greedy at any temperature, with or without top-p / min-p */
    for (int cfg = 0; cfg < 3; cfg++) {
        p = params(cfg == 0 ? 1.5f : 0.7f, 1, cfg == 1 ? 0.5f : 1.0f, cfg == 2 ? 0.2f : 0.0f);
        s = make(&p, 1000);
        if (!s)
            break;
        int bad = 0;
        for (int t = 0; t < 200; t++) {
            for (int32_t i = 0; i < 1000; i++)
                l[i] = (float)(tu_u32(rng) % 50) * 0.1f; /* many ties */
            if (pick(s, l, 1000, sc) != ref_argmax(l, 1000))
                bad++;
        }
        CHECK(bad == 0, "top_k 1 (cfg %d): %d of 200 choices are not the argmax", cfg, bad);
        lm_sampler_free(s);
    }
    free(l);
    free(sc);
}

/* ---------------------------------------------------------------- seeds */

static void run_seq(lm_sampler *s, const float *l, int32_t n, int32_t *out, int steps)
{
    float *sc = malloc((size_t)n * sizeof *sc);
    for (int t = 0; t < steps; t++)
        out[t] = pick(s, l + (size_t)(t % 7) * n, n, sc);
    free(sc);
}

static void check_seeds(tu_rng *rng)
{
    enum { N = 1000, STEPS = 300 };
    float *l = malloc(7 * N * sizeof *l);
    for (int i = 0; i < 7 * N; i++)
        l[i] = 2.0f * tu_normal(rng);
    int32_t a[STEPS], b[STEPS], c[STEPS];
    lm_sampler_params p;
    lm_sampler_defaults(&p);
    p.temp = 1.2f;

    lm_sampler *s1 = make(&p, N), *s2 = make(&p, N);
    p.seed = 43;
    lm_sampler *s3 = make(&p, N);
    if (!s1 || !s2 || !s3)
        goto out;
    CHECK(lm_sampler_seed(s1) == LM_SAMPLER_DEFAULT_SEED, "seed %llu", (unsigned long long)lm_sampler_seed(s1));
    run_seq(s1, l, N, a, STEPS);
    run_seq(s2, l, N, b, STEPS);
    run_seq(s3, l, N, c, STEPS);
    CHECK(!memcmp(a, b, sizeof a), "same seed, different choices");
    int diff = 0;
    for (int t = 0; t < STEPS; t++)
        diff += a[t] != c[t];
    CHECK(diff > STEPS / 10, "seeds 42 and 43 differ in only %d of %d choices", diff, STEPS);
    lm_sampler_reset(s1);
    run_seq(s1, l, N, b, STEPS);
    CHECK(!memcmp(a, b, sizeof a), "reset does not replay the choices");

    /* a random seed: reported, different from run to run, replayable */
    p.seed = LM_SAMPLER_SEED_RANDOM;
    lm_sampler *r1 = make(&p, N), *r2 = make(&p, N);
    if (r1 && r2) {
        uint64_t seed = lm_sampler_seed(r1);
        CHECK(seed != LM_SAMPLER_SEED_RANDOM, "the random seed is not reported");
        CHECK(seed != lm_sampler_seed(r2), "two random seeds are equal: %llu", (unsigned long long)seed);
        run_seq(r1, l, N, a, STEPS);
        p.seed = seed;
        lm_sampler *r3 = make(&p, N);
        if (r3) {
            run_seq(r3, l, N, b, STEPS);
            CHECK(!memcmp(a, b, sizeof a), "the reported random seed does not replay");
        }
        lm_sampler_free(r3);
    }
    lm_sampler_free(r1);
    lm_sampler_free(r2);
out:
    lm_sampler_free(s1);
    lm_sampler_free(s2);
    lm_sampler_free(s3);
    free(l);
}

/* ---------------------------------------------------------------- distributions */

/* Draws `draws` times from logits l[n] under p; compares with the reference chain. */
static void check_freq(const char *what, lm_sampler_params p, const float *l, int32_t n, int draws)
{
    double *prob = malloc((size_t)n * sizeof *prob);
    int64_t *cnt = calloc((size_t)n, sizeof *cnt);
    float *sc = malloc((size_t)n * sizeof *sc);
    ref_chain(&p, l, n, prob);
    lm_sampler *s = make(&p, n);
    if (s) {
        for (int t = 0; t < draws; t++)
            cnt[pick(s, l, n, sc)]++;
        double worst = 0;
        int32_t worst_i = -1;
        for (int32_t i = 0; i < n; i++) {
            double f = (double)cnt[i] / draws, tol = 5 * sqrt(prob[i] * (1 - prob[i]) / draws) + 1e-4;
            if (prob[i] == 0) {
                CHECK(cnt[i] == 0, "%s: excluded token %d drawn %lld times", what, (int)i, (long long)cnt[i]);
            } else if (fabs(f - prob[i]) / tol > worst) {
                worst = fabs(f - prob[i]) / tol;
                worst_i = i;
            }
        }
        CHECK(worst <= 1.0, "%s: token %d drawn with frequency %.5f, probability %.5f (beyond 5 sigma)", what,
              (int)worst_i, (double)cnt[worst_i] / draws, prob[worst_i]);
    }
    lm_sampler_free(s);
    free(prob);
    free(cnt);
    free(sc);
}

static void check_distributions(void)
{
    enum { DRAWS = 200000 };
    const float l8[8] = { 1.0f, 2.5f, 0.3f, -1.0f, 2.0f, 0.0f, 1.7f, -0.4f };
    check_freq("temp 1", params(1.0f, 0, 1.0f, 0.0f), l8, 8, DRAWS);
    check_freq("temp 0.7", params(0.7f, 0, 1.0f, 0.0f), l8, 8, DRAWS);
    check_freq("temp 2.5", params(2.5f, 0, 1.0f, 0.0f), l8, 8, DRAWS);
    check_freq("top_k 3", params(1.0f, 3, 1.0f, 0.0f), l8, 8, DRAWS);
    check_freq("top_k 3, temp 1.5", params(1.5f, 3, 1.0f, 0.0f), l8, 8, DRAWS);

    /* p = 0.5, 0.25, 0.125, 0.0625 x2 ... at temperature 1: top-p 0.7 keeps the first two (0.75 >= 0.7),
     * top-p 0.8 the first three, min-p 0.2 the tokens with p >= 0.1 (the first three) */
    const float lp[6] = { logf(0.0625f), logf(0.5f), logf(0.03125f), logf(0.25f), logf(0.125f), logf(0.03125f) };
    double probe[6];
    lm_sampler_params pp = params(1.0f, 0, 0.7f, 0.0f);
    ref_chain(&pp, lp, 6, probe);
    CHECK(probe[1] > 0 && probe[3] > 0 && probe[0] == 0 && probe[2] == 0 && probe[4] == 0 && probe[5] == 0,
          "reference top-p 0.7 is not {1, 3}");
    check_freq("top_p 0.7", pp, lp, 6, DRAWS);
    check_freq("top_p 0.8, temp 0.5", params(0.5f, 0, 0.8f, 0.0f), lp, 6, DRAWS);
    check_freq("top_p 0.7 after top_k 5", params(1.0f, 5, 0.7f, 0.0f), lp, 6, DRAWS);
    pp = params(1.0f, 0, 1.0f, 0.2f);
    ref_chain(&pp, lp, 6, probe);
    CHECK(probe[1] > 0 && probe[3] > 0 && probe[4] > 0 && probe[0] == 0 && probe[2] == 0 && probe[5] == 0,
          "reference min-p 0.2 is not {1, 3, 4}");
    check_freq("min_p 0.2", pp, lp, 6, DRAWS);
    check_freq("min_p 0.2, temp 3", params(3.0f, 0, 1.0f, 0.2f), lp, 6, DRAWS);
    check_freq("min_p 0.2 after top_k 4", params(1.0f, 4, 1.0f, 0.2f), lp, 6, DRAWS);

    /* 64 tokens, everything on */
    float l64[64];
    for (int i = 0; i < 64; i++)
        l64[i] = 3.0f * sinf(0.7f * (float)i * (float)i) - 0.02f * (float)i;
    check_freq("defaults", params(0.8f, 40, 0.95f, 0.05f), l64, 64, DRAWS);
    check_freq("top_k 20, top_p 0.9, min_p 0.02, temp 1.3", params(1.3f, 20, 0.9f, 0.02f), l64, 64, DRAWS);
    check_freq("top_p 0.9, min_p 0.01, temp 0.6", params(0.6f, 0, 0.9f, 0.01f), l64, 64, DRAWS);
    check_freq("top_p 0.5 (no top_k)", params(1.0f, 0, 0.5f, 0.0f), l64, 64, DRAWS);
}

/* ---------------------------------------------------------------- a big vocabulary */

static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check_support(const char *what, lm_sampler_params p, const float *l, int draws)
{
    double *prob = malloc(BIG_VOCAB * sizeof *prob);
    float *sc = malloc(BIG_VOCAB * sizeof *sc);
    ref_chain(&p, l, BIG_VOCAB, prob);
    int64_t support = 0;
    for (int32_t i = 0; i < BIG_VOCAB; i++)
        support += prob[i] > 0;
    lm_sampler *s = make(&p, BIG_VOCAB);
    if (s) {
        int outside = 0, first = -1;
        double t0 = now();
        for (int t = 0; t < draws; t++) {
            int32_t id = pick(s, l, BIG_VOCAB, sc);
            if (id < 0 || id >= BIG_VOCAB || prob[id] == 0) {
                outside++;
                if (first < 0)
                    first = id;
            }
        }
        double us = (now() - t0) * 1e6 / draws;
        CHECK(outside == 0, "%s: %d of %d draws outside the reference's %lld tokens (first: %d)", what, outside, draws,
              (long long)support, first);
        printf("  %-40s support %6lld tokens, %8.1f us/token\n", what, (long long)support, us);
    }
    lm_sampler_free(s);
    free(prob);
    free(sc);
}

static void check_big_vocab(tu_rng *rng)
{
    float *peaked = malloc(BIG_VOCAB * sizeof *peaked), *flat = malloc(BIG_VOCAB * sizeof *flat);
    for (int32_t i = 0; i < BIG_VOCAB; i++) {
        peaked[i] = 3.0f * tu_normal(rng);
        flat[i] = 0.3f * tu_normal(rng);
    }
    check_support("defaults, peaked", params(0.8f, 40, 0.95f, 0.05f), peaked, 300);
    check_support("defaults, flat", params(0.8f, 40, 0.95f, 0.05f), flat, 300);
    check_support("top_k 0, top_p 0.95, peaked", params(0.8f, 0, 0.95f, 0.0f), peaked, 100);
    check_support("top_k 0, top_p 0.9, flat", params(1.0f, 0, 0.9f, 0.0f), flat, 20);
    check_support("top_k 0, top_p 0.95, min_p 0.05, peaked", params(0.8f, 0, 0.95f, 0.05f), peaked, 100);
    check_support("top_k 0, top_p 1, min_p 0.1, peaked", params(1.0f, 0, 1.0f, 0.1f), peaked, 100);
    check_support("top_k 0, top_p 1, min_p 0, flat", params(1.0f, 0, 1.0f, 0.0f), flat, 100);
    check_support("top_k 1000, top_p 0.9, flat", params(1.0f, 1000, 0.9f, 0.0f), flat, 100);
    free(peaked);
    free(flat);
}

/* ---------------------------------------------------------------- penalties */

static void check_penalties(void)
{
    float l[6], sc[6];
    lm_sampler_params p = params(0.0f, 40, 0.95f, 0.05f);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 3;
    lm_sampler *s = make(&p, 6);
    if (!s)
        return;
    const float pos[6] = { 2.0f, 1.9f, -1.0f, -1.2f, 0.0f, -3.0f };
    CHECK(pick(s, pos, 6, sc) == 0, "no history: want 0");
    lm_sampler_accept(s, 0);
    memcpy(l, pos, sizeof l);
    CHECK(lm_sampler_sample(s, l) == 1, "0 penalised (2 / 1.5 < 1.9): want 1");
    CHECK(l[0] == 2.0f / 1.5f && l[1] == 1.9f, "penalised logit %g, want %g", (double)l[0], 2.0 / 1.5);
    lm_sampler_accept(s, 0);
    lm_sampler_accept(s, 0);
    lm_sampler_accept(s, -1);  /* ignored */
    lm_sampler_accept(s, 6);   /* ignored */
    memcpy(l, pos, sizeof l);
    lm_sampler_sample(s, l);
    CHECK(l[0] == 2.0f / 1.5f, "a token three times in the window is penalised once: %g", (double)l[0]);
    /* the window slides: 0 0 0 -> 0 0 4 -> 0 4 4 -> 4 4 4 */
    lm_sampler_accept(s, 4);
    lm_sampler_accept(s, 4);
    CHECK(pick(s, pos, 6, sc) == 1, "0 still in the window: want 1");
    lm_sampler_accept(s, 4);
    CHECK(pick(s, pos, 6, sc) == 0, "0 out of the window: want 0");
    memcpy(l, pos, sizeof l);
    lm_sampler_sample(s, l);
    CHECK(l[4] == 0.0f, "a zero logit stays zero: %g", (double)l[4]);

    /* negative logits are multiplied: -1 * 1.5 = -1.5 < -1.2 */
    const float neg[6] = { -5.0f, -4.0f, -1.0f, -1.2f, -7.0f, -3.0f };
    lm_sampler_reset(s);
    CHECK(pick(s, neg, 6, sc) == 2, "no history: want 2");
    lm_sampler_accept(s, 2);
    memcpy(l, neg, sizeof l);
    CHECK(lm_sampler_sample(s, l) == 3, "2 penalised (-1.5 < -1.2): want 3");
    CHECK(l[2] == -1.5f, "penalised negative logit %g, want -1.5", (double)l[2]);
    lm_sampler_reset(s);
    CHECK(pick(s, neg, 6, sc) == 2, "reset forgets the history");
    lm_sampler_free(s);

    /* frequency and presence: logit -= count * 0.1 + 0.2 */
    p = params(0.0f, 40, 0.95f, 0.05f);
    p.frequency_penalty = 0.1f;
    p.presence_penalty = 0.2f;
    p.repeat_last_n = 8;
    s = make(&p, 6);
    if (!s)
        return;
    for (int i = 0; i < 3; i++)
        lm_sampler_accept(s, 0);
    lm_sampler_accept(s, 1);
    memcpy(l, pos, sizeof l);
    int32_t id = lm_sampler_sample(s, l);
    CHECK(fabsf(l[0] - (2.0f - 0.3f - 0.2f)) < 1e-6f && fabsf(l[1] - (1.9f - 0.1f - 0.2f)) < 1e-6f,
          "frequency/presence: logits %g %g, want 1.5 1.6", (double)l[0], (double)l[1]);
    CHECK(id == 1, "frequency/presence: want 1, got %d", (int)id);
    CHECK(l[2] == -1.0f, "an unseen token is untouched");
    lm_sampler_free(s);

    /* with sampling: penalty 100 takes the last token from 5 to 0.05, below min-p's 5 + ln 0.05 = 2 */
    p = params(1.0f, 0, 1.0f, 0.05f);
    p.repeat_penalty = 100.0f;
    p.repeat_last_n = 1;
    s = make(&p, 6);
    if (!s)
        return;
    const float even[6] = { 5.0f, 5.0f, 5.0f, 5.0f, 5.0f, 5.0f };
    int repeats = 0;
    int32_t prev = pick(s, even, 6, sc);
    for (int t = 0; t < 1000; t++) {
        lm_sampler_accept(s, prev);
        int32_t next = pick(s, even, 6, sc);
        repeats += next == prev;
        prev = next;
    }
    CHECK(repeats == 0, "penalty 100 on the last token: %d immediate repeats of 1000", repeats);
    lm_sampler_free(s);
}

/* ---------------------------------------------------------------- llama2.c mode */

/* llama2.c's RNG, seed 7, gives the coins 0.820247 0.928290 0.089350 0.107627 0.374536 0.407274
 * 0.852883 0.170706 0.365635 0.790092 0.679202 0.726642; seed 133742 gives 0.706299 0.622677
 * 0.538506 0.532580 0.327929 0.868912 0.712104 0.139229 0.500626 0.715406 0.370576 0.358462
 * ((u32 >> 8) / 2^24 after the xorshift step, u32 = (s * 0x2545F4914F6CDD1D) >> 32).
 * With p = (0.125, 0.5, 0.125, 0.25) (logits ln p, temp 1):
 *   multinomial: cdf 0.125 0.625 0.75 1, the first id whose cdf exceeds the coin;
 *   top-p 0.6: cutoff 0.4 / 3 = 0.133 drops ids 0 and 2; sorted 1 (0.5), 3 (0.25); cumulative
 *   0.75 > 0.6 after two, so r = 0.75 coin: id 1 when coin < 2/3, else id 3.
 * With temp 2: p ~ sqrt(p) / sum = 0.1847 0.3694 0.1847 0.2612, cdf 0.1847 0.5541 0.7388 1.
 * The closest coin to a boundary is 0.0023 away, far above float32 rounding. */
static void check_llama2c(void)
{
    const float lp[4] = { logf(0.125f), logf(0.5f), logf(0.125f), logf(0.25f) };
    static const struct {
        uint64_t seed;
        float temp, top_p;
        int32_t want[12];
    } cases[] = {
        { 7, 1.0f, 0.0f, { 3, 3, 0, 0, 1, 1, 3, 1, 1, 3, 2, 2 } },
        { 7, 1.0f, 1.0f, { 3, 3, 0, 0, 1, 1, 3, 1, 1, 3, 2, 2 } },
        { 133742, 1.0f, 0.0f, { 2, 1, 1, 1, 1, 3, 2, 1, 1, 2, 1, 1 } },
        { 7, 1.0f, 0.6f, { 3, 3, 1, 1, 1, 1, 3, 1, 1, 3, 3, 3 } },
        { 133742, 1.0f, 0.6f, { 3, 1, 1, 1, 1, 3, 3, 1, 1, 3, 1, 1 } },
        { 7, 2.0f, 0.0f, { 3, 3, 0, 0, 1, 1, 3, 0, 1, 3, 2, 2 } },
    };
    float sc[4];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lm_sampler_params p;
        lm_sampler_defaults(&p);
        p.llama2c = true;
        p.seed = cases[c].seed;
        p.temp = cases[c].temp;
        p.top_p = cases[c].top_p;
        lm_sampler *s = make(&p, 4);
        if (!s)
            continue;
        for (int round = 0; round < 2; round++) { /* the second round after a reset */
            for (int t = 0; t < 12; t++) {
                int32_t got = pick(s, lp, 4, sc);
                CHECK(got == cases[c].want[t], "llama2c seed %llu temp %g top_p %g step %d%s: got %d, want %d",
                      (unsigned long long)cases[c].seed, (double)cases[c].temp, (double)cases[c].top_p, t,
                      round ? " after reset" : "", (int)got, (int)cases[c].want[t]);
            }
            lm_sampler_reset(s);
        }
        lm_sampler_free(s);
    }

    /* temp 0: argmax, lowest id on ties; the penalties and top-k are not used */
    lm_sampler_params p;
    lm_sampler_defaults(&p);
    p.llama2c = true;
    p.temp = 0.0f;
    p.repeat_penalty = 2.0f;
    CHECK(lm_sampler_is_greedy(&p), "llama2c temp 0 not greedy");
    lm_sampler *s = make(&p, 4);
    if (s) {
        const float ties[4] = { 0.5f, 2.0f, 2.0f, 1.0f };
        lm_sampler_accept(s, 1);
        CHECK(pick(s, ties, 4, sc) == 1, "llama2c greedy: want 1");
    }
    lm_sampler_free(s);
}

int main(void)
{
    uint64_t seed = tu_seed("test_sampler");
    tu_rng rng = { seed };
    check_params();
    check_greedy(&rng);
    check_seeds(&rng);
    check_distributions();
    check_big_vocab(&rng);
    check_penalties();
    check_llama2c();
    return tu_finish("test_sampler");
}
