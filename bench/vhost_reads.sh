#!/usr/bin/env bash
# What the broker pays for the queue listing read whole versus split per vhost (issue #13).
#
# Usage: bench/vhost_reads.sh N [REPS]    (REPS: alternating repetitions, default 5)
#
# Starts a throwaway RabbitMQ node (scripts/rabbitmq-node.sh, statistics every 5 s as in
# production), creates 10 vhosts (BENCH_VHOSTS) and loads N queues with examples/bench_load.rs
# (as bench/run.sh does: 5 messages per queue, a never-acking consumer on every 10th queue),
# then alternates, REPS times each:
#   whole: one unpaged `GET /api/queues?columns=<QUEUE_COLUMNS>&sort=`
#   split: `GET /api/vhosts?columns=name`, then `GET /api/queues/{vhost}?columns=…&sort=`
#          for every vhost, one after the other on one kept-alive connection (one curl)
# and records per read the wall time, the bytes and the broker's CPU (utime+stime of its
# beam.smp from /proc/PID/stat) over a fixed window of BENCH_WINDOW_S seconds (15: three
# statistics intervals) from the read's start, so that both kinds carry the same share of the
# broker's own background work whatever their wall time; the read's cost is that CPU minus the
# idle broker's over the same window length (measured before and after the reads, 30 s each).
# A read longer than the window gets a longer one (the next multiple of 5 s past its end).
# Prints one TSV line per read and the medians.
# Everything started here is stopped on exit (only the PIDs started here).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:?usage: bench/vhost_reads.sh N [REPS]}
REPS=${2:-5}
VHOSTS=${BENCH_VHOSTS:-10}
WINDOW_S=${BENCH_WINDOW_S:-15}
LOAD_BIN=${BENCH_LOAD_BIN:-$ROOT/target/debug/examples/bench_load}
CLK_TCK=$(getconf CLK_TCK)
COLUMNS=$(sed -n 's/^pub const QUEUE_COLUMNS: &str = "\(.*\)";$/\1/p' src/rabbitmq/model.rs)
[ -n "$COLUMNS" ] || { echo "QUEUE_COLUMNS not found in src/rabbitmq/model.rs" >&2; exit 1; }

log() { printf '%s vhost_reads: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
WORK=$(mktemp -d /tmp/rabbitmq-watch-vhost-reads.XXXXXX)
NODE_DIR="$WORK/node"
LOAD_PID=""
cleanup() {
  [ -z "$LOAD_PID" ] || { kill "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; }
  scripts/rabbitmq-node.sh clean "$NODE_DIR" >/dev/null 2>&1 || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

node_vars=$(scripts/rabbitmq-node.sh start "$NODE_DIR" --watch-pid $$ \
  --conf "collect_statistics_interval = 5000" \
  --conf "vm_memory_high_watermark.relative = 0.8" \
  --conf "management.tcp.idle_timeout = 600000" \
  --conf "management.tcp.inactivity_timeout = 600000" \
  --conf "management.tcp.request_timeout = 600000")
eval "$(grep -v '^ROOT=' <<< "$node_vars")"
BEAM=$(pgrep -s "$NODE_PID" -x beam.smp | head -n 1)
log "node $NODE_NAME up at $MGMT_URL (beam.smp $BEAM)"

for v in $(seq 0 $((VHOSTS - 1))); do
  vh=$(printf 'bench-vh-%02d' "$v")
  curl -sf -u guest:guest -X PUT "$MGMT_URL/api/vhosts/$vh" >/dev/null
  curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' "$MGMT_URL/api/permissions/$vh/guest" >/dev/null
done
"$LOAD_BIN" --amqp-url "${AMQP_URL%/%2f}" --queues "$N" --vhosts "$VHOSTS" > "$WORK/load.out" 2> "$WORK/load.err" &
LOAD_PID=$!
for _ in $(seq 1 $((N / 25 + 600))); do
  grep -q '^READY' "$WORK/load.out" && break
  kill -0 "$LOAD_PID" 2>/dev/null || { cat "$WORK/load.err" >&2; exit 1; }
  sleep 0.5
done
grep -q '^READY' "$WORK/load.out" || { log "load not ready"; exit 1; }
log "load: $(grep '^READY' "$WORK/load.out")"
sleep 15 # two statistics intervals: every queue has its figures

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$BEAM/stat"; }
now() { date +%s.%N; }
idle_cores() { # the broker's CPU over 30 s without reads, in cores
  local a b
  a=$(ticks); sleep 30; b=$(ticks)
  awk -v a="$a" -v b="$b" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz / 30 }'
}
Q="columns=$COLUMNS&sort="

# Each read prints "BYTES TTFB": the body bytes and the longest time to the first byte of one
# answer (the broker builds an answer before it sends a byte, and its management listener
# closes a connection silent for management.tcp.idle_timeout, 60 s by default).
read_whole() {
  curl -sf -m 900 -u guest:guest -o /dev/null -w '%{size_download} %{time_starttransfer}\n' \
    "$MGMT_URL/api/queues?$Q"
}
read_split() {
  local names args=() vh
  names=$(curl -sf -m 60 -u guest:guest "$MGMT_URL/api/vhosts?columns=name" |
    /usr/bin/python3 -c 'import json,sys,urllib.parse as u; print("\n".join(u.quote(v["name"], safe="") for v in json.load(sys.stdin)))')
  for vh in $names; do args+=(-o /dev/null "$MGMT_URL/api/queues/$vh?$Q"); done
  curl -sf -m 900 -u guest:guest -w '%{size_download} %{time_starttransfer}\n' "${args[@]}" |
    awk '{ s += $1; if ($2 > t) t = $2 } END { print s, t }'
}

IDLE=$(idle_cores)
log "idle broker before the reads: $IDLE cores"
printf 'kind\trep\twall_s\twindow_cpu_s\tread_cpu_s\tbytes\tmax_ttfb_s\twindow_s\n'
for rep in $(seq 1 "$REPS"); do
  for kind in whole split; do
    # Alternate which goes first, so a drift favours neither.
    [ $((rep % 2)) = 0 ] && { [ "$kind" = whole ] && kind=split || kind=whole; }
    c0=$(ticks); t0=$(now)
    read -r bytes ttfb < <("read_$kind")
    t1=$(now)
    # The window: BENCH_WINDOW_S, or for a longer read the next multiple of 5 s past its end.
    win=$(awk -v t0="$t0" -v t1="$t1" -v w="$WINDOW_S" \
      'BEGIN { d = t1 - t0; if (d + 1 > w) w = 5 * int((d + 6) / 5); print w }')
    sleep "$(awk -v t0="$t0" -v now="$(now)" -v w="$win" 'BEGIN { printf "%.3f", w - (now - t0) }')"
    c1=$(ticks)
    awk -v k="$kind" -v r="$rep" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" \
      -v b="$bytes" -v f="$ttfb" -v idle="$IDLE" -v w="$win" 'BEGIN { c = (c1 - c0) / hz
        printf "%s\t%d\t%.2f\t%.2f\t%.2f\t%d\t%.2f\t%d\n", k, r, t1 - t0, c, c - idle * w, b, f, w }'
  done
done | tee "$WORK/reads.tsv"
/usr/bin/python3 - "$WORK/reads.tsv" >&2 <<'PYEOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
for kind in ("whole", "split"):
    r = [x for x in rows if x[0] == kind]
    med = lambda i: statistics.median(float(x[i]) for x in r)
    print(f"{kind}: n={len(r)} median wall {med(2):.2f} s, broker CPU in the window {med(3):.2f} s, "
          f"of which the read {med(4):.2f} s; bytes {r[-1][5]}; longest time to first byte "
          f"{med(6):.2f} s; read CPU: {' '.join(x[4] for x in r)}")
PYEOF
log "idle broker after the reads: $(idle_cores) cores"
