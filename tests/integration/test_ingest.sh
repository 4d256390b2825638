#!/usr/bin/env bash
# test_ingest.sh -- issue "Ingest", done-when: a mixed stream of valid and invalid messages
# goes through the dev broker into Redis while the worker is killed (-9) and restarted and
# Redis is killed (-9) and restarted underneath it; the final pending state and the dead-letter
# topic must equal exactly what an independent model of the input says (tests/integration/
# ingest_model.py), i.e. what an uninterrupted run produces.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat redis-cli python3 curl
model="$AW_SOURCE_DIR/tests/integration/ingest_model.py"

python3 "$model" gen "$AW_TEST_DIR" "${AW_TEST_SEED:-20261128}"
# appendfsync always: a write Redis acknowledged survives its kill -9 (production runs AOF too).
start_redis --appendonly yes --appendfsync always
start_devbroker --brokers 2 --topic mparticle.audience:4 --topic mparticle.audience.dlq:1
# lib.sh's Kafka settings, plus librdkafka statistics every second (aw_consumer_lag).
printf 'session.timeout.ms=6000\nstatistics.interval.ms=1000\n' >"$AW_TEST_DIR/kafka.conf"

consumer() { # NAME: a consumer-only replica with short Redis timeouts
    start_worker "$1" AW_LEADER_ENABLED=false AW_CONSUMER_BATCH_MAX=50 AW_REDIS_TIMEOUT_MS=1000 \
        AW_REDIS_CONNECT_TIMEOUT_MS=500 AW_LOG_LEVEL=info
}

# "SERIES SUM" of the worker's aw_consumer_lag{topic,partition} samples.
lag() {
    curl -sf --max-time 2 "$(worker_url "$1")/metrics" |
        awk '$1 ~ /^aw_consumer_lag\{/ { n++; s += $2 } END { print n + 0, s + 0 }'
}

pending_total() {
    local t=0 n
    for aud in 11 12 13; do
        n=$(redis_cmd HLEN "aw:{1001}:a:$aud:p" 2>/dev/null || echo 0)
        t=$((t + ${n:-0}))
    done
    echo "$t"
}

produce_file mparticle.audience "$AW_TEST_DIR/part1.tsv"
consumer worker1
wait_for "worker1 to apply changes (Redis pending > 20)" 60 '[ "$(pending_total)" -gt 20 ]'
note "worker1 is applying ($(pending_total) pending); kill -9"
kill9_service worker1

produce_file mparticle.audience "$AW_TEST_DIR/part2.tsv"
consumer worker2
# The mock broker holds worker1's group slot until its session times out (6 s).
wait_metric worker2 aw_partitions_assigned -gt 0 30
wait_for "worker2 ready (/readyz: Redis answers, group joined)" 20 \
    "curl -sf '$(worker_url worker2)/readyz' | grep -qx ready"
note "kill -9 redis under worker2, produce more, then restart redis"
errors_before=$(worker_metric worker2 aw_store_errors_total) || fail "worker2 has no aw_store_errors_total"
kill9_redis
produce_file mparticle.audience "$AW_TEST_DIR/part3.tsv"
# worker2 notices the outage (aw_store_up 0) and keeps retrying through it: let three failed
# attempts pass (backing off in between) before Redis comes back.
wait_metric worker2 aw_store_up -eq 0 20
wait_metric worker2 aw_store_errors_total -ge $((errors_before + 3)) 30
# Nothing is committed while Redis is down: the lag of part3's records shows.
wait_for "aw_consumer_lag above 0 while Redis is down" 60 '[ "$(lag worker2 | cut -d" " -f2)" -gt 0 ]'
wait_for "worker2 not ready while Redis is down" 20 \
    "curl -s '$(worker_url worker2)/readyz' | grep -q 'not ready: redis'"
curl -sf "$(worker_url worker2)/healthz" >/dev/null || fail "worker2 not live while Redis is down"
restart_redis
service_is_running worker2 || fail "worker2 died while Redis was down (see worker2.log)"
wait_for "worker2 ready again after Redis came back" 30 \
    "curl -sf '$(worker_url worker2)/readyz' | grep -qx ready"

expected="$AW_TEST_DIR/expected.json"
if ! wait_until "python3 '$model' check-redis '$expected' $AW_TEST_REDIS_PORT" 90; then
    python3 "$model" check-redis "$expected" "$AW_TEST_REDIS_PORT" -v || true
    tail -n 20 "$AW_TEST_DIR/worker2.log" >&2
    fail "pending state differs from the model"
fi
note "pending state equals the model"
wait_for "aw_consumer_lag of the 4 partitions back to 0 once drained" 30 '[ "$(lag worker2)" = "4 0" ]'

ndlq=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['dlq']))" "$expected")
consume_topic mparticle.audience.dlq "$ndlq" 60 >"$AW_TEST_DIR/dlq.jsonl" ||
    fail "dead-letter topic has fewer than $ndlq records"
python3 "$model" check-dlq "$expected" "$AW_TEST_DIR/dlq.jsonl" -v ||
    fail "dead-letter records differ from the model"
note "dead-letter topic holds exactly the $ndlq bad records/profiles (with reasons and source headers)"

if grep -E '@example\.com|pk_test_ingest' "$AW_TEST_DIR"/worker*.log; then
    fail "personal data or an API key reached the logs"
fi

stop_worker worker2 20 || fail "worker2 did not exit 0 on SIGTERM"
grep -q 'msg="stopped"' "$AW_TEST_DIR/worker2.log" || fail "worker2 did not drain cleanly"
echo "test_ingest: PASS"
