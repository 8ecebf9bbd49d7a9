/* tok_wpm.c: WordPiece ("bert" vocabularies), as HF's BertTokenizer does it.
 *
 * Basic tokenizer: with strip_accents the text is put in NFD (utf8proc) and non-spacing marks (Mn)
 * are dropped; NUL, U+FFFD and control characters are dropped; characters are lowercased (when the
 * vocab says so); whitespace (space, \t, \n, \r, Zs) separates words; punctuation (Unicode P and the
 * ASCII symbols) and CJK ideographs are words of their own.
 * WordPiece: each word is cut greedily into the longest pieces found in the vocabulary, left to
 * right; if some position matches nothing (or the word has more than 100 characters) the whole word
 * is [UNK].
 *
 * The GGUF converters rewrite BERT vocabularies the SentencePiece way: a word-initial piece "hello"
 * is stored as "\u2581hello" and a continuation "##lo" as "lo". So the first piece of a word is
 * looked up with the U+2581 prefix and the others as they are. */
#include "tok_internal.h"

#include <stdlib.h>
#include <utf8proc.h>

#define WPM_MAX_CHARS 100 /* HF's max_input_chars_per_word */

static bool is_ws(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
           utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ZS;
}

static bool is_control(uint32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return false;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
        return true;
    default:
        return false;
    }
}

static bool is_punct(uint32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return true;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return true;
    default:
        return false;
    }
}

/* The CJK blocks BERT isolates (as HF's code has them, 0x2B920 included). */
static bool is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B920 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Greedy longest-match-first over one word (UTF-8, nchars characters). */
static int wpm_word(const lm_vocab *v, const char *w, size_t len, size_t nchars, tok_ids *out, tok_buf *key)
{
    int64_t mark = out->n;
    if (nchars > WPM_MAX_CHARS)
        goto out_unk;
    for (size_t start = 0; start < len;) {
        size_t end = len - start > v->max_len ? start + v->max_len : len;
        while (end < len && ((unsigned char)w[end] & 0xC0) == 0x80)
            end--;
        int32_t id = -1;
        while (end > start) {
            key->n = 0;
            if ((start == 0 && !tok_buf_push(key, "\xe2\x96\x81", 3)) || !tok_buf_push(key, w + start, end - start))
                return LM_ERR_NOMEM;
            id = tok_find(v, key->p, key->n);
            if (id >= 0)
                break;
            do
                end--;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
        }
        if (id < 0)
            goto out_unk;
        if (!tok_ids_push(out, id))
            return LM_ERR_NOMEM;
        start = end;
    }
    return LM_OK;
out_unk:
    out->n = mark;
    if (v->unk >= 0 && !tok_ids_push(out, v->unk))
        return LM_ERR_NOMEM;
    return LM_OK;
}

int tok_wpm_encode(const lm_vocab *v, const char *text, size_t len, tok_ids *out)
{
    if (!len)
        return LM_OK;
    int rc = LM_ERR_NOMEM;
    utf8proc_int32_t *cps = NULL;
    utf8proc_ssize_t ncp;
    utf8proc_option_t opt = UTF8PROC_STABLE | (v->strip_accents ? UTF8PROC_DECOMPOSE : 0);
    size_t cap = len + 16;
    for (;;) { /* decomposition can only grow the text: retry with the size it asks for */
        utf8proc_int32_t *p = realloc(cps, cap * sizeof *cps);
        if (!p)
            goto out_free;
        cps = p;
        ncp = utf8proc_decompose((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, cps,
                                 (utf8proc_ssize_t)cap, opt);
        if (ncp < 0) {
            rc = LM_ERR_INVALID; /* the text was checked as UTF-8 before: not expected */
            goto out_free;
        }
        if ((size_t)ncp <= cap)
            break;
        cap = (size_t)ncp;
    }

    tok_buf word = { 0 }, key = { 0 };
    size_t nchars = 0;
    for (utf8proc_ssize_t i = 0; i <= ncp; i++) {
        uint32_t cp = i < ncp ? (uint32_t)cps[i] : ' ';
        bool alone = false;
        if (!is_ws(cp)) {
            if (cp == 0 || cp == 0xFFFD || is_control(cp))
                continue;
            if (v->strip_accents && utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_MN)
                continue;
            alone = is_punct(cp) || is_cjk(cp);
            if (!alone) {
                char u[4];
                if (v->lowercase)
                    cp = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
                if (!tok_buf_push(&word, u, (size_t)tok_utf8_encode(cp, u)))
                    goto out_words;
                nchars++;
                continue;
            }
        }
        /* a word ends here: at whitespace, or before a character that is a word of its own */
        if (word.n && wpm_word(v, word.p, word.n, nchars, out, &key))
            goto out_words;
        word.n = 0;
        nchars = 0;
        if (alone) {
            char u[4];
            if (v->lowercase)
                cp = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
            if (wpm_word(v, u, (size_t)tok_utf8_encode(cp, u), 1, out, &key))
                goto out_words;
        }
    }
    rc = LM_OK;
out_words:
    tok_buf_free(&word);
    tok_buf_free(&key);
out_free:
    free(cps);
    return rc;
}
