/* tok_internal.h: what the tokenizer files (tok.c, tok_load.c, tok_spm.c, tok_bpe.c, tok_wpm.c) share
 * and nobody else sees: the vocabulary struct, a string hash map, UTF-8 helpers, growable buffers.
 *
 * A vocabulary is built once (lm_vocab_from_gguf / lm_vocab_from_llama2c in tok_load.c both fill a
 * tok_desc of plain arrays and call tok_vocab_build) and is immutable afterwards, so one vocab can tokenize from
 * several threads at once: every per-call scratch buffer lives on the caller's side (tok_out). */
#ifndef VKLLM_TOK_INTERNAL_H
#define VKLLM_TOK_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lm_internal.h"

enum tok_kind { TOK_SPM = 0, TOK_BPE = 1, TOK_WPM = 2 };

/* Per-token attribute bits beyond the GGUF token type (set by name-based quirks, as llama.cpp). */
enum { TOK_ATTR_LSTRIP = 1, TOK_ATTR_RSTRIP = 2 };

/* A string inside a blob: bytes blob[off .. off+len), followed by a NUL. */
typedef struct tok_str {
    uint32_t off, len;
} tok_str;

/* Open-addressing hash map from a byte string to an index into a tok_str array (the keys live in
 * their blob, the map stores only indices). Built once; lookups are read-only. */
typedef struct tok_map {
    uint32_t mask;     /* capacity - 1, capacity a power of two */
    int32_t *slot;     /* [capacity] key index, -1 when empty */
    uint32_t *hash;    /* [capacity] hash of the key in that slot */
} tok_map;

uint32_t tok_hash(const void *s, size_t len);
/* Inserts keys 0..n-1; a duplicate keeps the first index. Returns LM_OK or LM_ERR_NOMEM. */
int tok_map_build(tok_map *m, const char *blob, const tok_str *keys, int64_t n);
/* Index of the key equal to s[0..len), or -1. */
int32_t tok_map_find(const tok_map *m, const char *blob, const tok_str *keys, const char *s, size_t len);
void tok_map_free(tok_map *m);

/* Growable byte and id buffers; push functions return false on allocation failure (the buffer is
 * left as it was). */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
bool tok_buf_reserve(tok_buf *b, size_t extra);
bool tok_buf_push(tok_buf *b, const void *s, size_t len);
void tok_buf_free(tok_buf *b);

typedef struct tok_ids {
    int32_t *p;
    int64_t n, cap;
} tok_ids;
bool tok_ids_push(tok_ids *t, int32_t id);

/* UTF-8. tok_utf8_decode: decodes one character at s (n > 0 bytes available) into *cp and returns its
 * length (1..4); returns 0 when s holds a valid but incomplete prefix of a character (more bytes
 * needed); returns -k when the first k bytes (k >= 1, the maximal ill-formed subpart) are invalid.
 * Strict: no overlong forms, no surrogates, nothing above U+10FFFF. */
int tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp as UTF-8 to out (4 bytes room); returns the length. */
int tok_utf8_encode(uint32_t cp, char *out);
/* Length of the character whose lead byte is c, for text already checked valid (1 for junk). */
static inline int tok_utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}


/* Everything a vocabulary is built from, as plain arrays (GGUF or llama2.c alike). */
typedef struct tok_desc {
    const char *model;        /* tokenizer.ggml.model: "llama", "gpt2", "bert" */
    const char *pre;          /* tokenizer.ggml.pre, NULL when absent */
    const char *name;         /* general.name, NULL when absent (only for per-model quirks) */
    int64_t n_tokens;
    const char *const *tok;   /* [n_tokens] token texts, not NUL-terminated */
    const size_t *tok_len;    /* [n_tokens] */
    const float *score;       /* [n_tokens] or NULL */
    const int32_t *type;      /* [n_tokens] enum lm_token_type, or NULL (all normal) */
    int64_t n_merges;
    const char *const *merge; /* [n_merges] "left right" (BPE) */
    const size_t *merge_len;
    /* Special ids from the metadata: -1 when the key is absent (the kind's default applies), any
     * value >= n_tokens means "none" (as the 0xFFFFFFFF that converters write). */
    int64_t bos, eos, eot, eom, unk, sep, pad, cls, mask;
    int64_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    /* Flags from the metadata: -1 absent, 0 false, 1 true. */
    int add_bos, add_eos, add_sep, add_space_prefix, lowercase, strip_accents;
    int clean_spaces; /* tokenizer.ggml.clean_up_tokenization_spaces */
} tok_desc;

/* The texts of the special tokens as a byte trie, to find them all in one pass over a text (tok.c).
 * Node 0 is the root; the root's children are in `first`, every other edge is in an open-addressing
 * table keyed by (parent node, byte). A node where a special token's text ends holds its rank: its index
 * in lm_vocab.special (longest text first, ties: lowest id), for [0] any special token and for [1] a
 * USER_DEFINED one only (what parse_special = false allows), -1 when none. */
typedef struct tok_trie {
    int32_t first[256];       /* node of the 1-byte prefix b, -1 when no special token starts with b */
    int32_t (*rank)[2];       /* [n_nodes] */
    int32_t n_nodes;
    bool ws_edge;             /* some special token's text starts or ends with whitespace */
    uint32_t mask;            /* edge table capacity - 1, a power of two */
    uint64_t *edge_key;       /* [capacity] ((uint64_t)parent << 8 | byte) + 1, 0 when empty */
    int32_t *edge_child;      /* [capacity] */
} tok_trie;

/* BPE pre-tokenizer: named regex list (tok_bpe.c). */
typedef struct tok_pre tok_pre;

#define TOK_MAX_REGEX 8

struct lm_vocab {
    enum tok_kind kind;
    int32_t n;                /* number of tokens */
    char *blob;               /* token texts, each NUL-terminated */
    tok_str *tok;             /* [n] raw text of each token */
    float *score;             /* [n] */
    uint8_t *type;            /* [n] enum lm_token_type */
    uint8_t *attr;            /* [n] TOK_ATTR_* */
    uint8_t *eog;             /* [n] 1 when the token ends generation */
    tok_map map;              /* text -> id */
    uint32_t max_len;         /* longest token text in bytes */

    char *piece_blob;         /* decoded bytes of each token (what it prints as) */
    tok_str *piece;           /* [n] */

    int32_t bos, eos, eot, eom, unk, sep, pad, cls, mask, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_sep, add_space_prefix;
    bool clean_spaces;        /* detokenising undoes " ," " ." " 's" ... (HF clean_up_tokenization_spaces) */

    int32_t *special;         /* ids of CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first */
    int32_t n_special;
    int32_t n_special_user;   /* how many of them are USER_DEFINED */
    tok_trie special_trie;    /* their texts */

    /* SPM */
    int32_t byte_tok[256];    /* id of <0xXX> (or of the 1-byte token), -1 when none */

    /* BPE */
    char *merge_blob;
    tok_str *merge;           /* [n_merges] "left right", rank = index */
    int64_t n_merges;
    tok_map merge_map;
    const tok_pre *pre;
    char pre_name[64];
    void *re[TOK_MAX_REGEX];  /* pcre2_code_8 *, compiled once per vocab (JIT when available) */
    int n_re;
    bool ignore_merges;
    int32_t byte_char_tok[256]; /* id of the token that is the byte-level char of byte b, -1 none */

    /* WPM */
    bool lowercase, strip_accents;
};

static inline const char *tok_text(const lm_vocab *v, int32_t id)
{
    return v->blob + v->tok[id].off;
}

/* tok.c */
int tok_vocab_build(const tok_desc *d, lm_vocab **out, char *err, size_t errlen);
int32_t tok_find(const lm_vocab *v, const char *s, size_t len);
/* "<0xXX>" -> XX, else -1. */
int tok_parse_byte(const char *s, size_t len);

/* tok_spm.c: appends the ids of text (already escaped: spaces as U+2581) to out. LM_ERR_INVALID when a
 * character has no token and the vocab neither byte tokens nor an unknown token: *bad is then its byte
 * offset in text. */
int tok_spm_encode(const lm_vocab *v, const char *text, size_t len, tok_ids *out, size_t *bad);

/* tok_bpe.c */
int tok_bpe_init(lm_vocab *v, const char *pre, const tok_desc *d, char *err, size_t errlen);
void tok_bpe_free(lm_vocab *v);
int tok_bpe_encode(const lm_vocab *v, const char *text, size_t len, tok_ids *out, char *err, size_t errlen);
/* GPT-2 byte-level mapping: the code point that stands for byte b, and the inverse (-1 if cp is not
 * one of the 256). */
uint32_t tok_bpe_byte_to_cp(uint8_t b);
int tok_bpe_cp_to_byte(uint32_t cp);
/* The i-th name the pre-tokenizer table knows, NULL past the last (for tests). */
const char *tok_bpe_pre_name(int i);

/* tok_wpm.c */
int tok_wpm_encode(const lm_vocab *v, const char *text, size_t len, tok_ids *out);

/* A candidate merge of two adjacent symbols, for the merge-based encoders (tok_spm.c, tok_bpe.c): the
 * queue pops the lowest prio first, the leftmost on ties. ln and rn are the two sides' byte sizes when
 * the candidate was queued: once either side changed, the candidate is stale. */
typedef struct tok_pair {
    double prio;
    int32_t left, right;
    uint32_t ln, rn;
} tok_pair;
typedef struct tok_heap {
    tok_pair *p;
    size_t n, cap;
} tok_heap;
bool tok_heap_push(tok_heap *h, tok_pair x); /* false when out of memory */
tok_pair tok_heap_pop(tok_heap *h);          /* h->n > 0 */

/* The merge loop both encoders share. The text starts as one symbol per UTF-8 character, chained;
 * every adjacent pair that prio() accepts is queued, the best one is merged (the left symbol grows, the
 * right one empties), its new neighbour pairs are queued, stale ones skipped, until the queue is empty.
 * prio returns 1 and the pair's priority (lower merges first), 0 when the pair does not merge, -1 when
 * out of memory. Afterwards the symbols of the chain from sym[0] are the pieces. The merger's buffers
 * are reused from call to call; tok_merger_free releases them. */
typedef struct tok_sym {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    uint32_t off, n;    /* bytes of the text; n == 0 once merged into the left neighbour */
} tok_sym;
typedef int (*tok_prio_fn)(void *ctx, const char *text, const tok_sym *l, const tok_sym *r, double *prio);
typedef struct tok_merger {
    tok_sym *sym;
    size_t cap;
    tok_heap heap;
} tok_merger;
int tok_merge(tok_merger *mg, const char *text, size_t len, tok_prio_fn prio, void *ctx); /* LM_OK, LM_ERR_NOMEM */
void tok_merger_free(tok_merger *mg);

#endif
