#!/usr/bin/env bash
# stack.sh -- the local stack's services on 127.0.0.1: the dev broker (librdkafka mock cluster),
# redis-server and the Klaviyo simulator. Nothing here runs aw-worker itself.
#
#   scripts/stack.sh up [--detach]   start everything; write the worker's environment to
#                                    $AW_STACK_DIR/stack.env; without --detach stay in the
#                                    foreground until Ctrl-C / SIGTERM, then stop everything
#   scripts/stack.sh down            stop a detached stack (SIGTERM, bounded wait)
#   scripts/stack.sh env             print stack.env (source it: `. <(scripts/stack.sh env)`)
#   scripts/stack.sh status          say whether a stack is up
#
# Settings (environment): AW_BUILD_DIR (default build/release; aw_devbroker must be built),
# AW_STACK_DIR (default ${TMPDIR:-/tmp}/aw-stack-$UID), AW_STACK_BROKERS (1),
# AW_STACK_PARTITIONS (3, for the audience topic), AW_STACK_TOPIC (mparticle.audience),
# AW_STACK_DLQ_TOPIC (mparticle.audience.dlq), AW_STACK_REDIS_AOF (no),
# AW_STACK_KLAVIYO (on|off; off leaves AW_KLAVIYO_BASE_URL unset), AW_STACK_KLAVIYO_ARGS (extra
# simulator arguments, word-split).
#
# Hook for the Klaviyo simulator: stack_start_klaviyo below is the only place that knows how to
# start it (through lib.sh's start_klaviyo_sim, i.e. tests/klaviyo_sim/klaviyo_sim.py --port 0
# --port-file); it must export AW_TEST_KLAVIYO_URL.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
stack_dir=${AW_STACK_DIR:-${TMPDIR:-/tmp}/aw-stack-$(id -u)}
env_file="$stack_dir/stack.env"
pid_file="$stack_dir/stack.pid"

die() {
    echo "stack.sh: $*" >&2
    exit 1
}

stack_pid() {
    local pid
    [ -f "$pid_file" ] || return 1
    pid=$(cat "$pid_file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

stack_start_klaviyo() {
    # shellcheck disable=SC2086 # AW_STACK_KLAVIYO_ARGS is a word list on purpose
    start_klaviyo_sim ${AW_STACK_KLAVIYO_ARGS:-}
}

cmd_up_foreground() {
    AW_SOURCE_DIR=$root
    AW_TEST_NAME=stack
    export AW_SOURCE_DIR AW_TEST_NAME
    # shellcheck source=../tests/integration/lib.sh
    source "$root/tests/integration/lib.sh"
    on_exit "rm -f '$env_file' '$pid_file'"
    # Being stopped is the normal way out: exit 0 (lib.sh would report 130/143 and dump logs).
    trap 'exit 0' INT TERM

    local topic=${AW_STACK_TOPIC:-mparticle.audience}
    local dlq=${AW_STACK_DLQ_TOPIC:-mparticle.audience.dlq}
    start_devbroker --brokers "${AW_STACK_BROKERS:-1}" \
        --topic "$topic:${AW_STACK_PARTITIONS:-3}" --topic "$dlq:1"
    start_redis --appendonly "${AW_STACK_REDIS_AOF:-no}"
    if [ "${AW_STACK_KLAVIYO:-on}" != off ]; then
        stack_start_klaviyo
    fi

    # The 2.0.2 mock coordinator makes a re-joining consumer wait session.timeout.ms - 1 s after the
    # last member left (see tests/tools/aw_devbroker.c), so the local stack uses a short one.
    local kafka_conf="$stack_dir/kafka.conf"
    printf 'session.timeout.ms=6000\nheartbeat.interval.ms=1000\n' >"$kafka_conf"

    {
        echo "# aw-worker environment for the local stack (pid $$), $(date -u +%FT%TZ)"
        echo "export AW_KAFKA_BROKERS='$AW_TEST_BROKERS'"
        echo "export AW_KAFKA_TOPICS='$topic'"
        echo "export AW_KAFKA_DLQ_TOPIC='$dlq'"
        echo "export AW_KAFKA_CONFIG_FILE='$kafka_conf'"
        echo "export AW_REDIS_URL='$AW_TEST_REDIS_URL'"
        if [ -n "${AW_TEST_KLAVIYO_URL:-}" ]; then
            echo "export AW_KLAVIYO_BASE_URL='$AW_TEST_KLAVIYO_URL'"
        fi
        echo "# service logs: $AW_TEST_DIR"
    } >"$env_file.tmp"
    echo "$$" >"$pid_file"
    mv "$env_file.tmp" "$env_file"
    cat "$env_file"
    note "stack up; Ctrl-C or 'scripts/stack.sh down' stops it"

    # Stay up until a signal (lib.sh's traps turn it into a clean exit) or a service dies.
    while :; do
        local name
        for name in devbroker redis klaviyo_sim; do
            if [ -n "${AW_SVC_PID[$name]:-}" ] && ! service_is_running "$name"; then
                fail "$name exited unexpectedly (log in $AW_TEST_DIR/$name.log)"
            fi
        done
        sleep 1 &
        wait $! || true
    done
}

cmd_up() {
    mkdir -p "$stack_dir"
    if pid=$(stack_pid); then
        die "a stack is already up (pid $pid); 'scripts/stack.sh down' first"
    fi
    rm -f "$env_file" "$pid_file"
    if [ "${1:-}" != --detach ]; then
        cmd_up_foreground
        return
    fi
    setsid bash "$0" up </dev/null >"$stack_dir/stack.log" 2>&1 &
    local child=$! deadline=$((SECONDS + 30))
    while [ ! -s "$env_file" ]; do
        kill -0 "$child" 2>/dev/null || die "stack failed to start: $(tail -n 20 "$stack_dir/stack.log")"
        [ "$SECONDS" -lt "$deadline" ] || {
            kill -TERM "$child" 2>/dev/null || true
            die "stack not up within 30s (log: $stack_dir/stack.log)"
        }
        sleep 0.1
    done
    cat "$env_file"
}

cmd_down() {
    local pid
    pid=$(stack_pid) || {
        echo "stack.sh: no stack is up" >&2
        return 0
    }
    kill -TERM "$pid"
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "stack (pid $pid) did not stop within 20s"
        sleep 0.1
    done
    echo "stack.sh: stopped"
}

case "${1:-}" in
up)
    shift
    cmd_up "$@"
    ;;
down) cmd_down ;;
env)
    if ! stack_pid >/dev/null || [ ! -s "$env_file" ]; then
        die "no stack is up"
    fi
    cat "$env_file"
    ;;
status)
    if pid=$(stack_pid); then
        echo "up (pid $pid), env in $env_file"
    else
        echo "down"
        exit 3
    fi
    ;;
*)
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
