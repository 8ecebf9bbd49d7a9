/* tok_load.c: vocabularies from files: the tokenizer metadata of a GGUF file (tokenizer.ggml.*) and
 * llama2.c's tokenizer.bin. Both fill a tok_desc of plain arrays for tok_vocab_build (tok.c). */
#include "tok_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void desc_init(tok_desc *d)
{
    memset(d, 0, sizeof *d);
    d->bos = d->eos = d->eot = d->eom = d->unk = d->sep = d->pad = d->cls = d->mask = -1;
    d->fim_pre = d->fim_suf = d->fim_mid = d->fim_pad = d->fim_rep = d->fim_sep = -1;
    d->add_bos = d->add_eos = d->add_sep = d->add_space_prefix = d->lowercase = d->strip_accents = -1;
    d->clean_spaces = -1;
}

/* An optional token-id key: absent leaves *out at -1; a negative value means none. */
static int gguf_id(const lm_gguf *g, const char *key, int64_t *out, char *err, size_t errlen)
{
    int64_t v;
    int rc = lm_gguf_get_i64(g, key, &v);
    if (rc == LM_ERR_NOT_FOUND)
        return LM_OK;
    if (rc)
        return lm_fail(err, errlen, rc, "%s: not an integer", key);
    *out = v < 0 ? INT64_MAX : v;
    return LM_OK;
}

static int gguf_flag(const lm_gguf *g, const char *key, int *out, char *err, size_t errlen)
{
    bool b;
    int rc = lm_gguf_get_bool(g, key, &b);
    if (rc == LM_ERR_NOT_FOUND)
        return LM_OK;
    if (rc)
        return lm_fail(err, errlen, rc, "%s: not a bool", key);
    *out = b;
    return LM_OK;
}

static int gguf_opt_str(const lm_gguf *g, const char *key, const char **out, char *err, size_t errlen)
{
    int rc = lm_gguf_get_str(g, key, out, NULL);
    if (rc == LM_ERR_NOT_FOUND) {
        *out = NULL;
        return LM_OK;
    }
    if (rc)
        return lm_fail(err, errlen, rc, "%s: not a string", key);
    return LM_OK;
}

/* A string array as (ptr, len) arrays; *n = 0 and LM_OK when the key is absent and !required. */
static int gguf_strs(const lm_gguf *g, const char *key, bool required, const char ***s, size_t **len,
                     int64_t *n, char *err, size_t errlen)
{
    int et;
    uint64_t cnt;
    const void *data;
    *s = NULL;
    *len = NULL;
    *n = 0;
    int rc = lm_gguf_get_arr(g, key, &et, &cnt, &data);
    if (rc == LM_ERR_NOT_FOUND && !required)
        return LM_OK;
    if (rc == LM_ERR_NOT_FOUND)
        return lm_fail(err, errlen, rc, "%s is missing", key);
    if (rc || et != LM_GGUF_STR)
        return lm_fail(err, errlen, LM_ERR_TYPE, "%s: not an array of strings", key);
    if (cnt > INT32_MAX)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "%s: %llu entries", key, (unsigned long long)cnt);
    *s = malloc((cnt ? cnt : 1) * sizeof **s);
    *len = malloc((cnt ? cnt : 1) * sizeof **len);
    if (!*s || !*len)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < cnt; i++) {
        rc = lm_gguf_get_arr_str(g, key, i, &(*s)[i], &(*len)[i]);
        if (rc)
            return lm_fail(err, errlen, rc, "%s[%llu]: cannot read", key, (unsigned long long)i);
    }
    *n = (int64_t)cnt;
    return LM_OK;
}

/* A numeric array of at least n entries converted to float (as_float) or int32. */
static int gguf_nums(const lm_gguf *g, const char *key, int64_t n, bool as_float, void **out, char *err,
                     size_t errlen)
{
    int et;
    uint64_t cnt;
    const void *data;
    *out = NULL;
    int rc = lm_gguf_get_arr(g, key, &et, &cnt, &data);
    if (rc == LM_ERR_NOT_FOUND)
        return LM_OK;
    if (rc)
        return lm_fail(err, errlen, LM_ERR_TYPE, "%s: not an array", key);
    if (cnt < (uint64_t)n)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "%s has %llu entries for %lld tokens", key,
                       (unsigned long long)cnt, (long long)n);
    void *p = malloc((size_t)(n ? n : 1) * 4);
    if (!p)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
    *out = p;
    if (data && et == (as_float ? LM_GGUF_F32 : LM_GGUF_I32)) { /* the usual case: copy (may be unaligned) */
        memcpy(p, data, (size_t)n * 4);
        return LM_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        if (as_float) {
            double x;
            if (lm_gguf_arr_f64(g, key, (uint64_t)i, &x)) {
                int64_t k;
                if (lm_gguf_arr_i64(g, key, (uint64_t)i, &k))
                    return lm_fail(err, errlen, LM_ERR_TYPE, "%s: not numbers", key);
                x = (double)k;
            }
            ((float *)p)[i] = (float)x;
        } else {
            int64_t k;
            if (lm_gguf_arr_i64(g, key, (uint64_t)i, &k))
                return lm_fail(err, errlen, LM_ERR_TYPE, "%s: not integers", key);
            ((int32_t *)p)[i] = k < INT32_MIN || k > INT32_MAX ? 0 : (int32_t)k;
        }
    }
    return LM_OK;
}

int lm_vocab_from_gguf(const lm_gguf *g, lm_vocab **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!g)
        return lm_fail(err, errlen, LM_ERR_INVALID, "lm_vocab_from_gguf: no file");
    tok_desc d;
    desc_init(&d);
    const char **tok = NULL, **merge = NULL;
    size_t *tok_len = NULL, *merge_len = NULL;
    float *score = NULL;
    int32_t *type = NULL;
    int rc = lm_gguf_get_str(g, "tokenizer.ggml.model", &d.model, NULL);
    if (rc == LM_ERR_NOT_FOUND) {
        rc = lm_fail(err, errlen, rc, "the file has no tokenizer (tokenizer.ggml.model is missing)");
        goto out;
    }
    if (rc) {
        rc = lm_fail(err, errlen, rc, "tokenizer.ggml.model: not a string");
        goto out;
    }
    if ((rc = gguf_opt_str(g, "tokenizer.ggml.pre", &d.pre, err, errlen)) ||
        (rc = gguf_opt_str(g, "general.name", &d.name, err, errlen)))
        goto out;
    if (strcmp(d.model, "llama") && strcmp(d.model, "gpt2") && strcmp(d.model, "bert")) {
        rc = lm_fail(err, errlen, LM_ERR_UNSUPPORTED,
                     "tokenizer model '%s' is not supported (supported: llama, gpt2, bert)", d.model);
        goto out;
    }
    if ((rc = gguf_strs(g, "tokenizer.ggml.tokens", true, &tok, &tok_len, &d.n_tokens, err, errlen)) ||
        (rc = gguf_strs(g, "tokenizer.ggml.merges", false, &merge, &merge_len, &d.n_merges, err, errlen)) ||
        (rc = gguf_nums(g, "tokenizer.ggml.scores", d.n_tokens, true, (void **)&score, err, errlen)) ||
        (rc = gguf_nums(g, "tokenizer.ggml.token_type", d.n_tokens, false, (void **)&type, err, errlen)))
        goto out;
    d.tok = tok;
    d.tok_len = tok_len;
    d.merge = merge;
    d.merge_len = merge_len;
    d.score = score;
    d.type = type;
    static const struct {
        const char *key;
        size_t off;
    } ids[] = {
        { "tokenizer.ggml.bos_token_id", offsetof(tok_desc, bos) },
        { "tokenizer.ggml.eos_token_id", offsetof(tok_desc, eos) },
        { "tokenizer.ggml.eot_token_id", offsetof(tok_desc, eot) },
        { "tokenizer.ggml.eom_token_id", offsetof(tok_desc, eom) },
        { "tokenizer.ggml.unknown_token_id", offsetof(tok_desc, unk) },
        { "tokenizer.ggml.seperator_token_id", offsetof(tok_desc, sep) },
        { "tokenizer.ggml.padding_token_id", offsetof(tok_desc, pad) },
        { "tokenizer.ggml.cls_token_id", offsetof(tok_desc, cls) },
        { "tokenizer.ggml.mask_token_id", offsetof(tok_desc, mask) },
        { "tokenizer.ggml.prefix_token_id", offsetof(tok_desc, fim_pre) },
        { "tokenizer.ggml.suffix_token_id", offsetof(tok_desc, fim_suf) },
        { "tokenizer.ggml.middle_token_id", offsetof(tok_desc, fim_mid) },
        { "tokenizer.ggml.fim_pre_token_id", offsetof(tok_desc, fim_pre) },
        { "tokenizer.ggml.fim_suf_token_id", offsetof(tok_desc, fim_suf) },
        { "tokenizer.ggml.fim_mid_token_id", offsetof(tok_desc, fim_mid) },
        { "tokenizer.ggml.fim_pad_token_id", offsetof(tok_desc, fim_pad) },
        { "tokenizer.ggml.fim_rep_token_id", offsetof(tok_desc, fim_rep) },
        { "tokenizer.ggml.fim_sep_token_id", offsetof(tok_desc, fim_sep) },
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if ((rc = gguf_id(g, ids[i].key, (int64_t *)((char *)&d + ids[i].off), err, errlen)))
            goto out;
    static const struct {
        const char *key;
        size_t off;
    } flags[] = {
        { "tokenizer.ggml.add_bos_token", offsetof(tok_desc, add_bos) },
        { "tokenizer.ggml.add_eos_token", offsetof(tok_desc, add_eos) },
        { "tokenizer.ggml.add_sep_token", offsetof(tok_desc, add_sep) },
        { "tokenizer.ggml.add_space_prefix", offsetof(tok_desc, add_space_prefix) },
        { "tokenizer.ggml.normalizer.lowercase", offsetof(tok_desc, lowercase) },
        { "tokenizer.ggml.normalizer.strip_accents", offsetof(tok_desc, strip_accents) },
        { "tokenizer.ggml.clean_up_tokenization_spaces", offsetof(tok_desc, clean_spaces) },
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if ((rc = gguf_flag(g, flags[i].key, (int *)((char *)&d + flags[i].off), err, errlen)))
            goto out;
    rc = tok_vocab_build(&d, out, err, errlen);
out:
    free(tok);
    free(tok_len);
    free(merge);
    free(merge_len);
    free(score);
    free(type);
    return rc;
}

/* llama2.c's tokenizer.bin: int32 max_token_length, then for each token float32 score, int32 length
 * and the bytes (no count: tokens run to the end of the file). Spaces are real spaces, ids 0, 1, 2
 * are <unk>, "\n<s>\n", "\n</s>\n", and byte tokens are "<0xXX>". Loaded as an SPM vocab: spaces
 * become U+2581, BOS/EOS lose their newlines, types are derived from the ids and texts. */
int lm_vocab_from_llama2c(const char *path, lm_vocab **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return lm_fail(err, errlen, LM_ERR_IO, "%s: %s", path, strerror(errno));
    /* a regular file of a tokenizer's size: not a device or a pipe that never ends (a 1M-token
     * vocabulary of 64-byte pieces is about 72 MiB) */
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > ((off_t)256 << 20)) {
        fclose(f);
        return lm_fail(err, errlen, LM_ERR_IO, "%s: not a regular file of at most 256 MiB (a llama2.c tokenizer)",
                       path);
    }
    tok_buf file = { 0 };
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && file.n <= ((size_t)256 << 20))
        if (!tok_buf_push(&file, chunk, got)) {
            fclose(f);
            tok_buf_free(&file);
            return lm_fail(err, errlen, LM_ERR_NOMEM, "%s: out of memory", path);
        }
    bool ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        tok_buf_free(&file);
        return lm_fail(err, errlen, LM_ERR_IO, "%s: read error", path);
    }

    int rc;
    const unsigned char *p = (const unsigned char *)file.p;
    size_t size = file.n, pos = 4;
    int64_t n = 0;
    tok_buf text = { 0 };
    tok_str *spans = NULL;
    const char **tok = NULL;
    size_t *tok_len = NULL;
    float *score = NULL;
    int32_t *type = NULL;
    size_t cap = 0;
    if (size < 4) {
        rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: %zu bytes, too short for a llama2.c tokenizer", path, size);
        goto out;
    }
    int32_t max_len;
    memcpy(&max_len, p, 4);
    if (max_len <= 0 || max_len > (1 << 20)) {
        rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: max_token_length %d is not plausible", path, max_len);
        goto out;
    }
    while (pos < size) {
        if (size - pos < 8) {
            rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: truncated token %lld at byte offset %zu", path,
                         (long long)n, pos);
            goto out;
        }
        float sc;
        int32_t len;
        memcpy(&sc, p + pos, 4);
        memcpy(&len, p + pos + 4, 4);
        pos += 8;
        if (len < 0 || len > max_len || (size_t)len > size - pos) {
            rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: token %lld has length %d at byte offset %zu "
                         "(max_token_length %d, %zu bytes left)", path, (long long)n, len, pos - 4, max_len,
                         size - pos);
            goto out;
        }
        if ((size_t)n == cap) {
            cap = cap ? cap * 2 : 1024;
            tok_str *ns = realloc(spans, cap * sizeof *ns);
            float *nf = ns ? realloc(score, cap * sizeof *nf) : NULL;
            int32_t *nt = nf ? realloc(type, cap * sizeof *nt) : NULL;
            if (ns)
                spans = ns;
            if (nf)
                score = nf;
            if (nt)
                type = nt;
            if (!ns || !nf || !nt) {
                rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
                goto out;
            }
        }
        const char *s = (const char *)p + pos;
        size_t l = (size_t)len;
        if (n == 1 || n == 2) { /* "\n<s>\n" -> "<s>" */
            while (l && *s == '\n')
                s++, l--;
            while (l && s[l - 1] == '\n')
                l--;
        }
        size_t start = text.n;
        for (size_t i = 0; i < l; i++) {
            bool ok = s[i] == ' ' ? tok_buf_push(&text, "\xe2\x96\x81", 3) : tok_buf_push(&text, s + i, 1);
            if (!ok) {
                rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
                goto out;
            }
        }
        if (text.n > UINT32_MAX) {
            rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: too much token text", path);
            goto out;
        }
        spans[n].off = (uint32_t)start;
        spans[n].len = (uint32_t)(text.n - start);
        score[n] = sc;
        type[n] = n == 0 ? LM_TOKEN_UNKNOWN
                : n <= 2 ? LM_TOKEN_CONTROL
                : tok_parse_byte(s, l) >= 0 ? LM_TOKEN_BYTE : LM_TOKEN_NORMAL;
        n++;
        pos += (size_t)len;
    }
    if (n < 3) {
        rc = lm_fail(err, errlen, LM_ERR_FORMAT, "%s: %lld tokens (a llama2.c tokenizer has <unk>, <s>, </s> "
                     "and more)", path, (long long)n);
        goto out;
    }
    tok = malloc((size_t)n * sizeof *tok);
    tok_len = malloc((size_t)n * sizeof *tok_len);
    if (!tok || !tok_len || !tok_buf_reserve(&text, 1)) {
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        tok[i] = text.p + spans[i].off;
        tok_len[i] = spans[i].len;
    }
    tok_desc d;
    desc_init(&d);
    d.model = "llama";
    d.n_tokens = n;
    d.tok = tok;
    d.tok_len = tok_len;
    d.score = score;
    d.type = type;
    d.unk = 0;
    d.bos = 1;
    d.eos = 2;
    rc = tok_vocab_build(&d, out, err, errlen);
out:
    tok_buf_free(&file);
    tok_buf_free(&text);
    free(spans);
    free(tok);
    free(tok_len);
    free(score);
    free(type);
    return rc;
}
