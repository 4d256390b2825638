#!/usr/bin/env bash
# test_dlq_stall.sh -- "acknowledged means done" for dead letters (docs/decisions.md): the
# dead-letter topic's broker is stalled past the worker's confirmation timeout, then recovers.
# While it is stalled, no offset passes a record whose dead letter was not confirmed (the
# worker rewinds); the worker is killed with -9 while its dead letters sit unconfirmed in the
# producer's queue; after the broker recovers, a new worker delivers every dead letter exactly
# as the input implies and stores every offset.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat python3 curl
IN=mparticle.audience
DLQ=mparticle.audience.dlq

start_redis
# The input on broker 1, the dead-letter topic on broker 2, which SIGUSR1 stalls.
start_devbroker --brokers 2 --topic "$IN:1" --topic "$DLQ:1" --leader "$IN:1" --leader "$DLQ:2" \
    --stall-broker 2

# 12 records on one partition: a valid subscription message, then a bad record, six times.
python3 - "$AW_TEST_DIR/records.tsv" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(6):
        good = {"type": "audience_subscription_request", "id": "sub-%d" % i,
                "timestamp_ms": 1714592744000 + i,
                "account": {"account_id": 7001, "account_settings": {"apiKey": "pk_stall_test"}},
                "audience_id": 70 + i, "audience_name": "Stall %d" % i, "action": "add"}
        f.write("good-%d\t%s\n" % (i, json.dumps(good)))
        f.write("bad-%d\tthis is not json %d {\n" % (i, i))
PY

consumer() {
    start_worker "$1" AW_LEADER_ENABLED=false AW_CONSUMER_BATCH_MAX=50
}

consumer worker1
wait_metric worker1 aw_partitions_assigned -gt 0 30
kill -USR1 "$(service_pid devbroker)"
note "dead-letter broker stalled; producing 6 good and 6 bad records"
produce_file "$IN" "$AW_TEST_DIR/records.tsv"
# The first dead letter cannot be confirmed: its record and everything after it on the
# partition are rewound, again and again, and never stored.
wait_metric worker1 aw_records_rewound_total -ge 11 90
for _ in 1 2 3 4 5 6 7 8 9 10; do
    done_now=$(worker_metric worker1 aw_records_done_total) || done_now=0
    [ "$done_now" -le 1 ] ||
        fail "worker1 stored $done_now offsets while the dead letter of record 2 was unconfirmed"
    sleep 0.5
done
note "no offset passed the unconfirmed dead letter; kill -9 worker1"
kill9_service worker1

kill -USR2 "$(service_pid devbroker)"
note "dead-letter broker back"
consumer worker2
wait_metric worker2 aw_records_done_total -ge 11 60

consume_topic "$DLQ" 6 60 >"$AW_TEST_DIR/dlq.jsonl" || fail "fewer than 6 dead letters"
python3 - "$AW_TEST_DIR/dlq.jsonl" <<'PY' || fail "dead letters differ from the input"
import json, sys
got = set()
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        h = r.get("headers") or []
        hd = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        assert hd.get("aw.reason") == "not_json" and hd.get("aw.stage") == "decode", hd
        got.add(r["payload"])
want = {"this is not json %d {" % i for i in range(6)}
assert got == want, (sorted(got), sorted(want))
PY
stop_worker worker2 20 || fail "worker2 did not exit 0 on SIGTERM"
echo "test_dlq_stall: PASS"
