/* tok_bpe.c: byte-level BPE ("gpt2" vocabularies: GPT-2, Llama 3, Qwen, DeepSeek, StarCoder, ...).
 *
 * 1. Pre-tokenizer: the text is cut into words by the regular expressions that the model's tokenizer
 *    was trained with, chosen by tokenizer.ggml.pre (table below). They are Unicode regexes (\p{L},
 *    \p{N}, lookahead, case-insensitive groups), run with PCRE2 in UTF + UCP mode, compiled once per
 *    vocab (JIT when available). With several regexes, each one splits the pieces the previous one
 *    produced; both its matches and the text between them become pieces (HF's "Isolated" split).
 * 2. Each word's bytes are mapped to printable code points (GPT-2's bytes_to_unicode), the alphabet
 *    the vocabulary and merges are written in.
 * 3. BPE: starting from single characters, the adjacent pair with the lowest merge rank is merged,
 *    repeatedly (ties: the leftmost), until no pair has a rank. Each resulting symbol is a token; one
 *    that is not falls back to its characters. Vocabularies with ignore_merges (Llama 3 and kin) take
 *    a whole word that is itself a token directly.
 *
 * The regex strings are the pre-tokenizer patterns of the models' tokenizer.json files, as recorded
 * in llama.cpp's llama-vocab.cpp (facts of the tokenizers; where llama.cpp rewrote a pattern for
 * std::regex we use the original, which PCRE2 supports). */
#include "tok_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- bytes to unicode */

/* GPT-2 keeps the printable bytes 33-126, 161-172 and 174-255 as the code points of the same value
 * and maps the other 68 bytes, in order, to 256, 257, ...: 0-32 -> 256-288, 127-160 -> 289-322,
 * 173 -> 323. */
uint32_t tok_bpe_byte_to_cp(uint8_t b)
{
    if (b <= 32)
        return 256u + b;
    if (b >= 127 && b <= 160)
        return 162u + b;
    if (b == 173)
        return 323;
    return b;
}

int tok_bpe_cp_to_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp <= 288)
        return (int)(cp - 256);
    if (cp >= 289 && cp <= 322)
        return (int)(cp - 162);
    if (cp == 323)
        return 173;
    return -1;
}

/* ---------------------------------------------------------------------- pre-tokenizer table */

enum {
    PRE_IGNORE_MERGES = 1, /* a word that is a token is taken whole */
    PRE_ADD_BOS = 2,       /* add BOS unless the metadata says otherwise */
    PRE_NO_BOS = 4,        /* no default BOS id */
};

#define TOK_PRE_MAX_NAMES 20

struct tok_pre {
    const char *names[TOK_PRE_MAX_NAMES]; /* the tokenizer.ggml.pre values that mean this one */
    unsigned flags;
    const char *re[TOK_MAX_REGEX];
};

/* GPT-2's contractions | letters | numbers | other | trailing spaces. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* the same without the final \s+ (text between matches becomes a piece anyway) */
#define RE_GPT2_NS "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACT "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
/* Llama 3 (tiktoken cl100k): numbers in groups of up to three */
#define RE_LLAMA3 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Qwen2: single digits */
#define RE_QWEN2 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35 RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* o200k (GPT-4o): words split at case changes, contractions attached */
#define RE_O200K_WORD "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
    RE_CONTRACT "?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" RE_CONTRACT "?"
#define RE_GPT4O RE_O200K_WORD "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Mistral tekken: o200k words without contractions, single digits */
#define RE_TEKKEN "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" \
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_BLOOM " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+"
#define RE_CJK "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+" /* [一-龥ࠀ-一가-퟿]+ */
#define RE_KANA_HAN "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+" /* [一-龥぀-ゟ゠-ヿ]+ */
#define RE_DS3_WORDS "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
#define RE_ASCII_CONTRACT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

/* DeepSeek LLM's letter class: Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee, ... (verbatim
 * from its tokenizer.json, as llama.cpp records it). */
#define RE_DEEPSEEK_LETTERS "\\s?[A-Za-z\xc2\xb5\xc3\x80-\xc3\x96\xc3\x98-\xc3\xb6\xc3\xb8-\xc6\xba\xc6\xbc-\xc6\xbf" \
    "\xc7\x84-\xca\x93\xca\x95-\xca\xaf\xcd\xb0-\xcd\xb3\xcd\xb6\xcd\xb7\xcd\xbb-\xcd\xbd\xcd\xbf\xce\x86" \
    "\xce\x88-\xce\x8a\xce\x8c\xce\x8e-\xce\xa1\xce\xa3-\xcf\xb5\xcf\xb7-\xd2\x81\xd2\x8a-\xd4\xaf\xd4\xb1-" \
    "\xd5\x96\xe1\x82\xa0-\xe1\x83\x85\xe1\x8e\xa0-\xe1\x8f\xb5\xe1\x8f\xb8-\xe1\x8f\xbd\xe1\xb2\x90-\xe1\xb2" \
    "\xba\xe1\xb2\xbd-\xe1\xb2\xbf\xe1\xb4\x80-\xe1\xb4\xab\xe1\xb5\xab-\xe1\xb5\xb7\xe1\xb5\xb9-\xe1\xb6\x9a" \
    "\xe1\xb8\x80-\xe1\xbc\x95\xe1\xbc\x98-\xe1\xbc\x9d\xe1\xbc\xa0-\xe1\xbd\x85\xe1\xbd\x88-\xe1\xbd\x8d\xe1" \
    "\xbd\x90-\xe1\xbd\x97\xe1\xbd\x99\xe1\xbd\x9b\xe1\xbd\x9d\xe1\xbd\x9f-\xe1\xbd\xbd\xe1\xbe\x80-\xe1\xbe" \
    "\xb4\xe1\xbe\xb6-\xe1\xbe\xbc\xe1\xbe\xbe\xe1\xbf\x82-\xe1\xbf\x84\xe1\xbf\x86-\xe1\xbf\x8c\xe1\xbf\x90-" \
    "\xe1\xbf\x93\xe1\xbf\x96-\xe1\xbf\x9b\xe1\xbf\xa0-\xe1\xbf\xac\xe1\xbf\xb2-\xe1\xbf\xb4\xe1\xbf\xb6-\xe1" \
    "\xbf\xbc\xe2\x84\x82\xe2\x84\x87\xe2\x84\x8a-\xe2\x84\x93\xe2\x84\x95\xe2\x84\x99-\xe2\x84\x9d\xe2\x84" \
    "\xa4\xe2\x84\xa6\xe2\x84\xa8\xe2\x84\xaa-\xe2\x84\xad\xe2\x84\xaf-\xe2\x84\xb4\xe2\x84\xb9\xe2\x84\xbc-" \
    "\xe2\x84\xbf\xe2\x85\x85-\xe2\x85\x89\xe2\x85\x8e\xe2\x86\x83\xe2\x86\x84\xe2\xb0\x80-\xe2\xb1\xbb\xe2" \
    "\xb1\xbe-\xe2\xb3\xa4\xe2\xb3\xab-\xe2\xb3\xae\xe2\xb3\xb2\xe2\xb3\xb3\xea\x99\x80-\xea\x99\xad\xea\x9a" \
    "\x80-\xea\x9a\x9b\xea\x9c\xa2-\xea\x9d\xaf\xea\x9d\xb1-\xea\x9e\x87\xea\x9e\x8b-\xea\x9e\x8e\xea\xad\xb0-" \
    "\xea\xae\xbf\xef\xac\x80-\xef\xac\x86\xef\xac\x93-\xef\xac\x97\xef\xbc\xa1-\xef\xbc\xba\xef\xbd\x81-\xef" \
    "\xbd\x9a\xf0\x90\x90\x80-\xf0\x90\x91\x8f\xf0\x90\x92\xb0-\xf0\x90\x93\x93\xf0\x90\x93\x98-\xf0\x90\x93" \
    "\xbb\xf0\x90\xb2\x80-\xf0\x90\xb2\xb2\xf0\x90\xb3\x80-\xf0\x90\xb3\xb2\xf0\x91\xa2\xa0-\xf0\x91\xa3\x9f" \
    "\xf0\x9e\xa4\x80-\xf0\x9e\xa5\x83]+"
/* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
#define RE_DEEPSEEK_PUNCT "\\s?[!-/:-~\xef\xbc\x81-\xef\xbc\x8f\xef\xbc\x9a-\xef\xbd\x9e\xe2\x80\x98-\xe2\x80\x9f" \
    "\xe3\x80\x80-\xe3\x80\x82]+"

static const tok_pre pre_table[] = {
    { { "default" }, 0, { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2_NS, "\\p{N}+", "[0-9][0-9][0-9]" } },
    { { "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano" },
      PRE_IGNORE_MERGES | PRE_ADD_BOS, { RE_LLAMA3 } },
    { { "dbrx", "smaug-bpe" }, 0, { RE_LLAMA3 } },
    { { "glm4", "chatglm-bpe" }, PRE_NO_BOS, { RE_LLAMA3 } },
    { { "deepseek-llm" }, 0, { "[\r\n]", RE_DEEPSEEK_LETTERS, RE_DEEPSEEK_PUNCT, "\\s+$", RE_CJK, "\\p{N}+" } },
    { { "deepseek-coder" }, 0, { "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}" } },
    { { "deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4" }, 0,
      { "\\p{N}{1,3}", RE_KANA_HAN,
        RE_DS3_WORDS "| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" } },
    { { "spark2_5" }, 0,
      { "\\p{N}{1,3}", RE_KANA_HAN, RE_DS3_WORDS "| ?[\\p{P}\\p{S}]+|[\\r\\n]|\\s+(?!\\S)|\\s+", "\\p{N}" } },
    { { "falcon" }, 0, { "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2_NS, "[0-9][0-9][0-9]" } },
    { { "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2" },
      0, { "\\p{N}", RE_GPT2_NS } },
    { { "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
        "modern-bert", "exaone4", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais",
        "trillion", "granite-docling" },
      0, { RE_GPT2 } },
    { { "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open",
        "grok-2" },
      0, { RE_QWEN2 } },
    { { "qwen35" }, 0, { RE_QWEN35 } },
    { { "bloom", "poro-chat", "gpt3-finnish" }, 0, { RE_BLOOM } },
    { { "viking" }, 0, { RE_BLOOM, "\\p{N}" } },
    { { "tekken" }, PRE_IGNORE_MERGES | PRE_ADD_BOS, { RE_TEKKEN } },
    { { "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2" }, 0, { RE_GPT4O } },
    { { "tiny_aya", "cohere2moe" }, 0, { "\\d{1,3}(?=(?:\\d{3})*\\b)", RE_GPT4O } },
    { { "granite-embed-multi-97m" }, PRE_IGNORE_MERGES,
      { "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+" RE_ASCII_CONTRACT
        "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*" RE_ASCII_CONTRACT
        "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" } },
    { { "chameleon" }, PRE_ADD_BOS,
      { "<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
        "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2_NS } },
    { { "seed-coder" }, 0,
      { RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" } },
    { { "bailingmoe", "bailingmoe2", "llada-moe" }, 0,
      { "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+" } },
    { { "exaone-moe" }, 0,
      { RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?"
        "|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+" } },
    { { "jais-2" }, 0,
      { RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+"
        "|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)"
        "|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}" } },
    { { "ufakzeka" }, 0,
      { "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" } },
    { { "minicpm5" }, PRE_IGNORE_MERGES,
      { "\\p{N}{1,3}",
        RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" } },
    { { "youtu" }, PRE_IGNORE_MERGES,
      { "[\xea\xb0\x80-\xed\x9e\xa3\xe3\x84\xb1-\xe3\x86\x8e]+|[\xef\xbc\x81\xe2\x80\xa6\xe2\x80\x9c\xe2\x80\x9d"
        "\xe2\x80\x98\xe2\x80\x99\xe2\x80\x94\xef\xbc\x9a\xef\xbc\x9b\xef\xbc\x8c\xe3\x80\x81-\xe3\x80\xbf\xef"
        "\xb8\xb0-\xef\xb9\x8f]+|[\xe3\x84\x85-\xe3\x84\xaf]+|" RE_KANA_HAN,
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" RE_ASCII_CONTRACT
        "?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" RE_ASCII_CONTRACT
        "?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" } },
};

#define N_PRE (sizeof pre_table / sizeof pre_table[0])

const char *tok_bpe_pre_name(int i)
{
    for (size_t k = 0; k < N_PRE; k++)
        for (int j = 0; j < TOK_PRE_MAX_NAMES && pre_table[k].names[j]; j++)
            if (i-- == 0)
                return pre_table[k].names[j];
    return NULL;
}

/* ---------------------------------------------------------------------------------- setup */

int tok_bpe_init(lm_vocab *v, const char *pre, const tok_desc *d, char *err, size_t errlen)
{
    const char *name = pre && *pre ? pre : "default";
    const tok_pre *p = NULL;
    for (size_t i = 0; i < N_PRE && !p; i++)
        for (int j = 0; j < TOK_PRE_MAX_NAMES && pre_table[i].names[j] && !p; j++)
            if (!strcmp(pre_table[i].names[j], name))
                p = &pre_table[i];
    if (!p)
        return lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "BPE pre-tokenizer '%s' is not supported", name);
    v->pre = p;
    snprintf(v->pre_name, sizeof v->pre_name, "%s", name);
    v->ignore_merges = p->flags & PRE_IGNORE_MERGES;
    if (p->flags & PRE_ADD_BOS)
        v->add_bos = true;
    if (p->flags & PRE_NO_BOS)
        v->bos = -1;

    for (int i = 0; i < TOK_MAX_REGEX && p->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)p->re[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return lm_fail(err, errlen, LM_ERR_UNSUPPORTED, "pre-tokenizer '%s', regex %d: %s at offset %zu",
                           name, i, (const char *)msg, (size_t)eo);
        }
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if no JIT */
        v->re[v->n_re++] = re;
    }

    if (d->n_merges <= 0)
        return lm_fail(err, errlen, LM_ERR_NOT_FOUND, "BPE vocab without merges (tokenizer.ggml.merges)");
    uint64_t total = 0;
    for (int64_t i = 0; i < d->n_merges; i++)
        total += (uint64_t)d->merge_len[i] + 1;
    if (total > UINT32_MAX)
        return lm_fail(err, errlen, LM_ERR_FORMAT, "merges take %llu bytes", (unsigned long long)total);
    v->merge_blob = malloc((size_t)total);
    v->merge = malloc((size_t)d->n_merges * sizeof *v->merge);
    if (!v->merge_blob || !v->merge)
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");
    size_t off = 0;
    for (int64_t i = 0; i < d->n_merges; i++) {
        size_t len = d->merge_len[i];
        if (len)
            memcpy(v->merge_blob + off, d->merge[i], len);
        v->merge_blob[off + len] = 0;
        v->merge[i] = (tok_str){ (uint32_t)off, (uint32_t)len };
        off += len + 1;
    }
    v->n_merges = d->n_merges;
    if (tok_map_build(&v->merge_map, v->merge_blob, v->merge, v->n_merges))
        return lm_fail(err, errlen, LM_ERR_NOMEM, "out of memory");

    for (int b = 0; b < 256; b++) {
        char u[4];
        int n = tok_utf8_encode(tok_bpe_byte_to_cp((uint8_t)b), u);
        v->byte_char_tok[b] = tok_find(v, u, (size_t)n);
    }
    return LM_OK;
}

void tok_bpe_free(lm_vocab *v)
{
    for (int i = 0; i < v->n_re; i++)
        pcre2_code_free((pcre2_code *)v->re[i]);
    v->n_re = 0;
    tok_map_free(&v->merge_map);
    free(v->merge_blob);
    free(v->merge);
    v->merge_blob = NULL;
    v->merge = NULL;
}

/* --------------------------------------------------------------------------- pre-tokenizing */

typedef struct span {
    size_t off, len;
} span;

typedef struct spans {
    span *p;
    size_t n, cap;
} spans;

static bool spans_push(spans *s, size_t off, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        span *p = realloc(s->p, cap * sizeof *p);
        if (!p)
            return false;
        s->p = p;
        s->cap = cap;
    }
    s->p[s->n++] = (span){ off, len };
    return true;
}

/* Splits every piece of *cur by regex re (matches and the gaps between them), into *next. Each piece
 * is matched as a subject of its own, so lookarounds do not see past its ends. */
static int split(const pcre2_code *re, pcre2_match_data *md, const char *text, const spans *cur, spans *next,
                 char *err, size_t errlen)
{
    next->n = 0;
    for (size_t i = 0; i < cur->n; i++) {
        const char *s = text + cur->p[i].off;
        size_t len = cur->p[i].len, pos = 0, gap = 0;
        while (pos < len) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return lm_fail(err, errlen, rc == PCRE2_ERROR_NOMEMORY ? LM_ERR_NOMEM : LM_ERR_INVALID,
                               "pre-tokenizer regex failed on the text: %s", (const char *)msg);
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* empty match: move on one character, the gap goes on */
                pos = ms + (size_t)tok_utf8_len((unsigned char)s[ms]);
                continue;
            }
            if (ms > gap && !spans_push(next, cur->p[i].off + gap, ms - gap))
                return LM_ERR_NOMEM;
            if (!spans_push(next, cur->p[i].off + ms, me - ms))
                return LM_ERR_NOMEM;
            gap = pos = me;
        }
        if (gap < len && !spans_push(next, cur->p[i].off + gap, len - gap))
            return LM_ERR_NOMEM;
    }
    return LM_OK;
}

/* ---------------------------------------------------------------------------------- merging */

/* Per-call scratch (a vocab is shared between threads, so nothing of this lives in it). */
typedef struct bpe_work {
    tok_buf word;  /* the current word, bytes mapped to code points */
    tok_buf key;   /* "left right", the merge being looked up */
    tok_merger mg;
} bpe_work;

/* A pair merges when "left right" is a merge of the vocab; the lower its rank, the sooner. */
typedef struct bpe_ctx {
    const lm_vocab *v;
    bpe_work *w;
} bpe_ctx;

static int bpe_prio(void *ctx, const char *text, const tok_sym *l, const tok_sym *r, double *prio)
{
    const bpe_ctx *c = ctx;
    tok_buf *key = &c->w->key;
    key->n = 0;
    if (!tok_buf_push(key, text + l->off, l->n) || !tok_buf_push(key, " ", 1) || !tok_buf_push(key, text + r->off, r->n))
        return -1;
    int rank = tok_map_find(&c->v->merge_map, c->v->merge_blob, c->v->merge, key->p, key->n);
    if (rank < 0)
        return 0;
    *prio = rank;
    return 1;
}

/* The ids of one mapped word. */
static int bpe_word(const lm_vocab *v, bpe_work *w, tok_ids *out)
{
    const char *s = w->word.p;
    size_t len = w->word.n;
    if (v->ignore_merges) {
        int32_t id = tok_find(v, s, len);
        if (id >= 0)
            return tok_ids_push(out, id) ? LM_OK : LM_ERR_NOMEM;
    }
    bpe_ctx ctx = { v, w };
    if (tok_merge(&w->mg, s, len, bpe_prio, &ctx))
        return LM_ERR_NOMEM;
    const tok_sym *sym = w->mg.sym;
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = tok_find(v, s + sym[i].off, sym[i].n);
        if (id >= 0) {
            if (!tok_ids_push(out, id))
                return LM_ERR_NOMEM;
            continue;
        }
        /* not a token: its characters one by one (each stands for one byte) */
        for (uint32_t j = 0; j < sym[i].n;) {
            size_t n = (size_t)tok_utf8_len((unsigned char)s[sym[i].off + j]);
            id = tok_find(v, s + sym[i].off + j, n);
            if (id < 0)
                id = v->unk;
            if (id >= 0 && !tok_ids_push(out, id))
                return LM_ERR_NOMEM;
            j += (uint32_t)n;
        }
    }
    return LM_OK;
}

int tok_bpe_encode(const lm_vocab *v, const char *text, size_t len, tok_ids *out, char *err, size_t errlen)
{
    if (!len)
        return LM_OK;
    spans a = { 0 }, b = { 0 };
    bpe_work w = { 0 };
    int rc = LM_ERR_NOMEM;
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    if (!md || !spans_push(&a, 0, len))
        goto out_free;
    for (int i = 0; i < v->n_re; i++) {
        rc = split((const pcre2_code *)v->re[i], md, text, &a, &b, err, errlen);
        if (rc)
            goto out_free;
        spans t = a;
        a = b;
        b = t;
    }
    rc = LM_ERR_NOMEM;
    for (size_t i = 0; i < a.n; i++) {
        w.word.n = 0;
        const unsigned char *p = (const unsigned char *)text + a.p[i].off;
        if (!tok_buf_reserve(&w.word, a.p[i].len * 2 + 1))
            goto out_free;
        for (size_t j = 0; j < a.p[i].len; j++)
            w.word.n += (size_t)tok_utf8_encode(tok_bpe_byte_to_cp(p[j]), w.word.p + w.word.n);
        int r = bpe_word(v, &w, out);
        if (r)
            goto out_free;
    }
    rc = LM_OK;
out_free:
    if (rc == LM_ERR_NOMEM)
        lm_fail(err, errlen, rc, "out of memory while tokenizing");
    pcre2_match_data_free(md);
    free(a.p);
    free(b.p);
    tok_buf_free(&w.word);
    tok_buf_free(&w.key);
    tok_merger_free(&w.mg);
    return rc;
}
