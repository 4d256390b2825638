#!/usr/bin/env bash
# test_profile.sh -- the profile is shared by an account's audiences (docs/design.md §1, §3),
# end to end through a worker, redis-server, the dev broker and the Klaviyo simulator:
#  1. a consent given in a message of one audience and an opt-out given later in a message of
#     another, in both arrival orders: the profile ends unsubscribed with the newer attributes;
#  2. a user unsubscribed *inside Klaviyo*: a newer message repeating the old consent updates
#     the profile's attributes but never re-subscribes the user;
#  3. CCPA: data_sale_opt_out consented:true unsubscribes the channel it is mapped to, an
#     opt-in asks nothing;
#  4. a subscribe and the user's later unsubscribe, flushed in two batches while Klaviyo runs
#     jobs late and out of order: the unsubscribe is sent only after the settle wait, and wins.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat python3 curl
IN=mparticle.audience
KEY=pk_profile_test_key

start_redis
start_devbroker --topic "$IN:2" --topic "$IN.dlq:1"
start_klaviyo_sim --job-delay 0.05
sim="$AW_TEST_KLAVIYO_URL"

gen() { # gen FILE: JSON lines of [key, message] on stdin -> key<TAB>message lines
    python3 -c 'import json, sys
with open(sys.argv[1], "w") as f:
    for line in sys.stdin:
        if line.strip():
            k, m = json.loads(line)
            f.write("%s\t%s\n" % (k, json.dumps(m, separators=(",", ":"))))' "$1"
}
msg() { # msg ID TS AUDIENCE EMAIL ATTRS_JSON GDPR_JSON|null CCPA_JSON|null -> one JSON line
    python3 - "$@" <<'PY'
import json, sys
mid, ts, aud, email, attrs, gdpr, ccpa = sys.argv[1:8]
mapping = json.dumps([{"map": "marketing", "value": "email_marketing"},
                      {"map": "data_sale_opt_out", "value": "email_marketing"}])
a = {"audience_id": int(aud), "audience_name": "Profile %s" % aud, "action": "add",
     "audience_subscription_settings": {"consentMapping": mapping},
     "user_attributes": [{"key": k, "value": v, "action": "upsert"}
                         for k, v in json.loads(attrs).items()]}
p = {"mpid": email, "user_identities": [{"type": "email", "encoding": "raw", "value": email}],
     "audiences": [a]}
cs = {}
if gdpr != "null":
    cs["gdpr"] = {"marketing": json.loads(gdpr)}
if ccpa != "null":
    cs["ccpa"] = {"data_sale_opt_out": json.loads(ccpa)}
if cs:
    p["consent_state"] = cs
m = {"type": "audience_membership_change_request", "id": mid, "timestamp_ms": int(ts),
     "account": {"account_id": 8001, "account_settings": {"apiKey": "pk_profile_test_key"}},
     "user_profiles": [p]}
print(json.dumps([email, m]))
PY
}
checker="$AW_SOURCE_DIR/tests/integration/sim_profiles.py"
sim_expr=""
_sim_check() { python3 "$checker" "$sim" "$sim_expr"; }
sim_is() { # sim_is DESC PYEXPR: waits until PYEXPR holds over the simulator's state
    sim_expr=$2
    if ! wait_until _sim_check 60; then
        python3 "$checker" "$sim" "$sim_expr" -v || true
        fail "timed out after 60s waiting for $1"
    fi
}

start_worker w1 AW_FLUSH_MAX_QUEUE=1
wait_metric w1 aw_leader -eq 1 20

# ---- 1. consent, then an opt-out through another audience; both arrival orders ----------------
{
    msg m1 1000 81 a1@example.com '{"$FirstName":"Old","$LastName":"Kept"}' '{"consented":true,"timestamp_unixtime_ms":1000}' null
    msg m2 2000 82 a1@example.com '{"$FirstName":"New"}' '{"consented":false,"timestamp_unixtime_ms":2000}' null
    msg m4 2000 82 a2@example.com '{"$FirstName":"New"}' '{"consented":false,"timestamp_unixtime_ms":2000}' null
    msg m3 1000 81 a2@example.com '{"$FirstName":"Old","$LastName":"Kept"}' '{"consented":true,"timestamp_unixtime_ms":1000}' null
} | gen "$AW_TEST_DIR/part1.tsv"
produce_file "$IN" "$AW_TEST_DIR/part1.tsv"
for e in a1@example.com a2@example.com; do
    sim_is "$e: newest attributes, unsubscribed, member of both lists" \
        "attr('$e','first_name') == 'New' and attr('$e','last_name') == 'Kept' and sub('$e') == 'UNSUBSCRIBED' and '$e' in members('Profile 81') and '$e' in members('Profile 82')"
done
note "profile truth across audiences holds in both orders"

# ---- 2. unsubscribed inside Klaviyo: an old consent repeated sends nothing --------------------
msg m5 3000 81 b1@example.com '{"$FirstName":"B"}' '{"consented":true,"timestamp_unixtime_ms":3000}' null |
    gen "$AW_TEST_DIR/part2.tsv"
produce_file "$IN" "$AW_TEST_DIR/part2.tsv"
sim_is "b1 subscribed by the worker" "sub('b1@example.com') == 'SUBSCRIBED'"
wait_metric w1 aw_flush_jobs -eq 0 20
# The user unsubscribes inside Klaviyo (another integration, the preference page...).
curl -fsS -X POST "$sim/api/profile-subscription-bulk-delete-jobs" \
    -H "Authorization: Klaviyo-API-Key $KEY" -H "revision: 2026-07-15" \
    -H "Content-Type: application/vnd.api+json" --data-binary @- >/dev/null <<'JSON' ||
{"data":{"type":"profile-subscription-bulk-delete-job","attributes":{"profiles":{"data":[{"type":"profile","attributes":{"email":"b1@example.com","subscriptions":{"email":{"marketing":{"consent":"UNSUBSCRIBED"}}}}}]}}}}
JSON
    fail "cannot unsubscribe inside the simulator"
sim_is "b1 unsubscribed inside Klaviyo" "sub('b1@example.com') == 'UNSUBSCRIBED'"
# A newer message of another audience carries the same old consent state and a new attribute.
msg m6 4000 82 b1@example.com '{"$LastName":"Later"}' '{"consented":true,"timestamp_unixtime_ms":3000}' null |
    gen "$AW_TEST_DIR/part3.tsv"
produce_file "$IN" "$AW_TEST_DIR/part3.tsv"
sim_is "b1's new attribute arrived" "attr('b1@example.com','last_name') == 'Later'"
wait_metric w1 aw_flush_jobs -eq 0 20
sim_is "b1 still unsubscribed" "sub('b1@example.com') == 'UNSUBSCRIBED'"
note "an old consent repeated never re-subscribes a user who unsubscribed inside Klaviyo"

# ---- 3. CCPA: an opt-out of data sale unsubscribes; an opt-in asks nothing -------------------
msg m7 5000 81 c1@example.com '{"$FirstName":"C"}' '{"consented":true,"timestamp_unixtime_ms":5000}' null |
    gen "$AW_TEST_DIR/part4.tsv"
produce_file "$IN" "$AW_TEST_DIR/part4.tsv"
sim_is "c1 subscribed" "sub('c1@example.com') == 'SUBSCRIBED'"
{
    msg m8 6000 81 c1@example.com '{}' null '{"consented":true,"timestamp_unixtime_ms":6000}'
    msg m9 7000 82 c1@example.com '{"$Title":"x"}' null '{"consented":false,"timestamp_unixtime_ms":7000}'
} | gen "$AW_TEST_DIR/part5.tsv"
produce_file "$IN" "$AW_TEST_DIR/part5.tsv"
sim_is "c1 unsubscribed by the CCPA opt-out" "sub('c1@example.com') == 'UNSUBSCRIBED'"
sim_is "c1's later message arrived" "(attr('c1@example.com','properties') or {}).get('Title') == 'x' or attr('c1@example.com','title') == 'x'"
wait_metric w1 aw_flush_jobs -eq 0 20
sim_is "c1 still unsubscribed after a CCPA opt-in" "sub('c1@example.com') == 'UNSUBSCRIBED'"
sim_is "no request failed the spec check" "not s['response_violations']"

stop_worker w1 20 || fail "w1 did not exit 0 on SIGTERM"

# ---- 4. opposite consents of one user from two batches are never queued at Klaviyo together ---
# Subscription jobs give no id to poll and (here) finish up to 2.1 s after they were sent, in any
# order: the unsubscribe of the next batch waits AW_KLAVIYO_CONSENT_SETTLE_MS after the
# subscribe job, so Klaviyo applies them in the order the user gave them.
sim_control config '{"job_jitter_s": 2.0}'
start_worker w2 AW_FLUSH_MAX_QUEUE=1 AW_KLAVIYO_CONSENT_SETTLE_MS=4000
wait_metric w2 aw_leader -eq 1 20
jobs_before=$(python3 -c 'import json, sys, urllib.request
print(len(json.load(urllib.request.urlopen(sys.argv[1] + "/_sim/state"))["jobs"]))' "$sim")
n_jobs() { echo "len([j for j in s['jobs'][$jobs_before:] if j['type'] == 'profile-subscription-bulk-$1-job'])"; }
for k in 1 2 3; do
    t=$((10000 + k * 100))
    msg "m1$k" "$t" 81 "d$k@example.com" '{}' "{\"consented\":true,\"timestamp_unixtime_ms\":$t}" null |
        gen "$AW_TEST_DIR/part6-$k.tsv"
    produce_file "$IN" "$AW_TEST_DIR/part6-$k.tsv"
    sim_is "d$k's subscribe job sent" "$(n_jobs create) == $k"
    msg "m2$k" "$((t + 1))" 82 "d$k@example.com" '{}' "{\"consented\":false,\"timestamp_unixtime_ms\":$((t + 1))}" null |
        gen "$AW_TEST_DIR/part7-$k.tsv"
    produce_file "$IN" "$AW_TEST_DIR/part7-$k.tsv"
    sim_is "d$k's unsubscribe job sent" "$(n_jobs delete) == $k"
done
sim_is "every consent job ran" "all(j['status'] == 'complete' for j in s['jobs'])"
sim_is "each unsubscribe was sent >= 3 s (4 s, whole seconds) after its subscribe and ran after it" \
    "all(datetime.fromisoformat(d['created_at']) - datetime.fromisoformat(c['created_at']) >= timedelta(seconds=3) and d['applied_seq'] > c['applied_seq'] for c, d in zip([j for j in s['jobs'][$jobs_before:] if j['type'].endswith('create-job')], [j for j in s['jobs'][$jobs_before:] if j['type'].endswith('delete-job')]))"
for k in 1 2 3; do
    sim_is "d$k unsubscribed (the newer consent)" "sub('d$k@example.com') == 'UNSUBSCRIBED'"
done
note "opposite consents from two batches reach Klaviyo in order"
stop_worker w2 20 || fail "w2 did not exit 0 on SIGTERM"
echo "test_profile: PASS"
