#!/usr/bin/env bash
# test_memory.sh -- issue "Store v2", item 5: the store's memory is bounded.
#  a. Retention (tests/tools/aw_memory_test, retention 2 s set through struct aw_store_config):
#     a user's state is kept while pending, expires once flushed and the retention passed, and
#     Redis's used_memory returns to its baseline (the tool states the tolerance and why).
#  b. A full Redis: `maxmemory` set low (noeviction) in the middle of the input. Ingest pauses
#     (records not done, the "redis is full" WARN line, Redis counts OOM errors; no metric says
#     "full": aw_records_rewound_total rises), the leader drains (its takes and acks must work on
#     a full Redis: they free memory), ingest resumes by itself and Klaviyo ends with exactly what
#     the input implies: nothing lost. The limit must hold the users' state kept after their
#     flush (AW_STATE_RETENTION_S): draining frees only what is pending.
# Bounded: a. ~15 s, b. ~1 min.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw_memory_test aw-worker aw_devbroker
require_cmd kcat redis-cli python3 curl
start_redis

note "a. retention and used_memory"
AW_TEST_REDIS_URL=$AW_TEST_REDIS_URL timeout 120 "$(aw_bin aw_memory_test)" >"$AW_TEST_DIR/a.out" 2>&1 ||
    { grep -v '^ts=' "$AW_TEST_DIR/a.out" >&2; fail "aw_memory_test failed"; }
grep -v '^ts=' "$AW_TEST_DIR/a.out" | sed 's/^/#   /' >&2

note "b. maxmemory mid-ingest"
redis_cmd flushall >/dev/null
redis_cmd config resetstat >/dev/null
start_devbroker --topic mparticle.audience:2 --topic mparticle.audience.dlq:1
start_klaviyo_sim --job-delay 0.05
PART1=400
PART2=1600
python3 - "$AW_TEST_DIR" "$PART1" "$PART2" <<'PY'
import json, sys
out, part1, part2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def record(i):
    attrs = [{"key": "$FirstName", "value": "Mem", "action": "upsert"},
             {"key": "$LastName", "value": "Number %d" % i, "action": "upsert"},
             {"key": "$City", "value": "London", "action": "upsert"},
             {"key": "tier", "value": ["gold", "silver"][i % 2], "action": "upsert"}]
    m = {"type": "audience_membership_change_request", "id": "mem-%d" % i,
         "timestamp_ms": 1764288000000 + i, "firehose_version": "3.2.0",
         "account": {"account_id": 7101, "account_settings": {"apiKey": "pk_memory"}},
         "user_profiles": [{"mpid": str(500000 + i),
                            "user_identities": [{"type": "email", "encoding": "raw",
                                                 "value": "m%d@example.com" % i}],
                            "audiences": [{"audience_id": 70 + a, "audience_name": "Memory %d" % a,
                                           "action": "add", "user_attributes": attrs}
                                          for a in (1, 2, 3, 4)]}]}
    return "k%d\t%s\n" % (i, json.dumps(m, separators=(",", ":")))
with open(out + "/part1.tsv", "w") as f:
    f.writelines(record(i) for i in range(part1))
with open(out + "/part2.tsv", "w") as f:
    f.writelines(record(i) for i in range(part1, part1 + part2))
PY
total=$((PART1 + PART2))
# Due 8 s after a stream's first pending change or last upload (never by size): part 1 is
# ingested before, Redis is full before the first flush.
start_worker worker AW_FLUSH_MAX_QUEUE=100000 AW_FLUSH_MAX_AGE_S=8 AW_CONSUMER_BATCH_MAX=50 \
    AW_KLAVIYO_RETRY_BASE_MS=50 AW_KLAVIYO_RETRY_MAX_MS=500
used_memory() { redis_cmd info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
base=$(used_memory)
produce_file mparticle.audience "$AW_TEST_DIR/part1.tsv"
wait_metric worker aw_records_done_total -eq "$PART1" 20
used=$(used_memory)
# What is kept per user after its flush (its state, for AW_STATE_RETENTION_S: acks do not
# free it) and what its pending entries add (five streams, four audiences and the profiles:
# a hash entry and a queue element each).
# The limit holds what Redis holds now plus everyone's kept state, with room to spare, but
# not part 2 pending: ingest fills it, and only the leader's draining makes room again.
kept_b=0
for i in 0 1 2 3 4 5 6 7 8 9; do
    kept_b=$((kept_b + $(redis_cmd memory usage "aw:{7101}:u:m$i@example.com" samples 0)))
done
kept_b=$((kept_b / 10 + 96)) # + its entries in the keyspace and expires dicts
streams_b=0
for k in a:71:p a:71:q a:72:p a:72:q a:73:p a:73:q a:74:p a:74:q p:p p:q; do
    streams_b=$((streams_b + $(redis_cmd memory usage "aw:{7101}:$k" samples 0)))
done
streams_b=$((streams_b / PART1))
# Everyone's state kept, and half of what separates it from everyone pending to spare (less
# 64 KB later, see below).
limit=$((used - PART1 * (kept_b + streams_b) + total * kept_b + total * streams_b / 2))
[ "$limit" -lt $((used + PART2 * (kept_b + streams_b) - total * streams_b / 4)) ] ||
    fail "test design: maxmemory $limit would hold most of part 2 pending (used $used, state" \
        "$kept_b, entries $streams_b bytes a user)"
redis_cmd config set maxmemory-policy noeviction >/dev/null
redis_cmd config set maxmemory "$limit" >/dev/null
note "part 1 ingested: used_memory $used (from $base; a user's state $kept_b bytes, its" \
    "pending entries $streams_b), maxmemory now $limit"
produce_file mparticle.audience "$AW_TEST_DIR/part2.tsv"

# Ingest pauses: Redis refuses its writes (OOM), the worker says so and re-reads those records.
wait_for "the worker's \"redis is full\" WARN line" 30 \
    "grep -q 'level=warn mod=ingest msg=\"redis is full' '$AW_TEST_DIR/worker.log'"
oom=$(redis_cmd info errorstats | tr -d '\r' | sed -n 's/^errorstat_OOM:count=\([0-9]*\).*/\1/p')
[ "${oom:-0}" -gt 0 ] || fail "Redis counted no OOM error"
rewound=$(worker_metric worker aw_records_rewound_total)
[ "$rewound" -gt 0 ] || fail "no record re-read while Redis was full (aw_records_rewound_total $rewound)"
[ "$(worker_metric worker aw_store_full)" = 1 ] || fail "aw_store_full is not 1 while Redis is full"
done_at_pause=$(worker_metric worker aw_records_done_total)
[ "$done_at_pause" -lt "$total" ] || fail "every record was done although Redis was full"
note "ingest paused: $oom OOM errors in Redis, $rewound records re-read, $done_at_pause of $total done"
# The leader drains on a full Redis: with the limit at half of what Redis holds, nothing that
# grows memory runs but the leader's scripts (allow-oom), which take, upload and ack every
# stream; Redis stays over its limit all along (the users' kept state alone exceeds it).
full=$(used_memory)
low=$((full / 2))
redis_cmd config set maxmemory "$low" >/dev/null
[ "$(redis_cmd hlen 'aw:{7101}:a:71:f')" = 0 ] || fail "test design: a flush started before Redis was full"
drained() {
    local k
    for k in a:71 a:72 a:73 a:74 p; do
        [ "$(redis_cmd hlen "aw:{7101}:$k:p")" = 0 ] && [ "$(redis_cmd hlen "aw:{7101}:$k:f")" = 0 ] ||
            return 1
    done
}
wait_for "the leader to drain every stream on a Redis over its limit" 40 drained
over=$(used_memory)
[ "$over" -gt "$low" ] || fail "test design: Redis fell below its limit ($over <= $low) while draining"
[ "$over" -lt $((full - done_at_pause * streams_b / 2)) ] ||
    fail "draining freed too little: used_memory $full before, $over after"
note "drained while over the limit: used_memory $full -> $over, maxmemory $low"
# Room again (the limit computed above, less 64 KB): ingest resumes by itself, pauses and resumes
# as often as it fills Redis before the leader's next flush.
limit=$((limit - 64 * 1024))
redis_cmd config set maxmemory "$limit" >/dev/null

# Everything arrives.
if ! wait_until '[ "$(worker_metric worker aw_records_done_total)" -eq '"$total"' ]' 90; then
    note "used_memory $(used_memory), maxmemory $limit, pending" \
        "$(redis_cmd hlen 'aw:{7101}:a:71:p') (audience 71) $(redis_cmd hlen 'aw:{7101}:p:p') (profiles)"
    fail "$(worker_metric worker aw_records_done_total) of $total records done after 90 s"
fi
[ "$(worker_metric worker aw_store_full)" = 0 ] || fail "aw_store_full still 1 after ingest resumed"
expected_members() {
    python3 - "$AW_TEST_KLAVIYO_URL" "$total" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1] + "/_sim/state", timeout=10))
n = int(sys.argv[2])
want = {"m%d@example.com" % i for i in range(n)}
lists = {l["name"]: set(l["member_emails"]) for l in s["lists"]}
by_email = {p["email"]: p for p in s["profiles"] if p.get("email")}
ok = all(lists.get("Memory %d" % a) == want for a in (1, 2, 3, 4))
for i in range(n):  # each profile's attributes, from the same records
    p = by_email.get("m%d@example.com" % i) or {}
    ok = ok and p.get("first_name") == "Mem" and p.get("last_name") == "Number %d" % i \
        and (p.get("properties") or {}).get("tier") == ["gold", "silver"][i % 2]
sys.exit(0 if ok else 1)
PY
}
if ! wait_until expected_members 90; then
    curl -sf "$AW_TEST_KLAVIYO_URL/_sim/state" | python3 -c 'import json, sys
s = json.load(sys.stdin)
print({l["name"]: len(l["member_emails"]) for l in s["lists"]})' >&2
    fail "Klaviyo's lists and profiles do not hold the $total users of the input"
fi
wait_for "Redis to hold nothing pending or in flight" 30 \
    '[ -z "$(redis_cmd --scan --pattern "aw:{7101}:*:[pqf]")" ]'
oom_end=$(redis_cmd info errorstats | tr -d '\r' | sed -n 's/^errorstat_OOM:count=\([0-9]*\).*/\1/p')
note "drained: the 4 lists hold the $total users; Redis refused ${oom_end:-0} writes in all," \
    "used_memory $(used_memory) (maxmemory $limit)"
grep -q 'level=error' "$AW_TEST_DIR/worker.log" && {
    grep 'level=error' "$AW_TEST_DIR/worker.log" | head -n 5 >&2
    fail "the worker logged an ERROR while Redis was full"
}
note "ok"
