#!/usr/bin/env bash
# Benchmark of rabbitmq-watch against a real RabbitMQ node holding N queues.
#
# Usage: bench/run.sh [N ...]        (default: 1000 10000)
#
# For each N: starts a throwaway RabbitMQ node (scripts/rabbitmq-node.sh, statistics every
# 5 s as in production), loads it with examples/bench_load.rs (N durable classic queues over
# 10 vhosts, 5 messages each, a never-acking consumer with prefetch 2 on every 10th queue),
# runs the release sidecar against it and measures poll time, CPU per poll, RSS, bytes fetched
# per poll, the broker's own time for the same requests, /metrics latency under 16 concurrent
# scrapers and the exposition size. Raw data go to bench/results/raw-N/ (gitignored), figures to
# bench/results/N.json; bench/RESULTS.md is regenerated from every bench/results/*.json.
# See bench/README.md. Everything started here is stopped on exit (only the PIDs started here).
#
# Environment knobs (defaults in brackets): BENCH_POLLS [5] polls measured after the first,
# BENCH_RUNS [5] replay runs, BENCH_VHOSTS [10], BENCH_MESSAGES [5], BENCH_CONSUMER_EVERY [10],
# BENCH_PREFETCH [2], BENCH_WRK_DURATION [15s], BENCH_WRK_CONNECTIONS [16],
# BENCH_WRK1_DURATION [5s] (one scraper alone, for comparison), BENCH_KEEP [0]
# (1 keeps the temporary work directory), BENCH_INTERVAL_S [15] and BENCH_TIMEOUT_S [14] (the
# sidecar's poll.interval and rabbitmq.timeout; raise both for 100,000 queues),
# BENCH_BASELINE_S [10] (seconds of the idle broker measured before the sidecar starts),
# BENCH_FULL_READS [BENCH_RUNS] (plain full /api/queues reads at the end; each takes ~2 s per
# 1,000 queues on 2 cores, so use 1 at 100,000 queues), BENCH_CURL_MAX_S [the larger of 120 and
# BENCH_TIMEOUT_S + 60] (curl's --max-time for the replays and the full reads),
# BENCH_MEMORY_WATERMARK [0.4, RabbitMQ's default] (the node's vm_memory_high_watermark.relative:
# 100,000 queues with their consumers take ~11 GB of broker memory, above 0.4 of 24 GiB, and the
# memory alarm would block the load's publishers: use 0.8 there), BENCH_MGMT_TIMEOUT_MS [unset:
# the broker's defaults] (management.tcp.idle_timeout, inactivity_timeout and request_timeout: the
# management listener's cowboy closes a connection after 60 s without a byte, and at 100,000
# queues the broker needs more than that before the first byte of /api/queues: use 600000 there).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000)
for n in "${SIZES[@]}"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench: N must be a positive integer, got '$n'" >&2; exit 2; }
done

POLLS=${BENCH_POLLS:-5}
RUNS=${BENCH_RUNS:-5}
VHOSTS=${BENCH_VHOSTS:-10}
MESSAGES=${BENCH_MESSAGES:-5}
CONSUMER_EVERY=${BENCH_CONSUMER_EVERY:-10}
PREFETCH=${BENCH_PREFETCH:-2}
WRK_DURATION=${BENCH_WRK_DURATION:-15s}
WRK_CONNECTIONS=${BENCH_WRK_CONNECTIONS:-16}
WRK1_DURATION=${BENCH_WRK1_DURATION:-5s}
# Paced scrapers (bench/paced.lua): WRK_CONNECTIONS scrapers, each scraping about once a second
# with Prometheus's headers, for long enough to span a few polls.
WRK_PACED_DURATION=${BENCH_WRK_PACED_DURATION:-45s}
SCRAPE=${BENCH_SCRAPE:-prometheus}
case "$SCRAPE" in prometheus | plain) ;; *) echo "BENCH_SCRAPE: '$SCRAPE' is not one of prometheus, plain" >&2; exit 2 ;; esac
PROMETHEUS_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
INTERVAL_S=${BENCH_INTERVAL_S:-15}
TIMEOUT_S=${BENCH_TIMEOUT_S:-14}
FULL_READS=${BENCH_FULL_READS:-$RUNS}
CURL_MAX_S=${BENCH_CURL_MAX_S:-$(( TIMEOUT_S + 60 > 120 ? TIMEOUT_S + 60 : 120 ))}
STATS_INTERVAL_MS=5000
MEMORY_WATERMARK=${BENCH_MEMORY_WATERMARK:-0.4}
MGMT_TIMEOUT_MS=${BENCH_MGMT_TIMEOUT_MS:-}
MGMT_CONF=()
if [ -n "$MGMT_TIMEOUT_MS" ]; then
  MGMT_CONF=(--conf "management.tcp.idle_timeout = $MGMT_TIMEOUT_MS"
    --conf "management.tcp.inactivity_timeout = $MGMT_TIMEOUT_MS"
    --conf "management.tcp.request_timeout = $MGMT_TIMEOUT_MS")
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
REPORT=("$PY" "$ROOT/bench/report.py")

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Clean-up: only what this script started.
WORK=$(mktemp -d /tmp/rabbitmq-watch-bench.XXXXXX)
NODE_DIR=""
LOAD_PID=""
SIDECAR_PID=""
WRK_PID=""
RSS_PID=""
BEAM_SAMPLER_PID=""

stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_run() {
  stop_pid "$RSS_PID"; RSS_PID=""
  stop_pid "$BEAM_SAMPLER_PID"; BEAM_SAMPLER_PID=""
  stop_pid "$WRK_PID"; WRK_PID=""
  stop_pid "$SIDECAR_PID"; SIDECAR_PID=""
  stop_pid "$LOAD_PID"; LOAD_PID=""
  if [ -n "$NODE_DIR" ]; then
    scripts/rabbitmq-node.sh clean "$NODE_DIR" >/dev/null 2>&1 || true
    NODE_DIR=""
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_run
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! port_in_use "$p"; then echo "$p"; return; fi
  done
  die "no free TCP port found"
}

api() { curl -sf -m 60 -u guest:guest "$MGMT_URL$1"; }

# CPU ticks (utime + stime) of a PID; the command name may contain spaces, so cut after ')'.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# Polls completed by the sidecar: "poll finished" lines in its debug log, or (if the sidecar
# does not log them) rabbitmq_watch_polls_total from /metrics.
polls_done() {
  if [ "$POLL_DETECT" = log ]; then
    grep -c 'poll finished' "$SIDECAR_LOG" || true
  else
    curl -s -m 10 "http://127.0.0.1:$SIDECAR_PORT/metrics" 2>/dev/null |
      awk '$1 == "rabbitmq_watch_polls_total" { print $2 + 0; found = 1 } END { if (!found) print 0 }'
  fi
}

wait_polls() {
  local want=$1 limit=$2 waited=0 step=0.2
  [ "$POLL_DETECT" = log ] || step=1
  while [ "$(polls_done)" -lt "$want" ]; do
    kill -0 "$SIDECAR_PID" 2>/dev/null || { tail -n 20 "$SIDECAR_LOG" >&2; die "the sidecar exited"; }
    sleep "$step"
    waited=$(awk -v w="$waited" -v s="$step" 'BEGIN { print w + s }')
    if awk -v w="$waited" -v l="$limit" 'BEGIN { exit !(w > l) }'; then
      die "poll $want did not finish within ${limit}s"
    fi
  done
  return 0
}

scrape() { # scrape FILE: /metrics into FILE, "time_total size_download http_code" into FILE.w
  curl -s -m 30 -o "$1" -w '%{time_total} %{size_download} %{http_code}\n' \
    "http://127.0.0.1:$SIDECAR_PORT/metrics" > "$1.w" || die "scraping /metrics failed"
}

# The scrape after each poll (scrape_poll): as Prometheus sends it (OpenMetrics preferred, gzip
# accepted: the sidecar sends its stored compressed variant) unless BENCH_SCRAPE=plain (the
# plain text variant, decompressed by the sidecar for each request: ~18 MB at 10,000 queues).
scrape_as_configured() { # scrape_as_configured FILE
  if [ "$SCRAPE" = plain ]; then
    scrape "$1"
    return
  fi
  curl -s -m 30 --compressed -o "$1" -w '%{time_total} %{size_download} %{http_code}\n' \
    -H "Accept: $PROMETHEUS_ACCEPT" \
    "http://127.0.0.1:$SIDECAR_PORT/metrics" > "$1.w" || die "scraping /metrics failed"
}

# Scrapes until the exposition is the one of poll K (it is encoded after the poll has ended,
# so right after the "poll finished" line it may still be the previous one).
scrape_poll() { # scrape_poll K
  local k=$1 f="$run/metrics/poll-$1.prom" tries=0
  sleep 0.5
  while :; do
    scrape_as_configured "$f"
    if awk -v k="$k" '$1 == "rabbitmq_watch_polls_total" && $2 + 0 >= k { ok = 1 } END { exit !ok }' "$f"; then
      return 0
    fi
    tries=$((tries + 1))
    EXTRA_SCRAPES=$((EXTRA_SCRAPES + 1))
    [ "$tries" -lt 60 ] || die "the exposition did not show poll $k within 30 s of its end"
    sleep 0.5
  done
}

# True when the sidecar's log shows a request after its last "poll finished" line: a poll is
# in progress (read while the sidecar is frozen, so the answer cannot change meanwhile).
poll_in_progress() {
  awk '/poll finished/ { req = 0; next } /endpoint=.*url=/ { req = 1 } END { exit !req }' "$SIDECAR_LOG"
}

# CPU ticks at a point in time: the sidecar, our node's beam.smp, every other beam.smp (other
# RabbitMQ nodes on the machine, approximate: nodes that start or stop meanwhile distort it) and
# the whole machine (busy and total ticks over all cores, from /proc/stat).
cpu_snapshot() { # cpu_snapshot LABEL
  local label=$1 beam p others=0 t
  beam=$(pgrep -s "$NODE_PID" -x beam.smp 2>/dev/null | head -n 1 || true)
  for p in $(pgrep -x beam.smp 2>/dev/null || true); do
    [ "$p" = "$beam" ] && continue
    t=$(cpu_ticks "$p" 2>/dev/null || true)
    others=$((others + ${t:-0}))
  done
  echo "${label}_time=$(date +%s.%N)"
  echo "${label}_sidecar=$(cpu_ticks "$SIDECAR_PID")"
  if [ -n "$beam" ]; then echo "${label}_node=$(cpu_ticks "$beam")"; else echo "${label}_node="; fi
  echo "${label}_other_beams=$others"
  awk -v l="$label" '/^cpu / { print l "_machine_busy=" $2 + $3 + $4 + $7 + $8 + $9; print l "_machine_total=" $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

# Samples the sidecar's VmRSS (kB) every 0.2 s into OUT until stopped (VmHWM alone is not a
# reliable peak: the kernel updates the high-water mark lazily).
rss_sampler() { # rss_sampler PID OUT
  local line
  while [ -r "/proc/$1/status" ]; do
    while IFS= read -r line; do
      case $line in VmRSS:*) line=${line#VmRSS:}; line=${line% kB}; echo "${line//[[:space:]]/}" ;; esac
    done < "/proc/$1/status"
    sleep 0.2
  done > "$2"
}

# The broker's CPU ticks (utime+stime of its beam.smp) every 0.1 s, as "EPOCH TICKS" lines:
# the report interpolates them at each poll's start and end (from the sidecar's log).
beam_sampler() { # beam_sampler PID OUT
  local line rest
  while [ -r "/proc/$1/stat" ]; do
    read -r line < "/proc/$1/stat" || break
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- "$1" $rest
    echo "$EPOCHREALTIME $(( ${13} + ${14} ))"
    sleep 0.1
  done > "$2"
}

# Broker ticks and wall time around a replay: "LABEL EPOCH0 EPOCH1 TICKS0 TICKS1".
replay_measured() { # replay_measured PREFIX
  local e0 t0 e1 t1
  e0=$EPOCHREALTIME; t0=$(cpu_ticks "$BEAM_PID")
  replay_poll "$1"
  e1=$EPOCHREALTIME; t1=$(cpu_ticks "$BEAM_PID")
  echo "$1 $e0 $e1 $t0 $t1" >> "$run/replay-cpu.txt"
}

# Replays one poll's requests in the poll's own shape: every endpoint concurrently, the pages
# of an endpoint in order on one kept-alive connection. One file per endpoint.
replay_poll() { # replay_poll PREFIX
  local ep safe urls pids=() p
  for ep in "${ENDPOINTS[@]}"; do
    safe=$(printf '%s' "$ep" | tr -c 'a-zA-Z0-9' '_')
    mapfile -t urls < <(awk -F'\t' -v e="$ep" '$1 == e { print $2 }' "$run/requests.tsv")
    replay_chain "$run/replay/$1-$safe.txt" "${urls[@]}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
}

# Replays one chain of requests (an endpoint's pages, in order) in one curl process, so the
# connection is kept alive between them as the sidecar's client does. One line per request.
replay_chain() { # replay_chain OUTFILE URL...
  local out=$1 args=() u
  shift
  for u in "$@"; do args+=(-o /dev/null "$u"); done
  curl -s -m "$CURL_MAX_S" -u guest:guest -w '%{time_total} %{size_download} %{http_code}\n' "${args[@]}" > "$out"
}

# ---------------------------------------------------------------------------------------------
# 1. Dependencies and builds.
log "installing dependencies if missing"
scripts/install-deps.sh rabbitmq
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >&2
fi
command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain"
log "building the release sidecar and the load generator"
cargo build --release
cargo build --release --example bench_load
SIDECAR_BIN=$ROOT/target/release/rabbitmq-watch
# The allocator settings of the image and scripts/run.sh (docs/operations.md, "Memory and the
# allocator"); set MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ to measure others.
SIDECAR_ARENA_MAX=${MALLOC_ARENA_MAX-2}
SIDECAR_MMAP_THRESHOLD=${MALLOC_MMAP_THRESHOLD_-131072}
LOAD_BIN=$ROOT/target/release/examples/bench_load
[ -x "$SIDECAR_BIN" ] && [ -x "$LOAD_BIN" ] || die "build outputs missing"
# What was built (src/ may change under us later: record it now, not at measurement time).
BUILD_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DIRTY=$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
BUILD_TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$ROOT/bench/results"

# ---------------------------------------------------------------------------------------------
# 2.–6. One run per N.
run_one() {
  local n=$1
  local run="$WORK/run-$n"
  mkdir -p "$run/metrics" "$run/replay"
  local t0=$SECONDS
  log "=== N=$n queues ==="

  # 2. A throwaway node with production-like statistics interval. The script writes its own
  # default (500 ms) first; a later duplicate key overrides it (checked below).
  NODE_DIR="$WORK/node-$n"
  local node_vars
  node_vars=$(scripts/rabbitmq-node.sh start "$NODE_DIR" --watch-pid $$ \
    --conf "collect_statistics_interval = $STATS_INTERVAL_MS" \
    --conf "vm_memory_high_watermark.relative = $MEMORY_WATERMARK" \
    --conf "consumer_timeout = 86400000" "${MGMT_CONF[@]}") || die "the RabbitMQ node did not start"
  # node.env also sets ROOT (the RabbitMQ 4 tree, empty for 3.10): keep ours.
  eval "$(grep -v '^ROOT=' <<< "$node_vars")"
  local csi
  csi=$(scripts/rabbitmq-node.sh ctl "$NODE_DIR" eval 'application:get_env(rabbit, collect_statistics_interval).' 2>&1 | tr -d '\n ')
  [ "$csi" = "{ok,$STATS_INTERVAL_MS}" ] ||
    die "collect_statistics_interval is $csi on the node, not $STATS_INTERVAL_MS (the --conf override did not apply)"
  log "node $NODE_NAME up (management $MGMT_URL, collect_statistics_interval=$STATS_INTERVAL_MS ms)"

  # Vhosts and permissions for guest, through the management API.
  local v vh
  for v in $(seq 0 $((VHOSTS - 1))); do
    vh=$(printf 'bench-vh-%02d' "$v")
    curl -sf -u guest:guest -X PUT "$MGMT_URL/api/vhosts/$vh" >/dev/null || die "cannot create vhost $vh"
    curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
      -d '{"configure":".*","write":".*","read":".*"}' \
      "$MGMT_URL/api/permissions/$vh/guest" >/dev/null || die "cannot set permissions on $vh"
  done

  # 3. The load: queues, messages, consumers; it holds them until killed.
  log "loading: $n queues over $VHOSTS vhosts, $MESSAGES messages each, consumer (prefetch $PREFETCH) on every ${CONSUMER_EVERY}th"
  "$LOAD_BIN" --amqp-url "${AMQP_URL%/%2f}" --queues "$n" --vhosts "$VHOSTS" --messages "$MESSAGES" \
    --consumer-every "$CONSUMER_EVERY" --prefetch "$PREFETCH" > "$run/load.out" 2> "$run/load.err" &
  LOAD_PID=$!
  # Up to 600 s, or 20 ms per queue when more (the broker declares ~700 queues/s here).
  local i ready_max=$(( n / 50 > 600 ? n / 50 : 600 ))
  for i in $(seq 1 $((ready_max * 2))); do
    grep -q '^READY' "$run/load.out" && break
    kill -0 "$LOAD_PID" 2>/dev/null || { cat "$run/load.err" >&2; die "bench_load exited before READY"; }
    sleep 0.5
  done
  grep -q '^READY' "$run/load.out" || die "bench_load not READY after $ready_max s"
  log "load: $(grep '^READY' "$run/load.out")"

  # Wait until the broker's statistics show the whole load (up to a statistics interval).
  local want_unacked consumers_expected ok=""
  consumers_expected=$(( CONSUMER_EVERY > 0 ? (n + CONSUMER_EVERY - 1) / CONSUMER_EVERY : 0 ))
  want_unacked=$(( consumers_expected * (PREFETCH < MESSAGES ? PREFETCH : MESSAGES) ))
  for i in $(seq 1 $(( n / 1000 > 60 ? n / 1000 : 60 ))); do
    api '/api/overview' > "$run/overview.json" || true
    if "$PY" - "$run/overview.json" "$n" "$((n * MESSAGES))" "$want_unacked" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
q, m, u = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ot, qt = o.get("object_totals", {}), o.get("queue_totals", {})
sys.exit(0 if ot.get("queues") == q and qt.get("messages") == m and qt.get("messages_unacknowledged") == u else 1)
EOF
    then ok=1; break; fi
    sleep 2
  done
  [ -n "$ok" ] || log "WARNING: broker totals did not reach the expected values within 120 s (see $run/overview.json)"
  api '/api/overview' > "$run/overview.json" || true

  # Machine and broker description, and what else runs here (other nodes share the 2 cores).
  {
    echo "n=$n"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc=$(nproc)"
    echo "mem_total_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
    echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "clk_tck=$CLK_TCK"
    echo "vhosts=$VHOSTS"
    echo "messages_per_queue=$MESSAGES"
    echo "consumer_every=$CONSUMER_EVERY"
    echo "prefetch=$PREFETCH"
    echo "polls=$POLLS"
    echo "runs=$RUNS"
    echo "interval_s=$INTERVAL_S"
    echo "timeout_s=$TIMEOUT_S"
    echo "full_reads=$FULL_READS"
    echo "memory_watermark=$MEMORY_WATERMARK"
    echo "mgmt_timeout_ms=$MGMT_TIMEOUT_MS"
    echo "nice=$(nice)"
    echo "stats_interval_ms=$STATS_INTERVAL_MS"
    echo "wrk_duration=$WRK_DURATION"
    echo "wrk_connections=$WRK_CONNECTIONS"
    echo "wrk1_duration=$WRK1_DURATION"
    echo "wrk_paced_duration=$WRK_PACED_DURATION"
    echo "scrape=$SCRAPE"
    echo "load_line=$(grep '^READY' "$run/load.out")"
    echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "other_beam_processes=$(( $(pgrep -c -x beam.smp || true) - 1 ))"
    echo "sidecar_commit=$BUILD_COMMIT"
    echo "sidecar_dirty=$BUILD_DIRTY"
    echo "sidecar_built=$BUILD_TIME"
    echo "malloc_env=MALLOC_ARENA_MAX=$SIDECAR_ARENA_MAX MALLOC_MMAP_THRESHOLD_=$SIDECAR_MMAP_THRESHOLD"
    echo "sidecar_env=$(env | grep -E '^RABBITMQ_WATCH__' | grep -v -i -E 'PASSWORD|SECRET|TOKEN' | sort | tr '\n' ' ')"
  } > "$run/meta.env"

  # The broker's own idle cost (statistics collection, the load generator's connections), to
  # be read beside the per-poll figures (which include it).
  BEAM_PID=$(pgrep -s "$NODE_PID" -x beam.smp | head -n 1) || die "our node's beam.smp not found"
  local b0 b1 e0 e1
  e0=$EPOCHREALTIME; b0=$(cpu_ticks "$BEAM_PID")
  sleep "${BENCH_BASELINE_S:-10}"
  e1=$EPOCHREALTIME; b1=$(cpu_ticks "$BEAM_PID")
  printf 'broker_baseline_s=%s\nbroker_baseline_ticks=%s\n' \
    "$("$PY" -c "print($e1 - $e0)")" "$((b1 - b0))" >> "$run/meta.env"
  : > "$run/replay-cpu.txt"
  beam_sampler "$BEAM_PID" "$run/beam-ticks.txt" &
  BEAM_SAMPLER_PID=$!

  # 4. The sidecar.
  SIDECAR_PORT=$(free_port)
  SIDECAR_LOG="$run/sidecar.log"
  RABBITMQ_WATCH__RABBITMQ__URL="$MGMT_URL" \
    RABBITMQ_WATCH__POLL__INTERVAL=${INTERVAL_S}s \
    RABBITMQ_WATCH__RABBITMQ__TIMEOUT=${TIMEOUT_S}s \
    RABBITMQ_WATCH__POLL__DEADLINE=$((INTERVAL_S * 4))s \
    RABBITMQ_WATCH__LISTEN="127.0.0.1:$SIDECAR_PORT" \
    MALLOC_ARENA_MAX="$SIDECAR_ARENA_MAX" MALLOC_MMAP_THRESHOLD_="$SIDECAR_MMAP_THRESHOLD" \
    RUST_LOG=rabbitmq_watch=debug NO_COLOR=1 \
    "$SIDECAR_BIN" > "$run/sidecar.stdout" 2> "$SIDECAR_LOG" &
  SIDECAR_PID=$!
  log "sidecar pid $SIDECAR_PID on 127.0.0.1:$SIDECAR_PORT"
  rss_sampler "$SIDECAR_PID" "$run/rss-polls.txt" &
  RSS_PID=$!

  # First poll: found by scraping (before the measured window), then choose how to count polls.
  POLL_DETECT=metrics
  wait_polls 1 $((INTERVAL_S + TIMEOUT_S + 60))
  if grep -q 'poll finished' "$SIDECAR_LOG"; then POLL_DETECT=log; fi
  echo "poll_detection=$POLL_DETECT" >> "$run/meta.env"
  EXTRA_SCRAPES=0
  scrape_poll 1

  # The exact requests of one poll (the first; the second is checked against it at the end),
  # from the sidecar's debug log.
  "${REPORT[@]}" requests "$SIDECAR_LOG" 1 > "$run/requests.tsv" ||
    die "could not find the requests of poll 1 in $SIDECAR_LOG"
  log "one poll = $(wc -l < "$run/requests.tsv") requests: $(cut -f1 "$run/requests.tsv" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
  mapfile -t ENDPOINTS < <(cut -f1 "$run/requests.tsv" | awk '!seen[$0]++')

  # 5a. K polls after the first. After each poll the sidecar is scraped once (as one Prometheus
  # would), then frozen (SIGSTOP) while curl replays the same requests against the broker, then
  # resumed; its next poll then starts at once (missed ticks are delayed, not burst). Replays
  # and polls thus alternate and see the same broker state, and neither runs during the other.
  # A poll that overran the interval is followed at once by the next one: if that one has
  # already started when the sidecar is frozen, it is resumed at once (frozen for a few ms) and
  # this replay is skipped; the missing replays are made after the sidecar has stopped.
  # CPU: from the scrape of poll 1 to the scrape of poll 1+K, so exactly K polls, their
  # encodings and K scrapes (plus the extra scrapes counted in extra_scrapes).
  local k replays=0
  cpu_snapshot start > "$run/cpu.env"
  for k in $(seq 2 $((POLLS + 1))); do
    if [ "$POLL_DETECT" = log ]; then
      kill -STOP "$SIDECAR_PID"
      if poll_in_progress; then
        kill -CONT "$SIDECAR_PID"
        log "poll $k already started (the previous one overran the interval): no replay before it"
      else
        log "replay $((k - 1)) of $POLLS (sidecar frozen)"
        replay_measured "conc-$((k - 1))"
        kill -CONT "$SIDECAR_PID"
        replays=$((replays + 1))
      fi
    fi
    log "waiting for poll $k of $((POLLS + 1))"
    wait_polls "$k" $((INTERVAL_S + TIMEOUT_S * 3 + 30))
    scrape_poll "$k"
  done
  cpu_snapshot end >> "$run/cpu.env"
  printf 'polls_in_window=%s\nextra_scrapes=%s\n' "$POLLS" "$EXTRA_SCRAPES" >> "$run/cpu.env"
  echo "replays_interleaved=$replays" >> "$run/meta.env"
  cp "/proc/$SIDECAR_PID/status" "$run/status-after-polls.txt"
  stop_pid "$RSS_PID"; RSS_PID=""
  stop_pid "$BEAM_SAMPLER_PID"; BEAM_SAMPLER_PID=""

  # 5b. /metrics with one scraper, then under concurrent scrapers (the sidecar keeps polling).
  rss_sampler "$SIDECAR_PID" "$run/rss-wrk.txt" &
  RSS_PID=$!
  log "wrk: 1 connection for $WRK1_DURATION"
  wrk -t1 -c1 -d"$WRK1_DURATION" --latency "http://127.0.0.1:$SIDECAR_PORT/metrics" > "$run/wrk-1.txt" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || log "WARNING: wrk exited with an error (see $run/wrk-1.txt)"
  WRK_PID=""
  log "wrk: $WRK_CONNECTIONS connections for $WRK_DURATION"
  wrk -t2 -c"$WRK_CONNECTIONS" -d"$WRK_DURATION" --latency "http://127.0.0.1:$SIDECAR_PORT/metrics" > "$run/wrk.txt" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || log "WARNING: wrk exited with an error (see $run/wrk.txt)"
  WRK_PID=""
  # The same with the request headers Prometheus sends: OpenMetrics preferred, gzip accepted.
  log "wrk: $WRK_CONNECTIONS connections for $WRK_DURATION, Prometheus's headers (OpenMetrics, gzip)"
  wrk -t2 -c"$WRK_CONNECTIONS" -d"$WRK_DURATION" --latency \
    -H "Accept: $PROMETHEUS_ACCEPT" \
    -H 'Accept-Encoding: gzip' \
    "http://127.0.0.1:$SIDECAR_PORT/metrics" > "$run/wrk-prometheus.txt" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || log "WARNING: wrk exited with an error (see $run/wrk-prometheus.txt)"
  WRK_PID=""
  # Scrapers paced as Prometheus's are (each waits ~1 s between scrapes), across polls: the
  # latency of a scrape while the sidecar polls, not of a closed loop saturating 2 cores.
  log "wrk: $WRK_CONNECTIONS paced scrapers (~1 scrape/s each) for $WRK_PACED_DURATION, Prometheus's headers"
  wrk -t2 -c"$WRK_CONNECTIONS" -d"$WRK_PACED_DURATION" --latency -s "$ROOT/bench/paced.lua" \
    "http://127.0.0.1:$SIDECAR_PORT/metrics" > "$run/wrk-paced.txt" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || log "WARNING: wrk exited with an error (see $run/wrk-paced.txt)"
  WRK_PID=""
  cp "/proc/$SIDECAR_PID/status" "$run/status-after-wrk.txt"
  stop_pid "$RSS_PID"; RSS_PID=""
  scrape "$run/exposition.prom"
  echo "polls_at_end=$(polls_done)" >> "$run/meta.env"
  # (The endpoints run concurrently, so compare each endpoint's requests in their order.)
  if "${REPORT[@]}" requests "$SIDECAR_LOG" 2 > "$run/requests-poll2.tsv" &&
    cmp -s <(sort -s -t "$(printf '\t')" -k1,1 "$run/requests.tsv") \
      <(sort -s -t "$(printf '\t')" -k1,1 "$run/requests-poll2.tsv"); then
    echo "requests_poll2_same=1" >> "$run/meta.env"
  else
    log "WARNING: poll 2 made other requests than poll 1 (see $run/requests-poll2.tsv)"
    echo "requests_poll2_same=0" >> "$run/meta.env"
  fi

  # The broker alone from here on: replays not made between the polls (fewer than RUNS), then
  # a plain full /api/queues, for the byte comparison.
  stop_pid "$SIDECAR_PID"; SIDECAR_PID=""
  local r
  for r in $(seq $((replays + 1)) "$RUNS"); do
    log "replay after the polls, run $r of $RUNS"
    replay_measured "after-$r"
  done
  for r in $(seq 1 "$FULL_READS"); do
    log "plain GET /api/queues run $r of $FULL_READS"
    curl -s -m "$CURL_MAX_S" -u guest:guest -o /dev/null -w '%{time_total} %{size_download} %{http_code}\n' \
      "$MGMT_URL/api/queues" > "$run/replay/full-$r.txt"
  done

  # Done with this node.
  stop_run
  echo "run_seconds=$((SECONDS - t0))" >> "$run/meta.env"

  # Figures and raw data (the large exposition files are not kept).
  local raw="$ROOT/bench/results/raw-$n"
  rm -rf "$raw"
  mkdir -p "$raw/metrics"
  cp -r "$run/replay" "$run/meta.env" "$run/cpu.env" "$run/requests.tsv" "$run/requests-poll2.tsv" "$run/wrk.txt" "$run/wrk-1.txt" "$run/wrk-prometheus.txt" "$run/wrk-paced.txt" \
    "$run/rss-polls.txt" "$run/rss-wrk.txt" "$run/beam-ticks.txt" "$run/replay-cpu.txt" \
    "$run/status-after-polls.txt" "$run/status-after-wrk.txt" "$run/overview.json" \
    "$run/sidecar.log" "$run/load.out" "$raw/"
  for f in "$run"/metrics/*.prom "$run/exposition.prom"; do
    grep -E '^(rabbitmq_watch_|rabbitmq_up |rabbitmq_queues )' "$f" > "$raw/metrics/$(basename "$f")" || true
    cp "$f.w" "$raw/metrics/$(basename "$f").w"
  done
  echo "exposition_lines=$(wc -l < "$run/exposition.prom")" >> "$raw/meta.env"
  echo "queue_series=$(grep -c '^rabbitmq_queue_messages{' "$run/exposition.prom" || true)" >> "$raw/meta.env"
  "${REPORT[@]}" collect "$raw" "$ROOT/bench/results/$n.json"
  log "N=$n done in $((SECONDS - t0)) s"
}

for n in "${SIZES[@]}"; do
  run_one "$n"
done

"${REPORT[@]}" render "$ROOT/bench/results" "$ROOT/bench/RESULTS.md" "${SIZES[@]}"
log "wrote bench/RESULTS.md"
