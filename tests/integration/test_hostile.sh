#!/usr/bin/env bash
# test_hostile.sh -- hostile inputs through a live worker (consumer only), the dev broker and
# redis-server: every invalid-event fixture, every mapping case, and crafted classes (sizes,
# encodings, API keys, emails at every edge, phones of every shape, bad mappings, long and
# quoted audience names) on one partition, then a sentinel. Each record must give exactly the
# dead letters its case names (stage and reason) and every change it names must be pending in
# Redis (hostile.py is the oracle); the worker stays up, reads every record and the sentinel,
# and stores the final offset.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat python3 curl redis-cli
IN=mparticle.audience
DLQ=mparticle.audience.dlq
oracle="$AW_SOURCE_DIR/tests/integration/hostile.py"

start_redis
start_devbroker --topic "$IN:1" --topic "$DLQ:1"
n=$(python3 "$oracle" gen "$AW_TEST_DIR/records.bin" "$AW_TEST_DIR/expect.json")
timeout 60 kcat -b "$AW_TEST_BROKERS" -t "$IN" -P -K $'\x1f' -D $'\x1e' \
    -X message.timeout.ms=20000 -X message.max.bytes=4000000 <"$AW_TEST_DIR/records.bin" ||
    fail "producing the hostile records"
got=$(kcat -b "$AW_TEST_BROKERS" -Q -t "$IN:0:-1" 2>/dev/null | awk '{print $NF}')
[ "$got" = "$n" ] || fail "test design: $got of $n records reached the topic"
ndl=$(python3 -c 'import json, sys; print(sum(len(e["dl"]) for e in json.load(open(sys.argv[1]))))' \
    "$AW_TEST_DIR/expect.json")

start_worker w1 AW_LEADER_ENABLED=false
wait_metric w1 aw_records_done_total -ge "$n" 120
consume_topic "$DLQ" "$ndl" 60 >"$AW_TEST_DIR/dlq.jsonl" ||
    fail "fewer than $ndl dead letters arrived"
curl -sf "$(worker_url w1)/healthz" >/dev/null || fail "the worker is not live after the hostile inputs"
curl -sf "$(worker_url w1)/readyz" >/dev/null || fail "the worker is not ready after the hostile inputs"
python3 "$oracle" check "$AW_TEST_DIR/expect.json" "$AW_TEST_DIR/dlq.jsonl" \
    redis-cli -h 127.0.0.1 -p "$AW_TEST_REDIS_PORT" | tee "$AW_TEST_DIR/oracle.txt" ||
    fail "hostile inputs: outcomes differ from the cases (see above)"
stop_worker w1 || fail "the worker did not exit 0 on SIGTERM after the hostile inputs"
note "$(tail -n 1 "$AW_TEST_DIR/oracle.txt"); $ndl dead letters"
echo "test_hostile: PASS"
