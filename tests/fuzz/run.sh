#!/usr/bin/env bash
# run.sh BUILDDIR SECONDS [TARGET...]: runs each fuzz target (all when none is named: gguf tokenizer
# template conv serve http llama2c) for SECONDS on its corpus, one after another, one process each. The
# corpus is BUILDDIR/fuzz-corpus/<target> (made by corpus.sh from the shared models; what the run finds
# is added there) plus the committed seeds (tests/fuzz/seeds/<target>, the regression cases: each is
# run first). A crash, leak, timeout or sanitizer report fails the run; the input is left in
# BUILDDIR/fuzz-artifacts/ and the log in BUILDDIR/fuzz-logs/<target>.log. FUZZ_FLAGS adds libFuzzer
# flags (after run.sh's own, so they win: FUZZ_FLAGS=-runs=10000000 with SECONDS 0 runs 10M inputs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 2 ]; then
    echo "usage: $0 BUILDDIR SECONDS [TARGET...]" >&2
    exit 2
fi
build="$(cd "$1" && pwd)"
secs="$2"
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf tokenizer template conv serve http llama2c)

"$here/corpus.sh" "$build/fuzz-corpus"
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for t in "${targets[@]}"; do
    bin="$build/tests/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz_$t: not built ($bin; configure with -DVKLLM_FUZZ=ON)" >&2
        status=1
        continue
    fi
    args=(-max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1
          -artifact_prefix="$build/fuzz-artifacts/$t-")
    [ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
    # shellcheck disable=SC2206 # FUZZ_FLAGS is a list of flags, split on spaces
    [ -n "${FUZZ_FLAGS:-}" ] && args+=($FUZZ_FLAGS)
    dirs=("$build/fuzz-corpus/$t")
    [ -d "$here/seeds/$t" ] && dirs+=("$here/seeds/$t")
    log="$build/fuzz-logs/$t.log"
    if "$bin" "${args[@]}" "${dirs[@]}" > "$log" 2>&1; then
        res=ok
    else
        res=FAILED
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
    echo "fuzz_$t: $res: ${runs:-?} runs, ${speed:-?}/s, ${cov:-no coverage line}"
    if [ $res = FAILED ]; then
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -8 >&2 || true
    fi
done
exit $status
