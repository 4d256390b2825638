#!/usr/bin/env bash
# bench/ingest_e2e.sh -- end-to-end ingest benchmark: Kafka (the dev broker) -> aw-worker run
# (leader off: ingest only) -> Redis, with the in-run ceilings beside each figure.
#
#   bench/ingest_e2e.sh [MESSAGES] [ACCOUNTS]          (defaults 14000 5)
#
# Input (bench/bench_e2e.c): MESSAGES membership messages of 3 profiles x 2 audiences = 6
# changes each (phones national and international, 7 attributes, consent, add and delete,
# ACCOUNTS accounts), every user new. Steps, all against a scratch redis-server and dev broker
# on 127.0.0.1:
#  1. ceilings: bare json_loadb of the same records (CPU time, best of 3), and bare pipelined
#     EVALSHA of a one-line HSET script per change (bench_store bare: Redis CPU from INFO);
#  2. the backlog is produced to a topic of $AW_BENCH_PARTITIONS (32) partitions first (the mock
#     keeps ~5 MB per partition and silently drops the oldest records beyond that: 32 x 5 MB
#     holds 14,000 records of 4.6 KB three times over) and the producer's delivery reports are
#     counted;
#  3. the worker starts (AW_LEADER_ENABLED=false); its CPU (/proc/PID/stat utime+stime) and
#     Redis's (INFO cpu used_cpu_user+used_cpu_sys) and used_memory are sampled once it answers
#     /healthz (startup excluded: the mock's first group join takes ~3 s, nothing is consumed
#     before it) and again when aw_records_done_total reaches MESSAGES; the run FAILS unless
#     records done = produced, changes applied + stale = 6 x produced and no dead letter;
#  4. latency: $AW_BENCH_RATE (500) messages/s for $AW_BENCH_LATENCY_S (10) s produced while
#     the worker runs; each message's first profile is a probe user whose first write Redis
#     reports by keyspace notification (bench_e2e latency): produce -> Redis p50/p99.
#
# AW_BENCH_USERS=N draws the profiles from N users (0, the default: every user new), so users
# come back with newer versions, as in a stream where one user is in several audiences.
#
# AW_BENCH_KAFKA_CONF='key=value ...' adds librdkafka properties to the worker's
# AW_KAFKA_CONFIG_FILE (e.g. fetch.wait.max.ms=10: see what the broker's fetch wait adds to
# the latency).
#
# AW_BENCH_RSS_CHANGES=N (e.g. 5000000) adds the flat-memory run: N more changes produced while
# the worker consumes (batches of $AW_BENCH_RSS_CHUNK (5000) records, at most two unconsumed:
# 1.4 MB a partition on average, well under the mock's limit, since partitions are consumed
# unevenly; a record lost anyway fails the run), over a population of $AW_BENCH_RSS_USERS (300000)
# users so Redis stays bounded; prints the worker's RSS after the first ~100k changes, at the end,
# and its range over the second half (sampled before each chunk). The RSS includes librdkafka's
# prefetch queue (queued.max.messages.kbytes, 64 MiB by default): AW_BENCH_KAFKA_CONF=
# 'queued.max.messages.kbytes=8192' shows the worker's own memory.
#
# AW_BENCH_WORKER_BUILD=DIR runs the aw-worker of another build tree (e.g. of an older revision,
# built with cmake from `git archive`) against the same input, for a before/after comparison.
#
# Figures vary with the machine: quote the ratios to the ceilings, measured in the same run.
# Environment: AW_BUILD_DIR (default build/release). Not a ctest test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${AW_BUILD_DIR:-$root/build/release}
messages=${1:-14000}
accounts=${2:-5}
partitions=${AW_BENCH_PARTITIONS:-32}
rate=${AW_BENCH_RATE:-500}
lat_s=${AW_BENCH_LATENCY_S:-10}
rss_changes=${AW_BENCH_RSS_CHANGES:-0}
rss_chunk=${AW_BENCH_RSS_CHUNK:-5000}
rss_users=${AW_BENCH_RSS_USERS:-300000}
users=${AW_BENCH_USERS:-0}
worker_build=${AW_BENCH_WORKER_BUILD:-}
kafka_conf=${AW_BENCH_KAFKA_CONF:-}
# Not settings: kept from the worker, which warns about every unknown AW_* variable.
unset "${!AW_BENCH_@}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target aw-worker aw_devbroker bench_e2e bench_store >/dev/null
export AW_BUILD_DIR=$build AW_SOURCE_DIR=$root AW_TEST_NAME=bench-e2e
source "$root/tests/integration/lib.sh"
e2e=$build/bench/bench_e2e
topic=mparticle.audience
dir=$AW_TEST_DIR/runs
mkdir -p "$dir"

source "$root/bench/lib.sh"
proc_cpu() { # PID: utime + stime in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.3f\n", ($12 + $13) / hz }' \
        "/proc/$1/stat"
}
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # PID VmRSS|VmHWM
metric_sum() { # WORKER PREFIX: sum of every series of the metric (labels or not)
    curl -sf --max-time 2 "$(worker_url "$1")/metrics" |
        awk -v m="$2" 'index($1, m) == 1 && (length($1) == length(m) ||
            substr($1, length(m) + 1, 1) == "{") { s += $2 } END { printf "%.0f\n", s }'
}
calc() { echo "$*" | bc -l; }

# ---- 1. ceilings ---------------------------------------------------------------------------
"$e2e" stats 0 "$messages" "$accounts" "$users" >"$dir/stats"
changes=$(field changes "$dir/stats")
"$e2e" parse 0 "$messages" "$accounts" "$users" 3 >"$dir/parse"
parse_rate=$(field parse_changes_per_cpu_s "$dir/parse")

start_redis
c0=$(redis_cpu_s)
AW_BENCH_REDIS_URL=$AW_TEST_REDIS_URL "$build/bench/bench_store" bare "$messages" "$accounts" \
    >"$dir/bare" 2>&1 || { cat "$dir/bare" >&2; fail "bare EVALSHA run failed"; }
c1=$(redis_cpu_s)
bare_changes=$(field applied "$dir/bare")
bare_redis_rate=$(calc "$bare_changes / ($c1 - $c0)")
bare_wall_rate=$(calc "$bare_changes / $(field wall_s "$dir/bare")")
redis_cmd flushall >/dev/null

# ---- 2. backlog ------------------------------------------------------------------------------
start_devbroker --topic "$topic:$partitions" --topic "$topic.dlq:1"
"$e2e" produce "$AW_TEST_BROKERS" "$topic" 0 "$messages" "$accounts" "$users" >"$dir/produce" ||
    { cat "$dir/produce" >&2; fail "producing the backlog failed"; }
produced=$(field produced "$dir/produce")
[ "$produced" = "$messages" ] || fail "produced $produced of $messages records"

# ---- 3. the worker drains it -----------------------------------------------------------------
{
    echo 'session.timeout.ms=6000'
    for kv in $kafka_conf; do echo "$kv"; done
} >"$AW_TEST_DIR/kafka.conf"
mem0=$(redis_mem_b)
AW_BUILD_DIR=${worker_build:-$AW_BUILD_DIR} \
    start_worker w1 AW_LEADER_ENABLED=false AW_LOG_LEVEL=warn AW_KAFKA_GROUP=bench
pid=$(service_pid w1)
wc0=$(proc_cpu "$pid")
rc0=$(redis_cpu_s)
[ "$(metric_sum w1 aw_records_consumed_total)" = 0 ] ||
    note "warning: records consumed before the first CPU sample (startup overlaps the run)"
deadline=$((SECONDS + 60))
until [ "$(metric_sum w1 aw_records_consumed_total)" -gt 0 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the worker consumed nothing within 60 s"
    sleep 0.02
done
t0=$(date +%s.%N)
deadline=$((SECONDS + 1800))
until [ "$(metric_sum w1 aw_records_done_total)" -ge "$messages" ]; do
    service_is_running w1 || fail "the worker exited (see $AW_TEST_DIR/w1.log)"
    [ "$SECONDS" -lt "$deadline" ] ||
        fail "records done $(metric_sum w1 aw_records_done_total) of $messages after 30 min"
    sleep 0.05
done
t1=$(date +%s.%N)
wc1=$(proc_cpu "$pid")
rc1=$(redis_cpu_s)
mem1=$(redis_mem_b)
rss_kb=$(proc_kb "$pid" VmRSS)
done_n=$(metric_sum w1 aw_records_done_total)
applied=$(metric_sum w1 aw_changes_applied_total)
stale=$(metric_sum w1 aw_changes_stale_total)
dlq=$(metric_sum w1 aw_dead_letters_total)
[ "$done_n" = "$produced" ] || fail "records done $done_n, produced $produced"
[ "$((applied + stale))" = "$changes" ] ||
    fail "changes applied $applied + stale $stale, expected $changes"
[ "$dlq" = 0 ] || fail "$dlq dead letters"

wall=$(calc "$t1 - $t0")
wcpu=$(calc "$wc1 - $wc0")
rcpu=$(calc "$rc1 - $rc0")
rate_wall=$(calc "$changes / $wall")
rate_wcpu=$(calc "$changes / $wcpu")
rate_rcpu=$(calc "$changes / $rcpu")
per_change=$(calc "($mem1 - $mem0) / $applied")
profile_json=$(field profile_json_bytes "$dir/stats")

# ---- 4. latency at a fixed offered load ------------------------------------------------------
lat_n=$((rate * lat_s))
"$e2e" latency "$AW_TEST_BROKERS" "$topic" 127.0.0.1 "$AW_TEST_REDIS_PORT" "$messages" "$lat_n" \
    "$accounts" 0 "$rate" >"$dir/latency" || { cat "$dir/latency" >&2; fail "latency run failed"; }

printf 'input        %s records (%s changes: 3 profiles x 2 audiences), %s accounts, %s partitions, users %s\n' \
    "$messages" "$changes" "$accounts" "$partitions" "$([ "$users" = 0 ] && echo 'all new' || echo "$users")"
printf '             record %.0f B JSON, profile %.0f B JSON\n' \
    "$(field message_json_bytes "$dir/stats")" "$profile_json"
printf 'machine      %s cores (%s), shared; figures from one run; worker %s\n' "$(nproc)" \
    "$(uname -m)" "${worker_build:-$build}/aw-worker"
printf 'check        produced %s, done %s, changes applied %s + stale %s = %s, dead letters %s\n' \
    "$produced" "$done_n" "$applied" "$stale" "$changes" "$dlq"
printf '%-38s %12s   %s\n' figure value "in-run ceiling (ratio)"
printf '%-38s %12.0f   %s\n' "changes/s wall" "$rate_wall" \
    "bare EVALSHA $(printf '%.0f' "$bare_wall_rate")/s wall ($(printf '%.0f' "$(calc "100 * $rate_wall / $bare_wall_rate")") %)"
printf '%-38s %12.0f   %s\n' "changes per worker CPU-second" "$rate_wcpu" \
    "json_loadb $(printf '%.0f' "$parse_rate") ($(printf '%.0f' "$(calc "100 * $rate_wcpu / $parse_rate")") %)"
printf '%-38s %12.0f   %s\n' "changes per Redis CPU-second" "$rate_rcpu" \
    "bare EVALSHA $(printf '%.0f' "$bare_redis_rate") ($(printf '%.0f' "$(calc "100 * $rate_rcpu / $bare_redis_rate")") %)"
printf '%-38s %12.0f   %s\n' "Redis bytes per pending change" "$per_change" \
    "profile JSON $profile_json B ($(printf '%.2f' "$(calc "$per_change / $profile_json")")x)"
printf '%-38s %12s   %s\n' "worker RSS (KiB)" "$rss_kb" "peak $(proc_kb "$pid" VmHWM) KiB"
printf '%-38s %12s   %s\n' "worker / Redis CPU-s over the run" \
    "$(printf '%.2f / %.2f' "$wcpu" "$rcpu")" "wall $(printf '%.2f' "$wall") s"
printf '%-38s %12s   %s\n' "produce->Redis latency p50 / p99 (ms)" \
    "$(field latency_p50_ms "$dir/latency") / $(field latency_p99_ms "$dir/latency")" \
    "at $(field latency_offered_msgs_per_s "$dir/latency") records/s ($((6 * rate)) changes/s), max $(field latency_max_ms "$dir/latency") ms"

[ "$rss_changes" -gt 0 ] || exit 0

# ---- flat memory: produce while consuming ------------------------------------------------------
total_msgs=$(((rss_changes + 5) / 6))
first=$((messages + lat_n))
sent=0
rss_100k=""
base_done=$(metric_sum w1 aw_records_done_total)
: >"$dir/rss"
t0=$SECONDS
# Waits until the worker has done $1 records of this phase; fails when it stalls for 60 s or the
# mock dropped records before they were consumed (the consumer then resets its offset).
wait_done() {
    local last=-1 since=$SECONDS d
    while :; do
        d=$(($(metric_sum w1 aw_records_done_total) - base_done))
        [ "$d" -ge "$1" ] && return 0
        service_is_running w1 || fail "the worker exited (see $AW_TEST_DIR/w1.log)"
        ! grep -q 'Offset out of range' "$AW_TEST_DIR/w1.log" ||
            fail "the mock broker dropped records before they were consumed (lower AW_BENCH_RSS_CHUNK)"
        [ "$d" -ne "$last" ] && { last=$d since=$SECONDS; }
        [ $((SECONDS - since)) -lt 60 ] || fail "the worker stalled at $d of $1 records"
        sleep 0.1
    done
}
while [ "$sent" -lt "$total_msgs" ]; do
    n=$((total_msgs - sent < rss_chunk ? total_msgs - sent : rss_chunk))
    # At most two chunks unconsumed: the mock's per-partition limit.
    wait_done $((sent - rss_chunk))
    done_n=$(($(metric_sum w1 aw_records_done_total) - base_done))
    echo "$((done_n * 6)) $(proc_kb "$pid" VmRSS)" >>"$dir/rss"
    if [ -z "$rss_100k" ] && [ "$done_n" -ge 16667 ]; then
        rss_100k=$(proc_kb "$pid" VmRSS)
        rss_100k_at=$((done_n * 6))
    fi
    "$e2e" produce "$AW_TEST_BROKERS" "$topic" "$((first + sent))" "$n" "$accounts" "$rss_users" \
        >"$dir/produce.rss" || { cat "$dir/produce.rss" >&2; fail "producing failed"; }
    sent=$((sent + n))
done
wait_done "$total_msgs"
rss_end=$(proc_kb "$pid" VmRSS)
echo "$((total_msgs * 6)) $rss_end" >>"$dir/rss"
[ -n "$rss_100k" ] || { rss_100k=$rss_end rss_100k_at=$((total_msgs * 6)); }
# RSS over the second half of the run, sampled before each chunk.
half=$(awk -v h="$((total_msgs * 3))" '$1 >= h { print $2 }' "$dir/rss" | sort -n |
    awk '{ v[NR] = $1 } END { printf "%s-%s KiB (median %s)", v[1], v[NR], v[int((NR + 1) / 2)] }')
printf '%-38s %12s   %s\n' "worker RSS after $rss_100k_at changes (KiB)" "$rss_100k" ""
printf '%-38s %12s   %s\n' "worker RSS after $((total_msgs * 6)) changes (KiB)" "$rss_end" \
    "peak $(proc_kb "$pid" VmHWM) KiB, $((SECONDS - t0)) s, dead letters $(metric_sum w1 aw_dead_letters_total)"
printf '%-38s %12s   %s\n' "worker RSS, second half of the run" "" "$half"
