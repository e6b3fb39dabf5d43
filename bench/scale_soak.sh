#!/usr/bin/env bash
# The scale soak of issue #13: the release sidecar, default alerting, against a throwaway
# RabbitMQ node holding N queues (default 10,000, loaded by examples/bench_load.rs like
# bench/run.sh: 9 queues in 10 without consumer -> RabbitmqQueueNoConsumers, every 10th with a
# never-acking consumer -> RabbitmqQueueStalled once the backlog window is complete), long
# enough for every backlog window to be complete and then some. Records the sidecar's RSS (and
# its CPU ticks and the broker's) every few seconds, scrapes /metrics (plain and as Prometheus
# asks for it: OpenMetrics + gzip) and GET /api/v1/alerts periodically, and writes
#   bench/results/scale-soak.json   the figures (committed)
#   bench/SCALE_SOAK.md             a summary with RSS over time (committed; included in
#                                   bench/RESULTS.md by report.py render)
#   bench/results/raw-scale-soak/   the raw samples and the sidecar's log (gitignored)
#
# Usage: bench/scale_soak.sh        (about 15 min of soak + ~1.5 min of set-up at 10,000 queues)
#
# Knobs (environment, defaults in brackets): SCALE_SOAK_QUEUES [10000], SCALE_SOAK_SECONDS [900]
# (how long the sidecar runs), SCALE_SOAK_WINDOW [5m] (alerting.backlog.window; the default is
# 10m, shortened so the soak fits, see bench/README.md), SCALE_SOAK_INTERVAL_S [15] and
# SCALE_SOAK_TIMEOUT_S [30] (poll.interval, rabbitmq.timeout), SCALE_SOAK_SAMPLE_S [2] (RSS and
# CPU samples), SCALE_SOAK_SCRAPE_S [30] (/metrics scrapes), SCALE_SOAK_ALERTS_S [60]
# (GET /api/v1/alerts), BENCH_VHOSTS [10], BENCH_MESSAGES [5], BENCH_CONSUMER_EVERY [10],
# BENCH_PREFETCH [2], BENCH_BASELINE_S [10] (idle broker measured before the sidecar starts),
# SCALE_SOAK_PLAIN [1] (0: scrape /metrics only as Prometheus does, OpenMetrics + gzip, never the
# ~18 MB plain text), SCALE_SOAK_OUT [scale-soak] (the name of the json, md and raw outputs).
# glibc allocator settings: the sidecar runs with the container image's MALLOC_ARENA_MAX=2
# MALLOC_MMAP_THRESHOLD_=131072 (as bench/run.sh does; set either in the environment to measure
# another value; GLIBC_TUNABLES passes through); they are recorded in meta.env as malloc_env.
# Soaks before 2026-12-01 04:00 UTC ran with whatever the environment had (see each record).
#
# The node's consumer_timeout is raised to a day: the load's never-acking consumers (every 10th
# queue) would otherwise lose their channels after RabbitMQ's default 30 minutes, turning the
# 1,000 stalled queues into queues without consumers in the middle of a longer soak.
#
# Everything started here (the node, the load generator, the sidecar, the sampler) is stopped on
# exit by PID; the node is also tied to this script with --watch-pid. Other nodes are not
# touched. On a shared machine run it under `nice -n 10` and compare CPU times, not wall times.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

N=${SCALE_SOAK_QUEUES:-10000}
DURATION=${SCALE_SOAK_SECONDS:-900}
WINDOW=${SCALE_SOAK_WINDOW:-5m}
INTERVAL_S=${SCALE_SOAK_INTERVAL_S:-15}
TIMEOUT_S=${SCALE_SOAK_TIMEOUT_S:-30}
SAMPLE_S=${SCALE_SOAK_SAMPLE_S:-2}
SCRAPE_S=${SCALE_SOAK_SCRAPE_S:-30}
ALERTS_S=${SCALE_SOAK_ALERTS_S:-60}
PLAIN=${SCALE_SOAK_PLAIN:-1}
OUT=${SCALE_SOAK_OUT:-scale-soak}
VHOSTS=${BENCH_VHOSTS:-10}
MESSAGES=${BENCH_MESSAGES:-5}
CONSUMER_EVERY=${BENCH_CONSUMER_EVERY:-10}
PREFETCH=${BENCH_PREFETCH:-2}
BASELINE_S=${BENCH_BASELINE_S:-10}
STATS_INTERVAL_MS=5000
PROM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

log() { printf '%s scale-soak: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

WORK=$(mktemp -d /tmp/rabbitmq-watch-scale-soak.XXXXXX)
NODE_DIR=""
LOAD_PID=""
SIDECAR_PID=""
SAMPLER_PID=""

stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$SAMPLER_PID"
  stop_pid "$SIDECAR_PID"
  stop_pid "$LOAD_PID"
  [ -z "$NODE_DIR" ] || scripts/rabbitmq-node.sh clean "$NODE_DIR" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! port_in_use "$p"; then echo "$p"; return; fi
  done
  die "no free TCP port found"
}
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Every SAMPLE_S seconds: "EPOCH VmRSS_kB VmHWM_kB SIDECAR_TICKS BEAM_TICKS".
sampler() { # sampler SIDECAR_PID BEAM_PID OUT
  while [ -r "/proc/$1/status" ]; do
    echo "$EPOCHREALTIME $(status_kb "$1" VmRSS) $(status_kb "$1" VmHWM) $(cpu_ticks "$1") $(cpu_ticks "$2" 2>/dev/null || echo -)"
    sleep "$SAMPLE_S"
  done > "$3"
}

# ---------------------------------------------------------------------------------------------
log "building the release sidecar and the load generator (no-op when up to date)"
cargo build --release
cargo build --release --example bench_load
SIDECAR_BIN=$ROOT/target/release/rabbitmq-watch
SIDECAR_ARENA_MAX=${MALLOC_ARENA_MAX-2}
SIDECAR_MMAP_THRESHOLD=${MALLOC_MMAP_THRESHOLD_-131072}
LOAD_BIN=$ROOT/target/release/examples/bench_load
BUILD_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DIRTY=$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
run=$WORK/run
mkdir -p "$run/metrics"

NODE_DIR="$WORK/node"
node_vars=$(scripts/rabbitmq-node.sh start "$NODE_DIR" --watch-pid $$ \
  --conf "collect_statistics_interval = $STATS_INTERVAL_MS" \
  --conf "consumer_timeout = 86400000") || die "the RabbitMQ node did not start"
# node.env also sets ROOT (the RabbitMQ 4 tree, empty for 3.10): keep ours.
eval "$(grep -v '^ROOT=' <<< "$node_vars")"
log "node $NODE_NAME up ($MGMT_URL)"
for v in $(seq 0 $((VHOSTS - 1))); do
  vh=$(printf 'bench-vh-%02d' "$v")
  curl -sf -u guest:guest -X PUT "$MGMT_URL/api/vhosts/$vh" >/dev/null || die "cannot create vhost $vh"
  curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' \
    "$MGMT_URL/api/permissions/$vh/guest" >/dev/null || die "cannot set permissions on $vh"
done

log "loading: $N queues over $VHOSTS vhosts"
"$LOAD_BIN" --amqp-url "${AMQP_URL%/%2f}" --queues "$N" --vhosts "$VHOSTS" --messages "$MESSAGES" \
  --consumer-every "$CONSUMER_EVERY" --prefetch "$PREFETCH" > "$run/load.out" 2> "$run/load.err" &
LOAD_PID=$!
for i in $(seq 1 1200); do
  grep -q '^READY' "$run/load.out" && break
  kill -0 "$LOAD_PID" 2>/dev/null || { cat "$run/load.err" >&2; die "bench_load exited before READY"; }
  sleep 0.5
done
grep -q '^READY' "$run/load.out" || die "bench_load not READY after 600 s"
log "load: $(grep '^READY' "$run/load.out")"
sleep 10 # one statistics interval (5 s) and some: the broker's figures show the load

BEAM_PID=$(pgrep -s "$NODE_PID" -x beam.smp | head -n 1) || die "our node's beam.smp not found"
e0=$EPOCHREALTIME; b0=$(cpu_ticks "$BEAM_PID")
sleep "$BASELINE_S"
e1=$EPOCHREALTIME; b1=$(cpu_ticks "$BEAM_PID")

PORT=$(free_port)
LOG_FILE=$run/sidecar.log
RABBITMQ_WATCH__RABBITMQ__URL="$MGMT_URL" \
  RABBITMQ_WATCH__POLL__INTERVAL=${INTERVAL_S}s \
  RABBITMQ_WATCH__RABBITMQ__TIMEOUT=${TIMEOUT_S}s \
  RABBITMQ_WATCH__POLL__DEADLINE=$((INTERVAL_S * 4 > TIMEOUT_S * 2 ? INTERVAL_S * 4 : TIMEOUT_S * 2))s \
  RABBITMQ_WATCH__ALERTING__BACKLOG__WINDOW="$WINDOW" \
  RABBITMQ_WATCH__LISTEN="127.0.0.1:$PORT" \
  RUST_LOG=rabbitmq_watch=debug NO_COLOR=1 \
  MALLOC_ARENA_MAX="$SIDECAR_ARENA_MAX" MALLOC_MMAP_THRESHOLD_="$SIDECAR_MMAP_THRESHOLD" \
  "$SIDECAR_BIN" > "$run/sidecar.stdout" 2> "$LOG_FILE" &
SIDECAR_PID=$!
START=$EPOCHREALTIME
sampler "$SIDECAR_PID" "$BEAM_PID" "$run/samples.txt" &
SAMPLER_PID=$!
log "sidecar pid $SIDECAR_PID on 127.0.0.1:$PORT; soaking for $DURATION s (backlog window $WINDOW)"

{
  echo "n=$N"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc=$(nproc)"
  echo "clk_tck=$(getconf CLK_TCK)"
  echo "duration_s=$DURATION"
  echo "window=$WINDOW"
  echo "interval_s=$INTERVAL_S"
  echo "timeout_s=$TIMEOUT_S"
  echo "sample_s=$SAMPLE_S"
  echo "scrape_s=$SCRAPE_S"
  echo "alerts_s=$ALERTS_S"
  echo "plain=$PLAIN"
  echo "start=$START"
  echo "load_line=$(grep '^READY' "$run/load.out")"
  echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "other_beam_processes=$(( $(pgrep -c -x beam.smp || true) - 1 ))"
  echo "nice=$(nice)"
  echo "malloc_env=MALLOC_ARENA_MAX=$SIDECAR_ARENA_MAX MALLOC_MMAP_THRESHOLD_=$SIDECAR_MMAP_THRESHOLD $(env | grep -E '^GLIBC_TUNABLES=' | tr '\n' ' ')"
  echo "sidecar_commit=$BUILD_COMMIT"
  echo "sidecar_dirty=$BUILD_DIRTY"
  echo "broker_baseline_s=$(awk -v a="$e0" -v b="$e1" 'BEGIN { print b - a }')"
  echo "broker_baseline_ticks=$((b1 - b0))"
} > "$run/meta.env"

# Scrapes: "EPOCH KIND TIME_S BYTES HTTP_CODE SIDECAR_TICKS_BEFORE SIDECAR_TICKS_AFTER RSS_KB_AFTER".
next_scrape=0
next_alerts=$ALERTS_S
: > "$run/scrapes.txt"
while :; do
  now=$(awk -v s="$START" -v n="$EPOCHREALTIME" 'BEGIN { printf "%d", n - s }')
  [ "$now" -lt "$DURATION" ] || break
  kill -0 "$SIDECAR_PID" 2>/dev/null || { tail -n 20 "$LOG_FILE" >&2; die "the sidecar exited"; }
  if [ "$now" -ge "$next_scrape" ]; then
    t0=$(cpu_ticks "$SIDECAR_PID")
    if [ "$PLAIN" = 1 ]; then
      w=$(curl -s -m 30 -o "$run/metrics/$now.prom" -w '%{time_total} %{size_download} %{http_code}' \
        "http://127.0.0.1:$PORT/metrics" || echo "- 0 000")
    else # the same series, fetched gzip-compressed (curl decompresses)
      w=$(curl -s -m 30 --compressed -o "$run/metrics/$now.prom" -w '%{time_total} %{size_download} %{http_code}' \
        "http://127.0.0.1:$PORT/metrics" || echo "- 0 000")
    fi
    t1=$(cpu_ticks "$SIDECAR_PID")
    echo "$EPOCHREALTIME metrics$([ "$PLAIN" = 1 ] || echo -gzip-text) $w $t0 $t1 $(status_kb "$SIDECAR_PID" VmRSS)" >> "$run/scrapes.txt"
    # Keep only the sidecar's own series (the queue series are large and not needed here).
    grep -E '^(rabbitmq_watch_|rabbitmq_up |rabbitmq_queues )' "$run/metrics/$now.prom" > "$run/metrics/$now.txt" || true
    rm -f "$run/metrics/$now.prom"
    t0=$(cpu_ticks "$SIDECAR_PID")
    w=$(curl -s -m 30 -o /dev/null -H "Accept: $PROM_ACCEPT" -H 'Accept-Encoding: gzip' \
      -w '%{time_total} %{size_download} %{http_code}' "http://127.0.0.1:$PORT/metrics" || echo "- 0 000")
    t1=$(cpu_ticks "$SIDECAR_PID")
    echo "$EPOCHREALTIME metrics-gzip $w $t0 $t1 $(status_kb "$SIDECAR_PID" VmRSS)" >> "$run/scrapes.txt"
    next_scrape=$((now + SCRAPE_S))
  fi
  if [ "$now" -ge "$next_alerts" ]; then
    t0=$(cpu_ticks "$SIDECAR_PID")
    w=$(curl -s -m 60 -o "$run/alerts.json" -w '%{time_total} %{size_download} %{http_code}' \
      "http://127.0.0.1:$PORT/api/v1/alerts" || echo "- 0 000")
    t1=$(cpu_ticks "$SIDECAR_PID")
    echo "$EPOCHREALTIME alerts $w $t0 $t1 $(status_kb "$SIDECAR_PID" VmRSS)" >> "$run/scrapes.txt"
    # Alert counts by name and state, then the body goes (it is megabytes).
    python3 - "$run/alerts.json" "$now" >> "$run/alert-counts.txt" <<'EOF' || true
import collections, json, sys
try:
    alerts = json.load(open(sys.argv[1]))["data"]["alerts"]
except (OSError, ValueError, KeyError, TypeError):
    alerts = None
c = collections.Counter((a["labels"].get("alertname"), a["state"]) for a in alerts or [])
print(json.dumps({"t": int(sys.argv[2]), "alerts": None if alerts is None else len(alerts),
                  "by": {f"{k[0]}/{k[1]}": v for k, v in sorted(c.items())}}))
EOF
    rm -f "$run/alerts.json"
    next_alerts=$((now + ALERTS_S))
  fi
  sleep 1
done

cp "/proc/$SIDECAR_PID/status" "$run/status-end.txt"
stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
stop_pid "$SIDECAR_PID"; SIDECAR_PID=""
log "soak done; writing the figures"

raw=$ROOT/bench/results/raw-$OUT
rm -rf "$raw"
mkdir -p "$raw"
cp -r "$run"/. "$raw/"
if [ "$OUT" = scale-soak ]; then md=$ROOT/bench/SCALE_SOAK.md; else md=$ROOT/bench/results/$OUT.md; fi
python3 "$ROOT/bench/scale_soak.py" "$raw" "$ROOT/bench/results/$OUT.json" "$md"
python3 "$ROOT/bench/report.py" render "$ROOT/bench/results" "$ROOT/bench/RESULTS.md" >/dev/null
log "wrote bench/results/$OUT.json, $md and bench/RESULTS.md"
