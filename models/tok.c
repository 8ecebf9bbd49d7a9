/* tok.c: what every tokenizer shares: building a vocabulary from plain arrays (the file loaders in
 * tok_load.c fill them), special tokens, splitting the input on special-token texts, the dispatch to
 * the SPM / BPE / WPM encoders, and detokenisation (whole and streaming).
 *
 * Special tokens follow llama.cpp's conventions, which the converted GGUF files assume: the texts of
 * CONTROL, USER_DEFINED and UNKNOWN tokens are cut out of the input first, longest text first
 * (CONTROL and UNKNOWN only when parse_special is set: USER_DEFINED always, as HF tokenizers do),
 * and the fragments between them are tokenized on their own. The cutting takes one pass over the
 * text for all special tokens together (a trie of their texts), then settles overlaps in the order
 * of one pass per special token (see partition). */
#include "tok_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ helpers */

static bool pair_before(const tok_pair *a, const tok_pair *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

bool tok_heap_push(tok_heap *h, tok_pair x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_pair *p = realloc(h->p, cap * sizeof *p);
        if (!p)
            return false;
        h->p = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&x, &h->p[up]))
            break;
        h->p[i] = h->p[up];
        i = up;
    }
    h->p[i] = x;
    return true;
}

tok_pair tok_heap_pop(tok_heap *h)
{
    tok_pair top = h->p[0], x = h->p[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && pair_before(&h->p[c + 1], &h->p[c]))
            c++;
        if (!pair_before(&h->p[c], &x))
            break;
        h->p[i] = h->p[c];
        i = c;
    }
    if (h->n)
        h->p[i] = x;
    return top;
}

/* Queues the pair (l, r) when it merges; false when out of memory. */
static bool queue_pair(tok_merger *mg, const char *text, int32_t l, int32_t r, tok_prio_fn prio, void *ctx)
{
    if (l < 0 || r < 0)
        return true;
    double p;
    int rc = prio(ctx, text, &mg->sym[l], &mg->sym[r], &p);
    if (rc <= 0)
        return rc == 0;
    return tok_heap_push(&mg->heap, (tok_pair){ p, l, r, mg->sym[l].n, mg->sym[r].n });
}

int tok_merge(tok_merger *mg, const char *text, size_t len, tok_prio_fn prio, void *ctx)
{
    size_t nsym = 0;
    for (size_t i = 0; i < len; i += (size_t)tok_utf8_len((unsigned char)text[i]))
        nsym++;
    if (nsym > mg->cap) {
        tok_sym *p = realloc(mg->sym, nsym * sizeof *p);
        if (!p)
            return LM_ERR_NOMEM;
        mg->sym = p;
        mg->cap = nsym;
    }
    tok_sym *sym = mg->sym;
    size_t k = 0;
    for (size_t i = 0; i < len; k++) {
        size_t n = (size_t)tok_utf8_len((unsigned char)text[i]);
        if (n > len - i)
            n = len - i;
        sym[k] = (tok_sym){ (int32_t)k - 1, k + 1 < nsym ? (int32_t)k + 1 : -1, (uint32_t)i, (uint32_t)n };
        i += n;
    }
    mg->heap.n = 0;
    for (size_t i = 1; i < nsym; i++)
        if (!queue_pair(mg, text, (int32_t)i - 1, (int32_t)i, prio, ctx))
            return LM_ERR_NOMEM;
    while (mg->heap.n) {
        tok_pair b = tok_heap_pop(&mg->heap);
        tok_sym *l = &sym[b.left], *r = &sym[b.right];
        if (!l->n || !r->n || l->n != b.ln || r->n != b.rn || l->next != b.right)
            continue; /* stale: a side was merged away or grew since the pair was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = b.left;
        if (!queue_pair(mg, text, l->prev, b.left, prio, ctx) || !queue_pair(mg, text, b.left, l->next, prio, ctx))
            return LM_ERR_NOMEM;
    }
    return LM_OK;
}

void tok_merger_free(tok_merger *mg)
{
    free(mg->sym);
    free(mg->heap.p);
}

/* FNV-1a, 32 bits: short keys, few collisions in practice, no state. */
uint32_t tok_hash(const void *s, size_t len)
{
    const unsigned char *p = s;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

int tok_map_build(tok_map *m, const char *blob, const tok_str *keys, int64_t n)
{
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2)
        cap <<= 1;
    m->mask = (uint32_t)(cap - 1);
    m->slot = malloc(cap * sizeof *m->slot);
    m->hash = malloc(cap * sizeof *m->hash);
    if (!m->slot || !m->hash) {
        tok_map_free(m);
        return LM_ERR_NOMEM;
    }
    memset(m->slot, 0xff, cap * sizeof *m->slot);
    for (int64_t i = 0; i < n; i++) {
        const char *s = blob + keys[i].off;
        uint32_t len = keys[i].len;
        uint32_t h = tok_hash(s, len);
        uint32_t j = h & m->mask;
        bool dup = false;
        while (m->slot[j] >= 0) {
            const tok_str *k = &keys[m->slot[j]];
            if (m->hash[j] == h && k->len == len && !memcmp(blob + k->off, s, len)) {
                dup = true; /* keep the first: lowest id, lowest merge rank */
                break;
            }
            j = (j + 1) & m->mask;
        }
        if (!dup) {
            m->slot[j] = (int32_t)i;
            m->hash[j] = h;
        }
    }
    return LM_OK;
}

int32_t tok_map_find(const tok_map *m, const char *blob, const tok_str *keys, const char *s, size_t len)
{
    if (!m->slot)
        return -1;
    uint32_t h = tok_hash(s, len);
    for (uint32_t j = h & m->mask; m->slot[j] >= 0; j = (j + 1) & m->mask) {
        const tok_str *k = &keys[m->slot[j]];
        if (m->hash[j] == h && k->len == len && !memcmp(blob + k->off, s, len))
            return m->slot[j];
    }
    return -1;
}

void tok_map_free(tok_map *m)
{
    free(m->slot);
    free(m->hash);
    m->slot = NULL;
    m->hash = NULL;
}

bool tok_buf_reserve(tok_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->n)
        return false;
    if (b->n + extra <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool tok_buf_push(tok_buf *b, const void *s, size_t len)
{
    if (!tok_buf_reserve(b, len + 1))
        return false;
    if (len)
        memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
    return true;
}

void tok_buf_free(tok_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

bool tok_ids_push(tok_ids *t, int32_t id)
{
    if (t->n == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *p = realloc(t->p, (size_t)cap * sizeof *p);
        if (!p)
            return false;
        t->p = p;
        t->cap = cap;
    }
    t->p[t->n++] = id;
    return true;
}

int tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong */
        if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F; /* <= U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return 0; /* valid so far, more needed */
        unsigned char b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
            return -i;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

int tok_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int32_t tok_find(const lm_vocab *v, const char *s, size_t len)
{
    return tok_map_find(&v->map, v->blob, v->tok, s, len);
}

/* ---------------------------------------------------------------------------------- building */

/* Texts that mark end-of-turn and end-of-generation tokens in converted vocabularies that do not say
 * so in their metadata (the same lists llama.cpp uses, so that models behave alike). */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL,
};
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", NULL,
};
static const char *const fim_pad_texts[] = { "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL };
static const char *const fim_rep_texts[] = {
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL,
};
static const char *const fim_sep_texts[] = { "<|file_sep|>", NULL };

static const char *const eom_texts[] = { "<|eom_id|>", NULL };

static int32_t first_of(const lm_vocab *v, const char *const *list)
{
    for (; *list; list++) {
        int32_t id = tok_find(v, *list, strlen(*list));
        if (id >= 0)
            return id;
    }
    return -1;
}

static void mark_control(lm_vocab *v, int32_t id)
{
    if (v->type[id] != LM_TOKEN_CONTROL)
        v->type[id] = LM_TOKEN_CONTROL;
}

static void find_eog(lm_vocab *v)
{
    /* the first text of each list that the vocab has (Llama 3 has both <|eot_id|> and <|end_of_text|>:
     * the end of a turn is the former) */
    if (v->eot < 0 && (v->eot = first_of(v, eot_texts)) >= 0)
        mark_control(v, v->eot);
    if (v->eom < 0 && (v->eom = first_of(v, eom_texts)) >= 0)
        mark_control(v, v->eom);
    if (v->fim_pad < 0)
        v->fim_pad = first_of(v, fim_pad_texts);
    if (v->fim_rep < 0)
        v->fim_rep = first_of(v, fim_rep_texts);
    if (v->fim_sep < 0)
        v->fim_sep = first_of(v, fim_sep_texts);
    for (const char *const *t = eog_texts; *t; t++) {
        int32_t id = tok_find(v, *t, strlen(*t));
        if (id >= 0) {
            v->eog[id] = 1;
            mark_control(v, id);
        }
    }
    const int32_t always[] = { v->fim_pad, v->fim_rep, v->fim_sep, v->eos, v->eot, v->eom };
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
        if (always[i] >= 0)
            v->eog[always[i]] = 1;
    /* gpt-oss: these structure tokens always print */
    static const char *const shown[] = { "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL };
    for (const char *const *t = shown; *t; t++) {
        int32_t id = tok_find(v, *t, strlen(*t));
        if (id >= 0)
            v->type[id] = LM_TOKEN_USER_DEFINED;
    }
    /* o200k_harmony / solar-open: <|end|> ends a message, not the generation */
    static const char *const ret[] = { "<|return|>", NULL }, *const call[] = { "<|call|>", "<|calls|>", NULL };
    static const char *const flush[] = { "<|flush|>", NULL }, *const end[] = { "<|end|>", NULL };
    int32_t end_id = first_of(v, end);
    bool has_return = first_of(v, ret) >= 0, has_call = first_of(v, call) >= 0, has_flush = first_of(v, flush) >= 0;
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
        v->eog[end_id] = 0;
        v->type[end_id] = LM_TOKEN_USER_DEFINED;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool is_special_type(int t)
{
    return t == LM_TOKEN_CONTROL || t == LM_TOKEN_USER_DEFINED || t == LM_TOKEN_UNKNOWN;
}

/* ------------------------------------------------------------------- the special-token trie */

static uint32_t trie_slot(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

/* The child of `node` by the byte c, -1 when none. */
static int32_t trie_child(const tok_trie *t, int32_t node, unsigned char c)
{
    if (!node)
        return t->first[c];
    uint64_t key = ((uint64_t)node << 8 | c) + 1;
    for (uint32_t i = trie_slot(key, t->mask);; i = (i + 1) & t->mask) {
        if (t->edge_key[i] == key)
            return t->edge_child[i];
        if (!t->edge_key[i])
            return -1;
    }
}

/* The rank of the longest special token allowed by `which` (0: any, 1: USER_DEFINED only) whose text
 * is a prefix of s[0..n), -1 when there is none. */
static int32_t trie_longest(const tok_trie *t, const unsigned char *s, size_t n, int which)
{
    int32_t best = -1, node = 0;
    for (size_t i = 0; i < n; i++) {
        node = trie_child(t, node, s[i]);
        if (node < 0)
            break;
        if (t->rank[node][which] >= 0)
            best = t->rank[node][which];
    }
    return best;
}

/* The trie of v->special's texts (see tok_trie), and v->n_special_user. */
static int build_trie(lm_vocab *v)
{
    tok_trie *t = &v->special_trie;
    uint64_t total = 0;
    for (int32_t r = 0; r < v->n_special; r++)
        total += v->tok[v->special[r]].len;
    if (total >= INT32_MAX / 4)
        return LM_ERR_NOMEM;
    size_t cap = 2;
    while (cap < 2 * (size_t)total + 2)
        cap *= 2;
    t->rank = malloc(((size_t)total + 1) * sizeof *t->rank);
    t->edge_key = calloc(cap, sizeof *t->edge_key);
    t->edge_child = malloc(cap * sizeof *t->edge_child);
    if (!t->rank || !t->edge_key || !t->edge_child)
        return LM_ERR_NOMEM;
    t->mask = (uint32_t)(cap - 1);
    for (int c = 0; c < 256; c++)
        t->first[c] = -1;
    t->rank[0][0] = t->rank[0][1] = -1;
    t->n_nodes = 1;
    v->n_special_user = 0;
    for (int32_t r = 0; r < v->n_special; r++) {
        int32_t id = v->special[r];
        const unsigned char *s = (const unsigned char *)tok_text(v, id);
        int32_t node = 0;
        for (uint32_t i = 0; i < v->tok[id].len; i++) {
            int32_t next = trie_child(t, node, s[i]);
            if (next < 0) {
                next = t->n_nodes++;
                t->rank[next][0] = t->rank[next][1] = -1;
                if (!node) {
                    t->first[s[i]] = next;
                } else {
                    uint64_t key = ((uint64_t)node << 8 | s[i]) + 1;
                    uint32_t k = trie_slot(key, t->mask);
                    while (t->edge_key[k])
                        k = (k + 1) & t->mask;
                    t->edge_key[k] = key;
                    t->edge_child[k] = next;
                }
            }
            node = next;
        }
        if (v->tok[id].len && (isspace(s[0]) || isspace(s[v->tok[id].len - 1])))
            t->ws_edge = true;
        /* a text that several special tokens share: the first in rank order (the lowest id) wins */
        if (t->rank[node][0] < 0)
            t->rank[node][0] = r;
        if (v->type[id] == LM_TOKEN_USER_DEFINED) {
            v->n_special_user++;
            if (t->rank[node][1] < 0)
                t->rank[node][1] = r;
        }
    }
    return LM_OK;
}

static void free_trie(tok_trie *t)
{
    free(t->rank);
    free(t->edge_key);
    free(t->edge_child);
}

/* The special tokens, longest text first (ties: lowest id), so that the partition prefers
 * "<|im_start|>" over a shorter special token inside it. */
static int build_specials(lm_vocab *v)
{
    int32_t n = 0;
    for (int32_t id = 0; id < v->n; id++)
        n += is_special_type(v->type[id]) && v->tok[id].len;
    uint64_t *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    v->special = malloc((size_t)(n ? n : 1) * sizeof *v->special);
    if (!keys || !v->special) {
        free(keys);
        return LM_ERR_NOMEM;
    }
    n = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (is_special_type(v->type[id]) && v->tok[id].len)
            keys[n++] = ((uint64_t)(UINT32_MAX - v->tok[id].len) << 32) | (uint32_t)id;
    qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
    for (int32_t i = 0; i < n; i++)
        v->special[i] = (int32_t)(keys[i] & 0xffffffffu);
    v->n_special = n;
    free(keys);
    return build_trie(v);
}

int tok_parse_byte(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || !isxdigit((unsigned char)s[3]) ||
        !isxdigit((unsigned char)s[4]))
        return -1;
    char hex[3] = { s[3], s[4], 0 };
    return (int)strtol(hex, NULL, 16);
}

/* What each token prints as, computed once (llama.cpp's token_to_piece with special = true). */
static int build_pieces(lm_vocab *v)
{
    tok_buf b = { 0 };
    v->piece = malloc((size_t)v->n * sizeof *v->piece);
    if (!v->piece)
        return LM_ERR_NOMEM;
    for (int32_t id = 0; id < v->n; id++) {
        const char *s = tok_text(v, id);
        size_t len = v->tok[id].len, start = b.n;
        bool ok = true;
        switch (v->type[id]) {
        case LM_TOKEN_CONTROL:
        case LM_TOKEN_UNKNOWN:
        case LM_TOKEN_USER_DEFINED:
            ok = tok_buf_push(&b, s, len);
            break;
        case LM_TOKEN_BYTE: {
            int byte = tok_parse_byte(s, len);
            char c = (char)byte;
            ok = byte >= 0 ? tok_buf_push(&b, &c, 1) : tok_buf_push(&b, s, len);
            break;
        }
        case LM_TOKEN_NORMAL:
            if (v->kind == TOK_BPE) {
                /* undo bytes-to-unicode; a code point outside the 256 is kept as it is */
                for (size_t i = 0; i < len && ok;) {
                    uint32_t cp;
                    int k = tok_utf8_decode((const unsigned char *)s + i, len - i, &cp);
                    if (k <= 0) {
                        ok = tok_buf_push(&b, s + i, 1);
                        i++;
                        continue;
                    }
                    int byte = tok_bpe_cp_to_byte(cp);
                    char c = (char)byte;
                    ok = byte >= 0 ? tok_buf_push(&b, &c, 1) : tok_buf_push(&b, s + i, (size_t)k);
                    i += (size_t)k;
                }
            } else {
                /* U+2581 (e2 96 81) -> space */
                for (size_t i = 0; i < len && ok;) {
                    if (i + 3 <= len && !memcmp(s + i, "\xe2\x96\x81", 3)) {
                        ok = tok_buf_push(&b, " ", 1);
                        i += 3;
                    } else {
                        ok = tok_buf_push(&b, s + i, 1);
                        i++;
                    }
                }
            }
            break;
        default: /* unused, undefined: print as nothing */
            break;
        }
        if (!ok || !tok_buf_push(&b, "", 1) || b.n > UINT32_MAX) {
            tok_buf_free(&b);
            return LM_ERR_NOMEM;
        }
        v->piece[id].off = (uint32_t)start;
        v->piece[id].len = (uint32_t)(b.n - start - 1); /* the NUL is not part of the piece */
    }
    v->piece_blob = b.p;
    return LM_OK;
}

/* Metadata id -> vocab id: absent keeps the default, anything out of range means none. */
static int32_t pick_id(int64_t given, int32_t dflt, int32_t n)
{
    if (given < 0)
        return dflt >= 0 && dflt < n ? dflt : -1;
    return given < n ? (int32_t)given : -1;
}

static bool name_has(const char *name, const char *what)
{
    if (!name)
        return false;
    size_t n = strlen(name), w = strlen(what);
    for (size_t i = 0; i + w <= n; i++) {
        size_t j = 0;
        while (j < w && tolower((unsigned char)name[i + j]) == what[j])
            j++;
        if (j == w)
            return true;
    }
    return false;
}

/* Per-model strip flags of special tokens that GGUF does not carry (as llama.cpp sets them). */
static void apply_quirks(lm_vocab *v, const tok_desc *d)
{
    if (name_has(d->pre, "jina-v2-de") || name_has(d->pre, "jina-v2-es") || name_has(d->pre, "jina-v2-code")) {
        int32_t id = tok_find(v, "<mask>", 6);
        if (id >= 0)
            v->attr[id] |= TOK_ATTR_LSTRIP;
    } else if (name_has(d->name, "phi-3") || name_has(d->name, "phi3")) {
        for (int32_t i = 0; i < v->n_special; i++)
            v->attr[v->special[i]] |= TOK_ATTR_RSTRIP;
        int32_t id = tok_find(v, "</s>", 4);
        if (id >= 0)
            v->attr[id] |= TOK_ATTR_RSTRIP;
        const char *no[] = { "<unk>", "<s>", "<|endoftext|>" };
        for (size_t i = 0; i < 3; i++) {
            id = tok_find(v, no[i], strlen(no[i]));
            if (id >= 0)
                v->attr[id] &= (uint8_t)~TOK_ATTR_RSTRIP;
        }
    } else if (name_has(d->name, "modern-bert")) {
        int32_t id = tok_find(v, "[MASK]", 6);
        if (id >= 0)
            v->attr[id] |= TOK_ATTR_LSTRIP;
    }
}

int tok_vocab_build(const tok_desc *d, lm_vocab **out, char *err, size_t errlen)
{
    *out = NULL;
    enum tok_kind kind;
    if (!d->model)
        return lm_fail(err, errlen, LM_ERR_NOT_FOUND, "no tokenizer model (tokenizer.ggml.model)");
    if (!strcmp(d->model, "llama"))
        kind = TOK_SPM;
    else if (!strcmp(d->model, "gpt2"))
        kind = TOK_BPE;
    else if (!strcmp(d->model, "bert"))
        kind = TOK_WPM;
    else
        return lm_fail(err, errlen, LM_ERR_UNSUPPORTED,
                       "tokenizer model '%s' is not supported (supported: llama, gpt2, bert)", d->model);
    if (d->n_tokens <= 0 || d->n_tokens > INT32_MAX)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "tokenizer has %lld tokens", (long long)d->n_tokens);

    int32_t n = (int32_t)d->n_tokens;
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++)
        total += (uint64_t)d->tok_len[i] + 1;
    if (total > UINT32_MAX)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "token texts take %llu bytes (at most 4 GiB)",
                       (unsigned long long)total);

    int rc = LM_ERR_NOMEM;
    lm_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
    v->kind = kind;
    v->n = n;
    v->blob = malloc((size_t)total);
    v->tok = malloc((size_t)n * sizeof *v->tok);
    v->score = malloc((size_t)n * sizeof *v->score);
    v->type = malloc((size_t)n);
    v->attr = calloc((size_t)n, 1);
    v->eog = calloc((size_t)n, 1);
    if (!v->blob || !v->tok || !v->score || !v->type || !v->attr || !v->eog)
        goto out_free_vocab;
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len = d->tok_len[i];
        if (len)
            memcpy(v->blob + off, d->tok[i], len);
        v->blob[off + len] = 0;
        v->tok[i].off = (uint32_t)off;
        v->tok[i].len = (uint32_t)len;
        off += len + 1;
        if (len > v->max_len)
            v->max_len = (uint32_t)len;
        v->score[i] = d->score ? d->score[i] : 0.0f;
        int t = d->type ? d->type[i] : LM_TOKEN_NORMAL;
        v->type[i] = (uint8_t)(t >= LM_TOKEN_UNDEFINED && t <= LM_TOKEN_BYTE ? t : LM_TOKEN_UNDEFINED);
    }
    if (tok_map_build(&v->map, v->blob, v->tok, n))
        goto out_free_vocab;

    /* defaults of the kind (the converters rely on them when a key is missing) */
    int32_t bos = -1, eos = -1, unk = -1, sep = -1, pad = -1, mask = -1;
    switch (kind) {
    case TOK_SPM:
        bos = 1, eos = 2, unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
        break;
    case TOK_WPM:
        bos = 101, unk = 100, sep = 102, pad = 0, mask = 103;
        v->add_bos = true;
        v->add_sep = true;
        break;
    case TOK_BPE:
        bos = 11, eos = 11;
        break;
    }
    v->bos = bos; /* tok_bpe_init may clear it (chatglm) */
    v->eot = v->eom = v->cls = v->nl = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    for (int i = 0; i < 256; i++)
        v->byte_tok[i] = v->byte_char_tok[i] = -1;
    if (kind == TOK_BPE) {
        rc = tok_bpe_init(v, d->pre, d, err, errlen);
        if (rc)
            goto out_free_vocab_keep_err;
    }
    v->bos = pick_id(d->bos >= 0 ? d->bos : d->cls, v->bos, n);
    v->eos = pick_id(d->eos, eos, n);
    v->eot = pick_id(d->eot, -1, n);
    v->eom = pick_id(d->eom, -1, n);
    v->unk = pick_id(d->unk, unk, n);
    v->sep = pick_id(d->sep, sep, n);
    v->pad = pick_id(d->pad, pad, n);
    v->cls = pick_id(d->cls, kind == TOK_WPM ? bos : -1, n);
    v->mask = pick_id(d->mask, mask, n);
    v->fim_pre = pick_id(d->fim_pre, -1, n);
    v->fim_suf = pick_id(d->fim_suf, -1, n);
    v->fim_mid = pick_id(d->fim_mid, -1, n);
    v->fim_pad = pick_id(d->fim_pad, -1, n);
    v->fim_rep = pick_id(d->fim_rep, -1, n);
    v->fim_sep = pick_id(d->fim_sep, -1, n);
    if (d->add_bos >= 0)
        v->add_bos = d->add_bos;
    if (d->add_eos >= 0)
        v->add_eos = d->add_eos;
    if (d->add_sep >= 0)
        v->add_sep = d->add_sep;
    if (d->add_space_prefix >= 0 && kind == TOK_SPM)
        v->add_space_prefix = d->add_space_prefix;
    v->add_bos = v->add_bos && v->bos >= 0;
    v->add_eos = v->add_eos && v->eos >= 0;
    v->add_sep = v->add_sep && v->sep >= 0;
    /* as llama.cpp: WordPiece cleans up by default, SentencePiece does not; byte-level BPE only when the
     * vocab says so (llama.cpp decides that per pre-tokenizer, a table we do not keep) */
    v->clean_spaces = d->clean_spaces >= 0 ? d->clean_spaces != 0 : kind == TOK_WPM;
    v->lowercase = d->lowercase >= 0 ? d->lowercase != 0 : true;
    v->strip_accents = d->strip_accents >= 0 ? d->strip_accents != 0 : v->lowercase;

    if (kind == TOK_SPM) {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            int32_t id = tok_find(v, name, 6);
            if (id < 0) {
                char c = (char)b;
                id = tok_find(v, &c, 1);
            }
            v->byte_tok[b] = id;
        }
    }
    find_eog(v);
    if (build_specials(v))
        goto out_free_vocab;
    apply_quirks(v, d);
    if (build_pieces(v))
        goto out_free_vocab;
    if (kind == TOK_SPM) {
        v->nl = v->byte_tok['\n'];
    } else if (kind == TOK_BPE) {
        int32_t *ids;
        int64_t nn;
        if (lm_tokenize(v, "\n", 1, false, false, &ids, &nn, NULL, 0) == LM_OK && nn > 0)
            v->nl = ids[0];
        free(ids);
    }
    *out = v;
    return LM_OK;

out_free_vocab:
    rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory while loading the vocabulary");
out_free_vocab_keep_err:
    lm_vocab_free(v);
    return rc;
}

void lm_vocab_free(lm_vocab *v)
{
    if (!v)
        return;
    if (v->kind == TOK_BPE)
        tok_bpe_free(v);
    tok_map_free(&v->map);
    free(v->blob);
    free(v->tok);
    free(v->score);
    free(v->type);
    free(v->attr);
    free(v->eog);
    free(v->piece_blob);
    free(v->piece);
    free(v->special);
    free_trie(&v->special_trie);
    free(v);
}

/* -------------------------------------------------------------------------------- accessors */

int32_t lm_vocab_n_tokens(const lm_vocab *v) { return v ? v->n : 0; }

const char *lm_vocab_kind(const lm_vocab *v)
{
    static const char *const names[] = { "spm", "bpe", "wpm" };
    return v ? names[v->kind] : "";
}

const char *lm_vocab_pre(const lm_vocab *v) { return v && v->kind == TOK_BPE ? v->pre_name : ""; }
int32_t lm_vocab_bos(const lm_vocab *v) { return v ? v->bos : -1; }
int32_t lm_vocab_eos(const lm_vocab *v) { return v ? v->eos : -1; }
int32_t lm_vocab_eot(const lm_vocab *v) { return v ? v->eot : -1; }
int32_t lm_vocab_unk(const lm_vocab *v) { return v ? v->unk : -1; }
int32_t lm_vocab_sep(const lm_vocab *v) { return v ? v->sep : -1; }
int32_t lm_vocab_pad(const lm_vocab *v) { return v ? v->pad : -1; }
int32_t lm_vocab_nl(const lm_vocab *v) { return v ? v->nl : -1; }
bool lm_vocab_add_bos(const lm_vocab *v) { return v && v->add_bos; }
bool lm_vocab_add_eos(const lm_vocab *v) { return v && v->add_eos; }

bool lm_vocab_is_eog(const lm_vocab *v, int32_t id)
{
    return v && id >= 0 && id < v->n && v->eog[id];
}

int lm_vocab_token_type(const lm_vocab *v, int32_t id)
{
    return v && id >= 0 && id < v->n ? v->type[id] : -1;
}

float lm_vocab_score(const lm_vocab *v, int32_t id)
{
    return v && id >= 0 && id < v->n ? v->score[id] : 0.0f;
}

int32_t lm_vocab_find(const lm_vocab *v, const char *s, size_t len)
{
    return v && (s || !len) ? tok_find(v, s ? s : "", len) : -1;
}

const char *lm_token_text(const lm_vocab *v, int32_t id, size_t *len)
{
    if (!v || id < 0 || id >= v->n)
        return NULL;
    if (len)
        *len = v->tok[id].len;
    return tok_text(v, id);
}

const char *lm_token_piece(const lm_vocab *v, int32_t id, size_t *len)
{
    if (!v || id < 0 || id >= v->n)
        return NULL;
    if (len)
        *len = v->piece[id].len;
    return v->piece_blob + v->piece[id].off;
}

/* ------------------------------------------------------------------------------- tokenizing */

/* A piece of the input: raw text (id < 0) or a special token found in it. */
typedef struct tok_frag {
    int32_t id;
    size_t off, len;
} tok_frag;

typedef struct tok_frags {
    tok_frag *p;
    size_t n, cap;
} tok_frags;

static bool frags_push(tok_frags *f, int32_t id, size_t off, size_t len)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        tok_frag *p = realloc(f->p, cap * sizeof *p);
        if (!p)
            return false;
        f->p = p;
        f->cap = cap;
    }
    f->p[f->n++] = (tok_frag){ id, off, len };
    return true;
}

/* A min-heap of candidates, (rank << 32 | offset): sinks h[i] to its place among h[0..n). */
static void cand_sink(uint64_t *h, size_t n, size_t i)
{
    uint64_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] < h[c])
            c++;
        if (h[c] >= x)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* What each byte of the text became while cutting. */
enum { CUT_RAW = 0, CUT_STRIPPED = 1, CUT_TOKEN = 2, CUT_TOKEN_MORE = 3 };

/* Cuts the special token id out at s[pos..), with the whitespace its strip flags take. */
static void cut_token(const lm_vocab *v, const unsigned char *s, size_t len, uint8_t *cut, size_t pos, int32_t id)
{
    size_t end = pos + v->tok[id].len;
    cut[pos] = CUT_TOKEN;
    memset(cut + pos + 1, CUT_TOKEN_MORE, end - pos - 1);
    if (v->attr[id] & TOK_ATTR_LSTRIP)
        for (size_t j = pos; j > 0 && cut[j - 1] == CUT_RAW && isspace(s[j - 1]); j--)
            cut[j - 1] = CUT_STRIPPED;
    if (v->attr[id] & TOK_ATTR_RSTRIP)
        for (size_t j = end; j < len && cut[j] == CUT_RAW && isspace(s[j]); j++)
            cut[j] = CUT_STRIPPED;
}

/* Cuts the texts of special tokens out of the text. The result is that of one pass per special token
 * in rank order (longest text first, ties: lowest id), each cutting every occurrence that still lies
 * whole in the raw text, leftmost first, and LSTRIP / RSTRIP dropping the raw whitespace next to it.
 * It is got with one pass over the text: at each byte the trie gives the longest special token that
 * starts there (a candidate); the candidates are then taken in (rank, offset) order from a heap. One
 * whose bytes are all still raw is cut; one that a cut before it overlaps is replaced by the longest
 * shorter token at its offset that ends before the first byte taken (or dropped, when its own first byte
 * is taken), which comes later in rank order, as in the per-token passes. When no two candidates
 * overlap and no strip can reach into a neighbouring token (no special text starts or ends with
 * whitespace), the order does not matter and every candidate is cut as it is, without the heap. */
static int partition(const lm_vocab *v, const char *text, size_t len, bool parse_special, tok_frags *f)
{
    f->n = f->cap = 0;
    f->p = NULL;
    if (!len)
        return LM_OK;
    const tok_trie *t = &v->special_trie;
    const unsigned char *s = (const unsigned char *)text;
    const int which = parse_special ? 0 : 1;
    uint64_t *h = NULL;
    size_t nh = 0, caph = 0, reach = 0;
    bool clash = false; /* two candidates may compete: settle them in rank order */
    if (t->rank && (parse_special ? v->n_special : v->n_special_user)) {
        for (size_t pos = 0; pos < len; pos++) {
            if (t->first[s[pos]] < 0)
                continue;
            int32_t r = trie_longest(t, s + pos, len - pos, which);
            if (r < 0)
                continue;
            if (nh == caph) {
                size_t cap = caph ? caph * 2 : 64;
                uint64_t *p = realloc(h, cap * sizeof *p);
                if (!p) {
                    free(h);
                    return LM_ERR_NOMEM;
                }
                h = p;
                caph = cap;
            }
            h[nh++] = (uint64_t)r << 32 | pos; /* len < 2^31 (lm_tokenize_w) */
            clash = clash || pos < reach || (t->ws_edge && nh > 1);
            reach = pos + v->tok[v->special[r]].len;
        }
    }
    if (!nh) {
        free(h);
        return frags_push(f, -1, 0, len) ? LM_OK : LM_ERR_NOMEM;
    }
    uint8_t *cut = calloc(len, 1);
    if (!cut) {
        free(h);
        return LM_ERR_NOMEM;
    }
    size_t next = 0; /* without a clash, h stays as it is: the tokens cut, in text order */
    if (!clash) {
        for (size_t i = 0; i < nh; i++)
            cut_token(v, s, len, cut, (size_t)(h[i] & 0xffffffffu), v->special[h[i] >> 32]);
        nh = 0;
    }
    for (size_t i = nh / 2; i-- > 0;)
        cand_sink(h, nh, i);
    while (nh) {
        int32_t r = (int32_t)(h[0] >> 32);
        size_t pos = (size_t)(h[0] & 0xffffffffu);
        int32_t id = v->special[r];
        size_t end = pos + v->tok[id].len, q = pos;
        while (q < end && cut[q] == CUT_RAW)
            q++;
        int32_t shorter = q > pos && q < end ? trie_longest(t, s + pos, q - pos, which) : -1;
        if (shorter >= 0) {
            h[0] = (uint64_t)shorter << 32 | pos;
        } else {
            h[0] = h[--nh];
        }
        cand_sink(h, nh, 0);
        if (q == end)
            cut_token(v, s, len, cut, pos, id);
    }
    int rc = LM_OK;
    for (size_t i = 0, j; i < len && rc == LM_OK; i = j) {
        j = i + 1;
        if (cut[i] == CUT_RAW) {
            while (j < len && cut[j] == CUT_RAW)
                j++;
            rc = frags_push(f, -1, i, j - i) ? LM_OK : LM_ERR_NOMEM;
        } else if (cut[i] == CUT_TOKEN) {
            while (j < len && cut[j] == CUT_TOKEN_MORE)
                j++;
            /* the token cut here: of the allowed ones with this text, the first in rank order */
            int32_t r = clash ? trie_longest(t, s + i, j - i, which) : (int32_t)(h[next++] >> 32);
            rc = frags_push(f, v->special[r], i, j - i) ? LM_OK : LM_ERR_NOMEM;
        }
    }
    free(h);
    free(cut);
    return rc;
}

/* The SPM input: an optional leading space, then spaces as U+2581. */
static bool spm_escape(tok_buf *b, const char *s, size_t len, bool prefix)
{
    b->n = 0;
    if (prefix && !tok_buf_push(b, "\xe2\x96\x81", 3))
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == ' ') {
            if (!tok_buf_push(b, s + start, i - start))
                return false;
            if (i < len && !tok_buf_push(b, "\xe2\x96\x81", 3))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* The offset in the raw fragment s[0..len) of the byte at offset e of its SPM escape (spm_escape). */
static size_t spm_unescape_offset(const char *s, size_t len, bool prefix, size_t e)
{
    size_t pos = prefix ? 3 : 0, i = 0;
    for (; i < len && pos < e; i++)
        pos += s[i] == ' ' ? 3 : 1;
    return i;
}

int lm_tokenize(const lm_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, int64_t *n, char *err, size_t errlen)
{
    return lm_tokenize_w(v, text, len, add_special, parse_special, ids, n, NULL, err, errlen);
}

int lm_tokenize_w(const lm_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                  int32_t **ids, int64_t *n, unsigned *warn, char *err, size_t errlen)
{
    if (warn)
        *warn = 0;
    if (ids)
        *ids = NULL;
    if (n)
        *n = 0;
    if (!v || !ids || !n || (!text && len))
        return lm_fail(err, errlen, LM_ERR_INVALID, "lm_tokenize: bad arguments");
    if (len > INT32_MAX / 4) /* symbol indices are int32_t */
        return lm_fail(err, errlen, LM_ERR_INVALID, "the text is too long to tokenize at once (%zu bytes)", len);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = tok_utf8_decode((const unsigned char *)text + i, len - i, &cp);
        if (k <= 0)
            return lm_fail(err, errlen, LM_ERR_INVALID, "invalid UTF-8 in the text at byte offset %zu (byte 0x%02x)",
                           i, (unsigned char)text[i]);
        i += (size_t)k;
    }

    tok_frags f = { 0 };
    tok_ids out = { 0 };
    tok_buf esc = { 0 };
    int rc = partition(v, text, len, parse_special, &f);
    if (rc)
        goto out_nomem;
    /* a text that starts with the BOS text (parsed as special) already has its BOS: one, not two */
    bool bos_in_text = f.n && f.p[0].id >= 0 && f.p[0].id == v->bos;
    if (add_special && v->add_bos && bos_in_text && warn)
        *warn |= LM_TOKENIZE_WARN_BOS_TWICE;
    if (add_special && v->add_bos && !bos_in_text && !tok_ids_push(&out, v->bos))
        goto out_nomem;
    bool prev_special = true; /* SPM: a text fragment at the start or after a special gets the prefix */
    for (size_t i = 0; i < f.n; i++) {
        const tok_frag *fr = &f.p[i];
        if (fr->id >= 0) {
            if (!tok_ids_push(&out, fr->id))
                goto out_nomem;
            prev_special = true;
            continue;
        }
        switch (v->kind) {
        case TOK_SPM: {
            bool prefix = v->add_space_prefix && prev_special;
            size_t bad = 0;
            if (!spm_escape(&esc, text + fr->off, fr->len, prefix))
                goto out_nomem;
            rc = tok_spm_encode(v, esc.p, esc.n, &out, &bad);
            if (rc == LM_ERR_INVALID) {
                size_t at = fr->off + spm_unescape_offset(text + fr->off, fr->len, prefix, bad);
                uint32_t cp = 0;
                tok_utf8_decode((const unsigned char *)text + at, len - at, &cp);
                rc = lm_fail(err, errlen, LM_ERR_INVALID,
                             "the character U+%04X at byte offset %zu has no token, and the vocabulary has "
                             "neither byte tokens nor an unknown token", (unsigned)cp, at);
                goto out_free;
            }
            break;
        }
        case TOK_BPE:
            rc = tok_bpe_encode(v, text + fr->off, fr->len, &out, err, errlen);
            if (rc && rc != LM_ERR_NOMEM)
                goto out_free;
            break;
        case TOK_WPM:
            rc = tok_wpm_encode(v, text + fr->off, fr->len, &out);
            break;
        }
        if (rc)
            goto out_nomem;
        prev_special = false;
    }
    if (add_special && v->kind != TOK_WPM && v->add_eos && !tok_ids_push(&out, v->eos))
        goto out_nomem;
    if (add_special && v->kind == TOK_WPM && v->add_sep && !tok_ids_push(&out, v->sep))
        goto out_nomem;
    free(f.p);
    tok_buf_free(&esc);
    if (!out.n) {
        free(out.p);
        out.p = NULL;
    }
    *ids = out.p;
    *n = out.n;
    return LM_OK;

out_nomem:
    rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory while tokenizing");
out_free:
    free(f.p);
    free(out.p);
    tok_buf_free(&esc);
    return rc;
}

/* ----------------------------------------------------------------------------- detokenizing */

struct lm_detok {
    const lm_vocab *v;
    bool special;
    bool at_start;          /* nothing pushed yet */
    unsigned char hold[4];  /* the first bytes of a character not yet complete */
    int nhold;
    char pend[4];           /* clean_spaces: text from a space on, undecided until the next bytes come */
    int npend;
    tok_buf out;
    tok_buf scratch;
    tok_buf clean;
};

int lm_detok_create(const lm_vocab *v, bool special, lm_detok **out)
{
    *out = NULL;
    if (!v)
        return LM_ERR_INVALID;
    lm_detok *d = calloc(1, sizeof *d);
    if (!d)
        return LM_ERR_NOMEM;
    d->v = v;
    d->special = special;
    lm_detok_reset(d);
    *out = d;
    return LM_OK;
}

void lm_detok_free(lm_detok *d)
{
    if (!d)
        return;
    tok_buf_free(&d->out);
    tok_buf_free(&d->scratch);
    tok_buf_free(&d->clean);
    free(d);
}

void lm_detok_reset(lm_detok *d)
{
    d->at_start = true;
    d->nhold = 0;
    d->npend = 0;
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Moves the complete characters of s[0..n) to d->out, invalid bytes as U+FFFD, and keeps a trailing
 * incomplete character in d->hold. */
static bool emit_utf8(lm_detok *d, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = tok_utf8_decode(s + i, n - i, &cp);
        if (k > 0) {
            size_t j = i + (size_t)k; /* copy a run of valid characters at once */
            while (j < n) {
                int k2 = tok_utf8_decode(s + j, n - j, &cp);
                if (k2 <= 0)
                    break;
                j += (size_t)k2;
            }
            if (!tok_buf_push(&d->out, s + i, j - i))
                return false;
            i = j;
        } else if (k == 0) {
            d->nhold = (int)(n - i);
            memcpy(d->hold, s + i, n - i);
            return true;
        } else {
            if (!tok_buf_push(&d->out, replacement, 3))
                return false;
            i += (size_t)-k;
        }
    }
    return true;
}

/* s[i + k], or -1 past the end, or -2 when it is not known yet (past the end, more text may come). */
static int peek(const char *s, size_t n, size_t i, size_t k, bool final)
{
    return i + k < n ? (unsigned char)s[i + k] : final ? -1 : -2;
}

static bool is_stop(int c)
{
    return c == '?' || c == '!' || c == '.' || c == ',';
}

/* HF's clean_up_tokenization_spaces, as llama.cpp applies it (three passes over the whole text: " ?",
 * " !", " .", " ," lose the space; " ' " becomes "'"; " 's", " 'm", " 're", " 've" lose the space), in
 * one pass that can stream: a space whose fate depends on bytes not yet seen waits in d->pend. Reads
 * d->pend then d->out, writes d->out. */
static bool clean_up(lm_detok *d, bool final)
{
    tok_buf *in = &d->clean;
    in->n = 0;
    if (!tok_buf_push(in, d->pend, (size_t)d->npend) || !tok_buf_push(in, d->out.p ? d->out.p : "", d->out.n))
        return false;
    d->npend = 0;
    d->out.n = 0;
    const char *s = in->p;
    size_t n = in->n, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (!tok_buf_push(&d->out, s + i, j - i))
            return false;
        if ((i = j) == n)
            break;
        int c1 = peek(s, n, i, 1, final), c2 = -1, c3 = -1;
        if (c1 == '\'') {
            c2 = peek(s, n, i, 2, final);
            if (c2 == ' ' || c2 == 'r' || c2 == 'v')
                c3 = peek(s, n, i, 3, final);
        }
        if (c1 == -2 || c2 == -2 || c3 == -2) { /* wait for more text */
            d->npend = (int)(n - i);
            memcpy(d->pend, s + i, n - i);
            break;
        }
        if (is_stop(c1) || (c1 == '\'' && (c2 == 's' || c2 == 'm' || ((c2 == 'r' || c2 == 'v') && c3 == 'e')))) {
            i++; /* the space goes */
        } else if (c1 == '\'' && c2 == ' ' && !is_stop(c3)) {
            if (!tok_buf_push(&d->out, "'", 1)) /* " ' " -> "'" (unless the first pass took the second space) */
                return false;
            i += 3;
        } else {
            if (!tok_buf_push(&d->out, " ", 1))
                return false;
            i++;
        }
    }
    return true;
}

int lm_detok_push(lm_detok *d, int32_t id, const char **out, size_t *len)
{
    const lm_vocab *v = d->v;
    d->out.n = 0;
    *out = "";
    *len = 0;
    if (id < 0 || id >= v->n)
        return LM_ERR_INVALID;
    const char *p = v->piece_blob + v->piece[id].off;
    size_t n = v->piece[id].len;
    int t = v->type[id];
    if (!d->special && (t == LM_TOKEN_CONTROL || t == LM_TOKEN_UNKNOWN))
        n = 0;
    /* as llama.cpp: only the first piece of the stream, whatever it is (a BOS first takes the turn) */
    if (v->add_space_prefix && d->at_start && n && p[0] == ' ') {
        p++;
        n--;
    }
    d->at_start = false;
    if (!n)
        return LM_OK;
    tok_buf *s = &d->scratch;
    s->n = 0;
    if (!tok_buf_push(s, d->hold, (size_t)d->nhold) || !tok_buf_push(s, p, n))
        return LM_ERR_NOMEM;
    d->nhold = 0;
    if (!emit_utf8(d, (const unsigned char *)s->p, s->n))
        return LM_ERR_NOMEM;
    if (v->clean_spaces && !clean_up(d, false))
        return LM_ERR_NOMEM;
    *out = d->out.p ? d->out.p : "";
    *len = d->out.n;
    return LM_OK;
}

int lm_detok_flush(lm_detok *d, const char **out, size_t *len)
{
    d->out.n = 0;
    *out = "";
    *len = 0;
    if (d->nhold) {
        d->nhold = 0;
        if (!tok_buf_push(&d->out, replacement, 3))
            return LM_ERR_NOMEM;
    }
    if (d->v->clean_spaces && !clean_up(d, true))
        return LM_ERR_NOMEM;
    *out = d->out.p ? d->out.p : "";
    *len = d->out.n;
    return LM_OK;
}

int lm_detokenize(const lm_vocab *v, const int32_t *ids, int64_t n, bool special, char **text, size_t *len,
                  char *err, size_t errlen)
{
    *text = NULL;
    if (len)
        *len = 0;
    lm_detok *d;
    if (!v || (n && !ids) || n < 0)
        return lm_fail(err, errlen, LM_ERR_INVALID, "lm_detokenize: bad arguments");
    if (lm_detok_create(v, special, &d))
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
    tok_buf all = { 0 };
    int rc = LM_OK;
    const char *p;
    size_t pl;
    for (int64_t i = 0; i <= n && !rc; i++) {
        if (i < n) {
            rc = lm_detok_push(d, ids[i], &p, &pl);
            if (rc == LM_ERR_INVALID) {
                lm_fail(err, errlen, rc, "token id %d at position %lld is out of range [0, %d)", ids[i],
                        (long long)i, v->n);
                break;
            }
        } else {
            rc = lm_detok_flush(d, &p, &pl);
        }
        if (!rc && !tok_buf_push(&all, p, pl))
            rc = LM_ERR_NOMEM;
        if (rc == LM_ERR_NOMEM)
            lm_fail(err, errlen, rc, "out of memory");
    }
    lm_detok_free(d);
    if (!rc && !tok_buf_push(&all, "", 0))
        rc = lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
    if (rc) {
        tok_buf_free(&all);
        return rc;
    }
    *text = all.p;
    if (len)
        *len = all.n;
    return LM_OK;
}
