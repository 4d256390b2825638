#!/usr/bin/env bash
# build-image.sh -- builds the aw-worker container image from ./Dockerfile without a Docker daemon.
#
#   scripts/build-image.sh [TAG]        # default TAG: aw-worker:<version of CMakeLists.txt>
#
# 1. The Debian bookworm base images the Dockerfile's FROM lines name (debian:bookworm for the
#    build stage, debian:bookworm-slim for the runtime stage) are made here from the Debian
#    mirror with `mmdebstrap --variant=minbase` (merged /usr, as Debian's own images) and
#    `podman import`ed, unless they are already in the local store (AW_REBASE=1 remakes them).
#    Nothing is pulled from a registry (`buildah bud --pull=never`).
# 2. `buildah bud --isolation chroot` builds the Dockerfile: no daemon, no user namespace.
# 3. The image is listed with its size; tests/integration/smoke_image.sh runs it.
#
# Environment: AW_IMAGE_STORAGE_DRIVER (default overlay; vfs where overlay cannot mount),
# AW_IMAGE_MIRROR (default http://deb.debian.org/debian), AW_IMAGE_STATE (default
# /var/tmp/aw-image: containers.conf and storage.conf written here, the image store under it).
# Needs root (mmdebstrap's root mode, the image store); installs mmdebstrap podman buildah runc
# with apt-get when they are missing. Source this file's env part from smoke_image.sh: it exports
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF so podman sees the same store.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${AW_IMAGE_STATE:-/var/tmp/aw-image}
DRIVER=${AW_IMAGE_STORAGE_DRIVER:-overlay}
MIRROR=${AW_IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${AW_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

aw_image_env() {
    mkdir -p "$STATE"
    # default_ulimits inside the sandbox's hard limits (podman's default nofile 1048576 exceeds
    # them and runc then fails with "setrlimit ... operation not permitted").
    local hard_nofile hard_nproc nofile nproc
    hard_nofile=$(ulimit -Hn)
    hard_nproc=$(ulimit -Hu)
    nofile=20000
    nproc=32768
    [[ $hard_nofile != unlimited && $hard_nofile -lt $nofile ]] && nofile=$hard_nofile
    [[ $hard_nproc != unlimited && $hard_nproc -lt $nproc ]] && nproc=$hard_nproc
    cat >"$STATE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
netns = "host"
cgroupns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    cat >"$STATE/storage.conf" <<EOF
[storage]
driver = "${DRIVER}"
graphroot = "${STATE}/storage"
runroot = "${STATE}/run"
EOF
    export CONTAINERS_CONF="$STATE/containers.conf"
    export CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
}

ensure_tools() {
    local missing=()
    for tool in mmdebstrap podman buildah runc; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            mmdebstrap podman buildah runc >&2
    fi
}

# make_base NAME SLIM: a minbase bookworm root file system, imported as NAME.
make_base() {
    local name=$1 slim=$2
    if [[ ${AW_REBASE:-0} != 1 ]] && podman image exists "$name"; then
        log "$name already in the store"
        return
    fi
    local opts=(--variant=minbase --format=tar --aptopt='Acquire::Retries "3"')
    local hooks=/usr/share/mmdebstrap/hooks/merged-usr
    [[ -d $hooks ]] && opts+=(--hook-dir="$hooks")
    if [[ $slim == 1 ]]; then
        # What debian:bookworm-slim leaves out: documentation, manual pages, translations.
        opts+=(--dpkgopt='path-exclude=/usr/share/man/*'
            --dpkgopt='path-exclude=/usr/share/doc/*'
            --dpkgopt='path-include=/usr/share/doc/*/copyright'
            --dpkgopt='path-exclude=/usr/share/info/*'
            --dpkgopt='path-exclude=/usr/share/locale/*'
            --dpkgopt='path-include=/usr/share/locale/locale.alias')
    fi
    # apt in the image: no recommends, no cached lists (as the Debian images).
    opts+=(--aptopt='APT::Install-Recommends "false"'
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin')
    log "mmdebstrap $name (slim=$slim) from $MIRROR"
    mmdebstrap "${opts[@]}" bookworm - \
        "deb $MIRROR bookworm main" \
        "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY_MIRROR bookworm-security main" |
        podman import --change 'CMD ["/bin/bash"]' - "$name" >/dev/null
    log "imported $name"
}

main() {
    [[ $(id -u) == 0 ]] || die "run as root (mmdebstrap root mode, the image store)"
    ensure_tools
    aw_image_env
    local version
    version=$(sed -n 's/^project([^)]*VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt" | head -1)
    local tag=${1:-aw-worker:${version:-dev}}

    # The FROM lines of the Dockerfile name the bases; make each one it uses.
    local from
    for from in $(sed -n 's/^FROM \([^ ]*\).*/\1/p' "$SRC/Dockerfile" | sort -u); do
        case $from in
        debian:bookworm) make_base docker.io/library/debian:bookworm 0 ;;
        debian:bookworm-slim) make_base docker.io/library/debian:bookworm-slim 1 ;;
        *) podman image exists "$from" || die "base image $from: not in the store, not made here" ;;
        esac
    done

    log "buildah bud $tag"
    buildah bud --isolation chroot --pull=never --network host --layers=false \
        --ulimit "nofile=20000:20000" -f "$SRC/Dockerfile" -t "$tag" "$SRC" >&2
    podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$tag"
    podman image inspect --format 'bytes={{.Size}} user={{.Config.User}}' "$tag"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
