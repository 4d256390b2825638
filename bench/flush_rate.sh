#!/usr/bin/env bash
# bench/flush_rate.sh -- does a backlog run at Klaviyo's rate limits without provoking 429s?
# A leader flushes AUDIENCES audiences (150 adds each: list lookup, list create, bulk import,
# job polls) against the simulator with the spec's real limits switched on. Prints the requests
# per minute achieved on the 10/s-150/min tier (lists create, bulk import jobs and their polls,
# the binding tier) as a ratio of the published steady limit, and the number of 429s received.
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
curl -sf "$AW_TEST_KLAVIYO_URL/_sim/state" | python3 -c '
import json, sys
s = json.load(sys.stdin)
secs = float(sys.argv[1])
tier = ("create_list", "bulk_import_profiles", "get_bulk_import_profiles_job",
        "get_errors_for_bulk_import_profiles_job")
n = sum(sum(v.values()) for k, v in s["requests"].items() if k in tier)
throttled = sum(s["throttled"].values()) if isinstance(s["throttled"], dict) else len(s["throttled"])
total = sum(sum(v.values()) for v in s["requests"].values())
print("audiences flushed                  %d (%d profiles) in %.1f s" % (int(sys.argv[2]), int(sys.argv[2]) * 150, secs))
print("requests, all tiers                %d" % total)
# With at most 135 requests in any 60 s window and 9 in any second (the client limiter at 90 %
# of 150/min and 10/s), request k (0-based) cannot start before floor(k / 135) minutes plus
# floor((k mod 135) / 9) seconds: the fastest possible run ends when the last request starts.
fastest = (n - 1) // 135 * 60 + ((n - 1) % 135) // 9
print("10/s-150/min tier requests         %d" % n)
print("fastest possible at 135/min        %d s; achieved %.1f s; efficiency %.2f" % (fastest, secs, fastest / secs if secs else 0))
print("429 responses received             %d" % throttled)
' "$(python3 -c "print($end - $start)")" "$audiences"
