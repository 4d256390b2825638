# shellcheck shell=bash
# lib.sh -- shared helpers for the bash integration tests and scripts/stack.sh.
#
# Source it from a test that runs under `set -euo pipefail`:
#     source "$(dirname "$0")/lib.sh"
# Sourcing creates a private work dir ($AW_TEST_DIR) and installs an EXIT trap that kills every
# service started through this library (whole process groups) and removes the work dir, also when
# the test fails or is interrupted. A background reaper does the same if the test shell itself is
# killed with SIGKILL (e.g. by a ctest timeout), so no redis-server or broker outlives a test.
#
# Services run on 127.0.0.1 only, on ports the kernel hands out. Every wait is bounded. A missing
# tool or binary is a failure, never a skip (docs/style.md §9).
#
# Public functions (all return 0 on success; the "|| fail" pattern is safe under set -e):
#   fail MSG...                    print "FAIL: MSG" to stderr and exit 1 (cleanup still runs)
#   note MSG...                    progress line on stderr
#   require_cmd NAME|PATH...       fail unless each command is on PATH / each path is executable
#   require_built NAME...          fail unless $AW_BUILD_DIR/tests/NAME (or $AW_BUILD_DIR/NAME) exists
#   aw_bin NAME                    print the path of a built binary (tests/NAME, then NAME)
#   free_port                      print a free TCP port on 127.0.0.1 (kernel-chosen)
#   wait_until CMD TIMEOUT_S       eval CMD every 0.1 s until it succeeds; 1 on timeout
#   wait_for DESC TIMEOUT_S CMD    the same, but a timeout fails the test:
#                                  "FAIL: timed out after Ns waiting for DESC"
#   on_exit CMD                    run CMD (eval) during cleanup, before services are killed
#   start_service NAME CMD...      run CMD in its own process group, stdout+stderr to
#                                  $AW_TEST_DIR/NAME.log; exports nothing, records the pid
#   service_pid NAME               print the pid of a running service
#   service_is_running NAME        0 while the service's main process is alive
#   stop_service NAME [SIG] [TIMEOUT_S]
#                                  send SIG (default TERM) to the group, wait up to TIMEOUT_S (10)
#                                  for the main process, SIGKILL the group after that; returns the
#                                  main process's exit status (128+n when killed by signal n)
#   kill9_service NAME             SIGKILL the whole group at once and reap it (fault tests)
#   start_redis [ARGS...]          redis-server on a free port, data in $AW_TEST_DIR/redis, no RDB
#                                  snapshots, appendonly $AW_REDIS_APPENDONLY (default "no"); ARGS are
#                                  appended (so they win), e.g. --appendonly yes --appendfsync always.
#                                  Waits for PING. Exports AW_TEST_REDIS_PORT, AW_TEST_REDIS_URL
#   stop_redis                     graceful stop (SIGTERM: redis flushes the AOF), returns its status
#   kill9_redis                    SIGKILL redis (no flush); restart_redis brings it back
#   restart_redis                  stop if running, start again: same port, same dir, same args
#   redis_cmd ARGS...              redis-cli against the test redis (raw output)
#   start_redis_cluster [N]        N (default 3) redis-server masters on free ports (cluster mode,
#                                  no persistence, configs in $AW_TEST_DIR/cluster), joined with
#                                  `redis-cli --cluster create` (no replicas); waits until every
#                                  node says cluster_state:ok and agrees on the slot map. Exports
#                                  AW_TEST_REDIS_CLUSTER_PORTS ("p1 p2 p3"), AW_TEST_REDIS_PORT (p1)
#                                  and AW_TEST_REDIS_URL=redis://127.0.0.1:p1,127.0.0.1:p2,... (the
#                                  seed list of common/redis_url.h). Services redis-node1..N
#   cluster_cmd ARGS...            redis-cli -c (follows MOVED/ASK) against the cluster (raw output)
#   cluster_node_id PORT           print the node id of the master on PORT
#   cluster_slot_port SLOT         print the port of the master serving SLOT (as that node's
#                                  CLUSTER NODES says); 1 when none
#   cluster_key_port KEY           the same for the slot of KEY (CLUSTER KEYSLOT)
#   cluster_wait_ok [TIMEOUT_S]    fail unless every node says cluster_state:ok and
#                                  `redis-cli --cluster check` passes within TIMEOUT_S (30)
#   reshard_cluster FROM_PORT TO_PORT SLOTS [ARGS...]
#                                  `redis-cli --cluster reshard` moving SLOTS slots (the lowest
#                                  ones FROM serves) from the master on FROM_PORT to the one on
#                                  TO_PORT while clients keep running (ARGS appended, e.g.
#                                  --cluster-pipeline 1); bounded (120 s); output in
#                                  $AW_TEST_DIR/reshard.log; fails the test when it fails, then
#                                  waits for cluster_wait_ok
#   cluster_slot_open SLOT FROM_PORT TO_PORT
#                                  start moving SLOT by hand, as a reshard does: IMPORTING on TO,
#                                  MIGRATING on FROM (then keys move with cluster_slot_migrate_keys)
#   cluster_slot_migrate_keys FROM_PORT TO_PORT KEY...
#                                  MIGRATE those keys of the open slot from FROM to TO
#   cluster_slot_close SLOT FROM_PORT TO_PORT
#                                  migrate every key of SLOT still on FROM, then SETSLOT NODE TO on
#                                  every master; waits for cluster_wait_ok
#   start_devbroker [ARGS...]      $AW_BUILD_DIR/tests/aw_devbroker ARGS (e.g. --brokers 2
#                                  --topic events:3); waits for its bootstrap file; exports
#                                  AW_TEST_BROKERS (the bootstrap list)
#   stop_devbroker                 SIGTERM, returns the broker's exit status (0 when clean)
#   produce_file TOPIC FILE [KCAT_ARGS...]
#                                  one record per non-empty line; "key<TAB>value" sets the key
#                                  (first TAB splits; a line without TAB has a null key); extra args
#                                  go to kcat, e.g. -H name=value for headers. Waits for delivery.
#   consume_topic TOPIC COUNT TIMEOUT_S [KCAT_ARGS...]
#                                  wait until TOPIC holds at least COUNT records (from the
#                                  beginning), then print every record in it, one JSON object per
#                                  line as kcat -J writes it: {"topic","partition","offset","tstype",
#                                  "ts","broker","headers":[name,value,...],"key","payload"}
#                                  (key/payload null when absent). 1 on timeout (with a message).
#   start_klaviyo_sim [ARGS...]    tests/klaviyo_sim/klaviyo_sim.py on a free 127.0.0.1 port (its
#                                  documented CLI: --port 0 --port-file; ARGS appended, e.g.
#                                  --job-delay 0.2); waits for the port file; exports
#                                  AW_TEST_KLAVIYO_PORT, AW_TEST_KLAVIYO_URL (http://127.0.0.1:PORT)
#   stop_klaviyo_sim               SIGTERM, returns the simulator's exit status
#   sim_control WHAT JSON          POST JSON to the simulator's /_sim/WHAT (faults, config, reset)
#   sim_eval PYEXPR                0 when the Python expression PYEXPR is true of the simulator's
#                                  state (GET /_sim/state, bound to `s`), e.g. sim_eval 's["jobs"]'
#   start_worker NAME [VAR=VALUE...]
#                                  `aw-worker run` as service NAME wired to the services started
#                                  here: AW_KAFKA_BROKERS, AW_REDIS_URL, AW_KLAVIYO_BASE_URL (when a
#                                  simulator runs), AW_KAFKA_CONFIG_FILE ($AW_TEST_DIR/kafka.conf,
#                                  written once: session.timeout.ms=6000 for the mock coordinator),
#                                  AW_HTTP_ADDR=127.0.0.1:<free port>, AW_INSTANCE_ID=NAME and fast
#                                  test timings (AW_FLUSH_TICK_MS=100 AW_LEASE_TTL_MS=3000
#                                  AW_KLAVIYO_JOB_POLL_MS=100); VAR=VALUE arguments come last and
#                                  win. Waits until its /healthz answers (fails if it exits first
#                                  or after 15 s). Sets AW_WORKER_PORT[NAME]
#   stop_worker NAME [TIMEOUT_S]   SIGTERM (drain), wait up to TIMEOUT_S (30); returns the exit status
#   worker_url NAME                print http://127.0.0.1:PORT of its /metrics, /status, /healthz
#   worker_metric NAME METRIC      print the value of an unlabelled metric from /metrics; 1 when
#                                  the worker does not answer or has no such metric
#   worker_is_leader NAME          0 when its /status says "leader":true
#   leader_of NAME...              print the first NAME that holds the lease; 1 when none does
#   wait_metric NAME METRIC OP VALUE TIMEOUT_S
#                                  poll /metrics every 0.1 s until `METRIC OP VALUE` holds (OP: one
#                                  of test's -eq -ne -gt -ge -lt -le); fails the test with the last
#                                  value seen on timeout, or at once when the worker exited
#   records_kv                     filter: JSON lines on stdin -> "key<TAB>payload" lines (null -> "")
#   records_header NAME            filter: JSON lines -> the value of header NAME per record ("" if none)
#
# Environment: AW_SOURCE_DIR, AW_BUILD_DIR (set by ctest; default build/release under the source
# root), AW_KEEP_TEST_DIR=1 keeps the work dir for inspection.

if [ -n "${AW_LIB_SH_LOADED:-}" ]; then
    return 0
fi
AW_LIB_SH_LOADED=1

AW_SOURCE_DIR=${AW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
AW_BUILD_DIR=${AW_BUILD_DIR:-$AW_SOURCE_DIR/build/release}
export AW_SOURCE_DIR AW_BUILD_DIR

declare -gA AW_SVC_PID=()  # name -> pid (== process group id)
declare -gA AW_SVC_CMD=()  # name -> command, for messages
declare -ga AW_EXIT_HOOKS=()
declare -gA AW_WORKER_PORT=() # worker name -> its AW_HTTP_ADDR port
AW_REDIS_ARGS=()

note() {
    printf '# %s %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# ---- work dir, cleanup, reaper -------------------------------------------------------------

AW_TEST_NAME=${AW_TEST_NAME:-$(basename "${0:-aw}" .sh)}
AW_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/aw-${AW_TEST_NAME}.XXXXXX") || {
    echo "FAIL: cannot create a work dir under ${TMPDIR:-/tmp}" >&2
    exit 1
}
export AW_TEST_DIR
: >"$AW_TEST_DIR/.pgids"

# Kills every recorded process group once the test shell is gone, whatever killed it. It runs in
# its own session with no inherited stdout/stderr, so it never keeps ctest's pipes open.
_aw_start_reaper() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid bash -c '
        shell=$1 dir=$2
        while kill -0 "$shell" 2>/dev/null; do sleep 1; done
        if [ -f "$dir/.pgids" ]; then
            while read -r g; do [ -n "$g" ] && kill -KILL -- "-$g" 2>/dev/null; done <"$dir/.pgids"
        fi
        [ -f "$dir/.keep" ] || rm -rf -- "$dir"
    ' aw-reaper "$$" "$AW_TEST_DIR" </dev/null >/dev/null 2>&1 &
    AW_REAPER_PID=$!
}

on_exit() {
    AW_EXIT_HOOKS+=("$1")
}

_aw_cleanup() {
    local rc=$? name pid deadline h
    trap - EXIT INT TERM
    set +e
    for h in "${AW_EXIT_HOOKS[@]}"; do
        eval "$h"
    done
    # Show the end of each service log when the test failed: CI output is all we get.
    if [ "$rc" -ne 0 ]; then
        for name in "${!AW_SVC_CMD[@]}"; do
            if [ -s "$AW_TEST_DIR/$name.log" ]; then
                printf -- '--- last lines of %s.log ---\n' "$name" >&2
                tail -n 25 "$AW_TEST_DIR/$name.log" >&2
            fi
        done
    fi
    for name in "${!AW_SVC_PID[@]}"; do
        kill -TERM -- "-${AW_SVC_PID[$name]}" 2>/dev/null
    done
    deadline=$((SECONDS + 5))
    for name in "${!AW_SVC_PID[@]}"; do
        pid=${AW_SVC_PID[$name]}
        while _aw_pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -n "${AW_REAPER_PID:-}" ]; then
        kill -KILL "$AW_REAPER_PID" 2>/dev/null
        wait "$AW_REAPER_PID" 2>/dev/null
    fi
    if [ "${AW_KEEP_TEST_DIR:-0}" = 1 ]; then
        note "work dir kept: $AW_TEST_DIR"
    else
        rm -rf -- "$AW_TEST_DIR"
    fi
    exit "$rc"
}

trap _aw_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ "${AW_KEEP_TEST_DIR:-0}" = 1 ] && : >"$AW_TEST_DIR/.keep"
_aw_start_reaper

# ---- small utilities -------------------------------------------------------------------------

require_cmd() {
    local c
    for c in "$@"; do
        if [[ $c == */* ]]; then
            [ -x "$c" ] || fail "required binary missing or not executable: $c (build it first)"
        else
            command -v "$c" >/dev/null 2>&1 ||
                fail "required command missing: $c (run scripts/install-deps.sh)"
        fi
    done
}

aw_bin() {
    if [ -x "$AW_BUILD_DIR/tests/$1" ]; then
        printf '%s\n' "$AW_BUILD_DIR/tests/$1"
    else
        printf '%s\n' "$AW_BUILD_DIR/$1"
    fi
}

require_built() {
    local b
    for b in "$@"; do
        require_cmd "$(aw_bin "$b")"
    done
}

free_port() {
    python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

wait_until() {
    local cmd=$1 timeout_s=$2
    local deadline
    deadline=$(($(date +%s%N) / 1000000 + timeout_s * 1000))
    while :; do
        if eval "$cmd" >/dev/null 2>&1; then
            return 0
        fi
        if [ $(($(date +%s%N) / 1000000)) -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.1
    done
}

wait_for() {
    local desc=$1 timeout_s=$2
    shift 2
    wait_until "$*" "$timeout_s" || fail "timed out after ${timeout_s}s waiting for $desc"
}

# ---- generic services ------------------------------------------------------------------------

# True while pid exists and is not a zombie (a zombie child still answers kill -0).
_aw_pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ -n "$stat" ] && [ "${stat%% *}" != Z ]
}

start_service() {
    local name=$1
    shift
    [ -z "${AW_SVC_PID[$name]:-}" ] || fail "service $name already started"
    # A background job of a non-interactive shell is not a group leader, so setsid does not fork:
    # $! is the service itself and its pid is the new process group id.
    setsid "$@" </dev/null >>"$AW_TEST_DIR/$name.log" 2>&1 &
    local pid=$!
    AW_SVC_PID[$name]=$pid
    AW_SVC_CMD[$name]="$*"
    echo "$pid" >>"$AW_TEST_DIR/.pgids"
}

service_pid() {
    [ -n "${AW_SVC_PID[$1]:-}" ] || return 1
    printf '%s\n' "${AW_SVC_PID[$1]}"
}

service_is_running() {
    [ -n "${AW_SVC_PID[$1]:-}" ] && _aw_pid_alive "${AW_SVC_PID[$1]}"
}

# Reaps a finished service and forgets it; prints nothing, returns its exit status.
_aw_reap() {
    local name=$1 pid=${AW_SVC_PID[$1]} rc=0
    wait "$pid" 2>/dev/null || rc=$?
    unset "AW_SVC_PID[$name]"
    return "$rc"
}

stop_service() {
    local name=$1 sig=${2:-TERM} timeout_s=${3:-10}
    local pid=${AW_SVC_PID[$name]:-}
    [ -n "$pid" ] || fail "stop_service: unknown service $name"
    kill "-$sig" -- "-$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout_s))
    while _aw_pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.05
    done
    if _aw_pid_alive "$pid"; then
        note "$name did not stop within ${timeout_s}s after SIG$sig; killing it"
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    _aw_reap "$name"
}

kill9_service() {
    local name=$1 pid=${AW_SVC_PID[$1]:-}
    [ -n "$pid" ] || fail "kill9_service: unknown service $name"
    kill -KILL -- "-$pid" 2>/dev/null || true
    _aw_reap "$name" || true
}

# ---- redis -----------------------------------------------------------------------------------

redis_cmd() {
    redis-cli -h 127.0.0.1 -p "$AW_TEST_REDIS_PORT" "$@"
}

_aw_redis_launch() {
    mkdir -p "$AW_TEST_DIR/redis"
    start_service redis redis-server --bind 127.0.0.1 --port "$AW_TEST_REDIS_PORT" \
        --dir "$AW_TEST_DIR/redis" --daemonize no --save "" \
        --appendonly "${AW_REDIS_APPENDONLY:-no}" "${AW_REDIS_ARGS[@]}"
    local deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$(redis_cmd ping 2>/dev/null)" = PONG ]; then
            return 0
        fi
        service_is_running redis || fail "redis-server exited at start (see $AW_TEST_DIR/redis.log)"
        sleep 0.05
    done
    fail "redis-server did not answer PING on port $AW_TEST_REDIS_PORT within 10s"
}

start_redis() {
    require_cmd redis-server redis-cli
    AW_REDIS_ARGS=("$@")
    AW_TEST_REDIS_PORT=$(free_port)
    AW_TEST_REDIS_URL="redis://127.0.0.1:$AW_TEST_REDIS_PORT/0"
    export AW_TEST_REDIS_PORT AW_TEST_REDIS_URL
    _aw_redis_launch
    note "redis on 127.0.0.1:$AW_TEST_REDIS_PORT"
}

stop_redis() {
    stop_service redis TERM 10
}

kill9_redis() {
    kill9_service redis
}

restart_redis() {
    [ -n "${AW_TEST_REDIS_PORT:-}" ] || fail "restart_redis: start_redis was never called"
    if [ -n "${AW_SVC_PID[redis]:-}" ]; then
        stop_redis || note "redis exited with status $? while stopping for restart"
    fi
    _aw_redis_launch
    note "redis restarted on 127.0.0.1:$AW_TEST_REDIS_PORT"
}

# ---- redis cluster ---------------------------------------------------------------------------

cluster_cmd() {
    redis-cli -c -h 127.0.0.1 -p "${AW_TEST_REDIS_CLUSTER_PORTS%% *}" "$@"
}

cluster_node_id() {
    local id
    id=$(timeout 5 redis-cli -h 127.0.0.1 -p "$1" CLUSTER MYID 2>/dev/null) || return 1
    [ -n "$id" ] || return 1
    printf '%s\n' "$id"
}

cluster_slot_port() {
    local slot=$1 port
    for port in $AW_TEST_REDIS_CLUSTER_PORTS; do
        # "<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot|lo-hi|[..]>..."
        # Migration markers ("[slot->-id]", "[slot-<-id]") are not ownership: skipped.
        timeout 5 redis-cli -h 127.0.0.1 -p "$port" CLUSTER NODES 2>/dev/null |
            awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ {
                for (i = 9; i <= NF; i++) {
                    if ($i ~ /^\[/) continue
                    n = split($i, r, "-"); lo = r[1] + 0; hi = (n == 2 ? r[2] : r[1]) + 0
                    if (s + 0 >= lo && s + 0 <= hi) {
                        a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a); print a; found = 1; exit
                    }
                }
            } END { exit !found }' && return 0
    done
    return 1
}

cluster_key_port() {
    local slot
    slot=$(timeout 5 redis-cli -h 127.0.0.1 -p "${AW_TEST_REDIS_CLUSTER_PORTS%% *}" CLUSTER KEYSLOT "$1") ||
        return 1
    cluster_slot_port "$slot"
}

# 0 when every node says cluster_state:ok and redis-cli finds the slot map consistent (all
# slots covered, every node agrees, no slot left open by a migration).
_aw_cluster_ok() {
    local port first=${AW_TEST_REDIS_CLUSTER_PORTS%% *}
    for port in $AW_TEST_REDIS_CLUSTER_PORTS; do
        timeout 5 redis-cli -h 127.0.0.1 -p "$port" CLUSTER INFO 2>/dev/null |
            grep -q '^cluster_state:ok' || return 1
    done
    local out
    out=$(timeout 10 redis-cli --cluster check "127.0.0.1:$first" 2>&1) || return 1
    grep -q 'All nodes agree about slots configuration' <<<"$out" &&
        grep -q 'All 16384 slots covered' <<<"$out" && ! grep -q '\[WARNING\]' <<<"$out"
}

cluster_wait_ok() {
    wait_for "the redis cluster to be ok (cluster_state:ok, slots agreed)" "${1:-30}" _aw_cluster_ok
}

start_redis_cluster() {
    local n=${1:-3} i port
    require_cmd redis-server redis-cli
    [ "$n" -ge 3 ] || fail "start_redis_cluster: a cluster needs at least 3 masters"
    [ -z "${AW_TEST_REDIS_CLUSTER_PORTS:-}" ] || fail "start_redis_cluster: already started"
    local dir="$AW_TEST_DIR/cluster" ports=() seeds addrs=() bus=""
    mkdir -p "$dir"
    for ((i = 1; i <= n; i++)); do
        # The cluster bus port is named too: port + 10000 (the default) may be taken, or
        # beyond 65535 for a kernel-chosen port. free_port can repeat a port it handed out
        # once that was closed again: never reuse one within the cluster.
        port=$(free_port)
        while [[ " ${ports[*]} $bus " == *" $port "* ]]; do port=$(free_port); done
        local bport
        bport=$(free_port)
        while [[ " ${ports[*]} $bus $port " == *" $bport "* ]]; do bport=$(free_port); done
        ports+=("$port")
        bus+=" $bport"
        start_service "redis-node$i" redis-server --bind 127.0.0.1 --port "$port" \
            --cluster-port "$bport" --dir "$dir" --daemonize no --cluster-enabled yes \
            --cluster-config-file "$dir/nodes-$port.conf" --cluster-node-timeout 5000 \
            --appendonly no --save ''
    done
    for ((i = 1; i <= n; i++)); do
        port=${ports[i - 1]}
        local deadline=$((SECONDS + 10))
        until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; do
            service_is_running "redis-node$i" ||
                fail "redis-server (cluster node $i) exited at start (see $AW_TEST_DIR/redis-node$i.log)"
            [ "$SECONDS" -lt "$deadline" ] ||
                fail "redis-server (cluster node $i) did not answer PING on port $port within 10s"
            sleep 0.05
        done
        addrs+=("127.0.0.1:$port")
    done
    timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
        >"$dir/create.log" 2>&1 || {
        tail -n 20 "$dir/create.log" >&2
        fail "redis-cli --cluster create failed (see above)"
    }
    AW_TEST_REDIS_CLUSTER_PORTS="${ports[*]}"
    AW_TEST_REDIS_PORT=${ports[0]}
    seeds=$(IFS=,; echo "${addrs[*]}")
    AW_TEST_REDIS_URL="redis://$seeds"
    export AW_TEST_REDIS_CLUSTER_PORTS AW_TEST_REDIS_PORT AW_TEST_REDIS_URL
    cluster_wait_ok 30
    note "redis cluster of $n masters on 127.0.0.1 ports ${ports[*]}"
}

reshard_cluster() {
    local from=$1 to=$2 slots=$3
    shift 3
    [ -n "${AW_TEST_REDIS_CLUSTER_PORTS:-}" ] || fail "reshard_cluster: no cluster (call start_redis_cluster)"
    local from_id to_id
    from_id=$(cluster_node_id "$from") || fail "reshard_cluster: no node on port $from"
    to_id=$(cluster_node_id "$to") || fail "reshard_cluster: no node on port $to"
    local t0=$SECONDS
    {
        printf -- '--- reshard %s slots %s -> %s\n' "$slots" "$from" "$to"
        timeout 120 redis-cli --cluster reshard "127.0.0.1:$from" --cluster-from "$from_id" \
            --cluster-to "$to_id" --cluster-slots "$slots" --cluster-yes "$@" 2>&1
    } >>"$AW_TEST_DIR/reshard.log" || {
        tail -n 20 "$AW_TEST_DIR/reshard.log" >&2
        fail "redis-cli --cluster reshard $from -> $to failed (see above)"
    }
    cluster_wait_ok 30
    note "resharded $slots slots 127.0.0.1:$from -> 127.0.0.1:$to in $((SECONDS - t0))s"
}

cluster_slot_open() {
    local slot=$1 from=$2 to=$3 from_id to_id
    from_id=$(cluster_node_id "$from") || fail "cluster_slot_open: no node on port $from"
    to_id=$(cluster_node_id "$to") || fail "cluster_slot_open: no node on port $to"
    [ "$(redis-cli -h 127.0.0.1 -p "$to" CLUSTER SETSLOT "$slot" IMPORTING "$from_id")" = OK ] &&
        [ "$(redis-cli -h 127.0.0.1 -p "$from" CLUSTER SETSLOT "$slot" MIGRATING "$to_id")" = OK ] ||
        fail "cannot open slot $slot for migration $from -> $to"
}

cluster_slot_migrate_keys() {
    local from=$1 to=$2 out
    shift 2
    out=$(timeout 30 redis-cli -h 127.0.0.1 -p "$from" MIGRATE 127.0.0.1 "$to" "" 0 5000 KEYS "$@" 2>&1)
    [ "$out" = OK ] || [ "$out" = NOKEY ] || fail "MIGRATE $from -> $to: $out"
}

cluster_slot_close() {
    local slot=$1 from=$2 to=$3 to_id port keys deadline=$((SECONDS + 60))
    to_id=$(cluster_node_id "$to") || fail "cluster_slot_close: no node on port $to"
    while :; do
        mapfile -t keys < <(timeout 10 redis-cli -h 127.0.0.1 -p "$from" CLUSTER GETKEYSINSLOT "$slot" 200)
        [ "${#keys[@]}" -gt 0 ] && [ -n "${keys[0]}" ] || break
        cluster_slot_migrate_keys "$from" "$to" "${keys[@]}"
        [ "$SECONDS" -lt "$deadline" ] || fail "slot $slot: keys still on $from after 60 s"
    done
    # The new owner first, then the old one, then the others (what redis-cli does).
    for port in "$to" "$from" $AW_TEST_REDIS_CLUSTER_PORTS; do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" CLUSTER SETSLOT "$slot" NODE "$to_id")" = OK ] ||
            fail "CLUSTER SETSLOT $slot NODE on $port failed"
    done
    cluster_wait_ok 30
}

# ---- dev broker and kcat ---------------------------------------------------------------------

start_devbroker() {
    local bin
    bin=$(aw_bin aw_devbroker)
    require_cmd "$bin" kcat
    local boot="$AW_TEST_DIR/devbroker.bootstrap"
    rm -f "$boot"
    start_service devbroker "$bin" --bootstrap-file "$boot" "$@"
    local deadline=$((SECONDS + 10))
    while [ ! -s "$boot" ]; do
        service_is_running devbroker ||
            fail "aw_devbroker exited at start (see $AW_TEST_DIR/devbroker.log)"
        [ "$SECONDS" -lt "$deadline" ] || fail "aw_devbroker wrote no bootstrap file within 10s"
        sleep 0.05
    done
    AW_TEST_BROKERS=$(head -n 1 "$boot")
    export AW_TEST_BROKERS
    note "dev broker at $AW_TEST_BROKERS"
}

stop_devbroker() {
    stop_service devbroker TERM 10
}

produce_file() {
    local topic=$1 file=$2
    shift 2
    [ -n "${AW_TEST_BROKERS:-}" ] || fail "produce_file: no broker (call start_devbroker)"
    [ -r "$file" ] || fail "produce_file: cannot read $file"
    # kcat waits for delivery reports before exiting and exits non-zero when one failed.
    # (A file named on kcat's command line would become one single record: use stdin.)
    timeout 30 kcat -b "$AW_TEST_BROKERS" -t "$topic" -P -K $'\t' \
        -X message.timeout.ms=10000 "$@" <"$file"
}

consume_topic() {
    local topic=$1 count=$2 timeout_s=$3
    shift 3
    [ -n "${AW_TEST_BROKERS:-}" ] || fail "consume_topic: no broker (call start_devbroker)"
    local out="$AW_TEST_DIR/.consume.$$.$RANDOM" n=0
    local deadline=$((SECONDS + timeout_s))
    while :; do
        # -e: stop at the end of every partition, so each pass is a snapshot of the topic.
        if timeout 15 kcat -b "$AW_TEST_BROKERS" -t "$topic" -C -o beginning -e -J -q "$@" \
            >"$out" 2>"$out.err"; then
            n=$(wc -l <"$out")
            if [ "$n" -ge "$count" ]; then
                cat "$out"
                rm -f "$out" "$out.err"
                return 0
            fi
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "consume_topic: $topic has $n record(s), wanted $count, after ${timeout_s}s" >&2
            [ -s "$out.err" ] && tail -n 5 "$out.err" >&2
            rm -f "$out" "$out.err"
            return 1
        fi
        sleep 0.2
    done
}

# ---- Klaviyo simulator (tests/klaviyo_sim/, owned by its own module) -------------------------

start_klaviyo_sim() {
    require_cmd python3
    local sim="$AW_SOURCE_DIR/tests/klaviyo_sim/klaviyo_sim.py"
    [ -f "$sim" ] || fail "Klaviyo simulator missing: $sim"
    local pf="$AW_TEST_DIR/klaviyo_sim.port"
    rm -f "$pf"
    start_service klaviyo_sim python3 "$sim" --host 127.0.0.1 --port 0 --port-file "$pf" "$@"
    local deadline=$((SECONDS + 15))
    while [ ! -s "$pf" ]; do
        service_is_running klaviyo_sim ||
            fail "Klaviyo simulator exited at start (see $AW_TEST_DIR/klaviyo_sim.log)"
        [ "$SECONDS" -lt "$deadline" ] || fail "Klaviyo simulator wrote no port file within 15s"
        sleep 0.05
    done
    AW_TEST_KLAVIYO_PORT=$(head -n 1 "$pf")
    AW_TEST_KLAVIYO_URL="http://127.0.0.1:$AW_TEST_KLAVIYO_PORT"
    export AW_TEST_KLAVIYO_PORT AW_TEST_KLAVIYO_URL
    note "Klaviyo simulator at $AW_TEST_KLAVIYO_URL"
}

stop_klaviyo_sim() {
    stop_service klaviyo_sim TERM 10
}

sim_control() {
    [ -n "${AW_TEST_KLAVIYO_URL:-}" ] || fail "sim_control: no simulator (call start_klaviyo_sim)"
    curl -sf -X POST -H 'Content-Type: application/json' -d "$2" \
        "$AW_TEST_KLAVIYO_URL/_sim/$1" >/dev/null || fail "simulator refused /_sim/$1 $2"
}

sim_eval() {
    [ -n "${AW_TEST_KLAVIYO_URL:-}" ] || fail "sim_eval: no simulator (call start_klaviyo_sim)"
    python3 -c 'import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1] + "/_sim/state", timeout=10))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$AW_TEST_KLAVIYO_URL" "$1"
}

# ---- aw-worker -------------------------------------------------------------------------------

start_worker() {
    local name=$1
    shift
    local bin port
    bin=$(aw_bin aw-worker)
    require_cmd "$bin" curl
    [ -n "${AW_TEST_BROKERS:-}" ] || fail "start_worker: no broker (call start_devbroker)"
    [ -n "${AW_TEST_REDIS_URL:-}" ] || fail "start_worker: no redis (call start_redis)"
    [ -f "$AW_TEST_DIR/kafka.conf" ] ||
        printf '# The mock coordinator keeps a departed member for its session timeout.\nsession.timeout.ms=6000\n' \
            >"$AW_TEST_DIR/kafka.conf"
    port=$(free_port)
    AW_WORKER_PORT[$name]=$port
    local -a env=(AW_KAFKA_BROKERS="$AW_TEST_BROKERS" AW_REDIS_URL="$AW_TEST_REDIS_URL"
        AW_KAFKA_CONFIG_FILE="$AW_TEST_DIR/kafka.conf" AW_HTTP_ADDR="127.0.0.1:$port"
        AW_INSTANCE_ID="$name" AW_FLUSH_TICK_MS=100 AW_LEASE_TTL_MS=3000 AW_KLAVIYO_JOB_POLL_MS=100
        AW_KLAVIYO_CONSENT_SETTLE_MS=1500) # above the simulator's slowest job in any test (0.9 s)
    if [ -n "${AW_TEST_KLAVIYO_URL:-}" ]; then
        env+=(AW_KLAVIYO_BASE_URL="$AW_TEST_KLAVIYO_URL")
    fi
    # The test harness's own AW_* variables are not settings: keep them from the worker, which
    # warns about every unknown AW_* variable.
    local -a unset=() v
    for v in $(compgen -e); do
        case $v in AW_TEST_* | AW_BUILD_DIR | AW_SOURCE_DIR | AW_KEEP_TEST_DIR) unset+=(-u "$v") ;; esac
    done
    start_service "$name" env "${unset[@]}" "${env[@]}" "$@" "$bin" run
    local deadline=$((SECONDS + 15))
    until curl -sf --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
        service_is_running "$name" || fail "$name exited at start (see $AW_TEST_DIR/$name.log)"
        [ "$SECONDS" -lt "$deadline" ] || fail "$name did not answer /healthz on port $port within 15s"
        sleep 0.05
    done
    note "$name up (http://127.0.0.1:$port)"
}

stop_worker() {
    stop_service "$1" TERM "${2:-30}"
}

worker_url() {
    [ -n "${AW_WORKER_PORT[$1]:-}" ] || fail "worker_url: unknown worker $1"
    printf 'http://127.0.0.1:%s\n' "${AW_WORKER_PORT[$1]}"
}

worker_metric() {
    local url
    url=$(worker_url "$1")
    curl -sf --max-time 2 "$url/metrics" | awk -v m="$2" '$1 == m { print $2; found = 1 } END { exit !found }'
}

worker_is_leader() {
    local url
    url=$(worker_url "$1")
    curl -sf --max-time 2 "$url/status" | grep -q '"leader":true'
}

leader_of() {
    local w
    for w in "$@"; do
        if worker_is_leader "$w"; then
            printf '%s\n' "$w"
            return 0
        fi
    done
    return 1
}

wait_metric() {
    local name=$1 metric=$2 op=$3 want=$4 timeout_s=$5 v=""
    case $op in -eq | -ne | -gt | -ge | -lt | -le) ;; *) fail "wait_metric: bad operator $op" ;; esac
    local deadline=$(($(date +%s%N) / 1000000 + timeout_s * 1000))
    while :; do
        v=$(worker_metric "$name" "$metric" 2>/dev/null) || v=""
        if [ -n "$v" ] && [ "$v" "$op" "$want" ]; then
            return 0
        fi
        service_is_running "$name" ||
            fail "$name exited while waiting for $metric $op $want (see $AW_TEST_DIR/$name.log)"
        [ $(($(date +%s%N) / 1000000)) -lt "$deadline" ] ||
            fail "$name: $metric is ${v:-unavailable} after ${timeout_s}s, want $op $want"
        sleep 0.1
    done
}

# ---- record filters --------------------------------------------------------------------------

records_kv() {
    python3 -c 'import json, sys
for line in sys.stdin:
    if line.strip():
        r = json.loads(line)
        print("%s\t%s" % (r.get("key") or "", r.get("payload") or ""))'
}

records_header() {
    python3 -c 'import json, sys
name = sys.argv[1]
for line in sys.stdin:
    if line.strip():
        h = json.loads(line).get("headers") or []
        vals = [h[i + 1] for i in range(0, len(h) - 1, 2) if h[i] == name]
        print(vals[0] if vals else "")' "$1"
}
