#!/usr/bin/env bash
# test_fair.sh -- accounts are independent (docs/flush.md, Scheduler): 1,000 due audiences of an
# account whose key Klaviyo refuses (paused) next to one audience of a healthy account. The
# paused account holds at most its own share of the leader (32 jobs) and gives its batches back
# once paused, never delaying the healthy account's flush; its data stays, its pause is visible
# in Redis.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw_flush_test aw_devbroker
BIN=$(aw_bin aw_flush_test)
DLQ=aw.fair.dlq

start_redis
start_devbroker --topic "$DLQ:1"
start_klaviyo_sim --job-delay 0.02
printf '{}\n' >"$AW_TEST_DIR/accounts.json"
sim_control faults '{"unauthorized_keys":["pk_revoked_0000000"]}'
{
    echo "key P1 pk_revoked_0000000"
    echo "key H1 pk_healthy_000000"
    for i in $(seq 1 1000); do echo "P1 $i Paused_$i add u$i@example.com"; done
    echo "H1 7 Healthy add h@example.com"
} | "$BIN" seed "$AW_TEST_REDIS_URL" || fail "seed"
t0=$SECONDS
timeout 80 "$BIN" run "$AW_TEST_REDIS_URL" "$AW_TEST_KLAVIYO_URL" "$AW_TEST_BROKERS" "$DLQ" 60 \
    --config "$AW_TEST_DIR/accounts.json" --ignore-account P1 2>>"$AW_TEST_DIR/flusher.log" |
    tee "$AW_TEST_DIR/metrics.txt" || fail "the healthy account did not flush within 60 s"
took=$((SECONDS - t0))
sim_eval '[l["member_emails"] for l in s["lists"] if l["name"] == "Healthy"] == [["h@example.com"]]' ||
    fail "the healthy audience did not reach Klaviyo"
sim_eval 'not any(l["name"].startswith("Paused") for l in s["lists"])' ||
    fail "the paused account reached Klaviyo"
[ "$took" -le 20 ] || fail "the healthy audience took ${took}s behind 1,000 paused ones"
[ -n "$(redis_cmd HGET 'aw:{P1}:acct' paused_until_ms)" ] || fail "the pause is not kept in Redis"
[ "$(redis_cmd HLEN 'aw:{P1}:a:1:p')$(redis_cmd HLEN 'aw:{P1}:a:1:f')" != 00 ] ||
    fail "the paused account's data was dropped"
grep -q 'paused=1' "$AW_TEST_DIR/metrics.txt" || fail "the pause is not reported"
# the paused account's jobs gave their batches back (they stay in flight in Redis), so a
# paused account holds none of the leader's memory
grep -q 'held_jobs=0 held_bytes=0' "$AW_TEST_DIR/metrics.txt" ||
    fail "the paused account still holds jobs or batch memory: $(cat "$AW_TEST_DIR/metrics.txt")"
# the leader's backlog gauges saw the paused account's 1,000 streams, and how old they are
python3 - "$AW_TEST_DIR/metrics.txt" <<'PY' || fail "backlog gauges: $(cat "$AW_TEST_DIR/metrics.txt")"
import re, sys
line = open(sys.argv[1]).read()
backlog = int(re.search(r"backlog=(\d+)", line).group(1))
age = int(re.search(r"oldest_age_ms=(\d+)", line).group(1))
sys.exit(0 if backlog >= 1000 and 0 < age < 120000 else 1)
PY
note "healthy account flushed in ${took}s next to 1,000 audiences of a paused account"
echo "test_fair: PASS"
