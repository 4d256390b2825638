#!/usr/bin/env bash
# bench/bench_store.sh -- what the store costs Redis, against the v1 store and a bare script.
#
#   bench/bench_store.sh [MESSAGES] [ACCOUNTS] [REPS]     (defaults 2400 5 3)
#
# The same input (bench/bench_store.c: MESSAGES membership messages of 3 profiles x 2 audiences,
# phone, customer id, consent and 7 attributes each, over ACCOUNTS accounts; 2400 messages =
# 14,400 changes) goes into a scratch redis-server (127.0.0.1, no persistence) through:
#   v2    this tree's store (aw_store_batch_* pipelines of 500 messages, as the consumer loop)
#   v1    the store of git revision ac6d0a8, built from `git archive` in a temporary directory
#   bare  one pipelined EVALSHA of `return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])` per
#         change, on one connection, into as many keys (one per account and user)
# each twice: "new" (first sight of every user) and "update" (the same users again, newer
# versions, one attribute changed). Redis CPU = INFO cpu used_cpu_user + used_cpu_sys, delta
# over the run (the driver maps its messages before it connects; a run takes about a second, so
# Redis's idle cron adds well under 1 %). Each figure is the median of REPS runs, the variants
# interleaved, so a neighbour's load on a shared machine hits all of them alike.
# Then: Redis bytes per pending change (INFO memory used_memory after / before the "new" run of
# v2, over the changes it left pending), and the wall-clock rate of v2 with `appendonly yes
# appendfsync always` against `appendonly no`.
#
# With AW_BENCH_IR=1 it also counts the instructions Redis executes per change (redis-server
# under valgrind's callgrind): slow (a few minutes) but deterministic, so the ratios hold on a
# shared or noisy machine where CPU-seconds vary by 20 % from run to run.
#
# Targets (issue "Store v2"): v2 >= 4 x v1 changes per Redis CPU-second; v2 >= 30 % of bare;
# bytes per pending change <= 1.5 x the profile's JSON + 100.
# Environment: AW_BUILD_DIR (default build/release); AW_BENCH_V1_REV (the baseline revision,
# default ac6d0a8 = v1; any revision with either store layout works, e.g. to measure a change
# before / after); AW_BENCH_V1_DIR (where it is built, default
# ${TMPDIR:-/tmp}/aw-bench-v1-<rev>, kept between runs); AW_BENCH_IR=1 (instructions).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${AW_BUILD_DIR:-$root/build/release}
messages=${1:-2400}
accounts=${2:-5}
reps=${3:-3}
v1_rev=${AW_BENCH_V1_REV:-ac6d0a8}
v1_dir=${AW_BENCH_V1_DIR:-${TMPDIR:-/tmp}/aw-bench-v1-$v1_rev}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_store >/dev/null
v2_bin=$build/bench/bench_store

# The v1 tree: its own sources and CMake build, plus this driver (it picks the v1 headers).
if [ ! -f "$v1_dir/src/CMakeLists.txt" ]; then
    rm -rf "$v1_dir"
    mkdir -p "$v1_dir/src"
    git -C "$root" archive "$v1_rev" | tar -x -C "$v1_dir/src"
fi
cmp -s "$root/bench/bench_store.c" "$v1_dir/src/bench/bench_store.c" ||
    cp "$root/bench/bench_store.c" "$v1_dir/src/bench/bench_store.c"
cmake -S "$v1_dir/src" -B "$v1_dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAW_BUILD_TESTS=OFF \
    >"$v1_dir/cmake.log" 2>&1 || { tail -n 20 "$v1_dir/cmake.log"; exit 1; }
cmake --build "$v1_dir/build" -j"$(nproc)" --target bench_store >"$v1_dir/build.log" 2>&1 ||
    { tail -n 20 "$v1_dir/build.log"; exit 1; }
v1_bin=$v1_dir/build/bench/bench_store

export AW_BUILD_DIR=$build AW_SOURCE_DIR=$root AW_TEST_NAME=bench-store
source "$root/tests/integration/lib.sh"

source "$root/bench/lib.sh"
cpu_s() { redis_cpu_s; }
mem_b() { redis_mem_b; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# run NAME BIN MODE PASS: one run into the current redis; appends "cpu wall" to $dir/NAME.
dir=$AW_TEST_DIR/runs
mkdir -p "$dir"
run() {
    local name=$1 bin=$2 mode=$3 pass=$4 out c0 c1 m0 m1
    out=$dir/$name.out
    c0=$(cpu_s)
    m0=$(mem_b)
    AW_BENCH_REDIS_URL=$AW_TEST_REDIS_URL "$bin" "$mode" "$messages" "$accounts" "$pass" \
        >"$out" 2>"$dir/$name.err" || { cat "$dir/$name.err" "$out" >&2; fail "$name failed"; }
    c1=$(cpu_s)
    m1=$(mem_b)
    [ "$(field failed "$out")" = 0 ] || fail "$name: $(field failed "$out") changes failed"
    echo "$(echo "$c1 - $c0" | bc -l) $(field wall_s "$out") $((${m1%.*} - ${m0%.*}))" >>"$dir/$name"
}
col() { awk -v c="$1" '{ print $c }' "$dir/$2" | median; }

start_redis
changes=0
for ((r = 0; r < reps; r++)); do
    for v in v2 v1 bare; do
        case $v in v2) bin=$v2_bin mode=store ;; v1) bin=$v1_bin mode=store ;; bare) bin=$v2_bin mode=bare ;; esac
        redis_cmd flushall >/dev/null
        run "$v.new" "$bin" "$mode" 0
        run "$v.update" "$bin" "$mode" 1
    done
done
changes=$(field changes "$dir/v2.new.out")
[ "$(field changes "$dir/v1.new.out")" = "$changes" ] ||
    fail "v1 mapped $(field changes "$dir/v1.new.out") changes, v2 $changes"
profile_json=$(field profile_json_bytes "$dir/v2.new.out")

printf 'input                              %s messages, %s accounts: %s changes; profile JSON %s bytes\n' \
    "$messages" "$accounts" "$changes" "$profile_json"
printf 'machine                            %s cores (%s); median of %s runs\n' "$(nproc)" \
    "$(uname -m)" "$reps"
printf '%-10s %-7s %14s %18s %16s\n' variant input "redis us/chg" "chg/redis-cpu-s" "chg/s wall"
declare -A rate
for v in v2 v1 bare; do
    for p in new update; do
        cpu=$(col 1 "$v.$p")
        wall=$(col 2 "$v.$p")
        rate[$v.$p]=$(echo "$changes / $cpu" | bc -l)
        printf '%-10s %-7s %14.1f %18.0f %16.0f\n' "$v" "$p" "$(echo "$cpu * 1000000 / $changes" | bc -l)" \
            "${rate[$v.$p]}" "$(echo "$changes / $wall" | bc -l)"
    done
done
verdict() { if [ "$(echo "$1 >= $2" | bc -l)" = 1 ]; then echo met; else echo MISSED; fi; }
for p in new update; do
    a=$(echo "${rate[v2.$p]} / ${rate[v1.$p]}" | bc -l)
    b=$(echo "${rate[v2.$p]} / ${rate[bare.$p]}" | bc -l)
    printf 'v2/v1   changes per redis-cpu-s, %-7s %6.2fx  (target >= 4x: %s)\n' "$p" "$a" "$(verdict "$a" 4)"
    printf 'v2/bare changes per redis-cpu-s, %-7s %5.0f %%  (target >= 30 %%: %s)\n' "$p" \
        "$(echo "$b * 100" | bc -l)" "$(verdict "$b" 0.30)"
done

# Memory: used_memory grew by the "new" run; every change it applied is pending.
for v in v2 v1; do
    mem=$(col 3 "$v.new")
    per=$(echo "$mem / $changes" | bc -l)
    printf '%s redis bytes per pending change   %6.0f  (%s per user of 2 changes)\n' "$v" "$per" \
        "$(echo "$mem * 2 / $changes" | bc)"
done
target=$(echo "1.5 * $profile_json + 100" | bc -l)
per=$(echo "$(col 3 v2.new) / $changes" | bc -l)
printf 'v2 bytes per pending change vs 1.5 x profile JSON + 100 = %.0f: %s\n' "$target" \
    "$(verdict "$target" "$per")"

# Durability: the same v2 pipeline with an fsync'ed AOF (data dir on $TMPDIR's file system).
stop_redis >/dev/null || true
start_redis --appendonly yes --appendfsync always
for ((r = 0; r < reps; r++)); do
    redis_cmd flushall >/dev/null
    run v2.always "$v2_bin" store 0
done
no=$(echo "$changes / $(col 2 v2.new)" | bc -l)
always=$(echo "$changes / $(col 2 v2.always)" | bc -l)
printf 'v2 wall, appendonly no              %8.0f changes/s\n' "$no"
printf 'v2 wall, appendfsync always         %8.0f changes/s  (%.2fx the time; fs %s)\n' "$always" \
    "$(echo "$no / $always" | bc -l)" "$(df -PT "$AW_TEST_DIR" | awk 'NR == 2 { print $2 }')"

[ "${AW_BENCH_IR:-0}" = 1 ] || exit 0

# Instructions: redis-server under callgrind, counters zeroed before and dumped after each run.
require_cmd valgrind callgrind_control
stop_redis >/dev/null || true
AW_TEST_REDIS_PORT=$(free_port)
AW_TEST_REDIS_URL="redis://127.0.0.1:$AW_TEST_REDIS_PORT/0"
mkdir -p "$AW_TEST_DIR/cg"
start_service redis-cg valgrind --tool=callgrind --callgrind-out-file="$AW_TEST_DIR/cg/out.%p" \
    redis-server --bind 127.0.0.1 --port "$AW_TEST_REDIS_PORT" --dir "$AW_TEST_DIR/cg" --save "" \
    --appendonly no
wait_for "redis-server under valgrind" 60 '[ "$(redis_cmd ping 2>/dev/null)" = PONG ]'
cg_pid=$(service_pid redis-cg)
ir_run() { # NAME BIN MODE PASS: instructions per change
    local out=$dir/$1.ir.out f
    callgrind_control -z "$cg_pid" >/dev/null 2>&1
    AW_BENCH_REDIS_URL=$AW_TEST_REDIS_URL "$2" "$3" "$messages" "$accounts" "$4" >"$out" 2>&1 ||
        { cat "$out" >&2; fail "$1 failed under valgrind"; }
    rm -f "$AW_TEST_DIR/cg/out.$cg_pid".*
    callgrind_control -d "$cg_pid" >/dev/null 2>&1
    f=$(ls -t "$AW_TEST_DIR/cg/out.$cg_pid".* | head -n 1)
    awk -v n="$changes" '/^(summary|totals):/ { printf "%.0f\n", $2 / n; exit }' "$f"
}
declare -A ir
for v in v2 v1 bare; do
    case $v in v2) bin=$v2_bin mode=store ;; v1) bin=$v1_bin mode=store ;; bare) bin=$v2_bin mode=bare ;; esac
    redis_cmd flushall >/dev/null
    AW_BENCH_REDIS_URL=$AW_TEST_REDIS_URL "$bin" "$mode" 10 1 9 >/dev/null 2>&1 # loads its scripts
    redis_cmd flushall >/dev/null
    ir[$v.new]=$(ir_run "$v.new" "$bin" "$mode" 0)
    ir[$v.update]=$(ir_run "$v.update" "$bin" "$mode" 1)
done
printf 'redis instructions per change (callgrind)   new      update\n'
for v in v2 v1 bare; do
    printf '%-40s %9s %11s\n' "$v" "${ir[$v.new]}" "${ir[$v.update]}"
done
for p in new update; do
    printf 'v2/v1 %-7s %.2fx   v2/bare %-7s %.0f %%  (by instructions)\n' "$p" \
        "$(echo "${ir[v1.$p]} / ${ir[v2.$p]}" | bc -l)" "$p" \
        "$(echo "100 * ${ir[bare.$p]} / ${ir[v2.$p]}" | bc -l)"
done
