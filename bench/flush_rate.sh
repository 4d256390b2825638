#!/usr/bin/env bash
# bench/flush_rate.sh -- does a backlog run at Klaviyo's rate limits without provoking 429s?
# A leader flushes AUDIENCES audiences (150 adds each by default: list lookup, list create, bulk import,
# job polls) against the simulator with the spec's real limits switched on. Prints the time
# taken against the fastest run its per-operation limits allow (each operation has its own
# windows at 90 % of the spec's: when the last request of the slowest may start), as a ratio;
# a second ratio against the larger of that bound plus what must follow a last request (its
# answer, the requests that depend on it, a job's poll interval) and the client's lanes floor
# (requests x mean latency / lanes); each operation's first and last arrival at the simulator,
# the number of 429s received, and the most requests the leader had in flight. The simulator answers in AW_BENCH_LATENCY_MS (default 100,300 ms,
# Klaviyo's usual); AW_BENCH_IN_FLIGHT sets AW_KLAVIYO_MAX_IN_FLIGHT (default: the worker's);
# AW_BENCH_ACCOUNTS spreads the audiences over that many accounts (each its own limits);
# AW_BENCH_MEMBERS sets the members per audience (default 150);
# AW_BENCH_REMOVE=1 then removes every member again and times that drain too (lookups by email
# and list relationship deletes). AW_BENCH_MIX=1 instead sends a mix over the same users, a
# quarter each: removals, attribute updates, consent (GDPR marketing mapped to email) and new
# members; drained once every one is in the simulator's state.
# Each drain starts from a backlog already in Redis: a worker with the leader off ingests it
# (all records done), then a leader starts and flushes it; the leader stops before the removals
# are ingested and a new one drains them. (Flushing while ingesting would take partial batches
# and leave remainders under AW_FLUSH_MAX_QUEUE waiting for their age.) The topic has 8
# partitions: the dev broker keeps ~5 MB a partition, so no backlog here is cut short.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${AW_BUILD_DIR:-$root/build/release}
audiences=${1:-60}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target aw-worker aw_devbroker >/dev/null
export AW_BUILD_DIR=$build AW_SOURCE_DIR=$root AW_TEST_NAME=bench-rate
source "$root/tests/integration/lib.sh"
start_redis
start_devbroker --topic mparticle.audience:8 --topic mparticle.audience.dlq:1 --topic bench.idle:1
start_klaviyo_sim --job-delay 0.05 --latency-ms "${AW_BENCH_LATENCY_MS:-100,300}" \
    --request-log "$AW_TEST_DIR/requests.log"
accounts=${AW_BENCH_ACCOUNTS:-1}
members=${AW_BENCH_MEMBERS:-150}
records() { # records() FILE ACTION TIME_OFFSET
    python3 - "$1" "$audiences" "$accounts" "$2" "$3" "$members" <<'PY'
import json, sys
audiences, accounts, action, t0 = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
members = int(sys.argv[6])
with open(sys.argv[1], "w") as f:
    for a in range(audiences):
        acct = 7001 + a % accounts
        for i in range(members):
            m = {"type": "audience_membership_change_request", "id": "r-%s-%d-%d" % (action, a, i),
                 "timestamp_ms": 1764288000000 + t0 + i, "account": {"account_id": acct,
                 "account_settings": {"apiKey": "pk_rate_%d" % acct}},
                 "user_profiles": [{"user_identities": [{"type": "email", "encoding": "raw",
                                    "value": "r%d.%d@example.com" % (a, i)}],
                                    "audiences": [{"audience_id": 100 + a, "audience_name": "Rate %d" % a,
                                                   "action": action}]}]}
            f.write("k%d\t%s\n" % (i, json.dumps(m, separators=(",", ":"))))
PY
}
# cpu NAME: CPU seconds (user + system) of a service's whole process group so far
cpu() {
    python3 - "$(service_pid "$1")" <<'PY'
import os, sys
pgid, hz, total = int(sys.argv[1]), os.sysconf("SC_CLK_TCK"), 0
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            f = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(f[2]) == pgid:
            total += int(f[11]) + int(f[12])
print("%.2f" % (total / hz))
PY
}
cpu_mark() { echo "$(cpu "$1") $(cpu klaviyo_sim)" >"$AW_TEST_DIR/cpu.$2"; } # cpu_mark LEADER N
cpu_report() { # cpu_report FROM TO SECONDS
    read -r w0 k0 <"$AW_TEST_DIR/cpu.$1"
    read -r w1 k1 <"$AW_TEST_DIR/cpu.$2"
    python3 -c "import sys; w, k, s = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print('  CPU during the drain: worker %.1f s (%.0f %% of a core), simulator %.1f s (%.0f %%)' % (w, 100 * w / s, k, 100 * k / s))" \
        "$(python3 -c "print($w1 - $w0)")" "$(python3 -c "print($k1 - $k0)")" "$3"
}
inflight=()
[ -n "${AW_BENCH_IN_FLIGHT:-}" ] && inflight=(AW_KLAVIYO_MAX_IN_FLIGHT="$AW_BENCH_IN_FLIGHT")
start_worker ingest AW_LEADER_ENABLED=false AW_LOG_LEVEL=warn
# ingest FILE DONE: produces FILE and waits until the ingest worker has done DONE records in all
ingest() {
    produce_file mparticle.audience "$1"
    wait_until '[ "$(worker_metric ingest aw_records_done_total)" = '"$2"' ]' 300 ||
        fail "ingest: $(worker_metric ingest aw_records_done_total) of $2 records done after 300 s"
}
sampler_start() { # sampler_start NAME: the most requests in flight while the backlog drains
    echo 0 >"$AW_TEST_DIR/peak"
    (
        while kill -0 $$ 2>/dev/null; do
            v=$(worker_metric "$1" aw_klaviyo_requests_in_flight 2>/dev/null || echo 0)
            [ "${v%.*}" -gt "$(cat "$AW_TEST_DIR/peak")" ] && echo "${v%.*}" >"$AW_TEST_DIR/peak"
            sleep 0.1
        done
    ) &
    sampler=$!
}
leader() { # leader NAME: a worker whose leader flushes; it consumes an empty topic in its own
    # group, so starting and stopping it never rebalances the ingest worker's partitions
    start_worker "$1" AW_FLUSH_TICK_MS=100 AW_KLAVIYO_JOB_POLL_MS=200 AW_LEASE_TTL_MS=15000 \
        AW_KAFKA_TOPICS=bench.idle AW_KAFKA_GROUP=bench-leader "${inflight[@]}"
    sampler_start "$1"
}
# the drain is timed from the first request Klaviyo sees (not the worker's startup and group join)
requests() {
    curl -sf "$AW_TEST_KLAVIYO_URL/_sim/counts" | python3 -c 'import json,sys
print(sum(sum(v.values()) for v in json.load(sys.stdin)["requests"].values()))'
}
members() {
    curl -sf "$AW_TEST_KLAVIYO_URL/_sim/counts" | python3 -c 'import json,sys
print(json.load(sys.stdin)["members"])'
}
# report LABEL STATE_BEFORE STATE_AFTER SECONDS: the requests between the two states, per
# operation, against the fastest drain each (account, operation)'s windows allow
report() {
    python3 - "$1" "$2" "$3" "$4" "$root/schemas/vendor/klaviyo/openapi-stable-2026-07-15.json" \
        "$accounts" "$(cat "$AW_TEST_DIR/peak")" "${AW_BENCH_LATENCY_MS:-100,300}" \
        "${AW_BENCH_IN_FLIGHT:-32}" "$AW_TEST_DIR/requests.log" <<'PY'
import json, math, sys
label, before, after, secs = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), float(sys.argv[4])
spec, accounts, peak = json.load(open(sys.argv[5])), int(sys.argv[6]), sys.argv[7]
lat_ms = sum(float(x) for x in sys.argv[8].split(",")) / len(sys.argv[8].split(","))
lanes = int(sys.argv[9])
log = [l.split() for l in open(sys.argv[10])]
limits = {}  # operationId -> (burst per s, steady per min), from the spec
for ops in spec["paths"].values():
    for op in ops.values():
        if isinstance(op, dict) and "x-klaviyo-ratelimit" in op:
            rl = op["x-klaviyo-ratelimit"]
            limits[op["operationId"]] = (int(rl["burst"].split("/")[0]), int(rl["steady"].split("/")[0]))
def counts(st):
    return {op: sum(v.values()) for op, v in st["requests"].items()}
def throttled(st):
    t = st["throttled"]
    return sum(t.values()) if isinstance(t, dict) else len(t)
c0, c1 = counts(before), counts(after)
ops = {op: c1[op] - c0.get(op, 0) for op in c1 if c1[op] - c0.get(op, 0) > 0}
print("%s: drained in %.1f s, %d requests over %d account(s)" % (label, secs, sum(ops.values()), accounts))
# Each (account, operation) has its own windows (worker/klaviyo/api.c): the client allows 90 %
# of each, burst b per second and steady m per minute. Request k (0-based) of an operation
# cannot start before floor(k / m) minutes plus floor((k mod m) / b) seconds; the fastest
# possible drain ends when the last request of the slowest (account, operation) starts. The
# audiences are spread evenly, so each account sends ceil(n / accounts) of an operation's n.
# What must follow an operation's last request before the drain can end: its own answer and
# the requests that depend on it, each a mean latency, and the job's poll interval (the
# simulator's 0.05 s queued + 0.05 s processing fit in it).
poll_s = 0.2  # AW_KLAVIYO_JOB_POLL_MS of the leader below
follow = {"get_lists": 4, "create_list": 3, "bulk_import_profiles": 2,
         "get_bulk_import_profiles_job": 1, "get_profiles": 2, "remove_profiles_from_list": 1}
polls = {"get_lists", "create_list", "bulk_import_profiles"}
bound, binding, with_answers = 0, "-", 0.0
for op, n in sorted(ops.items()):
    if op not in limits:
        continue
    b, m = (max(1, int(x * 0.9)) for x in limits[op])
    k = math.ceil(n / accounts)
    fastest = (k - 1) // m * 60 + ((k - 1) % m) // b
    print("  %-40s %6d requests, %5d per account, fastest %4d s (%d/s, %d/min)" % (op, n, k, fastest, b, m))
    if fastest > bound:
        bound, binding = fastest, op
    tail = follow.get(op, 1) * lat_ms / 1000.0 + (poll_s if op in polls else 0.0)
    with_answers = max(with_answers, fastest + tail)
# A second floor, of a client like ours: an ideal one with the leader's AW_KLAVIYO_MAX_IN_FLIGHT
# lanes, each request holding a lane for the mean latency, every request of every (account,
# operation) ready from the start and sent as soon as a lane is free and its windows (the same
# 90 %) allow, the operation that can go earliest first; it ends when the last request's tail
# (as above) ends. No request waits for another's answer, except a list delete for the lookups
# that found its ids: the account's k-th delete is ready once the first ceil(k x lookups /
# deletes) lookups are answered (1,000 ids a delete, 100 emails a lookup: ten each in the
# removal backlog). Lanes, not Klaviyo, bind it when a burst window holds more requests than
# there are lanes, or when no limit is reached at all.
import bisect, collections, heapq
lat = lat_ms / 1000.0
queues = {}  # (account, op) -> [requests left, burst sends, steady sends, b, m]
for op, n in ops.items():
    b, m = (max(1, int(x * 0.9)) for x in limits.get(op, (10 ** 6, 10 ** 6)))
    for a in range(accounts):
        k = n // accounts + (a < n % accounts)
        if k:
            queues[(a, op)] = [k, collections.deque(), collections.deque(), b, m, 0]  # 5: sent
need = {}  # account -> lookups answered before its k-th delete (k from 1), as a ratio
answered = collections.defaultdict(list)  # account -> answer times of its lookups, in order
for a in range(accounts):
    lk, dl = queues.get((a, "get_profiles")), queues.get((a, "remove_profiles_from_list"))
    if lk and dl:
        need[a] = lk[0] / dl[0]
def allowed(q, t, key=None):
    at = t
    if key and key[1] == "remove_profiles_from_list" and key[0] in need:
        k = q[5] + 1  # this delete, counted from 1
        r = math.ceil(k * need[key[0]] - 1e-9)
        got = answered[key[0]]
        at = max(at, got[r - 1] if len(got) >= r else float("inf"))
    if len(q[1]) >= q[3]:
        at = max(at, q[1][-q[3]] + 1.0)
    if len(q[2]) >= q[4]:
        at = max(at, q[2][-q[4]] + 60.0)
    return at
free, ideal = [0.0] * lanes, 0.0
heapq.heapify(free)
while queues:
    t = heapq.heappop(free)
    # the earliest allowed; of those, the one with the most time's worth of requests left
    key, at = min(((k, allowed(q, t, k)) for k, q in queues.items()),
                  key=lambda x: (x[1], -queues[x[0]][0] / queues[x[0]][3]))
    q = queues[key]
    q[0] -= 1
    q[1].append(at)
    q[2].append(at)
    q[5] += 1
    op = key[1]
    if op == "get_profiles":
        bisect.insort(answered[key[0]], at + lat)
    if q[0] == 0:
        del queues[key]
        # a lookup's delete is scheduled here itself: its own answer is its tail
        n_tail = 1 if op == "get_profiles" and key[0] in need else follow.get(op, 1)
        ideal = max(ideal, at + n_tail * lat + (poll_s if op in polls else 0.0))
    heapq.heappush(free, at + lat)
floor = max(with_answers, ideal)
print("  bound (slowest: %s) %d s; with the answers and requests that must follow it %.1f s;"
      " an ideal client with %d lanes %.1f s" % (binding, bound, with_answers, lanes, ideal))
print("  achieved %.1f s; efficiency %.2f against the rate-limit bound, %.2f against the larger of the"
      " bound with its answers and the ideal client" % (secs, bound / secs if secs else 0,
                                                      floor / secs if secs else 0))
# when each operation's requests arrived (the simulator's request log), from the drain's first
skip = sum(sum(v.values()) for v in before["requests"].values())
mine = [(float(r[0]), r[1]) for r in log[skip:]]
if mine:
    first = min(t for t, _ in mine)
    span = {}
    for t, op in mine:
        lo, hi = span.get(op, (t, t))
        span[op] = (min(lo, t), max(hi, t))
    print("  arrivals from the first request (s): " + ", ".join(
        "%s %.1f-%.1f" % (op, lo - first, hi - first) for op, (lo, hi) in sorted(span.items())))
t0, t1 = before.get("throttled") or {}, after.get("throttled") or {}
by_op = {op: n - t0.get(op, 0) for op, n in t1.items() if n - t0.get(op, 0) > 0} if isinstance(t1, dict) else {}
print("  429 responses received %d%s; requests in flight, most seen %s (sampled every 0.1 s)"
      % (throttled(after) - throttled(before), " %s" % by_op if by_op else "", peak))
PY
}
# timed LEADER BEFORE COND LABEL FROM TO: waits for the first request after BEFORE (a request
# count), then until COND holds, and reports the drain against state FROM, the end state saved
# as TO. The drain is timed in the simulator's request log (CLOCK_MONOTONIC, the clock mono()
# reads): from the first of its requests' arrival to the last one's answer, read 1 s after COND
# held (a poll of the job that made COND true comes after it). Polling for the first request
# and for COND lags by tenths of a second on a busy machine, in either direction.
mono() { python3 -c 'import time; print("%.4f" % time.monotonic())'; }
timed() {
    local name=$1 before=$2 cond=$3 label=$4 from=$5 to=$6 start secs
    wait_until '[ "$(requests)" -gt '"$before"' ]' 60 || fail "$label: no request within 60 s"
    cpu_mark "$name" a
    wait_until "$cond" 600 ||
        fail "$label: not drained after 600 s ($(curl -sf "$AW_TEST_KLAVIYO_URL/_sim/counts?property=wave"))"
    sleep 1
    end=$(mono)
    cpu_mark "$name" b
    curl -sf "$AW_TEST_KLAVIYO_URL/_sim/counts" >"$AW_TEST_DIR/$to.json"
    secs=$(tail -n +"$((before + 1))" "$AW_TEST_DIR/requests.log" |
        awk 'NR == 1 || $1 < a { a = $1 } $5 > z { z = $5 } END { printf "%.3f", z - a }')
    report "$label" "$AW_TEST_DIR/$from.json" "$AW_TEST_DIR/$to.json" "$secs"
    cpu_report a b "$secs"
}
records "$AW_TEST_DIR/in.tsv" add 0
ingest "$AW_TEST_DIR/in.tsv" $((audiences * members))
echo '{"requests": {}, "throttled": {}}' >"$AW_TEST_DIR/state0.json"
leader worker
timed worker 0 '[ "$(members)" -eq '"$((audiences * members))"' ]' \
    "adds: $audiences audiences x $members" state0 state1
# drain NAME FILE RECORDS COND LABEL: the running leader stops, the ingest worker takes FILE
# (RECORDS done in all), then leader NAME drains it (timed), reported against the state after
# the adds. It starts a minute after the previous drain ended, so the account's steady
# (per-minute) windows hold none of that drain's requests and the same bound applies.
drain() {
    local name=$1 file=$2 done=$3 cond=$4 label=$5 before
    kill "$sampler" 2>/dev/null || true
    stop_worker "$running"
    ingest "$file" "$done"
    sleep "$(python3 -c "import time; print(max(0.0, $end + 61 - time.monotonic()))")"
    before=$(requests)
    leader "$name"
    running=$name
    timed "$name" "$before" "$cond" "$label" state1 state2
}
running=worker
if [ "${AW_BENCH_REMOVE:-0}" = 1 ]; then
    records "$AW_TEST_DIR/rm.tsv" delete 100000
    drain worker2 "$AW_TEST_DIR/rm.tsv" $((2 * audiences * members)) '[ "$(members)" -eq 0 ]' \
        "removals of known members"
elif [ "${AW_BENCH_MIX:-0}" = 1 ]; then
    # a quarter each: removals, attribute updates (property wave=2), consent (GDPR marketing
    # mapped to email, through attribute_update), new members (wave=3)
    python3 - "$AW_TEST_DIR/mix.tsv" "$audiences" "$accounts" "$members" <<'PY'
import json, sys
audiences, accounts, members = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mapping = json.dumps([{"map": "marketing", "value": "email_marketing"}])
with open(sys.argv[1], "w") as f:
    for a in range(audiences):
        acct = 7001 + a % accounts
        for i in range(members):
            kind = i % 4
            email = "r%d.%d%s@example.com" % (a, i, ".new" if kind == 3 else "")
            aud = {"audience_id": 100 + a, "audience_name": "Rate %d" % a,
                   "action": ("delete", "attribute_update", "attribute_update", "add")[kind],
                   "audience_subscription_settings": {"consentMapping": mapping}}
            p = {"user_identities": [{"type": "email", "encoding": "raw", "value": email}],
                 "audiences": [aud]}
            if kind in (1, 3):
                aud["user_attributes"] = [{"key": "wave", "value": "2" if kind == 1 else "3",
                                           "action": "upsert"}]
            if kind == 2:
                p["consent_state"] = {"gdpr": {"marketing": {
                    "consented": True, "timestamp_unixtime_ms": 1764288200000 + i}}}
            m = {"type": "audience_membership_change_request", "id": "r-mix-%d-%d" % (a, i),
                 "timestamp_ms": 1764288200000 + i,
                 "account": {"account_id": acct, "account_settings": {"apiKey": "pk_rate_%d" % acct}},
                 "user_profiles": [p]}
            f.write("k%d\t%s\n" % (i, json.dumps(m, separators=(",", ":"))))
PY
    q=$((audiences * members / 4)) # users of each kind (members a multiple of 4)
    mixed() {
        curl -sf "$AW_TEST_KLAVIYO_URL/_sim/counts?property=wave" | python3 -c 'import json, sys
c, q = json.load(sys.stdin), int(sys.argv[1])
w, m = c["property"]["wave"], c["member_property"]["wave"]
# members: the updated (2), the new (3), and without the property the consenting and the
# untouched; a removed user still in a list would add to ""
sys.exit(not (w.get("2") == q and m == {"2": q, "3": q, "": 2 * q}
              and c["consent"].get("email", {}).get("SUBSCRIBED") == q))' "$q"
    }
    [ $((members % 4)) = 0 ] || fail "AW_BENCH_MIX needs members a multiple of 4"
    drain worker2 "$AW_TEST_DIR/mix.tsv" $((2 * audiences * members)) mixed \
        "mix: removals, attribute updates, consent, new members (a quarter each)"
fi
kill "$sampler" 2>/dev/null || true
