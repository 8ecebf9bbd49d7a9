/* cmd_serve.c: `vkllm serve -m FILE`: an OpenAI-compatible HTTP server (/v1/chat/completions,
 * /v1/completions, /v1/embeddings, /v1/models, /health, /metrics; an encoder model only embeds). The flags, the model and chat template, then the
 * engine (serve_engine.c) and the HTTP server (serve_http.c); SIGINT or SIGTERM stop it cleanly: new
 * requests get 503, running ones end, connections close, the device is released. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "app_model.h"
#include "serve_api.h"
#include "serve_engine.h"
#include "serve_http.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm serve -m FILE [options]\n"
            "  -m, --model FILE       GGUF model (or a llama2.c checkpoint with --tokenizer)\n"
            "  -z, --tokenizer FILE   llama2.c tokenizer.bin for a llama2.c checkpoint\n"
            "      --host ADDR        address to listen on (default 127.0.0.1; 0.0.0.0 or :: for every interface)\n"
            "      --port N           port (default 8080; 0: any free port, printed)\n"
            "      --api-key KEY      requests must send 'Authorization: Bearer KEY' (/health excepted)\n"
            "  -np, --parallel N      sequences generated at once, batched together (default 1)\n"
            "  -c, --ctx-size N       context positions of each sequence (default: the model's, at most 4096)\n"
            "  -b, --batch-size N     rows per pass: a decode row per generating sequence, then prompt chunks\n"
            "                         (default 256)\n"
            "      --kv-blocks N      KV cache blocks of 16 positions, shared by all sequences (default: room\n"
            "                         for --parallel sequences of --ctx-size)\n"
            "      --queue-size N     requests waiting for a sequence at most; more get 503 (default 64)\n"
            "      --max-body BYTES   largest request body accepted; larger gets 413 (default 8388608)\n"
            "      --timeout S        close a connection idle for S seconds (default 600; 0: never)\n"
            "      --alias NAME       the model's name in /v1/models (default: the file's name)\n"
            "      --chat-template NAME  a built-in template instead of the model's:");
    for (int i = 0; lm_chat_builtin_name(i); i++)
        fprintf(f, " %s", lm_chat_builtin_name(i));
    fprintf(f,
            "\n"
            "      --template-file FILE  a Jinja chat template from a file\n"
            "      --kv-f32           keep the KV caches in f32 (twice the memory of the default f16)\n"
            "      --device N         Vulkan device (see `vkllm devices`; or VKLLM_DEVICE=N)\n"
            "      --validation       enable the Khronos validation layer\n"
            "The sampling flags set what a request gets when it does not say (the seed: random per request\n"
            "unless --seed is given):\n");
    fputs(app_sampling_usage, f);
}

int cmd_serve(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *host = "127.0.0.1", *api_key = NULL, *alias = NULL;
    const char *chat_template = NULL, *template_file = NULL, *file_unused = NULL;
    long port = 8080, parallel = 1, n_ctx = 0, n_batch = 0, kv_blocks = 0, queue_size = 64, max_body = 8 << 20,
         timeout = 600;
    bool kv_f32 = false, bad = false;
    app_device_opts dev = { .device = -1 };
    lm_sampler_params sp;
    lm_sampler_defaults(&sp);
    sp.seed = LM_SAMPLER_SEED_RANDOM;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (app_input_flag(argc, argv, &i, &model, &tokenizer, NULL, &file_unused, &bad)) {
            if (file_unused)
                return app_fail("serve: -f is not an option of serve");
        } else if (app_opt(a, NULL, "--host")) {
            bad = !app_arg_str(argc, argv, &i, &host);
        } else if (app_opt(a, NULL, "--port")) {
            bad = !app_arg_int(argc, argv, &i, &port, 0, 65535);
        } else if (app_opt(a, NULL, "--api-key")) {
            bad = !app_arg_str(argc, argv, &i, &api_key);
        } else if (app_opt(a, "-np", "--parallel")) {
            bad = !app_arg_int(argc, argv, &i, &parallel, 1, 256);
        } else if (app_opt(a, "-c", "--ctx-size")) {
            bad = !app_arg_int(argc, argv, &i, &n_ctx, 0, 1 << 24);
        } else if (app_opt(a, "-b", "--batch-size")) {
            bad = !app_arg_int(argc, argv, &i, &n_batch, 1, 1 << 16);
        } else if (app_opt(a, NULL, "--kv-blocks")) {
            bad = !app_arg_int(argc, argv, &i, &kv_blocks, 1, 1 << 24);
        } else if (app_opt(a, NULL, "--queue-size")) {
            bad = !app_arg_int(argc, argv, &i, &queue_size, 0, 1 << 20);
        } else if (app_opt(a, NULL, "--max-body")) {
            bad = !app_arg_int(argc, argv, &i, &max_body, 1024, 1L << 32);
        } else if (app_opt(a, NULL, "--timeout")) {
            bad = !app_arg_int(argc, argv, &i, &timeout, 0, 1 << 24);
        } else if (app_opt(a, NULL, "--alias")) {
            bad = !app_arg_str(argc, argv, &i, &alias);
        } else if (app_opt(a, NULL, "--chat-template")) {
            bad = !app_arg_str(argc, argv, &i, &chat_template);
        } else if (app_opt(a, NULL, "--template-file")) {
            bad = !app_arg_str(argc, argv, &i, &template_file);
        } else if (!strcmp(a, "--kv-f32")) {
            kv_f32 = true;
        } else if (app_sampling_flag("serve", argc, argv, &i, &sp, &bad)) {
            continue;
        } else if (!app_device_flag(argc, argv, &i, &dev, &bad)) {
            return app_usage_fail(usage, "serve: unknown option '%s'", a);
        }
    }
    if (bad)
        return app_bad_args(usage);
    if (!model) {
        usage(stderr);
        return app_fail("serve: -m FILE is required");
    }
    if (api_key && !*api_key)
        return app_fail("serve: --api-key wants a non-empty key");
    if (chat_template && template_file)
        return app_fail("serve: --chat-template and --template-file are two templates; give one");
    if (chat_template && !lm_chat_builtin(chat_template))
        return app_fail("serve: no built-in template '%s' (see --help)", chat_template);
    char msg[512];
    if (lm_sampler_params_check(&sp, msg, sizeof msg))
        return app_fail("serve: %s", msg);

    /* SIGINT and SIGTERM are taken by sigwait() below: blocked here, before any thread starts, so that
     * every thread inherits the mask; SIGPIPE from a client gone is ignored */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    app_model am = { 0 };
    char *tmpl_text = NULL;
    lm_tmpl *tmpl = NULL;
    srv_engine *eng = NULL;
    srv_http *http = NULL;
    char err[1024];
    if (app_model_open(&am, model, tokenizer, &dev))
        goto out;
    const char *tsrc;
    if (template_file) {
        if (!(tmpl_text = app_read_file(template_file, NULL)))
            goto out;
        tsrc = tmpl_text;
    } else if (chat_template) {
        tsrc = lm_chat_builtin(chat_template);
    } else if (!(tsrc = lm_model_chat_template(am.model, NULL))) {
        fprintf(stderr, "vkllm: serve: the model has no chat template: chat requests use chatml\n");
        tsrc = lm_chat_builtin("chatml");
    }
    if (lm_tmpl_parse(tsrc, strlen(tsrc), &tmpl, err, sizeof err)) {
        app_fail("serve: the chat template: %s", err);
        goto out;
    }
    srv_engine_opts eo = { .n_parallel = (int)parallel, .n_ctx = (int32_t)n_ctx, .n_batch = (int32_t)n_batch,
                           .n_kv_blocks = (int32_t)kv_blocks, .kv_f32 = kv_f32, .queue_size = (int)queue_size };
    if (srv_engine_create(am.model, &eo, &eng, err, sizeof err)) {
        app_fail("serve: %s", err);
        goto out;
    }
    const char *base = strrchr(model, '/');
    srv_api api = {
        .v = lm_model_vocab(am.model),
        .tmpl = tmpl,
        .n_ctx = srv_engine_n_ctx(eng),
        .kv_positions = srv_engine_kv_positions(eng),
        .model_id = alias ? alias : base ? base + 1 : model,
        .defaults = sp,
        .encoder = lm_model_is_encoder(am.model),
        .embed_ctx = lm_model_hparams(am.model)->n_ctx_train,
        .dim = lm_model_hparams(am.model)->dim,
    };
    srv_http_opts ho = { .host = host, .port = (int)port, .api_key = api_key, .max_body = (size_t)max_body,
                         .timeout_s = (unsigned)timeout, .max_connections = 256 };
    if (srv_http_start(&ho, eng, &api, &http, err, sizeof err)) {
        app_fail("serve: %s", err);
        goto out;
    }
    fprintf(stderr, "vkllm: serve: %s, %ld sequence%s of %d positions, a KV pool of %lld positions, loaded in %.2f s\n",
            lm_model_hparams(am.model)->name, parallel, parallel == 1 ? "" : "s", srv_engine_n_ctx(eng),
            (long long)srv_engine_kv_positions(eng), am.load_s);
    if (api.encoder)
        fprintf(stderr, "vkllm: serve: %s is an encoder: it answers /v1/embeddings, and completions and chat with "
                        "400\n", lm_model_hparams(am.model)->name);
    printf("vkllm: listening on %s\n", srv_http_url(http));
    fflush(stdout);

    int sig = 0;
    sigwait(&stop_set, &sig);
    fprintf(stderr, "vkllm: serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_sigmask(SIG_UNBLOCK, &stop_set, NULL); /* a second one ends the process at once */
    srv_http_stopping(http);
    srv_engine_shutdown(eng);
    srv_http_stop(http);
    http = NULL;
    status = 0;
out:
    srv_http_stop(http);
    srv_engine_destroy(eng);
    lm_tmpl_free(tmpl);
    free(tmpl_text);
    app_model_close(&am);
    return status;
}
