#!/usr/bin/env bash
# What the reliability audit's reads cost the broker (docs/audit.md#cost).
#
# Usage: bench/audit_cost.sh MGMT_URL BEAM_PID [RUNS]
#
# Runs each read the audit makes (same query strings as src/rabbitmq/audit_reads.rs) RUNS
# times (default 5), one after the other, and prints per read the median wall time, body
# bytes and broker CPU (utime + stime of the broker's beam.smp from /proc/PID/stat during the
# read, in seconds; the idle baseline over the same wall time is subtracted; raw_cpu_s is
# without that subtraction, which over-corrects when a busy machine stretches the wall time).
# BEAM_PID is the beam.smp process (scripts/rabbitmq-node.sh's NODE_PID is the
# rabbitmq-server shell that started it: `pgrep -g NODE_PID beam.smp`). Put the broker in the
# state to measure first, e.g. with examples/bench_load.rs and examples/audit_load.rs.
set -euo pipefail
url=${1:?MGMT_URL}
pid=${2:?BEAM_PID}
runs=${3:-5}
tck=$(getconf CLK_TCK)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# Idle CPU per second (baseline), over 3 s.
c0=$(cpu); sleep 3; c1=$(cpu)
idle=$(python3 -c "print(($c1 - $c0) / $tck / 3)")
echo "broker idle CPU: $idle s/s"

reads=(
  "/api/consumers?columns=queue.name,queue.vhost,consumer_tag,ack_required,prefetch_count,channel_details.name"
  "/api/channels?page_size=500&pagination=true&columns=name,vhost,user,confirm,transactional,global_prefetch_count,message_stats.publish,message_stats.publish_details&page=PAGE"
  "/api/exchanges?page_size=500&pagination=true&columns=vhost,name&page=PAGE"
  "/api/bindings?columns=vhost,source,destination,destination_type"
  # For comparison: the poll's queue listing (what the audit does not read again).
  "/api/queues?page_size=500&pagination=true&columns=vhost,name,type,node,durable,auto_delete,exclusive,arguments,policy,operator_policy,effective_policy_definition,messages_ready,messages_unacknowledged,messages_persistent,message_bytes_ready,message_bytes_unacknowledged,consumers,consumer_capacity,memory,head_message_timestamp,message_stats.publish,message_stats.deliver,message_stats.deliver_no_ack,message_stats.get,message_stats.get_no_ack,message_stats.ack,message_stats.redeliver&page=PAGE"
)
printf '%-16s %8s %10s %12s %10s\n' read wall_s bytes broker_cpu_s raw_cpu_s
for r in "${reads[@]}"; do
  walls=(); cpus=(); raws=(); bytes=0
  for _ in $(seq "$runs"); do
    total=0; wall=0; cpu_s=0; raw_s=0
    page=1
    while :; do
      q=${r//PAGE/$page}
      # CPU around the request only (curl's own wall time; the page count is parsed after).
      c0=$(cpu)
      stats=$(curl -sf -u guest:guest -o "$tmp" -w '%{time_total} %{size_download}' "$url$q")
      c1=$(cpu)
      read -r t n <<<"$stats"
      total=$((total + n))
      wall=$(python3 -c "print($wall + $t)")
      cpu_s=$(python3 -c "print($cpu_s + max(0.0, ($c1 - $c0) / $tck - $idle * $t))")
      raw_s=$(python3 -c "print($raw_s + ($c1 - $c0) / $tck)")
      # Paged reads: follow page_count.
      pc=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("page_count", 1) if isinstance(d, dict) else 1)' "$tmp")
      [[ "$r" == *PAGE* && $page -lt $pc ]] || break
      page=$((page + 1))
    done
    walls+=("$wall")
    cpus+=("$cpu_s")
    raws+=("$raw_s")
    bytes=$total
  done
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  name=${r%%\?*}
  printf '%-16s %8.3f %10d %12.3f %10.3f\n' "$name" "$(med "${walls[@]}")" "$bytes" "$(med "${cpus[@]}")" "$(med "${raws[@]}")"
done
