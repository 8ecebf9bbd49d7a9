/* sampler.c: the token sampler. llama.cpp's default chain (penalties -> top-k -> top-p -> min-p ->
 * temperature -> softmax -> draw) and llama2.c's sampler, behind one handle; the contract is in lm.h.
 *
 * The default chain works on a scratch array of (logit, id) candidates. Rank: highest logit first,
 * then lowest id. Every stage keeps a best-ranked prefix, so no stage needs a full sort:
 *   - top-k: a min-heap of k candidates over one pass of the logits (O(n log k), and most logits
 *     fail the compare with the heap's root), then heapsort of the k survivors; top-p and min-p
 *     then cut that sorted list;
 *   - top-p without top-k: only tokens with p >= (1 - top_p) / (n - 1) can be in the nucleus (the
 *     others together weigh less than 1 - top_p: llama2.c's observation), so only those are
 *     collected (min-p, a prefix of the same order, may narrow the set further), and a quickselect
 *     weighted by probability finds the nucleus in expected O(size) without sorting it;
 *   - otherwise: min-p is a threshold on the logit.
 * The draw walks the survivors in whatever order they are in: the same input gives the same order.
 * The max logit M is kept by every stage, so softmax weights are exp((l - M) / temp) throughout.
 */
#include "lm_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct lm_sampler {
    lm_sampler_params p;   /* checked copy; p.seed is the seed in use (never LM_SAMPLER_SEED_RANDOM) */
    int32_t n_vocab;
    uint64_t rng;          /* splitmix64 state, or llama2.c's xorshift state */
    bool penalize;         /* penalties active (default mode only) */
    int32_t *ring;         /* [repeat_last_n] the last accepted ids, a ring; NULL when !penalize */
    int32_t ring_len;      /* ids in the ring */
    int32_t ring_pos;      /* where the next id goes once the ring is full */
    int32_t *count;        /* [n_vocab] occurrences of each id in the ring; NULL when !penalize */
    cand *cand;            /* [n_vocab] scratch; NULL when sampling is greedy */
};

/* ---------------------------------------------------------------- RNGs */

/* splitmix64 (Steele, Lea, Flood 2014): any seed, 0 included, gives a full-period stream. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* llama2.c's random_u32 / random_f32: xorshift64 then the xorshift64* multiplier, top 24 bits. */
static uint32_t llama2c_u32(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545F4914F6CDD1Dull) >> 32);
}

static float llama2c_f32(uint64_t *s)
{
    return (float)(llama2c_u32(s) >> 8) / 16777216.0f;
}

/* A seed for LM_SAMPLER_SEED_RANDOM: /dev/urandom when there is one, mixed with the clock and an
 * address; never 0 (xorshift's fixed point) nor LM_SAMPLER_SEED_RANDOM itself. */
static uint64_t pick_seed(void)
{
    uint64_t x = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&x, sizeof x, 1, f) != 1)
            x = 0;
        fclose(f);
    }
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) == TIME_UTC)
        x ^= (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)(uintptr_t)&x ^ (uint64_t)clock();
    for (;;) {
        uint64_t seed = splitmix64(&x);
        if (seed != 0 && seed != LM_SAMPLER_SEED_RANDOM)
            return seed;
    }
}

/* ---------------------------------------------------------------- params */

void lm_sampler_defaults(lm_sampler_params *p)
{
    *p = (lm_sampler_params){
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .repeat_last_n = 64,
        .seed = LM_SAMPLER_DEFAULT_SEED,
        .llama2c = false,
    };
}

int lm_sampler_params_check(const lm_sampler_params *p, char *err, size_t errlen)
{
    if (!p)
        return lm_fail(err, errlen, LM_ERR_INVALID, "sampler params: NULL");
    if (!isfinite(p->temp))
        return lm_fail(err, errlen, LM_ERR_INVALID, "temp = %g: must be finite", (double)p->temp);
    if (p->llama2c) {
        /* llama2.c takes 0 and 1 as "top-p off" */
        if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
            return lm_fail(err, errlen, LM_ERR_INVALID, "top_p = %g: must be in [0, 1] (llama2.c mode)", (double)p->top_p);
        if (p->seed == 0)
            return lm_fail(err, errlen, LM_ERR_INVALID, "seed = 0: llama2.c's xorshift RNG needs a nonzero seed "
                                     "(llama2.c itself replaces 0 by the time)");
        return LM_OK; /* llama2.c mode ignores the other fields */
    }
    if (p->top_k < 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "top_k = %d: must be >= 0 (0: off)", (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return lm_fail(err, errlen, LM_ERR_INVALID, "top_p = %g: must be in (0, 1] (1: off)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return lm_fail(err, errlen, LM_ERR_INVALID, "min_p = %g: must be in [0, 1] (0: off)", (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f && isfinite(p->repeat_penalty)))
        return lm_fail(err, errlen, LM_ERR_INVALID, "repeat_penalty = %g: must be > 0 and finite (1: off)", (double)p->repeat_penalty);
    if (!isfinite(p->frequency_penalty))
        return lm_fail(err, errlen, LM_ERR_INVALID, "frequency_penalty = %g: must be finite", (double)p->frequency_penalty);
    if (!isfinite(p->presence_penalty))
        return lm_fail(err, errlen, LM_ERR_INVALID, "presence_penalty = %g: must be finite", (double)p->presence_penalty);
    if (p->repeat_last_n < 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "repeat_last_n = %d: must be >= 0 (0: off; give the context size for "
                                 "llama.cpp's -1)", (int)p->repeat_last_n);
    return LM_OK;
}

static bool penalties_active(const lm_sampler_params *p)
{
    return !p->llama2c && p->repeat_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
}

bool lm_sampler_is_greedy(const lm_sampler_params *p)
{
    return p->temp <= 0.0f && !penalties_active(p);
}

/* ---------------------------------------------------------------- handle */

int lm_sampler_create(const lm_sampler_params *p, int32_t n_vocab, lm_sampler **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = lm_sampler_params_check(p, err, errlen);
    if (rc)
        return rc;
    if (n_vocab < 1)
        return lm_fail(err, errlen, LM_ERR_INVALID, "n_vocab = %d: must be >= 1", (int)n_vocab);

    lm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        goto out_nomem;
    s->p = *p;
    s->n_vocab = n_vocab;
    if (s->p.seed == LM_SAMPLER_SEED_RANDOM)
        s->p.seed = pick_seed();
    s->penalize = penalties_active(p);
    if (s->penalize) {
        s->ring = malloc((size_t)p->repeat_last_n * sizeof *s->ring);
        s->count = calloc((size_t)n_vocab, sizeof *s->count);
        if (!s->ring || !s->count)
            goto out_free_sampler;
    }
    if (p->temp > 0.0f) {
        s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
        if (!s->cand)
            goto out_free_sampler;
    }
    lm_sampler_reset(s);
    *out = s;
    return LM_OK;

out_free_sampler:
    lm_sampler_free(s);
out_nomem:
    if (err && errlen)
        snprintf(err, errlen, "sampler: out of memory (n_vocab %d)", (int)n_vocab);
    return LM_ERR_NOMEM;
}

void lm_sampler_free(lm_sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->count);
    free(s->ring);
    free(s);
}

void lm_sampler_reset(lm_sampler *s)
{
    s->rng = s->p.seed;
    if (s->penalize) {
        for (int32_t i = 0; i < s->ring_len; i++)
            s->count[s->ring[i]] = 0;
    }
    s->ring_len = 0;
    s->ring_pos = 0;
}

uint64_t lm_sampler_seed(const lm_sampler *s)
{
    return s->p.seed;
}

void lm_sampler_accept(lm_sampler *s, int32_t id)
{
    if (!s->penalize || id < 0 || id >= s->n_vocab)
        return;
    if (s->ring_len < s->p.repeat_last_n) {
        s->ring[s->ring_len++] = id;
    } else {
        s->count[s->ring[s->ring_pos]]--;
        s->ring[s->ring_pos] = id;
        s->ring_pos = (s->ring_pos + 1) % s->p.repeat_last_n;
    }
    s->count[id]++;
}

/* ---------------------------------------------------------------- default chain: stages */

/* llama.cpp's penalties, once per distinct token of the window. count[] doubles as the "done" mark:
 * it is negated when a token has been penalised and restored afterwards. */
static void apply_penalties(lm_sampler *s, float *logits)
{
    const float rp = s->p.repeat_penalty, fp = s->p.frequency_penalty, pp = s->p.presence_penalty;
    for (int32_t i = 0; i < s->ring_len; i++) {
        int32_t id = s->ring[i], c = s->count[id];
        if (c <= 0)
            continue;
        float l = logits[id];
        l = l <= 0.0f ? l * rp : l / rp;
        logits[id] = l - ((float)c * fp + pp);
        s->count[id] = -c;
    }
    for (int32_t i = 0; i < s->ring_len; i++) {
        int32_t id = s->ring[i];
        if (s->count[id] < 0)
            s->count[id] = -s->count[id];
    }
}

/* The lowest id of the highest logit; NaNs never win; 0 when nothing is above -inf. */
static int32_t argmax(const float *logits, int32_t n)
{
    int32_t best = 0;
    float m = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        if (logits[i] > m) {
            m = logits[i];
            best = i;
        }
    }
    return best;
}

/* a ranks below b: lower logit, or the same logit and a higher id. */
static inline bool worse(cand a, cand b)
{
    return a.logit < b.logit || (a.logit == b.logit && a.id > b.id);
}

/* Min-heap by rank: h[0] is the worst candidate. */
static void sift_down(cand *h, int64_t n, int64_t i)
{
    cand x = h[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && worse(h[c + 1], h[c]))
            c++;
        if (!worse(h[c], x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void heapify(cand *h, int64_t n)
{
    for (int64_t i = n / 2 - 1; i >= 0; i--)
        sift_down(h, n, i);
}

/* Heapsort of a min-heap: the worst goes to the end each time, leaving the array best first. */
static void heap_sort_best_first(cand *h, int64_t n)
{
    for (int64_t end = n - 1; end > 0; end--) {
        cand t = h[0];
        h[0] = h[end];
        h[end] = t;
        sift_down(h, end, 0);
    }
}

static void sort_best_first(cand *c, int64_t n)
{
    heapify(c, n);
    heap_sort_best_first(c, n);
}

/* The k best of logits[n] into c[0..k), best first. Ids arrive in increasing order, so a newcomer
 * with the same logit as the root ranks below it and is rightly skipped: ties keep the lower id.
 * NaN counts as -inf (a NaN newcomer fails the compare with the root). */
static void select_top_k(const float *logits, int32_t n, int32_t k, cand *c)
{
    for (int32_t i = 0; i < k; i++)
        c[i] = (cand){ logits[i] == logits[i] ? logits[i] : -INFINITY, i };
    heapify(c, k);
    for (int32_t i = k; i < n; i++) {
        if (logits[i] > c[0].logit) {
            c[0] = (cand){ logits[i], i };
            sift_down(c, k, 0);
        }
    }
    heap_sort_best_first(c, k);
}

/* The tokens with logit >= thr, in id order (thr = -inf: all of them; NaNs never pass). */
static int64_t collect(const float *logits, int32_t n, float thr, cand *c)
{
    int64_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (logits[i] >= thr)
            c[m++] = (cand){ logits[i], i };
    }
    return m;
}

/* top-p on candidates sorted best first, weights exp(l - M): the length of the shortest prefix
 * whose weight reaches target = top_p * (total weight) (llama.cpp's rule, cumulative p >= top_p),
 * or -1 when all n together do not reach it. */
static int64_t nucleus_sorted(const cand *c, int64_t n, double target, float M)
{
    double cum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        cum += expf(c[i].logit - M);
        if (cum >= target)
            return i + 1;
    }
    return -1;
}

static inline void swap_cand(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* The same as nucleus_sorted() on unsorted candidates, in expected O(n): a quickselect weighted by
 * exp(l - M) that moves the nucleus (unordered) to c[0..k) and returns k, or -1 when all n do not
 * reach the target. Pivot: median of three by rank; past 2 log2(n) + 8 rounds (an adversarial
 * input), the rest is sorted and walked instead. */
static int64_t nucleus_select(cand *c, int64_t n, double target, float M)
{
    int64_t lo = 0, hi = n; /* c[0..lo) is in the nucleus, c[hi..n) is not, acc = weight of c[0..lo) */
    double acc = 0.0;
    int rounds = 8;
    for (int64_t m = n; m > 1; m >>= 1)
        rounds += 2;
    while (hi - lo > 1) {
        if (--rounds < 0) {
            sort_best_first(c + lo, hi - lo);
            int64_t k = nucleus_sorted(c + lo, hi - lo, target - acc, M);
            return k > 0 ? lo + k : hi < n ? hi : -1;
        }
        /* median of three to c[hi - 1] */
        int64_t mid = lo + (hi - lo) / 2;
        if (worse(c[mid], c[lo]))
            swap_cand(&c[mid], &c[lo]);
        if (worse(c[hi - 1], c[lo]))
            swap_cand(&c[hi - 1], &c[lo]);
        if (worse(c[mid], c[hi - 1]))
            swap_cand(&c[mid], &c[hi - 1]);
        const cand pivot = c[hi - 1];
        /* better than the pivot to the front */
        int64_t store = lo;
        double better = 0.0;
        for (int64_t i = lo; i < hi - 1; i++) {
            if (worse(pivot, c[i])) {
                better += expf(c[i].logit - M);
                swap_cand(&c[i], &c[store++]);
            }
        }
        swap_cand(&c[store], &c[hi - 1]);
        if (acc + better >= target) {
            hi = store;
        } else {
            acc += better + expf(pivot.logit - M);
            if (acc >= target)
                return store + 1;
            lo = store + 1;
        }
    }
    if (hi - lo == 1) {
        acc += expf(c[lo].logit - M);
        if (acc >= target || hi < n)
            return hi;
        return -1;
    }
    return hi < n ? hi : -1; /* hi < n: the weight of c[0..hi) reached the target, up to rounding */
}

/* softmax(l / temp) over c[0..n) and one draw. c[0..n) must hold the max logit M. */
static int32_t draw(lm_sampler *s, cand *c, int64_t n, float M)
{
    const float inv_t = 1.0f / s->p.temp;
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float w = expf((c[i].logit - M) * inv_t);
        c[i].logit = w;
        total += w;
    }
    double r = uniform01(&s->rng) * total, cum = 0.0;
    int64_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        if (c[i].logit > 0.0f) {
            cum += c[i].logit;
            last = i;
            if (r < cum)
                return c[i].id;
        }
    }
    return c[last].id; /* rounding: r landed at the very end */
}

static int32_t sample_chain(lm_sampler *s, float *logits)
{
    const int32_t n = s->n_vocab;
    if (s->penalize)
        apply_penalties(s, logits);
    if (s->p.temp <= 0.0f || n == 1)
        return argmax(logits, n);

    const int32_t top_k = s->p.top_k;
    const float top_p = s->p.top_p, min_p = s->p.min_p;
    cand *c = s->cand;
    int64_t nc;
    float M;

    if (top_k > 0 && top_k < n) {
        /* sorted path: top-k, then top-p and min-p cut prefixes of the same order */
        select_top_k(logits, n, top_k, c);
        M = c[0].logit;
        if (!isfinite(M))
            return c[0].id; /* nothing finite to weigh */
        nc = top_k;
        if (top_p < 1.0f) {
            double z = 0.0;
            for (int64_t i = 0; i < nc; i++)
                z += expf(c[i].logit - M);
            int64_t len = nucleus_sorted(c, nc, (double)top_p * z, M);
            if (len > 0)
                nc = len;
        }
        if (min_p > 0.0f) {
            const float thr_min_p = M + logf(min_p);
            int64_t keep = 1;
            while (keep < nc && c[keep].logit >= thr_min_p)
                keep++;
            nc = keep;
        }
        return draw(s, c, nc, M);
    }

    /* the whole vocabulary: NaN -> -inf (it weighs 0 and cannot win), and the max logit M */
    int32_t best = 0;
    M = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        float l = logits[i];
        if (l != l)
            logits[i] = -INFINITY;
        else if (l > M) {
            M = l;
            best = i;
        }
    }
    if (!isfinite(M))
        return best;
    const float thr_min_p = min_p > 0.0f ? M + logf(min_p) : -INFINITY;

    if (top_p < 1.0f) {
        /* top-p: only the tokens with p >= cut can be in the nucleus, since those below weigh less
         * than (n - 1) * cut = 1 - top_p together; min-p (a prefix of the same order) may narrow
         * the set further. The logit threshold is lowered by 1e-3 against rounding. */
        double z = 0.0;
        for (int32_t i = 0; i < n; i++)
            z += expf(logits[i] - M);
        double cut = (1.0 - (double)top_p) / (double)(n - 1);
        float thr_top_p = (float)fmin((double)M + log(cut * z) - 1e-3, (double)M);
        float thr = fmaxf(thr_top_p, thr_min_p);
        nc = collect(logits, n, thr, c);
        int64_t len = nucleus_select(c, nc, (double)top_p * z, M);
        if (len < 0 && thr_top_p > thr_min_p) {
            /* rounding left the set short of top_p: take everything min-p allows */
            nc = collect(logits, n, thr_min_p, c);
            len = nucleus_select(c, nc, (double)top_p * z, M);
        }
        if (len > 0)
            nc = len;
    } else {
        /* no order needed: min-p is a threshold (-inf when off: every token) */
        nc = collect(logits, n, thr_min_p, c);
    }
    return draw(s, c, nc, M);
}

/* ---------------------------------------------------------------- llama2.c mode */

/* run.c's softmax, in float32 and in the same order of operations. */
static void llama2c_softmax(float *x, int32_t n)
{
    float max_val = x[0];
    for (int32_t i = 1; i < n; i++)
        if (x[i] > max_val)
            max_val = x[i];
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max_val);
        sum += x[i];
    }
    for (int32_t i = 0; i < n; i++)
        x[i] /= sum;
}

/* run.c's sample_mult. */
static int32_t llama2c_mult(const float *p, int32_t n, float coin)
{
    float cdf = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        cdf += p[i];
        if (coin < cdf)
            return i;
    }
    return n - 1;
}

/* run.c's sample_topp. run.c sorts with qsort, whose order among equal p is unspecified; here
 * equal p are ordered by ascending id. */
static int32_t llama2c_topp(const float *p, int32_t n, float topp, cand *c, float coin)
{
    const float cutoff = (1.0f - topp) / (float)(n - 1);
    int64_t n0 = collect(p, n, cutoff, c);
    if (n0 == 0)
        return argmax(p, n); /* only with a tiny vocab and top_p: run.c reads probindex[-1] there */
    sort_best_first(c, n0);
    float cumulative = 0.0f;
    int64_t last = n0 - 1;
    for (int64_t i = 0; i < n0; i++) {
        cumulative += c[i].logit;
        if (cumulative > topp) {
            last = i;
            break;
        }
    }
    float r = coin * cumulative, cdf = 0.0f;
    for (int64_t i = 0; i <= last; i++) {
        cdf += c[i].logit;
        if (r < cdf)
            return c[i].id;
    }
    return c[last].id;
}

static int32_t sample_llama2c(lm_sampler *s, float *logits)
{
    const int32_t n = s->n_vocab;
    if (s->p.temp <= 0.0f)
        return argmax(logits, n);
    for (int32_t i = 0; i < n; i++)
        logits[i] /= s->p.temp;
    llama2c_softmax(logits, n);
    float coin = llama2c_f32(&s->rng);
    if (s->p.top_p <= 0.0f || s->p.top_p >= 1.0f || n == 1)
        return llama2c_mult(logits, n, coin);
    return llama2c_topp(logits, n, s->p.top_p, s->cand, coin);
}

int32_t lm_sampler_sample(lm_sampler *s, float *logits)
{
    return s->p.llama2c ? sample_llama2c(s, logits) : sample_chain(s, logits);
}
