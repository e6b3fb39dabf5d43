#!/usr/bin/env bash
# What the reliability audit's reads cost the broker (docs/audit.md#cost).
#
# Usage: bench/audit_cost.sh MGMT_URL BEAM_PID [RUNS]
#
# Runs each read the audit makes (same query strings as src/rabbitmq/audit_reads.rs) RUNS
# times (default 5), one after the other, and prints per read the median wall time, body
# bytes and broker CPU (utime + stime of the broker's beam.smp from /proc/PID/stat during the
# read, in seconds; the idle baseline over the same wall time is subtracted). Put the broker
# in the state to measure first, e.g. with examples/bench_load.rs.
set -euo pipefail
url=${1:?MGMT_URL}
pid=${2:?BEAM_PID}
runs=${3:-5}
tck=$(getconf CLK_TCK)

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# Idle CPU per second (baseline), over 3 s.
c0=$(cpu); sleep 3; c1=$(cpu)
idle=$(python3 -c "print(($c1 - $c0) / $tck / 3)")

reads=(
  "/api/consumers?columns=queue.name,queue.vhost,consumer_tag,ack_required,prefetch_count,channel_details.name"
  "/api/channels?page_size=500&pagination=true&columns=name,vhost,user,confirm,transactional,global_prefetch_count,message_stats.publish,message_stats.publish_details&page=1"
  "/api/exchanges?page_size=500&pagination=true&columns=vhost,name&page=PAGE"
  "/api/bindings?columns=vhost,source,destination,destination_type"
)
printf '%-16s %8s %10s %10s\n' read wall_s bytes broker_cpu_s
for r in "${reads[@]}"; do
  walls=(); cpus=(); bytes=0
  for _ in $(seq "$runs"); do
    c0=$(cpu); t0=$(date +%s.%N); total=0
    page=1
    while :; do
      q=${r//PAGE/$page}
      body=$(curl -sf -u guest:guest "$url$q")
      total=$((total + ${#body}))
      # Paged reads: follow page_count.
      pc=$(printf '%s' "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("page_count", 1) if isinstance(d, dict) else 1)')
      [[ "$r" == *PAGE* && $page -lt $pc ]] || break
      page=$((page + 1))
    done
    t1=$(date +%s.%N); c1=$(cpu)
    walls+=("$(python3 -c "print($t1 - $t0)")")
    cpus+=("$(python3 -c "print(max(0.0, ($c1 - $c0) / $tck - $idle * ($t1 - $t0)))")")
    bytes=$total
  done
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  name=${r%%\?*}
  printf '%-16s %8.3f %10d %10.3f\n' "$name" "$(med "${walls[@]}")" "$bytes" "$(med "${cpus[@]}")"
done
