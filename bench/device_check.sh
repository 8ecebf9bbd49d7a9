#!/usr/bin/env bash
# device_check.sh: one run on a lent GPU machine (the workplace's `device` tool): the kernels' and the
# model's correctness on the real device, then the benchmarks, everything written under $OUT.
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
    for t in test_runtime test_kernels test_matmul test_quant_kernels test_quant_model test_e2e test_arch; do
        timeout 300 ./build/tests/$t > "$OUT/$t.log" 2>&1
        echo "$t: exit $? ($(tail -n 1 "$OUT/$t.log"))"
    done
    echo "== end to end"
    ./build/vkllm run -m .models/gguf/stories260K.gguf -p "Once upon a time" -n 60 --temp 0 --profile
    echo "== kernels"
    ./build/vkllm bench kernels
} 2>&1 | tee "$OUT/summary.txt"
./build/vkllm bench kernels --json > "$OUT/bench.json" 2>/dev/null
