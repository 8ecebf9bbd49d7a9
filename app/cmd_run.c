/* cmd_run.c: `vkllm run -m FILE -p PROMPT`: prints the prompt, then streams the generated text; load
 * time and prompt and generation speed go to stderr. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app_model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm run -m FILE [-p PROMPT | -f FILE] [options]\n"
            "  -m, --model FILE       GGUF model (or a llama2.c checkpoint with --tokenizer)\n"
            "  -z, --tokenizer FILE   llama2.c tokenizer.bin for a llama2.c checkpoint\n"
            "  -p, --prompt TEXT      prompt (default: empty, generation starts from BOS)\n"
            "  -f, --file FILE        read the prompt from a file\n"
            "  -n, --n-predict N      tokens to generate (default 128; -1: until the context is full)\n"
            "  -c, --ctx-size N       context positions (default: the model's, at most 4096)\n"
            "  -b, --batch-size N     prompt tokens per prefill pass (default 256)\n");
    fputs(app_sampling_usage, f);
    fprintf(f,
            "      --kv-f32           keep the KV cache in f32 (twice the memory of the default f16)\n"
            "      --profile          time the last decode step's kernels on the GPU (to stderr)\n"
            "      --no-bos           do not add BOS (and EOS) even when the vocabulary asks for it\n"
            "      --parse-special    special-token texts in the prompt become their ids\n"
            "      --device N         Vulkan device (see `vkllm devices`; or VKLLM_DEVICE=N)\n"
            "      --validation       enable the Khronos validation layer\n");
}

static int write_errno; /* why the last write to stdout failed */

/* Writes what the detokeniser has ready, flushing so the text streams; false once a write failed (a full
 * disk, a closed pipe): generation stops there. */
static bool emit(const char *s, size_t n)
{
    if (n && (fwrite(s, 1, n, stdout) != n || fflush(stdout))) {
        write_errno = errno;
        return false;
    }
    return !ferror(stdout);
}

/* NaN or infinite logits (a damaged model file, an overflow in the forward pass) would be sampled as if
 * they meant something: checked on the first step's logits, and on every step's when they are copied
 * out anyway (sampling), before the sampler sees them. */
static bool logits_finite(const float *l, int32_t n)
{
    float acc = 0;
    for (int32_t i = 0; i < n; i++)
        acc += l[i] * 0.0f; /* NaN when any is NaN or infinite */
    return acc == 0;
}

int cmd_run(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *prompt = NULL, *prompt_file = NULL;
    long n_predict = 128, n_ctx = 0, n_batch = 0;
    bool kv_f32 = false, no_bos = false, parse_special = false, bad = false;
    app_device_opts dev = { .device = -1 };
    lm_sampler_params sp;
    lm_sampler_defaults(&sp);

    int i = 1;
    for (; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (app_input_flag(argc, argv, &i, &model, &tokenizer, &prompt, &prompt_file, &bad))
            continue;
        else if (app_opt(a, "-n", "--n-predict"))
            bad = !app_arg_int(argc, argv, &i, &n_predict, -1, 1 << 30);
        else if (app_opt(a, "-c", "--ctx-size"))
            bad = !app_arg_int(argc, argv, &i, &n_ctx, 0, 1 << 24);
        else if (app_opt(a, "-b", "--batch-size"))
            bad = !app_arg_int(argc, argv, &i, &n_batch, 1, 1 << 16);
        else if (app_sampling_flag("run", argc, argv, &i, &sp, &bad))
            continue;
        else if (!strcmp(a, "--kv-f32"))
            kv_f32 = true;
        else if (!strcmp(a, "--kv-f16"))
            kv_f32 = false; /* the default; kept for scripts that ask for it */
        else if (!strcmp(a, "--profile"))
            dev.profiling = true;
        else if (!strcmp(a, "--no-bos"))
            no_bos = true;
        else if (!strcmp(a, "--parse-special"))
            parse_special = true;
        else if (!app_device_flag(argc, argv, &i, &dev, &bad))
            return app_usage_fail(usage, a[0] == '-' && a[1] ? "run: unknown option '%s'"
                                                              : "run: unexpected argument '%s'", a);
    }
    if (bad)
        return app_bad_args(usage);
    if (i < argc)
        return app_usage_fail(usage, "run: unexpected argument '%s'", argv[i]);
    if (!model)
        return app_usage_fail(usage, "run: -m FILE is required");
    if (prompt && prompt_file)
        return app_usage_fail(usage, "run: give the prompt with one of -p TEXT or -f FILE, not both");
    char msg[256];
    if (lm_sampler_params_check(&sp, msg, sizeof msg))
        return app_fail("run: %s", msg);
    char *file_text = NULL;
    if (prompt_file) {
        if (!(file_text = app_read_text(prompt_file, NULL)))
            return 1;
        prompt = file_text;
    }
    if (!prompt)
        prompt = "";

    int status = 1;
    app_model am = { 0 };
    lm_session *s = NULL;
    lm_sampler *smp = NULL;
    lm_detok *dt = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    char err[1024];
    if (app_model_open(&am, model, tokenizer, &dev))
        goto out;
    if (lm_model_is_encoder(am.model)) {
        app_fail("run: %s is an encoder model: it computes embeddings (`vkllm embed`) and cannot generate text", model);
        goto out;
    }
    const lm_vocab *v = lm_model_vocab(am.model);
    const lm_hparams *hp = lm_model_hparams(am.model);
    int64_t n_ids;
    /* BOS / EOS as the vocab asks: lm_tokenize decides, so `vkllm tokenize` shows the same ids */
    unsigned warn = 0;
    if (lm_tokenize_w(v, prompt, strlen(prompt), !no_bos, parse_special, &ids, &n_ids, &warn, err, sizeof err)) {
        app_fail("prompt: %s", err);
        goto out;
    }
    if (warn & LM_TOKENIZE_WARN_BOS_TWICE)
        fprintf(stderr, "vkllm: warning: the prompt starts with the BOS text; BOS was not added a second time\n");
    /* an empty prompt still needs a first token: BOS */
    if (n_ids == 0) {
        if (lm_vocab_bos(v) < 0) {
            app_fail("an empty prompt needs a BOS token, and this vocabulary has none");
            goto out;
        }
        int32_t *w = realloc(ids, sizeof *ids * (size_t)(n_ids + 1));
        if (!w) {
            app_fail("out of memory");
            goto out;
        }
        ids = w;
        memmove(ids + 1, ids, sizeof *ids * (size_t)n_ids);
        ids[0] = lm_vocab_bos(v);
        n_ids++;
    }
    lm_session_opts so = { .n_ctx = (int32_t)n_ctx, .n_batch = (int32_t)n_batch, .kv_f32 = kv_f32 };
    if (lm_session_create(am.model, &so, &s, err, sizeof err)) {
        app_fail("%s", err);
        goto out;
    }
    if (n_ids >= lm_session_n_ctx(s)) {
        app_fail("the prompt is %lld tokens, the context only %d (raise -c)", (long long)n_ids, lm_session_n_ctx(s));
        goto out;
    }
    if (lm_sampler_create(&sp, hp->n_vocab, &smp, err, sizeof err)) {
        app_fail("sampling: %s", err);
        goto out;
    }
    if (lm_detok_create(v, false, &dt)) {
        app_fail("out of memory");
        goto out;
    }
    if (sp.seed == LM_SAMPLER_SEED_RANDOM)
        fprintf(stderr, "vkllm: seed %llu (pass --seed %llu to replay this run)\n",
                (unsigned long long)lm_sampler_seed(smp), (unsigned long long)lm_sampler_seed(smp));
    bool greedy = lm_sampler_is_greedy(&sp);
    if (!(logits = malloc(sizeof *logits * (size_t)hp->n_vocab))) {
        app_fail("out of memory");
        goto out;
    }

    /* the prompt as given, then the generated text as it comes */
    bool wrote = emit(prompt, strlen(prompt));
    for (int64_t i = 0; i < n_ids; i++)
        lm_sampler_accept(smp, ids[i]);
    double t0 = app_now();
    /* all prompt tokens but the last go through prefill; the last is the first decode step */
    if (n_ids > 1 && lm_session_eval(s, ids, n_ids - 1, NULL, false, err, sizeof err)) {
        app_fail("%s", err);
        goto out;
    }
    double t_prompt = app_now() - t0;
    int32_t cur = ids[n_ids - 1];
    int64_t n_gen = 0;
    double t1 = app_now(), ttft = -1; /* time to first token: from the start of the prompt to its first token */
    /* the detokeniser must see the prompt's last token so that word boundaries come out right */
    const char *piece;
    size_t plen;
    lm_detok_push(dt, cur, &piece, &plen);
    while (wrote && (n_predict < 0 || n_gen < n_predict)) {
        if (lm_session_n_past(s) >= lm_session_n_ctx(s)) {
            fprintf(stderr, "\nvkllm: the context is full (%d positions)\n", lm_session_n_ctx(s));
            break;
        }
        int32_t next;
        /* greedy: the argmax comes from the device, the logits only on the first step, to be checked */
        float *want = !greedy || n_gen == 0 ? logits : NULL;
        if (lm_session_step(s, cur, want, &next, err, sizeof err)) {
            app_fail("%s", err);
            goto out;
        }
        if (want && !logits_finite(logits, hp->n_vocab)) {
            app_fail("the model's logits are not finite (NaN or infinite) at position %d: the model file is damaged "
                     "or its weights overflow",
                     lm_session_n_past(s) - 1);
            goto out;
        }
        if (!greedy)
            next = lm_sampler_sample(smp, logits);
        if (ttft < 0)
            ttft = app_now() - t0;
        lm_sampler_accept(smp, next);
        n_gen++;
        /* llama2.c checkpoints (a separate tokenizer.bin) end at BOS, as llama2.c's run.c does */
        if (lm_vocab_is_eog(v, next) || (tokenizer && next == lm_vocab_bos(v)))
            break;
        if (lm_detok_push(dt, next, &piece, &plen) == LM_OK)
            wrote = emit(piece, plen);
        cur = next;
    }
    if (wrote && lm_detok_flush(dt, &piece, &plen) == LM_OK)
        wrote = emit(piece, plen);
    double t_gen = app_now() - t1;
    if (!wrote || !emit("\n", 1)) {
        app_fail("run: cannot write the output%s%s", write_errno ? ": " : "", write_errno ? strerror(write_errno) : "");
        goto out;
    }
    fprintf(stderr, "\nvkllm: load %.2f s | prompt %lld tokens, %.1f tokens/s | first token after %.0f ms | generation "
                    "%lld tokens, %.1f tokens/s\n",
            am.load_s, (long long)n_ids, n_ids > 1 && t_prompt > 0 ? (n_ids - 1) / t_prompt : 0.0,
            ttft >= 0 ? ttft * 1e3 : 0.0, (long long)n_gen, t_gen > 0 ? n_gen / t_gen : 0.0);
    uint64_t kv_bytes, scratch_bytes;
    lm_session_memory(s, &kv_bytes, &scratch_bytes);
    fprintf(stderr, "vkllm: device memory %.1f MiB: weights %.1f, KV cache %.1f (%s), activations and logits %.1f\n",
            (lm_model_device_bytes(am.model) + kv_bytes + scratch_bytes) / 1048576.0,
            lm_model_device_bytes(am.model) / 1048576.0, kv_bytes / 1048576.0, kv_f32 ? "f32" : "f16",
            scratch_bytes / 1048576.0);
    if (dev.profiling) {
        app_profile_print(s, true, "the last prefill pass on the GPU", 0, 0);
        app_profile_print(s, false, "one decode step on the GPU", 0, 0);
    }
    status = 0;
out:
    free(file_text);
    free(logits);
    free(ids);
    lm_detok_free(dt);
    lm_sampler_free(smp);
    lm_session_free(s);
    app_model_close(&am);
    return status;
}
