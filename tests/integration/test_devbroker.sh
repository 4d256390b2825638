#!/usr/bin/env bash
# The dev broker (tests/tools/aw_devbroker.c) does what the worker's integration tests rely on:
# keyed produce/consume with headers over 2 mock brokers, a cooperative-sticky consumer group that
# commits and resumes after its committed offsets, loopback-only listeners and a clean SIGTERM exit.
# Also smoke-tests lib.sh's redis helpers (restart and kill -9 with an append-only file).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_cmd kcat redis-server redis-cli python3 timeout setsid
require_built aw_devbroker

TOPIC=aw.devbroker.test
GROUP=aw-devbroker-test
# The mock coordinator (librdkafka 2.0.2) holds a group in "Joining" for session.timeout.ms - 1 s
# after its last member leaves, so a quick re-join needs a short session timeout (see the report
# in aw_devbroker.c's header).
GROUP_ARGS=(-G "$GROUP" -X partition.assignment.strategy=cooperative-sticky
    -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 -X auto.offset.reset=earliest
    -X enable.auto.commit=true -X auto.commit.interval.ms=200)

start_devbroker --brokers 2 --topic "$TOPIC:3"

# ---- listeners: two brokers, 127.0.0.1 only -------------------------------------------------
[[ $AW_TEST_BROKERS =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] ||
    fail "bootstrap list is not two 127.0.0.1 brokers: $AW_TEST_BROKERS"
python3 - "$AW_TEST_BROKERS" <<'EOF' || fail "a broker port listens beyond 127.0.0.1"
import sys
ports = {int(hp.rsplit(":", 1)[1]) for hp in sys.argv[1].split(",")}
seen = {}
for path in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(path).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        addr, port = f[1].split(":")
        if f[3] == "0A" and int(port, 16) in ports:  # 0A = LISTEN
            seen.setdefault(int(port, 16), set()).add(addr)
for p in ports:
    if seen.get(p) != {"0100007F"}:
        print("port %d listening on %s" % (p, sorted(seen.get(p, []))), file=sys.stderr)
        sys.exit(1)
EOF
bootstrap_file="$AW_TEST_DIR/devbroker.bootstrap"
[ "$(cat "$bootstrap_file")" = "$AW_TEST_BROKERS" ] || fail "bootstrap file differs from stdout"
grep -qx "$AW_TEST_BROKERS" "$AW_TEST_DIR/devbroker.log" || fail "bootstrap list not on stdout"

# ---- 100 keyed records with headers round-trip ----------------------------------------------
input="$AW_TEST_DIR/input.tsv"
for i in $(seq 1 100); do
    printf 'user-%d\t{"seq":%d,"text":"v %d, with tab-free text"}\n' $((i % 10)) "$i" "$i"
done >"$input"
produce_file "$TOPIC" "$input" -H source=devbroker-test -H 'trace=a=b,c' ||
    fail "kcat could not produce to the dev broker"

consume_topic "$TOPIC" 100 20 >"$AW_TEST_DIR/out.json" || fail "records did not come back"
got=$(wc -l <"$AW_TEST_DIR/out.json")
[ "$got" -eq 100 ] || fail "expected exactly 100 records, got $got"
records_kv <"$AW_TEST_DIR/out.json" | sort >"$AW_TEST_DIR/got.tsv"
sort "$input" >"$AW_TEST_DIR/want.tsv"
diff -u "$AW_TEST_DIR/want.tsv" "$AW_TEST_DIR/got.tsv" >&2 || fail "record keys/values differ"

for h in source trace; do
    records_header "$h" <"$AW_TEST_DIR/out.json" | sort | uniq -c >"$AW_TEST_DIR/h.$h"
done
[ "$(cat "$AW_TEST_DIR/h.source")" = "    100 devbroker-test" ] ||
    fail "header source did not round-trip: $(cat "$AW_TEST_DIR/h.source")"
[ "$(cat "$AW_TEST_DIR/h.trace")" = "    100 a=b,c" ] ||
    fail "header trace did not round-trip: $(cat "$AW_TEST_DIR/h.trace")"

# kcat -H prints headers too; the same check through kcat's own formatter.
hcount=$(timeout 15 kcat -b "$AW_TEST_BROKERS" -t "$TOPIC" -C -o beginning -e -q \
    -f '%h\n' | grep -cx 'source=devbroker-test,trace=a=b,c' || true)
[ "$hcount" -eq 100 ] || fail "kcat -f %h shows the headers on $hcount/100 records"

# Keyed partitioning: one partition per key, per-key order kept, more than one partition used.
python3 - "$AW_TEST_DIR/out.json" <<'EOF' || fail "keyed partitioning or per-key order broken"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by_key = {}
for r in recs:
    by_key.setdefault(r["key"], []).append(r)
parts_used = set()
for k, rs in by_key.items():
    parts = {r["partition"] for r in rs}
    if len(parts) != 1:
        sys.exit("key %s spread over partitions %s" % (k, sorted(parts)))
    parts_used |= parts
    seqs = [json.loads(r["payload"])["seq"] for r in sorted(rs, key=lambda r: r["offset"])]
    if seqs != sorted(seqs):
        sys.exit("key %s out of order: %s" % (k, seqs))
if len(by_key) != 10 or len(parts_used) < 2:
    sys.exit("keys=%d partitions used=%s" % (len(by_key), sorted(parts_used)))
EOF

# ---- consumer group: cooperative-sticky, commit, resume ------------------------------------
run_group() { # $1 = output name; prints nothing, leaves JSON lines in $AW_TEST_DIR/$1.json
    timeout 40 kcat -b "$AW_TEST_BROKERS" "${GROUP_ARGS[@]}" -e -J "$TOPIC" \
        >"$AW_TEST_DIR/$1.json" 2>"$AW_TEST_DIR/$1.err" ||
        fail "group consumer $1 failed or timed out: $(tail -n 3 "$AW_TEST_DIR/$1.err")"
}
run_group group1
n1=$(wc -l <"$AW_TEST_DIR/group1.json")
[ "$n1" -eq 100 ] || fail "first group run consumed $n1 records, expected 100"
grep -q 'COOPERATIVE rebalance protocol' "$AW_TEST_DIR/group1.err" ||
    fail "group did not use the cooperative protocol: $(head -n 3 "$AW_TEST_DIR/group1.err")"
records_kv <"$AW_TEST_DIR/group1.json" | sort | diff -q - "$AW_TEST_DIR/want.tsv" >/dev/null ||
    fail "first group run returned different records"

# Ten new records after the commit: the second run must get exactly these and no old one.
for i in $(seq 101 110); do
    printf 'user-%d\t{"seq":%d,"text":"late"}\n' $((i % 10)) "$i"
done >"$AW_TEST_DIR/late.tsv"
produce_file "$TOPIC" "$AW_TEST_DIR/late.tsv" || fail "could not produce the late records"
run_group group2
records_kv <"$AW_TEST_DIR/group2.json" | sort >"$AW_TEST_DIR/group2.tsv"
old=$(grep -c -v '"text":"late"' "$AW_TEST_DIR/group2.tsv" || true)
[ "$old" -eq 0 ] || fail "second group run re-read $old committed record(s)"
sort "$AW_TEST_DIR/late.tsv" | diff -u - "$AW_TEST_DIR/group2.tsv" >&2 ||
    fail "second group run did not resume exactly after the committed offsets"

# ---- clean shutdown --------------------------------------------------------------------------
rc=0
stop_devbroker || rc=$?
[ "$rc" -eq 0 ] || fail "aw_devbroker exited $rc on SIGTERM, expected 0"
[ ! -e "$bootstrap_file" ] || fail "aw_devbroker left its bootstrap file behind"
grep -q 'msg="stopped"' "$AW_TEST_DIR/devbroker.log" || fail "no clean-stop log line"

# Bad usage is refused with exit 2 (replicas > brokers).
rc=0
"$(aw_bin aw_devbroker)" --brokers 1 --topic bad:3:2 >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "aw_devbroker accepted replicas > brokers (exit $rc)"

# ---- redis helpers: restart and kill -9 keep an append-only dataset ----------------------------
start_redis --appendonly yes --appendfsync always
[ "$AW_TEST_REDIS_URL" = "redis://127.0.0.1:$AW_TEST_REDIS_PORT/0" ] || fail "bad AW_TEST_REDIS_URL"
port_before=$AW_TEST_REDIS_PORT
[ "$(redis_cmd set aw:smoke before-restart)" = OK ] || fail "redis SET failed"
restart_redis
[ "$AW_TEST_REDIS_PORT" = "$port_before" ] || fail "restart_redis changed the port"
[ "$(redis_cmd get aw:smoke)" = before-restart ] || fail "value lost across a graceful restart"
[ "$(redis_cmd set aw:smoke2 before-kill)" = OK ] || fail "redis SET failed"
kill9_redis
service_is_running redis && fail "redis still running after kill9_redis"
redis_cmd ping >/dev/null 2>&1 && fail "redis still answers after kill9_redis"
restart_redis
[ "$(redis_cmd get aw:smoke2)" = before-kill ] || fail "value lost across kill -9 (appendfsync always)"
rc=0
stop_redis || rc=$?
[ "$rc" -eq 0 ] || fail "redis-server exited $rc on SIGTERM"

echo "test_devbroker: all checks passed"
