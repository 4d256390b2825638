#!/usr/bin/env bash
# test_cluster.sh -- issue "Store v2", item 4: the worker on a real Redis Cluster (3 masters).
#  a. Twelve accounts spread over the three shards are ingested through the dev broker by two
#     consumer-only replicas while the slots of four of them (weighted with ballast keys, so
#     each stays in migration a while) move from one master to another and back, again and
#     again (redis-cli --cluster reshard), and every client connection of one master is killed
#     once. Then one more change arrives while its slot is held half migrated by hand (its
#     audience's keys moved, its user's not): it must wait, untouched, until the slot has moved.
#     The pending state then read from the cluster must equal an independent model of the input
#     (cluster_model.py): no change lost, none applied out of order (each pending entry is the
#     newest membership; each profile the newest attributes).
#  b. A leader replica flushes everything to the Klaviyo simulator while those slots move once
#     more; Klaviyo's lists and profiles must equal the model; `aw-worker status` reads the
#     cluster (lease held, every audience drained).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat redis-server redis-cli python3 curl
model="$AW_SOURCE_DIR/tests/integration/cluster_model.py"
worker=$(aw_bin aw-worker)
MOVE_SLOTS=400 # the lowest slots of the master serving slot 0: they move back and forth
python3 "$model" gen "$AW_TEST_DIR" "${AW_TEST_SEED:-20261201}" "$MOVE_SLOTS"
expected="$AW_TEST_DIR/expected.json"
jq_py() { python3 -c "import json,sys; e=json.load(open(sys.argv[1])); print($1)" "$expected"; }

start_redis_cluster 3
start_devbroker --brokers 2 --topic mparticle.audience:4 --topic mparticle.audience.dlq:1

# The model's slot function against the cluster's own (CLUSTER KEYSLOT), for every account.
for a in $(jq_py '" ".join(e["accounts"])'); do
    want=$(jq_py "e['slots']['$a']")
    got=$(cluster_cmd CLUSTER KEYSLOT "aw:{$a}:acct")
    [ "$got" = "$want" ] || fail "account $a: CLUSTER KEYSLOT says $got, the model $want"
done
src=$(cluster_slot_port 0) || fail "no master serves slot 0"
dst=$(cluster_slot_port 16383) || fail "no master serves slot 16383"
[ "$src" != "$dst" ] || fail "slots 0 and 16383 on one master"
moving=$(jq_py '" ".join(e["moving"])')
for a in $moving; do
    [ "$(cluster_key_port "aw:{$a}:acct")" = "$src" ] || fail "account $a is not on the master of slot 0"
done

# Ballast in the moving accounts' slots (same hash tag, names the worker never uses): moved one
# key per MIGRATE, it keeps each slot in its migrating state long enough for the workers' scripts
# on those accounts to run into it.
for a in $moving; do
    python3 -c 'import sys
for i in range(int(sys.argv[2])): print("SET aw:{%s}:ballast:%d x" % (sys.argv[1], i))' "$a" 1500 |
        redis-cli -h 127.0.0.1 -p "$src" --pipe >/dev/null || fail "cannot write ballast keys"
done

consumer() { # NAME: a consumer-only replica, small batches (many pipelines), short timeouts;
    # streams are due 1 s after their first change (the due time is set at ingest)
    start_worker "$1" AW_LEADER_ENABLED=false AW_CONSUMER_BATCH_MAX=20 AW_REDIS_TIMEOUT_MS=1000 \
        AW_REDIS_CONNECT_TIMEOUT_MS=500 AW_FLUSH_MAX_AGE_S=1 AW_LOG_LEVEL=info
}
consumer consumer-1
consumer consumer-2

# ---- a. ingest while slots move ------------------------------------------------------------
nrec=$(jq_py 'e["records"]')
start_service producer bash -c "python3 '$model' pace '$AW_TEST_DIR/input.tsv' 14 |
    timeout 60 kcat -b '$AW_TEST_BROKERS' -t mparticle.audience -P -K \$'\\t' -X message.timeout.ms=10000"
done_total() {
    echo $(($(worker_metric consumer-1 aw_records_done_total || echo 0) +
        $(worker_metric consumer-2 aw_records_done_total || echo 0)))
}
moving_pending() { # pending entries of the moving accounts, read through the cluster
    local t=0 a k n
    for a in $moving; do
        for k in 1 2; do
            n=$(cluster_cmd HLEN "aw:{$a}:a:$a$k:p" 2>/dev/null) || n=0
            t=$((t + ${n:-0}))
        done
    done
    echo "$t"
}
wait_for "the moving accounts to have pending changes" 30 '[ "$(moving_pending)" -gt 10 ]'

# Slots move there and back for as long as the producer runs (it ends within 60 s).
rounds=0 killed=0 during=0
while service_is_running producer || [ "$rounds" -lt 2 ]; do
    before=$(done_total)
    reshard_cluster "$src" "$dst" "$MOVE_SLOTS" --cluster-pipeline 1
    for a in $moving; do
        [ "$(cluster_key_port "aw:{$a}:acct")" = "$dst" ] || fail "account $a did not move to $dst"
    done
    if [ "$killed" = 0 ]; then
        # Every client connection of the third master goes: the workers must reconnect.
        other=$(cluster_slot_port 8000)
        n=$(redis-cli -h 127.0.0.1 -p "$other" CLIENT KILL TYPE normal)
        note "killed $n client connection(s) of 127.0.0.1:$other"
        killed=1
    fi
    reshard_cluster "$dst" "$src" "$MOVE_SLOTS" --cluster-pipeline 1
    after=$(done_total)
    rounds=$((rounds + 1))
    during=$((during + after - before))
    note "round $rounds: $((after - before)) records done while the slots moved there and back"
done
stop_service producer TERM 5 || fail "the producer failed (see producer.log)"
[ "$during" -gt 0 ] || fail "no record was done while slots moved"

wait_for "every record to be done" 60 '[ "$(done_total)" -ge $nrec ]'

# ---- a.2 one change while its slot is held half migrated ------------------------------------
# Its user's hash stays on the old master, its audience's pending entries are already on the new
# one: a script run now would stop half-way (the user's version written, the entry not). The
# worker must wait (TRYAGAIN) and apply the change once the slot has moved.
late_acct=$(jq_py 'e["late"]["account"]')
late_aud=$(jq_py 'e["late"]["audience"]')
ukey="aw:{$late_acct}:u:$(jq_py 'e["late"]["email"]')"
want_before=$(jq_py 'e["late"]["version_before"] or ""')
lslot=$(jq_py "e['slots']['$late_acct']")
[ "$(cluster_slot_port "$lslot")" = "$src" ] || fail "slot $lslot is not back on $src"
# The newest version of the input is there: nothing but the late change may write it again.
wait_for "the user's newest membership version before the late change" 30 \
    '[ "$(cluster_cmd HGET "$ukey" "m:$late_aud")" = "$want_before" ]'
refused() { # TRYAGAIN and ERR replies of the old master so far
    redis-cli -h 127.0.0.1 -p "$src" INFO errorstats |
        sed -n 's/^errorstat_\(TRYAGAIN\|ERR\):count=\([0-9]*\).*/\2/p' | awk '{ t += $1 } END { print t + 0 }'
}
cluster_slot_open "$lslot" "$src" "$dst"
cluster_slot_migrate_keys "$src" "$dst" "aw:{$late_acct}:a:$late_aud:p" "aw:{$late_acct}:a:$late_aud:q"
r0=$(refused)
produce_file mparticle.audience "$AW_TEST_DIR/late.tsv"
wait_for "a worker to try the late change on the half-migrated slot" 30 '[ "$(refused)" -ge $((r0 + 3)) ]'
now=$(redis-cli -h 127.0.0.1 -p "$src" HGET "$ukey" "m:$late_aud")
[ "$now" = "$want_before" ] ||
    fail "a script ran half-way on the migrating slot: the user's version is now '$now'"
note "the late change waits while slot $lslot is half migrated ($(($(refused) - r0)) refusals)"
cluster_slot_close "$lslot" "$src" "$dst"

# The late change is in the model: once it is applied, everything must be as the input says.
if ! wait_until "python3 '$model' check-redis '$expected' $AW_TEST_REDIS_PORT" 30; then
    python3 "$model" check-redis "$expected" "$AW_TEST_REDIS_PORT" -v || true
    fail "the pending state in the cluster differs from the model"
fi
note "pending state in the cluster equals the model ($nrec + 1 records, $rounds reshard rounds)"
# The workers' commands did meet the migrations: the masters answered ASK or TRYAGAIN.
met=0
for p in $AW_TEST_REDIS_CLUSTER_PORTS; do
    for e in ASK TRYAGAIN; do
        n=$(redis-cli -h 127.0.0.1 -p "$p" INFO errorstats | sed -n "s/^errorstat_$e:count=\([0-9]*\).*/\1/p")
        met=$((met + ${n:-0}))
    done
done
note "the masters answered ASK or TRYAGAIN $met time(s) during the migrations"
[ "$met" -gt 0 ] || fail "no command met a migrating slot: the test did not test that"

# Data really is spread: the accounts' keys live on at least two masters.
shards=$(for a in $(jq_py '" ".join(e["accounts"])'); do cluster_key_port "aw:{$a}:acct"; done | sort -u | wc -l)
[ "$shards" -ge 2 ] || fail "the accounts' data is on $shards master(s)"
for p in $AW_TEST_REDIS_CLUSTER_PORTS; do
    [ "$(redis-cli -h 127.0.0.1 -p "$p" DBSIZE)" -gt 0 ] || fail "master $p holds no keys"
done
note "data on $shards masters"

# ---- b. a leader flushes to Klaviyo --------------------------------------------------------
start_klaviyo_sim --job-delay 0.1 --check-responses
start_worker leader AW_FLUSH_MAX_AGE_S=1 AW_CONSUMER_BATCH_MAX=20 AW_KLAVIYO_RETRY_BASE_MS=50 \
    AW_KLAVIYO_RETRY_MAX_MS=1000
wait_metric leader aw_leader -eq 1 30
wait_for "the leader's first bulk import job at Klaviyo" 60 sim_eval "'s[\"jobs\"]'"
reshard_cluster "$src" "$dst" "$MOVE_SLOTS" --cluster-pipeline 1
if ! wait_until "python3 '$model' check-klaviyo '$expected' '$AW_TEST_KLAVIYO_URL'" 90; then
    python3 "$model" check-klaviyo "$expected" "$AW_TEST_KLAVIYO_URL" -v || true
    fail "Klaviyo did not reach the state the input implies"
fi
note "Klaviyo's lists and profiles equal the model"

status() { AW_REDIS_URL="$AW_TEST_REDIS_URL" "$worker" status >"$AW_TEST_DIR/status.txt" 2>"$AW_TEST_DIR/status.err"; }
drained() { # every stream in the status drained (lists and profiles)
    status && ! grep -E '^(audience|profiles) ' "$AW_TEST_DIR/status.txt" | grep -vq ' pending=0 inflight=0 '
}
status || { cat "$AW_TEST_DIR/status.err" >&2; fail "aw-worker status failed on the cluster"; }
grep -q '^lease held=true .* accounts=12$' "$AW_TEST_DIR/status.txt" ||
    fail "status: $(head -n 1 "$AW_TEST_DIR/status.txt"), want the lease held and 12 accounts"
naud=$(grep -c '^audience ' "$AW_TEST_DIR/status.txt" || true)
[ "$naud" -eq 24 ] || fail "status lists $naud audiences, want 24"
wait_for "aw-worker status to show every stream drained" 20 drained
note "aw-worker status reads the cluster: lease held, 24 audiences and 12 profile streams drained"

if grep -E 'example\.org|pk_cluster' "$AW_TEST_DIR"/consumer-*.log "$AW_TEST_DIR"/leader.log; then
    fail "personal data or an API key reached the logs"
fi
for w in consumer-1 consumer-2 leader; do
    stop_worker "$w" || fail "$w did not exit 0 on SIGTERM"
done
echo "test_cluster: PASS"
