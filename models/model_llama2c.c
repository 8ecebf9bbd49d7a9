/* model_llama2c.c: a llama2.c checkpoint (Karpathy's legacy "v0" format) into the same structures as a
 * GGUF llama model.
 *
 * Layout: 7 little-endian int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 * (vocab_size < 0 means the classifier is stored separately at the end), then float32 arrays, each
 * matrix [out][in] row-major: token_embedding[vocab][dim], rms_att[L][dim], wq[L][dim][dim],
 * wk[L][kv_dim][dim], wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim], w1[L][hidden][dim],
 * w2[L][dim][hidden], w3[L][hidden][dim], rms_final[dim], freq_cis_real[seq_len][head_dim/2],
 * freq_cis_imag[seq_len][head_dim/2], and wcls[vocab][dim] if not shared. RoPE rotates adjacent pairs
 * with theta 10000 over the whole head. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"

/* LM_ERR_FORMAT, saying so, when the file at fd starts with GGUF's magic: the wrong container. */
static int not_gguf(int fd, const char *path, const char *what, char *err, size_t errlen)
{
    char magic[4];
    if (pread(fd, magic, 4, 0) == 4 && !memcmp(magic, "GGUF", 4))
        return lm_fail(err, errlen, LM_ERR_FORMAT, "%s is a GGUF file, not a llama2.c %s", path, what);
    return LM_OK;
}

int lm_model_load_llama2c(rt_ctx *ctx, const char *checkpoint, const char *tokenizer, const lm_load_opts *opts,
                          lm_model **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below) */
    int fd = open(checkpoint, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return lm_fail(err, errlen, LM_ERR_IO, "%s: cannot open: %s", checkpoint, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lm_fail(err, errlen, LM_ERR_IO, "%s: not a regular file", checkpoint);
    }
    if ((rc = not_gguf(fd, checkpoint, "checkpoint", err, errlen))) {
        close(fd);
        return rc;
    }
    if (st.st_size < 28) {
        close(fd);
        return lm_fail(err, errlen, LM_ERR_FORMAT, "%s: %lld bytes, too small for a llama2.c checkpoint header",
                       checkpoint, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    const char *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return lm_fail(err, errlen, LM_ERR_IO, "%s: cannot map", checkpoint);

    lm_model *m = calloc(1, sizeof *m);
    if (!m) {
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
        goto out_unmap;
    }
    m->ctx = ctx;
    int32_t h[7];
    memcpy(h, base, sizeof h);
    lm_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof hp->arch, "llama");
    snprintf(hp->name, sizeof hp->name, "%s", strrchr(checkpoint, '/') ? strrchr(checkpoint, '/') + 1 : checkpoint);
    hp->dim = h[0];
    hp->ffn_dim = h[1];
    hp->n_layers = h[2];
    hp->n_heads = h[3];
    hp->n_kv_heads = h[4];
    bool shared = h[5] > 0;
    int64_t vocab = h[5] < 0 ? -(int64_t)h[5] : h[5];
    hp->n_vocab = vocab > INT32_MAX ? 0 : (int32_t)vocab; /* 0 is refused by the check below */
    hp->n_ctx_train = h[6];
    hp->head_dim = hp->n_heads > 0 ? hp->dim / hp->n_heads : 0;
    hp->n_rot = hp->head_dim;
    hp->norm_eps = 1e-5f;
    hp->rope_base = 10000.0f;
    hp->rope_mode = RT_ROPE_ADJACENT;
    hp->rope_factor = 1.0f;
    hp->rope_n_ctx_orig = hp->n_ctx_train;
    hp->tied_output = shared;
    hp->weight_type = LM_GGML_F32;
    char msg[512];
    if ((rc = lm_hparams_check(hp, msg, sizeof msg)) || hp->dim % hp->n_heads) {
        if (!rc) {
            rc = LM_ERR_FORMAT;
            snprintf(msg, sizeof msg, "dim %d is not a multiple of n_heads %d", hp->dim, hp->n_heads);
        }
        rc = lm_fail(err, errlen, rc, "%s: not a llama2.c checkpoint, or a damaged one: %s", checkpoint, msg);
        goto out_free;
    }
    int64_t dim = hp->dim, L = hp->n_layers, kv_dim = (int64_t)hp->n_kv_heads * hp->head_dim, ffn = hp->ffn_dim;
    int64_t V = hp->n_vocab;
    /* the size every array needs, checked before any is read (int64: no overflow for sane dims) */
    int64_t floats = V * dim + L * dim * 2 + L * dim * dim * 2 + L * kv_dim * dim * 2 + L * ffn * dim * 3 + dim +
                     (int64_t)hp->n_ctx_train * hp->head_dim + (shared ? 0 : V * dim);
    if ((int64_t)(size - 28) / 4 < floats) {
        rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: truncated: %zu bytes, the header implies %lld", checkpoint, size,
                     (long long)(28 + floats * 4));
        goto out_free;
    }
    hp->n_params = floats - (int64_t)hp->n_ctx_train * hp->head_dim;

    int tfd = open(tokenizer, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (tfd < 0) {
        rc = lm_fail(err, errlen, LM_ERR_IO, "%s: cannot open: %s", tokenizer, strerror(errno));
        goto out_free;
    }
    rc = fstat(tfd, &st) != 0 || !S_ISREG(st.st_mode)
             ? lm_fail(err, errlen, LM_ERR_IO, "%s: not a regular file", tokenizer)
             : not_gguf(tfd, tokenizer, "tokenizer", err, errlen);
    close(tfd);
    if (rc)
        goto out_free;
    /* the tokenizer's messages name its file */
    if ((rc = lm_vocab_from_llama2c(tokenizer, &m->vocab, err, errlen)))
        goto out_free;
    if (lm_vocab_n_tokens(m->vocab) != hp->n_vocab) {
        rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s has %d tokens, the checkpoint %s %d: not its tokenizer", tokenizer,
                     lm_vocab_n_tokens(m->vocab), checkpoint, hp->n_vocab);
        goto out_free;
    }
    m->arch = &lm_arch_llama;
    m->layers = calloc((size_t)L, sizeof(lm_llama_layer));
    if (!m->layers) {
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of host memory");
        goto out_free;
    }

    const float *p = (const float *)(base + 28);
    const float *embd = p;
    p += V * dim;
    const float *rms_att = p; p += L * dim;
    const float *wq = p; p += L * dim * dim;
    const float *wk = p; p += L * kv_dim * dim;
    const float *wv = p; p += L * kv_dim * dim;
    const float *wo = p; p += L * dim * dim;
    const float *rms_ffn = p; p += L * dim;
    const float *w1 = p; p += L * ffn * dim;
    const float *w2 = p; p += L * dim * ffn;
    const float *w3 = p; p += L * ffn * dim;
    const float *rms_final = p; p += dim;
    p += (int64_t)hp->n_ctx_train * hp->head_dim; /* freq_cis_real and _imag: RoPE is computed instead */
    const float *wcls = shared ? embd : p;

#define UP(w, src, ne0, ne1)                                                                   \
    if ((rc = lm_weight_upload(m, &(w), src, LM_GGML_F32, ne0, ne1, false, err, errlen)))      \
        goto out_free;
    UP(m->g.tok_embd, embd, dim, V)
    UP(m->g.out_norm, rms_final, dim, 1)
    if (shared) {
        m->g.output = m->g.tok_embd;
    } else {
        UP(m->g.output, wcls, dim, V)
    }
    for (int64_t l = 0; l < L; l++) {
        lm_llama_layer *ly = (lm_llama_layer *)m->layers + l;
        UP(ly->attn_norm, rms_att + l * dim, dim, 1)
        UP(ly->a.wq, wq + l * dim * dim, dim, dim)
        UP(ly->a.wk, wk + l * kv_dim * dim, dim, kv_dim)
        UP(ly->a.wv, wv + l * kv_dim * dim, dim, kv_dim)
        UP(ly->a.wo, wo + l * dim * dim, dim, dim)
        UP(ly->ffn_norm, rms_ffn + l * dim, dim, 1)
        UP(ly->w_gate, w1 + l * ffn * dim, dim, ffn)
        UP(ly->w_down, w2 + l * dim * ffn, ffn, dim)
        UP(ly->w_up, w3 + l * ffn * dim, dim, ffn)
        if (opts && opts->progress)
            opts->progress(opts->user, (float)(l + 1) / (float)L);
    }
#undef UP
    munmap((void *)base, size);
    *out = m;
    return LM_OK;

out_free:
    lm_model_free(m);
out_unmap:
    munmap((void *)base, size);
    return rc;
}
