#!/usr/bin/env bash
# smoke_image.sh -- runs the container image scripts/build-image.sh built, with podman (runc):
#   --version; --check-config exits 0 with AW_KAFKA_BROKERS set and 78 without; the process runs
#   as uid 10001; `run` against a real redis-server and the dev broker (on 127.0.0.1, the
#   container on the host network) serves /healthz, /readyz and /metrics; SIGTERM exits 0.
#
#   scripts/build-image.sh && bash tests/integration/smoke_image.sh [IMAGE]
# Named smoke_*, not test_*, so tests/CMakeLists.txt's glob does not register it in ctest.
#
# Needs root and podman (the image store of build-image.sh: same CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF). Not in scripts/test.sh nor ctest's default run: CI machines may
# not allow containers. A missing image or tool is a failure, never a skip.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
source "$HERE/lib.sh"
# shellcheck source=../../scripts/build-image.sh
source "$SRC/scripts/build-image.sh" # functions only (main runs when executed, not sourced)

require_cmd podman runc curl redis-server
require_built aw_devbroker
aw_image_env

version=$(sed -n 's/^project([^)]*VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt" | head -1)
IMAGE=${1:-aw-worker:$version}
podman image exists "$IMAGE" || fail "image $IMAGE not in the store: run scripts/build-image.sh"
note "image $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"

run_image() { timeout 120 podman run --rm --network host "$@"; }

# ---- --version ------------------------------------------------------------------------------
out=$(run_image "$IMAGE" --version) || fail "--version exited $?"
[[ $out == "aw-worker $version" ]] || fail "--version printed '$out', want 'aw-worker $version'"
note "--version: $out"

# ---- --check-config: 0 with brokers, 78 without ----------------------------------------------
set +e
out=$(run_image -e AW_KAFKA_BROKERS=kafka:9092 "$IMAGE" --check-config 2>&1)
rc=$?
set -e
[[ $rc == 0 ]] || fail "--check-config with brokers exited $rc: $out"
grep -q '^AW_KAFKA_BROKERS=kafka:9092$' <<<"$out" || fail "--check-config did not print brokers"
set +e
out=$(run_image "$IMAGE" --check-config 2>&1)
rc=$?
set -e
[[ $rc == 78 ]] || fail "--check-config without brokers exited $rc (want 78): $out"
grep -q 'AW_KAFKA_BROKERS' <<<"$out" || fail "--check-config did not name AW_KAFKA_BROKERS"
note "--check-config: 0 with brokers, 78 without"

# ---- run: uid, HTTP, SIGTERM -----------------------------------------------------------------
start_redis
start_devbroker --brokers 1 --topic "mparticle.audience:2"
HTTP_PORT=$(free_port)
NAME=aw-image-test-$$
on_exit "podman rm -f -t 0 $NAME >/dev/null 2>&1 || true"
podman run -d --name "$NAME" --network host \
    -e AW_KAFKA_BROKERS="$AW_TEST_BROKERS" -e AW_REDIS_URL="$AW_TEST_REDIS_URL" \
    -e AW_HTTP_ADDR="127.0.0.1:$HTTP_PORT" -e AW_INSTANCE_ID=image-test \
    -e AW_KLAVIYO_BASE_URL=http://127.0.0.1:9 --read-only --cap-drop ALL \
    --security-opt no-new-privileges "$IMAGE" run >/dev/null || fail "podman run -d failed"

url=http://127.0.0.1:$HTTP_PORT
wait_for "/healthz 200" 60 "curl -fsS $url/healthz >/dev/null" || true
if ! curl -fsS "$url/healthz" >/dev/null; then
    podman logs "$NAME" >&2 || true
    fail "/healthz not served"
fi
wait_for "/readyz 200 (redis and the consumer group)" 60 "curl -fsS $url/readyz >/dev/null"
metrics=$(curl -fsS "$url/metrics") || fail "/metrics not served"
grep -q '^# TYPE aw_leader gauge$' <<<"$metrics" || fail "/metrics has no aw_leader"
wait_for "aw_partitions_assigned > 0" 60 \
    "curl -fsS $url/metrics | grep -Eq '^aw_partitions_assigned [1-9]'"
note "/healthz, /readyz and /metrics served from the container"

pid=$(podman inspect --format '{{.State.Pid}}' "$NAME")
[[ $pid =~ ^[0-9]+$ && $pid != 0 ]] || fail "no pid for $NAME"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
gid=$(awk '/^Gid:/ {print $2}' "/proc/$pid/status")
[[ $uid == 10001 && $gid == 10001 ]] || fail "aw-worker runs as uid $uid gid $gid, want 10001"
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
[[ $caps == 0000000000000000 ]] || fail "aw-worker has capabilities $caps"
note "process $pid: uid $uid gid $gid, no capabilities"

podman kill --signal TERM "$NAME" >/dev/null || fail "podman kill failed"
rc=$(timeout 60 podman wait "$NAME") || fail "container did not stop within 60 s of SIGTERM"
if [[ $rc != 0 ]]; then
    podman logs "$NAME" 2>&1 | tail -20 >&2
    fail "SIGTERM: exit $rc, want 0"
fi
podman logs "$NAME" 2>&1 | grep -q 'msg=' || fail "no logfmt lines in the container's log"
note "SIGTERM: exit 0"
echo "PASS smoke_image"
