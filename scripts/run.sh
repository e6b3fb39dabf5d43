#!/usr/bin/env bash
# Runs rabbitmq-watch against a real RabbitMQ.
#
# The management API URL is the effective `rabbitmq.url` (from --config FILE, the
# RABBITMQ_WATCH__RABBITMQ__URL variable, --rabbitmq-url, or the default http://localhost:15672).
# If nothing answers there, this installs Debian's rabbitmq-server when missing, starts a
# throwaway local node (own data directory, node name and ports, management plugin on, not the
# system service) and points the sidecar at it; the node is stopped when the sidecar exits.
# That node is RabbitMQ 3.10.8 (Debian 12), or with RABBITMQ_NODE_VERSION=4 RabbitMQ 4.0.5
# (Debian 13's, in the tree `scripts/install-deps.sh rabbitmq4` builds once; about 2 minutes);
# RABBITMQ_NODE_STATS=off starts it without management statistics
# (management_agent.disable_metrics_collector = true, as RabbitMQ recommends for 4.x).
# Arguments are passed to rabbitmq-watch.
#
# --demo (first argument): always starts a throwaway node (never touches a broker already
# running), runs the sidecar with examples/demo/rabbitmq-watch.yaml (5 s polls, 1 minute
# backlog windows, admin API on loopback) unless --config is given, and starts demo AMQP
# traffic against the node (examples/demo_traffic.rs: a healthy queue, one growing faster than
# it drains, a stalled consumer, one without consumers, a dead-letter queue filling). Open
# http://localhost:9419/ : within about 3 minutes every case shows there and in
# /api/v1/alerts. The traffic stops with the sidecar.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "run.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
demo=""
if [ "${1:-}" = --demo ]; then demo=1; shift; fi

scripts/install-deps.sh
cargo build --release --locked
bin=target/release/rabbitmq-watch
if [ -n "$demo" ]; then
  cargo build --release --locked --example demo_traffic
  given_config=""
  for arg in "$@"; do case "$arg" in --config|--config=*) given_config=1 ;; esac; done
  if [ -z "$given_config" ] && [ -z "${RABBITMQ_WATCH_CONFIG:-}" ]; then
    set -- --config examples/demo/rabbitmq-watch.yaml "$@"
  fi
fi

# The arguments without a `run` subcommand (check-config is run with the same flags).
flags=()
for arg in "$@"; do [ "$arg" = run ] || flags+=("$arg"); done
# The effective URL, as the sidecar itself would compute it.
effective=$("$bin" "${flags[@]+"${flags[@]}"}" check-config)
url=$(printf '%s\n' "$effective" | sed -n 's/^ *"url": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "${url%/}/api/overview" || true)
if [ "$code" != "000" ] && [ -z "$demo" ]; then
  echo "run.sh: a management API answers at $url (HTTP $code); watching it" >&2
else
  if [ -n "$demo" ]; then
    echo "run.sh: --demo: starting a throwaway RabbitMQ node for the demo traffic" >&2
  else
    echo "run.sh: nothing answers at $url; starting a throwaway RabbitMQ node" >&2
  fi
  node_version=${RABBITMQ_NODE_VERSION:-3}
  case "$node_version" in
    3|3.10) scripts/install-deps.sh rabbitmq ;;
    4|4.0) scripts/install-deps.sh rabbitmq4 ;;
    *) echo "run.sh: RABBITMQ_NODE_VERSION=$node_version: expected 3 or 4" >&2; exit 2 ;;
  esac
  node_dir=$(mktemp -d /tmp/rabbitmq-watch-node.XXXXXX)
  # --watch-pid $$: `exec` below keeps this PID, so the node stops when the sidecar exits.
  eval "$(scripts/rabbitmq-node.sh start "$node_dir" --version "$node_version" \
    --stats "${RABBITMQ_NODE_STATS:-on}" --watch-pid $$)"
  echo "run.sh: node $NODE_NAME (--version $VERSION, statistics $STATS): management API $MGMT_URL, AMQP $AMQP_URL (guest/guest)" >&2
  # Point the sidecar at the node: drop any --rabbitmq-url given, pass the node's.
  kept=()
  skip=""
  for arg in "${flags[@]+"${flags[@]}"}"; do
    if [ -n "$skip" ]; then skip=""; continue; fi
    case "$arg" in
      --rabbitmq-url) skip=1 ;;
      --rabbitmq-url=*) ;;
      *) kept+=("$arg") ;;
    esac
  done
  flags=("${kept[@]+"${kept[@]}"}" --rabbitmq-url "$MGMT_URL")
  if [ -n "$demo" ]; then
    # --watch-pid $$: the sidecar keeps this PID (`exec` below); the traffic stops with it.
    target/release/examples/demo_traffic "$AMQP_URL" --watch-pid $$ &
    echo "run.sh: demo traffic started; open http://localhost:9419/ (every case shows within about 3 minutes)" >&2
  fi
fi
echo "run.sh: metrics at http://localhost:9419/metrics (unless listen is configured otherwise)" >&2
# glibc allocator settings of the container image (docs/operations.md, "Memory and the
# allocator"); an operator's own values win.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
exec "$bin" "${flags[@]+"${flags[@]}"}" run
