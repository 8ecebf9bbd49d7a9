/* kld.h: KL divergence between two models on the same text, as llama.cpp's llama-perplexity measures
 * it: `vkllm perplexity --kl-divergence-base FILE` saves the base model's log-probabilities at every
 * scored position, and a later `--kl-divergence` run of another model reads them back and compares.
 *
 * The base file (version 1; every field little-endian, u32 unless said):
 *
 *   offset 0   char magic[4]   "VKLD"
 *          4   version         1
 *          8   n_vocab         logits per position
 *         12   n_ctx           tokens per chunk (-c)
 *         16   n_chunks        chunks stored
 *         20   first           the first scored position of a chunk, n_ctx / 2
 *         24   i32 bos         the token put in place of each chunk's first token, -1 for none
 *         28   reserved        0
 *         32   i32 tokens[n_chunks * n_ctx]   the evaluated text, as tokenized (before BOS is put in)
 *          .   f32 log_probs[n_chunks][n_ctx - 1 - first][n_vocab]
 *                              log p(token i | the chunk up to position j), for j = first .. n_ctx - 2
 *
 * so its size is exactly 32 + 4 * n_chunks * n_ctx + 4 * n_vocab * n_chunks * (n_ctx - 1 - first)
 * bytes, which the reader checks before it reads anything else. n_vocab 32000, -c 512, 100 chunks:
 * 25,500 positions of 128,000 bytes, 3.26 GB (llama.cpp's file, 16-bit log-probs, is half that).
 *
 * Why f32 and not llama.cpp's 16 bits per log-probability: llama.cpp maps [max - 16, max] onto 65536
 * steps, 2.4e-4 nats each, so each stored log-prob is off by up to 1.2e-4 and a position's KLD by up
 * to about as much, while the best quantisations (Q8_0) have mean KLDs of 1e-4 to 1e-3 and medians
 * below that: the low percentiles would measure the file's rounding. With f32 a model compared with
 * itself gives exactly 0, and twice the disk is the price. */
#ifndef VKLLM_KLD_H
#define VKLLM_KLD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define KLD_MAGIC "VKLD"
#define KLD_VERSION 1u
#define KLD_HEADER_BYTES 32

/* The log-softmax of a row of logits: lp[i] = logits[i] - log(sum_k exp(logits[k])), summed in
 * double, stored as float. Both sides of a comparison go through this same function. */
void kld_log_softmax(const float *logits, int32_t n, float *lp);
/* log(sum(exp(logits))), stable, in double */
double kld_log_sum_exp(const float *logits, int32_t n);

/* Writing a base file: it is written to "PATH.tmp.PID" and renamed to PATH by kld_writer_finish, so
 * there is never a partial file under PATH. Every function prints why and returns 1 on failure. */
typedef struct kld_writer {
    FILE *f;
    char *path, *tmp;
    int32_t n_vocab;
} kld_writer;
int kld_writer_open(kld_writer *w, const char *path, int32_t n_vocab, int32_t n_ctx, int32_t n_chunks,
                    int32_t bos, const int32_t *tokens);
int kld_writer_row(kld_writer *w, const float *lp); /* n_vocab log-probabilities */
int kld_writer_finish(kld_writer *w);               /* flush, close, rename */
void kld_writer_abort(kld_writer *w);               /* close and remove the temporary file; no-op after finish */

/* Reading a base file: kld_base_open checks the magic, version, n_vocab (against the model's), the
 * header's consistency, the file's size and every stored token id. Prints why and returns 1 on failure
 * (call kld_base_close either way). */
typedef struct kld_base {
    FILE *f;
    const char *path;
    int32_t n_vocab, n_ctx, n_chunks, first, bos;
    int32_t *tokens; /* [n_chunks * n_ctx] */
    float *row;      /* [n_vocab], the last row read */
    int64_t rows_read;
} kld_base;
int kld_base_open(kld_base *b, const char *path, int32_t n_vocab);
int kld_base_next(kld_base *b); /* reads the next position's log-probs into b->row */
void kld_base_close(kld_base *b);

/* The running statistics of a comparison, those llama-perplexity prints. */
typedef struct kld_stats {
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_p_diff, sum_p_diff2, sum_p_diff4;
    int64_t n_same_top, count, cap;
    float *kld_values, *p_diff_values; /* [cap], one per position, for the percentiles */
} kld_stats;
int kld_stats_init(kld_stats *s, int64_t cap);
void kld_stats_free(kld_stats *s);
/* One position: lp the log-probs of the model under test, base those of the base, tok the next token.
 * Returns false when the base row is not a probability distribution (a corrupt file). */
bool kld_stats_add(kld_stats *s, const float *lp, const float *base, int32_t n_vocab, int32_t tok);
/* The "Perplexity statistics", "KL divergence statistics" and "Token probability statistics" sections
 * in llama-perplexity's wording. */
void kld_stats_print(const kld_stats *s, FILE *f);

#endif
