/* test_cli_template: `vkllm template` ($VKLLM_BIN) prints a conversation exactly as the chat template
 * renders it: the model's own (stories260K with a template added by our GGUF writer), a template file, a
 * built-in; and refuses bad input with status 1 and a message naming the line and column. */
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *bin;
static char dir[] = "/tmp/vkllm-test-template-XXXXXX";
static char model[256], conv[256], tmpl[256], bad[256];

static bool write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fputs(s, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* `vkllm template ARGS`: stdout into out, stderr into err (when err is not NULL); the exit status. */
static int run(const char *args, char *out, size_t cap, char *err, size_t errcap)
{
    char cmd[2048], errpath[300];
    snprintf(errpath, sizeof errpath, "%s/stderr", dir);
    snprintf(cmd, sizeof cmd, "'%s' template %s 2>'%s'", bin, args, errpath);
    int st = tu_run(cmd, out, cap);
    if (err) {
        size_t n;
        char *e = tu_read_file(errpath, &n);
        snprintf(err, errcap, "%s", e ? e : "");
        free(e);
    }
    return st;
}

int main(void)
{
    bin = getenv("VKLLM_BIN");
    CHECK(bin, "VKLLM_BIN is not set");
    CHECK(mkdtemp(dir), "mkdtemp");
    if (!bin || tu_failures) return tu_finish("test_cli_template");
    snprintf(model, sizeof model, "%s/chat.gguf", dir);
    snprintf(conv, sizeof conv, "%s/conv.json", dir);
    snprintf(tmpl, sizeof tmpl, "%s/t.jinja", dir);
    snprintf(bad, sizeof bad, "%s/bad.jinja", dir);
    CHECK(tu_chat_model(TU_CHAT_TEMPLATE, model), "cannot write the chat model");
    CHECK(write_file(conv, "[{\"role\": \"system\", \"content\": \"Be nice.\"}, {\"role\": \"user\", \"content\": \"Hi \xe4\xbd\xa0\xe5\xa5\xbd\"}]"),
          "conv");
    CHECK(write_file(tmpl, "{{ bos_token }}{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}\n{% endfor %}"
                           "{% if add_generation_prompt %}[ASSISTANT]{% endif %}"),
          "template");
    CHECK(write_file(bad, "ok\n{% for m in messages %}\n  {{ m.content | nosuchfilter }}\n{% endfor %}"), "bad");

    char out[8192], err[2048], args[1024];
    /* the model's own template, without and with the generation prompt: byte for byte */
    snprintf(args, sizeof args, "-m '%s' -f '%s'", model, conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "model template: %s", err);
    CHECK(!strcmp(out, "system: Be nice.\nuser: Hi \xe4\xbd\xa0\xe5\xa5\xbd\n"), "model template: got \"%s\"", out);
    snprintf(args, sizeof args, "-m '%s' -f '%s' --add-generation-prompt", model, conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "model template +gen: %s", err);
    CHECK(!strcmp(out, "system: Be nice.\nuser: Hi \xe4\xbd\xa0\xe5\xa5\xbd\nassistant:"), "model template +gen: got \"%s\"", out);
    /* a template file; bos_token is the model's BOS text when -m is given, or --bos */
    snprintf(args, sizeof args, "--template-file '%s' -f '%s' --bos '<B>' --add-generation-prompt", tmpl, conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "template file: %s", err);
    CHECK(!strcmp(out, "<B>[SYSTEM] Be nice.\n[USER] Hi \xe4\xbd\xa0\xe5\xa5\xbd\n[ASSISTANT]"), "template file: got \"%s\"", out);
    /* a built-in, on a model without a template of its own */
    snprintf(args, sizeof args, "-m '%s' --chat-template chatml -f '%s' --add-generation-prompt",
             tu_model_path("gguf/stories260K.gguf"), conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "built-in: %s", err);
    CHECK(!strcmp(out, "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi \xe4\xbd\xa0\xe5\xa5\xbd<|im_end|>\n"
                       "<|im_start|>assistant\n"),
          "built-in: got \"%s\"", out);

    /* errors: status 1 and a message that says what is wrong */
    snprintf(args, sizeof args, "-m '%s' -f '%s'", tu_model_path("gguf/stories260K.gguf"), conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 1 && strstr(err, "no chat template"), "no template: %s", err);
    snprintf(args, sizeof args, "--template-file '%s' -f '%s'", bad, conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 1 && strstr(err, "line 3, column 16: no filter named 'nosuchfilter'"),
          "bad template: %s", err);
    snprintf(args, sizeof args, "--chat-template nosuch -f '%s'", conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 1 && strstr(err, "no built-in template 'nosuch'"), "bad name: %s", err);
    CHECK(write_file(conv, "[{\"role\": \"user\", \"content\": \"x\"}"), "conv");
    snprintf(args, sizeof args, "--template-file '%s' -f '%s'", tmpl, conv);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 1 && strstr(err, "not valid JSON"), "bad JSON: %s", err);
    CHECK(write_file(conv, "{\"messages\": [{\"content\": \"x\"}]}"), "conv");
    CHECK(run(args, out, sizeof out, err, sizeof err) == 1 && strstr(err, "message 0"), "no role: %s", err);
    /* an object with more variables than messages reaches the template */
    CHECK(write_file(conv, "{\"messages\": [], \"greeting\": \"hello\", \"n\": 1.0}"), "conv");
    CHECK(write_file(tmpl, "{{ greeting }} {{ n }} {{ messages | length }}"), "template");
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0 && !strcmp(out, "hello 1.0 0"), "variables: \"%s\" %s", out, err);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return tu_finish("test_cli_template");
}
