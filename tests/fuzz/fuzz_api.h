/* fuzz_api.h: the srv_api that fuzz_serve and fuzz_http check requests against: the llama-spm
 * vocabulary, the chatml template, a 512-position context and 4-wide embeddings. */
#ifndef VKLLM_FUZZ_API_H
#define VKLLM_FUZZ_API_H

#include "serve_api.h"

#include "fuzz_util.h"

/* Fills a (exits when the vocabulary cannot be read: VKLLM_MODELS); *v and *t are kept for the process. */
static inline void fuzz_api_init(srv_api *a, lm_vocab **v, lm_tmpl **t, const char *who)
{
    char path[4096], err[512] = "";
    snprintf(path, sizeof path, "%s/tokenizer-vectors/ggml-vocab-llama-spm.gguf", fuzz_models());
    lm_gguf *g = NULL;
    const char *src = lm_chat_builtin("chatml");
    if (lm_gguf_open(path, &g, err, sizeof err) || lm_vocab_from_gguf(g, v, err, sizeof err) || !src ||
        lm_tmpl_parse(src, strlen(src), t, err, sizeof err)) {
        fprintf(stderr, "%s: %s (set VKLLM_MODELS)\n", who, err);
        exit(1);
    }
    lm_gguf_close(g);
    memset(a, 0, sizeof *a);
    a->v = *v;
    a->tmpl = *t;
    a->n_ctx = 512;
    a->kv_positions = 2048;
    a->model_id = "fuzz";
    lm_sampler_defaults(&a->defaults);
    a->embed_ctx = 256;
    a->dim = 4;
}

#endif
