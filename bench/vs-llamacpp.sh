#!/usr/bin/env bash
# vs-llamacpp.sh: vkllm and llama.cpp side by side on the same GGUF file and the same device: prompt
# processing (pp) and text generation (tg) tokens/s of vkllm, of llama.cpp's Vulkan backend and of
# llama.cpp's CPU backend, in one run, and the ratios vkllm / llama.cpp. One Markdown table per model.
#
#   bench/vs-llamacpp.sh [-p P] [-n N] [-r R] [--device N] [--vkllm PATH] [--no-cpu] [--no-vulkan] MODEL ...
#
# MODEL: a GGUF file, or SHAPE:TYPE (e.g. llama-135m:Q4_0), which `vkllm make-model SHAPE TYPE` writes
# first, so that both engines read the identical file (shapes and types: `vkllm make-model --help`).
# -p, -n, -r: as `vkllm bench` (defaults 128, 32, 3): tokens of the prompt test, tokens of the generation
# test, timed runs after one warm-up run of each.
#
# llama.cpp is the npm package node-llama-cpp, pinned, with its prebuilt Linux x64 and Vulkan binaries
# (about 164 MB; needs node >= 20 and npm), installed on first use into $VS_LLAMACPP_DIR (a cache folder,
# kept) or else into a temporary folder removed at the end; never into the repository.
# bench/vs-llamacpp.mjs does the timing there, as `vkllm bench` does (see its header).
#
# Environment: VS_LLAMACPP_DIR (node-llama-cpp's install folder, kept), VS_LOG_DIR (llama.cpp's logs
# are copied there), VS_MODEL_DIR (where SHAPE:TYPE files go, kept; default a temporary folder),
# VS_CPU_THREADS (llama.cpp-CPU's thread counts, comma-separated, one llama.cpp-CPU row each; default
# nproc; on a loaded 2-core machine 1 thread can win, since node's own thread competes with ggml's).
# llama.cpp's Vulkan backend gets GGML_VK_VISIBLE_DEVICES=N (--device, default 0: the same index as
# `vkllm devices`); without it, it skips CPU-type devices such as lavapipe and silently runs on its CPU
# backend. The script checks llama.cpp's log: the Vulkan run must name the device and offload every layer.
set -euo pipefail

NLC_VERSION=3.21.1
here=$(cd "$(dirname "$0")" && pwd)
P=128 N=32 R=3 DEV=0 VKLLM= CPU=1 VULKAN=1
models=()
while [ $# -gt 0 ]; do
    case "$1" in
        -p) P=$2; shift 2 ;;
        -n) N=$2; shift 2 ;;
        -r) R=$2; shift 2 ;;
        --device) DEV=$2; shift 2 ;;
        --vkllm) VKLLM=$2; shift 2 ;;
        --no-cpu) CPU=0; shift ;;
        --no-vulkan) VULKAN=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "vs-llamacpp.sh: unknown option $1" >&2; exit 2 ;;
        *) models+=("$1"); shift ;;
    esac
done
[ ${#models[@]} -gt 0 ] || { echo "vs-llamacpp.sh: give a GGUF file or SHAPE:TYPE (--help)" >&2; exit 2; }
if [ -z "$VKLLM" ]; then
    for c in "$here/../build/vkllm" "$(command -v vkllm || true)"; do
        [ -n "$c" ] && [ -x "$c" ] && { VKLLM=$c; break; }
    done
fi
[ -n "$VKLLM" ] && [ -x "$VKLLM" ] || { echo "vs-llamacpp.sh: no vkllm binary: give --vkllm PATH" >&2; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "vs-llamacpp.sh: needs node (>= 20) and npm" >&2; exit 2; }

tmp=$(mktemp -d /tmp/vs-llamacpp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
NLC_DIR=${VS_LLAMACPP_DIR:-$tmp/nlc}
MODEL_DIR=${VS_MODEL_DIR:-$tmp/models}
mkdir -p "$NLC_DIR" "$MODEL_DIR"
if [ ! -f "$NLC_DIR/node_modules/node-llama-cpp/package.json" ] ||
   ! grep -q "\"version\": \"$NLC_VERSION\"" "$NLC_DIR/node_modules/node-llama-cpp/package.json"; then
    echo "installing node-llama-cpp $NLC_VERSION into $NLC_DIR" >&2
    [ -f "$NLC_DIR/package.json" ] || echo '{"private": true}' > "$NLC_DIR/package.json"
    (cd "$NLC_DIR" && npm i -E --omit=optional --no-audit --no-fund "node-llama-cpp@$NLC_VERSION" \
        "@node-llama-cpp/linux-x64@$NLC_VERSION" "@node-llama-cpp/linux-x64-vulkan@$NLC_VERSION" >&2)
fi
threads=${VS_CPU_THREADS:-$(nproc)}
IFS=, read -r -a cpu_threads <<< "$threads"

echo "date: $(date -u '+%F %H:%M UTC'); vkllm: $VKLLM; llama.cpp: node-llama-cpp $NLC_VERSION (prebuilt); node $(node --version)"
echo "vkllm bench -p $P -n $N -r $R --device $DEV; llama.cpp-Vulkan: GGML_VK_VISIBLE_DEVICES=$DEV, 1 thread; llama.cpp-CPU: $threads thread(s) ($(nproc) cores)"
status=0
for m in "${models[@]}"; do
    file=$m
    if [ ! -f "$m" ] && [[ "$m" == *:* ]]; then
        file="$MODEL_DIR/${m%%:*}-${m##*:}.gguf"
        [ -f "$file" ] || "$VKLLM" make-model "${m%%:*}" "${m##*:}" -o "$file" >&2
    fi
    [ -f "$file" ] || { echo "vs-llamacpp.sh: $m: no such file" >&2; status=1; continue; }
    base=$tmp/$(basename "$file" .gguf)
    vocab=$("$VKLLM" info -m "$file" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).vocab_size))')
    echo >&2; echo "== $file: vkllm" >&2
    if ! "$VKLLM" bench -m "$file" -p "$P" -n "$N" -r "$R" --device "$DEV" -o json > "$base.vkllm.json"; then
        echo "vs-llamacpp.sh: vkllm bench failed on $file" >&2; echo '[]' > "$base.vkllm.json"; status=1
    fi
    runs=() cpu_out=()
    [ "$VULKAN" = 1 ] && runs+=(vulkan:1)
    if [ "$CPU" = 1 ]; then for t in "${cpu_threads[@]}"; do runs+=("cpu:$t"); cpu_out+=("$base.cpu$t.json"); done; fi
    for run in "${runs[@]}"; do
        backend=${run%%:*} t=${run##*:}
        out=$base.$backend.json
        [ "$backend" = cpu ] && out=$base.cpu$t.json
        log=${out%.json}.log
        rm -f "$out"
        echo "== $file: llama.cpp $backend, $t thread(s)" >&2
        if ! (cd "$NLC_DIR" && GGML_VK_VISIBLE_DEVICES=$DEV node "$here/vs-llamacpp.mjs" -m "$file" --gpu "$backend" \
                -p "$P" -n "$N" -r "$R" --threads "$t" --vocab "$vocab" --log "$log" > "$out"); then
            echo "vs-llamacpp.sh: llama.cpp ($backend) failed on $file; the end of its log:" >&2
            tail -n 15 "$log" >&2 || true
            rm -f "$out"; status=1
        fi
        [ -n "${VS_LOG_DIR:-}" ] && mkdir -p "$VS_LOG_DIR" && cp "$log" "$VS_LOG_DIR/" 2>/dev/null || true
    done
    node "$here/vs-llamacpp.mjs" --report "$file" "$base.vkllm.json" "$base.vulkan.json" "${cpu_out[@]}" || status=1
done
exit $status
