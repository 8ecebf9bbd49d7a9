/* chat_window_engine.c: the window's model and conversation. Loading a model and generating a reply
 * run on a worker thread (one job at a time), so the window stays responsive; the worker appends the
 * reply's text to the message list under the mutex and wakes the window with glfwPostEmptyEvent().
 * Every failure becomes a message in the list: the window stays usable. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <GLFW/glfw3.h>

#include "app_model.h"
#include "chat_window.h"

static void wake(void) { glfwPostEmptyEvent(); }

/* ---------------------------------------------------------------- messages (callers hold mu) */

static bool msg_append(cw_msg *m, const char *s, size_t n)
{
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < m->len + n + 1)
            cap *= 2;
        char *p = realloc(m->text, cap);
        if (!p)
            return false;
        m->text = p;
        m->cap = cap;
    }
    memcpy(m->text + m->len, s, n);
    m->len += n;
    m->text[m->len] = 0;
    return true;
}

static int msg_push(cw_engine *e, int role, const char *s, size_t n)
{
    if (e->n_msgs == e->cap_msgs) {
        int cap = e->cap_msgs ? e->cap_msgs * 2 : 16;
        cw_msg *p = realloc(e->msgs, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        e->msgs = p;
        e->cap_msgs = cap;
    }
    cw_msg *m = &e->msgs[e->n_msgs];
    memset(m, 0, sizeof *m);
    m->role = role;
    m->lay_w = -1;
    if (!msg_append(m, s, n))
        return -1;
    return e->n_msgs++;
}

void cw_engine_notice(cw_engine *e, int role, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&e->mu);
    msg_push(e, role, buf, strlen(buf));
    pthread_mutex_unlock(&e->mu);
    wake();
}

/* ---------------------------------------------------------------- life */

void cw_engine_init(cw_engine *e, const app_chat_opts *o)
{
    memset(e, 0, sizeof *e);
    e->o = o;
    pthread_mutex_init(&e->mu, NULL);
    e->reply_msg = -1;
}

static void free_model(cw_engine *e)
{
    lm_chat_free(e->chat);
    lm_session_free(e->sess);
    lm_model_free(e->model);
    e->chat = NULL;
    e->sess = NULL;
    e->model = NULL;
    free(e->system_applied);
    e->system_applied = NULL;
}

static void join(cw_engine *e)
{
    if (e->job == CW_JOB_NONE)
        return;
    pthread_join(e->thread, NULL);
    e->job = CW_JOB_NONE;
    e->finished = 0;
    free(e->job_path);
    free(e->job_text);
    free(e->job_system);
    e->job_path = e->job_text = e->job_system = NULL;
}

void cw_engine_free(cw_engine *e)
{
    e->abort = 1;
    join(e);
    free_model(e);
    rt_ctx_destroy(e->ctx);
    rt_instance_destroy(e->inst);
    for (int i = 0; i < e->n_msgs; i++) {
        free(e->msgs[i].text);
        cw_layout_free(&e->msgs[i].lay);
    }
    free(e->msgs);
    pthread_mutex_destroy(&e->mu);
    memset(e, 0, sizeof *e);
}

void cw_engine_poll(cw_engine *e)
{
    if (e->job != CW_JOB_NONE && e->finished)
        join(e);
}

bool cw_engine_busy(const cw_engine *e) { return e->job != CW_JOB_NONE; }

bool cw_engine_ready(const cw_engine *e) { return e->job != CW_JOB_LOAD && e->chat != NULL; }

void cw_engine_stop(cw_engine *e)
{
    if (e->job == CW_JOB_REPLY)
        e->abort = 1;
}

static bool start(cw_engine *e, int job, void *(*fn)(void *))
{
    e->job = job;
    e->finished = 0;
    e->abort = 0;
    if (pthread_create(&e->thread, NULL, fn, e)) {
        e->job = CW_JOB_NONE;
        cw_engine_notice(e, CW_ERROR, "cannot start a thread");
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- loading */

static void on_validation(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "vkllm: validation: %s\n", msg);
}

static void on_progress(void *user, float done)
{
    cw_engine *e = user;
    int pct = (int)(done * 100);
    if (pct == e->last_pct)
        return;
    pthread_mutex_lock(&e->mu);
    e->last_pct = pct;
    e->load_frac = done;
    pthread_mutex_unlock(&e->mu);
    wake();
}

static const char *base_name(const char *p)
{
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

/* The chat template the flags ask for (NULL: the model's own); *tmpl_owned is to be freed. */
static bool template_src(cw_engine *e, const char **src, char **owned, char *err, size_t errlen)
{
    *src = NULL;
    *owned = NULL;
    if (e->o->template_file) {
        FILE *f = fopen(e->o->template_file, "rb");
        char *buf = NULL;
        long n = -1;
        if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (f)
            fclose(f);
        if (!buf) {
            snprintf(err, errlen, "cannot read the template file %s", e->o->template_file);
            return false;
        }
        buf[n] = 0;
        *src = *owned = buf;
    } else if (e->o->chat_template) {
        *src = lm_chat_builtin(e->o->chat_template);
        if (!*src) {
            snprintf(err, errlen, "unknown chat template '%s'", e->o->chat_template);
            return false;
        }
    }
    return true;
}

static void *load_main(void *arg)
{
    cw_engine *e = arg;
    const app_chat_opts *o = e->o;
    char err[1024] = "";
    double t0 = app_now();
    if (!e->inst) {
        rt_instance_desc id = { .validation = o->dev.validation, .on_message = on_validation };
        if (rt_instance_create(&id, &e->inst)) {
            snprintf(err, sizeof err, "Vulkan: %s", rt_instance_errmsg(e->inst));
            rt_instance_destroy(e->inst);
            e->inst = NULL;
            goto fail;
        }
    }
    if (!e->ctx) {
        rt_ctx_desc cd = { .device = o->dev.device };
        if (rt_ctx_create(e->inst, &cd, &e->ctx)) {
            snprintf(err, sizeof err, "device: %s", rt_ctx_errmsg(e->ctx));
            rt_ctx_destroy(e->ctx);
            e->ctx = NULL;
            goto fail;
        }
        pthread_mutex_lock(&e->mu);
        snprintf(e->device_name, sizeof e->device_name, "%s", rt_ctx_device(e->ctx)->name);
        pthread_mutex_unlock(&e->mu);
    }
    free_model(e);
    pthread_mutex_lock(&e->mu);
    e->model_name[0] = 0;
    e->n_past = e->n_ctx = 0;
    e->tok_s = 0;
    pthread_mutex_unlock(&e->mu);

    const char *path = e->job_path;
    size_t n = strlen(path);
    bool llama2c = n > 4 && !strcmp(path + n - 4, ".bin");
    lm_load_opts lo = { .progress = on_progress, .user = e };
    int rc;
    if (llama2c && !o->tokenizer) {
        snprintf(err, sizeof err, "%s looks like a llama2.c checkpoint: start the window with -z TOKENIZER", path);
        goto fail;
    }
    if (llama2c)
        rc = lm_model_load_llama2c(e->ctx, path, o->tokenizer, &lo, &e->model, err, sizeof err);
    else
        rc = lm_model_load(e->ctx, path, &lo, &e->model, err, sizeof err);
    if (rc)
        goto fail;
    lm_session_opts so = { .n_ctx = o->n_ctx, .n_batch = o->n_batch, .kv_f32 = o->kv_f32 };
    if (lm_session_create(e->model, &so, &e->sess, err, sizeof err))
        goto fail;
    const char *src;
    char *owned;
    if (!template_src(e, &src, &owned, err, sizeof err))
        goto fail;
    lm_chat_opts co = { .template_src = src };
    rc = lm_chat_create(e->model, e->sess, &co, &e->chat, err, sizeof err);
    free(owned);
    if (rc)
        goto fail;
    const lm_hparams *hp = lm_model_hparams(e->model);
    pthread_mutex_lock(&e->mu);
    snprintf(e->model_name, sizeof e->model_name, "%s", hp->name[0] ? hp->name : base_name(path));
    snprintf(e->model_file, sizeof e->model_file, "%s", base_name(path));
    e->n_past = lm_session_n_past(e->sess);
    e->n_ctx = lm_session_n_ctx(e->sess);
    e->load_failed = false;
    pthread_mutex_unlock(&e->mu);
    double np = (double)hp->n_params;
    cw_engine_notice(e, CW_NOTICE, "Loaded %s (%.*f%s parameters, %s) on %s in %.1f s", e->model_name,
                     np >= 1e9 ? 1 : 0, np >= 1e9 ? np / 1e9 : np >= 1e6 ? np / 1e6 : np / 1e3,
                     np >= 1e9 ? "B" : np >= 1e6 ? "M" : "K", lm_gguf_type_name(hp->weight_type) ?
                     lm_gguf_type_name(hp->weight_type) : "?", e->device_name, app_now() - t0);
    e->finished = 1;
    wake();
    return NULL;
fail:
    free_model(e);
    pthread_mutex_lock(&e->mu);
    e->model_name[0] = 0;
    e->load_failed = true;
    pthread_mutex_unlock(&e->mu);
    cw_engine_notice(e, CW_ERROR, "The model did not load: %s\nType another path at the top and press Open, or drop "
                                  "a model file on this window.", err);
    e->finished = 1;
    wake();
    return NULL;
}

bool cw_engine_load(cw_engine *e, const char *path)
{
    if (cw_engine_busy(e)) {
        cw_engine_notice(e, CW_NOTICE, "Busy: stop the reply first, then open the model again.");
        return false;
    }
    if (!path[0])
        return false;
    e->job_path = strdup(path);
    if (!e->job_path)
        return false;
    e->last_pct = -1;
    e->load_frac = 0;
    return start(e, CW_JOB_LOAD, load_main);
}

/* ---------------------------------------------------------------- replies */

static bool on_text(void *user, const char *text, size_t len)
{
    cw_engine *e = user;
    pthread_mutex_lock(&e->mu);
    if (e->reply_msg >= 0 && e->reply_msg < e->n_msgs) {
        cw_msg *m = &e->msgs[e->reply_msg];
        while (m->len == 0 && len > 0 && (*text == ' ' || *text == '\n')) { /* the reply starts at its text */
            text++;
            len--;
        }
        msg_append(m, text, len);
    }
    pthread_mutex_unlock(&e->mu);
    wake();
    return true;
}

/* A reply that gave no text leaves no empty bubble (mu held); true when it was empty. */
static bool drop_empty_reply(cw_engine *e)
{
    int i = e->reply_msg;
    e->reply_msg = -1;
    if (i < 0 || i != e->n_msgs - 1 || e->msgs[i].len > 0)
        return false;
    free(e->msgs[i].text);
    cw_layout_free(&e->msgs[i].lay);
    e->n_msgs--;
    return true;
}

static void *reply_main(void *arg)
{
    cw_engine *e = arg;
    char err[1024] = "";
    int n0 = lm_chat_n_messages(e->chat);
    const char *want = e->job_system[0] ? e->job_system : NULL;
    bool same = want ? e->system_applied && !strcmp(want, e->system_applied) : !e->system_applied;
    if (!same) {
        if (lm_chat_set_system(e->chat, want, err, sizeof err))
            goto fail;
        free(e->system_applied);
        e->system_applied = want ? strdup(want) : NULL;
        n0 = lm_chat_n_messages(e->chat);
    }
    if (lm_chat_add(e->chat, "user", e->job_text, strlen(e->job_text), err, sizeof err))
        goto fail;
    lm_chat_gen g = {
        .sampling = &e->job_sampling,
        .max_tokens = e->o->n_predict,
        .stop = e->o->stop[0] ? e->o->stop : NULL,
        .on_text = on_text,
        .user = e,
        .abort = &e->abort,
    };
    lm_chat_stats st;
    memset(&st, 0, sizeof st);
    if (lm_chat_reply(e->chat, &g, &st, err, sizeof err)) {
        lm_chat_truncate(e->chat, n0);
        goto fail;
    }
    pthread_mutex_lock(&e->mu);
    bool empty = drop_empty_reply(e);
    e->tok_s = st.reply_s > 0 ? st.reply_tokens / st.reply_s : 0;
    e->n_past = lm_session_n_past(e->sess);
    e->n_ctx = lm_session_n_ctx(e->sess);
    e->replies++;
    pthread_mutex_unlock(&e->mu);
    if (empty && st.finish != LM_CHAT_STOP_ABORT)
        cw_engine_notice(e, CW_NOTICE, "The model's reply was empty.");
    if (st.dropped > 0)
        cw_engine_notice(e, CW_NOTICE, "%d earlier message%s no longer fit the context and %s left out", st.dropped,
                         st.dropped == 1 ? "" : "s", st.dropped == 1 ? "was" : "were");
    if (st.finish == LM_CHAT_STOP_CONTEXT)
        cw_engine_notice(e, CW_NOTICE, "The context is full: start a new chat.");
    else if (st.finish == LM_CHAT_STOP_ABORT)
        cw_engine_notice(e, CW_NOTICE, "Stopped.");
    e->finished = 1;
    wake();
    return NULL;
fail:
    pthread_mutex_lock(&e->mu);
    drop_empty_reply(e);
    e->replies++;
    pthread_mutex_unlock(&e->mu);
    cw_engine_notice(e, CW_ERROR, "%s", err[0] ? err : "the reply failed");
    e->finished = 1;
    wake();
    return NULL;
}

bool cw_engine_send(cw_engine *e, const char *text, float temp, const char *system)
{
    if (cw_engine_busy(e))
        return false;
    if (!e->chat) {
        cw_engine_notice(e, CW_NOTICE, "No model is open: type the path of a GGUF file in the field at the top and "
                                       "press Open, or drop the file on this window.");
        return false;
    }
    lm_sampler_params sp = e->o->sampling;
    sp.temp = temp;
    char err[256];
    if (lm_sampler_params_check(&sp, err, sizeof err)) {
        cw_engine_notice(e, CW_ERROR, "%s", err);
        return false;
    }
    e->job_sampling = sp;
    e->job_text = strdup(text);
    e->job_system = strdup(system ? system : "");
    if (!e->job_text || !e->job_system) {
        free(e->job_text);
        free(e->job_system);
        e->job_text = e->job_system = NULL;
        return false;
    }
    pthread_mutex_lock(&e->mu);
    msg_push(e, CW_USER, text, strlen(text));
    e->reply_msg = msg_push(e, CW_ASSISTANT, "", 0);
    pthread_mutex_unlock(&e->mu);
    return start(e, CW_JOB_REPLY, reply_main);
}

void cw_engine_new_chat(cw_engine *e)
{
    if (cw_engine_busy(e))
        return;
    if (e->chat) {
        /* keep the system prompt: message 0 when it is one */
        lm_chat_truncate(e->chat, e->system_applied ? 1 : 0);
        if (e->sess)
            e->n_past = lm_session_n_past(e->sess);
    }
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n_msgs; i++) {
        free(e->msgs[i].text);
        cw_layout_free(&e->msgs[i].lay);
    }
    e->n_msgs = 0;
    e->reply_msg = -1;
    e->tok_s = 0;
    pthread_mutex_unlock(&e->mu);
}
