#!/usr/bin/env bash
# test_flush.sh -- the flusher (worker/flush/) against real redis-server, the dev broker (dead
# letters) and the Klaviyo simulator: lists found/created by name, membership imports into the
# list, profile imports (attributes) without it, field unsets, removals, consent, import errors
# dead-lettered one by one, 429 storms, 5xx bursts, and a 401 account paused while the others
# flush. Asserts the simulator's state.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw_flush_test aw_devbroker
BIN=$(aw_bin aw_flush_test)
DLQ=aw.flush.dlq

start_redis
start_devbroker --topic "$DLQ:1"
start_klaviyo_sim --job-delay 0.1
state() { curl -fsS "$AW_TEST_KLAVIYO_URL/_sim/state" >"$AW_TEST_DIR/state.json"; }
check() { # python assertion over the simulator state ($1: description, $2: python expression)
    state
    python3 - "$AW_TEST_DIR/state.json" "$2" <<'EOF' || fail "$1"
import json, sys
s = json.load(open(sys.argv[1]))
lists = {l["name"]: l for l in s["lists"]}
prof = {p["email"]: p for p in s["profiles"] if p.get("email")}
def members(name): return sorted(lists[name]["member_emails"]) if name in lists else None
def count(name): return sum(1 for l in s["lists"] if l["name"] == name)
def attr(email, key): return (prof.get(email) or {}).get(key)
def props(email): return (prof.get(email) or {}).get("properties") or {}
def sub(email, ch): return (((prof.get(email) or {}).get("subscriptions") or {}).get(ch) or {}).get("marketing", {})
ok = eval(sys.argv[2])
if not ok:
    print("assertion failed:", sys.argv[2], file=sys.stderr)
    print(json.dumps({"lists": s["lists"], "throttled": s["throttled"], "requests": s["requests"]})[:3000], file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}
run_flusher() { # timeout_s [args]
    local t=$1
    shift
    timeout $((t + 20)) "$BIN" run "$AW_TEST_REDIS_URL" "$AW_TEST_KLAVIYO_URL" "$AW_TEST_BROKERS" \
        "$DLQ" "$t" --config "$AW_TEST_DIR/accounts.json" "$@" 2>>"$AW_TEST_DIR/flusher.log" |
        tee -a "$AW_TEST_DIR/metrics.txt"
}

# Account A2's key comes from the config file; A1 and A3 from what the messages carried (Redis).
printf '{"A2":{"apiKey":"pk_beta_0000000000"}}\n' >"$AW_TEST_DIR/accounts.json"
# The first list creation is applied but its answer lost: the list must still exist once.
sim_control faults '{"unauthorized_keys":["pk_revoked_0000000"],"drop_after_apply":{"count":1,"ops":["create_list"]}}'

# ---- 1. first flush: adds, update, unset, consent; one record Klaviyo refuses; A3 paused ----
{
    echo "key A1 pk_alpha_000000000"
    echo "key A3 pk_revoked_0000000"
    echo 'A1 101 Alpha_List add alice@example.com set:first_name="Alice" set:properties.plan="gold" phone=+14155550101'
    echo 'A1 101 Alpha_List add bob@example.com set:last_name="Builder" set:location.city="Paris"'
    echo 'A1 101 Alpha_List add carol@example.com phone=+12'            # not E.164: import error
    echo 'A1 101 Alpha_List add dave@example.com'
    echo 'A1 101 Alpha_List add frank@example.com sub:email'
    echo 'A1 101 Alpha_List update erin@example.com set:first_name="Erin" set:properties.tier="x"'
    for i in $(seq -w 1 40); do echo "A1 101 Alpha_List add user$i@example.com set:properties.n=$((10#$i))"; done
    echo 'A1 102 Second_Alpha add alice@example.com'
    echo 'A2 201 Beta_List add zoe@example.net set:first_name="Zoe"'
    echo 'A2 201 Beta_List add yan@example.net'
    echo 'A3 301 Gamma_List add gus@example.org'
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed 1"
run_flusher 60 --ignore-account A3 || fail "flush 1 did not complete"

check "lists created once by name" 'count("Alpha List") == 1 and count("Beta List") == 1 and count("Second Alpha") == 1 and count("Gamma List") == 0'
# carol's membership is fine (her email is); her profile (a phone Klaviyo refuses) is the dead letter
check "Alpha members" 'members("Alpha List") == sorted(["alice@example.com","bob@example.com","carol@example.com","dave@example.com","frank@example.com"] + ["user%02d@example.com" % i for i in range(1, 41)])'
check "Beta members" 'members("Beta List") == ["yan@example.net","zoe@example.net"] and attr("zoe@example.net","first_name") == "Zoe"'
check "Second Alpha members" 'members("Second Alpha") == ["alice@example.com"]'
check "attributes" 'attr("alice@example.com","first_name") == "Alice" and props("alice@example.com").get("plan") == "gold" and attr("alice@example.com","phone_number") == "+14155550101" and (attr("bob@example.com","location") or {}).get("city") == "Paris" and props("user07@example.com").get("n") == 7'
check "update without membership" 'attr("erin@example.com","first_name") == "Erin" and "erin@example.com" not in members("Alpha List")'
check "consent subscribe" 'sub("frank@example.com","email").get("consent") == "SUBSCRIBED"'
check "no profile for the paused account" '"gus@example.org" not in prof'
[ "$(redis_cmd HLEN 'aw:{A3}:a:301:f')" = 1 ] || fail "A3's batch should stay in flight while paused"
[ "$(redis_cmd HLEN 'aw:{A1}:a:101:f')" = 0 ] || fail "A1's batch should be acked"
[ -n "$(redis_cmd HGET 'aw:{A1}:a:101' last_upload_ms)" ] || fail "ack sets last_upload_ms"
[ "$(redis_cmd GET 'aw:{leader}:lease')" = "" ] || fail "lease not released on stop"
grep -q 'paused=1' "$AW_TEST_DIR/metrics.txt" || fail "A3 not reported paused"
grep -Eq ' jobs=[1-9][0-9]* job_failed_records=1 ' "$AW_TEST_DIR/metrics.txt" ||
    fail "the import job's failed record is not counted: $(cat "$AW_TEST_DIR/metrics.txt")"
grep -q 'account paused' "$AW_TEST_DIR/flusher.log" || fail "no ERROR line for the paused account"
if grep -q 'pk_' "$AW_TEST_DIR/flusher.log"; then fail "an API key appeared in the log"; fi
if grep -qi 'example\.com' "$AW_TEST_DIR/flusher.log"; then fail "an email appeared in the log"; fi

consume_topic "$DLQ" 1 20 >"$AW_TEST_DIR/dlq1.json" || fail "no dead letter"
[ "$(wc -l <"$AW_TEST_DIR/dlq1.json")" = 1 ] || fail "exactly one dead letter expected: $(cat "$AW_TEST_DIR/dlq1.json")"
[ "$(records_header aw.reason <"$AW_TEST_DIR/dlq1.json")" = klaviyo_import_error ] || fail "dead-letter reason"
[ "$(records_header aw.stage <"$AW_TEST_DIR/dlq1.json")" = flush ] || fail "dead-letter stage"
[ "$(records_header aw.source.topic <"$AW_TEST_DIR/dlq1.json")" = klaviyo ] || fail "dead-letter source"
records_kv <"$AW_TEST_DIR/dlq1.json" | grep -q 'carol@example.com' || fail "carol's record is the dead letter"

# ---- 2. removals, unset of a profile field, unsubscribe, under a 429 storm -------------------
list_reqs_before=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sum(v for k,v in s["requests"].items() if "create_list" in k))' "$AW_TEST_DIR/state.json" 2>/dev/null || echo 0)
{
    echo 'A1 101 Alpha_List delete dave@example.com'
    echo 'A1 101 Alpha_List delete nobody@example.com'                  # unknown: done
    echo 'A1 101 Alpha_List update erin@example.com unset:first_name unset:properties.tier'
    echo 'A1 101 Alpha_List update frank@example.com unsub:email'
    echo 'A2 201 Beta_List delete yan@example.net'
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed 2"
sim_control faults '{"unauthorized_keys":["pk_revoked_0000000"],"storm_429":{"count":6,"retry_after":1}}'
t0=$SECONDS
run_flusher 60 --ignore-account A3 || fail "flush 2 did not complete under a 429 storm"
[ $((SECONDS - t0)) -ge 1 ] || fail "Retry-After was not honoured"
check "removals" '"dave@example.com" not in members("Alpha List") and members("Beta List") == ["zoe@example.net"] and "alice@example.com" in members("Alpha List")'
check "unset" 'attr("erin@example.com","first_name") is None and "tier" not in props("erin@example.com")'
check "unsubscribe" 'sub("frank@example.com","email").get("consent") == "UNSUBSCRIBED"'
check "429s were served" 'sum(s["throttled"].values()) >= 6'
check "no request before its Retry-After" 'not s["retry_after_violations"]'
check "list not created again" 'count("Alpha List") == 1 and count("Beta List") == 1'

# ---- 3. 5xx burst --------------------------------------------------------------------------
{
    for i in $(seq -w 41 70); do echo "A1 101 Alpha_List add user$i@example.com"; done
    echo 'A2 201 Beta_List add xia@example.net'
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed 3"
sim_control faults '{"unauthorized_keys":["pk_revoked_0000000"],"error_rate_5xx":0.5,"status":503}'
run_flusher 90 --ignore-account A3 || fail "flush 3 did not complete under 5xx"
sim_control faults '{}'
check "5xx burst completed" 'all(("user%02d@example.com" % i) in members("Alpha List") for i in range(41, 71)) and "xia@example.net" in members("Beta List")'
grep -q 'errors=[1-9]' "$AW_TEST_DIR/metrics.txt" || fail "no 5xx was seen"

# ---- 4. the paused account's key works again: its batch flushes ------------------------------
run_flusher 60 || fail "flush 4 (A3 resumed) did not complete"
check "A3 flushed after the key was accepted" 'members("Gamma List") == ["gus@example.org"]'
[ "$(redis_cmd HLEN 'aw:{A3}:a:301:f')" = 0 ] || fail "A3's batch should be acked"

# ---- 5. an import error that names no record (no pointer, no payload): reported, not success --
{
    echo 'A1 101 Alpha_List add ivy@example.com phone=+12'               # refused by Klaviyo
    echo 'A1 101 Alpha_List add jay@example.com'
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed 5"
sim_control faults '{"anonymous_import_errors":true}'
run_flusher 60 || fail "flush 5 did not complete"
sim_control faults '{}'
check "members beside the unmatched error" '{"ivy@example.com","jay@example.com"} <= set(members("Alpha List"))'
check "the error named no record" 's["faults_injected"].get("anonymous_import_errors", 0) >= 1'
consume_topic "$DLQ" 2 20 >"$AW_TEST_DIR/dlq5.json" || fail "no dead letter for the unmatched error"
[ "$(wc -l <"$AW_TEST_DIR/dlq5.json")" = 2 ] || fail "exactly one more dead letter expected: $(cat "$AW_TEST_DIR/dlq5.json")"
tail -n 1 "$AW_TEST_DIR/dlq5.json" >"$AW_TEST_DIR/dlq5.last"
[ "$(records_header aw.reason <"$AW_TEST_DIR/dlq5.last")" = klaviyo_import_error_unmatched ] ||
    fail "unmatched import error: dead-letter reason"
records_kv <"$AW_TEST_DIR/dlq5.last" | grep -q '"profile":null' || fail "unmatched dead letter names a profile"
if records_kv <"$AW_TEST_DIR/dlq5.last" | grep -q '@example.com'; then
    fail "the unmatched dead letter holds an email"
fi
[ "$(redis_cmd HLEN 'aw:{A1}:a:101:f')" = 0 ] || fail "the batch with an unmatched error was not acked"
tail -n 1 "$AW_TEST_DIR/metrics.txt" | grep -q ' dead_letters=1 ' ||
    fail "the unmatched import error was not counted as a dead letter"
grep -q 'import error names no record of the job: dead-lettered' "$AW_TEST_DIR/flusher.log" ||
    fail "no ERROR line for the unmatched import error"
check "no request failed the spec check" 'not s["response_violations"]'

note "flush test passed: $(tr '\n' ' ' <"$AW_TEST_DIR/metrics.txt")"
