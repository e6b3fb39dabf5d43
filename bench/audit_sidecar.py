#!/usr/bin/env python3
"""What one reliability audit run costs the sidecar and the broker (docs/audit.md#cost).

Usage: bench/audit_sidecar.py MGMT_URL BEAM_PID SIDECAR_BIN [RUNS] [INTERVAL_S]

Put the broker in the state to measure first (examples/bench_load.rs, examples/audit_load.rs).
BEAM_PID is the broker's beam.smp process (not the rabbitmq-server shell that started it).

1. Broker idle: beam.smp CPU (utime + stime from /proc) over 20 s with no sidecar.
2. Baseline sidecar (audit.enabled false, one poll: poll.interval 30m): its RSS after the
   first poll ended.
3. Audit sidecar (audit.interval INTERVAL_S, default 30; poll.interval 30m, so after the
   first poll only the audit runs): for RUNS runs (default 5) after the first, the sidecar's
   and the broker's CPU between two run ends (one audit run and nothing else; the broker's
   idle CPU over the same time is subtracted), the run's wall time and bytes read
   (/api/v1/audit, once at the end), and the sidecar's RSS (VmRSS, VmHWM) at the end; run ends
   are taken from the sidecar's log, not its API (serializing 10,000 findings would be measured).
CPU times are in seconds of CPU, which a busy shared machine inflates less than wall times.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TCK = os.sysconf("SC_CLK_TCK")
# The log file of each sidecar started, by PID.
LOGS = {}


def cpu(pid):
    """utime + stime of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def mem(pid):
    """(VmRSS, VmHWM) of `pid`, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read().decode()
    except OSError:
        return None


def metric(base, name):
    text = get(base + "/metrics") or ""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def start(binary, mgmt_url, yaml):
    port = free_port()
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(yaml)
    cfg.close()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "RUST_LOG": "info",
        "NO_COLOR": "1",
        "RABBITMQ_WATCH_CONFIG": cfg.name,
        "RABBITMQ_WATCH__RABBITMQ__URL": mgmt_url,
        "RABBITMQ_WATCH__LISTEN": f"127.0.0.1:{port}",
    }
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(cfg.name + ".log", "w"))
    LOGS[proc.pid] = cfg.name + ".log"
    base = f"http://127.0.0.1:{port}"
    # The first poll (10,000 queues on a busy machine: minutes).
    deadline = time.time() + 900
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the sidecar exited: see {cfg.name}.log")
        polls = metric(base, "rabbitmq_watch_polls_total")
        if polls is not None and polls >= 1:
            return proc, base
        time.sleep(1)
    proc.kill()
    sys.exit("the first poll did not end within 15 minutes")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


COMMON = """poll:
  interval: 30m
  deadline: 15m
rabbitmq:
  timeout: 5m
alerting:
  backlog:
    window: 1h
"""


def main():
    mgmt_url, beam, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    interval = int(sys.argv[5]) if len(sys.argv) > 5 else 30

    b0 = cpu(beam)
    time.sleep(20)
    idle = (cpu(beam) - b0) / 20
    print(f"broker idle CPU: {idle:.3f} s/s")

    proc, base = start(binary, mgmt_url, COMMON + "audit:\n  enabled: false\n")
    time.sleep(5)
    base_rss, base_hwm = mem(proc.pid)
    stop(proc)
    print(f"baseline sidecar (no audit) after the first poll: "
          f"VmRSS {base_rss / 1e6:.1f} MB, VmHWM {base_hwm / 1e6:.1f} MB")

    proc, base = start(binary, mgmt_url,
                       COMMON + f"audit:\n  interval: {interval}s\n")
    # Run ends are read from the sidecar's log (`audit run … duration=…`), not from its API:
    # serializing 10,000 findings several times a second would be most of what is measured.
    samples = []
    log = open(LOGS[proc.pid])
    while len(samples) < runs + 1:
        line = log.readline()
        if not line:
            time.sleep(0.05)
            continue
        if "audit run" in line and "duration=" in line:
            samples.append((time.time(), cpu(proc.pid), cpu(beam),
                            parse_duration(line.split("duration=")[1].split()[0])))
    rss, hwm = mem(proc.pid)
    data = json.loads(get(base + "/api/v1/audit"))["data"]
    stop(proc)

    rows = []
    for (t0, s0, b0, _), (t1, s1, b1, wall) in zip(samples, samples[1:]):
        rows.append({
            "wall_s": wall,
            "sidecar_cpu_s": s1 - s0,
            "broker_cpu_s": max(0.0, (b1 - b0) - idle * (t1 - t0)),
            "broker_cpu_raw_s": b1 - b0,
            "window_s": t1 - t0,
        })
    for r in rows:
        print(json.dumps(r))
    print("last run's reads:", json.dumps({r["endpoint"]: {
        "bytes": r["bytes"], "wall_s": parse_duration(r["duration"]),
        "error": r["error"]} for r in data["reads"]}))
    print(f"findings: {len(data['findings'])}")
    med = lambda k: statistics.median(r[k] for r in rows)
    print(f"bytes read per run: {sum(r['bytes'] for r in data['reads'])}")
    print(f"median of {len(rows)} runs: wall {med('wall_s'):.2f} s, "
          f"sidecar CPU {med('sidecar_cpu_s'):.2f} s, "
          f"broker CPU {med('broker_cpu_s'):.2f} s (raw {med('broker_cpu_raw_s'):.2f} s "
          f"over {med('window_s'):.1f} s windows)")
    print(f"audit sidecar at the end: VmRSS {rss / 1e6:.1f} MB, VmHWM {hwm / 1e6:.1f} MB")


def parse_duration(text):
    """`1s 609ms 801us 641ns` (the API) or `2.183s`, `812.5ms` (the log) -> seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    if "." in text and " " not in text:
        num = text.rstrip("nmuµsh")
        return float(num) * units.get(text[len(num):], 0)
    total = 0.0
    for part in text.split():
        num = "".join(c for c in part if c.isdigit())
        unit = part[len(num):]
        total += int(num) * units.get(unit, 0)
    return total


if __name__ == "__main__":
    main()
