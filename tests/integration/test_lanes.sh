#!/usr/bin/env bash
# test_lanes.sh -- requests in flight (docs/flush.md, Lanes): with Klaviyo answering in 150-250
# ms, a leader with AW_KLAVIYO_MAX_IN_FLIGHT=6 keeps several requests on the wire across
# audiences and never more than 6; one removal batch's lookups and deletes fan out over the
# lanes; a batch of adds and removals sends its removals while its import job still runs (they
# concern other users); import jobs are polled through the account's listing of its newest jobs,
# and by their own GET once the listing no longer reaches them; every list ends exactly right,
# one list per audience, nothing dead-lettered, and the in-flight gauge is back at 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw_flush_test aw_devbroker
BIN=$(aw_bin aw_flush_test)
DLQ=aw.lanes.dlq

start_redis
start_devbroker --topic "$DLQ:1"
start_klaviyo_sim --job-delay 0.05 --latency-ms 150,250
printf '{}\n' >"$AW_TEST_DIR/accounts.json"
run_flusher() {
    timeout 120 "$BIN" run "$AW_TEST_REDIS_URL" "$AW_TEST_KLAVIYO_URL" "$AW_TEST_BROKERS" "$DLQ" 100 \
        --config "$AW_TEST_DIR/accounts.json" --in-flight 6 2>>"$AW_TEST_DIR/flusher.log" |
        tee -a "$AW_TEST_DIR/metrics.txt" || fail "the flusher did not drain within 100 s ($1)"
}

seed() { "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed ($1)"; } # seed WHAT < lines
members() { echo 'next(l for l in s["lists"] if l["name"] == "'"$1"'")["member_emails"]'; }

# phase 1: 12 audiences of 20 adds, and one of 600 (removed in phase 2)
{
    echo "key A1 pk_lanes_00000000"
    for a in $(seq 1 12); do
        for i in $(seq 1 20); do echo "A1 $a Lanes_$a add u$a.$i@example.com"; done
    done
    for i in $(seq 1 600); do echo "A1 99 Big add b$i@example.com"; done
    for i in $(seq 1 300); do echo "A1 98 Mixed add m$i@example.com"; done
} | seed adds
run_flusher adds
sim_eval 'all(len(l["member_emails"]) == 20 for l in s["lists"] if l["name"].startswith("Lanes "))' ||
    fail "an audience's members are wrong"
sim_eval 'sorted(l["name"] for l in s["lists"]) == sorted(["Big", "Mixed"] + ["Lanes %d" % a for a in range(1, 13)])' ||
    fail "not exactly one list per audience: $(sim_eval 'print(sorted(l["name"] for l in s["lists"])) or False' || true)"
sim_eval "len($(members Big)) == 600" ||
    fail "the big audience's members are wrong"
sim_eval '2 <= s["max_in_flight"]["*"] <= 6' ||
    fail "requests in flight not within 2..6: $(sim_eval 'print(s["max_in_flight"]) or False' || true)"
# the 14 import jobs are polled through the account's listing (one request for all of them),
# not each by its own GET
polls='sum(s["requests"].get("get_bulk_import_profiles_jobs", {}).values()), sum(s["requests"].get("get_bulk_import_profiles_job", {}).values())'
note "phase 1 polls (listings, own): $(sim_eval "print(($polls)) or True")"
sim_eval "(lambda listed, own: listed >= 1 and own < 14)($polls)" ||
    fail "the jobs were not polled through the listing (listings, own polls): $(sim_eval "print(($polls)) or False" || true)"

# phase 2: the 600 removed again: 6 lookups of 100 emails and the deletes, which fan out
for i in $(seq 1 600); do echo "A1 99 Big delete b$i@example.com"; done | seed removals
run_flusher removals
sim_eval "$(members Big) == []" ||
    fail "members left after the removals"
sim_eval 's["max_in_flight"].get("get_profiles", 0) >= 2' ||
    fail "one batch's lookups did not fan out: $(sim_eval 'print(s["max_in_flight"]) or False' || true)"
sim_eval 'sum(s["requests"].get("get_profiles", {}).values()) >= 6' || fail "fewer lookups than emails need"
sim_eval 'not s["retry_after_violations"]' || fail "a request before its Retry-After"

# phase 3: one batch of 300 adds (n*) and 300 removals (m*), the import job taking ~3 s at
# Klaviyo: the lookups and the delete go out while it runs, not after its last poll
sim_control config '{"job_queued_s": 1.5, "job_processing_s": 1.5}' >/dev/null
n0=$(sim_eval 'print(len(s["recent_requests"])) or True') # fewer than the 200 it keeps
{
    for i in $(seq 1 300); do echo "A1 98 Mixed add n$i@example.com"; done
    for i in $(seq 1 300); do echo "A1 98 Mixed delete m$i@example.com"; done
} | seed "the mixed batch"
run_flusher mixed
sim_eval "sorted($(members Mixed)) == sorted('n%d@example.com' % i for i in range(1, 301))" ||
    fail "the mixed audience's members are wrong"
# the simulator's recent requests, in the order they ended: the delete before the job's last poll
# (a poll: the job's own GET or the account's listing of its newest jobs)
sim_eval 'max(i for i, r in enumerate(s["recent_requests"]) if r["op"].startswith("get_bulk_import_profiles_job")) > min(i for i, r in enumerate(s["recent_requests"]) if r["op"] == "remove_profiles_from_list" and i >= '"$n0"')' ||
    fail "the removals waited for the import job: $(sim_eval 'print([r["op"] for r in s["recent_requests"]['"$n0"':]]) or False' || true)"
note "in flight at most $(sim_eval 'print(s["max_in_flight"]["*"]) or True'), lookups of one batch at once $(sim_eval 'print(s["max_in_flight"]["get_profiles"]) or True')"

# phase 4: a job the listing no longer reaches (another integration started 100 jobs after it,
# a page's worth) is polled by its own GET and ends right
sim_control config '{"job_queued_s": 0.05, "job_processing_s": 0.05, "rate_limit_overrides": {"bulk_import_profiles": {"burst": 1000, "steady": 10000}}}'
sim_control faults '{"slow_jobs": {"count": 1, "extra_s": 8}}'
jobs0=$(sim_eval 'print(len(s["jobs"])) or True')
own0=$(sim_eval 'print(sum(s["requests"].get("get_bulk_import_profiles_job", {}).values())) or True')
listed0=$(sim_eval 'print(sum(s["requests"].get("get_bulk_import_profiles_jobs", {}).values())) or True')
echo "A1 97 Paged add p1@example.com" | seed "the paged batch"
python3 - "$AW_TEST_KLAVIYO_URL" "$jobs0" <<'PY' &
import json, sys, time, urllib.request
url, jobs0 = sys.argv[1], int(sys.argv[2])
def req(method, path, body=None):
    r = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body else None,
                               headers={"Authorization": "Klaviyo-API-Key pk_other_0000000", "revision": "2026-07-15",
                                        "Content-Type": "application/vnd.api+json"})
    return json.load(urllib.request.urlopen(r, timeout=10))
deadline = time.monotonic() + 30
while len(req("GET", "/_sim/state")["jobs"]) <= jobs0:  # the flusher's import job
    assert time.monotonic() < deadline, "no import job within 30 s"
    time.sleep(0.02)
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(20) as pool:  # 100 jobs within ~1 s at the simulator's latency
    list(pool.map(lambda i: req("POST", "/api/profile-bulk-import-jobs", {"data": {
        "type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
            {"type": "profile", "attributes": {"email": "other%d@example.com" % i}}]}}}}), range(100)))
PY
other=$!
run_flusher paged
wait "$other" || fail "the other integration could not start its jobs"
sim_eval "$(members Paged) == ['p1@example.com']" || fail "the paged audience's members are wrong"
sim_eval "(lambda listed, own: listed > $listed0 and own > $own0)($polls)" ||
    fail "the job off the listing's page was not polled by its own GET (listings, own polls): $(sim_eval "print(($polls)) or False" || true)"

n_dl=$(timeout 15 kcat -b "$AW_TEST_BROKERS" -t "$DLQ" -C -o beginning -e -q 2>/dev/null | wc -l)
[ "$n_dl" = 0 ] || fail "$n_dl dead letters"
echo "test_lanes: PASS"
