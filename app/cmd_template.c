/* cmd_template.c: `vkllm template -m FILE -f CONVERSATION.json [--add-generation-prompt]`: prints a
 * conversation exactly as a chat template renders it: the model's own (tokenizer.chat_template, or a
 * named variant), a built-in one, or a template file. Reads only the model's metadata: needs no device. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app_model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm template (-m FILE | --template-file T.jinja) -f CONVERSATION.json [options]\n"
            "  -m, --model FILE           GGUF model: its chat template, BOS and EOS texts\n"
            "  -f, --file FILE            the conversation: a JSON list of messages ({\"role\", \"content\"}, content\n"
            "                             a string or a list of text parts), or an object with \"messages\" and\n"
            "                             other variables for the template (\"tools\", \"date_string\", ...); '-': stdin\n"
            "      --add-generation-prompt  end with the start of the assistant's turn\n"
            "      --template-file FILE   render this Jinja template instead of the model's\n"
            "      --chat-template NAME   a built-in template (%s),\n"
            "                             or the model's named variant tokenizer.chat_template.NAME\n"
            "      --tools FILE           a JSON list of tools (OpenAI's shape), passed to the template as `tools`\n"
            "      --bos TEXT, --eos TEXT  bos_token / eos_token (default: the model's, else empty)\n"
            "The rendered text goes to stdout as it is, with no newline added.\n",
            "chatml, llama2, llama3, mistral, gemma, phi3, zephyr, deepseek");
}

int cmd_template(int argc, char **argv)
{
    const char *model = NULL, *conv = NULL, *tmpl_file = NULL, *builtin = NULL, *tools = NULL, *bos = NULL,
               *eos = NULL;
    bool gen = false, bad = false;
    int i = 1;
    for (; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (app_opt(a, "-m", "--model")) bad = !app_arg_str(argc, argv, &i, &model);
        else if (app_opt(a, "-f", "--file")) bad = !app_arg_str(argc, argv, &i, &conv);
        else if (app_opt(a, NULL, "--template-file")) bad = !app_arg_str(argc, argv, &i, &tmpl_file);
        else if (app_opt(a, NULL, "--chat-template")) bad = !app_arg_str(argc, argv, &i, &builtin);
        else if (app_opt(a, NULL, "--tools")) bad = !app_arg_str(argc, argv, &i, &tools);
        else if (app_opt(a, NULL, "--bos")) bad = !app_arg_str(argc, argv, &i, &bos);
        else if (app_opt(a, NULL, "--eos")) bad = !app_arg_str(argc, argv, &i, &eos);
        else if (!strcmp(a, "--add-generation-prompt")) gen = true;
        else
            return app_usage_fail(usage, a[0] == '-' && a[1] ? "template: unknown option '%s'"
                                                              : "template: unexpected argument '%s'", a);
    }
    if (bad) return app_bad_args(usage);
    if (i < argc) return app_usage_fail(usage, "template: unexpected argument '%s'", argv[i]);
    if (!conv) return app_usage_fail(usage, "template: give the conversation with -f FILE");
    if (!model && !tmpl_file && !builtin)
        return app_usage_fail(usage,
                              "template: give a model (-m), a template file (--template-file) or --chat-template NAME");
    if (tmpl_file && builtin)
        return app_usage_fail(usage, "template: --template-file and --chat-template are two templates; give one");

    int rc = 1;
    char err[1024] = "";
    lm_gguf *g = NULL;
    lm_vocab *vocab = NULL;
    lm_tmpl *t = NULL;
    cJSON *conv_json = NULL, *tools_json = NULL;
    char *src_owned = NULL, *ctx_text = NULL, *out = NULL;
    const char *src = NULL, *src_name = NULL;

    if (model) {
        if (app_file_expect(model, APP_FILE_GGUF, "-m")) goto done;
        if (lm_gguf_open(model, &g, err, sizeof err) != LM_OK) {
            app_fail("%s", err);
            goto done;
        }
        if (lm_vocab_from_gguf(g, &vocab, err, sizeof err) != LM_OK) vocab = NULL; /* templates need no vocab */
    }
    if (tmpl_file) {
        size_t n;
        src_owned = app_read_text(tmpl_file, &n);
        if (!src_owned) goto done;
        src = src_owned;
        src_name = tmpl_file;
    } else if (builtin) {
        src = lm_chat_builtin(builtin);
        src_name = builtin;
        if (!src && g) {
            char key[256];
            snprintf(key, sizeof key, "tokenizer.chat_template.%s", builtin);
            size_t len;
            if (lm_gguf_get_str(g, key, &src, &len) != LM_OK) src = NULL;
        }
        if (!src) {
            app_fail("template: no built-in template '%s'%s (built-ins: chatml, llama2, llama3, mistral, gemma, phi3, "
                     "zephyr, deepseek)",
                     builtin, g ? " and the model has no tokenizer.chat_template of that name" : "");
            goto done;
        }
    } else {
        size_t len;
        if (lm_gguf_get_str(g, "tokenizer.chat_template", &src, &len) != LM_OK) {
            app_fail("%s: the model carries no chat template (tokenizer.chat_template); pick one with --chat-template "
                     "NAME (chatml, llama2, llama3, mistral, gemma, phi3, zephyr, deepseek) or --template-file FILE",
                     model);
            goto done;
        }
        src_name = "the model's chat template";
    }

    if (lm_tmpl_parse(src, strlen(src), &t, err, sizeof err) != LM_OK) {
        app_fail("%s: %s", src_name, err);
        goto done;
    }

    /* The context is the conversation file's own text (so numbers and key order reach the template as
     * written), with the tokens' texts before it and the flags after it: a later key wins. cJSON checks
     * the shape first. */
    size_t conv_len;
    char *conv_text = app_read_text(conv, &conv_len);
    if (!conv_text) goto done;
    const char *end = NULL;
    conv_json = cJSON_ParseWithOpts(conv_text, &end, true);
    if (!conv_json) {
        size_t off = end ? (size_t)(end - conv_text) : 0;
        int line = 1;
        for (size_t i = 0; i < off && i < conv_len; i++) line += conv_text[i] == '\n';
        app_fail("%s: not valid JSON (line %d, byte %zu)", conv, line, off);
        free(conv_text);
        goto done;
    }
    const cJSON *msgs = cJSON_IsArray(conv_json) ? conv_json : cJSON_GetObjectItemCaseSensitive(conv_json, "messages");
    if (!cJSON_IsArray(msgs)) {
        app_fail("%s: expected a JSON list of messages, or an object with a \"messages\" list", conv);
        free(conv_text);
        goto done;
    }
    int mi = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, mi++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            app_fail("%s: message %d: expected an object with a \"role\" string", conv, mi);
            free(conv_text);
            goto done;
        }
    }
    char *tools_text = NULL;
    if (tools) {
        size_t tn;
        tools_text = app_read_text(tools, &tn);
        tools_json = tools_text ? cJSON_ParseWithLength(tools_text, tn) : NULL;
        if (!tools_json || !cJSON_IsArray(tools_json)) {
            if (tools_text) app_fail("%s: expected a JSON list of tools", tools);
            free(tools_text);
            free(conv_text);
            goto done;
        }
    }
    const char *bos_text = bos, *eos_text = eos;
    if (vocab && !bos_text && lm_vocab_bos(vocab) >= 0) bos_text = lm_token_text(vocab, lm_vocab_bos(vocab), NULL);
    if (vocab && !eos_text && lm_vocab_eos(vocab) >= 0) eos_text = lm_token_text(vocab, lm_vocab_eos(vocab), NULL);
    cJSON *head = cJSON_CreateObject(), *tail = cJSON_CreateObject();
    bool ok = head && tail && cJSON_AddStringToObject(head, "bos_token", bos_text ? bos_text : "") &&
              cJSON_AddStringToObject(head, "eos_token", eos_text ? eos_text : "") &&
              cJSON_AddBoolToObject(tail, "add_generation_prompt", gen) &&
              (!bos || cJSON_AddStringToObject(tail, "bos_token", bos)) &&
              (!eos || cJSON_AddStringToObject(tail, "eos_token", eos));
    char *head_text = ok ? cJSON_PrintUnformatted(head) : NULL, *tail_text = ok ? cJSON_PrintUnformatted(tail) : NULL;
    cJSON_Delete(head);
    cJSON_Delete(tail);
    /* the inside of the file's object: from after its '{' to before its '}' */
    const char *body = conv_text, *body_end = conv_text + conv_len;
    bool is_list = cJSON_IsArray(conv_json);
    if (!is_list) {
        body = strchr(conv_text, '{') + 1;
        while (body_end > body && body_end[-1] != '}') body_end--;
        body_end--;
    }
    size_t cap = conv_len + (tools_text ? strlen(tools_text) : 0) + (head_text ? strlen(head_text) : 0) +
                 (tail_text ? strlen(tail_text) : 0) + 64;
    ctx_text = head_text && tail_text ? malloc(cap) : NULL;
    if (ctx_text) {
        /* head "{...}" without its '}', then the conversation, then tail without its '{' */
        snprintf(ctx_text, cap, "%.*s, %s%.*s%s%s%s, %s", (int)(strlen(head_text) - 1), head_text,
                 is_list ? "\"messages\": " : "", (int)(body_end - body), body, tools_text ? ", \"tools\": " : "",
                 tools_text ? tools_text : "", "", tail_text + 1);
    }
    free(head_text);
    free(tail_text);
    free(tools_text);
    free(conv_text);
    if (!ctx_text) {
        app_fail("out of memory");
        goto done;
    }
    size_t out_len = 0;
    if (lm_tmpl_render(t, ctx_text, strlen(ctx_text), &out, &out_len, err, sizeof err) != LM_OK) {
        app_fail("%s: %s", src_name, err);
        goto done;
    }
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) {
        app_fail("template: cannot write the output");
        goto done;
    }
    rc = 0;
done:
    free(out);
    free(ctx_text);
    cJSON_Delete(conv_json);
    cJSON_Delete(tools_json);
    free(src_owned);
    lm_tmpl_free(t);
    lm_vocab_free(vocab);
    lm_gguf_close(g);
    return rc;
}
