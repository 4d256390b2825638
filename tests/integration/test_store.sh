#!/usr/bin/env bash
# test_store.sh -- worker/store.c against a real redis-server: aggregation scripts, due index,
# pipelines, NOSCRIPT recovery, command timeout and kill/restart of the server.
# aw_store_test asks for faults through files in $AW_TEST_CTL_DIR: it creates <what> and waits
# for <what>.done; this script performs the fault (kill9, restart, stop = SIGSTOP, cont).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

require_built aw_store_test
start_redis --unixsocket "$AW_TEST_DIR/redis.sock" --unixsocketperm 700
export AW_TEST_REDIS_UNIX_URL="unix://$AW_TEST_DIR/redis.sock"

AW_TEST_CTL_DIR="$AW_TEST_DIR/ctl"
mkdir -p "$AW_TEST_CTL_DIR"
export AW_TEST_CTL_DIR

"$(aw_bin aw_store_test)" &
test_pid=$!
on_exit "kill -CONT -- -\${AW_SVC_PID[redis]:-0} 2>/dev/null; kill $test_pid 2>/dev/null"

deadline=$((SECONDS + 240))
while kill -0 "$test_pid" 2>/dev/null; do
    for what in stop cont kill9 restart; do
        req="$AW_TEST_CTL_DIR/$what"
        [ -e "$req" ] || continue
        rm -f "$req"
        case $what in
        stop) kill -STOP -- "-$(service_pid redis)" ;;
        cont) kill -CONT -- "-$(service_pid redis)" ;;
        kill9) kill9_redis ;;
        restart) restart_redis ;;
        esac
        note "performed $what"
        : >"$req.done"
    done
    [ "$SECONDS" -lt "$deadline" ] || fail "aw_store_test did not finish within 240 s"
    sleep 0.05
done
rc=0
wait "$test_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "aw_store_test exited with $rc"
note "ok"
