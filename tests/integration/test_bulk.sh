#!/usr/bin/env bash
# test_bulk.sh -- "batches drain at the endpoint maximums" (docs/design.md §5): 12,000 pending adds of
# one audience go out as bulk import jobs of 10,000 + 2,000 profiles (the threshold of 100 only
# triggers the flush), and 2,500 removals as 25 profile lookups of 100 emails and 3 relationship
# deletes of at most 1,000 ids. The changes are ingested by a consumer-only replica first, then
# a leader replica flushes them; the simulator's job and request log is the evidence.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat python3 curl
start_redis
start_devbroker --topic mparticle.audience:2 --topic mparticle.audience.dlq:1
start_klaviyo_sim --job-delay 0.1
sim=$AW_TEST_KLAVIYO_URL

gen() { # gen FILE FIRST COUNT ACTION TS
    python3 - "$@" <<'PY'
import json, sys
path, first, count, action, ts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
with open(path, "w") as f:
    for i in range(first, first + count):
        m = {"type": "audience_membership_change_request", "id": "%s-%05d" % (action, i),
             "timestamp_ms": ts + i, "account": {"account_id": 5001, "account_settings": {"apiKey": "pk_bulk"}},
             "user_profiles": [{"user_identities": [{"type": "email", "encoding": "raw",
                                                     "value": "bulk%05d@example.com" % i}],
                                "audiences": [{"audience_id": 51, "audience_name": "Bulk", "action": action}]}]}
        f.write("k%d\t%s\n" % (i % 50, json.dumps(m, separators=(",", ":"))))
PY
}
run_worker() { # NAME LEADER
    start_worker "$1" AW_LEADER_ENABLED="$2" AW_FLUSH_MAX_QUEUE=100 AW_FLUSH_MAX_AGE_S=1
}
pending() { redis_cmd HLEN 'aw:{5001}:a:51:p'; }
members() {
    curl -sf "$sim/_sim/state" | python3 -c 'import json,sys
s = json.load(sys.stdin)
print(sum(len(l["member_emails"]) for l in s["lists"] if l["name"] == "Bulk"))'
}

gen "$AW_TEST_DIR/adds.tsv" 0 12000 add 1764288000000
gen "$AW_TEST_DIR/dels.tsv" 0 2500 delete 1764289000000
run_worker consumer false
produce_file mparticle.audience "$AW_TEST_DIR/adds.tsv"
wait_until '[ "$(pending)" -eq 12000 ]' 90 || fail "ingested $(pending) of 12000 adds"
note "12000 adds pending; starting the leader"
run_worker leader true
wait_until '[ "$(members)" -eq 12000 ]' 120 || fail "list has $(members) of 12000 members"
stop_worker leader || fail "leader did not stop cleanly"

produce_file mparticle.audience "$AW_TEST_DIR/dels.tsv"
wait_until '[ "$(pending)" -eq 2500 ]' 60 || fail "ingested $(pending) of 2500 removals"
note "2500 removals pending; starting the leader again"
run_worker leader2 true
wait_until '[ "$(members)" -eq 9500 ]' 120 || fail "list has $(members) members, want 9500"

curl -sf "$sim/_sim/state" | python3 -c '
import json, sys
s = json.load(sys.stdin)
sizes = sorted(len(j.get("profile_ids") or []) for j in s["jobs"] if j.get("type", "profile-bulk-import-job") == "profile-bulk-import-job")
req = s["requests"]
def n(op):
    return sum(v for k, v in req.get(op, {}).items() if str(k).startswith("2"))
print("# import job sizes:", sizes, "| lookups:", n("get_profiles"), "| relationship deletes:", n("remove_profiles_from_list"), file=sys.stderr)
assert sizes == [2000, 10000], sizes
assert n("get_profiles") == 25, req.get("get_profiles")
assert n("remove_profiles_from_list") == 3, req.get("remove_profiles_from_list")
' || fail "batches were not filled to the endpoint maximums"

# 30 new audiences at once: their list creations queue behind the 10/s-150/min limit. Waiting on the
# limiter must not count against Klaviyo's 150 list creations a day (regression: it did, and the
# flusher stalled for an hour after ~15 lists).
python3 - "$AW_TEST_DIR/new.tsv" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for a in range(30):
        m = {"type": "audience_membership_change_request", "id": "n-%d" % a, "timestamp_ms": 1764290000000,
             "account": {"account_id": 5001, "account_settings": {"apiKey": "pk_bulk"}},
             "user_profiles": [{"user_identities": [{"type": "email", "encoding": "raw", "value": "n%d@example.com" % a}],
                                "audiences": [{"audience_id": 600 + a, "audience_name": "New %d" % a, "action": "add"}]}]}
        f.write("n%d\t%s\n" % (a, json.dumps(m, separators=(",", ":"))))
PY
produce_file mparticle.audience "$AW_TEST_DIR/new.tsv"
new_lists() {
    curl -sf "$sim/_sim/state" | python3 -c 'import json,sys
print(sum(1 for l in json.load(sys.stdin)["lists"] if l["name"].startswith("New ") and l["member_emails"]))'
}
# Their ~90 requests share the 150/min window with the bulk phases above: allow two minutes.
wait_until '[ "$(new_lists)" -eq 30 ]' 150 || fail "$(new_lists) of 30 new lists filled within 150 s"
if grep -q 'daily list creation limit reached' "$AW_TEST_DIR/leader2.log"; then
    fail "the daily list-creation budget was spent on requests never sent"
fi
stop_worker leader2 || fail "leader2 did not stop cleanly"
echo "test_bulk: PASS"
