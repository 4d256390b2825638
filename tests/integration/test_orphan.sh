#!/usr/bin/env bash
# test_orphan.sh -- an import Klaviyo applied but whose answer was lost never re-adds a user the
# next batch removed (docs/flush.md, "Imports whose answer was lost"). Through a worker,
# redis-server, the dev broker and the Klaviyo simulator:
#  1. a user is added; the bulk import's answer is lost after Klaviyo created the job, and that
#     job runs 6 s longer than the one the worker sends again;
#  2. the user is removed as soon as the second job is there: the removal reaches Klaviyo only
#     after the unknown job ended, so the user ends outside the list.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw-worker aw_devbroker
require_cmd kcat python3 curl
IN=mparticle.audience

start_redis
start_devbroker --topic "$IN:1" --topic "$IN.dlq:1"
start_klaviyo_sim --job-delay 0.05
sim="$AW_TEST_KLAVIYO_URL"
checker="$AW_SOURCE_DIR/tests/integration/sim_profiles.py"
sim_is() { # sim_is DESC PYEXPR: waits until PYEXPR holds over the simulator's state
    if ! wait_until "python3 '$checker' '$sim' \"$2\"" 60; then
        python3 "$checker" "$sim" "$2" -v || true
        fail "timed out after 60s waiting for $1"
    fi
}
msg() { # msg ID TS ACTION -> key<TAB>message
    python3 - "$@" <<'PY'
import json, sys
mid, ts, action = sys.argv[1:4]
m = {"type": "audience_membership_change_request", "id": mid, "timestamp_ms": int(ts),
     "account": {"account_id": 9001, "account_settings": {"apiKey": "pk_orphan_test_key"}},
     "user_profiles": [{"mpid": "o1", "user_identities": [
         {"type": "email", "encoding": "raw", "value": "o1@example.com"}],
         "audiences": [{"audience_id": 91, "audience_name": "Orphan 91", "action": action}]}]}
print("o1\t" + json.dumps(m, separators=(",", ":")))
PY
}

start_worker w1 AW_FLUSH_MAX_QUEUE=1
wait_metric w1 aw_leader -eq 1 20
sim_control faults '{"drop_after_apply": {"count": 1, "ops": ["bulk_import_profiles"]}, "slow_jobs": {"count": 1, "extra_s": 6}}'

msg m1 1000 add >"$AW_TEST_DIR/add.tsv"
produce_file "$IN" "$AW_TEST_DIR/add.tsv"
sim_is "the import sent again after its answer was lost" \
    "len([j for j in s['jobs'] if j['type'] == 'profile-bulk-import-job']) == 2 and s['faults_injected'].get('drop_after_apply') == 1"
sim_is "the second job done, the unknown one still running" \
    "[j['status'] for j in s['jobs']][1] == 'complete' and [j['status'] for j in s['jobs']][0] != 'complete'"
msg m2 2000 delete >"$AW_TEST_DIR/del.tsv"
produce_file "$IN" "$AW_TEST_DIR/del.tsv"
sim_is "the unknown job ended" "all(j['status'] == 'complete' for j in s['jobs'])"
wait_metric w1 aw_flush_jobs -eq 0 30
sim_is "the removal reached Klaviyo" \
    "s['requests'].get('delete_list_relationships_profiles') or s['requests'].get('remove_profiles_from_list')"
sim_is "o1 is not in the list (the old job did not re-add it)" "'o1@example.com' not in members('Orphan 91')"
sim_is "one list" "len(s['lists']) == 1"
stop_worker w1 20 || fail "w1 did not exit 0 on SIGTERM"
echo "test_orphan: PASS"
