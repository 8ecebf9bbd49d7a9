#!/usr/bin/env bash
# device_check.sh: one run on a lent GPU machine (the workplace's `device` tool): the kernels' and the
# model's correctness on the real device (the kernel tests, stories260K's greedy text), then the
# benchmarks (`bench kernels`, and `bench` on synthetic 1B and 8B models at Q4_0, Q4_K and F16 with decode
# as a fraction of the measured copy bandwidth, and one profile), everything written under $OUT. About
# 10 minutes on a large GPU; the 8B models are made in memory on the device machine's CPUs.
#
# Prepare here (this machine builds; the device machine has no glslc and no package registry):
#   (.gl/ and .models/ are in .gitignore)
#   mkdir -p .gl /tmp/amd64/partial && o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#   apt-get $o update && (cd .gl && apt-get $o download libvulkan1)
#   mkdir -p .models && cp -r ../shared/models/gguf ../shared/models/expected ../shared/models/llama2c \
#       ../shared/models/quant .models/
#   cmake -S . -B build && cmake --build build -j
# Then run there, carrying build, .gl and .models:  bash bench/device_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/vkllm-device-out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$nv" ] && export VK_DRIVER_FILES=$nv
export VKLLM_MODELS=$PWD/.models VKLLM_BIN=$PWD/build/vkllm VKLLM_NO_VALIDATION=1 XDG_CACHE_HOME=/tmp/vkllm-cache

{
    echo "== date: $(date -u +%F)"
    ./build/vkllm devices
    ./build/vkllm devices --json > "$OUT/devices.json"
    echo "== correctness on the device (validation layer not installed there)"
    for t in test_runtime test_kernels test_matmul test_quant_kernels test_quant_model test_e2e test_arch \
             test_rope_kv test_paged_attention test_ctx test_session test_arch_ops test_moe_ops test_families \
             test_encoders test_faults; do
        timeout 300 ./build/tests/$t > "$OUT/$t.log" 2>&1
        echo "$t: exit $? ($(tail -n 1 "$OUT/$t.log"))"
    done
    echo "== end to end"
    ./build/vkllm run -m .models/gguf/stories260K.gguf -p "Once upon a time" -n 60 --temp 0 --profile
    want=$(cat .models/expected/stories260K.greedy.once-upon-a-time.64.txt 2>/dev/null || true)
    got=$(./build/vkllm run -m .models/gguf/stories260K.gguf -p "Once upon a time" -n 64 --temp 0 2>/dev/null)
    case "$got" in   # the reference holds 64 tokens with the prompt's: a prefix of what run prints
        "$want"*) echo "stories260K greedy text: as expected" ;;
        *) echo "stories260K greedy text: DIFFERENT: $got" ;;
    esac
    echo "== kernels"
    ./build/vkllm bench kernels
    ./build/vkllm bench kernels --json > "$OUT/bench.json" 2>/dev/null
    copy=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("calibration",{}).get("copy_gbps",0))' \
           "$OUT/bench.json" 2>/dev/null || echo 0)
    echo "== models (synthetic weights; decode as a fraction of the measured copy bandwidth, $copy GB/s)"
    for m in llama-1b:Q4_0 llama-1b:Q4_K llama-1b:F16 llama-8b:Q4_0 llama-8b:Q4_K llama-8b:F16; do
        timeout 240 ./build/vkllm bench -m "synthetic:$m" -p 512 -n 64 -r 2 -o json > "$OUT/bench-$m.json" 2>/dev/null
        python3 - "$OUT/bench-$m.json" "$copy" <<'PY' 2>/dev/null || echo "$m: no result"
import json, sys
rows = json.load(open(sys.argv[1])); copy = float(sys.argv[2])
for r in rows:
    line = "%s %s: %.1f t/s" % (r.get("model", "?"), r.get("test", "?"), r.get("avg_ts", 0))
    if r.get("n_gen") and copy > 0:
        frac = r.get("size_bytes", 0) * r.get("avg_ts", 0) / (copy * 1e9)
        line += "  (weights read %.0f%% of copy bandwidth)" % (100 * frac)
    print(line)
PY
    done
    ./build/vkllm bench -m synthetic:llama-8b:Q4_0 -p 512 -n 16 -r 1 --profile 2>&1 | tail -n 30
} 2>&1 | tee "$OUT/summary.txt"
