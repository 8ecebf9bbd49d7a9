#!/usr/bin/env bash
# corpus.sh OUTDIR [MODELS]: the fuzz targets' starting corpora, OUTDIR/<target>/, from the shared model
# data (MODELS, default ../shared/models beside the project; files copied, never committed) and a few
# inputs made here. The hand-written seeds in tests/fuzz/seeds/ are passed to the targets beside it.
# Files already there are kept (what a campaign found stays).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
models="${2:-${VKLLM_MODELS:-$here/../../../shared/models}}"
for t in gguf tokenizer template conv serve http llama2c; do mkdir -p "$out/$t"; done

# little-endian integers and GGUF strings, as printf escapes
u32() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }
u64() { u32 $(($1 & 0xffffffff)); u32 $(($1 >> 32)); }
str() { local LC_ALL=C; u64 ${#1}; printf '%s' "$1"; } # (a byte count)

# gguf: real files (a model, an SPM and a WordPiece vocabulary) and two small ones made here
cp -f "$models/gguf/stories260K.gguf" "$models/tokenizer-vectors/ggml-vocab-llama-spm.gguf" \
    "$models/tokenizer-vectors/ggml-vocab-bert-bge.gguf" "$out/gguf/"
{   # v3, one tensor and three keys (a string, the alignment, an array of strings)
    printf 'GGUF'; u32 3; u64 1; u64 3
    str general.architecture; u32 8; str llama
    str general.alignment; u32 4; u32 32
    str tokenizer.ggml.tokens; u32 9; u32 8; u64 3; str '<unk>'; str a; str b
    str tok_embd.weight; u32 2; u64 8; u64 2; u32 0; u64 0
} > "$out/gguf/small.gguf"
size=$(stat -c %s "$out/gguf/small.gguf")
head -c $(( (32 - size % 32) % 32 + 64 )) /dev/zero >> "$out/gguf/small.gguf"
{   # v2, no tensors, every scalar type
    printf 'GGUF'; u32 2; u64 0; u64 10
    str a.u8; u32 0; printf '\x07'
    str a.i8; u32 1; printf '\xff'
    str a.u16; u32 2; printf '\x01\x02'
    str a.i16; u32 3; printf '\xfe\xff'
    str a.u32; u32 4; u32 123456
    str a.i32; u32 5; u32 4294967295
    str a.f32; u32 6; printf '\x00\x00\x80\x3f'
    str a.bool; u32 7; printf '\x01'
    str a.f64; u32 12; printf '\x00\x00\x00\x00\x00\x00\xf0\x3f'
    str a.arr; u32 9; u32 5; u64 2; u32 1; u32 2
} > "$out/gguf/scalars.gguf"

# and three small vocabularies (a few tokens each, one per tokenizer type: SPM with scores and types,
# BPE with merges and a pre-tokenizer, WordPiece), so that the vocabulary code stays within reach of a
# campaign run with a small -max_len
strs() { u32 8; u64 $#; for x in "$@"; do str "$x"; done; }
{   printf 'GGUF'; u32 3; u64 0; u64 7
    str general.architecture; u32 8; str llama
    str tokenizer.ggml.model; u32 8; str llama
    str tokenizer.ggml.tokens; u32 9; strs '<unk>' '<s>' '</s>' '<0x41>' $'\xe2\x96\x81a' b ab $'\xe2\x96\x81ab'
    str tokenizer.ggml.scores; u32 9; u32 6; u64 8
    for f in 00000000 00000000 00000000 00000000 000080bf 000000c0 000040c0 0000803f; do printf "$(printf '%s' $f | sed 's/../\\x&/g')"; done
    str tokenizer.ggml.token_type; u32 9; u32 5; u64 8; u32 2; u32 3; u32 3; u32 6; u32 1; u32 1; u32 1; u32 1
    str tokenizer.ggml.bos_token_id; u32 4; u32 1
    str tokenizer.ggml.add_bos_token; u32 7; printf '\x01'
} > "$out/gguf/vocab-spm.gguf"
{   printf 'GGUF'; u32 3; u64 0; u64 6
    str general.architecture; u32 8; str qwen2
    str tokenizer.ggml.model; u32 8; str gpt2
    str tokenizer.ggml.pre; u32 8; str qwen2
    str tokenizer.ggml.tokens; u32 9; strs a b c $'\xc4\xa0' ab $'\xc4\xa0a' abc '<|endoftext|>'
    str tokenizer.ggml.merges; u32 9; strs 'a b' $'\xc4\xa0 a' 'ab c'
    str tokenizer.ggml.eos_token_id; u32 4; u32 7
} > "$out/gguf/vocab-bpe.gguf"
{   printf 'GGUF'; u32 3; u64 0; u64 6
    str general.architecture; u32 8; str bert
    str tokenizer.ggml.model; u32 8; str bert
    str tokenizer.ggml.tokens; u32 9; strs '[PAD]' '[UNK]' '[CLS]' '[SEP]' \
        $'\xe2\x96\x81hello' s $'\xe2\x96\x81world' $'\xe2\x96\x81,' lo $'\xe2\x96\x81hel' # (word starts marked)
    str tokenizer.ggml.token_type; u32 9; u32 5; u64 10; u32 3; u32 2; u32 3; u32 3; for _ in 1 2 3 4 5 6; do u32 1; done
    str tokenizer.ggml.cls_token_id; u32 4; u32 2
    str tokenizer.ggml.seperator_token_id; u32 4; u32 3
} > "$out/gguf/vocab-wpm.gguf"

# tokenizer: the test vectors' inputs, one file each, behind the byte that picks their vocabulary
# (its index in fuzz_tokenizer.c's VOCABS, 0 written as 14; add_special and parse_special set)
i=0
for v in llama-spm llama-bpe gpt-2 qwen2 deepseek-llm deepseek-coder bert-bge phi-3 falcon gpt-neox mpt refact \
         starcoder baichuan; do
    inp="$models/tokenizer-vectors/ggml-vocab-$v.gguf.inp"
    sel=$(( (i == 0 ? 14 : i) | 96 ))
    if [ -f "$inp" ]; then
        awk -v sel="$sel" -v dir="$out/tokenizer" -v v="$v" '
            BEGIN { RS = "\n__ggml_vocab_test__\n"; n = 0 }
            { f = sprintf("%s/%s-%03d", dir, v, n++); printf "%c%s", sel, $0 > f; close(f) }' "$inp"
    fi
    i=$((i + 1))
done

# template: every real chat template, with the shared conversation as its context
ctx_of() { printf '{"messages": '; cat "$1"; printf ', "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"}'; }
for j in "$models"/chat-templates/*.jinja; do
    { cat "$j"; printf '\0'; ctx_of "$models/chat-templates/conversation.json"; } > "$out/template/$(basename "$j" .jinja)"
done

# conv: the shared conversations
cp -f "$models"/chat-templates/conversation*.json "$out/conv/"

# serve: the shared conversations as chat requests
for c in "$models"/chat-templates/conversation*.json; do
    { printf '\0{"model": "m", "max_tokens": 8, "messages": '; cat "$c"; printf '}'; } > "$out/serve/$(basename "$c")"
done

# llama2c: tokenizers (the checkpoint's header is read from the same input)
cp -f "$models/llama2c/tok512.bin" "$out/llama2c/"
head -c 4096 "$models/llama2c/stories260K.bin" > "$out/llama2c/stories260K-head.bin"
