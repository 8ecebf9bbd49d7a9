/* tok_spm.c: SentencePiece-style BPE ("llama" vocabularies and llama2.c tokenizer files).
 *
 * The text arrives escaped (spaces as U+2581, the optional leading one added by tok.c). It starts as
 * one symbol per UTF-8 character; every adjacent pair whose concatenation is a token is a candidate,
 * and the candidate with the highest token score is merged first (ties: the leftmost). After each
 * merge the two new neighbour pairs become candidates; stale candidates (a side already merged
 * away or grown) are skipped when they come out of the priority queue. Symbols that are tokens at
 * the end are emitted; characters that never became a token fall back to their UTF-8 bytes as
 * <0xXX> tokens (or <unk> if the vocab has no byte tokens). For a vocab with scores this is also
 * exactly llama2.c's encoder (greedy best-score pair merge with byte fallback). */
#include "tok_internal.h"

#include <stdlib.h>

typedef struct spm_sym {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    uint32_t off, n;    /* bytes of the text; n == 0 once merged into the left neighbour */
} spm_sym;

static bool try_pair(const lm_vocab *v, const char *text, const spm_sym *sym, int32_t l, int32_t r, tok_heap *h)
{
    if (l < 0 || r < 0)
        return true;
    uint32_t size = sym[l].n + sym[r].n;
    int32_t id = tok_find(v, text + sym[l].off, size);
    if (id < 0)
        return true;
    return tok_heap_push(h, (tok_pair){ -(double)v->score[id], l, r, sym[l].n, sym[r].n });
}

int tok_spm_encode(const lm_vocab *v, const char *text, size_t len, tok_ids *out)
{
    if (!len)
        return LM_OK;
    size_t nsym = 0;
    for (size_t i = 0; i < len; i += (size_t)tok_utf8_len((unsigned char)text[i]))
        nsym++;
    spm_sym *sym = malloc(nsym * sizeof *sym);
    tok_heap h = { 0 };
    int rc = LM_ERR_NOMEM;
    if (!sym)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < len; k++) {
        size_t n = (size_t)tok_utf8_len((unsigned char)text[i]);
        if (n > len - i)
            n = len - i;
        sym[k] = (spm_sym){ (int32_t)k - 1, k + 1 < nsym ? (int32_t)k + 1 : -1, (uint32_t)i, (uint32_t)n };
        i += n;
    }
    for (size_t i = 1; i < nsym; i++)
        if (!try_pair(v, text, sym, (int32_t)i - 1, (int32_t)i, &h))
            goto out_free;
    while (h.n) {
        tok_pair b = tok_heap_pop(&h);
        spm_sym *l = &sym[b.left], *r = &sym[b.right];
        if (!l->n || !r->n || l->n != b.ln || r->n != b.rn)
            continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = b.left;
        if (!try_pair(v, text, sym, l->prev, b.left, &h) || !try_pair(v, text, sym, b.left, l->next, &h))
            goto out_free;
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = tok_find(v, text + sym[i].off, sym[i].n);
        if (id >= 0) {
            if (!tok_ids_push(out, id))
                goto out_free;
            continue;
        }
        for (uint32_t j = 0; j < sym[i].n; j++) {
            int32_t b = v->byte_tok[(unsigned char)text[sym[i].off + j]];
            if (b < 0)
                b = v->unk;
            if (b >= 0 && !tok_ids_push(out, b))
                goto out_free;
        }
    }
    rc = LM_OK;
out_free:
    free(h.p);
    free(sym);
    return rc;
}
