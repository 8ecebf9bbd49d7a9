/* test_chat.c: lm_chat on stories260K with a plain chat template ("role: content\n" per message, then
 * "assistant:"), greedy, f32 KV cache.
 *
 * A turn evaluates only the tokens after the longest common prefix of its render and the cache (counted
 * with lm_session_n_evaluated: the prompt's new tokens, then one decode step per reply token but the
 * last); regenerating the last reply evaluates one token and gives the same text; editing the last user
 * message evaluates what follows the edit; stop strings cut the text (and never reach on_text); a long
 * conversation in 128 positions keeps going by leaving out old turns, never the system prompt; a message
 * too long for the context is LM_ERR_CONTEXT_FULL; the context is escaped into the template's JSON. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm.h"
#include "util.h"

static lm_model *model;
static const lm_vocab *vocab;

/* on_text: the streamed text, gathered */
typedef struct sink {
    char buf[8192];
    size_t n;
    int calls, refuse_after; /* refuse_after > 0: return false on that call */
} sink;

static bool on_text(void *user, const char *text, size_t len)
{
    sink *k = user;
    if (k->n + len < sizeof k->buf) {
        memcpy(k->buf + k->n, text, len);
        k->n += len;
        k->buf[k->n] = 0;
    }
    return !(k->refuse_after > 0 && ++k->calls >= k->refuse_after);
}

/* Tokens of the chat's render (as lm_chat_reply tokenizes it); caller frees. */
static int64_t render_ids(const lm_chat *c, int32_t **ids)
{
    char *text = NULL, err[512];
    size_t len = 0;
    int64_t n = 0;
    *ids = NULL;
    CHECK(lm_chat_render(c, true, &text, &len, err, sizeof err) == LM_OK, "render: %s", err);
    if (text)
        CHECK(lm_tokenize_w(vocab, text, len, true, true, ids, &n, NULL, err, sizeof err) == LM_OK, "tokenize: %s", err);
    free(text);
    return n;
}

/* Common prefix of the render and what the session holds. */
static int64_t cached_prefix(const lm_session *s, const int32_t *ids, int64_t n)
{
    int32_t nc;
    const int32_t *cached = lm_session_tokens(s, &nc);
    int64_t k = 0;
    while (k < n && k < nc && cached[k] == ids[k])
        k++;
    return k;
}

/* Replies (greedy) and checks that exactly the new prompt tokens and the decode steps were evaluated. */
static int reply_checked(lm_chat *c, lm_session *s, const char *what, const lm_chat_gen *g, lm_chat_stats *st)
{
    int32_t *ids;
    int64_t n = render_ids(c, &ids);
    int64_t keep = cached_prefix(s, ids, n);
    if (keep == n)
        keep = n - 1; /* all cached: the last one is evaluated again for its logits */
    free(ids);
    char err[512] = "";
    int64_t before = lm_session_n_evaluated(s);
    int rc = lm_chat_reply(c, g, st, err, sizeof err);
    CHECK(rc == LM_OK, "%s: %s", what, err);
    if (rc)
        return rc;
    int64_t delta = lm_session_n_evaluated(s) - before;
    CHECK(st->prompt_tokens == n && st->reused == keep && st->evaluated == n - keep,
          "%s: prompt %lld tokens (want %lld), reused %lld (want %lld), evaluated %lld (want %lld)", what,
          (long long)st->prompt_tokens, (long long)n, (long long)st->reused, (long long)keep,
          (long long)st->evaluated, (long long)(n - keep));
    CHECK(st->reply_tokens >= 1 && delta == st->evaluated + st->reply_tokens - 1,
          "%s: %lld tokens evaluated, want %lld prompt + %lld decode steps", what, (long long)delta,
          (long long)st->evaluated, (long long)(st->reply_tokens - 1));
    printf("%-22s prompt %3lld tokens: %3lld reused, %3lld evaluated; reply %2lld tokens\n", what,
           (long long)st->prompt_tokens, (long long)st->reused, (long long)st->evaluated,
           (long long)st->reply_tokens);
    return LM_OK;
}

static char *last_text(const lm_chat *c)
{
    int n = lm_chat_n_messages(c);
    const char *role = lm_chat_role(c, n - 1);
    CHECK(role && !strcmp(role, "assistant"), "the last message is %s, not the reply", role ? role : "missing");
    return strdup(lm_chat_content(c, n - 1, NULL) ? lm_chat_content(c, n - 1, NULL) : "");
}

static void test_messages(lm_session *s)
{
    char err[512] = "";
    lm_chat *c = NULL;
    lm_chat_opts bad = { .template_src = "{% if %}" };
    CHECK(lm_chat_create(model, s, &bad, &c, err, sizeof err) == LM_ERR_INVALID && !c && err[0],
          "a broken template: want LM_ERR_INVALID with a message");
    CHECK(lm_chat_create(model, s, NULL, &c, err, sizeof err) == LM_OK, "create: %s", err);
    if (!c)
        return;
    const char *tricky = "a \"quoted\" \\ back\tslash\nnew line \x01 caf\xc3\xa9 \xe4\xb8\xad";
    CHECK(lm_chat_add(c, "user", tricky, strlen(tricky), err, sizeof err) == LM_OK, "add: %s", err);
    CHECK(lm_chat_add(c, "robot", "x", 1, err, sizeof err) == LM_ERR_INVALID, "an unknown role is accepted");
    CHECK(lm_chat_add(c, "user", "\xc3(", 2, err, sizeof err) == LM_ERR_INVALID, "invalid UTF-8 is accepted");
    CHECK(lm_chat_set_system(c, "Be brief.", err, sizeof err) == LM_OK, "set_system: %s", err);
    CHECK(lm_chat_set_system(c, "Be kind.", err, sizeof err) == LM_OK, "set_system: %s", err);
    CHECK(lm_chat_n_messages(c) == 2 && !strcmp(lm_chat_role(c, 0), "system"), "the system prompt is not message 0");
    char *text = NULL, want[512];
    size_t len = 0;
    snprintf(want, sizeof want, "system: Be kind.\nuser: %s\nassistant:", tricky);
    CHECK(lm_chat_render(c, true, &text, &len, err, sizeof err) == LM_OK, "render: %s", err);
    CHECK(text && len == strlen(want) && !strcmp(text, want), "render: got '%s', want '%s'", text ? text : "", want);
    free(text);
    CHECK(lm_chat_set_system(c, NULL, err, sizeof err) == LM_OK && lm_chat_n_messages(c) == 1 &&
          !strcmp(lm_chat_role(c, 0), "user"), "removing the system prompt");
    CHECK(lm_chat_render(c, false, &text, &len, err, sizeof err) == LM_OK, "render: %s", err);
    snprintf(want, sizeof want, "user: %s\n", tricky);
    CHECK(text && !strcmp(text, want), "render without the generation prompt: got '%s'", text ? text : "");
    free(text);
    lm_chat_truncate(c, 0);
    CHECK(lm_chat_n_messages(c) == 0, "truncate(0) left messages");
    lm_chat_free(c);
}

static void test_turns(lm_session *s)
{
    char err[512] = "";
    lm_chat *c = NULL;
    lm_session_rewind(s, 0);
    CHECK(lm_chat_create(model, s, NULL, &c, err, sizeof err) == LM_OK, "create: %s", err);
    if (!c)
        return;
    lm_chat_gen g = { .max_tokens = 16 };
    lm_chat_stats st;
    const char *sys = "You tell stories.", *u1 = "Hello, who are you?", *u2 = "Tell me about the park.";
    lm_chat_set_system(c, sys, err, sizeof err);
    lm_chat_add(c, "user", u1, strlen(u1), err, sizeof err);
    if (reply_checked(c, s, "turn 1", &g, &st))
        goto out;
    CHECK(st.reused == 0 && st.dropped == 0, "turn 1: reused %lld, dropped %d", (long long)st.reused, st.dropped);
    int64_t turn1_prompt = st.prompt_tokens;

    lm_chat_add(c, "user", u2, strlen(u2), err, sizeof err);
    if (reply_checked(c, s, "turn 2", &g, &st))
        goto out;
    CHECK(st.reused >= turn1_prompt, "turn 2 reused %lld tokens, less than turn 1's prompt (%lld)",
          (long long)st.reused, (long long)turn1_prompt);
    int64_t turn2_prompt = st.prompt_tokens;
    char *r2 = last_text(c);

    /* regenerate: everything reused, one token evaluated, the same greedy reply */
    lm_chat_truncate(c, lm_chat_n_messages(c) - 1);
    if (reply_checked(c, s, "regenerate", &g, &st) == LM_OK) {
        CHECK(st.evaluated == 1 && st.reused == turn2_prompt - 1, "regenerate evaluated %lld (reused %lld of %lld)",
              (long long)st.evaluated, (long long)st.reused, (long long)turn2_prompt);
        char *again = last_text(c);
        CHECK(!strcmp(again, r2), "greedy replies differ: '%s' then '%s'", r2, again);
        free(again);
    }

    /* the same conversation from an empty cache gives the same reply */
    lm_chat_truncate(c, lm_chat_n_messages(c) - 1);
    lm_session_rewind(s, 0);
    if (reply_checked(c, s, "from an empty cache", &g, &st) == LM_OK) {
        CHECK(st.reused == 0, "rewound session reused %lld", (long long)st.reused);
        char *again = last_text(c);
        CHECK(!strcmp(again, r2), "greedy replies differ: '%s' then '%s' (empty cache)", r2, again);
        free(again);
    }

    /* stop strings: the text ends before the first occurrence, which never reaches on_text */
    size_t l2 = strlen(r2);
    if (l2 >= 8) {
        char stop1[4] = { r2[l2 / 2], r2[l2 / 2 + 1], r2[l2 / 2 + 2], 0 };
        const char *stops[] = { "never-in-a-story", stop1, NULL };
        const char *first = strstr(r2, stop1);
        sink k = { .n = 0 };
        lm_chat_gen gs = { .max_tokens = 16, .stop = stops, .on_text = on_text, .user = &k };
        lm_chat_truncate(c, lm_chat_n_messages(c) - 1);
        if (reply_checked(c, s, "stop string", &gs, &st) == LM_OK) {
            char *cut = last_text(c);
            CHECK(st.finish == LM_CHAT_STOP_STRING, "stop string '%s': finish %d", stop1, (int)st.finish);
            CHECK(strlen(cut) == (size_t)(first - r2) && !strncmp(cut, r2, strlen(cut)),
                  "stop string '%s': got '%s' from '%s'", stop1, cut, r2);
            CHECK(!strcmp(k.buf, cut), "streamed '%s', stored '%s'", k.buf, cut);
            free(cut);
        }
        /* a stop string that never comes: everything streams, the held-back tail at the end */
        const char *none[] = { "zq", "\n\n\n\n", NULL };
        k.n = 0;
        k.buf[0] = 0;
        gs.stop = none;
        lm_chat_truncate(c, lm_chat_n_messages(c) - 1);
        if (reply_checked(c, s, "stop string unseen", &gs, &st) == LM_OK) {
            CHECK(st.finish == LM_CHAT_STOP_LENGTH, "finish %d, want length", (int)st.finish);
            CHECK(!strcmp(k.buf, r2), "streamed '%s', want '%s'", k.buf, r2);
        }
        /* on_text refusing, and abort */
        k = (sink){ .refuse_after = 2 };
        gs.stop = NULL;
        lm_chat_truncate(c, lm_chat_n_messages(c) - 1);
        if (reply_checked(c, s, "on_text refuses", &gs, &st) == LM_OK)
            CHECK(st.finish == LM_CHAT_STOP_ABORT && k.calls == 2 && st.reply_tokens < 16,
                  "on_text refusing: finish %d after %d calls, %lld tokens", (int)st.finish, k.calls,
                  (long long)st.reply_tokens);
        volatile int stop_now = 1;
        lm_chat_gen ga = { .max_tokens = 16, .abort = &stop_now };
        lm_chat_truncate(c, lm_chat_n_messages(c) - 1);
        if (reply_checked(c, s, "abort", &ga, &st) == LM_OK)
            CHECK(st.finish == LM_CHAT_STOP_ABORT && st.reply_tokens == 1, "abort: finish %d, %lld tokens",
                  (int)st.finish, (long long)st.reply_tokens);
        /* sampled: the logits come back to the host, the counts are the same */
        lm_sampler_params sp;
        lm_sampler_defaults(&sp);
        sp.seed = 7;
        lm_chat_gen gp = { .sampling = &sp, .max_tokens = 16 };
        lm_chat_truncate(c, lm_chat_n_messages(c) - 1);
        reply_checked(c, s, "sampled", &gp, &st);
    }
    free(r2);

    /* edit the last user message: what comes before it is reused */
    lm_chat_truncate(c, lm_chat_n_messages(c) - 2);
    const char *u2b = "Tell me about a big dog.";
    lm_chat_add(c, "user", u2b, strlen(u2b), err, sizeof err);
    if (reply_checked(c, s, "edited message", &g, &st) == LM_OK)
        CHECK(st.reused >= turn1_prompt && st.evaluated < st.prompt_tokens - turn1_prompt + 4,
              "edit: reused %lld, evaluated %lld of %lld", (long long)st.reused, (long long)st.evaluated,
              (long long)st.prompt_tokens);
out:
    lm_chat_free(c);
}

static void test_overflow(void)
{
    char err[512] = "";
    lm_session_opts so = { .n_ctx = 128, .n_batch = 32, .kv_f32 = true };
    lm_session *s = NULL;
    lm_chat *c = NULL;
    CHECK(lm_session_create(model, &so, &s, err, sizeof err) == LM_OK, "session: %s", err);
    if (s)
        CHECK(lm_chat_create(model, s, NULL, &c, err, sizeof err) == LM_OK, "create: %s", err);
    if (!c) {
        lm_session_free(s);
        return;
    }
    const char *sys = "You tell stories.";
    lm_chat_set_system(c, sys, err, sizeof err);
    lm_chat_gen g = { .max_tokens = 20 };
    lm_chat_stats st;
    int max_dropped = 0, turns = 0;
    for (int t = 0; t < 12; t++) {
        char msg[128];
        snprintf(msg, sizeof msg, "Tell me a story about cat number %d.", t);
        lm_chat_add(c, "user", msg, strlen(msg), err, sizeof err);
        int rc = lm_chat_reply(c, &g, &st, err, sizeof err);
        CHECK(rc == LM_OK, "turn %d of a long chat in 128 positions: %s", t, err);
        if (rc)
            break;
        turns++;
        CHECK(st.prompt_tokens + 32 <= 128, "turn %d: a prompt of %lld tokens leaves no room for the reply", t,
              (long long)st.prompt_tokens);
        if (st.dropped > max_dropped)
            max_dropped = st.dropped;
        /* what the model saw starts with the system prompt and holds the last message */
        int32_t n;
        const int32_t *ids = lm_session_tokens(s, &n);
        char *seen = NULL;
        size_t len;
        if (lm_detokenize(vocab, ids, n, false, &seen, &len, err, sizeof err) == LM_OK) {
            const char *p = seen + strspn(seen, " ");
            CHECK(!strncmp(p, "system: You tell stories.\n", 26), "turn %d: the model saw '%.40s...'", t, p);
            CHECK(strstr(seen, msg) != NULL, "turn %d: the last message is not in what the model saw", t);
            if (st.dropped)
                CHECK(!strstr(seen, "cat number 0."), "turn %d: %d dropped, but the first turn is still there", t,
                      st.dropped);
        }
        free(seen);
    }
    printf("long chat in 128 positions: %d turns, up to %d messages left out\n", turns, max_dropped);
    CHECK(max_dropped > 0, "12 turns in 128 positions dropped nothing");
    CHECK(lm_chat_n_messages(c) == 1 + 2 * turns, "the message list lost messages: %d", lm_chat_n_messages(c));

    /* one message longer than the context: LM_ERR_CONTEXT_FULL, with a message */
    char big[2048] = "";
    for (int i = 0; i < 60; i++)
        strcat(big, "the cat sat on a mat. ");
    lm_chat_add(c, "user", big, strlen(big), err, sizeof err);
    err[0] = 0;
    int n_before = lm_chat_n_messages(c);
    CHECK(lm_chat_reply(c, &g, &st, err, sizeof err) == LM_ERR_CONTEXT_FULL && err[0],
          "a message longer than the context: want LM_ERR_CONTEXT_FULL with a message");
    CHECK(lm_chat_n_messages(c) == n_before, "a failed reply changed the messages");
    printf("too long: %s\n", err);
    /* no length bound: the reply runs until the model ends it or the context is full */
    lm_chat_truncate(c, n_before - 1);
    const char *more = "Go on.";
    lm_chat_add(c, "user", more, strlen(more), err, sizeof err);
    g.max_tokens = 0;
    CHECK(lm_chat_reply(c, &g, &st, err, sizeof err) == LM_OK, "an unbounded reply: %s", err);
    CHECK(st.finish == LM_CHAT_STOP_EOG || (st.finish == LM_CHAT_STOP_CONTEXT && lm_session_n_past(s) == 128),
          "an unbounded reply: finish %d with %d positions filled", (int)st.finish, lm_session_n_past(s));
    printf("unbounded reply: %lld tokens, finish %s\n", (long long)st.reply_tokens,
           st.finish == LM_CHAT_STOP_EOG ? "end of generation" : st.finish == LM_CHAT_STOP_CONTEXT ? "context full" : "?");
    lm_chat_free(c);
    lm_session_free(s);
}

int main(void)
{
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_chat");
    char path[] = "/tmp/vkllm_test_chat_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0)
        close(fd);
    char err[512] = "";
    if (fd >= 0 && tu_chat_model(TU_CHAT_TEMPLATE, path))
        CHECK(lm_model_load(g.ctx, path, NULL, &model, err, sizeof err) == LM_OK, "%s", err);
    unlink(path);
    lm_session *s = NULL;
    if (model) {
        vocab = lm_model_vocab(model);
        lm_session_opts so = { .n_ctx = 256, .n_batch = 32, .kv_f32 = true };
        CHECK(lm_session_create(model, &so, &s, err, sizeof err) == LM_OK, "session: %s", err);
    }
    if (s) {
        test_messages(s);
        test_turns(s);
        test_overflow();
    }
    lm_session_free(s);
    lm_model_free(model);
    tu_gpu_close(&g);
    return tu_finish("test_chat");
}
