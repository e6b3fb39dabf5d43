#!/usr/bin/env bash
# The fault soak of issue #14 (not part of `cargo test`): the real rabbitmq-watch binary polls a
# throwaway RabbitMQ node through a fault-injecting proxy (latency, resets, truncated bodies,
# black holes) and notifies a webhook receiver that flaps (refusing, 500, up), for SOAK_SECONDS
# (default 600), then everything calms down and the run checks that every alert that fired was
# delivered, with 0 panics and a bounded RSS. See examples/soak.rs for the scenario.
#
#   bench/soak.sh                       # 10 minutes (+ up to 4 minutes to settle), release build
#   SOAK_SECONDS=120 bench/soak.sh      # a short run
#   PROFILE=debug bench/soak.sh         # the debug build (no release build at hand)
#
# Figures: bench/results/soak.json (raw) and bench/SOAK.md (regenerated). Exit status 1 when a
# check failed. The node is started here on free ports, under a temporary directory, and
# stopped on exit (only the node started here).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SECONDS_RUN=${SOAK_SECONDS:-600}
SETTLE=${SOAK_SETTLE_SECONDS:-240}
EVERY=${SOAK_NEW_QUEUE_EVERY:-15}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then MODE=(--release); else MODE=(); fi

cargo build "${MODE[@]}" --bin rabbitmq-watch --example soak
BIN="target/$PROFILE/rabbitmq-watch"
SOAK="target/$PROFILE/examples/soak"

WORK=$(mktemp -d /tmp/rabbitmq-watch-soak.XXXXXX)
NODE="$WORK/node"
cleanup() { bash scripts/rabbitmq-node.sh clean "$NODE" >/dev/null 2>&1 || true; }
trap cleanup EXIT
bash scripts/rabbitmq-node.sh start "$NODE" --watch-pid $$ >"$WORK/node.env"
MGMT_URL=$(sed -n 's/^MGMT_URL=//p' "$WORK/node.env")
AMQP_URL=$(sed -n 's/^AMQP_URL=//p' "$WORK/node.env")
echo "soak: node $MGMT_URL, $SECONDS_RUN s of faults, then up to $SETTLE s to settle"

mkdir -p bench/results
status=0
"$SOAK" --sidecar "$BIN" --mgmt-url "$MGMT_URL" --amqp-url "$AMQP_URL" \
  --seconds "$SECONDS_RUN" --settle-seconds "$SETTLE" --new-queue-every "$EVERY" \
  --out "$WORK/run" >bench/results/soak.json || status=$?
mkdir -p bench/results/raw-soak && cp "$WORK/run/sidecar.log" bench/results/raw-soak/sidecar.log 2>/dev/null || true

python3 - "$PROFILE" "$status" <<'EOF' >bench/SOAK.md
import json, subprocess, sys
profile, status = sys.argv[1], int(sys.argv[2])
r = json.load(open("bench/results/soak.json"))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
when = subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%MZ"], capture_output=True, text=True).stdout.strip()
a, f, s, rc = r["alerts"], r["faults"], r["scrapes"], r["receiver"]
rss = r["rss_kib"]
print("# Fault soak")
print()
print(f"Written by `bench/soak.sh` on {when}, commit {commit}, {rustc}, {profile} build, 2 shared")
print("cores. Scenario: `examples/soak.rs`; raw figures: `bench/results/soak.json`.")
print()
print("**Result: " + ("passed" if status == 0 else f"FAILED (exit {status})") + "**: "
      f"{r['panics']} panics, sidecar alive at the end: {'yes' if r['alive_at_end'] else 'NO'}, exit code on SIGTERM: {r['exit_code']}; "
      f"{a['fired_delivered']} of {a['fired']} alerts that fired delivered, "
      f"{a['resolved_delivered']} of {a['resolved_expected']} resolutions delivered.")
print()
print("| figure | value |")
print("|---|---|")
print(f"| duration with faults | {r['seconds']} s (broker fault storms {r['storm_seconds']} s: 60 s storm, 20 s calm) |")
print(f"| settling (no faults, receiver up) until everything was delivered | {r['settle_seconds_used']} s |")
for k in ["passed", "latency", "reset", "truncate", "black_hole", "upstream_errors"]:
    label = {"passed": "management API requests passed untouched", "latency": "faults: added latency (0–1.5 s)",
             "reset": "faults: connection reset (RST)", "truncate": "faults: body truncated in the middle",
             "black_hole": "faults: black hole (never answered)", "upstream_errors": "proxy could not reach the broker"}[k]
    print(f"| {label} | {f.get(k, 0)} |")
print(f"| polls (`rabbitmq_watch_polls_total`) | {r['polls_total']} |")
print(f"| scrapes (1/s) seeing `rabbitmq_up` 1 / 0 / failed scrapes | {s['up']} / {s['down']} / {s['failed']} |")
print(f"| receiver: seconds up / refusing connections / answering 500 | {rc['seconds_up']} / {rc['seconds_refusing']} / {rc['seconds_500']} ({rc['mode_changes']} changes) |")
print(f"| receiver: requests answered 500 / 200 | {rc['answered_500']} / {rc['answered_200']} |")
print(f"| failed notification attempts (`rabbitmq_watch_notification_attempts_failed_total`, all reasons) | {r['attempts_failed_total']:.0f} |")
print(f"| queues created (one alert each) | {a['queues_created']} |")
print(f"| alerts that fired / delivered as firing or resolved | {a['fired']} / {a['fired_delivered']} |")
print(f"| alerts never seen firing (created too late or polls down) | {len(a['never_fired'])} |")
print(f"| resolutions expected (purged queues) / delivered | {a['resolved_expected']} / {a['resolved_delivered']} |")
print(f"| purged queues announced only as resolved | {a['purged_announced_only_as_resolved']} |")
print(f"| duplicate firing deliveries | {a['duplicate_firing_deliveries']} |")
print(f"| panics in the sidecar's log | {r['panics']} |")
print()
print("RSS of the sidecar over time (every 30 s), with what its state holds: queues created so far")
print("(each with an alert and a backlog window of `alerting.backlog.window: 1m`) and the samples in")
print("those windows (`rabbitmq_watch_backlog_samples`). No queue is created in the last 40 % of the")
print("run, so the state stops growing there. A 0 in the samples column is a scrape right after a poll")
print("whose queue listing failed: the detector then reports nothing (its windows are kept).")
print()
print("| second | RSS KiB | queues | backlog samples |")
print("|---|---|---|---|")
for t, kib, queues, samples in rss:
    print(f"| {t} | {kib} | {queues} | {'' if samples < 0 else int(samples)} |")
if rss:
    ks = [k for _, k, _, _ in rss]
    last_growth = [k for t, k, _, _ in rss if t * 10 >= r["seconds"] * 6]
    print()
    print(f"Min {min(ks)} KiB, max {max(ks)} KiB, last {ks[-1]} KiB; over the last 40 % (no new queues):")
    if last_growth:
        print(f"{min(last_growth)} to {max(last_growth)} KiB ({max(last_growth) - min(last_growth)} KiB apart).")
print()
print("Run again: `bench/soak.sh` (10 minutes of faults plus settling; `SOAK_SECONDS=…` for")
print("another duration).")
EOF
cat bench/SOAK.md
exit "$status"
