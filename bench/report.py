#!/usr/bin/env python3
"""Helpers of bench/run.sh (standard library only).

  report.py requests LOG SEQ        the management API requests of poll SEQ, from the sidecar's
                                    debug log, as "endpoint<TAB>url" lines (query encoded)
  report.py collect RAWDIR OUT.json the figures of one run from its raw files
  report.py render RESULTSDIR OUT.md [N ...]
                                    bench/RESULTS.md from every RESULTSDIR/N.json; prints the
                                    tables of the given N (all when none given) on stdout
"""

import glob
import json
import os
import re
import statistics
import sys
import urllib.parse

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PAIR = re.compile(r'\(\s*"((?:[^"\\]|\\.)*)"\s*,\s*"((?:[^"\\]|\\.)*)"\s*\)')

# Targets at 10,000 queues.
TARGET_N = 10000
RSS_TARGET_MB = 60.0
CPU_TARGET_S = 0.15
BROKER_CPU_TARGET_S = 1.0
POLL_RATIO_TARGET = 1.1
P99_TARGET_MS = 25.0
BYTES_FRACTION_TARGET = 1 / 3

# Targets at 100,000 queues (issue #13).
LARGE_N = 100000
LARGE_BROKER_CPU_TARGET_S = 10.0
LARGE_RSS_TARGET_MB = 350.0
LARGE_POLL_TARGET_S = 60.0

# Reference figures from shared/REFERENCE.md ("Measured cost on this machine, 10,000 queues,
# median of 5"): not measured by this harness.
REFERENCE_ROWS = [
    ("`GET /api/queues` (all fields, no paging)", "5.1 s (2.9–8.2 s)", "14.2 MB"),
    ("`GET /api/queues?page=1&page_size=500`", "0.36 s", "0.71 MB"),
    ("`GET /api/queues?columns=vhost,name,messages,…`", "1.0–1.9 s", "1.1 MB"),
    ("`GET /api/queues?disable_stats=true&enable_queue_totals=true`", "0.64 s", "2.2 MB"),
    ("rabbitmq_prometheus `:15692/metrics/per-object`", "0.4–0.5 s", "15.9 MB"),
    (
        "kbudde/rabbitmq_exporter `/metrics` (one scrape = one full API read)",
        "8.5 s, ~4 s CPU, 411–540 MB RSS",
        "42 MB, 331k lines",
    ),
]


def unescape(s):
    """Undo Rust's Debug escaping of a string (enough for query keys and values)."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "u" and s[i + 2 : i + 3] == "{":
                end = s.index("}", i)
                out.append(chr(int(s[i + 3 : end], 16)))
                i = end + 1
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_request(line):
    """(endpoint, url) of a debug line `... endpoint=... url=... query=[...]`, else None."""
    if "url=" not in line or "endpoint=" not in line:
        return None
    ep = re.search(r'endpoint="?([^"\s]+)"?', line)
    url = re.search(r'url="?([^"\s]+)"?', line)
    if not ep or not url:
        return None
    q = re.search(r"query=(\[.*\])", line)
    pairs = [(unescape(k), unescape(v)) for k, v in PAIR.findall(q.group(1))] if q else []
    full = url.group(1)
    if pairs:
        full += ("&" if "?" in full else "?") + urllib.parse.urlencode(pairs)
    return ep.group(1), full


# The reliability audit's reads: its own task on its own interval (audit.interval, 5m; the first
# right after start-up), interleaved in the log with the polls' requests but not part of a poll.
AUDIT_ENDPOINTS = {"/api/bindings", "/api/channels", "/api/consumers", "/api/exchanges"}


def cmd_requests(log, seq):
    seq = int(seq)
    lines = [ANSI.sub("", line.rstrip("\n")) for line in open(log, errors="replace")]
    polls, cur = [], []
    if any("poll finished" in line for line in lines):
        for line in lines:
            r = parse_request(line)
            if r and r[0] in AUDIT_ENDPOINTS:
                continue
            if r:
                cur.append(r)
            elif "poll finished" in line:
                polls.append(cur)
                cur = []
    else:
        # No end-of-poll line: a poll starts with its /api/overview request.
        for line in lines:
            r = parse_request(line)
            if not r:
                continue
            if r[0] == "/api/overview" and cur:
                polls.append(cur)
                cur = []
            cur.append(r)
        polls.append(cur)
    if len(polls) < seq or not polls[seq - 1]:
        print(f"report: no requests found for poll {seq} in {log}", file=sys.stderr)
        return 1
    for ep, url in polls[seq - 1]:
        print(f"{ep}\t{url}")
    return 0


def read_env(path):
    env = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(path):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in open(path, errors="replace"):
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def by_label(metrics, name, label):
    return {
        dict(labels).get(label, ""): v for (n, labels), v in metrics.items() if n == name
    }


def one(metrics, name):
    for (n, labels), v in metrics.items():
        if n == name and not labels:
            return v
    return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def status_kb(path, key):
    if not os.path.exists(path):
        return None
    for line in open(path):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def wrk_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(path):
    out = {"percentiles_ms": {}}
    if not os.path.exists(path):
        return out
    text = open(path, errors="replace").read()
    for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M):
        out["percentiles_ms"][p] = wrk_ms(v)
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["requests_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", text)
    out["socket_errors"] = m.group(1).strip() if m else None
    return out


def read_curl_lines(path):
    """[(time_s, bytes, code)] of a file of curl -w '%{time_total} %{size_download} %{http_code}'."""
    out = []
    if os.path.exists(path):
        for line in open(path):
            parts = line.split()
            if len(parts) >= 3:
                out.append((float(parts[0]), int(float(parts[1])), parts[2]))
    return out


def cmd_collect(raw, out_path):
    meta = read_env(os.path.join(raw, "meta.env"))
    cpu = read_env(os.path.join(raw, "cpu.env"))
    polls = int(meta.get("polls", 5))
    res = {"n": int(meta["n"]), "meta": meta}
    try:
        ov = json.load(open(os.path.join(raw, "overview.json")))
        res["rabbitmq_version"] = ov.get("rabbitmq_version")
        res["erlang_version"] = ov.get("erlang_version")
        res["broker_totals"] = {
            "queues": ov.get("object_totals", {}).get("queues"),
            "consumers": ov.get("object_totals", {}).get("consumers"),
            "messages": ov.get("queue_totals", {}).get("messages"),
            "messages_unacknowledged": ov.get("queue_totals", {}).get("messages_unacknowledged"),
        }
    except (OSError, ValueError):
        pass

    # Polls 2 .. polls+1 (the first one, right after start-up, is left out).
    samples = []
    for k in range(2, polls + 2):
        path = os.path.join(raw, "metrics", f"poll-{k}.prom")
        if not os.path.exists(path):
            continue
        m = parse_metrics(path)
        durations = by_label(m, "rabbitmq_watch_endpoint_duration_seconds", "endpoint")
        nbytes = by_label(m, "rabbitmq_watch_endpoint_response_bytes", "endpoint")
        shown = one(m, "rabbitmq_watch_polls_total")
        samples.append(
            {
                "poll": int(shown) if shown is not None else k,
                "polls_total": one(m, "rabbitmq_watch_polls_total"),
                "up": one(m, "rabbitmq_up"),
                "queues_seen": one(m, "rabbitmq_queues"),
                "poll_duration_s": one(m, "rabbitmq_watch_poll_duration_seconds"),
                "endpoint_duration_s": durations,
                "endpoint_bytes": nbytes,
                "bytes_total": sum(nbytes.values()) if nbytes else None,
            }
        )
    res["poll_samples"] = samples
    endpoints = sorted({e for s in samples for e in s["endpoint_duration_s"]})
    res["poll_duration_s"] = {
        "median": median([s["poll_duration_s"] for s in samples]),
        "min": min((s["poll_duration_s"] for s in samples if s["poll_duration_s"] is not None), default=None),
        "max": max((s["poll_duration_s"] for s in samples if s["poll_duration_s"] is not None), default=None),
    }
    res["endpoint_duration_s"] = {
        e: median([s["endpoint_duration_s"].get(e) for s in samples]) for e in endpoints
    }
    res["endpoint_bytes"] = {
        e: median([s["endpoint_bytes"].get(e) for s in samples])
        for e in sorted({e for s in samples for e in s["endpoint_bytes"]})
    }
    res["bytes_per_poll"] = median([s["bytes_total"] for s in samples])
    res["all_polls_up"] = all(s["up"] == 1 for s in samples) if samples else False

    # Poll durations as logged by the sidecar (cross-check of the scraped gauge).
    logged = {}
    log_path = os.path.join(raw, "sidecar.log")
    if os.path.exists(log_path):
        for line in open(log_path, errors="replace"):
            m = re.search(r"poll finished.*?seq=(\d+).*?duration_ms=(\d+)", ANSI.sub("", line))
            if m:
                logged[int(m.group(1))] = int(m.group(2)) / 1000
    res["poll_duration_s_logged"] = {str(k): logged.get(k) for k in range(1, polls + 2)}

    # CPU: the sidecar over exactly `polls` polls; the machine around it.
    clk = float(meta.get("clk_tck", 100))

    # The broker's CPU per poll: its beam.smp's ticks, sampled every 0.1 s, interpolated at
    # each measured poll's start and end (end = the log's `poll finished` time, start = end -
    # duration_ms). Its idle baseline (measured before the sidecar started) is reported beside
    # it, not subtracted.
    res["broker_cpu"] = broker_cpu(raw, meta, clk, polls)

    def delta(key):
        a, b = cpu.get(f"start_{key}"), cpu.get(f"end_{key}")
        return None if not a or not b else float(b) - float(a)

    k = int(cpu.get("polls_in_window", polls))
    window = delta("time")
    sidecar_ticks = delta("sidecar")
    res["cpu_s_per_poll"] = None if sidecar_ticks is None else sidecar_ticks / clk / k
    res["extra_scrapes_in_window"] = int(cpu.get("extra_scrapes", 0))
    if window:
        cores = lambda ticks: None if ticks is None else ticks / clk / window
        busy, node, others = delta("machine_busy"), delta("node"), delta("other_beams")
        rest = None
        if busy is not None and node is not None and sidecar_ticks is not None:
            rest = busy - node - sidecar_ticks
        res["machine_cpu_cores"] = {
            "window_s": window,
            # /proc/stat counts USER_HZ ticks summed over all cores
            "machine_busy": cores(busy),
            "our_node": cores(node),
            "sidecar": cores(sidecar_ticks),
            "other_beam_processes": None if others is None else max(cores(others), 0.0),
            "everything_else": cores(rest),
        }
    for when in ("after-polls", "after-wrk"):
        path = os.path.join(raw, f"status-{when}.txt")
        res[f"rss_kb_{when.replace('-', '_')}"] = status_kb(path, "VmRSS")
        res[f"hwm_kb_{when.replace('-', '_')}"] = status_kb(path, "VmHWM")

    for phase in ("polls", "wrk"):
        path = os.path.join(raw, f"rss-{phase}.txt")
        vals = [int(l) for l in open(path) if l.strip().isdigit()] if os.path.exists(path) else []
        res[f"rss_kb_peak_sampled_{phase}"] = max(vals) if vals else None
        res[f"rss_samples_{phase}"] = len(vals)

    # The broker alone: replays of the poll's requests in the poll's shape, run between polls
    # (replay r just before poll r+1); and plain full /api/queues.
    requests = [l.rstrip("\n").split("\t") for l in open(os.path.join(raw, "requests.tsv"))]
    res["requests_per_poll"] = {}
    for ep, _ in requests:
        res["requests_per_poll"][ep] = res["requests_per_poll"].get(ep, 0) + 1
    safe = {ep: re.sub(r"[^a-zA-Z0-9]", "_", ep) for ep in res["requests_per_poll"]}
    runs_found = sorted(
        {(m.group(1), int(m.group(2))) for f in os.listdir(os.path.join(raw, "replay"))
         for m in [re.match(r"(conc|after)-(\d+)-", f)] if m}
    )
    ep_time = {ep: [] for ep in safe}
    ep_bytes = {ep: [] for ep in safe}
    shape = {}
    bad = set()
    for r in runs_found:
        chains = []
        for ep, sfx in safe.items():
            lines = read_curl_lines(os.path.join(raw, "replay", f"{r[0]}-{r[1]}-{sfx}.txt"))
            bad |= {f"HTTP {c} from {ep}" for _, _, c in lines if c not in ("200", "503")}
            if len(lines) != res["requests_per_poll"][ep]:
                bad.add(f"run {r}: {len(lines)} answers from {ep} for {res['requests_per_poll'][ep]} requests")
            t = sum(x[0] for x in lines)
            ep_time[ep].append(t)
            ep_bytes[ep].append(sum(x[1] for x in lines))
            chains.append(t)
        shape[r] = max(chains) if chains else None
    # Pairs: poll r+1 and the replay just before it.
    pairs = []
    for (kind, r), b in shape.items():
        if kind != "conc":
            continue
        poll = next((s["poll_duration_s"] for s in samples if s["poll"] == r + 1), None)
        if poll is not None and b:
            pairs.append(poll / b)
    res["broker"] = {
        "runs": len(runs_found),
        "runs_interleaved": sum(1 for kind, _ in runs_found if kind == "conc"),
        "runs_after_polls": sum(1 for kind, _ in runs_found if kind == "after"),
        "endpoint_time_s": {ep: median(v) for ep, v in ep_time.items()},
        "endpoint_bytes": {ep: median(v) for ep, v in ep_bytes.items()},
        "poll_shape_time_s": median(list(shape.values())),
        "poll_shape_time_s_runs": [shape[r] for r in runs_found],
        "paired_ratio_median": median(pairs),
        "paired_ratios": pairs,
        "bytes_per_poll": sum(median(v) for v in ep_bytes.values()) if ep_bytes else None,
        "unexpected": sorted(bad),
    }
    full = [read_curl_lines(p) for p in sorted(glob.glob(os.path.join(raw, "replay", "full-*.txt")))]
    full = [f[0] for f in full if f]
    res["full_queues"] = {
        "time_s": median([f[0] for f in full]),
        "time_s_runs": [f[0] for f in full],
        "bytes": median([f[1] for f in full]),
        "codes": sorted({f[2] for f in full}),
    }

    res["wrk"] = parse_wrk(os.path.join(raw, "wrk.txt"))
    res["wrk_single"] = parse_wrk(os.path.join(raw, "wrk-1.txt"))
    prom = os.path.join(raw, "wrk-prometheus.txt")
    res["wrk_prometheus"] = parse_wrk(prom) if os.path.exists(prom) else {}
    paced = os.path.join(raw, "wrk-paced.txt")
    res["wrk_paced"] = parse_wrk(paced) if os.path.exists(paced) else {}
    expo = read_curl_lines(os.path.join(raw, "metrics", "exposition.prom.w"))
    res["exposition_bytes"] = expo[0][1] if expo else None
    res["exposition_lines"] = int(meta["exposition_lines"]) if meta.get("exposition_lines") else None
    res["queue_series"] = int(meta["queue_series"]) if meta.get("queue_series") else None
    json.dump(res, open(out_path, "w"), indent=2, sort_keys=True)
    print(f"report: wrote {out_path}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z")


def log_epoch(line):
    m = LOG_TS.match(line)
    if not m:
        return None
    import datetime
    ts = m.group(1)
    if "." in ts:
        head, frac = ts.split(".")
        ts = head + "." + frac[:6]
        fmt = "%Y-%m-%dT%H:%M:%S.%f"
    else:
        fmt = "%Y-%m-%dT%H:%M:%S"
    return datetime.datetime.strptime(ts, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


def broker_cpu(raw, meta, clk, polls):
    out = {}
    try:
        base_s = float(meta["broker_baseline_s"])
        out["baseline_cores"] = int(meta["broker_baseline_ticks"]) / clk / base_s
    except (KeyError, ValueError, ZeroDivisionError):
        out["baseline_cores"] = None
    samples = []
    path = os.path.join(raw, "beam-ticks.txt")
    if os.path.exists(path):
        for line in open(path):
            parts = line.split()
            if len(parts) == 2:
                try:
                    samples.append((float(parts[0]), int(parts[1])))
                except ValueError:
                    pass

    def ticks_at(t):
        if len(samples) < 2 or t < samples[0][0] or t > samples[-1][0]:
            return None
        lo, hi = 0, len(samples) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if samples[mid][0] <= t:
                lo = mid
            else:
                hi = mid
        (t0, v0), (t1, v1) = samples[lo], samples[hi]
        return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    per_poll = {}
    log_path = os.path.join(raw, "sidecar.log")
    if os.path.exists(log_path):
        for line in open(log_path, errors="replace"):
            line = ANSI.sub("", line)
            m = re.search(r"poll finished.*?seq=(\d+).*?duration_ms=(\d+)", line)
            end = log_epoch(line) if m else None
            if m and end is not None and 2 <= int(m.group(1)) <= polls + 1:
                start = end - int(m.group(2)) / 1000
                a, b = ticks_at(start), ticks_at(end)
                if a is not None and b is not None:
                    per_poll[int(m.group(1))] = {
                        "cpu_s": (b - a) / clk,
                        "wall_s": end - start,
                    }
    out["per_poll"] = per_poll
    out["poll_cpu_s"] = median([p["cpu_s"] for p in per_poll.values()])
    replays = {}
    path = os.path.join(raw, "replay-cpu.txt")
    if os.path.exists(path):
        for line in open(path):
            parts = line.split()
            if len(parts) == 5:
                label, e0, e1, t0, t1 = parts
                replays[label] = {"cpu_s": (int(t1) - int(t0)) / clk, "wall_s": float(e1) - float(e0)}
    out["replays"] = replays
    out["replay_cpu_s"] = median([r["cpu_s"] for r in replays.values()])
    # Per-poll ratio against the replay just before it (conc-(k-1) before poll k).
    ratios = []
    for k, p in per_poll.items():
        r = replays.get(f"conc-{k - 1}")
        if r and r["cpu_s"] > 0:
            ratios.append(p["cpu_s"] / r["cpu_s"])
    out["paired_ratio_median"] = median(ratios)
    return out


def fmt_s(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f} s"


def fmt_ms(x):
    return "n/a" if x is None else f"{x:.2f} ms"


def fmt_mb(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 1e6:.2f} MB"


def fmt_kb_as_mb(kb):
    return "n/a" if kb is None else f"{kb * 1024 / 1e6:.1f} MB"


def ratio(a, b):
    return None if a is None or not b else a / b


def table(res):
    b = res.get("broker", {})
    w = res.get("wrk", {})
    pct = w.get("percentiles_ms", {})
    full = res.get("full_queues", {})
    rows = []
    add = lambda k, v: rows.append((k, v))
    add("poll wall time (`rabbitmq_watch_poll_duration_seconds`, median)",
        f"{fmt_s(res['poll_duration_s']['median'])} (min {fmt_s(res['poll_duration_s']['min'])}, max {fmt_s(res['poll_duration_s']['max'])})")
    for ep, t in sorted(res.get("endpoint_duration_s", {}).items()):
        n_req = res.get("requests_per_poll", {}).get(ep, "?")
        add(f"  `{ep}` sidecar / broker alone ({n_req} request(s))",
            f"{fmt_s(t)} / {fmt_s(b.get('endpoint_time_s', {}).get(ep))}")
    logged = [v for k, v in sorted(res.get("poll_duration_s_logged", {}).items(), key=lambda kv: int(kv[0])) if v is not None]
    add("poll wall time as logged, polls 1, 2, … (first = right after start-up)",
        ", ".join(f"{v:.2f}" for v in logged) + " s" if logged else "n/a")
    add(f"broker alone: the same requests in the poll's shape, curl, median of {b.get('runs', '?')} runs "
        f"({b.get('runs_interleaved', '?')} between the polls, {b.get('runs_after_polls', '?')} after them)",
        f"{fmt_s(b.get('poll_shape_time_s'))} (runs: "
        + ", ".join(f"{x:.2f}" for x in b.get("poll_shape_time_s_runs", []) if x is not None) + ")")
    r = ratio(res["poll_duration_s"]["median"], b.get("poll_shape_time_s"))
    add("poll wall time / broker alone: ratio of medians; median of per-poll ratios (poll vs replay just before it)",
        ("n/a" if r is None else f"{r:.2f}×") + "; "
        + ("n/a" if b.get("paired_ratio_median") is None else f"{b['paired_ratio_median']:.2f}×"))
    bc = res.get("broker_cpu") or {}
    if bc:
        per = [v["cpu_s"] for k, v in sorted(bc.get("per_poll", {}).items(), key=lambda kv: int(kv[0]))]
        add("**broker CPU per poll** (utime+stime of its `beam.smp` from the poll's start to its end, idle baseline included), median; polls 2, 3, …",
            f"{fmt_s(bc.get('poll_cpu_s'))} (" + ", ".join(f"{x:.2f}" for x in per) + ")")
        rep = [v["cpu_s"] for _, v in sorted(bc.get("replays", {}).items())]
        add("broker CPU for curl replaying the poll's requests (the cheapest read of the same fields: one unpaged `/api/queues` with `columns=` and `sort=`, plus overview, nodes, alarms), median",
            f"{fmt_s(bc.get('replay_cpu_s'))} (" + ", ".join(f"{x:.2f}" for x in rep) + ")")
        add("broker CPU per poll / per replay: median of per-poll ratios (poll vs replay just before it)",
            "n/a" if bc.get("paired_ratio_median") is None else f"{bc['paired_ratio_median']:.2f}×")
        add("broker idle baseline before the sidecar started (cores busy; included in the figures above)",
            "n/a" if bc.get("baseline_cores") is None else f"{bc['baseline_cores']:.3f}")
    add("sidecar CPU per poll (utime+stime over "
        f"{res.get('meta', {}).get('polls', '?')} polls, one scrape each"
        + {"plain": " (plain text)", "prometheus": " (as Prometheus sends it: OpenMetrics, gzip)"}.get(res.get('meta', {}).get('scrape'), " (plain text)")
        + (f", plus {res['extra_scrapes_in_window']} extra scrape(s) in all" if res.get("extra_scrapes_in_window") else "")
        + ")", fmt_s(res.get("cpu_s_per_poll")))
    mc = res.get("machine_cpu_cores")
    if mc:
        add("machine CPU during the polls (average cores busy of "
            f"{res.get('meta', {}).get('nproc', '?')}): all / our broker / sidecar / other RabbitMQ nodes / rest",
            " / ".join("n/a" if mc.get(k) is None else f"{mc[k]:.2f}"
                       for k in ("machine_busy", "our_node", "sidecar", "other_beam_processes", "everything_else"))
            + f" (over {mc['window_s']:.0f} s, replays included)")
    add("sidecar RSS peak, sampled every 0.2 s: during the polls / during wrk",
        f"{fmt_kb_as_mb(res.get('rss_kb_peak_sampled_polls'))} / {fmt_kb_as_mb(res.get('rss_kb_peak_sampled_wrk'))}")
    add("sidecar RSS after the polls: VmRSS / VmHWM",
        f"{fmt_kb_as_mb(res.get('rss_kb_after_polls'))} / {fmt_kb_as_mb(res.get('hwm_kb_after_polls'))}")
    add("sidecar RSS after wrk: VmRSS / VmHWM",
        f"{fmt_kb_as_mb(res.get('rss_kb_after_wrk'))} / {fmt_kb_as_mb(res.get('hwm_kb_after_wrk'))}")
    add("bytes fetched per poll (sum of `rabbitmq_watch_endpoint_response_bytes`)",
        f"{fmt_mb(res.get('bytes_per_poll'))} (replay: {fmt_mb(b.get('bytes_per_poll'))})")
    add("plain full `GET /api/queues`: time (median) / bytes",
        f"{fmt_s(full.get('time_s'))} / {fmt_mb(full.get('bytes'))}")
    fr = ratio(res.get("bytes_per_poll"), full.get("bytes"))
    add("bytes per poll / plain full `/api/queues`", "n/a" if fr is None else f"{fr:.3f}")
    add(f"/metrics latency, {res.get('meta', {}).get('wrk_connections', 16)} concurrent scrapers: p50 / p90 / p99",
        f"{fmt_ms(pct.get('50'))} / {fmt_ms(pct.get('90'))} / {fmt_ms(pct.get('99'))}")
    pp = res.get("wrk_prometheus", {}).get("percentiles_ms", {})
    add(f"/metrics latency, {res.get('meta', {}).get('wrk_connections', 16)} concurrent scrapers sending Prometheus's headers (OpenMetrics, gzip): p50 / p90 / p99",
        f"{fmt_ms(pp.get('50'))} / {fmt_ms(pp.get('90'))} / {fmt_ms(pp.get('99'))}")
    pq = res.get("wrk_paced", {})
    if pq.get("percentiles_ms"):
        pc = pq["percentiles_ms"]
        add(f"/metrics latency, {res.get('meta', {}).get('wrk_connections', 16)} paced scrapers (each ~1 scrape/s, Prometheus's headers, across polls): p50 / p90 / p99 (requests)",
            f"{fmt_ms(pc.get('50'))} / {fmt_ms(pc.get('90'))} / {fmt_ms(pc.get('99'))} ({pq.get('requests', 'n/a')})")
    p1 = res.get("wrk_single", {}).get("percentiles_ms", {})
    add("/metrics latency, one scraper alone: p50 / p99", f"{fmt_ms(p1.get('50'))} / {fmt_ms(p1.get('99'))}")
    add("/metrics throughput (wrk, concurrent scrapers)",
        "n/a" if w.get("requests_per_s") is None else
        f"{w['requests_per_s']:.0f} req/s, non-2xx {w.get('non_2xx', 0)}"
        + (f", socket errors: {w['socket_errors']}" if w.get("socket_errors") else ""))
    add("exposition size / lines / queue series",
        f"{fmt_mb(res.get('exposition_bytes'))} / {res.get('exposition_lines', 'n/a')} / {res.get('queue_series', 'n/a')}")
    return rows


def targets(res):
    """[(target, measured, verdict)] at 10k queues."""
    out = []

    def verdict(value, limit, lower_is_better=True, unit=""):
        if value is None:
            return "not measured"
        if value <= limit:
            return f"**pass** ({(limit - value) / limit * 100:.0f}% under)"
        return f"**miss** ({(value - limit) / limit * 100:.0f}% over)"

    peaks = [res.get(k) for k in ("hwm_kb_after_polls", "hwm_kb_after_wrk",
                                  "rss_kb_peak_sampled_polls", "rss_kb_peak_sampled_wrk")]
    peaks = [p for p in peaks if p is not None]
    hwm = max(peaks) if peaks else None
    hwm_mb = None if hwm is None else hwm * 1024 / 1e6
    out.append(("RSS ≤ 60 MB (peak: the larger of VmHWM and the sampled VmRSS, polls and wrk)",
                fmt_kb_as_mb(hwm), verdict(hwm_mb, RSS_TARGET_MB)))
    cpu = res.get("cpu_s_per_poll")
    out.append(("sidecar CPU per poll ≤ 0.15 s", fmt_s(cpu), verdict(cpu, CPU_TARGET_S)))
    bc = res.get("broker_cpu") or {}
    out.append(("broker CPU per poll ≤ 1.0 s (baseline included)", fmt_s(bc.get("poll_cpu_s")),
                verdict(bc.get("poll_cpu_s"), BROKER_CPU_TARGET_S)))
    out.append(("broker CPU per poll ≤ 1.1 × a curl replay of the cheapest read (median of per-poll ratios)",
                "n/a" if bc.get("paired_ratio_median") is None else f"{bc['paired_ratio_median']:.2f}×",
                verdict(bc.get("paired_ratio_median"), POLL_RATIO_TARGET)))
    poll = res["poll_duration_s"]["median"]
    broker = res.get("broker", {}).get("poll_shape_time_s")
    paired = res.get("broker", {}).get("paired_ratio_median")
    r = ratio(poll, broker)
    out.append(("poll wall time ≤ 1.1 × broker's own time for the same requests (median of per-poll ratios)",
                f"{'n/a' if paired is None else f'{paired:.2f}×'} (medians: {fmt_s(poll)} vs {fmt_s(broker)} = "
                f"{'n/a' if r is None else f'{r:.2f}×'})",
                verdict(paired, POLL_RATIO_TARGET)))
    paced = res.get("wrk_paced", {})
    p99q = paced.get("percentiles_ms", {}).get("99")
    if p99q is not None:
        out.append(("/metrics p99 ≤ 25 ms, 16 scrapers paced as Prometheus's (each ~1 scrape/s, OpenMetrics, gzip), across polls",
                    f"{fmt_ms(p99q)} over {paced.get('requests', 'n/a')} scrapes", verdict(p99q, P99_TARGET_MS)))
    p99p = res.get("wrk_prometheus", {}).get("percentiles_ms", {}).get("99")
    out.append(("/metrics p99 ≤ 25 ms, 16 closed-loop scrapers sending Prometheus's headers (OpenMetrics, gzip; each sends its next request as soon as the last is answered)",
                fmt_ms(p99p), verdict(p99p, P99_TARGET_MS)))
    p99 = res.get("wrk", {}).get("percentiles_ms", {}).get("99")
    out.append(("/metrics p99 ≤ 25 ms, 16 concurrent scrapers without gzip (plain text, the whole exposition each time)",
                fmt_ms(p99), verdict(p99, P99_TARGET_MS)))
    fr = ratio(res.get("bytes_per_poll"), res.get("full_queues", {}).get("bytes"))
    out.append(("bytes fetched per poll ≤ 1/3 of a plain full `/api/queues`",
                f"{fmt_mb(res.get('bytes_per_poll'))} vs {fmt_mb(res.get('full_queues', {}).get('bytes'))} = "
                + ("n/a" if fr is None else f"{fr:.3f}"),
                verdict(fr, BYTES_FRACTION_TARGET)))
    return out


def verdict_of(value, limit):
    if value is None:
        return "not measured"
    if value <= limit:
        return f"**pass** ({(limit - value) / limit * 100:.0f}% under)"
    return f"**miss** ({(value - limit) / limit * 100:.0f}% over)"


def peak_rss_kb(res):
    peaks = [res.get(k) for k in ("hwm_kb_after_polls", "hwm_kb_after_wrk",
                                  "rss_kb_peak_sampled_polls", "rss_kb_peak_sampled_wrk")]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def targets_large(res):
    """[(target, measured, verdict)] at 100k queues."""
    out = []
    bc = res.get("broker_cpu") or {}
    per = [v["cpu_s"] for v in (bc.get("per_poll") or {}).values()]
    out.append(("broker CPU per poll ≤ 10 s (baseline included; median of the measured polls)",
                f"{fmt_s(bc.get('poll_cpu_s'))}" + (f" (max {max(per):.2f} s)" if per else ""),
                verdict_of(bc.get("poll_cpu_s"), LARGE_BROKER_CPU_TARGET_S)))
    base = bc.get("baseline_cores")
    pd = res.get("poll_duration_s", {})
    if base is not None and bc.get("poll_cpu_s") is not None and pd.get("median") is not None:
        above = bc["poll_cpu_s"] - base * pd["median"]
        out.append(("  the same above the broker's idle baseline (baseline cores × median poll wall time subtracted)",
                    fmt_s(above), verdict_of(above, LARGE_BROKER_CPU_TARGET_S)))
    hwm = peak_rss_kb(res)
    hwm_mb = None if hwm is None else hwm * 1024 / 1e6
    out.append(("RSS ≤ 350 MB (peak: the larger of VmHWM and the sampled VmRSS, polls and wrk)",
                fmt_kb_as_mb(hwm), verdict_of(hwm_mb, LARGE_RSS_TARGET_MB)))
    logged = [v for k, v in res.get("poll_duration_s_logged", {}).items() if v is not None and int(k) >= 2]
    worst = max(logged) if logged else pd.get("max")
    up = res.get("all_polls_up")
    out.append(("the poll finishes within a 60 s interval (longest measured poll, as logged; every measured poll up)",
                f"{fmt_s(worst)} (median {fmt_s(pd.get('median'))}); every poll up: {'yes' if up else 'no'}",
                verdict_of(worst, LARGE_POLL_TARGET_S) if up else "**miss** (a measured poll failed)"))
    cpu = res.get("cpu_s_per_poll")
    out.append(("sidecar CPU per poll (no target at this size; for scale)", fmt_s(cpu), "–"))
    return out


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


METHOD = """\
`bench/run.sh` starts a throwaway RabbitMQ node (`scripts/rabbitmq-node.sh`, management plugin,
`collect_statistics_interval = 5000` as in production, checked on the running node) and loads
it with `examples/bench_load.rs`: N durable classic queues spread over {vhosts} vhosts, {messages} real
messages published into each (publisher confirms), and a consumer with prefetch {prefetch} that never
acks on every {every}th queue, so those queues hold unacknowledged messages. Once the broker's
totals show the whole load, it starts the release sidecar (`poll.interval = 15s`,
`rabbitmq.timeout = 14s`, `RUST_LOG=rabbitmq_watch=debug`) and takes the exact requests of its
first poll from the debug log (same paths and query strings, every page of `/api/queues`).

The first poll is left out. After each of the next {polls} polls the harness scrapes `/metrics` once
(as one Prometheus would; it re-scrapes until the exposition shows that poll), then freezes the
sidecar (SIGSTOP) and replays the poll's requests with curl in the poll's own shape (the endpoints
concurrently, the pages of `/api/queues` in order on one kept-alive connection), then resumes it,
and the next poll starts at once. Polls and replays thus alternate and see the same broker state
(the broker's speed drifts by tens of percent over minutes, so replaying after the polls would
not compare like with like); "broker alone" is the longest chain's sum of curl `time_total`.
When a poll overran the interval, the next one starts at once and there is no idle moment to
freeze the sidecar in: that replay is skipped (the sidecar, found mid-poll, is resumed within
milliseconds) and made after the sidecar has stopped instead (counted as "after them").
Poll wall time is the median of `rabbitmq_watch_poll_duration_seconds` over those polls
(`rabbitmq_watch_endpoint_duration_seconds` per endpoint); the target uses the median of the
per-poll ratios (poll / replay just before it). CPU is utime+stime from `/proc/PID/stat` from the
scrape of poll 1 to the scrape of the last poll: exactly {polls} polls, their encodings and one
scrape each. RSS is `VmRSS`/`VmHWM` from `/proc/PID/status` after the polls and after wrk, and VmRSS sampled
every 0.2 s throughout (the kernel updates VmHWM lazily, so it can lag the true peak).
Bytes per poll is the sum of `rabbitmq_watch_endpoint_response_bytes` (the replay's
`size_download` is shown beside it as a check), compared with a plain full `GET /api/queues`
(no parameters, timed after the sidecar has stopped). `wrk -t2 -c16 -d15s --latency` scrapes
`/metrics` while the sidecar keeps polling every 15 s (after 5 s of `wrk -t1 -c1` for the latency
of one scraper alone); wrk, the broker and the sidecar share the machine's cores. MB = 10^6
bytes."""


def cmd_render(results_dir, out_path, wanted):
    results = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        # Only N.json: soak.json and scale-soak.json live here too, with other shapes.
        if not re.fullmatch(r"[0-9]+\.json", os.path.basename(path)):
            continue
        try:
            results.append(json.load(open(path)))
        except (OSError, ValueError) as e:
            print(f"report: skipping {path}: {e}", file=sys.stderr)
    results.sort(key=lambda r: r["n"])
    if not results:
        print("report: no results", file=sys.stderr)
        return 1
    latest = max(results, key=lambda r: r["meta"].get("date", ""))
    m = latest["meta"]
    doc = ["# rabbitmq-watch benchmark results", ""]
    doc.append("Generated by `bench/run.sh` (see `bench/README.md`); each table says when it was taken. "
               "Raw data of each run: `bench/results/raw-N/` (gitignored: only on the machine that ran it), figures: `bench/results/N.json`.")
    doc.append("")
    doc.append("## Machine")
    doc.append("")
    doc.append(md_table(["", ""], [
        ("CPU", f"{m.get('cpu_model', '?')}, {m.get('nproc', '?')} cores (nproc)"),
        ("memory", f"{int(m['mem_total_kb']) / 1024 / 1024:.1f} GiB (MemTotal)" if m.get("mem_total_kb") else "?"),
        ("RabbitMQ", f"{latest.get('rabbitmq_version', '?')} (Erlang {latest.get('erlang_version', '?')}), one node on the same machine"),
    ]))
    doc.append("")
    doc.append("The broker, the load generator, the sidecar and wrk share these cores, and other RabbitMQ "
               "nodes (e.g. test suites) may be running at the same time: each table lists the load average "
               "and how many other `beam.smp` processes ran when it was taken.")
    doc.append("")
    doc.append("## Method")
    doc.append("")
    doc.append(METHOD.format(vhosts=m.get("vhosts", 10), messages=m.get("messages_per_queue", 5),
                             prefetch=m.get("prefetch", 2), every=m.get("consumer_every", 10),
                             polls=m.get("polls", 5)))
    doc.append("")
    for res in results:
        rm = res["meta"]
        doc.append(f"## {res['n']:,} queues")
        doc.append("")
        bt = res.get("broker_totals", {})
        doc.append(
            f"Taken {rm.get('date', '?')}, sidecar built {rm.get('sidecar_built', '?')} from commit {rm.get('sidecar_commit', '?')}"
            + (f" plus uncommitted changes in {rm.get('sidecar_dirty')} file(s) of src/, Cargo.toml, Cargo.lock" if rm.get("sidecar_dirty") not in (None, "0") else "")
            + f"; RabbitMQ {res.get('rabbitmq_version', '?')}. Broker state: {bt.get('queues')} queues, "
            f"{bt.get('messages')} messages ({bt.get('messages_unacknowledged')} unacknowledged), "
            f"{bt.get('consumers')} consumers. Load average before: {rm.get('loadavg_before', '?')}; other "
            f"`beam.smp` processes: {rm.get('other_beam_processes', '?')}. Polls counted by: {rm.get('poll_detection', '?')}. "
            f"Every measured poll up: {'yes' if res.get('all_polls_up') else '**no**'}. "
            f"Poll 2 made the same requests as poll 1 (replayed): {'yes' if rm.get('requests_poll2_same') == '1' else '**no**'}. "
            f"Whole run: {rm.get('run_seconds', '?')} s. Sidecar `poll.interval` {rm.get('interval_s', '?')} s, "
            f"`rabbitmq.timeout` {rm.get('timeout_s', '?')} s; bench niceness {rm.get('nice', '0')}."
            + (f" Allocator settings: `{rm.get('malloc_env').strip()}`." if (rm.get("malloc_env") or "").strip() else "")
            + (f" Extra sidecar settings: `{rm.get('sidecar_env').strip()}`." if (rm.get("sidecar_env") or "").strip() else "")
        )
        rest = (res.get("machine_cpu_cores") or {}).get("everything_else")
        if rest is not None and rest > 0.3:
            doc.append("")
            doc.append(f"**Other load:** processes outside this benchmark (or its curl replays) kept {rest:.2f} of "
                       f"{rm.get('nproc', '?')} cores busy on average during the polls; the timings of this table "
                       "are disturbed by it. Re-run on a quiet machine for final figures.")
        if res.get("broker", {}).get("unexpected"):
            doc.append("")
            doc.append(f"**Replay anomalies:** {', '.join(res['broker']['unexpected'])}")
        doc.append("")
        doc.append(md_table(["measure", "value"], table(res)))
        doc.append("")
    doc.append(f"## Targets at {TARGET_N:,} queues")
    doc.append("")
    at = [r for r in results if r["n"] == TARGET_N]
    if at:
        doc.append(md_table(["target", "measured", "verdict"], targets(at[0])))
        doc.append("")
        doc.append("Each poll is compared with curl replaying the same requests, in the same shape, "
                   "against the same broker state seconds before it. The broker's answer times still vary "
                   "from run to run (see the poll times and the replay runs in the table above), so a ratio "
                   "within a few percent of the limit is noise; the per-run figures are in "
                   f"`bench/results/{TARGET_N}.json`.")
    else:
        doc.append(f"Not measured yet: run `bench/run.sh {TARGET_N}`.")
    doc.append("")
    large = [r for r in results if r["n"] == LARGE_N]
    if large:
        doc.append(f"## Targets at {LARGE_N:,} queues")
        doc.append("")
        doc.append(md_table(["target", "measured", "verdict"], targets_large(large[0])))
        doc.append("")
    # The soak at 10,000 queues (bench/SCALE_SOAK.md, written by bench/scale_soak.sh).
    soak = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SCALE_SOAK.md")
    if os.path.exists(soak):
        with open(soak) as f:
            doc.append(f.read().rstrip())
        doc.append("")
    # The hand-written analysis at 100,000 queues and of the soak (bench/SCALE.md), kept across runs.
    scale = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SCALE.md")
    if os.path.exists(scale):
        with open(scale) as f:
            doc.append(f.read().rstrip())
        doc.append("")
    # The hand-written analysis of the misses (bench/ANALYSIS.md), kept across runs.
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ANALYSIS.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            doc.append(f.read().rstrip())
        doc.append("")
    # Both figure sources on RabbitMQ 4.0.5 (bench/SOURCES.md, written by bench/sources.sh).
    sources = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SOURCES.md")
    if os.path.exists(sources):
        with open(sources) as f:
            doc.append(f.read().rstrip())
        doc.append("")
    doc.append("## Reference figures (not measured here)")
    doc.append("")
    doc.append("From `shared/REFERENCE.md`, \"Measured cost on this machine, 10,000 queues (median of 5)\", "
               "taken earlier on this kind of machine (Debian 12, RabbitMQ 3.10.8). They are for comparison "
               "only; this harness did not produce them.")
    doc.append("")
    doc.append(md_table(["request", "time", "bytes"], REFERENCE_ROWS))
    doc.append("")
    open(out_path, "w").write("\n".join(doc))

    for res in results:
        if wanted and str(res["n"]) not in wanted:
            continue
        print(f"\n== {res['n']} queues ({res['meta'].get('date', '?')}) ==")
        rows = table(res)
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k.ljust(width)}  {v}")
        if res["n"] == LARGE_N:
            print(f"\n-- targets at {LARGE_N} queues --")
            for t, v, verdict in targets_large(res):
                print(f"{t}: {v}: {verdict.replace('**', '')}")
        if res["n"] == TARGET_N:
            print(f"\n-- targets at {TARGET_N} queues --")
            for t, v, verdict in targets(res):
                print(f"{t}: {v}: {verdict.replace('**', '')}")
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "requests":
        return cmd_requests(argv[1], argv[2])
    if len(argv) == 3 and argv[0] == "collect":
        return cmd_collect(argv[1], argv[2])
    if len(argv) >= 3 and argv[0] == "render":
        return cmd_render(argv[1], argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
