#!/usr/bin/env bash
# run-local.sh -- the main job end to end on the local embedded stack, all on 127.0.0.1:
# the dev broker (librdkafka mock cluster), redis-server, the Klaviyo simulator (validating every
# request against Klaviyo's OpenAPI spec) and two aw-worker replicas (both consume; one holds the
# leader lease and flushes). Produces a small sample, waits for the flushes, prints each
# audience's members as the simulator holds them, checks them against what the sample implies,
# shows the two bad records of the sample in the dead-letter topic, ends with a summary from
# /metrics and `aw-worker status`, and stops everything it started (the logs stay: the last line
# says where). Exit 0 when Klaviyo ends up exactly as the input says.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh" >&2
build=${AW_BUILD_DIR:-$root/build/release}
echo "== building aw-worker and the dev broker in $build" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target aw-worker aw_devbroker >&2
export AW_BUILD_DIR=$build AW_SOURCE_DIR=$root AW_TEST_NAME=run-local AW_KEEP_TEST_DIR=1
source "$root/tests/integration/lib.sh"

start_redis --appendonly yes
start_devbroker --topic mparticle.audience:3 --topic mparticle.audience.dlq:1
start_klaviyo_sim --job-delay 0.2
for r in 1 2; do
    start_worker "replica-$r" AW_FLUSH_MAX_QUEUE=100 AW_FLUSH_MAX_AGE_S=5 AW_FLUSH_TICK_MS=200 \
        AW_KLAVIYO_JOB_POLL_MS=200
done
for r in 1 2; do note "replica-$r: $(worker_url "replica-$r")/metrics /status /healthz /readyz"; done
note "Klaviyo simulator: $AW_TEST_KLAVIYO_URL/_sim/state; Redis: $AW_TEST_REDIS_URL; logs in $AW_TEST_DIR"

python3 "$root/scripts/sample_messages.py" "$AW_TEST_DIR/sample.tsv" "$AW_TEST_DIR/expected.json"
# Two bad records, so the dead-letter path shows: one not JSON, one profile whose email is invalid.
{
    printf 'bad-1\t{"type": "audience_membership_change_request", truncated\n'
    printf 'bad-2\t{"type":"audience_membership_change_request","id":"bad-2","timestamp_ms":1764288000000,"account":{"account_id":9999,"account_settings":{"apiKey":"pk_demo"}},"user_profiles":[{"mpid":"x","user_identities":[{"type":"email","encoding":"raw","value":"not-an-email"}],"audiences":[{"audience_id":1,"audience_name":"Demo","action":"add"}]}]}\n'
} >>"$AW_TEST_DIR/sample.tsv"
produce_file mparticle.audience "$AW_TEST_DIR/sample.tsv"
note "produced $(wc -l <"$AW_TEST_DIR/sample.tsv") records; waiting for the flushes"

report() {
    python3 - "$AW_TEST_KLAVIYO_URL" "$AW_TEST_DIR/expected.json" "${1:-}" <<'PY'
import json, sys, urllib.request
state = json.load(urllib.request.urlopen(sys.argv[1] + "/_sim/state", timeout=10))
exp = json.load(open(sys.argv[2]))
quiet = sys.argv[3] == "quiet"
lists = {l["name"]: sorted(l.get("member_emails") or []) for l in state["lists"].values()} \
    if isinstance(state["lists"], dict) else \
    {l["name"]: sorted(l.get("member_emails") or []) for l in state["lists"]}
ok = all(lists.get(name) == members for name, members in exp["lists"].items())
profiles = state["profiles"].values() if isinstance(state["profiles"], dict) else state["profiles"]
subscribed = sorted(p.get("email") for p in profiles
                    if (((p.get("subscriptions") or {}).get("email") or {}).get("marketing") or {})
                    .get("consent") == "SUBSCRIBED")
ok = ok and subscribed == exp["email_marketing_subscribed"]
def masked(email):  # personal data never leaves the simulator whole, even in a demo
    local, _, domain = email.partition("@")
    return "%s***@%s" % (local[:1], domain)
if not quiet:
    for name in sorted(lists):
        m = lists[name]
        print("%-24s %3d members: %s%s" % (name, len(m), ", ".join(masked(e) for e in m[:4]),
                                           ", ..." if len(m) > 4 else ""))
    print("email marketing subscribed: %d profiles" % len(subscribed))
    print("Klaviyo state %s the input" % ("MATCHES" if ok else "DOES NOT MATCH"))
sys.exit(0 if ok else 1)
PY
}
if ! wait_until "report quiet" 120; then
    report || true
    fail "Klaviyo did not reach the state the sample implies within 120 s"
fi
report
dlq=$(consume_topic mparticle.audience.dlq 2 30) || fail "the two bad records were not dead-lettered"
echo "dead letters (mparticle.audience.dlq):"
records_header aw.reason <<<"$dlq" | sort | uniq -c | sed 's/^/  /'
echo "summary from /metrics (both replicas):"
for r in 1 2; do
    curl -sf "$(worker_url "replica-$r")/metrics" | awk -v r="replica-$r" '
        /^(aw_records_done_total|aw_changes_applied_total|aw_dead_letters_total|aw_klaviyo_requests_total|aw_flushes_total|aw_profiles_uploaded_total|aw_leader) / ||
        /^(aw_changes_applied_total|aw_dead_letters_total)\{/ { printf "  %-10s %s %s\n", r, $1, $2 }'
done
echo "aw-worker status:"
AW_REDIS_URL="$AW_TEST_REDIS_URL" "$(aw_bin aw-worker)" status | sed 's/^/  /'
for r in 1 2; do
    stop_worker "replica-$r" || fail "replica-$r did not exit 0 on SIGTERM"
done
note "done; everything started here is stopped; logs kept in $AW_TEST_DIR"
