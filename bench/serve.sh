#!/usr/bin/env bash
# serve.sh: `vkllm serve` under load on loopback (a benchmark, not a test): continuous batching of 1, 4,
# 16 and 64 concurrent streams, and the prefix cache's effect on time to first token.
#
#   bench/serve.sh [--vkllm PATH] [--model FILE | SHAPE:TYPE] [--streams 1,4,16,64] [--tokens N]
#                  [--parallel N] [--ctx-size N] [--kv-blocks N] [--device N]
#
# The model defaults to llama-135m:Q4_0 (SmolLM2-135M's shape with seeded random weights), which
# `vkllm make-model llama-135m Q4_0` writes first into $BENCH_MODEL_DIR (kept) or a temporary folder.
# One server (--parallel: default the largest --streams, -c 512, -b 256) on a free port; then
# bench/serve_client.mjs (node 20, no packages; its header says what it measures): for each number of
# streams the aggregate output tokens/s, time to first token, and the median and 99th percentile of the
# time per output token; then TTFT of a long system prompt evaluated, and again from the prefix cache.
# The server's /metrics at the end: passes, rows per pass, preemptions, the prefix cache's hit rate.
#
# Environment: BENCH_MODEL_DIR, BENCH_TOKENS (output tokens per request, default 32), BENCH_PREFIX_RUNS
# (default 2), BENCH_PREFIX_CHARS (the system prompt's length in characters, default 600). The server's
# stderr goes to $BENCH_LOG (default a temporary file, printed when it fails).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
VKLLM='' MODEL=llama-135m:Q4_0 STREAMS=1,4,16,64 PARALLEL='' CTX=512 KV_BLOCKS='' DEV=''
while [ $# -gt 0 ]; do
    case "$1" in
        --vkllm) VKLLM=$2; shift 2 ;;
        --model) MODEL=$2; shift 2 ;;
        --streams) STREAMS=$2; shift 2 ;;
        --tokens) export BENCH_TOKENS=$2; shift 2 ;;
        --parallel) PARALLEL=$2; shift 2 ;;
        --ctx-size) CTX=$2; shift 2 ;;
        --kv-blocks) KV_BLOCKS=$2; shift 2 ;;
        --device) DEV=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "serve.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$VKLLM" ]; then
    for b in "$here/../build/vkllm" "$here/../build-cb/vkllm"; do
        [ -x "$b" ] && VKLLM=$b && break
    done
fi
if [ -z "$VKLLM" ] || [ ! -x "$VKLLM" ]; then
    echo "serve.sh: no vkllm binary (build it, or --vkllm PATH)" >&2
    exit 1
fi
command -v node > /dev/null || { echo "serve.sh: node (20 or later) is needed" >&2; exit 1; }
if [ -z "$PARALLEL" ]; then
    PARALLEL=$(echo "$STREAMS" | tr ',' '\n' | sort -n | tail -1)
fi

tmp=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2> /dev/null || true
        wait "$server" 2> /dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

file=$MODEL
if [ ! -f "$MODEL" ]; then
    case "$MODEL" in
        *:*) ;;
        *) echo "serve.sh: '$MODEL' is neither a file nor SHAPE:TYPE" >&2; exit 2 ;;
    esac
    dir=${BENCH_MODEL_DIR:-$tmp}
    mkdir -p "$dir"
    file="$dir/${MODEL%%:*}-${MODEL##*:}.gguf"
    [ -f "$file" ] || "$VKLLM" make-model "${MODEL%%:*}" "${MODEL##*:}" -o "$file" >&2
fi

log=${BENCH_LOG:-$tmp/server.log}
args=(serve -m "$file" --port 0 --parallel "$PARALLEL" -c "$CTX" -b 256)
[ -n "$KV_BLOCKS" ] && args+=(--kv-blocks "$KV_BLOCKS")
[ -n "$DEV" ] && args+=(--device "$DEV")
"$VKLLM" "${args[@]}" > "$tmp/server.out" 2> "$log" &
server=$!
port=
for _ in $(seq 600); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.out")
    [ -n "$port" ] && break
    kill -0 "$server" 2> /dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "serve.sh: the server did not start:" >&2
    cat "$log" >&2
    exit 1
fi
echo "# vkllm serve: $(basename "$file"), --parallel $PARALLEL -c $CTX -b 256${KV_BLOCKS:+ --kv-blocks $KV_BLOCKS}," \
     "$(grep -m1 -o 'device: .*' "$log" || "$VKLLM" devices 2> /dev/null | head -1)"
echo "# $(grep -m1 'vkllm: serve:' "$log" | sed 's/^vkllm: serve: //')"
echo
if ! BENCH_STREAMS=$STREAMS node "$here/serve_client.mjs" "$port"; then
    echo "serve.sh: the client failed; the server's log:" >&2
    tail -20 "$log" >&2
    exit 1
fi
