#!/usr/bin/env bash
# soak.sh -- the chaos soak: three replicas, redis-server (AOF, appendfsync always), the dev
# broker (2 brokers) and the Klaviyo simulator, while faults are injected together, then an
# independent oracle (soak_model.py, written from docs/design.md) compares Klaviyo's final state.
#
#   tests/soak/soak.sh [short|long|cluster]
#                 short (default, in ctest): ~2,400 messages in 6 waves
#                 long: AW_SOAK_MINUTES (30) of waves, 20,000+ messages
#                 cluster (in ctest): as short, on a 3-master Redis Cluster whose slots are
#                 resharded back and forth where the other profiles kill Redis
#   AW_SOAK_MESSAGES, AW_SOAK_WAVES, AW_SOAK_SEED override the profile.
#
# Each wave is produced while a replica or the leader is killed (kill -9) and restarted, the
# leader is frozen past its lease (SIGSTOP) and thawed, Redis is killed and restarted, a broker
# goes down and up, and the simulator answers with 5xx, 429 storms, slow answers, answers lost
# after apply, jobs finishing late and out of order. Then the faults stop, the backlog drains,
# an audience is removed and added again, and the oracle checks: members per list, exactly one
# list per audience, profile attributes and consent, dead letters by reason, no request before
# its Retry-After, no response outside the spec. It prints the counts (all must be 0).
set -euo pipefail
AW_TEST_NAME=${AW_TEST_NAME:-soak}
source "$(dirname "$0")/../integration/lib.sh"

profile=${1:-short}
case $profile in
short | cluster) msgs=${AW_SOAK_MESSAGES:-2400} waves=${AW_SOAK_WAVES:-6} wave_s=0 ;;
long)
    minutes=${AW_SOAK_MINUTES:-30}
    waves=${AW_SOAK_WAVES:-$((minutes * 60 / 20))}
    msgs=${AW_SOAK_MESSAGES:-$((waves * 250))}
    wave_s=$((minutes * 60 / waves)) # each wave lasts at least this: the run spans the minutes
    ;;
*) fail "usage: soak.sh [short|long|cluster]" ;;
esac
seed=${AW_SOAK_SEED:-$RANDOM}
require_built aw-worker aw_devbroker
require_cmd kcat redis-cli python3 curl
model="$AW_SOURCE_DIR/tests/soak/soak_model.py"
python3 "$model" gen "$AW_TEST_DIR" "$seed" "$msgs" "$waves" >/dev/null
expected="$AW_TEST_DIR/expected.json"
note "soak $profile: $msgs messages in $waves waves, seed $seed (AW_SOAK_SEED=$seed reruns it)"

IN=mparticle.audience
DLQ=mparticle.audience.dlq
LEASE_MS=3000
if [ "$profile" = cluster ]; then
    start_redis_cluster 3
    read -r -a masters <<<"$AW_TEST_REDIS_CLUSTER_PORTS"
else
    start_redis --appendonly yes --appendfsync always
fi
start_devbroker --brokers 2 --topic "$IN:6" --topic "$DLQ:1" --stall-broker 2
start_klaviyo_sim --job-delay 0.2 --check-responses
sim_control config '{"job_jitter_s": 0.5}'
replicas=(replica-1 replica-2 replica-3)
replica() {
    start_worker "$1" AW_FLUSH_MAX_QUEUE=100 AW_FLUSH_MAX_AGE_S=2 AW_KLAVIYO_RETRY_BASE_MS=50 \
        AW_KLAVIYO_RETRY_MAX_MS=1000 AW_CONSUMER_BATCH_MAX=100 AW_LEASE_TTL_MS=$LEASE_MS
}
for r in "${replicas[@]}"; do replica "$r"; done

declare -A faults=()
count() { faults[$1]=$((${faults[$1]:-0} + 1)); }
current_leader() { leader_of "${replicas[@]}" 2>/dev/null || true; }
ensure_running() {
    local r
    for r in "${replicas[@]}"; do
        service_is_running "$r" && continue
        [ -z "${AW_SVC_PID[$r]:-}" ] || _aw_reap "$r" || true
        replica "$r"
    done
}
klaviyo_faults() { # a different mix each wave
    local w=$1
    case $((w % 4)) in
    0) sim_control faults '{"error_rate_5xx": 0.15, "status": 503, "drop_after_apply": {"rate": 0.05}}' ;;
    1) sim_control faults '{"storm_429": {"count": 12, "retry_after": 1}, "slow_ms": 150}' ;;
    2) sim_control faults '{"drop_after_apply": {"rate": 0.1}, "error_rate_5xx": 0.05, "error_after_apply": true, "status": 502}' ;;
    3) sim_control faults '{"drop_connections": 5, "storm_429": {"count": 6, "retry_after": 2}}' ;;
    esac
    count "klaviyo_mix_$((w % 4))"
}

for w in $(seq 1 "$waves"); do
    wave_end=$((SECONDS + wave_s))
    klaviyo_faults "$w"
    produce_file "$IN" "$AW_TEST_DIR/wave-$w.tsv" || fail "producing wave $w"
    sleep 1
    case $((w % 5)) in
    1)
        victim=${replicas[$((RANDOM % 3))]}
        note "wave $w: kill -9 $victim"
        kill9_service "$victim"
        count kill9_replica
        sleep 1
        ;;
    2)
        l=$(current_leader)
        if [ -n "$l" ]; then
            note "wave $w: kill -9 the leader ($l)"
            kill9_service "$l"
            count kill9_leader
        fi
        ;;
    3)
        l=$(current_leader)
        if [ -n "$l" ]; then
            note "wave $w: SIGSTOP the leader ($l) past its lease"
            kill -STOP -- "-$(service_pid "$l")"
            sleep $((LEASE_MS / 1000 + 2))
            kill -CONT -- "-$(service_pid "$l")"
            count sigstop_leader
        fi
        ;;
    4)
        if [ "$profile" = cluster ]; then
            # each account's slot moves to the next master while the replicas work on it
            for a in 5001 5002 5003 5004; do
                slot=$(redis-cli -h 127.0.0.1 -p "${masters[0]}" CLUSTER KEYSLOT "aw:{$a}:acct")
                src=$(cluster_key_port "aw:{$a}:acct")
                for i in 0 1 2; do [ "${masters[$i]}" = "$src" ] && dst=${masters[$(((i + 1) % 3))]}; done
                cluster_slot_open "$slot" "$src" "$dst"
                cluster_slot_close "$slot" "$src" "$dst"
                count reshard_slot
            done
            note "wave $w: the 4 accounts' slots moved to the next master"
        else
            note "wave $w: kill -9 redis, restart"
            kill9_service redis
            sleep 1
            _aw_redis_launch
            count kill9_redis
        fi
        ;;
    0)
        note "wave $w: broker 2 down for 3 s"
        kill -USR1 "$(service_pid devbroker)"
        sleep 3
        kill -USR2 "$(service_pid devbroker)"
        count broker_down
        ;;
    esac
    sleep 2
    ensure_running
    while [ "$SECONDS" -lt "$wave_end" ]; do sleep 1; done
done

sim_control faults '{}'
ensure_running
note "faults stopped: $(for k in "${!faults[@]}"; do printf '%s=%s ' "$k" "${faults[$k]}"; done)"
drained() { python3 "$model" check "$AW_TEST_KLAVIYO_URL" "$expected.pre" >/dev/null 2>&1; }
# The removal phase needs the backlog drained first (pending changes are what a removal drops).
python3 - "$expected" "$expected.pre" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
# before the removal phase: the removed audience's late users are not there yet
late = {"s5001-u101@example.net", "s5001-u102@example.net", "s5001-u103@example.net"}
e["lists"] = {k: [m for m in v if m not in late] for k, v in e["lists"].items()}
for k in ("names", "props", "consent"):
    e[k] = {m: v for m, v in e[k].items() if m not in late}
json.dump(e, open(sys.argv[2], "w"))
PY
if ! wait_until drained 300; then
    python3 "$model" check "$AW_TEST_KLAVIYO_URL" "$expected.pre" -v || true
    fail "the backlog did not drain to the model within 300 s"
fi
note "backlog drained to the model; removal phase"
produce_file "$IN" "$AW_TEST_DIR/remove.tsv" || fail "producing the removal phase"
if ! wait_until "python3 '$model' check '$AW_TEST_KLAVIYO_URL' '$expected'" 120; then
    python3 "$model" check "$AW_TEST_KLAVIYO_URL" "$expected" -v || true
    fail "Klaviyo differs from the model after the removal phase"
fi
ndl=$(python3 -c 'import json, sys; print(sum(len(v) for v in json.load(open(sys.argv[1]))["dlq"].values()))' "$expected")
# A bad record's dead letter changes nothing in Klaviyo: one whose replica was killed before its
# delivery report is read again (by the partition's next owner, after the group's session
# timeout) and dead-lettered then, possibly after Klaviyo already matched. Wait for the set.
dlq_matches() {
    consume_topic "$DLQ" "$ndl" 10 >"$AW_TEST_DIR/dlq.jsonl" 2>/dev/null &&
        python3 "$model" check-dlq "$expected" "$AW_TEST_DIR/dlq.jsonl" >/dev/null 2>&1
}
if ! wait_until dlq_matches 120; then
    consume_topic "$DLQ" "$ndl" 10 >"$AW_TEST_DIR/dlq.jsonl" || fail "fewer than $ndl dead letters"
    python3 "$model" check-dlq "$expected" "$AW_TEST_DIR/dlq.jsonl" -v || true
    fail "dead letters differ from the model after 120 s"
fi
python3 "$model" check-dlq "$expected" "$AW_TEST_DIR/dlq.jsonl" -v
python3 "$model" check "$AW_TEST_KLAVIYO_URL" "$expected" -v
for r in "${replicas[@]}"; do
    stop_worker "$r" || fail "$r did not exit 0 on SIGTERM"
done
records=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["records"])' "$expected")
note "soak $profile PASSED in $SECONDS s: $records records, faults: $(for k in "${!faults[@]}"; do printf '%s=%s ' "$k" "${faults[$k]}"; done)"
echo "soak: PASS"
