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
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "run.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
scripts/install-deps.sh
cargo build --release --locked
bin=target/release/rabbitmq-watch

# The arguments without a `run` subcommand (check-config is run with the same flags).
flags=()
for arg in "$@"; do [ "$arg" = run ] || flags+=("$arg"); done
# The effective URL, as the sidecar itself would compute it.
effective=$("$bin" "${flags[@]+"${flags[@]}"}" check-config)
url=$(printf '%s\n' "$effective" | sed -n 's/^ *"url": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "${url%/}/api/overview" || true)
if [ "$code" != "000" ]; then
  echo "run.sh: a management API answers at $url (HTTP $code); watching it" >&2
else
  echo "run.sh: nothing answers at $url; starting a throwaway RabbitMQ node" >&2
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
fi
echo "run.sh: metrics at http://localhost:9419/metrics (unless listen is configured otherwise)" >&2
exec "$bin" "${flags[@]+"${flags[@]}"}" run
