#!/usr/bin/env bash
# test_split.sh -- the blast radius of one bad record (docs/flush.md, Errors): Klaviyo refuses a
# whole request with a 400 that names no record (the simulator's reject_containing fault, for
# one poisoned email). The flusher sends the request again in halves until the bad record is
# alone, so only it is dead-lettered: among 99 adds into a list, among 99 removals (lookups of
# 100 emails), and among 2,000 profiles of one attribute import.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw_flush_test aw_devbroker
BIN=$(aw_bin aw_flush_test)
DLQ=aw.split.dlq
POISON=poison@example.com

start_redis
start_devbroker --topic "$DLQ:1"
start_klaviyo_sim --job-delay 0.02
printf '{}\n' >"$AW_TEST_DIR/accounts.json"
sim_control faults "{\"reject_containing\":[\"$POISON\"]}"
run_flusher() { # timeout_s
    timeout $(($1 + 20)) "$BIN" run "$AW_TEST_REDIS_URL" "$AW_TEST_KLAVIYO_URL" "$AW_TEST_BROKERS" \
        "$DLQ" "$1" --config "$AW_TEST_DIR/accounts.json" 2>>"$AW_TEST_DIR/flusher.log" |
        tee -a "$AW_TEST_DIR/metrics.txt"
}
dead_letters() { # count reason: waits for count dead letters, checks they are all POISON's
    consume_topic "$DLQ" "$1" 30 >"$AW_TEST_DIR/dlq.json" || fail "fewer than $1 dead letters"
    python3 - "$AW_TEST_DIR/dlq.json" "$1" "$POISON" <<'PY' || fail "dead letters: $(cat "$AW_TEST_DIR/dlq.json")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(rows) == int(sys.argv[2]), len(rows)
for r in rows:
    env = json.loads(r["payload"])
    assert env["profile"]["email"] == sys.argv[3], env["profile"]
PY
}

# ---- 99 adds and one poisoned email into one list -----------------------------------------
{
    echo "key S1 pk_split_000000000"
    for i in $(seq -w 0 98); do echo "S1 901 Split_List add s$i@example.com"; done
    echo "S1 901 Split_List add $POISON"
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed 1"
run_flusher 60 || fail "flush 1 did not complete"
sim_eval 'len([l for l in s["lists"] if l["name"] == "Split List"]) == 1' || fail "one list"
sim_eval 'sorted(l for l in s["lists"] if l["name"] == "Split List")[0]["member_emails"].__len__() == 99' ||
    fail "the 99 good adds are members"
sim_eval '"poison@example.com" not in [e for l in s["lists"] for e in l["member_emails"]]' ||
    fail "the poisoned email is a member"
dead_letters 1
note "99 adds imported; only the poisoned one dead-lettered"

# ---- 99 removals and the poisoned email: lookups of 100 are refused whole ------------------
{
    for i in $(seq -w 0 98); do echo "S1 901 Split_List delete s$i@example.com"; done
    echo "S1 901 Split_List delete $POISON"
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed 2"
run_flusher 60 || fail "flush 2 did not complete"
sim_eval '[l for l in s["lists"] if l["name"] == "Split List"][0]["member_emails"] == []' ||
    fail "the 99 removals did not all happen"
dead_letters 2
note "99 removals done; only the poisoned lookup dead-lettered"

# ---- 2,000 profiles of one attribute import, one of them poisoned --------------------------
{
    for i in $(seq 0 1998); do echo "S1 902 Profiles update p$i@example.com set:first_name=\"P$i\""; done
    echo "S1 902 Profiles update $POISON set:first_name=\"Bad\""
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed 3"
run_flusher 120 || fail "flush 3 did not complete"
sim_eval 'sum(1 for p in s["profiles"] if p.get("email","").startswith("p") and p.get("first_name","").startswith("P")) == 1999' ||
    fail "the 1,999 good profiles were not all imported"
dead_letters 3
sim_eval 's["faults_injected"]["reject_whole"] >= 3' || fail "the fault was not exercised"
note "1,999 profiles imported; only the poisoned one dead-lettered ($(tr '\n' ' ' <"$AW_TEST_DIR/metrics.txt"))"
echo "test_split: PASS"
