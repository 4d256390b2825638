#!/usr/bin/env bash
# bench/run.sh -- builds the release tree and runs the benchmarks against a scratch redis-server
# on a free 127.0.0.1 port. Prints figures; ratios are within one run (ours vs. a baseline).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${AW_BUILD_DIR:-$root/build/release}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_ingest >/dev/null
export AW_BUILD_DIR=$build AW_SOURCE_DIR=$root AW_TEST_NAME=bench
source "$root/tests/integration/lib.sh"
start_redis
AW_BENCH_REDIS_URL=$AW_TEST_REDIS_URL "$build/bench/bench_ingest" "${1:-20000}"
