#!/usr/bin/env bash
# Records real broker responses into tests/fixtures/VERSION[-stats-off]/ so that unit tests can
# decode them without a broker. Starts throwaway nodes one after the other (scripts/rabbitmq-node.sh;
# needs `scripts/install-deps.sh rabbitmq rabbitmq4`, root for 4.0), gives each the same small
# state, records, and stops it:
#   3      RabbitMQ 3.10.8 (Debian 12), statistics on, rabbitmq_prometheus enabled
#   4      RabbitMQ 4.0.5 (Debian 13 tree), statistics on
#   4-off  RabbitMQ 4.0.5, management_agent.disable_metrics_collector = true
#
# Usage: scripts/record-fixtures.sh [3|4|4-off]...     (default: all three)
#
# The state, in vhost `/` unless said:
#   orders    classic, durable, x-max-length 10000, policy `orders-ttl` (message-ttl 1 h);
#             7 ready messages with a timestamp property (head_message_timestamp)
#   payments  quorum; 7 ready messages
#   work      classic; 5 messages, one consumer (prefetch 2, never acks): 3 ready, 2 unacked
#   idle      classic, empty, no consumer
#   events    in vhost `staging`, classic; 2 ready messages
# Messages are published through the management API (POST /api/exchanges/{vhost}/amq.default/publish);
# the consumer is scripts/amqp-consumer.py (Python standard library AMQP 0-9-1).
#
# Files (JSON pretty-printed, key order as the broker sent it; expositions as sent):
#   overview.json, overview-columns.json      /api/overview, ?columns=<the sidecar's>
#   nodes.json, nodes-columns.json            /api/nodes, ?columns=<the sidecar's>
#   queues.json                               /api/queues (plain, all fields)
#   queues-detailed.json                      /api/queues/detailed (3.13+ only)
#   queues-page.json                          the sidecar's request: /api/queues (3.10) or
#                                             /api/queues/detailed (3.13+) with page=1,
#                                             page_size=500, pagination=true, columns=<the sidecar's>
#   queues-basic.json                         /api/queues?disable_stats=true&enable_queue_totals=true
#   alarms-ok.json                            /api/health/checks/alarms (200)
#   alarms-failed.json                        the same with a memory alarm raised (503)
#   metrics.txt                               rabbitmq_prometheus /metrics
#   metrics-detailed.txt                      /metrics/detailed?family=queue_coarse_metrics
#                                             &family=queue_consumer_count&family=queue_metrics
# The sidecar's columns are read from the constants OVERVIEW_COLUMNS, NODE_COLUMNS and
# QUEUE_COLUMNS in src/. Node names, ports, timestamps and memory figures differ from run to run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out_root=$repo/tests/fixtures
PY=/usr/bin/python3

die() { echo "record-fixtures: $*" >&2; exit 1; }

column_const() {
  local value
  value=$(grep -rhoE "pub const $1: &str = \"[^\"]+\"" src | head -n 1 | sed -E 's/.*= "([^"]+)"/\1/')
  [ -n "$value" ] || die "constant $1 not found in src/"
  echo "$value"
}
OVERVIEW_COLUMNS=$(column_const OVERVIEW_COLUMNS)
NODE_COLUMNS=$(column_const NODE_COLUMNS)
QUEUE_COLUMNS=$(column_const QUEUE_COLUMNS)

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(3 4 4-off)
for t in "${targets[@]}"; do
  case "$t" in 3|4|4-off) ;; *) die "unknown node $t (3|4|4-off)" ;; esac
done

work=$(mktemp -d /tmp/rabbitmq-watch-record.XXXXXX)
node_dir="" consumer_pid=""
cleanup() {
  if [ -n "$consumer_pid" ]; then kill "$consumer_pid" 2>/dev/null || true; fi
  if [ -n "$node_dir" ]; then scripts/rabbitmq-node.sh clean "$node_dir" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# api METHOD PATH [JSON]: the management API; fails on an HTTP error.
api() {
  local method=$1 path=$2 body=${3:-}
  if [ -n "$body" ]; then
    curl -sf -u guest:guest -X "$method" -H 'content-type: application/json' -d "$body" "$MGMT_URL$path" >/dev/null
  else
    curl -sf -u guest:guest -X "$method" "$MGMT_URL$path" >/dev/null
  fi || die "$method $path failed"
}

publish() { # VHOST QUEUE N [PROPERTIES_JSON]
  local vhost=$1 queue=$2 n=$3 props=${4:-'{}'} i
  for i in $(seq 1 "$n"); do
    local reply
    reply=$(curl -sf -u guest:guest -H 'content-type: application/json' \
      -d "{\"properties\":$props,\"routing_key\":\"$queue\",\"payload\":\"message $i\",\"payload_encoding\":\"string\"}" \
      "$MGMT_URL/api/exchanges/$vhost/amq.default/publish") || die "publish to $queue failed"
    [ "$reply" = '{"routed":true}' ] || die "publish to $queue: $reply"
  done
}

# record FILE URL [EXPECTED_STATUS]: GET with guest/guest; JSON is pretty-printed.
record() {
  local file=$1 url=$2 want=${3:-200} code
  code=$(curl -s -u guest:guest -o "$work/body" -w '%{http_code}' "$url")
  [ "$code" = "$want" ] || die "GET $url answered $code, expected $want: $(head -c 300 "$work/body")"
  case "$file" in
    *.json) "$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), indent=4, ensure_ascii=False))' "$work/body" > "$dir_out/$file" ;;
    *) cp "$work/body" "$dir_out/$file" ;;
  esac
}

# until_true SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.5 s.
until_true() {
  local seconds=$1 what=$2 i
  shift 2
  for i in $(seq 1 $((seconds * 2))); do
    if "$@"; then return 0; fi
    sleep 0.5
  done
  die "timed out after ${seconds} s waiting for $what"
}

queue_field_is() { # VHOST QUEUE FIELD VALUE (management statistics)
  curl -sf -u guest:guest "$MGMT_URL/api/queues/$1/$2" |
    "$PY" -c 'import json,sys; q=json.load(sys.stdin); sys.exit(0 if str(q.get(sys.argv[1])) == sys.argv[2] else 1)' "$3" "$4"
}

detailed_is() { # QUEUE SERIES VALUE (rabbitmq_prometheus /metrics/detailed)
  curl -sf "$PROM_URL/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count" |
    grep -qE "^$2\{vhost=\"/\",queue=\"$1\"\} $3\$"
}

alarm_raised() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' -u guest:guest "$MGMT_URL/api/health/checks/alarms")" = 503 ]
}

for target in "${targets[@]}"; do
  case "$target" in
    3) args=(--version 3 --prometheus) suffix="" ;;
    4) args=(--version 4) suffix="" ;;
    4-off) args=(--version 4 --stats off) suffix="-stats-off" ;;
  esac
  node_dir=$work/node-$target
  echo "record-fixtures: starting node $target (${args[*]})" >&2
  scripts/rabbitmq-node.sh start "$node_dir" "${args[@]}" --watch-pid $$ > "$work/node.env"
  # shellcheck disable=SC1091
  . "$work/node.env"

  version=$(curl -sf -u guest:guest "$MGMT_URL/api/overview" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rabbitmq_version"])')
  erlang=$(curl -sf -u guest:guest "$MGMT_URL/api/overview" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["erlang_version"])')
  major_minor=$(echo "$version" | cut -d. -f1,2)
  dir_out=$out_root/$version$suffix
  rm -rf "$dir_out"
  mkdir -p "$dir_out"

  # The state.
  api PUT /api/vhosts/staging
  api PUT /api/permissions/staging/guest '{"configure":".*","write":".*","read":".*"}'
  api PUT /api/policies/%2F/orders-ttl '{"pattern":"^orders$","definition":{"message-ttl":3600000},"apply-to":"queues"}'
  api PUT /api/queues/%2F/orders '{"durable":true,"arguments":{"x-max-length":10000}}'
  api PUT /api/queues/%2F/payments '{"durable":true,"arguments":{"x-queue-type":"quorum"}}'
  api PUT /api/queues/%2F/work '{"durable":true}'
  api PUT /api/queues/%2F/idle '{"durable":true}'
  api PUT /api/queues/staging/events '{"durable":true}'
  publish %2F orders 7 "{\"timestamp\":$(date +%s),\"delivery_mode\":2}"
  publish %2F payments 7 '{"delivery_mode":2}'
  publish %2F work 5
  publish staging events 2
  "$PY" scripts/amqp-consumer.py 127.0.0.1 "$AMQP_PORT" / work 2 > "$work/consumer.out" 2>&1 &
  consumer_pid=$!
  until_true 20 "the consumer on work" grep -q consuming "$work/consumer.out"

  # Wait until both sources show the state (statistics are emitted every 500 ms).
  until_true 30 "work: 2 unacked in /metrics/detailed" detailed_is work rabbitmq_detailed_queue_messages_unacked 2
  until_true 30 "orders: 7 ready in /metrics/detailed" detailed_is orders rabbitmq_detailed_queue_messages_ready 7
  until_true 30 "payments: 7 ready in /metrics/detailed" detailed_is payments rabbitmq_detailed_queue_messages_ready 7
  if [ "$target" != 4-off ]; then
    until_true 30 "work: 2 unacked in the management API" queue_field_is %2F work messages_unacknowledged 2
    until_true 30 "orders: 7 ready in the management API" queue_field_is %2F orders messages_ready 7
    until_true 30 "payments: 7 ready in the management API" queue_field_is %2F payments messages_ready 7
    until_true 30 "events: 2 ready in the management API" queue_field_is staging events messages_ready 2
    sleep 2 # one more statistics round for the rates
  fi

  echo "record-fixtures: recording RabbitMQ $version (Erlang $erlang) into $dir_out" >&2
  record overview.json "$MGMT_URL/api/overview"
  record overview-columns.json "$MGMT_URL/api/overview?columns=$OVERVIEW_COLUMNS"
  record nodes.json "$MGMT_URL/api/nodes"
  record nodes-columns.json "$MGMT_URL/api/nodes?columns=$NODE_COLUMNS"
  record queues.json "$MGMT_URL/api/queues"
  page_path=/api/queues
  if [ "$major_minor" != 3.10 ]; then
    record queues-detailed.json "$MGMT_URL/api/queues/detailed"
    page_path=/api/queues/detailed
  fi
  record queues-page.json "$MGMT_URL$page_path?page_size=500&pagination=true&columns=$QUEUE_COLUMNS&page=1"
  record queues-basic.json "$MGMT_URL/api/queues?disable_stats=true&enable_queue_totals=true"
  record alarms-ok.json "$MGMT_URL/api/health/checks/alarms"
  record metrics.txt "$PROM_URL/metrics"
  record metrics-detailed.txt "$PROM_URL/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count&family=queue_metrics"
  scripts/rabbitmq-node.sh ctl "$node_dir" set_vm_memory_high_watermark 0.0001 >/dev/null
  until_true 30 "the memory alarm" alarm_raised
  record alarms-failed.json "$MGMT_URL/api/health/checks/alarms" 503

  if [ "$target" = 4-off ]; then stats="off (\`management_agent.disable_metrics_collector = true\`)"; else stats=on; fi
  cat > "$dir_out/README.md" <<README
# RabbitMQ $version, statistics $stats (recorded)

Recorded by \`scripts/record-fixtures.sh $target\` on $(date -u +%Y-%m-%d) from a real single node
(\`scripts/rabbitmq-node.sh start DIR ${args[*]}\`; Erlang $erlang; rabbitmq_management and
rabbitmq_prometheus enabled; \`collect_statistics_interval = 500\`). Re-record with the same
command; the script's header lists the state (queues \`orders\`, \`payments\` (quorum), \`work\`
(one consumer, 2 unacked), \`idle\`, \`staging/events\`) and the request behind each file.
Node names, ports, timestamps and memory figures differ from run to run.
README
  kill "$consumer_pid" 2>/dev/null || true
  wait "$consumer_pid" 2>/dev/null || true
  consumer_pid=""
  scripts/rabbitmq-node.sh clean "$node_dir" >/dev/null
  node_dir=""
  echo "record-fixtures: $dir_out: $(ls "$dir_out" | tr '\n' ' ')" >&2
done
