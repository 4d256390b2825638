#!/usr/bin/env bash
# test_fencing.sh -- a leader that is frozen (SIGSTOP) in the middle of a flush, long enough for
# its lease to expire and another replica to take over and re-drive the in-flight batch, then
# thawed (SIGCONT): it must notice the lost lease and stop flushing (fencing epoch), and
# Klaviyo must still end exactly as the input says (e2e_model.py).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat redis-cli python3 curl
model="$AW_SOURCE_DIR/tests/integration/e2e_model.py"
python3 "$model" gen "$AW_TEST_DIR" "${AW_TEST_SEED:-777}"
expected="$AW_TEST_DIR/expected.json"

start_redis --appendonly yes
start_devbroker --topic mparticle.audience:2 --topic mparticle.audience.dlq:1
# Slow Klaviyo answers keep the leader inside its flush when it is frozen.
start_klaviyo_sim --job-delay 0.3
sim=$AW_TEST_KLAVIYO_URL
sim_control faults '{"slow_ms": 150, "unauthorized_keys": ["pk_e2e_revoked_key"]}'

start_worker replica-1 AW_FLUSH_MAX_QUEUE=100 AW_FLUSH_MAX_AGE_S=2
start_worker replica-2 AW_FLUSH_MAX_QUEUE=100 AW_FLUSH_MAX_AGE_S=2
produce_file mparticle.audience "$AW_TEST_DIR/part1.tsv"
wait_for "a replica to take the lease (/status leader)" 30 leader_of replica-1 replica-2
frozen=$(leader_of replica-1 replica-2)
other=replica-1
[ "$frozen" = replica-1 ] && other=replica-2
# Mid-flush: Klaviyo has seen the leader's first bulk import job (its batch is in flight).
wait_for "the leader's first bulk import job at Klaviyo" 60 "sim_eval 's[\"jobs\"]'"
flushes_before=$(worker_metric "$frozen" aw_flushes_total) || fail "$frozen has no aw_flushes_total"
note "freeze the leader ($frozen) mid-flush"
kill -STOP -- "-$(service_pid "$frozen")"
wait_metric "$other" aw_leader -eq 1 20
note "$other holds the lease"
produce_file mparticle.audience "$AW_TEST_DIR/part2.tsv"
# The frozen leader's batch is re-driven and flushed by the new leader while it stays frozen.
wait_metric "$other" aw_flushes_total -ge 1 60
note "$other flushed while $frozen was frozen; thaw $frozen"
kill -CONT -- "-$(service_pid "$frozen")"

if ! wait_until "python3 '$model' check '$sim' '$expected'" 180; then
    python3 "$model" check "$sim" "$expected" -v || true
    fail "Klaviyo did not reach the state the input implies"
fi
note "Klaviyo's lists, profiles and consent equal the model"
# Thawed, the old leader notices the lost lease (its aw_leader gauge drops) ...
wait_metric "$frozen" aw_leader -eq 0 20
worker_is_leader "$frozen" && fail "$frozen still claims the lease"
worker_is_leader "$other" || fail "$other lost the lease"
# ... and abandons the flush it was frozen in: it completed none after the thaw.
[ "$(worker_metric "$frozen" aw_flushes_total)" = "$flushes_before" ] ||
    fail "$frozen completed a flush after losing the lease"
for w in replica-1 replica-2; do
    stop_worker "$w" || fail "$w did not exit 0 on SIGTERM"
done
echo "test_fencing: PASS"
