#!/usr/bin/env bash
# test_secrets.sh -- API keys and personal data stay where the contract puts them
# (docs/contract.md; docs/design.md §1), through a worker at debug level, redis-server, the dev
# broker and the Klaviyo simulator:
#  1. a key from AW_CONFIG_FILE is used for Klaviyo but never written to Redis (even when the
#     messages carry another key for that account);
#  2. a key that cannot go into an HTTP header (CR/LF, spaces) is never stored: the profiles
#     are dead-lettered (invalid_account_settings) and no request carries it;
#  3. the newest message's key wins: a redelivered older message never writes its old key back;
#  4. every output -- the worker's log at debug level, /metrics, /status, `aw-worker status`,
#     `aw-worker --check-config`, the dead-letter records' keys and headers -- holds none of the
#     run's API keys or emails; dead-letter payloads hold the emails the contract requires and
#     never a key.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat python3 curl
IN=mparticle.audience
DLQ=mparticle.audience.dlq
KEY_CONF=pk_secret_from_config_file_1
KEY_MSG_C=pk_secret_carried_for_conf_2
KEY_OLD=pk_secret_old_key_3
KEY_NEW=pk_secret_new_key_4
KEY_BAD=$'pk_secret_bad\r\nX-Injected: 5'

start_redis
start_devbroker --topic "$IN:2" --topic "$DLQ:1"
start_klaviyo_sim --job-delay 0.02
sim_control config "{\"api_keys\":[\"$KEY_CONF\",\"$KEY_OLD\",\"$KEY_NEW\"]}"
printf '{"9101":{"apiKey":"%s"}}\n' "$KEY_CONF" >"$AW_TEST_DIR/accounts.json"

# gen ACCOUNT KEY TS AUDIENCE EMAIL...: one membership message, key<TAB>json on stdout
gen() {
    python3 - "$@" <<'PY'
import json, sys
acct, key, ts, aud = sys.argv[1:5]
emails = sys.argv[5:]
m = {"type": "audience_membership_change_request", "id": "m-%s-%s" % (acct, ts),
     "timestamp_ms": int(ts),
     "account": {"account_id": int(acct), "account_settings": {"apiKey": key}},
     "user_profiles": [{"mpid": e, "user_identities": [{"type": "email", "encoding": "raw",
                                                        "value": e}],
                        "user_attributes": {"$FirstName": "Secret"},
                        "audiences": [{"audience_id": int(aud), "audience_name": "Secret %s" % aud,
                                       "action": "add"}]} for e in emails]}
print("%s\t%s" % (acct, json.dumps(m, separators=(",", ":"))))
PY
}
{
    gen 9101 "$KEY_MSG_C" 1000 91 conf.one@example.com conf.two@example.com
    gen 9102 "$KEY_NEW" 2000 92 new.one@example.com
    gen 9102 "$KEY_OLD" 1000 92 old.one@example.com # older: its key must not win
    gen 9103 "$KEY_BAD" 1000 93 bad.one@example.com
} >"$AW_TEST_DIR/in.tsv"
produce_file "$IN" "$AW_TEST_DIR/in.tsv"
emails=(conf.one@example.com conf.two@example.com new.one@example.com old.one@example.com
    bad.one@example.com)
keys=("$KEY_CONF" "$KEY_MSG_C" "$KEY_OLD" "$KEY_NEW" pk_secret_bad)

start_worker w1 AW_LOG_LEVEL=debug AW_FLUSH_MAX_QUEUE=1 AW_CONFIG_FILE="$AW_TEST_DIR/accounts.json"
wait_metric w1 aw_leader -eq 1 20
wait_for "the two accounts' lists in Klaviyo" 60 \
    "sim_eval 'sorted(l[\"name\"] for l in s[\"lists\"]) == [\"Secret 91\", \"Secret 92\"] and all(len(l[\"member_emails\"]) > 0 for l in s[\"lists\"])'"
wait_for "every member" 60 \
    "sim_eval 'sum(len(l[\"member_emails\"]) for l in s[\"lists\"]) == 4'"
consume_topic "$DLQ" 1 30 >"$AW_TEST_DIR/dlq.json" || fail "no dead letter for the bad key"

# 1. the config file's key: used, never stored
[ "$(redis_cmd HGET 'aw:{9101}:acct' api_key)" = "" ] || fail "a key of account 9101 is in Redis"
# (the simulator accepts only the config file's key for 9101: its list proves that key was used)
# 2. the bad key: never stored, its profile dead-lettered with the reason
[ "$(redis_cmd HGET 'aw:{9103}:acct' api_key)" = "" ] || fail "the key with CR/LF was stored"
[ "$(records_header aw.reason <"$AW_TEST_DIR/dlq.json")" = invalid_account_settings ] ||
    fail "the bad key's profile: dead-letter reason $(records_header aw.reason <"$AW_TEST_DIR/dlq.json")"
# 3. the newest message's key
[ "$(redis_cmd HGET 'aw:{9102}:acct' api_key)" = "$KEY_NEW" ] || fail "an older message's key won"

# 4. every output, gathered
url=$(worker_url w1)
curl -sf "$url/metrics" >"$AW_TEST_DIR/out.metrics" || fail "/metrics"
curl -sf "$url/status" >"$AW_TEST_DIR/out.status" || fail "/status"
env -u AW_TEST_REDIS_URL AW_REDIS_URL="$AW_TEST_REDIS_URL" "$(aw_bin aw-worker)" status \
    >"$AW_TEST_DIR/out.cli-status" 2>&1 || fail "aw-worker status"
env AW_KAFKA_BROKERS="$AW_TEST_BROKERS" AW_REDIS_URL="$AW_TEST_REDIS_URL" \
    AW_CONFIG_FILE="$AW_TEST_DIR/accounts.json" "$(aw_bin aw-worker)" --check-config \
    >"$AW_TEST_DIR/out.check-config" 2>&1 || fail "aw-worker --check-config"
stop_worker w1
python3 - "$AW_TEST_DIR/dlq.json" >"$AW_TEST_DIR/out.dlq-meta" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        print(r.get("key") or "", json.dumps(r.get("headers") or []))
PY
python3 - "$AW_TEST_DIR/dlq.json" >"$AW_TEST_DIR/out.dlq-payload" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        print(json.loads(line).get("payload") or "")
PY
[ -s "$AW_TEST_DIR/w1.log" ] && grep -q 'level=debug' "$AW_TEST_DIR/w1.log" ||
    fail "test design: the worker logged nothing at debug level"
for f in w1.log out.metrics out.status out.cli-status out.check-config out.dlq-meta; do
    for k in "${keys[@]}" "${emails[@]}"; do
        if grep -qF -- "$k" "$AW_TEST_DIR/$f"; then
            fail "$f holds ${k:0:10}... (a key or an email)"
        fi
    done
done
# the dead letter's payload: the bad account's profile as received, so its email, never a key
grep -qF bad.one@example.com "$AW_TEST_DIR/out.dlq-payload" || fail "the dead letter lost its profile"
for k in "${keys[@]}"; do
    if grep -qF -- "$k" "$AW_TEST_DIR/out.dlq-payload"; then fail "a dead-letter payload holds a key"; fi
done
note "no key or email in the log (debug), /metrics, /status, status, --check-config, dead-letter headers"
echo "test_secrets: PASS"
