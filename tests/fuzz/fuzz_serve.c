/* fuzz_serve.c: the request bodies of `vkllm serve` (app/serve_api.c), as the HTTP side hands them
 * over: byte 0 picks the endpoint (chat, completions, embeddings), the rest is the body. A request
 * that parses is answered as if generated (the response, a streamed chunk, the usage chunk, or the
 * embeddings), so the JSON writers see what the parser let through. The HTTP layer around it (routes,
 * headers, the API key, body limits) is fuzz_http.c's. */
#include "serve_api.h"

#include "fuzz_api.h"

static lm_vocab *vocab;
static lm_tmpl *tmpl;
static srv_api api;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_api_init(&api, &vocab, &tmpl, "fuzz_serve");
    return 0;
}

static void answer(const srv_request *r)
{
    /* the prompt's own tokens stand in for generated ones, with log-probabilities when asked */
    int64_t n = r->n_ids < 8 ? r->n_ids : 8;
    srv_token toks[8];
    memset(toks, 0, sizeof toks);
    for (int64_t i = 0; i < n; i++) {
        toks[i].id = r->ids[i];
        toks[i].logprob = -0.5f * (float)i;
        toks[i].n_top = r->gen.n_logprobs > 0 ? (r->gen.n_logprobs < 3 ? r->gen.n_logprobs : 3) : 0;
        for (int k = 0; k < toks[i].n_top; k++) {
            toks[i].top_id[k] = r->ids[(i + k) % r->n_ids];
            toks[i].top_lp[k] = -1.0f * (float)k;
        }
    }
    char *text = NULL;
    size_t tlen = 0, off = 0;
    char err[256];
    if (lm_detokenize(vocab, r->ids, n, false, &text, &tlen, err, sizeof err) != LM_OK)
        abort();
    srv_update end = { .done = true, .finish = SRV_FINISH_LENGTH, .prompt_tokens = r->n_ids, .completion_tokens = n };
    const srv_token *lp = r->gen.n_logprobs >= 0 ? toks : NULL;
    int64_t n_lp = lp ? n : 0;
    char *a = srv_json_response(&api, r, "id-1", 1, text, tlen, lp, n_lp, &end);
    char *b = srv_json_chunk(&api, r, "id-1", 1, text, tlen, lp, n_lp, "stop", r->kind == SRV_CHAT, &off);
    char *c = srv_json_usage_chunk(&api, r, "id-1", 1, &end);
    if (!a || !b || !c)
        abort();
    free(a);
    free(b);
    free(c);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    srv_error e;
    memset(&e, 0, sizeof e);
    int which = data[0] % 3;
    if (which < 2) {
        srv_request r;
        memset(&r, 0, sizeof r);
        if (srv_parse_request(&api, which == 0 ? SRV_CHAT : SRV_COMPLETION, body, len, &r, &e)) {
            if (r.n_ids <= 0 || r.n_ids >= api.n_ctx)
                abort();
            answer(&r);
        } else {
            char *j = srv_error_json(&e);
            if (!j || (e.status != 400 && e.status != 500))
                abort();
            free(j);
        }
        srv_request_free(&r);
    } else {
        srv_embed_request r;
        memset(&r, 0, sizeof r);
        if (srv_parse_embed_request(&api, body, len, &r, &e)) {
            float *vecs = calloc((size_t)r.n_inputs * (size_t)api.dim, sizeof *vecs);
            if (!vecs)
                abort();
            for (int i = 0; i < r.n_inputs * api.dim; i++)
                vecs[i] = (float)i * 0.25f - 1.0f;
            bool finite;
            char *j = srv_json_embeddings(&api, &r, vecs, &finite);
            if (!j)
                abort();
            free(j);
            free(vecs);
        } else {
            char *j = srv_error_json(&e);
            if (!j)
                abort();
            free(j);
        }
        srv_embed_request_free(&r);
    }
    return 0;
}
