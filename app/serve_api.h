/* serve_api.h: the OpenAI-compatible JSON of `vkllm serve`: requests checked field by field and turned
 * into prompt tokens and generation settings, responses, streamed chunks and errors written. No HTTP
 * here (serve_http.c) and no device (serve_engine.c). */
#ifndef VKLLM_SERVE_API_H
#define VKLLM_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm.h"
#include "serve_engine.h"

enum srv_kind { SRV_CHAT = 0, SRV_COMPLETION };

/* An error as OpenAI reports it: {"error": {"message", "type", "param", "code"}} with an HTTP status. */
typedef struct srv_error {
    int status;
    const char *type;    /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *code;    /* NULL: null */
    char param[64];      /* "": null */
    char message[768];
} srv_error;

void srv_error_set(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt,
                   ...) __attribute__((format(printf, 6, 7)));
/* The error's JSON text (malloc'd; NULL when out of memory). */
char *srv_error_json(const srv_error *e);

/* What requests are checked and rendered against (read-only while serving: the vocab and template are
 * safe to use from any number of threads). */
typedef struct srv_api {
    const lm_vocab *v;
    const lm_tmpl *tmpl;            /* the chat template */
    int32_t n_ctx;                  /* positions per sequence */
    int64_t kv_positions;           /* positions of the whole KV pool (0: not checked) */
    const char *model_id;           /* the name /v1/models lists */
    lm_sampler_params defaults;     /* sampling when a request does not say */
    bool encoder;                   /* the model only embeds: completions and chat are refused (400) */
    int32_t embed_ctx;              /* tokens one embeddings input may have (the model's training context) */
    int32_t dim;                    /* the embeddings' length */
} srv_api;

typedef struct srv_request {
    enum srv_kind kind;
    char *model;                    /* the request's "model" (NULL: not given) */
    bool stream, include_usage;
    srv_gen gen;                    /* stop strings point into stop_mem */
    char *stop_mem;
    int32_t *ids;                   /* the prompt's tokens (malloc'd) */
    int64_t n_ids;
} srv_request;

/* Parses body (len bytes, not NUL-terminated) as a request of kind: valid UTF-8 and JSON, every known
 * field of the right type and range (unknown ones ignored), the chat rendered with the template, the
 * prompt tokenized and checked against the context. false with e filled (status 400, or 500 when out
 * of memory) otherwise. srv_request_free frees r either way. */
bool srv_parse_request(const srv_api *a, enum srv_kind kind, const char *body, size_t len, srv_request *r,
                       srv_error *e);
void srv_request_free(srv_request *r);

/* /v1/embeddings, as OpenAI's: "input" a string, an array of strings, an array of token ids or an array
 * of such arrays (at most SRV_MAX_EMBED_INPUTS inputs, none empty, each within embed_ctx tokens; texts
 * tokenized as lm_embed_texts does), "encoding_format" "float" (default) or "base64" (the float32 values'
 * little-endian bytes), "dimensions" only the model's own, "user" ignored. */
#define SRV_MAX_EMBED_INPUTS 2048
typedef struct srv_embed_request {
    char *model;                    /* the request's "model" (NULL: not given) */
    bool base64;
    int n_inputs;
    int32_t **ids;                  /* [n_inputs] each input's tokens (malloc'd) */
    int64_t *n_ids;                 /* [n_inputs] */
    int64_t n_tokens;               /* all inputs' tokens (usage) */
} srv_embed_request;
bool srv_parse_embed_request(const srv_api *a, const char *body, size_t len, srv_embed_request *r, srv_error *e);
void srv_embed_request_free(srv_embed_request *r);
/* The response (malloc'd JSON text) for vecs [n_inputs][a->dim]; NULL when out of memory or a value is
 * not finite (*finite says which). */
char *srv_json_embeddings(const srv_api *a, const srv_embed_request *r, const float *vecs, bool *finite);

/* Offset of the first byte of s[0..n) that is not valid UTF-8 (overlong forms, surrogates and code
 * points past U+10FFFF are invalid), or -1. */
long srv_utf8_invalid(const char *s, size_t n);

/* A response id: prefix and 24 random hex digits. */
void srv_make_id(char *out, size_t cap, const char *prefix);

/* The whole response of a finished request (malloc'd JSON text): chat.completion or text_completion,
 * with choices[0] (the text, finish_reason, logprobs when asked) and usage. */
char *srv_json_response(const srv_api *a, const srv_request *r, const char *id, long long created, const char *text,
                        size_t n_text, const srv_token *toks, int64_t n_toks, const srv_update *end);

/* One streamed chunk (malloc'd JSON text, without the "data: " framing): the text and log-probabilities
 * new since the last chunk; finish non-NULL on the last one ("stop", "length"); role: the chat's first
 * chunk, {"role": "assistant", "content": ""}. *text_offset carries the completion's text offset from
 * chunk to chunk (completions' logprobs.text_offset). */
char *srv_json_chunk(const srv_api *a, const srv_request *r, const char *id, long long created, const char *text,
                     size_t n_text, const srv_token *toks, int64_t n_toks, const char *finish, bool role,
                     size_t *text_offset);
/* The usage chunk that ends a stream with stream_options.include_usage (choices empty). */
char *srv_json_usage_chunk(const srv_api *a, const srv_request *r, const char *id, long long created,
                           const srv_update *end);
/* /v1/models */
char *srv_json_models(const srv_api *a, long long created);
/* "stop" / "length" for a finished job. */
const char *srv_finish_reason(enum srv_finish f);

#endif
