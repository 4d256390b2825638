#!/usr/bin/env bash
# bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...] -- runs every libFuzzer target of tests/fuzz/
# (event decode, mapping, the pending-change codec and Klaviyo parsers, settings, Retry-After)
# for a fixed time each, built with clang, ASan + UBSan and coverage (-DAW_FUZZ=ON), starting
# from tests/fuzz/corpus/<target>/. A crash, leak or sanitizer report stops that target and its
# input is copied into tests/fuzz/corpus/<target>/crash-<sha1>, which the ctest replay
# (fuzz_<target>) then runs in every build: fix the bug, keep the file. New inputs that reach
# new coverage stay in a scratch corpus (not committed). Exit 1 when a target failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
build=${AW_FUZZ_BUILD_DIR:-$root/build/fuzz}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DAW_FUZZ=ON -DAW_ASAN=ON -DAW_UBSAN=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$root"/tests/fuzz/fuzz_*.c; do
        t=$(basename "$f" .c)
        targets+=("${t#fuzz_}")
    done
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
printf '%-12s %8s %10s %8s  %s\n' target seconds runs corpus result
for t in "${targets[@]}"; do
    bin="$build/tests/fuzz_$t"
    seeds="$root/tests/fuzz/corpus/$t"
    work="$scratch/$t"
    mkdir -p "$work" "$seeds"
    log="$scratch/$t.log"
    rc=0
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$scratch/$t-" "$work" "$seeds" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="FAILED (exit $rc)"
        failed=1
        for a in "$scratch/$t"-*; do
            [ -e "$a" ] || continue
            sum=$(sha1sum "$a" | cut -c1-16)
            cp "$a" "$seeds/crash-$sum"
            result="$result: kept tests/fuzz/corpus/$t/crash-$sum"
        done
        grep -m 3 -E 'ERROR: |runtime error|SUMMARY' "$log" | sed 's/^/    /' >&2 || true
    fi
    printf '%-12s %8s %10s %8s  %s\n' "$t" "$secs" "${runs:-?}" "$(ls "$work" | wc -l)" "$result"
done
exit "$failed"
