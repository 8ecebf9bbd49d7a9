/* test_model_meta.c: a loaded model keeps its file's metadata (lm_model_gguf, lm_model_chat_template).
 *
 * stories260K.gguf is copied by the project's GGUF writer with a default chat template and a named one
 * added; the copy is loaded and every key of the source must read back from the model with the same
 * type and count, the templates must be the strings written, an absent name gives NULL, and a llama2.c
 * checkpoint has no GGUF (NULL). The model still generates after its tensor pages were dropped. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm.h"
#include "util.h"

static const char *const TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}</s>\n{% endfor %}";
static const char *const TOOL_TEMPLATE = "{{ bos_token }}{% if tools %}tools{% endif %}";

/* src plus the two templates, at path */
static bool write_copy(const lm_gguf *src, const char *path)
{
    char err[512];
    lm_gguf_writer *w = NULL;
    if (lm_gguf_writer_create(path, &w, err, sizeof err)) {
        CHECK(0, "writer: %s", err);
        return false;
    }
    bool ok = true;
    for (int64_t i = 0; i < lm_gguf_n_kv(src) && ok; i++)
        ok = lm_gguf_writer_copy_kv(w, src, i) == LM_OK;
    ok = ok && lm_gguf_writer_set_str(w, "tokenizer.chat_template", TEMPLATE) == LM_OK &&
         lm_gguf_writer_set_str(w, "tokenizer.chat_template.tool_use", TOOL_TEMPLATE) == LM_OK;
    for (int64_t i = 0; i < lm_gguf_n_tensors(src) && ok; i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(src, i, &t);
        ok = lm_gguf_writer_add_tensor(w, t.name, t.n_dims, t.ne, t.type, t.data, t.size) == LM_OK;
    }
    if (!ok) {
        CHECK(0, "writing the copy: %s", lm_gguf_writer_errmsg(w));
        lm_gguf_writer_abort(w);
        return false;
    }
    int rc = lm_gguf_writer_finish(w, err, sizeof err);
    CHECK(rc == LM_OK, "finish: %s", err);
    return rc == LM_OK;
}

int main(void)
{
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_model_meta");
    char err[512], path[] = "/tmp/vkllm-meta-XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0, "temporary file");
    if (fd >= 0)
        close(fd);
    lm_gguf *src = NULL;
    CHECK(lm_gguf_open(tu_model_path("gguf/stories260K.gguf"), &src, err, sizeof err) == LM_OK, "%s", err);
    lm_model *m = NULL;
    if (src && fd >= 0 && write_copy(src, path)) {
        CHECK(lm_model_load(g.ctx, path, NULL, &m, err, sizeof err) == LM_OK, "load: %s", err);
    }
    if (m) {
        const lm_gguf *mg = lm_model_gguf(m);
        CHECK(mg != NULL, "the model has no GGUF");
        for (int64_t i = 0; mg && i < lm_gguf_n_kv(src); i++) {
            lm_gguf_kv_info a, b;
            lm_gguf_kv(src, i, &a);
            int64_t j = lm_gguf_find(mg, a.key);
            CHECK(j >= 0 && lm_gguf_kv(mg, j, &b) == LM_OK && a.type == b.type && a.n == b.n,
                  "key %s is not in the model as in the file", a.key);
        }
        uint32_t layers = 0;
        CHECK(mg && lm_gguf_get_u32(mg, "llama.block_count", &layers) == LM_OK && layers == 5,
              "llama.block_count %u", layers);
        const char *t = lm_model_chat_template(m, NULL), *tt = lm_model_chat_template(m, "tool_use");
        CHECK(t && !strcmp(t, TEMPLATE), "default template: %s", t ? t : "(none)");
        CHECK(tt && !strcmp(tt, TOOL_TEMPLATE), "tool_use template: %s", tt ? tt : "(none)");
        CHECK(lm_model_chat_template(m, "rag") == NULL, "a template that is not there");
        /* the weights were uploaded before the pages were dropped: generation is as usual */
        lm_session *s = NULL;
        lm_session_opts so = { .n_ctx = 16 };
        CHECK(lm_session_create(m, &so, &s, err, sizeof err) == LM_OK, "session: %s", err);
        int32_t next = -1, bos = 1;
        CHECK(s && lm_session_step(s, bos, NULL, &next, err, sizeof err) == LM_OK && next >= 0, "step: %s", err);
        lm_session_free(s);
        lm_model_free(m);
    }
    lm_model *l2 = NULL;
    char ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s", tu_model_path("llama2c/stories260K.bin")); /* tu_model_path: one buffer */
    CHECK(lm_model_load_llama2c(g.ctx, ckpt, tu_model_path("llama2c/tok512.bin"), NULL, &l2, err, sizeof err) == LM_OK,
          "llama2.c: %s", err);
    if (l2) {
        CHECK(lm_model_gguf(l2) == NULL && lm_model_chat_template(l2, NULL) == NULL, "a llama2.c model has no GGUF");
        lm_model_free(l2);
    }
    lm_gguf_close(src);
    unlink(path);
    tu_gpu_close(&g);
    return tu_finish("test_model_meta");
}
