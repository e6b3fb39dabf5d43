#!/usr/bin/env bash
# The two figure sources side by side on a real RabbitMQ 4.0.5 holding N queues (#12):
# `rabbitmq.source: management` (the management statistics, one streamed /api/queues read)
# against `rabbitmq.source: prometheus` (every member's rabbitmq_prometheus /metrics/detailed and
# /metrics, plus the settings-only /api/queues listing), same broker, same load.
#
# Usage: bench/sources.sh [N]          (default 10000)
#
# Per N: starts a throwaway 4.0.5 node with management statistics on
# (scripts/rabbitmq-node.sh --version 4, collect_statistics_interval = 5000 as in production),
# loads it with examples/bench_load.rs (N durable classic queues over 10 vhosts, 5 messages each,
# a never-acking consumer with prefetch 2 on every 10th queue), then runs the release sidecar
# in blocks, alternating the sources (management, prometheus, management, prometheus: the
# broker's speed drifts over minutes). Each block: 10 s of the idle broker (its baseline CPU),
# then a fresh sidecar with that source, polls 2 … K+1 measured. Then the same load on a second
# node with statistics off (what RabbitMQ recommends for 4.x), where only the prometheus source
# has figures: one more prometheus block. Per block:
#   - poll wall time: the sidecar's own `poll finished … duration_ms` (debug log), median;
#   - bytes read per poll: the sum of rabbitmq_watch_endpoint_response_bytes after the last poll;
#   - sidecar CPU per poll: utime+stime of its process (/proc/PID/stat) over the K polls ÷ K
#     (includes one /metrics scrape per poll);
#   - sidecar RSS: VmRSS and VmHWM (/proc/PID/status) after the polls;
#   - broker CPU per poll: utime+stime of the node's beam.smp over the K polls, minus the
#     block's idle baseline rate over the same wall time, ÷ K;
#   - that the figures are there: queue series with messages_ready, and their sum.
# CPU times are the figures to compare on a shared machine (wall times stretch under
# contention); the load average and other beam.smp processes are recorded per block.
#
# Writes bench/results/sources/N.json and bench/SOURCES.md (included in bench/RESULTS.md by
# bench/report.py render). Everything started here is stopped on exit, by PID.
# The sidecar runs with the reliability audit off (`audit.enabled: false`: its reads are the same
# for both sources and are measured on their own, docs/audit.md#cost).
# Knobs: BENCH_POLLS [5], BENCH_ROUNDS [2], BENCH_INTERVAL_S [20], BENCH_TIMEOUT_S [19],
# BENCH_BASELINE_S [10], BENCH_STATS_OFF [1] (0 skips the statistics-off node).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:-10000}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "sources: N must be a positive integer" >&2; exit 2; }
POLLS=${BENCH_POLLS:-5}
ROUNDS=${BENCH_ROUNDS:-2}
INTERVAL_S=${BENCH_INTERVAL_S:-20}
TIMEOUT_S=${BENCH_TIMEOUT_S:-19}
BASELINE_S=${BENCH_BASELINE_S:-10}
STATS_OFF=${BENCH_STATS_OFF:-1}
VHOSTS=10 MESSAGES=5 CONSUMER_EVERY=10 PREFETCH=2
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s sources: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

WORK=$(mktemp -d /tmp/rabbitmq-watch-sources.XXXXXX)
NODE_DIR="" LOAD_PID="" SIDECAR_PID=""
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_node() {
  stop_pid "$SIDECAR_PID"; SIDECAR_PID=""
  stop_pid "$LOAD_PID"; LOAD_PID=""
  if [ -n "$NODE_DIR" ]; then scripts/rabbitmq-node.sh clean "$NODE_DIR" >/dev/null 2>&1 || true; NODE_DIR=""; fi
}
cleanup() { local rc=$?; trap - EXIT INT TERM; stop_node; [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK"; exit "$rc"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p i
  for i in $(seq 1 200); do p=$((20000 + RANDOM % 30000)); port_in_use "$p" || { echo "$p"; return; }; done
  die "no free port"
}
# Polls finished so far, 0 while the log does not exist yet.
polls_done() { local c; c=$(grep -c 'poll finished' "$1" 2>/dev/null) || true; echo "${c:-0}"; }
wait_polls() { # wait_polls LOG K LIMIT_S
  local waited=0
  while [ "$(polls_done "$1")" -lt "$2" ]; do
    kill -0 "$SIDECAR_PID" 2>/dev/null || { tail -n 20 "$1" >&2; die "the sidecar exited"; }
    sleep 0.2; waited=$((waited + 1))
    [ "$waited" -lt $(($3 * 5)) ] || die "poll $2 did not finish within $3 s"
  done
}

log "building the release sidecar and the load generator"
cargo build --release --bin rabbitmq-watch --example bench_load >&2
SIDECAR_BIN=$ROOT/target/release/rabbitmq-watch
LOAD_BIN=$ROOT/target/release/examples/bench_load
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
BLOCKS="$WORK/blocks.tsv"
: > "$BLOCKS"

# start_loaded_node STATS: a 4.0.5 node with statistics STATS, loaded; sets NODE_DIR, BEAM_PID,
# MGMT_URL, PROM_URL.
start_loaded_node() {
  NODE_DIR="$WORK/node-$1"
  local vars v vh i
  vars=$(scripts/rabbitmq-node.sh start "$NODE_DIR" --version 4 --stats "$1" --watch-pid $$ \
    --conf "collect_statistics_interval = 5000") || die "the 4.0.5 node did not start"
  eval "$vars"
  BEAM_PID=$(pgrep -s "$NODE_PID" -x beam.smp | head -n 1) || die "beam.smp of our node not found"
  log "node $NODE_NAME (statistics $1) up: $MGMT_URL, plugin $PROM_URL"
  for v in $(seq 0 $((VHOSTS - 1))); do
    vh=$(printf 'bench-vh-%02d' "$v")
    curl -sf -u guest:guest -X PUT "$MGMT_URL/api/vhosts/$vh" >/dev/null || die "vhost $vh"
    curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
      -d '{"configure":".*","write":".*","read":".*"}' "$MGMT_URL/api/permissions/$vh/guest" >/dev/null
  done
  "$LOAD_BIN" --amqp-url "${AMQP_URL%/%2f}" --queues "$N" --vhosts "$VHOSTS" --messages "$MESSAGES" \
    --consumer-every "$CONSUMER_EVERY" --prefetch "$PREFETCH" > "$WORK/load-$1.out" 2> "$WORK/load-$1.err" &
  LOAD_PID=$!
  for i in $(seq 1 1200); do
    grep -q '^READY' "$WORK/load-$1.out" && break
    kill -0 "$LOAD_PID" 2>/dev/null || { cat "$WORK/load-$1.err" >&2; die "bench_load exited"; }
    sleep 0.5
  done
  log "load: $(grep '^READY' "$WORK/load-$1.out")"
  # The plugin's queue figures lag by up to one statistics interval.
  sleep 6
}

# block STATS SOURCE ROUND: one measured block (see the header).
block() {
  local stats=$1 source=$2 round=$3 b0 b1 e0 e1 port logf s0 s1 w0 w1 m
  local tag="$stats-$source-$round"
  log "block $tag: baseline ${BASELINE_S}s"
  e0=$EPOCHREALTIME; b0=$(cpu_ticks "$BEAM_PID"); sleep "$BASELINE_S"
  e1=$EPOCHREALTIME; b1=$(cpu_ticks "$BEAM_PID")
  local base_s base_ticks=$((b1 - b0))
  base_s=$("$PY" -c "print($e1 - $e0)")
  port=$(free_port)
  logf="$WORK/sidecar-$tag.log"
  RABBITMQ_WATCH__RABBITMQ__URL="$MGMT_URL" \
    RABBITMQ_WATCH__RABBITMQ__SOURCE="$source" \
    RABBITMQ_WATCH__RABBITMQ__PROMETHEUS_URL="$PROM_URL" \
    RABBITMQ_WATCH__POLL__INTERVAL=${INTERVAL_S}s \
    RABBITMQ_WATCH__RABBITMQ__TIMEOUT=${TIMEOUT_S}s \
    RABBITMQ_WATCH__POLL__DEADLINE=$((INTERVAL_S * 4))s \
    RABBITMQ_WATCH__LISTEN="127.0.0.1:$port" \
    RABBITMQ_WATCH__AUDIT__ENABLED=false \
    RUST_LOG=rabbitmq_watch=debug NO_COLOR=1 \
    "$SIDECAR_BIN" > /dev/null 2> "$logf" &
  SIDECAR_PID=$!
  wait_polls "$logf" 1 $((INTERVAL_S * 5))
  sleep 0.3
  curl -s -m 30 -o /dev/null "http://127.0.0.1:$port/metrics"
  local load0; load0=$(cut -d' ' -f1 /proc/loadavg)
  w0=$EPOCHREALTIME; s0=$(cpu_ticks "$SIDECAR_PID"); m=$(cpu_ticks "$BEAM_PID")
  local k
  for k in $(seq 2 $((POLLS + 1))); do
    wait_polls "$logf" "$k" $((INTERVAL_S * 5))
    sleep 0.3
    curl -s -m 30 -o "$WORK/metrics-$tag.prom" "http://127.0.0.1:$port/metrics"
  done
  w1=$EPOCHREALTIME; s1=$(cpu_ticks "$SIDECAR_PID"); local m1; m1=$(cpu_ticks "$BEAM_PID")
  local load1; load1=$(cut -d' ' -f1 /proc/loadavg)
  cp "/proc/$SIDECAR_PID/status" "$WORK/status-$tag.txt"
  local others=$(( $(pgrep -c -x beam.smp || true) - 1 ))
  stop_pid "$SIDECAR_PID"; SIDECAR_PID=""
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$stats" "$source" "$round" \
    "$base_s" "$base_ticks" "$w0" "$w1" "$((s1 - s0))" "$((m1 - m))" "$logf" \
    "$WORK/metrics-$tag.prom" "$WORK/status-$tag.txt" "$load0 $load1 $others" >> "$BLOCKS"
  log "block $tag done"
}

start_loaded_node on
for r in $(seq 1 "$ROUNDS"); do
  block on management "$r"
  block on prometheus "$r"
done
stop_node
if [ "$STATS_OFF" = 1 ]; then
  start_loaded_node off
  block off prometheus 1
  stop_node
fi

mkdir -p bench/results/sources
"$PY" - "$BLOCKS" "$N" "$POLLS" "$CLK_TCK" "$COMMIT" "$DIRTY" "$MESSAGES" "$CONSUMER_EVERY" "$PREFETCH" \
  "bench/results/sources/$N.json" bench/SOURCES.md "$INTERVAL_S" "$BASELINE_S" <<'EOF'
import datetime, json, re, statistics, sys, time
blocks_path, n, polls, tck, commit, dirty, msgs, every, prefetch, out_json, out_md, interval, baseline = sys.argv[1:]
n, polls, tck = int(n), int(polls), int(tck)
consumers = (n + int(every) - 1) // int(every)
want_ready = n * int(msgs) - consumers * min(int(prefetch), int(msgs))
rows = []
for line in open(blocks_path):
    (stats, source, rnd, base_s, base_ticks, w0, w1, sticks, bticks, logf, prom, status, load) = line.rstrip("\n").split("\t")
    base_rate = int(base_ticks) / tck / float(base_s)
    window = float(w1) - float(w0)
    durations, ends = [], []
    for line in open(logf):
        m = re.search(r"^(\S+Z) .*poll finished.*duration_ms=(\d+)", line)
        if m:
            durations.append(int(m.group(2)) / 1000)
            ends.append(datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                        .replace(tzinfo=datetime.timezone.utc).timestamp())
    # The CPU window is meant to hold polls 2 … K+1; count the polls that really ended in it.
    in_window = sum(1 for t in ends if float(w0) < t <= float(w1)) or polls
    measured = durations[1:1 + polls]
    text = open(prom).read()
    def val(pattern):
        return [float(m.group(1)) for m in re.finditer(pattern, text, re.M)]
    bytes_ = sum(val(r'^rabbitmq_watch_endpoint_response_bytes\{[^}]*\} (\S+)'))
    by_endpoint = {m.group(1): float(m.group(2)) for m in re.finditer(r'^rabbitmq_watch_endpoint_response_bytes\{endpoint="([^"]+)"\} (\S+)', text, re.M)}
    ready = val(r'^rabbitmq_queue_messages_ready\{[^}]*\} (\S+)')
    up = val(r'^rabbitmq_up (\S+)')
    st = open(status).read()
    kb = lambda k: int(re.search(rf"^{k}:\s+(\d+) kB", st, re.M).group(1))
    l0, l1, others = load.split()
    rows.append({
        "statistics": stats, "source": source, "round": int(rnd),
        "polls": len(measured), "poll_wall_s": measured,
        "poll_wall_median_s": statistics.median(measured) if measured else None,
        "bytes_per_poll": bytes_, "bytes_by_endpoint": by_endpoint,
        "polls_in_cpu_window": in_window,
        "sidecar_cpu_per_poll_s": int(sticks) / tck / in_window,
        "sidecar_rss_mb": kb("VmRSS") / 1000, "sidecar_hwm_mb": kb("VmHWM") / 1000,
        "broker_baseline_cores": base_rate,
        "broker_cpu_per_poll_s": (int(bticks) / tck - base_rate * window) / in_window,
        "broker_cpu_per_poll_with_baseline_s": int(bticks) / tck / in_window,
        "window_s": window,
        "queues_with_ready": len(ready), "ready_sum": sum(ready), "up": up[0] if up else None,
        "loadavg_start": float(l0), "loadavg_end": float(l1), "other_beam_processes": int(others),
    })
res = {"n": n, "polls_per_block": polls, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "commit": commit, "dirty_files": int(dirty), "expected_ready_sum": want_ready, "blocks": rows}
json.dump(res, open(out_json, "w"), indent=2, sort_keys=True)

def med(src, stats, key):
    v = [r[key] for r in rows if r["source"] == src and r["statistics"] == stats and r[key] is not None]
    return statistics.median(v) if v else None
f = lambda v, d=2: "n/a" if v is None else f"{v:,.{d}f}"
md = [f"## Both sources on RabbitMQ 4.0.5, {n:,} queues (#12)", "",
      f"Generated by `bench/sources.sh {n}` at {res['date']} (sidecar from commit {commit}"
      + (f" plus uncommitted changes in {dirty} file(s)" if int(dirty) else "") + "); figures: "
      f"`bench/results/sources/{n}.json`. RabbitMQ 4.0.5 (Debian 13's package, Erlang 27) from "
      "`scripts/rabbitmq-node.sh --version 4`, `collect_statistics_interval = 5000`; the load of "
      f"`bench/run.sh` ({n:,} durable classic queues over 10 vhosts, 5 messages each, a never-acking "
      "consumer with prefetch 2 on every 10th queue). Blocks alternate the sources on the same "
      f"node (management, prometheus, …); each block is a fresh release sidecar (`poll.interval` "
      f"{interval} s, the reliability audit off), polls 2–{polls + 1} measured. Broker CPU per poll = utime+stime of its `beam.smp` over "
      f"the polls minus its idle baseline (measured for {baseline} s just before the block, no sidecar) over "
      "the same wall time, ÷ the polls that ended in that window; sidecar CPU likewise from its own `/proc/PID/stat` (one "
      "`/metrics` scrape per poll included). CPU times are what to compare here: the machine is "
      "shared with other builds and tests (load average per block below), which stretches wall "
      "times much more than CPU times.", "",
      "| block | statistics | source | poll wall (median) | bytes read / poll | sidecar CPU / poll | sidecar RSS (HWM) | broker CPU / poll above idle | broker CPU / poll interval, idle included | broker idle | queues with figures (ready sum) | load avg |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for i, r in enumerate(rows, 1):
    md.append(f"| {i} | {r['statistics']} | {r['source']} | {f(r['poll_wall_median_s'])} s | "
              f"{r['bytes_per_poll'] / 1e6:.2f} MB | {f(r['sidecar_cpu_per_poll_s'], 3)} s | "
              f"{r['sidecar_rss_mb']:.0f} MB ({r['sidecar_hwm_mb']:.0f} MB) | "
              f"{f(r['broker_cpu_per_poll_s'])} s | {f(r['broker_cpu_per_poll_with_baseline_s'])} s | "
              f"{r['broker_baseline_cores']:.2f} cores | "
              f"{r['queues_with_ready']:,} ({r['ready_sum']:,.0f}) | {r['loadavg_start']:.1f}–{r['loadavg_end']:.1f} |")
md.append("")
bm, bp = med("management", "on", "broker_cpu_per_poll_s"), med("prometheus", "on", "broker_cpu_per_poll_s")
sm, sp = med("management", "on", "sidecar_cpu_per_poll_s"), med("prometheus", "on", "sidecar_cpu_per_poll_s")
md.append(f"Medians over the statistics-on blocks: broker CPU per poll {f(bm)} s (management) vs "
          f"{f(bp)} s (prometheus)" + (f", {bp / bm:.2f}×" if bm and bp else "")
          + f"; idle included, per poll interval, {f(med('management', 'on', 'broker_cpu_per_poll_with_baseline_s'))} s "
          f"vs {f(med('prometheus', 'on', 'broker_cpu_per_poll_with_baseline_s'))} s, and "
          f"{f(med('prometheus', 'off', 'broker_cpu_per_poll_with_baseline_s'))} s for the prometheus source "
          "on the node with statistics off"
          + f"; sidecar CPU per poll {f(sm, 3)} s vs {f(sp, 3)} s. Expected figures: {n:,} queues "
          f"with a ready count summing to {want_ready:,}.")
md.append("")
open(out_md, "w").write("\n".join(md))
print("\n".join(md))
EOF
"$PY" bench/report.py render bench/results bench/RESULTS.md >/dev/null
log "wrote bench/results/sources/$N.json, bench/SOURCES.md and bench/RESULTS.md"
