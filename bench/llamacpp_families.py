#!/usr/bin/env python3
"""Cross-check vkllm's perplexity against llama.cpp on synthetic models of every supported family.

What it checks
--------------
For each architecture vkllm runs (llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3 and llama with
Mixtral-style experts) this script writes a small random GGUF with llama.cpp's own Python writer
(gguf-py), using the metadata keys and tensor names llama.cpp expects for that architecture and turning
on the features that set the family apart:

  * qwen2     q/k/v biases
  * qwen3     per-head RMS norms on Q and K (attn_q_norm / attn_k_norm), n_head*head_dim != n_embd
  * qwen3moe  the same plus 8 experts with 2 used and expert_feed_forward_length
  * gemma2    sliding window 32 on even layers, attention softcap 5, final softcap 3,
              post_attention_norm / post_ffw_norm, sqrt(n_embd) embedding scale, tied head (no output.weight)
  * gemma3    q/k norms, sliding window 32 with period 2, rope.freq_base_swa, linear rope scaling on
              the global layers, tied head
  * phi3      fused attn_qkv and fused ffn_up [gate; up], rope_factors_long/short with
              rope.scaling.original_context_length below the context (long factors) and far above it
              (short factors), rope.scaling.attn_factor
  * llama-moe llama.expert_count 4 / expert_used_count 2 with ffn_gate_inp and ffn_{gate,up,down}_exps

Each model is written three times: F32; with its weight matrices quantised to Q8_0
(gguf.quants.quantize; norms, biases, rope factors and the MoE router stay F32); and "Q8_0-as-F32", the
same Q8_0-rounded weights dequantised back to F32. The last one tells which side deviates on Q8_0: it is
the exact result for the quantised weights, without either program's quantised kernels.

Every model gets the same SentencePiece-style ("llama") vocabulary: <unk> <s> </s>, the 256 byte tokens
<0x00>..<0xFF> (type BYTE), single characters and a few hundred word pieces with scores, built from the
prose sample below (about 1370 tokens: 10 chunks of 128).

Both programs then compute the perplexity of the same text with 128-token chunks:

    llama-perplexity -m FILE -f TEXT -c 128 -b 128 -t 2
    vkllm perplexity -m FILE -f TEXT -c 128

The final estimates must agree within 0.5 % and both must score the same number of chunks.

How to run
----------
    python3 bench/llamacpp_families.py \\
        --llama-bin /path/to/llama.cpp/build/bin --vkllm build/vkllm \\
        --gguf-py /path/to/llama.cpp/gguf-py --out /tmp/families

It needs numpy (Debian: python3-numpy). It prints a Markdown table (arch, type, llama.cpp ppl, vkllm ppl,
difference %, and for Q8_0 each side's distance from the Q8_0-as-F32 result) and exits 1 if any pair
differs by more than 0.5 % (or a run fails, or the chunk counts differ). Models and logs stay in --out.

Options: `--only NAME[,NAME]` runs some variants; `--types` chooses among F32, Q8_0, Q8_0-as-F32;
`--probes` adds the isolation probes (PROBES: one feature moved to an edge value each), which are
reported but do not change the exit status.
"""

import argparse
import collections
import math
import os
import re
import subprocess
import sys

TOLERANCE_PCT = 0.5
CTX = 128

# ---------------------------------------------------------------------------------------------------
# The text sample: original prose written for this check. It is about 6 KB, which gives well over
# four 128-token chunks with the vocabulary below (most words are single pieces, the rest bytes).
TEXT = """\
The lighthouse keeper woke before the sun, as he had done every morning for the last eleven years. \
He lit the small stove in the kitchen, set the kettle on the flame, and walked to the window to look \
at the sea. The water was calm and grey, and a thin line of light was just beginning to show at the \
edge of the world. He liked this hour more than any other, because the island was quiet and the birds \
had not yet started their long argument about the fish.

After breakfast he climbed the stairs to the lamp room. There were one hundred and twelve steps, and \
he knew each of them by the sound it made under his boots. At the top he cleaned the glass, checked \
the oil, and wrote a short note in the book that lay open on the table. The note said that the night \
had been clear, that two ships had passed to the north, and that the wind had turned to the west a \
little after midnight. Nobody would read the book for many months, but he wrote in it with care, \
because he believed that a record kept well was a kind of promise to the people who would come later.

In the afternoon he walked along the rocks to the small garden he had built in a hollow out of the \
wind. He grew potatoes, beans, and a few stubborn flowers that his sister had sent him in a paper \
envelope. The soil was thin and the summer was short, but every year the flowers came back, a little \
stronger than before. He often spoke to them while he worked. He told them about the weather, about \
the ships, and about the letters he meant to write but never quite finished.

Once a month a boat came from the mainland with food, oil, and news. The man who steered it was young \
and talked very fast, as if he was afraid the words would spoil before he could deliver them. He told \
the keeper about the new road that was being built along the coast, about the school that had opened \
in the town, and about the price of fish, which was always too high or too low. The keeper listened \
and nodded and gave him a cup of tea. When the boat left, the island seemed larger and more silent \
than before, and it took him a day or two to grow used to the quiet again.

One winter a storm came that was worse than any he remembered. The wind screamed around the tower for \
three days and nights, and the waves climbed so high that the spray reached the windows of the lamp \
room. He did not sleep much. He kept the light burning, he kept the stove warm, and he kept writing \
in the book, even when his hand shook and the lines ran crooked across the page. On the third night he \
saw a small fishing boat fighting the water near the reef. He could not reach it, and he could not \
call to it, but he could make sure that the light turned and turned and never stopped. In the morning \
the storm was gone, the sea was flat and bright, and the fishing boat was safe in the harbour on the \
other side of the bay.

Years later, when the lighthouse was given an electric lamp and the keeper was no longer needed, he \
moved to a small house in the town. He planted flowers in the front garden and walked to the harbour \
every evening to watch the boats come home. Sometimes children asked him what it had been like to \
live alone on the island for so long. He told them that he had never really been alone. He had the sea \
and the birds and the ships, he had the flowers and the book, and he had the light, which he had kept \
for all the people he would never meet. The children did not always understand, but they liked the \
way he smiled when he said it, and they came back the next day to hear more.

The book itself is now kept in a glass case in the small museum near the harbour. Visitors lean over \
it and read the careful lines about wind and weather and passing ships. Most of them read only a page \
or two before they move on to the old maps and the model boats. But now and then someone stays longer, \
turning the pages slowly, and leaves the museum with the feeling that they have met a patient and \
gentle man who believed that small tasks done well could hold the world together, one night at a time.

There is a lesson in his story for anyone who builds things that other people depend on. The work is \
rarely seen when it is done well. Nobody thanks the light for shining on a calm night, and nobody \
writes a letter to the engineer whose bridge did not fall. The keeper knew this and did not mind. He \
measured his days not by praise but by the quiet certainty that the lamp had turned, the oil had been \
checked, and the book had been kept, line after line, for as long as the island needed him.
"""

# ---------------------------------------------------------------------------------------------------
# Vocabulary: SentencePiece conventions ("\u2581" marks a word start), byte fallback for the rest.

SPACE = "\u2581"


def build_vocab(text, n_words=260):
    """Return (tokens, scores, types) for a small SPM vocabulary derived from `text`.

    The pieces are: the three specials, the 256 byte tokens, every character that occurs in the text,
    the word-start marker with each of the `n_words` most common words and all of their prefixes (so the
    SPM merge loop can build each word one character at a time). Longer pieces get higher scores so that
    they are preferred, as in a trained SentencePiece model.
    """
    tokens = ["<unk>", "<s>", "</s>"]
    scores = [0.0, 0.0, 0.0]
    types = [2, 3, 3]                        # UNKNOWN, CONTROL, CONTROL
    for b in range(256):
        tokens.append("<0x%02X>" % b)
        scores.append(0.0)
        types.append(6)                      # BYTE
    pieces = collections.OrderedDict()
    # single characters (lower-case letters and punctuation; capitals and digits fall back to bytes)
    for ch in sorted(set(text)):
        if ch.islower() or ch in ".,'":
            pieces[ch] = -10.0
    pieces[SPACE] = -10.0
    words = re.findall(r"[a-z]+", text)
    common = [w for w, _ in collections.Counter(words).most_common(n_words)]
    for rank, word in enumerate(common):
        piece = SPACE + word
        for k in range(2, len(piece) + 1):
            p = piece[:k]
            # longer pieces score higher; among equals, common words first
            score = -10.0 + k - rank * 1e-3
            if p not in pieces or pieces[p] < score:
                pieces[p] = score
    for p, s in pieces.items():
        tokens.append(p)
        scores.append(s)
        types.append(1)                      # NORMAL
    return tokens, scores, types


# ---------------------------------------------------------------------------------------------------
# Model variants. Each entry names the arch string and the switches its builder reads.

BASE = dict(n_embd=64, n_layer=3, n_head=4, n_head_kv=2, head_dim=16, n_ff=128, rope_base=10000.0)

VARIANTS = [
    ("llama", dict(arch="llama")),
    ("qwen2", dict(arch="qwen2", qkv_bias=True, rope_base=1e6)),
    ("qwen3", dict(arch="qwen3", head_dim=32, qk_norm=True, rope_base=1e6)),
    ("qwen3moe", dict(arch="qwen3moe", head_dim=32, qk_norm=True, n_expert=8, n_expert_used=2,
                      n_ff_exp=64, rope_base=1e6)),
    ("gemma2", dict(arch="gemma2", n_layer=4, head_dim=32, gemma=True, swa=32,
                    attn_softcap=5.0, final_softcap=3.0)),
    ("gemma3", dict(arch="gemma3", n_layer=4, head_dim=32, gemma=True, qk_norm=True, swa=32,
                    swa_pattern=2, rope_base=1e6, rope_base_swa=10000.0, rope_linear=8.0)),
    # original_context_length below the context: llama.cpp (and HF) use the long factors
    ("phi3-long", dict(arch="phi3", phi3=True, rope_factors=True, orig_ctx=64, attn_factor=1.19)),
    # original_context_length far above the context: the short factors
    ("phi3-short", dict(arch="phi3", phi3=True, rope_factors=True, orig_ctx=4096, attn_factor=1.19)),
    ("llama-moe", dict(arch="llama", n_expert=4, n_expert_used=2)),
]

# Isolation probes (run with --probes): each switches one feature of a variant above to an edge value.
# They are not part of the acceptance set; see the report that came with this script for their meaning.
PROBES = [
    # caps so large that tanh is ~linear: the result should converge to the uncapped model
    ("gemma2-cap1e3", "gemma2", dict(attn_softcap=1e3, final_softcap=1e3)),
    ("gemma2-cap1e5", "gemma2", dict(attn_softcap=1e5, final_softcap=1e5)),
    ("gemma2-cap1e6", "gemma2", dict(attn_softcap=1e6, final_softcap=1e6)),
    ("gemma2-window4096", "gemma2", dict(swa=4096)),
    ("gemma3-window4096", "gemma3", dict(swa=4096)),
    ("phi3-no-factors", "phi3-long", dict(rope_factors=False)),
    ("phi3-attn-factor-1", "phi3-long", dict(attn_factor=1.0)),
    # original_context_length between -c (128) and llama.cpp's context padded to a multiple of 256
    ("phi3-orig127", "phi3-long", dict(orig_ctx=127)),
    ("phi3-orig192", "phi3-long", dict(orig_ctx=192)),
    ("llama-moe-all-used", "llama-moe", dict(n_expert_used=4)),
]


def write_model(gguf, np, path, cfg, vocab, quant, seed, dequant=False):
    """Write one synthetic model. `quant` is None (all F32) or a GGMLQuantizationType for the matrices.

    With `dequant`, the matrices are rounded through `quant` and stored back as F32: the same weights as
    the quantised file, without the quantised kernels (used to tell which side deviates on Q8_0).
    """
    c = dict(BASE)
    c.update(cfg)
    arch = c["arch"]
    E, L, H, KV, hd, F = c["n_embd"], c["n_layer"], c["n_head"], c["n_head_kv"], c["head_dim"], c["n_ff"]
    tokens, scores, types = vocab
    V = len(tokens)
    rng = np.random.default_rng(seed)

    w = gguf.GGUFWriter(path, arch)
    # general.name must not contain "phi3"/"phi-3": llama.cpp then expects a "<|endoftext|>" token
    w.add_name("synthetic model %d" % seed)
    w.add_context_length(2048)
    w.add_embedding_length(E)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(c["rope_base"])
    if c.get("n_expert"):
        w.add_expert_count(c["n_expert"])
        w.add_expert_used_count(c["n_expert_used"])
        if c.get("n_ff_exp"):
            w.add_expert_feed_forward_length(c["n_ff_exp"])
    if c.get("swa") is not None:
        w.add_sliding_window(c["swa"])
    if c.get("swa_pattern") is not None:
        w.add_sliding_window_pattern(int(c["swa_pattern"]))   # scalar: an array is ignored by gemma2/3
    if c.get("rope_base_swa") is not None:
        w.add_rope_freq_base_swa(c["rope_base_swa"])
    if c.get("rope_linear"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(c["rope_linear"])
    if c.get("attn_softcap") is not None:
        w.add_attn_logit_softcapping(c["attn_softcap"])
    if c.get("final_softcap") is not None:
        w.add_final_logit_softcapping(c["final_softcap"])
    if c.get("orig_ctx") is not None:
        w.add_rope_scaling_orig_ctx_len(c["orig_ctx"])
    if c.get("attn_factor") is not None:
        w.add_rope_scaling_attn_factors(c["attn_factor"])
    if c.get("phi3"):
        w.add_sliding_window(2047)            # as Phi-3-mini's converter writes it; llama.cpp ignores it

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def mat(name, *shape, gain=1.0):
        """A weight matrix of numpy shape (..., n_out, n_in), std gain/sqrt(n_in); quantised if asked."""
        a = (rng.standard_normal(shape) * (gain / math.sqrt(shape[-1]))).astype(np.float32)
        if quant is not None and shape[-1] % 32 == 0:
            q = gguf.quants.quantize(a, quant)
            if dequant:
                w.add_tensor(name, gguf.quants.dequantize(q, quant).astype(np.float32))
            else:
                w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=quant)
        else:
            w.add_tensor(name, a)

    def vec(name, n, mean=0.0, std=0.1):
        w.add_tensor(name, (mean + rng.standard_normal(n) * std).astype(np.float32))

    # the embedding rows have unit RMS; the head's logits then have a std of a few nats, far from uniform
    mat("token_embd.weight", V, E, gain=math.sqrt(E) * 0.3)
    vec("output_norm.weight", E, 1.0)
    if not c.get("gemma"):
        mat("output.weight", V, E, gain=2.5)   # gemma2/gemma3: tied to token_embd
    if c.get("rope_factors"):
        n = hd // 2
        w.add_tensor("rope_factors_short.weight", (1.0 + rng.uniform(0, 0.5, n)).astype(np.float32))
        w.add_tensor("rope_factors_long.weight", np.geomspace(1.0, 16.0, n).astype(np.float32))

    for i in range(L):
        p = "blk.%d." % i
        vec(p + "attn_norm.weight", E, 1.0)
        if c.get("phi3"):
            mat(p + "attn_qkv.weight", (H + 2 * KV) * hd, E, gain=1.5)
        else:
            mat(p + "attn_q.weight", H * hd, E, gain=1.5)
            mat(p + "attn_k.weight", KV * hd, E, gain=1.5)
            mat(p + "attn_v.weight", KV * hd, E)
        if c.get("qkv_bias"):
            vec(p + "attn_q.bias", H * hd, 0.0, 0.5)
            vec(p + "attn_k.bias", KV * hd, 0.0, 0.5)
            vec(p + "attn_v.bias", KV * hd, 0.0, 0.5)
        if c.get("qk_norm"):
            vec(p + "attn_q_norm.weight", hd, 1.0, 0.2)
            vec(p + "attn_k_norm.weight", hd, 1.0, 0.2)
        mat(p + "attn_output.weight", E, H * hd)
        if c.get("gemma"):
            vec(p + "post_attention_norm.weight", E, 1.0)
            vec(p + "post_ffw_norm.weight", E, 1.0)
        vec(p + "ffn_norm.weight", E, 1.0)
        if c.get("n_expert"):
            X, Fe = c["n_expert"], c.get("n_ff_exp") or F
            # the router stays F32, as llama-quantize leaves it
            w.add_tensor(p + "ffn_gate_inp.weight",
                         (rng.standard_normal((X, E)) * (2.0 / math.sqrt(E))).astype(np.float32))
            mat(p + "ffn_gate_exps.weight", X, Fe, E)
            mat(p + "ffn_up_exps.weight", X, Fe, E)
            mat(p + "ffn_down_exps.weight", X, E, Fe)
        elif c.get("phi3"):
            mat(p + "ffn_up.weight", 2 * F, E)  # rows [0,F) gate, [F,2F) up
            mat(p + "ffn_down.weight", E, F)
        else:
            mat(p + "ffn_gate.weight", F, E)
            mat(p + "ffn_up.weight", F, E)
            mat(p + "ffn_down.weight", E, F)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------------
# Running the two programs and reading their results.

def run(cmd, log_path):
    """Run cmd, save stdout+stderr to log_path, return (returncode, text)."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    with open(log_path, "w") as f:
        f.write(" ".join(cmd) + "\n\n" + p.stdout)
    return p.returncode, p.stdout


def parse_final_ppl(text):
    m = re.findall(r"Final estimate: PPL = ([0-9.eE+-]+|nan|inf)", text)
    if m:
        return float(m[-1])
    m = re.findall(r"(?i)perplexity\D{0,20}?([0-9]+\.[0-9]+)", text)
    return float(m[-1]) if m else None


def parse_chunks(text):
    """Number of chunks the run scored: llama.cpp prints 'over N chunks'; both print [k]ppl lists."""
    m = re.search(r"over (\d+) chunks", text)
    if m:
        return int(m.group(1))
    ks = re.findall(r"\[(\d+)\]\s*[0-9.]+", text)
    return max(int(k) for k in ks) if ks else None


def parse_tokens(text):
    m = re.search(r"(\d+) tokens", text)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-bin", required=True, help="llama.cpp build/bin with llama-perplexity")
    ap.add_argument("--vkllm", required=True, help="vkllm binary")
    ap.add_argument("--gguf-py", required=True, help="llama.cpp's gguf-py directory")
    ap.add_argument("--out", required=True, help="directory for the models, text and logs")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--types", default="F32,Q8_0,Q8_0-as-F32",
                    help="comma-separated: F32, Q8_0, Q8_0-as-F32 (the Q8_0-rounded weights stored as F32)")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--probes", action="store_true", help="also run the isolation probes (PROBES)")
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.gguf_py))
    import numpy as np   # noqa: E402  (after the arguments so --help works without numpy)
    import gguf          # noqa: E402

    os.makedirs(args.out, exist_ok=True)
    text_path = os.path.join(args.out, "text.txt")
    with open(text_path, "w") as f:
        f.write(TEXT)
    vocab = build_vocab(TEXT)
    only = set(filter(None, args.only.split(",")))
    q8 = gguf.GGMLQuantizationType.Q8_0
    qtypes = {"F32": (None, False), "Q8_0": (q8, False), "Q8_0-as-F32": (q8, True)}

    # (name, config, seed): a probe reuses its base variant's seed, hence the same weights
    seeds = {name: 1000 + vi for vi, (name, _) in enumerate(VARIANTS)}
    jobs = [(name, cfg, seeds[name], False) for name, cfg in VARIANTS]
    if args.probes:
        base_cfg = dict(VARIANTS)
        jobs += [(name, dict(base_cfg[base], **chg), seeds[base], True) for name, base, chg in PROBES]

    rows, failed = [], False
    for name, cfg, seed, probe in jobs:
        if only and name not in only:
            continue
        for tname in args.types.split(","):
            path = os.path.join(args.out, "%s-%s.gguf" % (name, tname.lower()))
            quant, dequant = qtypes[tname]
            write_model(gguf, np, path, cfg, vocab, quant, seed=seed, dequant=dequant)
            base = os.path.splitext(path)[0]
            rc1, out1 = run([os.path.join(args.llama_bin, "llama-perplexity"), "-m", path, "-f", text_path,
                             "-c", str(CTX), "-b", str(CTX), "-t", args.threads], base + ".llamacpp.log")
            rc2, out2 = run([args.vkllm, "perplexity", "-m", path, "-f", text_path, "-c", str(CTX)],
                            base + ".vkllm.log")
            p1 = parse_final_ppl(out1) if rc1 == 0 else None
            p2 = parse_final_ppl(out2) if rc2 == 0 else None
            c1, c2 = parse_chunks(out1), parse_chunks(out2)
            note = []
            if p1 is None:
                note.append("llama.cpp failed (rc %d)" % rc1)
            if p2 is None:
                note.append("vkllm failed (rc %d)" % rc2)
            if c1 != c2:
                note.append("chunks %s vs %s" % (c1, c2))
            diff = None
            if p1 is not None and p2 is not None and p1 > 0:
                diff = 100.0 * (p2 - p1) / p1
            ok = diff is not None and abs(diff) <= TOLERANCE_PCT and c1 == c2
            if probe:
                note.append("(probe)")
            else:
                failed |= not ok
            rows.append((name, cfg["arch"], tname, p1, p2, diff, c1, c2, ok, "; ".join(note)))
            print("%-10s %-5s llama.cpp %s  vkllm %s  %s" % (name, tname, p1, p2, "ok" if ok else "MISMATCH"),
                  file=sys.stderr, flush=True)

    # For a quantised row, which side deviates: both are compared with the same weights stored as F32
    # (the "-as-F32" row; its llama.cpp result is the reference, the F32 kernels of both agree closely).
    ref = {(r[0], r[2]): r[3] for r in rows}
    fmt = lambda v: "-" if v is None else "%.4f" % v
    pct = lambda a, b: "-" if a is None or b is None else "%+.3f" % (100.0 * (a - b) / b)
    print("| variant | arch | type | chunks (llama.cpp / vkllm) | llama.cpp ppl | vkllm ppl | difference % "
          "| vs same weights in F32: llama.cpp % / vkllm % | |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, arch, tname, p1, p2, diff, c1, c2, ok, note in rows:
        r = ref.get((name, tname + "-as-F32"))
        attrib = "%s / %s" % (pct(p1, r), pct(p2, r)) if r is not None else ""
        print("| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s |" % (
            name, arch, tname, c1, c2, fmt(p1), fmt(p2), "-" if diff is None else "%+.3f" % diff, attrib,
            ("ok" if ok else "**MISMATCH**") + (" " + note if note else "")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
