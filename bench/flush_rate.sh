#!/usr/bin/env bash
# bench/flush_rate.sh -- does a backlog run at Klaviyo's rate limits without provoking 429s?
# A leader flushes AUDIENCES audiences (150 adds each: list lookup, list create, bulk import,
# job polls) against the simulator with the spec's real limits switched on. Prints the time
# taken against the fastest run its per-operation limits allow (each operation has its own
# windows at 90 % of the spec's), as a ratio, and the number of 429s received.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${AW_BUILD_DIR:-$root/build/release}
audiences=${1:-60}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target aw-worker aw_devbroker >/dev/null
export AW_BUILD_DIR=$build AW_SOURCE_DIR=$root AW_TEST_NAME=bench-rate
source "$root/tests/integration/lib.sh"
start_redis
start_devbroker --topic mparticle.audience:2 --topic mparticle.audience.dlq:1
start_klaviyo_sim --job-delay 0.05
python3 - "$AW_TEST_DIR/in.tsv" "$audiences" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for a in range(int(sys.argv[2])):
        for i in range(150):
            m = {"type": "audience_membership_change_request", "id": "r-%d-%d" % (a, i),
                 "timestamp_ms": 1764288000000 + i, "account": {"account_id": 7001,
                 "account_settings": {"apiKey": "pk_rate"}},
                 "user_profiles": [{"user_identities": [{"type": "email", "encoding": "raw",
                                    "value": "r%d.%d@example.com" % (a, i)}],
                                    "audiences": [{"audience_id": 100 + a, "audience_name": "Rate %d" % a,
                                                   "action": "add"}]}]}
            f.write("k%d\t%s\n" % (i, json.dumps(m, separators=(",", ":"))))
PY
produce_file mparticle.audience "$AW_TEST_DIR/in.tsv"
start=$(date +%s.%N)
start_worker worker AW_FLUSH_TICK_MS=100 AW_KLAVIYO_JOB_POLL_MS=200 AW_LEASE_TTL_MS=15000
members() {
    curl -sf "$AW_TEST_KLAVIYO_URL/_sim/state" | python3 -c 'import json,sys
print(sum(len(l["member_emails"]) for l in json.load(sys.stdin)["lists"]))'
}
want=$((audiences * 150))
wait_until '[ "$(members)" -eq '"$want"' ]' 600 || fail "only $(members) of $want members after 600 s"
end=$(date +%s.%N)
curl -sf "$AW_TEST_KLAVIYO_URL/_sim/state" >"$AW_TEST_DIR/state.json"
python3 - "$AW_TEST_DIR/state.json" "$root/schemas/vendor/klaviyo/openapi-stable-2026-07-15.json" \
    "$(python3 -c "print($end - $start)")" "$audiences" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
spec = json.load(open(sys.argv[2]))
secs, audiences = float(sys.argv[3]), int(sys.argv[4])
limits = {}  # operationId -> (burst per s, steady per min), from the spec
for ops in spec["paths"].values():
    for op in ops.values():
        if isinstance(op, dict) and "x-klaviyo-ratelimit" in op:
            rl = op["x-klaviyo-ratelimit"]
            limits[op["operationId"]] = (int(rl["burst"].split("/")[0]), int(rl["steady"].split("/")[0]))
throttled = sum(s["throttled"].values()) if isinstance(s["throttled"], dict) else len(s["throttled"])
total = sum(sum(v.values()) for v in s["requests"].values())
print("audiences flushed                  %d (%d profiles) in %.1f s" % (audiences, audiences * 150, secs))
print("requests, all operations           %d" % total)
# Each operation has its own windows (worker/klaviyo/api.c): the client allows 90 % of each,
# burst b per second and steady m per minute. Request k (0-based) of an operation cannot start
# before floor(k / m) minutes plus floor((k mod m) / b) seconds; the fastest possible run ends
# when the last request of the slowest operation starts (the bound the limiter allows).
bound, binding = 0, "-"
for op, counts in sorted(s["requests"].items()):
    n = sum(counts.values())
    if op not in limits or n == 0:
        continue
    b, m = (max(1, int(x * 0.9)) for x in limits[op])
    fastest = (n - 1) // m * 60 + ((n - 1) % m) // b
    print("  %-40s %5d requests, fastest %4d s (%d/s, %d/min)" % (op, n, fastest, b, m))
    if fastest > bound:
        bound, binding = fastest, op
print("bound (slowest operation: %s)  %d s; achieved %.1f s; efficiency %.2f"
      % (binding, bound, secs, bound / secs if secs else 0))
print("429 responses received             %d" % throttled)
PY
