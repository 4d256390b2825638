#!/usr/bin/env bash
# test_admin.sh -- the admin commands (worker/ops/admin*.c) against a live worker, redis-server,
# the dev broker and the Klaviyo simulator:
#  - status --json parses and shows each audience's backlog, not due (large AW_FLUSH_MAX_QUEUE
#    and AW_FLUSH_MAX_AGE_S); --watch --json gives one document per frame with drain rates;
#  - dlq stats / show count and show exactly the dead letters the bad records produced (equal to
#    aw_dead_letters_total); replay --dry-run produces nothing, replay re-produces the original
#    records (their own headers, none of ours) and the worker dead-letters them again; envelopes
#    are skipped;
#  - pause stops the account's flushes (even a `flush`, even after a message brings a new API
#    key) while another account flushes; aw_accounts_paused and status show it; resume restarts
#    it;
#  - flush makes a non-due audience reach Klaviyo (its list import);
#  - preview prints the requests the next flush then really sends (bodies compared with what the
#    simulator received) and changes nothing;
#  - AW_DRY_RUN=1: a flush sends no write to the simulator, writes every body to AW_DRY_RUN_FILE
#    and acknowledges the changes;
#  - --help and the exit codes (0, 1, 64, 78); no API key or email on any stderr or log.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat python3 curl jq
IN=admin.audience
DLQ=admin.audience.dlq
worker=$(aw_bin aw-worker)

start_redis
start_devbroker --topic "$IN:2" --topic "$DLQ:1"
start_klaviyo_sim --job-delay 0.05
sim_control config '{"record_bodies": true}'
W=(AW_KAFKA_TOPICS="$IN" AW_KAFKA_DLQ_TOPIC="$DLQ" AW_FLUSH_MAX_QUEUE=1000 AW_FLUSH_MAX_AGE_S=3600
    AW_STATE_RETENTION_S=7200)
start_worker w1 "${W[@]}"

# The admin command line, with the worker's settings; stderr kept for the secrets check.
adm() {
    env AW_REDIS_URL="$AW_TEST_REDIS_URL" AW_KAFKA_BROKERS="$AW_TEST_BROKERS" AW_KAFKA_TOPICS="$IN" \
        AW_KAFKA_DLQ_TOPIC="$DLQ" AW_KAFKA_CONFIG_FILE="$AW_TEST_DIR/kafka.conf" \
        "$worker" "$@" 2>>"$AW_TEST_DIR/admin.err"
}
# status --json, then a jq filter over it (-e: false/null fails)
st() { adm status --json >"$AW_TEST_DIR/status.json" && jq -e "$1" "$AW_TEST_DIR/status.json" >/dev/null; }
aud() { printf '(.accounts[] | select(.account == "%s") | .audiences[] | select(.audience == "%s"))' "$1" "$2"; }
state() { curl -fsS "$AW_TEST_KLAVIYO_URL/_sim/state" >"$AW_TEST_DIR/sim.json"; }
members() { # members LIST_NAME: sorted member emails, comma-separated
    state
    jq -r --arg n "$1" '[.lists[] | select(.name == $n) | .member_emails[]] | sort | join(",")' \
        "$AW_TEST_DIR/sim.json"
}

# msg ID TS ACCOUNT KEY AUDIENCE NAME EMAIL [ATTRS_JSON] -> key<TAB>message (one line)
msg() {
    python3 - "$@" <<'PY'
import json, sys
mid, ts, acct, key, aud, name, email = sys.argv[1:8]
attrs = json.loads(sys.argv[8]) if len(sys.argv) > 8 else {}
ids = [{"type": "email", "encoding": "raw", "value": email}] if email != "-" else \
      [{"type": "customer", "encoding": "raw", "value": "c1"}]
m = {"type": "audience_membership_change_request", "id": mid, "timestamp_ms": int(ts),
     "account": {"account_id": int(acct), "account_settings": {"apiKey": key}},
     "user_profiles": [{"mpid": mid, "user_identities": ids, "audiences": [
         {"audience_id": int(aud), "audience_name": name, "action": "add",
          "user_attributes": [{"key": k, "value": v, "action": "upsert"} for k, v in attrs.items()]}]}]}
print("%s\t%s" % (acct, json.dumps(m, separators=(",", ":"))))
PY
}
K1=pk_admin_one_000000 K2=pk_admin_two_000000 K2B=pk_admin_two_111111
T=1800000000000

# ---- 1. data and bad records; nothing is due ----------------------------------------------------
{
    msg m1 $((T + 1)) 9001 $K1 11 "Admin One" alice@example.com '{"$firstname":"Alice"}'
    msg m2 $((T + 2)) 9001 $K1 11 "Admin One" bob@example.com '{"$firstname":"Bob"}'
    msg m3 $((T + 3)) 9002 $K2 21 "Admin Two" carol@example.com
    printf 'bad1\tthis is not json\n'
    printf 'bad2\t{not json either\n'
    printf 'bad3\t{"type":"something_else","id":"x1","timestamp_ms":1}\n'
    msg m4 $((T + 4)) 9001 $K1 11 "Admin One" - # no email: a map-stage envelope
} >"$AW_TEST_DIR/in1.txt"
produce_file "$IN" "$AW_TEST_DIR/in1.txt" -H src=test || fail "produce 1"
wait_for "3 pending changes in status --json" 30 \
    "st '[$(aud 9001 11) | .pending] == [2] and [$(aud 9002 21) | .pending] == [1]'"
st "[$(aud 9001 11), $(aud 9002 21) | .due_now] == [false, false]" ||
    fail "the audiences are due before any flush: $(cat "$AW_TEST_DIR/status.json")"
st '.lease.held == true and .lease.holder == "w1" and .totals.backlog >= 3' || fail "status: lease holder or totals"
[ -z "$(members "Admin One")" ] || fail "Admin One reached Klaviyo before a flush"
note "status --json: 2 + 1 pending, not due"

adm status --watch 0.3 --count 2 --json >"$AW_TEST_DIR/watch.json" || fail "status --watch"
[ "$(wc -l <"$AW_TEST_DIR/watch.json")" = 2 ] || fail "--watch --count 2: want 2 JSON lines"
jq -es '.[0].totals.rate_per_s == null and (.[1].totals.rate_per_s | type) == "number" and
    ([.[1].accounts[].audiences[] | .rate_per_s | type] | all(. == "number"))' \
    "$AW_TEST_DIR/watch.json" >/dev/null || fail "--watch: the second frame has no drain rates"
adm status --watch 0.3 --count 2 >"$AW_TEST_DIR/watch.txt" || fail "status --watch (text)"
grep -q '^audience account=9001 audience=11 .* pending=2 .* rate_per_s=0.0 eta_s=none$' \
    "$AW_TEST_DIR/watch.txt" || fail "--watch text: no rate on the second frame"

# ---- 2. the dead-letter topic ------------------------------------------------------------------
wait_metric w1 'aw_dead_letters_total{stage="decode",reason="not_json"}' -eq 2 20
wait_metric w1 'aw_dead_letters_total{stage="decode",reason="unknown_type"}' -eq 1 20
wait_metric w1 'aw_dead_letters_total{stage="map",reason="missing_email"}' -eq 1 20
# counted when produced: wait until the broker holds them too (dlq reads to the end it finds)
consume_topic "$DLQ" 4 20 >/dev/null || fail "the 4 dead letters are not in $DLQ"
adm dlq stats --json >"$AW_TEST_DIR/dlq.json" || fail "dlq stats"
jq -e '.records == 4 and ([.by[] | "\(.stage)/\(.reason)=\(.count)"] | sort ==
    ["decode/not_json=2", "decode/unknown_type=1", "map/missing_email=1"])' \
    "$AW_TEST_DIR/dlq.json" >/dev/null || fail "dlq stats: $(cat "$AW_TEST_DIR/dlq.json")"
curl -fsS "$(worker_url w1)/metrics" >"$AW_TEST_DIR/metrics.txt"
for sr in decode/not_json/2 decode/unknown_type/1 map/missing_email/1; do
    IFS=/ read -r s r n <<<"$sr"
    grep -q "^aw_dead_letters_total{stage=\"$s\",reason=\"$r\"} $n\$" "$AW_TEST_DIR/metrics.txt" ||
        fail "aw_dead_letters_total{$s,$r} is not $n as dlq stats says"
done
adm dlq stats | grep -q '^count stage=decode reason=not_json records=2$' || fail "dlq stats (text)"
adm dlq show --reason not_json --json >"$AW_TEST_DIR/show.json" || fail "dlq show"
jq -e '.matching == 2 and ([.records[] | "\(.key)=\(.value)"] | sort ==
    ["bad1=this is not json", "bad2={not json either"]) and
    ([.records[] | .source_topic] | unique == ["'"$IN"'"])' "$AW_TEST_DIR/show.json" >/dev/null ||
    fail "dlq show: $(cat "$AW_TEST_DIR/show.json")"
adm dlq show --limit 1 --json | jq -e '.shown == 1 and .matching == 4' >/dev/null ||
    fail "dlq show --limit 1"
adm dlq replay --reason not_json --dry-run --json >"$AW_TEST_DIR/replay0.json" || fail "replay --dry-run"
jq -e '.selected == 2 and .produced == 0 and .dry_run == true' "$AW_TEST_DIR/replay0.json" \
    >/dev/null || fail "replay --dry-run: $(cat "$AW_TEST_DIR/replay0.json")"
adm dlq replay --reason missing_email --json | jq -e '.selected == 0 and .skipped_envelopes == 1' \
    >/dev/null || fail "replay of an envelope must skip it"
consume_topic "$IN" 7 10 >"$AW_TEST_DIR/in.before" || fail "input topic"
[ "$(wc -l <"$AW_TEST_DIR/in.before")" = 7 ] || fail "replay --dry-run or of an envelope produced"
adm dlq replay --reason not_json --json >"$AW_TEST_DIR/replay1.json" || fail "replay"
jq -e '.selected == 2 and .produced == 2 and .failed == 0' "$AW_TEST_DIR/replay1.json" >/dev/null ||
    fail "replay: $(cat "$AW_TEST_DIR/replay1.json")"
consume_topic "$IN" 9 20 >"$AW_TEST_DIR/in.after" || fail "the replayed records are not in $IN"
jq -se '[.[] | select(.key == "bad1" or .key == "bad2")] | ([.[] | "\(.key)=\(.payload)"] | sort ==
    ["bad1=this is not json", "bad1=this is not json", "bad2={not json either", "bad2={not json either"])
    and all(.[]; .headers == ["src", "test"])' "$AW_TEST_DIR/in.after" >/dev/null ||
    fail "replayed records differ from the originals: $(cat "$AW_TEST_DIR/in.after")"
wait_metric w1 'aw_dead_letters_total{stage="decode",reason="not_json"}' -eq 4 20
note "dlq: stats and show match the dead letters; replay re-produced 2, --dry-run none"

# ---- 3. pause one account, flush both: only the other reaches Klaviyo ----------------------------
adm pause 9002 >"$AW_TEST_DIR/pause.txt" || fail "pause"
grep -q '^account account=9002 paused=true reason=operator changed=true$' "$AW_TEST_DIR/pause.txt" ||
    fail "pause: $(cat "$AW_TEST_DIR/pause.txt")"
wait_metric w1 aw_accounts_paused -eq 1 10
st '.accounts[] | select(.account == "9002") | .pauses == [.pauses[0]] and .pauses[0].reason == "operator"' ||
    fail "status does not show the operator's pause"
adm status | grep -q '^account account=9002 paused=true reason=operator since_ms=' ||
    fail "status (text) does not show the operator's pause"
adm flush 9002 21 --json | jq -e '.due == true and .pending == 1' >/dev/null || fail "flush 9002 21"
adm flush 9001 11 >"$AW_TEST_DIR/flush.txt" || fail "flush 9001 11"
grep -q '^flush account=9001 audience=11 due=now pending=2 inflight=0$' "$AW_TEST_DIR/flush.txt" ||
    fail "flush: $(cat "$AW_TEST_DIR/flush.txt")"
wait_for "flush to bring Admin One to Klaviyo" 30 \
    '[ "$(members "Admin One")" = "alice@example.com,bob@example.com" ]'
wait_for "Admin One's profile stream drained" 30 \
    "st '[.accounts[] | select(.account == \"9001\") | .profiles.pending + .profiles.inflight] == [0]'"
[ -z "$(members "Admin Two")" ] || fail "the paused account was flushed"
st "[$(aud 9002 21) | .pending + .inflight] == [1] and [$(aud 9002 21) | .due_now] == [true]" ||
    fail "the paused account's change is not kept, due"
# a message bringing a new key ends Klaviyo's pause, never the operator's
msg m5 $((T + 5)) 9002 $K2B 21 "Admin Two" dan@example.com >"$AW_TEST_DIR/in2.txt"
produce_file "$IN" "$AW_TEST_DIR/in2.txt" || fail "produce 2"
wait_for "the new key in Redis" 20 '[ "$(redis_cmd HGET "aw:{9002}:acct" api_key)" = "$K2B" ]'
note "account 9002 paused: not flushed while 9001 was; a new key does not resume it"

# ---- 4. preview, then the flush it previews -------------------------------------------------------
{
    msg m6 $((T + 6)) 9001 $K1 11 "Admin One" dave@example.com '{"$firstname":"Dave","plan":"gold"}'
    msg m7 $((T + 7)) 9001 $K1 11 "Admin One" erin@example.com '{"$lastname":"Erin"}'
    msg m8 $((T + 8)) 9001 $K1 11 "Admin One" alice@example.com '{"$firstname":"Alicia"}'
} >"$AW_TEST_DIR/in3.txt"
produce_file "$IN" "$AW_TEST_DIR/in3.txt" || fail "produce 3"
wait_for "3 more pending" 20 "st '[$(aud 9001 11) | .pending] == [3]'"
adm preview 9001 11 --json >"$AW_TEST_DIR/preview.json" || fail "preview"
adm preview 9001 11 >"$AW_TEST_DIR/preview.txt" || fail "preview (text)"
grep -q '^request stream=audience op=bulk_import_profiles method=POST path=/api/profile-bulk-import-jobs records=3$' \
    "$AW_TEST_DIR/preview.txt" || fail "preview (text): $(head -c 2000 "$AW_TEST_DIR/preview.txt")"
jq -e '[.streams[] | {stream, batch, records, ops: [.requests[] | .op]}] == [
    {"stream": "audience", "batch": "pending", "records": 3, "ops": ["bulk_import_profiles"]},
    {"stream": "profiles", "batch": "pending", "records": 3, "ops": ["bulk_import_profiles"]}]' \
    "$AW_TEST_DIR/preview.json" >/dev/null || fail "preview: $(cat "$AW_TEST_DIR/preview.json")"
st "[$(aud 9001 11) | .pending, .inflight, .due_now] == [3, 0, false]" ||
    fail "preview changed the stream"
state
n_before=$(jq '.recent_requests | length' "$AW_TEST_DIR/sim.json")
adm flush 9001 11 >/dev/null || fail "flush 9001 11 (2)"
wait_for "the previewed flush in Klaviyo" 30 \
    '[ "$(members "Admin One")" = "alice@example.com,bob@example.com,dave@example.com,erin@example.com" ]'
wait_for "Admin One's profiles flushed" 30 \
    "st '[.accounts[] | select(.account == \"9001\") | .profiles.pending + .profiles.inflight] == [0]'"
state
python3 - "$AW_TEST_DIR/preview.json" "$AW_TEST_DIR/sim.json" "$n_before" <<'PY' ||
import json, sys
preview = json.load(open(sys.argv[1]))
recent = json.load(open(sys.argv[2]))["recent_requests"][int(sys.argv[3]):]
want = sorted(json.dumps(r["body"], sort_keys=True) for s in preview["streams"] for r in s["requests"])
got = sorted(json.dumps(json.loads(r["body"]), sort_keys=True) for r in recent
             if r["method"] != "GET" and r.get("body"))
if want != got or len(want) != 2:
    print("previewed:", want, "\nsent:", got, file=sys.stderr)
    sys.exit(1)
PY
    fail "the flush did not send what preview printed"
[ -z "$(members "Admin Two")" ] || fail "the paused account was flushed after its new key"
note "preview printed exactly the 2 bodies the flush then sent; 9002 still paused"

adm resume 9002 --json | jq -e '.paused == false and .changed == true' >/dev/null || fail "resume"
wait_for "the resumed account's flush" 30 '[ "$(members "Admin Two")" = "carol@example.com,dan@example.com" ]'
wait_metric w1 aw_accounts_paused -eq 0 10
note "resume: 9002 flushed"

# ---- 5. exit codes, --help ------------------------------------------------------------------------
for c in status flush pause resume preview dlq; do
    adm "$c" --help | grep -q "^usage: aw-worker $c" || fail "$c --help"
done
rc=0; adm flush 9001 >/dev/null || rc=$?
[ "$rc" = 64 ] || fail "flush with one argument: exit $rc, want 64"
rc=0; adm status --bogus >/dev/null || rc=$?
[ "$rc" = 64 ] || fail "unknown option: exit $rc, want 64"
rc=0; adm dlq replay >/dev/null || rc=$?
[ "$rc" = 64 ] || fail "replay without --reason: exit $rc, want 64"
rc=0; adm flush 9001 99 >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "flush of an unknown audience: exit $rc, want 1"
rc=0; AW_FLUSH_MAX_QUEUE=0 adm status >/dev/null || rc=$?
[ "$rc" = 78 ] || fail "bad setting: exit $rc, want 78"
rc=0; env AW_REDIS_URL="redis://127.0.0.1:$(free_port)" AW_REDIS_CONNECT_TIMEOUT_MS=200 \
    "$worker" status >/dev/null 2>>"$AW_TEST_DIR/admin.err" || rc=$?
[ "$rc" = 1 ] || fail "Redis down: exit $rc, want 1"
rc=0; env -u AW_KAFKA_BROKERS AW_REDIS_URL="$AW_TEST_REDIS_URL" "$worker" dlq stats \
    >/dev/null 2>>"$AW_TEST_DIR/admin.err" || rc=$?
[ "$rc" = 78 ] || fail "dlq without brokers: exit $rc, want 78"
note "--help and exit codes"

# ---- 6. AW_DRY_RUN -----------------------------------------------------------------------------------
stop_worker w1 || fail "w1 did not stop cleanly"
start_worker dry "${W[@]}" AW_DRY_RUN=1 AW_DRY_RUN_FILE="$AW_TEST_DIR/dry.jsonl"
{
    msg m9 $((T + 9)) 9001 $K1 12 "Admin Dry" frank@example.com '{"$firstname":"Frank"}'
} >"$AW_TEST_DIR/in4.txt"
produce_file "$IN" "$AW_TEST_DIR/in4.txt" || fail "produce 4"
wait_for "the dry-run audience pending" 20 "st '[$(aud 9001 12) | .pending] == [1]'"
state
writes() { jq '[.requests | to_entries[] | select(.key | test("^(create_|bulk_|add_|remove_)")) | .value[]] | add // 0' "$AW_TEST_DIR/sim.json"; }
w_before=$(writes)
adm flush 9001 12 >/dev/null || fail "flush 9001 12"
wait_for "the dry run to acknowledge the changes" 30 \
    "st '[$(aud 9001 12) | .pending + .inflight] == [0] and [$(aud 9001 12) | .last_upload_ms] != [null] and [.accounts[] | select(.account == \"9001\") | .profiles.pending + .profiles.inflight] == [0]'"
state
[ "$(writes)" = "$w_before" ] || fail "AW_DRY_RUN: writes reached the simulator"
[ -z "$(members "Admin Dry")" ] || fail "AW_DRY_RUN: the list was created"
[ "$(stat -c %a "$AW_TEST_DIR/dry.jsonl")" = 600 ] || fail "AW_DRY_RUN_FILE is not mode 0600"
jq -se '([.[] | .operation] | sort == ["bulk_import_profiles", "bulk_import_profiles", "create_list"]) and
    ([.[] | select(.operation == "create_list") | .body.data.attributes.name] == ["Admin Dry"]) and
    ([.[] | select(.operation == "bulk_import_profiles") | .body.data.attributes.profiles.data[].attributes.email] | unique == ["frank@example.com"]) and
    all(.[]; .method == "POST" and .account == "9001")' "$AW_TEST_DIR/dry.jsonl" >/dev/null ||
    fail "AW_DRY_RUN_FILE: $(cat "$AW_TEST_DIR/dry.jsonl")"
note "AW_DRY_RUN: no write reached Klaviyo, the bodies are in the file, the changes acknowledged"

# ---- 7. no secrets or emails on stderr or in the logs ---------------------------------------------
if grep -E 'pk_admin|@example\.com' "$AW_TEST_DIR/admin.err" "$AW_TEST_DIR"/w1.log "$AW_TEST_DIR"/dry.log; then
    fail "an API key or an email reached stderr or a log"
fi
stop_worker dry || fail "dry did not stop cleanly"
echo "test_admin: PASS"
