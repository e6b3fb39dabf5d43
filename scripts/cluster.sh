#!/usr/bin/env bash
# A throwaway 3-node RabbitMQ cluster on this machine, one node per network namespace, for
# partition tests (Debian's rabbitmq-server package; needs root and iproute2).
#
# Layout of one run (ID = 5 random hex digits; every name carries it, so runs never collide):
#   namespace rmqw-ID-hub    a bridge `br0`; the cluster link of every node ends here
#   namespace rmqw-ID-nI     node rabbit@nI (I = 1..3) with its own epmd, ports 5672/15672/25672:
#     clu0   veth into the hub's bridge, 10.99.0.I/24 (exists only inside the namespaces):
#            the Erlang distribution (cluster) link; `cut` detaches its peer from the bridge,
#            which drops the node's packets silently, as a real network partition does
#     mgmt0  veth into the root namespace (a /30 per node, root side `rwIDmI`), used only for
#            the management API: the sidecar under test reaches every node while the cluster
#            link is cut, as over a separate management network
# Node host names n1..n3 resolve through an ERL_INETRC file; every node runs under `env -i`
# with its own HOME/.erlang.cookie and files under DIR (never /etc/rabbitmq or /var/lib).
#
# Usage:
#   scripts/cluster.sh start DIR [--watch-pid PID] [--partition-handling MODE] [--ticktime S]
#                                [--conf LINE]...
#       Creates the namespaces and links, boots n1, then n2 and n3 joining it
#       (cluster_formation.classic_config), waits until all three run in one cluster, and
#       prints the settings as shell assignments (also in DIR/cluster.env): CLUSTER_ID, NODES,
#       NODEi_NAME, NODEi_MGMT_URL, NODEi_NS. MODE: ignore (default) | pause_minority |
#       autoheal. S: net_ticktime in seconds (default 6).
#       --watch-pid: tear everything down (and delete DIR) once process PID exits.
#   scripts/cluster.sh cut DIR I          detach node I's cluster link (a partition)
#   scripts/cluster.sh heal DIR I         reattach it
#   scripts/cluster.sh kill DIR I         SIGKILL every process of node I's namespace
#   scripts/cluster.sh stop-node DIR I    stop node I gracefully (rabbitmqctl stop)
#   scripts/cluster.sh start-node DIR I   start node I again (same data) and wait for its boot
#   scripts/cluster.sh ctl DIR I ARGS...  rabbitmqctl against node I (run inside its namespace)
#   scripts/cluster.sh curl DIR I PATH    GET the management API of node I (guest:guest)
#   scripts/cluster.sh stop DIR           stop every node and delete the namespaces; keep DIR
#   scripts/cluster.sh clean DIR          stop, then delete DIR
# Only processes inside this run's namespaces (`ip netns pids`) are ever signalled.
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin
declare -a BOOT_PID
NODES=3
CLUSTER_NET=10.99.0

die() { echo "cluster: $*" >&2; exit 1; }

need_tools() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
  command -v ip >/dev/null || die "ip not found: install iproute2 (scripts/install-deps.sh cluster)"
  command -v curl >/dev/null || die "curl not found (scripts/install-deps.sh cluster)"
  [ -x "$RMQ_BIN/rabbitmq-server" ] || die "$RMQ_BIN/rabbitmq-server not found: install Debian's rabbitmq-server (scripts/install-deps.sh rabbitmq)"
}

load_env() {
  [ -f "$DIR/cluster.env" ] || die "$DIR/cluster.env not found: was the cluster started with this DIR?"
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"
}

ns_of() { echo "rmqw-$CLUSTER_ID-n$1"; }
hub_ns() { echo "rmqw-$CLUSTER_ID-hub"; }

# NODE_ENV: the environment of every RabbitMQ command of node $1; nothing leaks in.
node_env() {
  local i=$1 d="$DIR/n$1"
  NODE_ENV=(env -i \
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
    "HOME=$DIR" \
    "LANG=C.UTF-8" \
    "ERL_INETRC=$DIR/inetrc" \
    "RABBITMQ_NODENAME=rabbit@n$i" \
    "RABBITMQ_USE_LONGNAME=false" \
    "RABBITMQ_MNESIA_BASE=$d/mnesia" \
    "RABBITMQ_LOG_BASE=$d/log" \
    "RABBITMQ_PID_FILE=$d/rabbitmq.pid" \
    "RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config" \
    "RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins")
}

in_ns() { local i=$1; shift; ip netns exec "$(ns_of "$i")" "$@"; }

ctl() {
  local i=$1; shift
  node_env "$i"
  in_ns "$i" "${NODE_ENV[@]}" "$RMQ_BIN/rabbitmqctl" -n "rabbit@n$i" "$@"
}

mgmt_url() { local v="NODE$1_MGMT_URL"; echo "${!v}"; }

# Kills every process in node $1's namespace: TERM, then KILL after $2 tenths of a second.
kill_ns() {
  local ns pids k
  ns=$(ns_of "$1")
  ip netns list | grep -qw "$ns" || return 0
  pids=$(ip netns pids "$ns" || true)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -"${3:-TERM}" $pids 2>/dev/null || true
  for k in $(seq 1 "${2:-100}"); do
    [ -n "$(ip netns pids "$ns" || true)" ] || return 0
    sleep 0.1
  done
  pids=$(ip netns pids "$ns" || true)
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  sleep 0.2
}

start_node() {
  local i=$1 d="$DIR/n$1"
  [ -z "$(ip netns pids "$(ns_of "$i")" || true)" ] || die "node n$i is already running"
  node_env "$i"
  in_ns "$i" setsid "${NODE_ENV[@]}" "$RMQ_BIN/rabbitmq-server" >> "$d/log/stdout.log" 2>&1 < /dev/null &
  BOOT_PID[$i]=$!
}

# Waits until node $1's management API answers and its boot is complete.
await_node() {
  local i=$1 url k
  url=$(mgmt_url "$i")
  for k in $(seq 1 300); do
    if ! kill -0 "${BOOT_PID[$i]}" 2>/dev/null; then
      echo "cluster: node n$i exited during start-up; log tail:" >&2
      tail -n 30 "$DIR/n$i/log/stdout.log" "$DIR/n$i"/log/*.log >&2 || true
      return 1
    fi
    if curl -sf -m 5 -o /dev/null -u guest:guest "$url/api/overview"; then
      # await_startup can answer `rabbit_is_not_running` for a moment while the boot state
      # changes hands (seen under load): ask again while the node lives, for 60 s.
      for _ in $(seq 1 60); do
        ctl "$i" -q await_startup --timeout 90 > "$DIR/n$i/log/await_startup.log" 2>&1 && return 0
        grep -q rabbit_is_not_running "$DIR/n$i/log/await_startup.log" \
          && kill -0 "${BOOT_PID[$i]}" 2>/dev/null || break
        sleep 1
      done
      echo "cluster: node n$i did not finish booting:" >&2
      cat "$DIR/n$i/log/await_startup.log" >&2
      return 1
    fi
    sleep 0.3
  done
  echo "cluster: node n$i: management API silent for 90 s; log tail:" >&2
  tail -n 30 "$DIR/n$i"/log/*.log >&2 || true
  return 1
}

teardown() {
  local i
  [ -f "$DIR/cluster.env" ] || return 0
  load_env
  if [ -n "${WATCHDOG_PID:-}" ] && [ -z "${FROM_WATCHDOG:-}" ]; then
    kill -TERM -- "-$WATCHDOG_PID" 2>/dev/null || true
  fi
  for i in $(seq 1 "$NODES"); do kill_ns "$i" 100 & done
  wait
  for i in $(seq 1 "$NODES"); do
    ip link del "rw${CLUSTER_ID}m$i" 2>/dev/null || true
    ip netns del "$(ns_of "$i")" 2>/dev/null || true
  done
  ip netns del "$(hub_ns)" 2>/dev/null || true
  sed -i 's/^WATCHDOG_PID=.*/WATCHDOG_PID=/' "$DIR/cluster.env"
}

# A /28 of 10.0.0.0/8 (from 10.200.0.0) that no root-namespace address or route touches.
pick_mgmt_net() {
  local k a b c used
  used=$(ip -4 -o addr show; ip -4 route show)
  for k in $(seq 1 200); do
    a=$((200 + RANDOM % 50)); b=$((RANDOM % 256)); c=$(((RANDOM % 16) * 16))
    grep -q " 10\.$a\.$b\." <<< " $used" && continue
    grep -q "^10\.$a\.$b\." <<< "$used" && continue
    grep -q "10\.$a\.0\.0/16\|10\.0\.0\.0/8" <<< "$used" && continue
    echo "10.$a.$b.$c"; return
  done
  die "no free management subnet found"
}

write_node_files() {
  local i=$1 mode=$2 tick=$3 d="$DIR/n$1" j
  shift 3
  mkdir -p "$d/mnesia" "$d/log"
  : > "$d/rabbitmq-env.conf"
  echo '[rabbitmq_management].' > "$d/enabled_plugins"
  echo "[{kernel, [{net_ticktime, $tick}]}]." > "$d/advanced.config"
  {
    echo "listeners.tcp.default = 5672"
    echo "management.tcp.port = 15672"
    echo "management.tcp.ip = 0.0.0.0"
    echo "loopback_users = none"
    echo "cluster_partition_handling = $mode"
    echo "cluster_formation.peer_discovery_backend = classic_config"
    for j in $(seq 1 "$NODES"); do echo "cluster_formation.classic_config.nodes.$j = rabbit@n$j"; done
    echo "collect_statistics_interval = 1000"
    echo "log.console = false"
    echo "log.file.level = info"
    for line in "$@"; do echo "$line"; done
  } > "$d/rabbitmq.conf"
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: $0 start|stop|clean|cut|heal|kill|stop-node|start-node|ctl|curl DIR ..."
shift
DIR=${1:-}
[ -n "$DIR" ] || die "usage: $0 $cmd DIR ..."
shift
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

node_arg() {
  [[ "${1:-}" =~ ^[1-9]$ ]] && [ "$1" -le "$NODES" ] || die "node number 1..$NODES expected, got '${1:-}'"
}

case "$cmd" in
start)
  need_tools
  [ ! -f "$DIR/cluster.env" ] || die "$DIR already holds a cluster (stop or clean it first)"
  WATCH_PID="" MODE=ignore TICK=6
  extra_conf=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --watch-pid) WATCH_PID=$2; shift 2 ;;
      --partition-handling) MODE=$2; shift 2 ;;
      --ticktime) TICK=$2; shift 2 ;;
      --conf) extra_conf+=("$2"); shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  case "$MODE" in ignore|pause_minority|autoheal) ;; *) die "partition handling $MODE: ignore|pause_minority|autoheal" ;; esac
  CLUSTER_ID=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-5)
  while ip netns list | grep -q "rmqw-$CLUSTER_ID-"; do
    CLUSTER_ID=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-5)
  done
  MGMT_NET=$(pick_mgmt_net)
  base=${MGMT_NET##*.}
  prefix=${MGMT_NET%.*}
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/.erlang.cookie"
  chmod 400 "$DIR/.erlang.cookie"
  for i in $(seq 1 "$NODES"); do echo "{host, {${CLUSTER_NET//./,},$i}, [\"n$i\"]}."; done > "$DIR/inetrc"
  echo "{lookup, [file, native]}." >> "$DIR/inetrc"
  {
    echo "CLUSTER_ID=$CLUSTER_ID"
    echo "NODES=$NODES"
    echo "WATCHDOG_PID="
    for i in $(seq 1 "$NODES"); do
      echo "NODE${i}_NAME=rabbit@n$i"
      echo "NODE${i}_MGMT_URL=http://$prefix.$((base + 4 * (i - 1) + 2)):15672"
      echo "NODE${i}_NS=rmqw-$CLUSTER_ID-n$i"
    done
  } > "$DIR/cluster.env"
  load_env

  if [ -n "$WATCH_PID" ]; then
    # Detached: survives this script; tears the cluster down once the watched process exits.
    setsid bash -c '
      while kill -0 "$1" 2>/dev/null; do sleep 1; done
      FROM_WATCHDOG=1 "$2" clean "$3" >/dev/null 2>&1
    ' watchdog "$WATCH_PID" "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" "$DIR" \
      > /dev/null 2>&1 < /dev/null &
    sed -i "s/^WATCHDOG_PID=.*/WATCHDOG_PID=$!/" "$DIR/cluster.env"
  fi
  trap 'teardown' ERR

  hub=$(hub_ns)
  ip netns add "$hub"
  ip -n "$hub" link add br0 type bridge
  ip -n "$hub" link set br0 up
  ip -n "$hub" link set lo up
  for i in $(seq 1 "$NODES"); do
    ns=$(ns_of "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Cluster link: clu0 in the node's namespace <-> hI on the hub's bridge.
    ip -n "$ns" link add clu0 type veth peer name "h$i" netns "$hub"
    ip -n "$hub" link set "h$i" master br0 up
    ip -n "$ns" addr add "$CLUSTER_NET.$i/24" dev clu0
    ip -n "$ns" link set clu0 up
    # Management link: rwIDmI in the root namespace <-> mgmt0 in the node's namespace.
    root_if="rw${CLUSTER_ID}m$i"
    ip link add "$root_if" type veth peer name mgmt0 netns "$ns"
    ip addr add "$prefix.$((base + 4 * (i - 1) + 1))/30" dev "$root_if"
    ip link set "$root_if" up
    ip -n "$ns" addr add "$prefix.$((base + 4 * (i - 1) + 2))/30" dev mgmt0
    ip -n "$ns" link set mgmt0 up
    write_node_files "$i" "$MODE" "$TICK" "${extra_conf[@]+"${extra_conf[@]}"}"
  done

  # The seed node first; the others join it.
  start_node 1
  await_node 1
  for i in $(seq 2 "$NODES"); do start_node "$i"; done
  for i in $(seq 2 "$NODES"); do await_node "$i"; done
  for k in $(seq 1 100); do
    running=$(curl -sf -m 5 -u guest:guest "$(mgmt_url 1)/api/nodes?columns=name,running" | grep -o '"running":true' | wc -l || true)
    [ "$running" -eq "$NODES" ] && break
    sleep 0.3
  done
  [ "$running" -eq "$NODES" ] || { echo "cluster: the nodes did not form one cluster" >&2; false; }
  trap - ERR
  grep -v '^WATCHDOG_PID=' "$DIR/cluster.env"
  ;;
cut)
  load_env; node_arg "${1:-}"
  ip -n "$(hub_ns)" link set "h$1" nomaster
  ;;
heal)
  load_env; node_arg "${1:-}"
  ip -n "$(hub_ns)" link set "h$1" master br0 up
  ;;
kill)
  load_env; node_arg "${1:-}"
  kill_ns "$1" 50 KILL
  ;;
stop-node)
  load_env; node_arg "${1:-}"
  ctl "$1" -q stop >/dev/null 2>&1 || true
  kill_ns "$1" 300
  ;;
start-node)
  load_env; node_arg "${1:-}"
  start_node "$1"
  await_node "$1"
  ;;
ctl)
  load_env; node_arg "${1:-}"
  i=$1; shift
  ctl "$i" "$@"
  ;;
curl)
  load_env; node_arg "${1:-}"
  exec curl -sS -m "${CURL_TIMEOUT:-10}" -u guest:guest "$(mgmt_url "$1")$2"
  ;;
stop)
  teardown
  ;;
clean)
  teardown
  rm -rf "$DIR"
  ;;
*)
  die "unknown command $cmd"
  ;;
esac
