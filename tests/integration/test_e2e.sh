#!/usr/bin/env bash
# test_e2e.sh -- issue "Leader and flush", done-when: the whole pipeline (dev broker, redis-server,
# the Klaviyo simulator, two aw-worker replicas) under injected faults (5xx, a 429 storm, answers
# lost after Klaviyo applied the request, jobs finishing late and out of order, one account's key
# refused with 401) and a kill -9 of the leader mid-flush. The simulator's final
# lists, profiles and consent must equal exactly what the input implies (e2e_model.py), only the
# record Klaviyo refuses is dead-lettered, and the 401 account stays paused with its data kept
# while the other account flows.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat redis-cli python3 curl
model="$AW_SOURCE_DIR/tests/integration/e2e_model.py"
worker=$(aw_bin aw-worker) # for `aw-worker status`
python3 "$model" gen "$AW_TEST_DIR" "${AW_TEST_SEED:-4242}"
expected="$AW_TEST_DIR/expected.json"

start_redis --appendonly yes --appendfsync always
start_devbroker --brokers 2 --topic mparticle.audience:4 --topic mparticle.audience.dlq:1
start_klaviyo_sim --job-delay 0.2 --check-responses
sim=$AW_TEST_KLAVIYO_URL
# Answers lost after Klaviyo applied the request (every endpoint), jobs finishing late and out
# of order: every side effect must still happen exactly once (one list per audience, the model).
sim_control config '{"job_jitter_s": 0.5}'
sim_control faults '{
  "error_rate_5xx": 0.15, "status": 503,
  "storm_429": {"count": 8, "retry_after": 1},
  "drop_after_apply": {"rate": 0.08},
  "unauthorized_keys": ["pk_e2e_revoked_key"]}'

replica() { # NAME: a replica with the e2e timings (flush by 100 pending or after 2 s, fast retries)
    start_worker "$1" AW_FLUSH_MAX_QUEUE=100 AW_FLUSH_MAX_AGE_S=2 AW_KLAVIYO_RETRY_BASE_MS=50 \
        AW_KLAVIYO_RETRY_MAX_MS=1000 AW_CONSUMER_BATCH_MAX=50
}
replica replica-1
replica replica-2
produce_file mparticle.audience "$AW_TEST_DIR/part1.tsv"
wait_for "a replica to take the lease (/status leader)" 30 leader_of replica-1 replica-2
leader=$(leader_of replica-1 replica-2)
other=replica-1
[ "$leader" = replica-1 ] && other=replica-2
# Kill the leader while it is flushing: once Klaviyo has seen a bulk import job.
wait_for "the leader's first bulk import job at Klaviyo" 60 sim_eval "'s[\"jobs\"]'"
note "kill -9 the leader ($leader) mid-flush"
kill9_service "$leader"
produce_file mparticle.audience "$AW_TEST_DIR/part2.tsv"
wait_metric "$other" aw_leader -eq 1 20
note "$other took the lease over"
replica replica-3

if ! wait_until "python3 '$model' check '$sim' '$expected'" 180; then
    python3 "$model" check "$sim" "$expected" -v || true
    fail "Klaviyo did not reach the state the input implies"
fi
note "Klaviyo's lists, profiles and consent equal the model"
sim_eval 'not s["retry_after_violations"]' ||
    fail "requests sent before their Retry-After: $(sim_eval 'print(s["retry_after_violations"][:5]) or False' || true)"

# The paused account: its data is kept (in flight or pending), its pause is reported.
kept=$(($(redis_cmd HLEN 'aw:{3002}:a:33:p') + $(redis_cmd HLEN 'aw:{3002}:a:33:f')))
[ "$kept" -eq 20 ] || fail "paused account keeps $kept of its 20 changes"
[ "$(worker_metric "$other" aw_accounts_paused)" = 1 ] ||
    fail "the leader does not report the paused account"
grep -q 'level=error' "$AW_TEST_DIR/$other.log" || fail "no ERROR line for the paused account"
# The backlog gauges: only the paused account's audience is still due; its job gave its batch
# back (kept in Redis, counted above), so the leader holds no flush and no batch memory.
wait_metric "$other" aw_due_audiences -eq 1 10
[ "$(worker_metric "$other" aw_flush_jobs)" = 0 ] ||
    fail "aw_flush_jobs: the paused audience's job still holds its batch"
[ "$(worker_metric "$other" aw_flush_batch_bytes)" = 0 ] ||
    fail "aw_flush_batch_bytes: batch memory is still held"
# The admin view from Redis: the lease, and the paused audience's batch still in flight.
AW_REDIS_URL="$AW_TEST_REDIS_URL" "$worker" status >"$AW_TEST_DIR/status.txt" ||
    fail "aw-worker status failed"
grep -q '^lease held=true ' "$AW_TEST_DIR/status.txt" || fail "status shows no lease holder"
grep -q '^account account=3002 paused=true refused_status=401 ' "$AW_TEST_DIR/status.txt" ||
    fail "status does not show the paused account"
line=$(grep '^audience account=3002 audience=33 name="E2E Gamma" state=active ' "$AW_TEST_DIR/status.txt") ||
    fail "status does not list the paused audience"
p=$(sed -n 's/.* pending=\([0-9]*\) .*/\1/p' <<<"$line")
f=$(sed -n 's/.* inflight=\([0-9]*\) .*/\1/p' <<<"$line")
[ $((p + f)) -eq 20 ] && [ "$f" -gt 0 ] && [[ $line == *" due=now "* ]] ||
    fail "status does not show the paused audience's 20 changes in flight and due: $line"
grep -q '^audience account=3001 audience=31 .* pending=0 inflight=0 due=none ' \
    "$AW_TEST_DIR/status.txt" || fail "status does not show audience 31 drained"

python3 - "$sim" <<'PY' || fail "the faults were not all exercised"
import json, sys, urllib.request
st = json.load(urllib.request.urlopen(sys.argv[1] + "/_sim/state", timeout=10))
f = st["faults_injected"]
print("# faults injected:", json.dumps(f, sort_keys=True), file=sys.stderr)
assert f.get("5xx", 0) > 0 and f.get("storm_429", 0) == 8 and f.get("unauthorized", 0) > 0, f
assert f.get("drop_after_apply", 0) > 0, f
PY

ndlq=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['dlq_emails']))" "$expected")
consume_topic mparticle.audience.dlq "$ndlq" 60 >"$AW_TEST_DIR/dlq.jsonl" || fail "dead letters missing"
python3 "$model" check-dlq "$expected" "$AW_TEST_DIR/dlq.jsonl" -v || fail "unexpected dead letters"
if grep -E 'example\.net|pk_e2e' "$AW_TEST_DIR"/replica-*.log; then
    fail "personal data or an API key reached the logs"
fi
for w in "$other" replica-3; do
    stop_worker "$w" || fail "$w did not exit 0 on SIGTERM"
done
echo "test_e2e: PASS"
