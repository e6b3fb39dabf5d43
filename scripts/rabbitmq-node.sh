#!/usr/bin/env bash
# Start and stop a throwaway RabbitMQ node with the management plugin, under its own node name,
# ports, cookie and data directory. It never touches the system service, /etc/rabbitmq or
# /var/lib/rabbitmq, and it stops only the processes it started (by process group of the PID it
# recorded).
#
# Versions:
#   3   (default) Debian 12's rabbitmq-server 3.10.8 (scripts/install-deps.sh rabbitmq).
#   4   Debian 13's rabbitmq-server 4.0.5 (Erlang 27) in the trixie tree that
#       `scripts/install-deps.sh rabbitmq4` builds at $RABBITMQ4_ROOT (default
#       /var/lib/rabbitmq-watch/trixie). The node runs chrooted there, in a private mount
#       namespace of its own where /proc, /dev and DIR (at the same path) are bind-mounted: the
#       mounts exist only for the node's processes and vanish with the last of them, however it
#       ends (stop, crash, SIGKILL); nothing is mounted in the caller's namespace. All nodes share
#       the machine's epmd (started here if none runs, and left running).
#
# Usage:
#   scripts/rabbitmq-node.sh start DIR [--version 3|4] [--stats on|off] [--prometheus]
#                                      [--amqp-port N] [--mgmt-port N] [--dist-port N]
#                                      [--prom-port N] [--watch-pid PID] [--conf LINE]...
#       Starts a node whose files all live under DIR, waits until it has booted (management API
#       answers, `rabbitmqctl await_startup` succeeds), and prints its settings as shell
#       assignments (also written to DIR/node.env): NODE_NAME, NODE_PID, VERSION, STATS,
#       AMQP_PORT, MGMT_PORT, DIST_PORT, PROM_PORT, MGMT_URL, AMQP_URL, PROM_URL (PROM_PORT and
#       PROM_URL are empty without the rabbitmq_prometheus plugin).
#       Ports default to free ones. Restarting an existing DIR reuses its name, version, settings
#       and ports (options given again override them).
#       --version: 3 (3.10, default) or 4 (4.0); 3.10 and 4.0 are accepted too.
#       --stats off: management_agent.disable_metrics_collector = true (no management statistics:
#                    the setting RabbitMQ recommends for 4.x); on is the default.
#       --prometheus: enable rabbitmq_prometheus (always on with --version 4), on PROM_PORT.
#       --watch-pid: stop the node and delete DIR once process PID exits (test harnesses).
#       --conf: an extra rabbitmq.conf line (repeatable).
#   scripts/rabbitmq-node.sh stop DIR     stop the node, keep DIR (it can be started again)
#   scripts/rabbitmq-node.sh clean DIR    stop the node and delete DIR
#   scripts/rabbitmq-node.sh ctl DIR ARGS...   run rabbitmqctl against the node
#
# epmd (Erlang's port mapper, shared by every node on the machine) is started by the first node
# if none runs, and left running.
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin
# The RabbitMQ 4.0 tree (scripts/install-deps.sh rabbitmq4 builds it; same variable and default).
RABBITMQ4_ROOT=${RABBITMQ4_ROOT:-/var/lib/rabbitmq-watch/trixie}
RABBITMQ4_STAMP=.rabbitmq-watch-complete

die() { echo "rabbitmq-node: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default):
# a port inside it can be taken by any outgoing connection between this check and the
# node's bind (a node start once failed with `dist_port_already_used ... not_erlang`).
free_port() {
  local p i low span
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  span=$((low - 20000))
  [ "$span" -ge 2000 ] || span=12768
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % span))
    if ! port_in_use "$p"; then echo "$p"; return; fi
  done
  die "no free TCP port found"
}

# The environment every RabbitMQ command of this node runs in, as the array NODE_ENV:
# nothing from the caller's environment or /etc/rabbitmq leaks in.
node_env() {
  local dir=$1
  NODE_ENV=(env -i \
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
    "HOME=$dir" \
    "LANG=C.UTF-8" \
    "RABBITMQ_NODENAME=$NODE_NAME" \
    "RABBITMQ_NODE_PORT=$AMQP_PORT" \
    "RABBITMQ_DIST_PORT=$DIST_PORT" \
    "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
    "RABBITMQ_LOG_BASE=$dir/log" \
    "ERL_CRASH_DUMP=$dir/log/erl_crash.dump" \
    "RABBITMQ_PID_FILE=$dir/rabbitmq.pid" \
    "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config" \
    "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins")
}

# The command prefix that runs a program of this node's version, as the array IN_ROOT: empty for
# 3.10 (the machine's own RabbitMQ); for 4.0, a private mount namespace with /proc, /dev and DIR
# bind-mounted into the trixie tree, then chroot. The mounts belong to that namespace only and
# vanish with its last process.
in_root() {
  local dir=$1
  IN_ROOT=()
  [ "${VERSION:-3}" = 4 ] || return 0
  [ -f "$ROOT/$RABBITMQ4_STAMP" ] || die "RabbitMQ 4.0 tree $ROOT not found or incomplete: run scripts/install-deps.sh rabbitmq4 (as root)"
  [ "$(id -u)" -eq 0 ] || die "--version 4 needs root (mount namespace, chroot)"
  mkdir -p "$ROOT$dir"
  IN_ROOT=(unshare --mount --propagation private bash -c '
    set -e
    mount --bind /proc "$1/proc"
    mount --bind /dev "$1/dev"
    mount --bind "$2" "$1$2"
    root=$1
    shift 2
    exec chroot "$root" "$@"
  ' in-root "$ROOT" "$dir")
}

# Erlang's port mapper, shared by every node on the machine (3.10 and 4.0 alike): started when
# none runs, from the machine's Erlang or else from the 4.0 tree, and left running.
ensure_epmd() {
  port_in_use 4369 && return 0
  if [ -x /usr/bin/epmd ]; then
    /usr/bin/epmd -daemon
  elif [ -n "${ROOT:-}" ]; then
    chroot "$ROOT" /usr/bin/epmd -daemon
  fi
  local i
  for i in $(seq 1 50); do port_in_use 4369 && return 0; sleep 0.1; done
  die "epmd did not start (port 4369)"
}

load_env() {
  local dir=$1
  [ -f "$dir/node.env" ] || die "$dir/node.env not found: was the node started with this DIR?"
  # shellcheck disable=SC1091
  . "$dir/node.env"
}

stop_node() {
  local dir=$1 i
  [ -f "$dir/node.env" ] || return 0
  load_env "$dir"
  # The watchdog first (its whole process group, including a `clean` it may have started),
  # so that it cannot delete DIR under a node that is only being stopped.
  if [ -n "${WATCHDOG_PID:-}" ] && [ -z "${FROM_WATCHDOG:-}" ]; then
    kill -TERM -- "-$WATCHDOG_PID" 2>/dev/null || true
  fi
  if [ -n "${NODE_PID:-}" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    # The node runs in its own session: its process group holds beam and its helpers.
    kill -TERM -- "-$NODE_PID" 2>/dev/null || kill -TERM "$NODE_PID" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$NODE_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$NODE_PID" 2>/dev/null || true
  fi
  # Forget the PIDs: they may be reused by unrelated processes later.
  sed -i 's/^NODE_PID=.*/NODE_PID=/; s/^WATCHDOG_PID=.*/WATCHDOG_PID=/' "$dir/node.env"
}

# The empty directory DIR was bind-mounted on inside the 4.0 tree (only in the node's namespace),
# and its parents made for it while empty, up to (not including) the tree's top-level directories.
remove_mount_point() {
  local dir=$1 p
  [ -f "$dir/node.env" ] || return 0
  load_env "$dir"
  [ "${VERSION:-3}" = 4 ] && [ -n "${ROOT:-}" ] || return 0
  p=$ROOT$dir
  while [ "$(dirname "$(dirname "$p")")" != "/" ] && [ "$(dirname "$p")" != "$ROOT" ]; do
    rmdir "$p" 2>/dev/null || break
    p=$(dirname "$p")
  done
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: $0 start|stop|clean|ctl DIR ..."
shift
dir=${1:-}
[ -n "$dir" ] || die "usage: $0 $cmd DIR ..."
shift
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$cmd" in
start)
  AMQP_PORT="" MGMT_PORT="" DIST_PORT="" PROM_PORT="" WATCH_PID="" NODE_NAME=""
  VERSION=3 STATS=on PROMETHEUS="" ROOT=""
  extra_conf=()
  if [ -f "$dir/node.env" ]; then
    load_env "$dir"
    if [ -n "${NODE_PID:-}" ] && kill -0 "$NODE_PID" 2>/dev/null; then
      die "node $NODE_NAME (pid $NODE_PID) is already running in $dir"
    fi
    if [ -n "${PROM_PORT:-}" ]; then PROMETHEUS=1; fi
  fi
  while [ $# -gt 0 ]; do
    case "$1" in
      --amqp-port) AMQP_PORT=$2; shift 2 ;;
      --mgmt-port) MGMT_PORT=$2; shift 2 ;;
      --dist-port) DIST_PORT=$2; shift 2 ;;
      --prom-port) PROM_PORT=$2; PROMETHEUS=1; shift 2 ;;
      --prometheus) PROMETHEUS=1; shift ;;
      --version)
        case "${2:-}" in
          3|3.10) VERSION=3 ;;
          4|4.0) VERSION=4 ;;
          *) die "--version ${2:-}: expected 3 (3.10) or 4 (4.0)" ;;
        esac
        shift 2 ;;
      --stats)
        case "${2:-}" in
          on|off) STATS=$2 ;;
          *) die "--stats ${2:-}: expected on or off" ;;
        esac
        shift 2 ;;
      --watch-pid) WATCH_PID=$2; shift 2 ;;
      --conf) extra_conf+=("$2"); shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  if [ "$VERSION" = 4 ]; then
    ROOT=$RABBITMQ4_ROOT
    PROMETHEUS=1
  else
    ROOT=""
    [ -x "$RMQ_BIN/rabbitmq-server" ] || die "$RMQ_BIN/rabbitmq-server not found: install Debian's rabbitmq-server package (scripts/install-deps.sh rabbitmq)"
  fi
  AMQP_PORT=${AMQP_PORT:-$(free_port)}
  MGMT_PORT=${MGMT_PORT:-$(free_port)}
  DIST_PORT=${DIST_PORT:-$(free_port)}
  if [ -n "$PROMETHEUS" ]; then PROM_PORT=${PROM_PORT:-$(free_port)}; else PROM_PORT=""; fi
  NODE_NAME=${NODE_NAME:-rabbitmq-watch-$$-$RANDOM@localhost}
  for p in "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" $PROM_PORT; do
    port_in_use "$p" && die "port $p is already in use"
  done
  in_root "$dir"
  ensure_epmd

  mkdir -p "$dir/mnesia" "$dir/log"
  if [ ! -f "$dir/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/.erlang.cookie"
    chmod 400 "$dir/.erlang.cookie"
  fi
  : > "$dir/rabbitmq-env.conf"
  echo '[].' > "$dir/advanced.config"
  if [ -n "$PROMETHEUS" ]; then
    echo '[rabbitmq_management,rabbitmq_prometheus].' > "$dir/enabled_plugins"
  else
    echo '[rabbitmq_management].' > "$dir/enabled_plugins"
  fi
  {
    echo "listeners.tcp.default = 127.0.0.1:$AMQP_PORT"
    echo "management.tcp.port = $MGMT_PORT"
    echo "management.tcp.ip = 127.0.0.1"
    # Fresh statistics for tests (the default is 5000 ms).
    echo "collect_statistics_interval = 500"
    # ... and keep them at 1 s granularity (the default 5 s samples would freeze queue
    # figures and counters for 5 s at a time).
    echo "management.sample_retention_policies.global.minute = 1"
    echo "management.sample_retention_policies.basic.minute = 1"
    echo "management.sample_retention_policies.detailed.10 = 1"
    if [ -n "$PROMETHEUS" ]; then
      echo "prometheus.tcp.port = $PROM_PORT"
      echo "prometheus.tcp.ip = 127.0.0.1"
    fi
    if [ "$STATS" = off ]; then
      echo "management_agent.disable_metrics_collector = true"
    fi
    echo "log.console = false"
    echo "log.file.level = info"
    for line in "${extra_conf[@]+"${extra_conf[@]}"}"; do echo "$line"; done
  } > "$dir/rabbitmq.conf"

  # setsid: the node gets its own session and process group, which `stop` kills whole.
  node_env "$dir"
  setsid "${IN_ROOT[@]+"${IN_ROOT[@]}"}" "${NODE_ENV[@]}" "$RMQ_BIN/rabbitmq-server" > "$dir/log/stdout.log" 2>&1 < /dev/null &
  NODE_PID=$!

  WATCHDOG_PID=""
  if [ -n "$WATCH_PID" ]; then
    # Detached: survives this script, ends the node (and DIR) when the watched process exits.
    setsid bash -c '
      while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
      FROM_WATCHDOG=1 "$3" clean "$4" >/dev/null 2>&1
    ' watchdog "$WATCH_PID" "$NODE_PID" "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" "$dir" \
      > /dev/null 2>&1 < /dev/null &
    WATCHDOG_PID=$!
  fi

  MGMT_URL="http://127.0.0.1:$MGMT_PORT"
  AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
  PROM_URL=""
  if [ -n "$PROM_PORT" ]; then PROM_URL="http://127.0.0.1:$PROM_PORT"; fi
  cat > "$dir/node.env" <<ENV
NODE_NAME=$NODE_NAME
NODE_PID=$NODE_PID
WATCHDOG_PID=$WATCHDOG_PID
VERSION=$VERSION
STATS=$STATS
ROOT=$ROOT
AMQP_PORT=$AMQP_PORT
MGMT_PORT=$MGMT_PORT
DIST_PORT=$DIST_PORT
PROM_PORT=$PROM_PORT
MGMT_URL=$MGMT_URL
AMQP_URL=$AMQP_URL
PROM_URL=$PROM_URL
ENV
  # Interrupted before the node is up: stop it (for 4.0 its mounts go with its namespace).
  trap 'echo "rabbitmq-node: interrupted; stopping the node" >&2; stop_node "$dir"; exit 1' INT TERM HUP

  for i in $(seq 1 300); do
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
      echo "rabbitmq-node: the node exited during start-up; last lines of its logs:" >&2
      tail -n 30 "$dir/log/stdout.log" "$dir"/log/*.log >&2 || true
      exit 1
    fi
    if curl -sf -o /dev/null -u guest:guest "$MGMT_URL/api/overview"; then
      # The management listener comes up while the `rabbit` application is still booting
      # (AMQP listeners and rabbitmqctl commands follow): wait for the boot to complete.
      # await_startup can answer `rabbit_is_not_running` for a moment while the boot state
      # changes hands (seen under load): ask again, as long as the node lives, for 60 s.
      for _ in $(seq 1 60); do
        if "${IN_ROOT[@]+"${IN_ROOT[@]}"}" "${NODE_ENV[@]}" "$RMQ_BIN/rabbitmqctl" -q -n "$NODE_NAME" await_startup --timeout 60 \
          > "$dir/log/await_startup.log" 2>&1; then
          cat "$dir/node.env"
          exit 0
        fi
        grep -q rabbit_is_not_running "$dir/log/await_startup.log" && kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 1
      done
      echo "rabbitmq-node: the node did not finish booting:" >&2
      cat "$dir/log/await_startup.log" >&2
      tail -n 30 "$dir"/log/*.log >&2 || true
      stop_node "$dir"
      exit 1
    fi
    sleep 0.2
  done
  echo "rabbitmq-node: the management API did not answer within 60 s; log tail:" >&2
  tail -n 30 "$dir"/log/*.log >&2 || true
  stop_node "$dir"
  exit 1
  ;;
stop)
  stop_node "$dir"
  ;;
clean)
  stop_node "$dir"
  remove_mount_point "$dir"
  rm -rf "$dir"
  ;;
ctl)
  load_env "$dir"
  node_env "$dir"
  in_root "$dir"
  exec "${IN_ROOT[@]+"${IN_ROOT[@]}"}" "${NODE_ENV[@]}" "$RMQ_BIN/rabbitmqctl" -n "$NODE_NAME" "$@"
  ;;
*)
  die "unknown command $cmd (start|stop|clean|ctl)"
  ;;
esac
