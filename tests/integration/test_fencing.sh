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
worker=$(aw_bin aw-worker)
python3 "$model" gen "$AW_TEST_DIR" "${AW_TEST_SEED:-777}"
expected="$AW_TEST_DIR/expected.json"

start_redis --appendonly yes
start_devbroker --topic mparticle.audience:2 --topic mparticle.audience.dlq:1
# Slow Klaviyo answers keep the leader inside its flush when it is frozen.
start_klaviyo_sim --job-delay 0.3
sim=$AW_TEST_KLAVIYO_URL
curl -sf -X POST "$sim/_sim/faults" -H 'Content-Type: application/json' \
    -d '{"slow_ms": 150, "unauthorized_keys": ["pk_e2e_revoked_key"]}' >/dev/null ||
    fail "cannot set simulator faults"
printf 'session.timeout.ms=6000\n' >"$AW_TEST_DIR/kafka.conf"

declare -A PORT=()
start_worker() {
    PORT[$1]=$(free_port)
    start_service "$1" env AW_KAFKA_BROKERS="$AW_TEST_BROKERS" AW_REDIS_URL="$AW_TEST_REDIS_URL" \
        AW_KLAVIYO_BASE_URL="$sim" AW_KAFKA_CONFIG_FILE="$AW_TEST_DIR/kafka.conf" \
        AW_HTTP_ADDR="127.0.0.1:${PORT[$1]}" AW_INSTANCE_ID="$1" \
        AW_FLUSH_MAX_QUEUE=100 AW_FLUSH_MAX_AGE_S=2 AW_FLUSH_TICK_MS=100 AW_LEASE_TTL_MS=3000 \
        AW_KLAVIYO_JOB_POLL_MS=100 "$worker" run
}
is_leader() { curl -sf --max-time 2 "http://127.0.0.1:${PORT[$1]}/status" | grep -q '"leader":true'; }

start_worker replica-1
start_worker replica-2
produce_file mparticle.audience "$AW_TEST_DIR/part1.tsv"
wait_until "is_leader replica-1 || is_leader replica-2" 30 || fail "no replica took the lease"
frozen=replica-1
is_leader replica-1 || frozen=replica-2
other=replica-1
[ "$frozen" = replica-1 ] && other=replica-2
wait_until "grep -q 'flushing batch' '$AW_TEST_DIR/$frozen.log'" 60 || fail "$frozen never flushed"
note "freeze the leader ($frozen) mid-flush"
kill -STOP -- "-$(service_pid "$frozen")"
wait_until "is_leader $other" 20 || fail "$other did not take the lease over"
note "$other holds the lease; thaw $frozen"
produce_file mparticle.audience "$AW_TEST_DIR/part2.tsv"
sleep 2
kill -CONT -- "-$(service_pid "$frozen")"

if ! wait_until "python3 '$model' check '$sim' '$expected'" 180; then
    python3 "$model" check "$sim" "$expected" -v || true
    fail "Klaviyo did not reach the state the input implies"
fi
note "Klaviyo's lists, profiles and consent equal the model"
wait_until "grep -q 'leader lease lost\\|lease lost\\|fenced' '$AW_TEST_DIR/$frozen.log'" 20 ||
    fail "$frozen did not notice it lost the lease"
is_leader "$frozen" && fail "$frozen still claims the lease"
is_leader "$other" || fail "$other lost the lease"
for w in replica-1 replica-2; do
    stop_service "$w" TERM 30 || fail "$w did not exit 0 on SIGTERM"
done
echo "test_fencing: PASS"
