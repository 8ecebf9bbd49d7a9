#!/usr/bin/env python3
"""Cross-check vkllm's embeddings against llama.cpp on synthetic BERT-style encoders.

What it checks
--------------
For the two encoder architectures vkllm runs (bert and nomic-bert) this script writes small random
GGUFs with llama.cpp's own Python writer (gguf-py), using the metadata keys and tensor names llama.cpp
reads for that architecture (2 layers, 4 heads, n_embd 64, context 512, attention.causal false,
layer_norm_epsilon 1e-12):

  * bert        learned position_embd, token_types, q/k/v/o biases, ffn_up/ffn_down with biases and
                GELU, post-norm attn_output_norm / layer_output_norm (weight + bias), token_embd_norm
  * nomic-bert  fused attn_qkv (no bias), RoPE NEOX with rope.freq_base 1000, no position_embd,
                SwiGLU FFN (ffn_gate with silu, times ffn_up; no FFN biases), the same post-norms

Every model gets the real WordPiece vocabulary (30522 tokens): all tokenizer.* keys are copied from
--vocab (e.g. ggml-vocab-bert-bge.gguf, read with gguf.GGUFReader) and tokenizer.ggml.token_type_count
is set to 2. Weights are seeded N(0, --weight-std) (default 0.05), norm weights ~1, biases small.

Each architecture is written with pooling_type 1 (mean) and 2 (cls), each with its weight matrices in
F32 and in F16 (norms and biases stay F32): 8 files. Both programs embed the same sentences (SENTENCES,
eight of different lengths, some with punctuation, digits, accents and rare words):

    llama-embedding -m FILE -p "$(cat TEXT)" --embd-normalize 2 --embd-output-format json -t 2
    vkllm embed -m FILE -f TEXT --format json

(pooling from the file; both L2-normalise). Each pair of vectors is compared by cosine similarity and
must reach 0.9999. The tokenisation is compared too: llama-embedding --verbose-prompt prints the token
ids of every prompt, `vkllm tokenize --ids` prints vkllm's; they must be identical, and the
usage.prompt_tokens of vkllm embed must equal llama.cpp's total. The table also shows
the mean cosine between *different* sentences of one model (llama.cpp's vectors), to show how far apart
unrelated inputs are, i.e. how much a 0.9999 criterion discriminates. With the default std 0.05 the
attention is nearly uniform: CLS vectors of different sentences agree to ~0.998 and changing the RoPE base
from 1000 to 10000 moves llama.cpp's vectors by only 1 - cos ~ 5e-6. The std-0.3 probes have sharp
attention (the same RoPE change moves them by 1 - cos up to 0.56), so run them too (--probes).

How to run
----------
    python3 bench/llamacpp_embeddings.py \\
        --llama-bin /path/to/llama.cpp/build/bin --vkllm build/vkllm \\
        --gguf-py /path/to/llama.cpp/gguf-py \\
        --vocab /path/to/ggml-vocab-bert-bge.gguf --out /tmp/embeddings

It needs numpy (Debian: python3-numpy). It prints a Markdown table (arch, type, pooling, tokens equal,
min cosine over the sentences, mean cosine, mean cosine between different sentences) and exits 1 if any
cosine is below 0.9999 (or a run fails, or the tokens differ). Models, texts and logs stay in --out.

Options: `--only NAME[,NAME]` runs some variants (bert, nomic-bert); `--types` chooses among F32, F16;
`--poolings` among mean, cls; `--probes` adds the isolation probes (PROBES: one feature removed or
changed each), which are reported but do not change the exit status.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys

TOLERANCE_COS = 0.9999
N_CTX = 512

# ---------------------------------------------------------------------------------------------------
# The sentences: original text written for this check, from one word to a few dozen, one per line.
SENTENCES = [
    "Hello.",
    "The lighthouse keeper woke before the sun.",
    "Rain fell softly on the tin roof of the old barn, and the cows did not seem to mind at all.",
    "A café in Zürich serves naïve crêpes for 12.50 francs!",
    "Quantum chromodynamics describes interactions between quarks and gluons.",
    "Why?",
    "She counted 3,141 pebbles on the beach, then lost track, laughed, and started over again from one, "
    "because the afternoon was long and nobody was waiting for her at home.",
    "unbelievably antidisestablishmentarianism hyperparameterization",
]

# ---------------------------------------------------------------------------------------------------
# Model variants. Each entry names the arch string and the switches its builder reads.

BASE = dict(n_embd=64, n_layer=2, n_head=4, n_ff=128, rope_base=1000.0, eps=1e-12)

VARIANTS = [
    ("bert", dict(arch="bert", pos_embd=True, token_types=True, qkv_bias=True, ffn_bias=True)),
    ("nomic-bert", dict(arch="nomic-bert", fused_qkv=True, swiglu=True, token_types=True, n_ff=256)),
]

# Isolation probes (run with --probes): each removes or changes one feature of a variant above.
PROBES = [
    ("bert-no-types", "bert", dict(token_types=False)),
    ("bert-no-bias", "bert", dict(qkv_bias=False, ffn_bias=False)),
    ("bert-std0.15", "bert", dict(weight_std=0.15)),
    ("nomic-bert-no-types", "nomic-bert", dict(token_types=False)),
    ("nomic-bert-std0.15", "nomic-bert", dict(weight_std=0.15)),
    ("nomic-bert-base10000", "nomic-bert", dict(rope_base=10000.0)),
    # larger weights: sharper attention, so the RoPE base and the attention details matter more
    ("bert-std0.3", "bert", dict(weight_std=0.3)),
    ("nomic-bert-std0.3", "nomic-bert", dict(weight_std=0.3)),
    ("nomic-bert-std0.3-base10000", "nomic-bert", dict(weight_std=0.3, rope_base=10000.0)),
]

POOLINGS = {"mean": 1, "cls": 2}


def copy_tokenizer(gguf, w, reader):
    """Copy every tokenizer.* key of `reader` into the writer `w` (token_type_count is set to 2)."""
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or key == "tokenizer.ggml.token_type_count":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub)
    w.add_token_type_count(2)


def write_model(gguf, np, path, cfg, reader, n_vocab, pooling, f16, seed, weight_std):
    """Write one synthetic encoder. `f16` stores the matrices (and embedding tables) as F16."""
    c = dict(BASE)
    c.update(cfg)
    arch = c["arch"]
    E, L, H, F = c["n_embd"], c["n_layer"], c["n_head"], c["n_ff"]
    std = c.get("weight_std", weight_std)
    rng = np.random.default_rng(seed)

    w = gguf.GGUFWriter(path, arch)
    w.add_name("synthetic encoder %d" % seed)
    w.add_context_length(N_CTX)
    w.add_embedding_length(E)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_layer_norm_eps(c["eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType(pooling))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    if arch == "nomic-bert":
        w.add_rope_freq_base(c["rope_base"])
    copy_tokenizer(gguf, w, reader)

    def mat(name, *shape):
        """A matrix of numpy shape (n_out, n_in) = ggml {n_in, n_out}, ~N(0, std); F16 if asked."""
        a = (rng.standard_normal(shape) * std).astype(np.float32)
        w.add_tensor(name, a.astype(np.float16) if f16 else a)

    def vec(name, n, mean=0.0, s=0.02):
        w.add_tensor(name, (mean + rng.standard_normal(n) * s).astype(np.float32))

    mat("token_embd.weight", n_vocab, E)
    if c.get("token_types"):
        # F32 even in the F16 files, as llama.cpp's converter keeps it: llama.cpp adds its row 0 with
        # ggml_add, and the CPU backend has no f32 + f16 add (binary_op: unsupported types)
        w.add_tensor("token_types.weight", (rng.standard_normal((2, E)) * std).astype(np.float32))
    if c.get("pos_embd"):
        mat("position_embd.weight", N_CTX, E)
    vec("token_embd_norm.weight", E, 1.0, 0.1)
    vec("token_embd_norm.bias", E)

    for i in range(L):
        p = "blk.%d." % i
        if c.get("fused_qkv"):
            mat(p + "attn_qkv.weight", 3 * E, E)     # rows [0,E) Q, [E,2E) K, [2E,3E) V
        else:
            mat(p + "attn_q.weight", E, E)
            mat(p + "attn_k.weight", E, E)
            mat(p + "attn_v.weight", E, E)
        if c.get("qkv_bias"):
            vec(p + "attn_q.bias", E)
            vec(p + "attn_k.bias", E)
            vec(p + "attn_v.bias", E)
        mat(p + "attn_output.weight", E, E)
        if c.get("qkv_bias"):
            vec(p + "attn_output.bias", E)
        vec(p + "attn_output_norm.weight", E, 1.0, 0.1)
        vec(p + "attn_output_norm.bias", E)
        if c.get("swiglu"):
            mat(p + "ffn_gate.weight", F, E)
        mat(p + "ffn_up.weight", F, E)
        if c.get("ffn_bias"):
            vec(p + "ffn_up.bias", F)
        mat(p + "ffn_down.weight", E, F)
        if c.get("ffn_bias"):
            vec(p + "ffn_down.bias", E)
        vec(p + "layer_output_norm.weight", E, 1.0, 0.1)
        vec(p + "layer_output_norm.bias", E)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------------
# Running the two programs and reading their results.

def run(cmd, log_path):
    """Run cmd, save the command, stdout and stderr to log_path, return (returncode, stdout, stderr)."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    with open(log_path, "w") as f:
        f.write(" ".join(cmd) + "\n\n--- stdout\n" + p.stdout + "\n--- stderr\n" + p.stderr)
    return p.returncode, p.stdout, p.stderr


def parse_json_embeddings(text):
    """The vectors of an OpenAI-style embeddings response (the first JSON object in `text`), by index."""
    m = re.search(r'\{\s*"object"', text)     # skip the token lists of --verbose-prompt
    start = m.start() if m else -1
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    data = sorted(obj.get("data", []), key=lambda d: d.get("index", 0))
    return [d["embedding"] for d in data], (obj.get("usage") or {}).get("prompt_tokens")


def parse_llama_tokens(text):
    """Token ids per prompt from llama-embedding --verbose-prompt: its stdout has, per prompt, a run of
    'id -> 'piece'' lines followed by blank lines (the prompt headers go to stderr)."""
    prompts, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+) -> '", line)
        if m:
            if cur is None:
                cur = []
                prompts.append(cur)
            cur.append(int(m.group(1)))
        elif not line.strip():
            cur = None
        elif prompts:
            break                               # the embeddings follow the token lists
    return prompts


def cosine(np, a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-bin", required=True, help="llama.cpp build/bin with llama-embedding")
    ap.add_argument("--vkllm", required=True, help="vkllm binary")
    ap.add_argument("--gguf-py", required=True, help="llama.cpp's gguf-py directory")
    ap.add_argument("--vocab", required=True, help="a GGUF with a WordPiece vocabulary (ggml-vocab-bert-bge.gguf)")
    ap.add_argument("--out", required=True, help="directory for the models, texts and logs")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--types", default="F32,F16", help="comma-separated: F32, F16")
    ap.add_argument("--poolings", default="mean,cls", help="comma-separated: mean, cls")
    ap.add_argument("--weight-std", type=float, default=0.05, help="std of the random matrices")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--probes", action="store_true", help="also run the isolation probes (PROBES)")
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.gguf_py))
    import numpy as np   # noqa: E402  (after the arguments so --help works without numpy)
    import gguf          # noqa: E402

    os.makedirs(args.out, exist_ok=True)
    text_path = os.path.join(args.out, "sentences.txt")
    with open(text_path, "w") as f:
        f.write("\n".join(SENTENCES) + "\n")
    reader = gguf.GGUFReader(args.vocab)
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    only = set(filter(None, args.only.split(",")))

    # vkllm's tokens of every sentence (the vocabulary file is enough: same tokenizer.* keys)
    vk_tokens = []
    for k, s in enumerate(SENTENCES):
        rc, out, _ = run([args.vkllm, "tokenize", "-m", args.vocab, "-p", s, "--ids"],
                         os.path.join(args.out, "tokenize-%d.vkllm.log" % k))
        vk_tokens.append([int(t) for t in out.split()] if rc == 0 else None)

    seeds = {name: 2000 + vi for vi, (name, _) in enumerate(VARIANTS)}
    jobs = [(name, cfg, seeds[name], False) for name, cfg in VARIANTS]
    if args.probes:
        base_cfg = dict(VARIANTS)
        jobs += [(name, dict(base_cfg[base], **chg), seeds[base], True) for name, base, chg in PROBES]

    rows, failed = [], False
    for name, cfg, seed, probe in jobs:
        if only and name not in only and not (probe and any(name.startswith(o) for o in only)):
            continue
        for tname in args.types.split(","):
            for pname in args.poolings.split(","):
                path = os.path.join(args.out, "%s-%s-%s.gguf" % (name, tname.lower(), pname))
                write_model(gguf, np, path, cfg, reader, n_vocab, POOLINGS[pname], tname == "F16",
                            seed, args.weight_std)
                base = os.path.splitext(path)[0]
                rc1, out1, err1 = run([os.path.join(args.llama_bin, "llama-embedding"), "-m", path,
                                       "-p", "\n".join(SENTENCES), "--embd-normalize", "2",
                                       "--embd-output-format", "json", "--verbose-prompt",
                                       "-t", args.threads], base + ".llamacpp.log")
                rc2, out2, _ = run([args.vkllm, "embed", "-m", path, "-f", text_path, "--format", "json"],
                                   base + ".vkllm.log")
                e1, _ = (parse_json_embeddings(out1) if rc1 == 0 else None) or (None, None)
                e2, n2 = (parse_json_embeddings(out2) if rc2 == 0 else None) or (None, None)
                note = []
                if not e1:
                    note.append("llama.cpp failed (rc %d)" % rc1)
                if not e2:
                    note.append("vkllm failed (rc %d)" % rc2)
                cos, cross = [], None
                if e1 and e2:
                    if len(e1) != len(SENTENCES) or len(e2) != len(SENTENCES):
                        note.append("vector counts %d / %d" % (len(e1), len(e2)))
                    else:
                        cos = [cosine(np, a, b) for a, b in zip(e1, e2)]
                        n = len(e1)
                        cross = sum(cosine(np, e1[i], e1[j]) for i in range(n) for j in range(n) if i != j)
                        cross /= n * (n - 1)
                lt = parse_llama_tokens(out1)
                tok_ok = len(lt) == len(SENTENCES) and all(a == b for a, b in zip(lt, vk_tokens))
                if e2 and n2 != sum(len(t) for t in lt):   # vkllm embed's own count (usage.prompt_tokens)
                    tok_ok = False
                    note.append("vkllm embed prompt_tokens %s vs llama.cpp %d" % (n2, sum(len(t) for t in lt)))
                if not tok_ok:
                    bad = [k for k in range(len(SENTENCES)) if k >= len(lt) or lt[k] != vk_tokens[k]]
                    note.append("tokens differ in sentences %s" % bad)
                ok = bool(cos) and min(cos) >= TOLERANCE_COS and tok_ok
                worst = None
                if cos:
                    worst = min(range(len(cos)), key=lambda k: cos[k])
                    if min(cos) < TOLERANCE_COS:
                        note.append("worst: sentence %d" % worst)
                if probe:
                    note.append("(probe)")
                else:
                    failed |= not ok
                rows.append((name, cfg["arch"], tname, pname, tok_ok, cos, cross, ok, "; ".join(note)))
                print("%-22s %-3s %-4s min cos %s  %s" % (name, tname, pname,
                                                          "%.7f" % min(cos) if cos else "-",
                                                          "ok" if ok else "MISMATCH"),
                      file=sys.stderr, flush=True)

    print("| variant | arch | type | pooling | tokens equal | min cosine | mean cosine "
          "| max 1 - cosine | mean cosine between different sentences | |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, arch, tname, pname, tok_ok, cos, cross, ok, note in rows:
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, arch, tname, pname, "yes" if tok_ok else "**no**",
            "%.7f" % min(cos) if cos else "-", "%.7f" % (sum(cos) / len(cos)) if cos else "-",
            "%.2e" % (1.0 - min(cos)) if cos else "-",
            "-" if cross is None else "%.4f" % cross,
            ("ok" if ok else "**MISMATCH**") + (" " + note if note else "")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
