/* cmd_perplexity.c: `vkllm perplexity -m FILE -f TEXT -c N`, computed as llama.cpp's llama-perplexity
 * does, so the numbers compare with published tables: the whole text is tokenized with BOS (when the
 * vocabulary adds one); it is cut into chunks of N tokens (the remainder dropped); each chunk starts
 * with BOS in place of its first token; the tokens of the second half of each chunk are scored (the
 * negative log-likelihood of the token at position j+1 from the logits at j, for j = N/2 .. N-2).
 *
 * KL divergence, as llama-perplexity's: `--kl-divergence-base FILE` also saves the log-probabilities
 * of every scored position into FILE (format in kld.h); `--kl-divergence-base FILE --kl-divergence`
 * reads them back instead, for the same tokens (taken from FILE when -f is left out), and prints the
 * KL divergence of this model from the base, the base's perplexity beside this one, and how often
 * both pick the same top token. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app_model.h"
#include "kld.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vkllm perplexity -m FILE -f TEXT [-c N] [-b N] [--chunks K] [--tokenizer FILE] [--device N]\n"
               "       vkllm perplexity -m FILE [-f TEXT] --kl-divergence-base BASEFILE --kl-divergence\n"
               "  -c N                       tokens per chunk (default 512; with --kl-divergence, BASEFILE's)\n"
               "  --chunks K                 score only the first K chunks\n"
               "  --kl-divergence-base FILE  save every scored position's log-probabilities into FILE\n"
               "                             (n_vocab floats per position; see the README)\n"
               "  --kl-divergence            compare with FILE instead: KL divergence from the base model,\n"
               "                             both perplexities, same top token (the text defaults to FILE's)\n");
}

/* log p(tok) from a row of logits, in double */
static double log_prob(const float *logits, int32_t n, int32_t tok)
{
    return (double)logits[tok] - kld_log_sum_exp(logits, n);
}

int cmd_perplexity(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *file = NULL, *base_path = NULL;
    long n_ctx = 0, n_batch = 0, max_chunks = -1;
    bool bad = false, kld_mode = false;
    app_device_opts dev = { .device = -1 };
    int i = 1;
    for (; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (app_input_flag(argc, argv, &i, &model, &tokenizer, NULL, &file, &bad))
            continue;
        else if (app_opt(a, "-c", "--ctx-size"))
            bad = !app_arg_int(argc, argv, &i, &n_ctx, 4, 1 << 20);
        else if (app_opt(a, "-b", "--batch-size"))
            bad = !app_arg_int(argc, argv, &i, &n_batch, 1, 1 << 16);
        else if (app_opt(a, NULL, "--chunks"))
            bad = !app_arg_int(argc, argv, &i, &max_chunks, 1, 1 << 30);
        else if (app_opt(a, NULL, "--kl-divergence-base"))
            bad = !app_arg_str(argc, argv, &i, &base_path);
        else if (!strcmp(a, "--kl-divergence"))
            kld_mode = true;
        else if (!app_device_flag(argc, argv, &i, &dev, &bad))
            return app_usage_fail(usage, a[0] == '-' && a[1] ? "perplexity: unknown option '%s'"
                                                              : "perplexity: unexpected argument '%s'", a);
    }
    if (bad)
        return app_bad_args(usage);
    if (i < argc)
        return app_usage_fail(usage, "perplexity: unexpected argument '%s'", argv[i]);
    if (kld_mode && !base_path)
        return app_usage_fail(usage, "perplexity: --kl-divergence needs --kl-divergence-base FILE (the base model's "
                                     "log-probabilities, written by a run without --kl-divergence)");
    if (!model || (!file && !kld_mode))
        return app_usage_fail(usage, "perplexity: -m FILE and -f TEXT are required");
    size_t len = 0;
    char *text = NULL;
    if (file && !(text = app_read_text(file, &len)))
        return 1;

    int status = 1;
    app_model am = { 0 };
    lm_session *s = NULL;
    int32_t *toks = NULL;
    float *logits = NULL, *lp = NULL;
    kld_writer w = { 0 };
    kld_base base = { 0 };
    kld_stats st = { 0 };
    char err[1024];
    if (app_model_open(&am, model, tokenizer, &dev))
        goto out;
    const lm_vocab *v = lm_model_vocab(am.model);
    int32_t n_vocab = lm_model_hparams(am.model)->n_vocab;
    bool add_bos = lm_vocab_add_bos(v) && lm_vocab_bos(v) >= 0;
    int32_t bos = add_bos ? lm_vocab_bos(v) : -1;
    if (kld_mode) {
        /* the chunks are the base's: its context, its tokens, its BOS */
        if (kld_base_open(&base, base_path, n_vocab))
            goto out;
        if (n_ctx && n_ctx != base.n_ctx) {
            app_fail("%s was made with -c %d; leave -c out or give the same", base_path, base.n_ctx);
            goto out;
        }
        n_ctx = base.n_ctx;
        if (base.bos != bos) {
            app_fail("%s starts each chunk with token %d, this model's vocabulary with %d: not the same tokenizer",
                     base_path, base.bos, bos);
            goto out;
        }
    } else if (!n_ctx)
        n_ctx = 512;
    int64_t n_tok;
    double t0 = app_now();
    if (text) {
        if (lm_tokenize(v, text, len, true, false, &toks, &n_tok, err, sizeof err)) {
            app_fail("%s: %s", file, err);
            goto out;
        }
        fprintf(stderr, "vkllm: tokenized %s: %lld tokens in %.2f s\n", file, (long long)n_tok, app_now() - t0);
    } else {
        n_tok = (int64_t)base.n_chunks * base.n_ctx;
        toks = malloc(sizeof *toks * (size_t)n_tok);
        if (!toks) {
            app_fail("out of memory");
            goto out;
        }
        memcpy(toks, base.tokens, sizeof *toks * (size_t)n_tok);
        fprintf(stderr, "vkllm: the text: the %lld tokens stored in %s\n", (long long)n_tok, base_path);
    }
    int64_t n_chunks = n_tok / n_ctx;
    if (kld_mode) {
        n_chunks = base.n_chunks;
        for (int64_t i = 0; i < n_chunks * n_ctx; i++)
            if (i >= n_tok || toks[i] != base.tokens[i]) {
                app_fail("%s: the text's tokens differ from those in %s from token %lld on (%s): not the same "
                         "text, or not the same tokenizer",
                         file, base_path, (long long)i, i >= n_tok ? "the text is shorter" : "another id");
                goto out;
            }
    } else if (n_tok < 2 * n_ctx) {
        app_fail("%s has %lld tokens; perplexity with a context of %ld needs at least %ld", file, (long long)n_tok,
                 n_ctx, 2 * n_ctx);
        goto out;
    }
    if (max_chunks > 0 && max_chunks < n_chunks)
        n_chunks = max_chunks;
    int64_t first = n_ctx / 2;
    if (base_path) {
        lp = malloc(sizeof *lp * (size_t)n_vocab);
        if (!lp) {
            app_fail("out of memory");
            goto out;
        }
    }
    if (kld_mode && kld_stats_init(&st, n_chunks * (n_ctx - 1 - first)))
        goto out;
    if (base_path && !kld_mode &&
        kld_writer_open(&w, base_path, n_vocab, (int32_t)n_ctx, (int32_t)n_chunks, bos, toks))
        goto out;
    lm_session_opts so = { .n_ctx = (int32_t)n_ctx, .n_batch = (int32_t)(n_batch ? n_batch : n_ctx) };
    if (lm_session_create(am.model, &so, &s, err, sizeof err)) {
        app_fail("%s", err);
        goto out;
    }
    /* the chunk goes through in pieces of the batch size, each piece's logits at once: at most 256 MiB
     * of them, so that a long context with a large vocabulary does not need n_ctx * n_vocab floats */
    int64_t per = so.n_batch, cap = ((int64_t)256 << 20) / ((int64_t)n_vocab * 4);
    if (per > cap)
        per = cap > 0 ? cap : 1;
    logits = malloc(sizeof *logits * (size_t)per * (size_t)n_vocab);
    if (!logits) {
        app_fail("out of memory");
        goto out;
    }
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    fprintf(stderr, "vkllm: %lld chunks of %ld tokens\n", (long long)n_chunks, n_ctx);
    t0 = app_now();
    for (int64_t c = 0; c < n_chunks; c++) {
        int32_t *chunk = toks + c * n_ctx;
        int32_t saved = chunk[0];
        if (add_bos)
            chunk[0] = bos;
        lm_session_rewind(s, 0);
        for (int64_t j0 = 0; j0 < n_ctx; j0 += per) {
            int64_t k = n_ctx - j0 < per ? n_ctx - j0 : per;
            bool want = j0 + k > first; /* rows from `first` on are scored */
            if (lm_session_eval(s, chunk + j0, k, want ? logits : NULL, want, err, sizeof err)) {
                app_fail("%s", err);
                goto out;
            }
            for (int64_t j = j0 > first ? j0 : first; want && j < j0 + k && j < n_ctx - 1; j++) {
                const float *row = logits + (j - j0) * n_vocab;
                double l = log_prob(row, n_vocab, chunk[j + 1]);
                nll -= l;
                nll2 += l * l;
                count++;
                if (!base_path)
                    continue;
                kld_log_softmax(row, n_vocab, lp);
                if (!kld_mode && kld_writer_row(&w, lp))
                    goto out;
                if (kld_mode && kld_base_next(&base))
                    goto out;
                if (kld_mode && !kld_stats_add(&st, lp, base.row, n_vocab, chunk[j + 1])) {
                    app_fail("%s is corrupt: position %lld is not a probability distribution", base_path,
                             (long long)base.rows_read - 1);
                    goto out;
                }
            }
        }
        chunk[0] = saved;
        printf("[%lld]%.4f,", (long long)(c + 1), exp(nll / count));
        if (fflush(stdout) || ferror(stdout)) {
            app_stdout_status("perplexity", 1);
            goto out;
        }
        if (c == 0)
            fprintf(stderr, "vkllm: %.2f s per chunk\n", app_now() - t0);
    }
    double mean = nll / count, var = nll2 / count - mean * mean;
    double ppl = exp(mean), err_ppl = count > 1 && var > 0 ? ppl * sqrt(var / (count - 1)) : 0;
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, err_ppl);
    printf("PPL = %.4f\n", ppl);
    if (kld_mode)
        kld_stats_print(&st, stdout);
    if (base_path && !kld_mode) {
        if (kld_writer_finish(&w))
            goto out;
        fprintf(stderr, "vkllm: wrote %s: %lld positions of %d log-probabilities\n", base_path, (long long)count,
                n_vocab);
    }
    status = app_stdout_status("perplexity", 0);
out:
    kld_writer_abort(&w);
    kld_base_close(&base);
    kld_stats_free(&st);
    free(lp);
    free(text);
    free(toks);
    free(logits);
    lm_session_free(s);
    app_model_close(&am);
    return status;
}
