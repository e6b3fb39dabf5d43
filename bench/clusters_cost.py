#!/usr/bin/env python3
"""One sidecar for two clusters (`clusters:`) against two sidecars, one per cluster
(docs/operations.md#several-clusters).

Usage: bench/clusters_cost.py SIDECAR_BIN [QUEUES] [SECONDS] [INTERVAL_S]

Starts two throwaway RabbitMQ nodes (scripts/rabbitmq-node.sh, tied to this script's PID),
declares QUEUES (default 500) durable queues in each over the management API, then for each
layout runs the sidecar(s) with poll.interval INTERVAL_S (default 1) and, after 3 polls of
every cluster, measures over SECONDS (default 30):

- CPU: utime + stime of the sidecar process(es) from /proc/PID/stat, in seconds, divided by
  the polls completed meanwhile (rabbitmq_watch_polls_total of every cluster): CPU per
  cluster poll, evaluation and encoding included;
- RSS: VmRSS of the process(es) at the end, summed, and VmHWM.

Prints one line per layout and a JSON summary. Everything started is stopped on exit.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCK = os.sysconf("SC_CLK_TCK")
STARTED = []


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def mem(pid):
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


def request(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=body)
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def node(tag):
    d = tempfile.mkdtemp(prefix=f"rmqw-clusters-cost-{tag}-")
    out = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts/rabbitmq-node.sh"), "start", d,
         "--watch-pid", str(os.getpid())],
        check=True, capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    STARTED.append(("node", d))
    return env["MGMT_URL"]


def polls(base):
    """rabbitmq_watch_polls_total summed over the clusters of one sidecar."""
    try:
        text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    except OSError:
        return None
    values = [float(l.split()[-1]) for l in text.splitlines()
              if l.startswith("rabbitmq_watch_polls_total")]
    return (min(values), sum(values)) if values else None


def sidecar(binary, yaml):
    port = free_port()
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(yaml)
    cfg.close()
    env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn", "NO_COLOR": "1",
           "RABBITMQ_WATCH_CONFIG": cfg.name,
           "RABBITMQ_WATCH__LISTEN": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    STARTED.append(("proc", proc))
    return proc, f"http://127.0.0.1:{port}"


def measure(procs, seconds):
    deadline = time.time() + 300
    while True:
        counts = [polls(b) for _, b in procs]
        if all(c is not None and c[0] >= 3 for c in counts):
            break
        if time.time() > deadline:
            sys.exit("the sidecars did not poll 3 times in 5 minutes")
        time.sleep(0.5)
    c0 = sum(cpu(p.pid) for p, _ in procs)
    n0 = sum(polls(b)[1] for _, b in procs)
    time.sleep(seconds)
    c1 = sum(cpu(p.pid) for p, _ in procs)
    n1 = sum(polls(b)[1] for _, b in procs)
    rss = sum(mem(p.pid)[0] for p, _ in procs)
    hwm = sum(mem(p.pid)[1] for p, _ in procs)
    for p, _ in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    return {"processes": len(procs), "cluster_polls": n1 - n0,
            "cpu_s": round(c1 - c0, 3),
            "cpu_ms_per_cluster_poll": round(1000 * (c1 - c0) / max(1, n1 - n0), 2),
            "rss_mb": round(rss / 1e6, 1), "hwm_mb": round(hwm / 1e6, 1)}


def main():
    binary = sys.argv[1]
    queues = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    interval = sys.argv[4] if len(sys.argv) > 4 else "1"
    urls = [node("a"), node("b")]
    for url in urls:
        for i in range(queues):
            request(f"{url}/api/queues/%2F/{quote(f'cost-{i}')}", "PUT",
                    b'{"durable": true}')
    common = f"poll:\n  interval: {interval}s\naudit:\n  enabled: false\n"
    common_multi = f"poll:\n  interval: {interval}s\n"
    two = [sidecar(binary, common + f"rabbitmq:\n  url: {u}\n  source: management\n")
           for u in urls]
    two_result = measure(two, seconds)
    one = [sidecar(binary, common_multi + "clusters:\n" + "".join(
        f"  - name: c{i}\n    rabbitmq: {{url: '{u}', source: management}}\n"
        for i, u in enumerate(urls)))]
    one_result = measure(one, seconds)
    print(f"{queues} queues per cluster, poll.interval {interval}s, {seconds}s measured")
    for name, r in (("two sidecars", two_result), ("one sidecar, clusters:", one_result)):
        print(f"{name:24} RSS {r['rss_mb']:6.1f} MB (peak {r['hwm_mb']:.1f})  "
              f"CPU {r['cpu_ms_per_cluster_poll']:6.2f} ms per cluster poll "
              f"({r['cluster_polls']} polls)")
    print(json.dumps({"queues": queues, "interval_s": interval, "seconds": seconds,
                      "two_sidecars": two_result, "one_sidecar": one_result}))


def cleanup():
    for kind, what in reversed(STARTED):
        if kind == "proc" and what.poll() is None:
            what.kill()
        elif kind == "node":
            subprocess.run(["bash", os.path.join(ROOT, "scripts/rabbitmq-node.sh"), "stop",
                            what], capture_output=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
