/* tok_spm.c: SentencePiece-style BPE ("llama" vocabularies and llama2.c tokenizer files).
 *
 * The text arrives escaped (spaces as U+2581, the optional leading one added by tok.c). It starts as
 * one symbol per UTF-8 character; every adjacent pair whose concatenation is a token is a candidate,
 * and the candidate with the highest token score is merged first (ties: the leftmost). After each
 * merge the two new neighbour pairs become candidates; stale candidates (a side already merged
 * away or grown) are skipped when they come out of the priority queue. Symbols that are tokens at
 * the end are emitted; characters that never became a token fall back to their UTF-8 bytes as
 * <0xXX> tokens (or <unk> if the vocab has no byte tokens; an error if it has neither). For a vocab with scores this is also
 * exactly llama2.c's encoder (greedy best-score pair merge with byte fallback). */
#include "tok_internal.h"

#include <stdlib.h>

/* A pair merges when its concatenation is a token; the higher the score, the sooner. */
static int spm_prio(void *ctx, const char *text, const tok_sym *l, const tok_sym *r, double *prio)
{
    const lm_vocab *v = ctx;
    int32_t id = tok_find(v, text + l->off, l->n + r->n);
    if (id < 0)
        return 0;
    *prio = -(double)v->score[id];
    return 1;
}

int tok_spm_encode(const lm_vocab *v, const char *text, size_t len, tok_ids *out, size_t *bad)
{
    if (!len)
        return LM_OK;
    tok_merger mg = { 0 };
    int rc = tok_merge(&mg, text, len, spm_prio, (void *)v);
    if (rc)
        goto out_free;
    rc = LM_ERR_NOMEM;
    const tok_sym *sym = mg.sym;
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
            if (b < 0) { /* dropping it silently would change the text the model sees */
                *bad = sym[i].off + j;
                rc = LM_ERR_INVALID;
                goto out_free;
            }
            if (!tok_ids_push(out, b))
                goto out_free;
        }
    }
    rc = LM_OK;
out_free:
    tok_merger_free(&mg);
    return rc;
}
