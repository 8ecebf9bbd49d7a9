/* test_tokenizer: the tokenizers against llama.cpp's vocab test vectors (every .inp/.out pair in
 * shared/models/tokenizer-vectors, compared with add_special = false and parse_special = false, as
 * llama.cpp's test-tokenizer-0 does), the llama2.c tokenizer files, special tokens (and cutting them out
 * of long texts in one pass, against the old one pass per special token), detokenisation (whole and
 * streaming, with characters split across tokens) and rejection of invalid input. */
#include "lm.h"
#include "tok_internal.h" /* to build toy vocabularies for every pre-tokenizer */
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEP "\n__ggml_vocab_test__\n"

/* Prints s with non-printable bytes escaped (for failure messages). */
static void print_escaped(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

static void print_ids(FILE *f, const int32_t *ids, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        fprintf(f, " %d", ids[i]);
}

static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int k = 0;
        if (c < 0x80)
            k = 1;
        else if (c >= 0xC2 && c < 0xE0)
            k = 2;
        else if (c >= 0xE0 && c < 0xF0)
            k = 3;
        else if (c >= 0xF0 && c < 0xF5)
            k = 4;
        if (!k || i + (size_t)k > n)
            return false;
        for (int j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80)
                return false;
        i += (size_t)k;
    }
    return true;
}

/* Detokenises ids one at a time with the streaming detokeniser; every chunk must be valid UTF-8. */
static char *stream_detok(const lm_vocab *v, const int32_t *ids, int64_t n, size_t *len, bool *chunks_ok)
{
    lm_detok *d;
    *chunks_ok = true;
    if (lm_detok_create(v, false, &d))
        return NULL;
    size_t cap = 256, used = 0;
    char *all = malloc(cap);
    for (int64_t i = 0; i <= n && all; i++) {
        const char *p;
        size_t pl;
        int rc = i < n ? lm_detok_push(d, ids[i], &p, &pl) : lm_detok_flush(d, &p, &pl);
        if (rc) {
            free(all);
            all = NULL;
            break;
        }
        if (!valid_utf8(p, pl))
            *chunks_ok = false;
        while (used + pl + 1 > cap) {
            cap *= 2;
            char *q = realloc(all, cap);
            if (!q) {
                free(all);
                all = NULL;
                break;
            }
            all = q;
        }
        if (!all)
            break;
        memcpy(all + used, p, pl);
        used += pl;
        all[used] = 0;
    }
    lm_detok_free(d);
    *len = used;
    return all;
}

/* Runs every vector of X.inp (against X.out when it exists) through v. Round trips (detokenised ids
 * == input) are checked too where the tokenizer is lossless (bpe, spm). Returns the number passed. */
static int run_vectors(const char *label, const lm_vocab *v, const char *inp_rel, const char *out_rel, int *total)
{
    size_t inp_len, out_len = 0;
    char *inp = tu_read_file(tu_model_path(inp_rel), &inp_len);
    char *out = out_rel ? tu_read_file(tu_model_path(out_rel), &out_len) : NULL;
    *total = 0;
    CHECK(inp, "%s: cannot read %s", label, inp_rel);
    CHECK(!out_rel || out, "%s: cannot read %s", label, out_rel);
    if (!inp || (out_rel && !out)) {
        free(inp);
        free(out);
        return 0;
    }
    bool lossless = strcmp(lm_vocab_kind(v), "wpm") != 0;
    int passed = 0;
    char *s = inp, *o = out;
    for (;;) {
        char *end = strstr(s, SEP);
        if (!end)
            break;
        size_t len = (size_t)(end - s);
        (*total)++;
        int32_t *ids;
        int64_t n;
        char err[256];
        int rc = lm_tokenize(v, s, len, false, false, &ids, &n, err, sizeof err);
        bool ok = rc == LM_OK;
        CHECK(ok, "%s: vector %d: lm_tokenize: %s", label, *total, err);
        if (ok && o) {
            /* the expected line: ids separated by spaces */
            char *eol = strchr(o, '\n');
            if (!eol)
                eol = o + strlen(o);
            int64_t k = 0;
            bool same = true;
            char *p = o;
            while (p < eol) {
                char *q;
                long id = strtol(p, &q, 10);
                if (q == p)
                    break;
                p = q;
                same = same && k < n && ids[k] == id;
                k++;
            }
            same = same && k == n;
            if (!same) {
                fprintf(stderr, "%s: vector %d: '", label, *total);
                print_escaped(stderr, s, len);
                fprintf(stderr, "'\n  expected:");
                fwrite(o, 1, (size_t)(eol - o), stderr);
                fprintf(stderr, "\n  got:     ");
                print_ids(stderr, ids, n);
                fputc('\n', stderr);
            }
            ok = same;
            CHECK(same, "%s: vector %d differs", label, *total);
            o = *eol ? eol + 1 : eol;
        }
        if (rc == LM_OK && lossless) {
            size_t dl;
            bool chunks_ok;
            char *back = stream_detok(v, ids, n, &dl, &chunks_ok);
            bool same = back && dl == len && !memcmp(back, s, len);
            if (!same) {
                fprintf(stderr, "%s: vector %d: round trip '", label, *total);
                print_escaped(stderr, s, len);
                fprintf(stderr, "' -> '");
                if (back)
                    print_escaped(stderr, back, dl);
                fprintf(stderr, "'\n");
            }
            CHECK(same, "%s: vector %d: detokenised text differs from the input", label, *total);
            CHECK(chunks_ok, "%s: vector %d: the streaming detokeniser emitted broken UTF-8", label, *total);
            ok = ok && same && chunks_ok;
            free(back);
        }
        passed += ok;
        free(ids);
        s = end + strlen(SEP);
    }
    free(inp);
    free(out);
    return passed;
}

static lm_vocab *open_gguf_vocab(const char *rel)
{
    lm_gguf *g;
    lm_vocab *v = NULL;
    char err[256] = "";
    int rc = lm_gguf_open(tu_model_path(rel), &g, err, sizeof err);
    CHECK(rc == LM_OK, "%s: %s", rel, err);
    if (rc)
        return NULL;
    rc = lm_vocab_from_gguf(g, &v, err, sizeof err);
    CHECK(rc == LM_OK, "%s: lm_vocab_from_gguf: %s", rel, err);
    lm_gguf_close(g);
    return v;
}

static void test_vectors(void)
{
    static const char *const names[] = {
        "llama-spm", "phi-3", "bert-bge", "gpt-2", "llama-bpe", "qwen2", "deepseek-coder", "deepseek-llm",
        "mpt", "starcoder", "falcon", "refact",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char gguf[128], inp[160], out[160];
        snprintf(gguf, sizeof gguf, "tokenizer-vectors/ggml-vocab-%s.gguf", names[i]);
        snprintf(inp, sizeof inp, "%s.inp", gguf);
        snprintf(out, sizeof out, "%s.out", gguf);
        lm_vocab *v = open_gguf_vocab(gguf);
        if (!v)
            continue;
        size_t dummy;
        char *has_out = tu_read_file(tu_model_path(out), &dummy);
        int total;
        int passed = run_vectors(names[i], v, inp, has_out ? out : NULL, &total);
        printf("%-15s %-4s %-15s %2d/%d %s\n", names[i], lm_vocab_kind(v), lm_vocab_pre(v), passed, total,
               has_out ? "vectors passed" : "tokenized and round-tripped (no expected ids)");
        CHECK(total == 46, "%s: %d vectors, expected 46", names[i], total);
        free(has_out);
        lm_vocab_free(v);
    }
    /* the vocabs without vectors of their own: round trips of the llama-bpe inputs */
    static const char *const others[] = { "baichuan", "gpt-neox" };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char gguf[128];
        snprintf(gguf, sizeof gguf, "tokenizer-vectors/ggml-vocab-%s.gguf", others[i]);
        lm_vocab *v = open_gguf_vocab(gguf);
        if (!v)
            continue;
        int total;
        int passed = run_vectors(others[i], v, "tokenizer-vectors/ggml-vocab-llama-bpe.gguf.inp", NULL, &total);
        printf("%-15s %-4s %-15s %2d/%d round-tripped (llama-bpe inputs; no vectors of its own)\n", others[i],
               lm_vocab_kind(v), lm_vocab_pre(v), passed, total);
        lm_vocab_free(v);
    }
}

/* llama2.c's tokenizer.bin is the Llama 2 vocab: the llama-spm vectors go through it too. */
static void test_llama2c(void)
{
    lm_vocab *v;
    char err[256] = "";
    int rc = lm_vocab_from_llama2c(tu_model_path("llama2c/tokenizer.bin"), &v, err, sizeof err);
    CHECK(rc == LM_OK, "tokenizer.bin: %s", err);
    if (rc == LM_OK) {
        CHECK(lm_vocab_n_tokens(v) == 32000, "tokenizer.bin: %d tokens", lm_vocab_n_tokens(v));
        int total;
        int passed = run_vectors("llama2c tokenizer.bin", v, "tokenizer-vectors/ggml-vocab-llama-spm.gguf.inp",
                                 "tokenizer-vectors/ggml-vocab-llama-spm.gguf.out", &total);
        printf("%-15s %-4s %-15s %2d/%d vectors passed\n", "tokenizer.bin", lm_vocab_kind(v), "(llama2.c)", passed,
               total);
        lm_vocab_free(v);
    }

    /* stories260K: the prompt of expected/, with BOS, through tok512.bin and through the GGUF */
    static const int32_t want[] = { 1, 403, 407, 261, 378 };
    const char *prompt = "Once upon a time";
    lm_vocab *vs[2] = { NULL, NULL };
    rc = lm_vocab_from_llama2c(tu_model_path("llama2c/tok512.bin"), &vs[0], err, sizeof err);
    CHECK(rc == LM_OK, "tok512.bin: %s", err);
    vs[1] = open_gguf_vocab("gguf/stories260K.gguf");
    for (int k = 0; k < 2; k++) {
        if (!vs[k])
            continue;
        int32_t *ids;
        int64_t n;
        CHECK(lm_vocab_add_bos(vs[k]), "stories260K vocab %d: add_bos should be true", k);
        rc = lm_tokenize(vs[k], prompt, strlen(prompt), true, false, &ids, &n, err, sizeof err);
        CHECK(rc == LM_OK && n == 5 && !memcmp(ids, want, sizeof want), "stories260K vocab %d: '%s' ->%s", k,
              prompt, rc ? err : "");
        if (rc == LM_OK) {
            print_ids(stdout, ids, n);
            printf("  <- '%s' (%s)\n", prompt, k ? "stories260K.gguf" : "tok512.bin");
            char *text;
            rc = lm_detokenize(vs[k], ids, n, false, &text, NULL, err, sizeof err);
            /* as llama.cpp: BOS is the stream's first piece, so the space of "▁Once" stays */
            CHECK(rc == LM_OK && text[0] == ' ' && !strcmp(text + 1, prompt), "stories260K vocab %d: detokenised '%s'",
                  k, rc ? err : text);
            free(text);
            rc = lm_detokenize(vs[k], ids + 1, n - 1, false, &text, NULL, err, sizeof err);
            CHECK(rc == LM_OK && !strcmp(text, prompt), "stories260K vocab %d: detokenised without BOS '%s'", k,
                  rc ? err : text);
            free(text);
        }
        free(ids);
        CHECK(lm_vocab_bos(vs[k]) == 1 && lm_vocab_eos(vs[k]) == 2 && lm_vocab_is_eog(vs[k], 2) &&
              !lm_vocab_is_eog(vs[k], 1), "stories260K vocab %d: specials", k);
        lm_vocab_free(vs[k]);
    }

    rc = lm_vocab_from_llama2c("/nonexistent/tokenizer.bin", &vs[0], err, sizeof err);
    CHECK(rc == LM_ERR_IO && !vs[0], "a missing llama2.c file: %d", rc);
}

/* Streaming: a character split across byte-level tokens is held back until complete. */
static void test_streaming(const lm_vocab *bpe, const lm_vocab *spm)
{
    const char *texts[] = { "\xe7\x8c\xab\xf0\x9f\xa6\x99 \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c",
                            "\xf0\x9f\x98\x80\xf0\x9f\x98\x81\xf0\x9f\xa4\x97", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x8d\x95z" };
    for (int k = 0; k < 2; k++) {
        const lm_vocab *v = k ? spm : bpe;
        if (!v)
            continue;
        for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
            int32_t *ids;
            int64_t n;
            char err[256];
            int rc = lm_tokenize(v, texts[t], strlen(texts[t]), false, false, &ids, &n, err, sizeof err);
            CHECK(rc == LM_OK, "streaming: %s", err);
            if (rc)
                continue;
            /* at least one character must really be split over tokens for the test to mean something */
            bool split = false;
            for (int64_t i = 0; i < n; i++) {
                size_t pl;
                const char *p = lm_token_piece(v, ids[i], &pl);
                split = split || !valid_utf8(p, pl);
            }
            CHECK(split, "streaming %s text %zu: no character split across tokens", lm_vocab_kind(v), t);
            size_t len;
            bool chunks_ok;
            char *back = stream_detok(v, ids, n, &len, &chunks_ok);
            CHECK(back && len == strlen(texts[t]) && !memcmp(back, texts[t], len),
                  "streaming %s text %zu: round trip differs", lm_vocab_kind(v), t);
            CHECK(chunks_ok, "streaming %s text %zu: a chunk was not valid UTF-8", lm_vocab_kind(v), t);
            free(back);
            free(ids);
        }
    }
    if (!spm)
        return;
    /* byte tokens of broken sequences: E4 B8 then 'A' -> U+FFFD A; a lone F0 at the end -> U+FFFD */
    int32_t b_e4 = lm_vocab_find(spm, "<0xE4>", 6), b_b8 = lm_vocab_find(spm, "<0xB8>", 6);
    int32_t b_f0 = lm_vocab_find(spm, "<0xF0>", 6), b_41 = lm_vocab_find(spm, "<0x41>", 6);
    int32_t b_80 = lm_vocab_find(spm, "<0x80>", 6);
    CHECK(b_e4 >= 0 && b_b8 >= 0 && b_f0 >= 0 && b_41 >= 0 && b_80 >= 0, "byte tokens in the spm vocab");
    lm_detok *d;
    if (lm_detok_create(spm, false, &d))
        return;
    const char *p;
    size_t pl;
    lm_detok_push(d, b_e4, &p, &pl);
    CHECK(pl == 0, "held back: E4 gave %zu bytes", pl);
    lm_detok_push(d, b_b8, &p, &pl);
    CHECK(pl == 0, "held back: E4 B8 gave %zu bytes", pl);
    lm_detok_push(d, b_41, &p, &pl);
    CHECK(pl == 4 && !memcmp(p, "\xef\xbf\xbd" "A", 4), "E4 B8 A -> U+FFFD A (%zu bytes)", pl);
    lm_detok_push(d, b_80, &p, &pl);
    CHECK(pl == 3 && !memcmp(p, "\xef\xbf\xbd", 3), "a lone continuation byte -> U+FFFD (%zu bytes)", pl);
    lm_detok_push(d, b_f0, &p, &pl);
    CHECK(pl == 0, "held back: F0 gave %zu bytes", pl);
    lm_detok_flush(d, &p, &pl);
    CHECK(pl == 3 && !memcmp(p, "\xef\xbf\xbd", 3), "flush of an incomplete character -> U+FFFD (%zu bytes)", pl);
    CHECK(lm_detok_push(d, -1, &p, &pl) == LM_ERR_INVALID, "an id out of range is refused");
    CHECK(lm_detok_push(d, lm_vocab_n_tokens(spm), &p, &pl) == LM_ERR_INVALID, "an id out of range is refused");
    lm_detok_free(d);
}

static void test_invalid_utf8(const lm_vocab *v)
{
    static const struct {
        const char *s;
        size_t off;
    } bad[] = {
        { "abc\xff", 3 }, { "ab\xe4\xb8", 2 }, { "\xc0\xaf", 0 }, { "x\xed\xa0\x80", 1 }, { "hello \x80", 6 },
        { "\xf4\x90\x80\x80", 0 }, { "ok\xe2\x82z", 2 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        int64_t n = 7;
        char err[256] = "", want[64];
        int rc = lm_tokenize(v, bad[i].s, strlen(bad[i].s), true, false, &ids, &n, err, sizeof err);
        snprintf(want, sizeof want, "offset %zu", bad[i].off);
        CHECK(rc == LM_ERR_INVALID && !ids && n == 0 && strstr(err, want),
              "invalid UTF-8 %zu: rc %d, message '%s' (want '%s')", i, rc, err, want);
    }
    int32_t *ids;
    int64_t n;
    CHECK(lm_tokenize(v, "", 0, false, false, &ids, &n, NULL, 0) == LM_OK && n == 0 && !ids, "empty text");
}

static void expect_ids(const lm_vocab *v, const char *text, bool parse_special, const int32_t *want, int64_t nwant)
{
    int32_t *ids;
    int64_t n;
    char err[256] = "";
    int rc = lm_tokenize(v, text, strlen(text), false, parse_special, &ids, &n, err, sizeof err);
    bool ok = rc == LM_OK && n == nwant && (!n || !memcmp(ids, want, (size_t)n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "'%s' (parse_special %d):", text, parse_special);
        print_ids(stderr, ids, n);
        fputc('\n', stderr);
    }
    CHECK(ok, "'%s': %s", text, err);
    free(ids);
}

static void test_specials(const lm_vocab *llama3, const lm_vocab *qwen2)
{
    if (llama3) {
        CHECK(lm_vocab_bos(llama3) == 128000 && lm_vocab_eos(llama3) == 128001, "llama-bpe bos/eos");
        CHECK(lm_vocab_eot(llama3) == 128009, "llama-bpe eot %d (<|eot_id|>)", lm_vocab_eot(llama3));
        CHECK(lm_vocab_is_eog(llama3, 128009) && lm_vocab_is_eog(llama3, 128001) && !lm_vocab_is_eog(llama3, 9906),
              "llama-bpe eog");
        CHECK(lm_vocab_add_bos(llama3), "llama-bpe adds BOS");
        CHECK(lm_vocab_nl(llama3) == 198, "llama-bpe newline %d", lm_vocab_nl(llama3));
        const int32_t a[] = { 128000, 9906, 128009 };
        expect_ids(llama3, "<|begin_of_text|>Hello<|eot_id|>", true, a, 3);
        /* not parsed: the text of the special token is tokenized as text */
        int32_t *ids;
        int64_t n;
        lm_tokenize(llama3, "<|eot_id|>", 10, false, false, &ids, &n, NULL, 0);
        CHECK(n > 1, "<|eot_id|> without parse_special: %lld tokens", (long long)n);
        for (int64_t i = 0; i < n; i++)
            CHECK(ids[i] < 128000, "<|eot_id|> without parse_special gave special id %d", ids[i]);
        free(ids);
        /* add_special: BOS first */
        lm_tokenize(llama3, "Hello", 5, true, false, &ids, &n, NULL, 0);
        CHECK(n == 2 && ids[0] == 128000 && ids[1] == 9906, "llama-bpe add_special");
        free(ids);
        /* detok of a special: printed only with special */
        const int32_t s[] = { 128000, 9906, 128009 };
        char *t;
        lm_detokenize(llama3, s, 3, false, &t, NULL, NULL, 0);
        CHECK(t && !strcmp(t, "Hello"), "detok without specials: '%s'", t ? t : "(null)");
        free(t);
        lm_detokenize(llama3, s, 3, true, &t, NULL, NULL, 0);
        CHECK(t && !strcmp(t, "<|begin_of_text|>Hello<|eot_id|>"), "detok with specials: '%s'", t ? t : "(null)");
        free(t);
        size_t len;
        const char *raw = lm_token_text(llama3, 22691, &len);
        CHECK(raw && !strcmp(raw, "\xc4\xa0" "Hello") && len == 7, "raw text of ' Hello' is 'GHello' (%s)", raw);
        raw = lm_token_piece(llama3, 22691, &len);
        CHECK(raw && !strcmp(raw, " Hello") && len == 6, "piece of 22691 is ' Hello'");
        CHECK(lm_token_text(llama3, -1, &len) == NULL && lm_token_text(llama3, 128256, &len) == NULL,
              "token text out of range");
    }
    if (qwen2) {
        int32_t im_start = lm_vocab_find(qwen2, "<|im_start|>", 12), im_end = lm_vocab_find(qwen2, "<|im_end|>", 10);
        CHECK(im_start == 151644 && im_end == 151645, "qwen2 im_start %d im_end %d", im_start, im_end);
        CHECK(lm_vocab_is_eog(qwen2, im_end) && lm_vocab_eot(qwen2) >= 0, "qwen2: <|im_end|> ends generation");
        CHECK(!lm_vocab_add_bos(qwen2), "qwen2 adds no BOS");
        int32_t *ids;
        int64_t n;
        const char *chat = "<|im_start|>user\nhi<|im_end|>";
        lm_tokenize(qwen2, chat, strlen(chat), false, true, &ids, &n, NULL, 0);
        CHECK(n >= 4 && ids[0] == im_start && ids[n - 1] == im_end, "qwen2 chat markup with parse_special");
        char *t;
        lm_detokenize(qwen2, ids, n, true, &t, NULL, NULL, 0);
        CHECK(t && !strcmp(t, chat), "qwen2 chat round trip: '%s'", t ? t : "(null)");
        free(t);
        free(ids);
    }
}

static void test_errors(void)
{
    /* a GGUF without tokenizer metadata is refused with a clear status */
    lm_gguf *g;
    char err[256] = "";
    if (lm_gguf_open(tu_model_path("gguf/stories260K.gguf"), &g, err, sizeof err) == LM_OK) {
        lm_vocab *v = (lm_vocab *)1;
        CHECK(lm_vocab_from_gguf(NULL, &v, err, sizeof err) == LM_ERR_INVALID && !v, "NULL gguf");
        lm_gguf_close(g);
    }
    /* truncated llama2.c tokenizer files */
    size_t len;
    char *data = tu_read_file(tu_model_path("llama2c/tok512.bin"), &len);
    CHECK(data != NULL, "tok512.bin");
    if (!data)
        return;
    char path[] = "/tmp/vkllm_tok_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) {
        free(data);
        return;
    }
    FILE *f = fdopen(fd, "wb");
    size_t cuts[] = { 0, 3, 4, 10, 13, len - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        f = freopen(path, "wb", f);
        fwrite(data, 1, cuts[i], f);
        fflush(f);
        lm_vocab *v = (lm_vocab *)1;
        int rc = lm_vocab_from_llama2c(path, &v, err, sizeof err);
        CHECK(rc == LM_ERR_FORMAT && !v, "tok512.bin cut at %zu bytes: rc %d (%s)", cuts[i], rc, err);
    }
    fclose(f);
    remove(path);
    free(data);
}

/* Falcon's vectors come without expected ids; these were produced with HF's Falcon tokenizer (they
 * were llama.cpp's test-tokenizer-0-falcon table). */
static void test_falcon(void)
{
    static const struct {
        const char *s;
        int n;
        int32_t ids[20];
    } t[] = {
        { " ", 1, { 204 } }, { "  ", 1, { 258 } }, { "   ", 1, { 466 } }, { "\t", 1, { 192 } },
        { "\n", 1, { 193 } },
        { "\t\n", 1, { 19125 } }, { "Hello world", 2, { 9856, 1079 } }, { " Hello world", 2, { 23090, 1079 } },
        { "Hello World", 2, { 9856, 2889 } }, { " Hello World!", 3, { 23090, 2889, 12 } },
        { "Hello, world!", 4, { 9856, 23, 1079, 12 } },
        { " this is \xf0\x9f\xa6\x99.cpp", 7, { 414, 304, 3346, 111, 231, 25, 29247 } },
        { "w048 7tuijk dsdfhu", 9, { 98, 55866, 204, 34, 16682, 7149, 36190, 6869, 11481 } },
        { "\xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xd0\xbd\xd0\xb0 "
          "\xd0\x91\xd1\x8a\xd0\xbb\xd0\xb3\xd0\xb0\xd1\x80\xd1\x81\xd0\xba\xd0\xb8", /* нещо на Български */
          19,
          { 150, 133, 6207, 151, 215, 150, 134, 5052, 133, 6279, 5052, 223, 151, 216, 49679, 123, 53110, 47043,
            7795 } },
        { "Hello", 1, { 9856 } }, { "  Hello", 2, { 204, 23090 } },
        { "    Hello\n    Hello", 4, { 466, 23090, 742, 23090 } },
        { "\n =", 2, { 1212, 40 } }, { "' era", 2, { 18, 4932 } },
    };
    lm_vocab *v = open_gguf_vocab("tokenizer-vectors/ggml-vocab-falcon.gguf");
    if (!v)
        return;
    int passed = 0, total = (int)(sizeof t / sizeof t[0]);
    for (int i = 0; i < total; i++) {
        int32_t *ids;
        int64_t n;
        lm_tokenize(v, t[i].s, strlen(t[i].s), false, false, &ids, &n, NULL, 0);
        bool same = n == t[i].n && !memcmp(ids, t[i].ids, (size_t)n * sizeof *ids);
        if (!same) {
            fprintf(stderr, "falcon '");
            print_escaped(stderr, t[i].s, strlen(t[i].s));
            fprintf(stderr, "':");
            print_ids(stderr, ids, n);
            fputc('\n', stderr);
        }
        CHECK(same, "falcon HF ids, case %d", i);
        passed += same;
        free(ids);
    }
    printf("%-15s %-4s %-15s %2d/%d HF ids passed\n", "falcon", "bpe", "falcon", passed, total);
    lm_vocab_free(v);
}

/* Every pre-tokenizer of the table on a toy byte-level vocab (the 256 byte characters, one merge):
 * its regexes must compile with PCRE2 and cut every vector input into pieces that cover it all. */
static void test_all_pretokenizers(void)
{
    const char *toks[256];
    size_t lens[256];
    char chars[256][4];
    for (int b = 0; b < 256; b++) {
        lens[b] = (size_t)tok_utf8_encode(tok_bpe_byte_to_cp((uint8_t)b), chars[b]);
        toks[b] = chars[b];
    }
    const char *merge[] = { "a b" };
    size_t merge_len[] = { 3 };
    size_t inp_len;
    char *inp = tu_read_file(tu_model_path("tokenizer-vectors/ggml-vocab-llama-bpe.gguf.inp"), &inp_len);
    CHECK(inp, "llama-bpe .inp");
    if (!inp)
        return;
    int n_names = 0, n_ok = 0;
    const char *name_i;
    for (int k = 0; (name_i = tok_bpe_pre_name(k)); k++) {
        const char *const *name = &name_i;
        tok_desc d;
        memset(&d, 0, sizeof d);
        d.bos = d.eos = d.eot = d.eom = d.unk = d.sep = d.pad = d.cls = d.mask = -1;
        d.fim_pre = d.fim_suf = d.fim_mid = d.fim_pad = d.fim_rep = d.fim_sep = -1;
        d.add_bos = d.add_eos = d.add_sep = d.add_space_prefix = d.lowercase = d.strip_accents = -1;
        d.model = "gpt2";
        d.pre = *name;
        d.n_tokens = 256;
        d.tok = toks;
        d.tok_len = lens;
        d.n_merges = 1;
        d.merge = merge;
        d.merge_len = merge_len;
        lm_vocab *v;
        char err[256] = "";
        n_names++;
        int rc = tok_vocab_build(&d, &v, err, sizeof err);
        CHECK(rc == LM_OK, "pre-tokenizer '%s': %s", *name, err);
        if (rc)
            continue;
        CHECK(!strcmp(lm_vocab_pre(v), *name), "pre name '%s'", lm_vocab_pre(v));
        bool ok = true;
        for (char *s = inp, *end; (end = strstr(s, SEP)); s = end + strlen(SEP)) {
            size_t len = (size_t)(end - s);
            int32_t *ids;
            int64_t n;
            rc = lm_tokenize(v, s, len, false, false, &ids, &n, err, sizeof err);
            bool cover = rc == LM_OK && (size_t)n == len; /* one byte token per byte */
            for (int64_t i = 0; cover && i < n; i++)
                cover = ids[i] == (int32_t)(unsigned char)s[i];
            if (!cover) {
                fprintf(stderr, "pre-tokenizer '%s' on '", *name);
                print_escaped(stderr, s, len);
                fprintf(stderr, "': %s\n", rc ? err : "pieces do not cover the text");
            }
            ok = ok && cover;
            free(ids);
        }
        CHECK(ok, "pre-tokenizer '%s' lost or reordered text", *name);
        n_ok += ok;
        lm_vocab_free(v);
    }
    printf("%d/%d pre-tokenizer names compile and split losslessly\n", n_ok, n_names);
    free(inp);

    /* refusals */
    tok_desc d;
    memset(&d, 0, sizeof d);
    d.bos = d.eos = d.eot = d.eom = d.unk = d.sep = d.pad = d.cls = d.mask = -1;
    d.fim_pre = d.fim_suf = d.fim_mid = d.fim_pad = d.fim_rep = d.fim_sep = -1;
    d.add_bos = d.add_eos = d.add_sep = d.add_space_prefix = d.lowercase = d.strip_accents = -1;
    d.model = "gpt2";
    d.pre = "no-such-pre";
    d.n_tokens = 256;
    d.tok = toks;
    d.tok_len = lens;
    d.n_merges = 1;
    d.merge = merge;
    d.merge_len = merge_len;
    lm_vocab *v = (lm_vocab *)1;
    char err[256] = "";
    CHECK(tok_vocab_build(&d, &v, err, sizeof err) == LM_ERR_UNSUPPORTED && !v && strstr(err, "no-such-pre"),
          "an unknown pre-tokenizer: '%s'", err);
    d.pre = "qwen2";
    d.n_merges = 0;
    CHECK(tok_vocab_build(&d, &v, err, sizeof err) == LM_ERR_NOT_FOUND && !v, "BPE without merges: '%s'", err);
    d.model = "t5";
    CHECK(tok_vocab_build(&d, &v, err, sizeof err) == LM_ERR_UNSUPPORTED && !v && strstr(err, "t5"),
          "an unknown tokenizer model: '%s'", err);
}

/* SPM with parse_special: the text after a special token gets the space prefix again (llama.cpp). */
static void test_spm_specials(const lm_vocab *spm)
{
    if (!spm)
        return;
    int32_t *a, *b;
    int64_t na, nb;
    lm_tokenize(spm, "Hello", 5, false, false, &a, &na, NULL, 0);
    lm_tokenize(spm, "<s>Hello</s>", 12, false, true, &b, &nb, NULL, 0);
    CHECK(na >= 1 && nb == na + 2 && b[0] == 1 && b[nb - 1] == 2 && !memcmp(b + 1, a, (size_t)na * sizeof *a),
          "spm: '<s>Hello</s>' with parse_special");
    free(a);
    free(b);
    lm_tokenize(spm, "Hello", 5, true, false, &a, &na, NULL, 0);
    CHECK(na >= 2 && a[0] == 1 && lm_vocab_add_bos(spm) && !lm_vocab_add_eos(spm), "spm: BOS added");
    char *t;
    lm_detokenize(spm, a, na, false, &t, NULL, NULL, 0);
    CHECK(t && !strcmp(t, " Hello"), "spm detok after BOS keeps the space (as llama.cpp): '%s'", t ? t : "(null)");
    free(t);
    lm_detokenize(spm, a + 1, na - 1, false, &t, NULL, NULL, 0);
    CHECK(t && !strcmp(t, "Hello"), "spm detok of a stream's first piece drops the space: '%s'", t ? t : "(null)");
    free(t);
    /* the same piece later in a stream keeps its space */
    int32_t twice[2] = { a[1], a[1] };
    lm_detokenize(spm, twice, 2, false, &t, NULL, NULL, 0);
    CHECK(t && !strcmp(t, "Hello Hello"), "spm detok: only the first piece loses its space: '%s'", t ? t : "(null)");
    free(t);
    free(a);
    /* a text that starts with the BOS text gets one BOS, and a warning */
    unsigned warn = 0;
    lm_tokenize_w(spm, "<s>Hello", 8, true, true, &a, &na, &warn, NULL, 0);
    CHECK(na >= 2 && a[0] == 1 && a[1] != 1 && (warn & LM_TOKENIZE_WARN_BOS_TWICE), "spm: '<s>Hello' gets one BOS (warn %u)",
          warn);
    free(a);
    lm_tokenize_w(spm, "Hello", 5, true, true, &a, &na, &warn, NULL, 0);
    CHECK(na >= 2 && a[0] == 1 && !warn, "spm: 'Hello' gets BOS, no warning (warn %u)", warn);
    free(a);
    CHECK(lm_vocab_nl(spm) == 13, "spm newline token %d (<0x0A>)", lm_vocab_nl(spm));
    CHECK(!strcmp(lm_vocab_kind(spm), "spm") && !strcmp(lm_vocab_pre(spm), ""), "spm kind");
}

/* WPM: [CLS] ... [SEP], lowercased, accents stripped, "##" pieces joined on output. */
static void test_wpm(void)
{
    lm_vocab *v = open_gguf_vocab("tokenizer-vectors/ggml-vocab-bert-bge.gguf");
    if (!v)
        return;
    int32_t *ids;
    int64_t n;
    const char *s = "H\xc3\xa9llo, W\xc3\xb6rld!";
    lm_tokenize(v, s, strlen(s), true, false, &ids, &n, NULL, 0);
    CHECK(n >= 4 && ids[0] == 101 && ids[n - 1] == 102, "wpm: [CLS] ... [SEP]");
    char *t;
    lm_detokenize(v, ids, n, false, &t, NULL, NULL, 0);
    /* no space prefix to drop (llama.cpp's add_space_prefix is false for wpm); spaces cleaned up */
    CHECK(t && !strcmp(t, " hello, world!"), "wpm detok: '%s'", t ? t : "(null)");
    free(t);
    free(ids);
    lm_tokenize(v, "unaffable", 9, false, false, &ids, &n, NULL, 0);
    CHECK(n > 1, "wpm: a word in pieces");
    lm_detokenize(v, ids, n, false, &t, NULL, NULL, 0);
    CHECK(t && !strcmp(t, " unaffable"), "wpm: pieces join: '%s'", t ? t : "(null)");
    free(t);
    free(ids);
    char longword[256];
    memset(longword, 'a', 150);
    lm_tokenize(v, longword, 150, false, false, &ids, &n, NULL, 0);
    CHECK(n == 1 && ids[0] == lm_vocab_unk(v), "wpm: a word over 100 characters is [UNK]");
    free(ids);
    lm_vocab_free(v);
}

/* A small SPM vocab without byte tokens or an unknown token: a character with no token is an error;
 * clean_up_tokenization_spaces when the vocab asks for it, whole and streaming alike. */
static lm_vocab *small_spm(int clean_spaces)
{
    static const char *const toks[] = { "<s>", "</s>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a",
                                        "\xe2\x96\x81" "b", "\xe2\x96\x81,", "\xe2\x96\x81.", "\xe2\x96\x81'", "s", "x", "y" };
    enum { N = sizeof toks / sizeof toks[0] };
    size_t lens[N];
    float scores[N];
    int32_t types[N];
    for (int i = 0; i < N; i++) {
        lens[i] = strlen(toks[i]);
        scores[i] = (float)-i;
        types[i] = i < 2 ? LM_TOKEN_CONTROL : LM_TOKEN_NORMAL;
    }
    tok_desc d;
    memset(&d, 0, sizeof d);
    d.model = "llama";
    d.n_tokens = N;
    d.tok = toks;
    d.tok_len = lens;
    d.score = scores;
    d.type = types;
    d.bos = 0, d.eos = 1, d.unk = N; /* N: none */
    d.eot = d.eom = d.sep = d.pad = d.cls = d.mask = -1;
    d.fim_pre = d.fim_suf = d.fim_mid = d.fim_pad = d.fim_rep = d.fim_sep = -1;
    d.add_bos = d.add_eos = d.add_sep = d.add_space_prefix = d.lowercase = d.strip_accents = -1;
    d.clean_spaces = clean_spaces;
    lm_vocab *v = NULL;
    char err[256] = "";
    int rc = tok_vocab_build(&d, &v, err, sizeof err);
    CHECK(rc == LM_OK, "small spm vocab: %s", err);
    return v;
}

static void test_small_spm(void)
{
    lm_vocab *v = small_spm(1), *plain = small_spm(-1);
    if (!v || !plain) {
        lm_vocab_free(v);
        lm_vocab_free(plain);
        return;
    }
    int32_t *ids;
    int64_t n;
    char err[256] = "";
    int rc = lm_tokenize(v, "ab \xc3\xa9", 5, false, false, &ids, &n, err, sizeof err);
    CHECK(rc == LM_ERR_INVALID && !ids && strstr(err, "U+00E9") && strstr(err, "offset 3"),
          "a character with no token is an error: rc %d '%s'", rc, err);
    free(ids);
    static const struct { const char *in, *clean; } cases[] = {
        { "a , b 's .", "a, b's." }, { "x ' y", "x'y" }, { "a ' .", "a '." }, { "a b", "a b" }, { "a ", "a " },
        { "a 'sb", "a'sb" }, { "a '", "a '" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *in = cases[i].in;
        for (int k = 0; k < 2; k++) {
            const lm_vocab *u = k ? plain : v;
            const char *want = k ? in : cases[i].clean;
            rc = lm_tokenize(u, in, strlen(in), false, false, &ids, &n, err, sizeof err);
            CHECK(rc == LM_OK, "small spm '%s': %s", in, err);
            if (rc)
                continue;
            char *t = NULL;
            lm_detokenize(u, ids, n, false, &t, NULL, NULL, 0);
            CHECK(t && !strcmp(t, want), "clean_spaces %d: '%s' -> '%s', want '%s'", !k, in, t ? t : "(null)", want);
            size_t sl;
            bool chunks_ok;
            char *st = stream_detok(u, ids, n, &sl, &chunks_ok);
            CHECK(st && !strcmp(st, want), "clean_spaces %d streaming: '%s' -> '%s'", !k, in, st ? st : "(null)");
            free(st);
            free(t);
            free(ids);
        }
    }
    lm_vocab_free(v);
    lm_vocab_free(plain);
}

/* ------------------------------------------------- cutting special tokens out of a long text */

/* The reference: special tokens are cut out the old way, one pass over the fragments per special token,
 * in the vocab's order (longest text first, ties: lowest id), each fragment searched from its left end
 * (so the leftmost occurrence is cut first and the search goes on to its right); LSTRIP / RSTRIP drop
 * the whitespace next to the token, inside its fragment. The fragments are a linked list (empty raw
 * fragments allowed), the raw ones are then tokenized one by one. */
typedef struct ref_frag {
    int32_t id; /* -1: raw text */
    size_t off, len;
    size_t next; /* SIZE_MAX at the end */
} ref_frag;

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int ref_tokenize(const lm_vocab *v, const char *text, size_t len, bool parse_special, tok_ids *out,
                        int64_t *n_cut)
{
    size_t n = 1, cap = 64;
    ref_frag *f = malloc(cap * sizeof *f);
    if (!f)
        return LM_ERR_NOMEM;
    f[0] = (ref_frag){ -1, 0, len, SIZE_MAX };
    *n_cut = 0;
    for (int32_t s = 0; s < v->n_special; s++) {
        int32_t id = v->special[s];
        int t = v->type[id];
        if (!parse_special && t != LM_TOKEN_USER_DEFINED)
            continue;
        const char *st = tok_text(v, id);
        size_t sl = v->tok[id].len;
        for (size_t i = 0; i != SIZE_MAX;) {
            if (f[i].id >= 0 || f[i].len < sl) {
                i = f[i].next;
                continue;
            }
            const char *m = memmem(text + f[i].off, f[i].len, st, sl);
            if (!m) {
                i = f[i].next;
                continue;
            }
            if (n + 2 > cap) {
                cap *= 2;
                ref_frag *p = realloc(f, cap * sizeof *f);
                if (!p) {
                    free(f);
                    return LM_ERR_NOMEM;
                }
                f = p;
            }
            size_t off = f[i].off, end = off + f[i].len, pos = (size_t)(m - text);
            size_t lend = pos, rbeg = pos + sl;
            if (v->attr[id] & TOK_ATTR_LSTRIP)
                while (lend > off && is_ws(text[lend - 1]))
                    lend--;
            if (v->attr[id] & TOK_ATTR_RSTRIP)
                while (rbeg < end && is_ws(text[rbeg]))
                    rbeg++;
            size_t tk = n++, right = n++;
            f[right] = (ref_frag){ -1, rbeg, end - rbeg, f[i].next };
            f[tk] = (ref_frag){ id, pos, sl, right };
            f[i].len = lend - off;
            f[i].next = tk;
            (*n_cut)++;
            i = right;
        }
    }
    int rc = LM_OK;
    for (size_t i = 0; i != SIZE_MAX && rc == LM_OK; i = f[i].next) {
        if (f[i].id >= 0) {
            if (!tok_ids_push(out, f[i].id))
                rc = LM_ERR_NOMEM;
            continue;
        }
        if (!f[i].len)
            continue;
        int32_t *ids;
        int64_t k;
        rc = lm_tokenize(v, text + f[i].off, f[i].len, false, parse_special, &ids, &k, NULL, 0);
        for (int64_t j = 0; rc == LM_OK && j < k; j++)
            if (!tok_ids_push(out, ids[j]))
                rc = LM_ERR_NOMEM;
        free(ids);
    }
    free(f);
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* lm_tokenize(text) == the reference; the first difference is printed. */
static void check_split(const lm_vocab *v, const char *label, const char *text, size_t len, bool parse_special,
                        bool timed)
{
    int32_t *ids = NULL;
    int64_t n = 0, n_cut = 0;
    char err[256] = "";
    double t0 = now_ms();
    int rc = lm_tokenize(v, text, len, false, parse_special, &ids, &n, err, sizeof err);
    double t1 = now_ms();
    tok_ids ref = { 0 };
    int rrc = ref_tokenize(v, text, len, parse_special, &ref, &n_cut);
    double t2 = now_ms();
    CHECK(rc == LM_OK && rrc == LM_OK, "%s: lm_tokenize %d (%s), reference %d", label, rc, err, rrc);
    int64_t at = 0;
    while (at < n && at < ref.n && ids[at] == ref.p[at])
        at++;
    bool same = rc == LM_OK && rrc == LM_OK && n == ref.n && at == n;
    if (!same) {
        fprintf(stderr, "%s (parse_special %d, %zu bytes): %lld ids, reference %lld; first difference at %lld:\n ",
                label, parse_special, len, (long long)n, (long long)ref.n, (long long)at);
        int64_t from = at > 4 ? at - 4 : 0;
        print_ids(stderr, ids + from, (at + 8 < n ? at + 8 : n) - from);
        fputs("\n ", stderr);
        print_ids(stderr, ref.p + from, (at + 8 < ref.n ? at + 8 : ref.n) - from);
        fputc('\n', stderr);
        if (len <= 200) {
            fputs(" text '", stderr);
            print_escaped(stderr, text, len);
            fputs("'\n", stderr);
        }
    }
    CHECK(same, "%s (parse_special %d): the special tokens are cut as the reference cuts them", label, parse_special);
    if (timed)
        printf("%-10s %7zu bytes, parse_special %d: %lld special tokens cut, %lld ids; lm_tokenize %.1f ms "
               "(reference, one pass per special token: %.1f ms)\n",
               label, len, parse_special, (long long)n_cut, (long long)n, t1 - t0, t2 - t1);
    free(ids);
    free(ref.p);
}

/* Appends s[0..n) to b, the cut moved back to a character boundary. */
static void push_utf8_prefix(tok_buf *b, const char *s, size_t n)
{
    while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    tok_buf_push(b, s, n);
}

/* About `size` bytes of special-token texts, look-alikes (prefixes, a changed byte, a prefix run into a
 * whole token) and plain text, for a real vocab with many special tokens. */
static char *special_soup(const lm_vocab *v, tu_rng *r, size_t size, size_t *len)
{
    static const char *const plain[] = {
        "Hello", " world", ",", ".", "\n", "\n\n", "  ", "\t", " 123", " caf\xc3\xa9", " \xe6\x97\xa5\xe6\x9c\xac",
        "<", ">", "|", "<|", "|>", " <", "> ", "</", "<s>", "</s>", "user", "im_start", " the", "'s", "!!",
        "        ", "   \n", "\t\t ",
    };
    tok_buf b = { 0 };
    while (b.n < size) {
        int32_t id = v->special[tu_u32(r) % (uint32_t)v->n_special];
        const char *st = tok_text(v, id);
        size_t sl = v->tok[id].len;
        switch (tu_u32(r) % 8) {
        case 0:
        case 1: /* a whole special token */
            tok_buf_push(&b, st, sl);
            break;
        case 2: /* a proper prefix of one */
            push_utf8_prefix(&b, st, 1 + tu_u32(r) % (uint32_t)(sl > 1 ? sl - 1 : 1));
            break;
        case 3: { /* a prefix run into a whole token: "<|im_sta<|im_start|>" */
            push_utf8_prefix(&b, st, 1 + tu_u32(r) % (uint32_t)(sl > 1 ? sl - 1 : 1));
            int32_t id2 = v->special[tu_u32(r) % (uint32_t)v->n_special];
            tok_buf_push(&b, tok_text(v, id2), v->tok[id2].len);
            break;
        }
        case 4: { /* one ASCII byte changed */
            size_t at0 = b.n;
            tok_buf_push(&b, st, sl);
            size_t k = at0 + tu_u32(r) % (uint32_t)sl;
            if ((unsigned char)b.p[k] < 0x80)
                b.p[k] = b.p[k] == 'x' ? 'y' : 'x';
            break;
        }
        default: { /* plain text */
            const char *p = plain[tu_u32(r) % (sizeof plain / sizeof plain[0])];
            tok_buf_push(&b, p, strlen(p));
            break;
        }
        }
    }
    *len = b.n;
    return b.p;
}

/* A toy SPM vocab (byte fallback) whose special tokens overlap, nest, share a text and strip
 * whitespace: the cases where the order of the cuts decides the result. with_ws: also the special
 * tokens whose text starts or ends with whitespace, which a neighbour's strip can eat into. */
static lm_vocab *toy_special_vocab(bool with_ws)
{
    static const struct {
        const char *text;
        int type, attr;
    } sp[] = {
        { "AB", LM_TOKEN_CONTROL, 0 },
        { "BC", LM_TOKEN_CONTROL, 0 },
        { "BC", LM_TOKEN_USER_DEFINED, 0 }, /* the same text twice */
        { "ABCD", LM_TOKEN_CONTROL, TOK_ATTR_LSTRIP },
        { "XA", LM_TOKEN_USER_DEFINED, TOK_ATTR_RSTRIP },
        { "A", LM_TOKEN_USER_DEFINED, 0 },
        { "  ", LM_TOKEN_USER_DEFINED, 0 },
        { "\n\n", LM_TOKEN_USER_DEFINED, TOK_ATTR_LSTRIP },
        { "CD", LM_TOKEN_CONTROL, TOK_ATTR_LSTRIP | TOK_ATTR_RSTRIP },
        { "D A", LM_TOKEN_USER_DEFINED, 0 },
        { "B", LM_TOKEN_CONTROL, 0 },
        { "CDX", LM_TOKEN_USER_DEFINED, TOK_ATTR_RSTRIP },
        { "DXAB", LM_TOKEN_CONTROL, 0 },
        { "ABAB", LM_TOKEN_USER_DEFINED, 0 },
        { "BAB", LM_TOKEN_CONTROL, TOK_ATTR_RSTRIP },
        { "X", LM_TOKEN_CONTROL, TOK_ATTR_LSTRIP },
        { "YYY", LM_TOKEN_CONTROL, TOK_ATTR_RSTRIP }, /* eats into a "\tZ" after it */
        { "\tZ", LM_TOKEN_USER_DEFINED, 0 },
        { "WWW", LM_TOKEN_CONTROL, TOK_ATTR_LSTRIP }, /* eats into a "Z\t" before it */
        { "Z\t", LM_TOKEN_USER_DEFINED, 0 },
    };
    enum { NS = sizeof sp / sizeof sp[0], N = 3 + 256 + NS };
    static char names[256][8];
    const char *toks[N];
    size_t lens[N];
    float scores[N];
    int32_t types[N];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = LM_TOKEN_UNKNOWN, types[1] = types[2] = LM_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        toks[3 + b] = names[b];
        types[3 + b] = LM_TOKEN_BYTE;
    }
    for (int i = 0; i < NS; i++) {
        size_t l = strlen(sp[i].text);
        bool ws = is_ws(sp[i].text[0]) || is_ws(sp[i].text[l - 1]);
        toks[259 + i] = !with_ws && ws ? "<unused>" : sp[i].text;
        types[259 + i] = !with_ws && ws ? LM_TOKEN_UNUSED : sp[i].type;
    }
    for (int i = 0; i < N; i++) {
        lens[i] = strlen(toks[i]);
        scores[i] = (float)-i;
    }
    tok_desc d;
    memset(&d, 0, sizeof d);
    d.model = "llama";
    d.n_tokens = N;
    d.tok = toks;
    d.tok_len = lens;
    d.score = scores;
    d.type = types;
    d.bos = 1, d.eos = 2, d.unk = 0;
    d.eot = d.eom = d.sep = d.pad = d.cls = d.mask = -1;
    d.fim_pre = d.fim_suf = d.fim_mid = d.fim_pad = d.fim_rep = d.fim_sep = -1;
    d.add_bos = d.add_eos = d.add_sep = d.add_space_prefix = d.lowercase = d.strip_accents = d.clean_spaces = -1;
    lm_vocab *v = NULL;
    char err[256] = "";
    int rc = tok_vocab_build(&d, &v, err, sizeof err);
    CHECK(rc == LM_OK, "toy special vocab: %s", err);
    if (v)
        for (int i = 0; i < NS; i++)
            v->attr[259 + i] |= (uint8_t)sp[i].attr;
    return v;
}

/* One pass cuts the special tokens out exactly as the old one pass per special token did: on the toy
 * vocab's overlapping, nested and stripping specials over random short texts, and on ~1 MB texts of
 * special-token texts, look-alikes and plain text for vocabs with hundreds of special tokens. */
static void test_special_split(const lm_vocab *llama3, const lm_vocab *qwen2, const lm_vocab *spm)
{
    tu_rng r = { tu_seed("special split") };
    lm_vocab *phi3 = open_gguf_vocab("tokenizer-vectors/ggml-vocab-phi-3.gguf"); /* its specials strip on the right */
    lm_vocab *dsllm = open_gguf_vocab("tokenizer-vectors/ggml-vocab-deepseek-llm.gguf"); /* 2400 specials */
    lm_vocab *neox = open_gguf_vocab("tokenizer-vectors/ggml-vocab-gpt-neox.gguf"); /* specials of spaces */
    int n_rstrip = 0;
    for (int32_t i = 0; phi3 && i < phi3->n_special; i++)
        n_rstrip += (phi3->attr[phi3->special[i]] & TOK_ATTR_RSTRIP) != 0;
    CHECK(!phi3 || n_rstrip > 0, "phi-3: no special token strips on the right");
    lm_vocab *toy = toy_special_vocab(true), *toy_nows = toy_special_vocab(false);
    if (toy && toy_nows) {
        static const char alpha[] = "ABCDX \n<s>/YZW\t";
        char s[64];
        for (int k = 0; k < 6000; k++) {
            size_t n = tu_u32(&r) % 48;
            for (size_t i = 0; i < n; i++)
                s[i] = alpha[tu_u32(&r) % (sizeof alpha - 1)];
            check_split(k % 3 ? toy : toy_nows, "toy", s, n, k & 1, false);
        }
        static const char *const fixed[] = { "ABCD", "XABCD", "ABAB", "DXABCD", "  ABCD  XA  CD  X", "BCBC",
                                             "A\n\n\nAB", "D A  D", "<unk><s></s>", "CDXAB", "YYY\tZ",
                                             "Z\tWWW", "YYY \t\tZ\tZ\t WWW", "Z\tYYY\tZ" };
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            for (int k = 0; k < 4; k++)
                check_split(k & 2 ? toy_nows : toy, "toy", fixed[i], strlen(fixed[i]), k & 1, false);
        size_t n = 32 << 10;
        char *big = malloc(n);
        if (big) {
            for (size_t i = 0; i < n; i++)
                big[i] = alpha[tu_u32(&r) % 6]; /* "ABCDX ": specials at almost every byte */
            check_split(toy, "toy", big, n, true, true);
            free(big);
        }
    }
    lm_vocab_free(toy);
    lm_vocab_free(toy_nows);
    const struct {
        const char *label;
        const lm_vocab *v;
        size_t size;
    } real[] = { { "llama-bpe", llama3, 1 << 20 }, { "qwen2", qwen2, 1 << 20 }, { "llama-spm", spm, 256 << 10 },
                 { "phi-3", phi3, 256 << 10 }, { "ds-llm", dsllm, 64 << 10 }, { "gpt-neox", neox, 256 << 10 } };
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        const lm_vocab *v = real[i].v;
        if (!v || !v->n_special)
            continue;
        size_t len;
        char *text = special_soup(v, &r, real[i].size, &len);
        CHECK(text, "%s: out of memory", real[i].label);
        if (!text)
            continue;
        check_split(v, real[i].label, text, len, true, true);
        check_split(v, real[i].label, text, len, false, true);
        /* short pieces too, with the text's start and end cut anywhere */
        for (int k = 0; k < 300; k++) {
            size_t at = tu_u32(&r) % (uint32_t)(len - 64), n = tu_u32(&r) % 64;
            while (at && ((unsigned char)text[at] & 0xC0) == 0x80)
                at--;
            while (n && ((unsigned char)text[at + n] & 0xC0) == 0x80)
                n--;
            check_split(v, real[i].label, text + at, n, k & 1, false);
        }
        free(text);
        /* nothing but special tokens: the time is the cutting's alone */
        tok_buf b = { 0 };
        while (b.n < real[i].size) {
            int32_t id = v->special[tu_u32(&r) % (uint32_t)v->n_special];
            tok_buf_push(&b, tok_text(v, id), v->tok[id].len);
        }
        CHECK(b.p, "%s: out of memory", real[i].label);
        if (b.p)
            check_split(v, real[i].label, b.p, b.n, true, true);
        tok_buf_free(&b);
    }
    lm_vocab_free(phi3);
    lm_vocab_free(dsllm);
    lm_vocab_free(neox);
}

/* Pathological text (issue 11): a long run of one character (a letter, a space, a newline, a Cyrillic
 * letter), scripts alternating at every character, a run of digits, 256 KiB each, through every kind of
 * tokenizer: each must finish (ctest's timeout catches a hang) and give back the text. The times are
 * printed, not asserted (1 MiB inputs measured: bench/RESULTS.md); a quadratic split would take minutes. */
static void test_pathological(void)
{
    static const char *const vocabs[] = { "llama-bpe", "qwen2", "llama-spm", "gpt-2", "deepseek-llm", "bert-bge" };
    static const char *const units[] = { "a", " ", "\n", "\xd0\xaf", "1" };
    static const char *const mix[] = { "a", "\xd0\xaf", "\xe4\xb8\xad", "\xd8\xa7", "1", " ", "!", "\xc3\xa9" };
    const size_t size = 256 << 10;
    tu_rng r = { 0x9A7 };
    for (size_t vi = 0; vi < sizeof vocabs / sizeof vocabs[0]; vi++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tokenizer-vectors/ggml-vocab-%s.gguf", vocabs[vi]);
        lm_vocab *v = open_gguf_vocab(rel);
        if (!v)
            continue;
        bool wpm = !strcmp(vocabs[vi], "bert-bge"); /* WordPiece lowercases and splits: no round trip */
        for (size_t k = 0; k <= sizeof units / sizeof units[0]; k++) {
            char *text = malloc(size + 8);
            size_t n = 0;
            while (n < size) {
                const char *u = k < sizeof units / sizeof units[0] ? units[k] : mix[tu_u32(&r) % 8];
                size_t ul = strlen(u);
                memcpy(text + n, u, ul);
                n += ul;
            }
            int32_t *ids = NULL;
            int64_t n_ids = 0;
            char err[256] = "";
            double t0 = now_ms();
            int rc = lm_tokenize(v, text, n, false, false, &ids, &n_ids, err, sizeof err);
            double t1 = now_ms();
            const char *what = k < sizeof units / sizeof units[0] ? units[k] : "mixed scripts";
            CHECK(rc == LM_OK && (n_ids > 0 || wpm), "%s: %zu bytes of '%s': %s", vocabs[vi], n, what, err);
            if (rc == LM_OK && !wpm) {
                char *back = NULL;
                size_t blen = 0;
                rc = lm_detokenize(v, ids, n_ids, false, &back, &blen, err, sizeof err);
                /* SentencePiece gives back its leading space (add_dummy_prefix) */
                const char *b = back;
                if (rc == LM_OK && blen == n + 1 && b[0] == ' ')
                    b++, blen--;
                CHECK(rc == LM_OK && blen == n && !memcmp(b, text, n), "%s: '%s' does not come back (%zu of %zu bytes)",
                      vocabs[vi], what, blen, n);
                free(back);
            }
            printf("%-13s %7zu bytes of %-14s %8lld tokens in %6.1f ms\n", vocabs[vi], n,
                   k == 1 ? "' '" : k == 2 ? "'\\n'" : what, (long long)n_ids, t1 - t0);
            free(ids);
            free(text);
        }
        lm_vocab_free(v);
    }
}

int main(void)
{
    test_small_spm();
    test_pathological();
    test_vectors();
    test_falcon();
    test_llama2c();
    test_all_pretokenizers();
    test_wpm();
    lm_vocab *llama3 = open_gguf_vocab("tokenizer-vectors/ggml-vocab-llama-bpe.gguf");
    lm_vocab *qwen2 = open_gguf_vocab("tokenizer-vectors/ggml-vocab-qwen2.gguf");
    lm_vocab *spm = open_gguf_vocab("tokenizer-vectors/ggml-vocab-llama-spm.gguf");
    test_streaming(llama3, spm);
    if (spm)
        test_invalid_utf8(spm);
    if (llama3)
        test_invalid_utf8(llama3);
    test_specials(llama3, qwen2);
    test_spm_specials(spm);
    test_special_split(llama3, qwen2, spm);
    test_errors();
    lm_vocab_free(llama3);
    lm_vocab_free(qwen2);
    lm_vocab_free(spm);
    return tu_finish("test_tokenizer");
}
