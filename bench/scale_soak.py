#!/usr/bin/env python3
"""Figures of bench/scale_soak.sh (standard library only).

  scale_soak.py RAWDIR OUT.json OUT.md

RAWDIR holds meta.env, samples.txt ("EPOCH VmRSS_kB VmHWM_kB SIDECAR_TICKS BEAM_TICKS" every
few seconds), scrapes.txt ("EPOCH KIND TIME_S BYTES CODE TICKS_BEFORE TICKS_AFTER RSS_KB"),
metrics/T.txt (the sidecar's own series at second T), alert-counts.txt and sidecar.log.
"""

import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import ANSI, log_epoch, median, parse_metrics, read_env  # noqa: E402

SERIES = re.compile(r'^(\w+)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def own_series(path):
    """{(name, frozenset(labels)): value} of one scrape's kept lines."""
    out = {}
    for line in open(path, errors="replace"):
        m = SERIES.match(line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[(m.group(1), frozenset(LABEL.findall(m.group(2) or "")))] = v
    return out


def interp(samples, t):
    """Linear interpolation of [(t, v)] at t, None outside."""
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


def slope_per_hour(points):
    """Least-squares slope of [(t_s, y)] in y per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return None if den == 0 else sum((t - mt) * (y - my) for t, y in points) / den * 3600


def main(raw, out_json, out_md):
    meta = read_env(os.path.join(raw, "meta.env"))
    clk = float(meta.get("clk_tck", 100))
    start = float(meta["start"])
    interval = float(meta["interval_s"])

    samples = []  # (t_rel, rss_kb, hwm_kb, sidecar_ticks, beam_ticks)
    for line in open(os.path.join(raw, "samples.txt")):
        p = line.split()
        if len(p) == 5 and all(x.replace(".", "", 1).isdigit() for x in p):
            samples.append((float(p[0]) - start, int(p[1]), int(p[2]), int(p[3]), int(p[4])))
    side = [(s[0], s[3]) for s in samples]
    beam = [(s[0], s[4]) for s in samples]

    # Polls, from the sidecar's log.
    polls = []
    for line in open(os.path.join(raw, "sidecar.log"), errors="replace"):
        line = ANSI.sub("", line)
        m = re.search(r"poll finished.*?seq=(\d+).*?up=(\w+).*?duration_ms=(\d+)", line)
        end = log_epoch(line) if m else None
        if m and end is not None:
            d = int(m.group(3)) / 1000
            polls.append({"seq": int(m.group(1)), "up": m.group(2) == "true",
                          "end": end - start, "start": end - start - d, "duration_s": d})

    # The sidecar's own series over time.
    scrapes = []
    for path in glob.glob(os.path.join(raw, "metrics", "*.txt")):
        t = int(os.path.basename(path)[:-4])
        s = own_series(path)
        alerts = {}
        for (name, labels), v in s.items():
            if name == "rabbitmq_watch_alerts":
                d = dict(labels)
                alerts[f"{d.get('alertname')}/{d.get('state')}"] = int(v)
        get = lambda name, **kw: next((v for (n, l), v in s.items()
                                       if n == name and all((k, x) in l for k, x in kw.items())), None)
        scrapes.append({
            "t": t,
            "up": get("rabbitmq_up"),
            "alerts": {k: v for k, v in sorted(alerts.items()) if v},
            "pending": sum(v for k, v in alerts.items() if k.endswith("/pending")),
            "firing": sum(v for k, v in alerts.items() if k.endswith("/firing")),
            "backlog_complete": get("rabbitmq_watch_backlog_queues", window="complete"),
            "backlog_incomplete": get("rabbitmq_watch_backlog_queues", window="incomplete"),
            "backlog_samples": get("rabbitmq_watch_backlog_samples"),
        })
    scrapes.sort(key=lambda s: s["t"])

    # When every window was complete and the alerts had fired: the first scrape with no
    # incomplete window (and some complete ones) and, for every alert, at least as many firing
    # instances as at any scrape of the run. (A scrape right after a failed poll shows no windows
    # and may show a pending RabbitmqUp-style alert: those do not move this point.)
    t_full = None
    most = {}
    for s in scrapes:
        for k, v in s["alerts"].items():
            if k.endswith("/firing"):
                most[k] = max(most.get(k, 0), v)
    for s in scrapes:
        if (s["backlog_incomplete"] or 0) == 0 and (s["backlog_complete"] or 0) > 0 and \
                all(s["alerts"].get(k, 0) >= v for k, v in most.items()):
            t_full = s["t"]
            break
    if t_full is not None and t_full >= scrapes[-1]["t"]:
        t_full = None  # only the last scrape: not a steady state

    # Scrapes and alerts reads, as timed by curl.
    reads = []
    for line in open(os.path.join(raw, "scrapes.txt")):
        p = line.split()
        if len(p) == 8 and p[2] != "-":
            reads.append({"t": float(p[0]) - start, "kind": p[1], "time_s": float(p[2]), "bytes": int(p[3]),
                          "code": p[4], "cpu_s": (int(p[6]) - int(p[5])) / clk, "rss_kb_after": int(p[7])})
    counts = [json.loads(l) for l in open(os.path.join(raw, "alert-counts.txt"))] \
        if os.path.exists(os.path.join(raw, "alert-counts.txt")) else []

    base_s = float(meta.get("broker_baseline_s", 0) or 0)
    baseline = int(meta["broker_baseline_ticks"]) / clk / base_s if base_s else None

    def phase(lo, hi):
        """Figures of the polls that ended in [lo, hi)."""
        ps = [p for p in polls if lo <= p["end"] < hi]
        out = {"polls": len(ps), "polls_up": sum(p["up"] for p in ps),
               "poll_s_median": median([p["duration_s"] for p in ps]),
               "poll_s_max": max((p["duration_s"] for p in ps), default=None),
               "polls_over_interval": sum(p["duration_s"] > interval for p in ps)}
        if len(ps) >= 2:
            a, b = interp(side, ps[0]["end"]), interp(side, ps[-1]["end"])
            if a is not None and b is not None:
                k = len(ps) - 1
                own = sum(r["cpu_s"] for r in reads if ps[0]["end"] <= r["t"] < ps[-1]["end"])
                out["sidecar_cpu_s_per_poll"] = (b - a) / clk / k
                out["sidecar_cpu_s_per_poll_without_reads"] = ((b - a) / clk - own) / k
        bc, above = [], []
        for p in ps:
            a, b = interp(beam, p["start"]), interp(beam, p["end"])
            if a is not None and b is not None:
                bc.append((b - a) / clk)
                if baseline is not None:
                    above.append((b - a) / clk - baseline * p["duration_s"])
        out["broker_cpu_s_per_poll_median"] = median(bc)
        out["broker_cpu_s_per_poll_above_baseline_median"] = median(above)
        out["broker_cpu_s_per_poll_max"] = max(bc, default=None)
        return out

    end_t = samples[-1][0] if samples else 0
    res = {"meta": meta, "t_full_s": t_full, "duration_s": end_t}
    res["broker_baseline_cores"] = baseline
    res["filling"] = phase(0, t_full if t_full is not None else end_t + 1)
    res["steady"] = phase(t_full, end_t + 1) if t_full is not None else None
    res["final_alerts"] = scrapes[-1]["alerts"] if scrapes else {}
    res["final_backlog"] = {k: scrapes[-1][k] for k in ("backlog_complete", "backlog_incomplete", "backlog_samples")} if scrapes else {}

    rss = [(s[0], s[1]) for s in samples]
    res["rss_kb_max"] = max((v for _, v in rss), default=None)
    res["hwm_kb_end"] = next((int(l.split()[1]) for l in open(os.path.join(raw, "status-end.txt")) if l.startswith("VmHWM:")), None)
    if t_full is not None:
        after = [(t, v) for t, v in rss if t >= t_full]
        res["rss_after_full"] = {
            "first_kb": after[0][1] if after else None, "last_kb": after[-1][1] if after else None,
            "min_kb": min((v for _, v in after), default=None), "max_kb": max((v for _, v in after), default=None),
            "slope_kb_per_hour": slope_per_hour(after), "samples": len(after),
            "first_minute_median_kb": median([v for t, v in after if t < t_full + 60]),
            "last_minute_median_kb": median([v for t, v in after if t >= end_t - 60]),
        }
    # RSS every minute: the last sample of the minute and the minute's max, beside the state.
    table = []
    for m in range(0, int(end_t // 60) + 1):
        inside = [(t, v) for t, v in rss if m * 60 <= t < (m + 1) * 60]
        if not inside:
            continue
        sc = [s for s in scrapes if s["t"] < (m + 1) * 60]
        s = sc[-1] if sc else {}
        table.append({"minute": m + 1, "rss_kb_last": inside[-1][1], "rss_kb_max": max(v for _, v in inside),
                      "pending": s.get("pending"), "firing": s.get("firing"),
                      "backlog_complete": s.get("backlog_complete"), "backlog_samples": s.get("backlog_samples")})
    res["rss_per_minute"] = table

    def reads_of(kind, lo):
        rs = [r for r in reads if r["kind"] == kind and r["t"] >= lo]
        return {"reads": len(rs), "bytes_median": median([r["bytes"] for r in rs]),
                "bytes_max": max((r["bytes"] for r in rs), default=None),
                "time_s_median": median([r["time_s"] for r in rs]),
                "time_s_max": max((r["time_s"] for r in rs), default=None),
                "cpu_s_median": median([r["cpu_s"] for r in rs]),
                "codes": sorted({r["code"] for r in rs})}
    lo = t_full if t_full is not None else 0
    res["metrics_plain"] = reads_of("metrics", lo)
    res["metrics_gzip"] = reads_of("metrics-gzip", lo)
    res["metrics_gzip_text"] = reads_of("metrics-gzip-text", lo)
    res["api_alerts"] = reads_of("alerts", lo)
    # RSS right after each /api/v1/alerts read against the last sample before it.
    bumps = []
    for r in reads:
        if r["kind"] == "alerts":
            before = [v for t, v in rss if t <= r["t"] - r["time_s"]]
            if before:
                bumps.append(r["rss_kb_after"] - before[-1])
    res["api_alerts"]["rss_kb_bump_median"] = median(bumps)
    res["api_alerts"]["rss_kb_bump_max"] = max(bumps, default=None)
    res["alert_counts"] = counts
    json.dump(res, open(out_json, "w"), indent=2, sort_keys=True)

    mb = lambda kb: "n/a" if kb is None else f"{kb * 1024 / 1e6:.1f} MB"
    fs = lambda x, d=3: "n/a" if x is None else f"{x:.{d}f} s"
    st = res["steady"] or {}
    fl = res["filling"]
    doc = ["## Soak at 10,000 queues (`bench/scale_soak.sh`)" if meta.get("n") == "10000"
           else f"## Soak at {int(meta.get('n', 0)):,} queues (`bench/scale_soak.sh`)", ""]
    doc.append(
        f"Taken {meta.get('date')}, sidecar from commit {meta.get('sidecar_commit')}"
        + (f" plus uncommitted changes in {meta.get('sidecar_dirty')} file(s)" if meta.get("sidecar_dirty") not in (None, "0") else "")
        + (f", glibc allocator settings `{meta.get('malloc_env').strip()}`" if (meta.get("malloc_env") or "").strip() else ", glibc's default allocator settings")
        + f", release build, default configuration except `alerting.backlog.window: {meta.get('window')}` "
        f"(default 10m, shortened so the soak fits), `poll.interval` {meta.get('interval_s')} s, "
        f"`rabbitmq.timeout` {meta.get('timeout_s')} s. Load: {meta.get('load_line')}. "
        f"Load average before: {meta.get('loadavg_before')}; other `beam.smp` processes: "
        f"{meta.get('other_beam_processes')}; run under `nice -n {meta.get('nice')}` (shared machine: compare CPU "
        f"times, not wall times). Ran {end_t:.0f} s; RSS and CPU sampled every {meta.get('sample_s')} s, "
        f"`/metrics` scraped every {meta.get('scrape_s')} s (plain, then with Prometheus's headers), "
        f"`/api/v1/alerts` read every {meta.get('alerts_s')} s. Raw data: `bench/results/raw-scale-soak/` "
        "(gitignored); figures: `bench/results/scale-soak.json`.")
    doc.append("")
    doc.append(f"Every window complete and the alert counts final from second **{t_full}** on"
               if t_full is not None else "**The windows never completed or the alert counts never settled.**")
    doc.append(" (the first `/metrics` scrape with `rabbitmq_watch_backlog_queues{window=\"incomplete\"}` 0 and, "
               "for every alert, as many firing instances as it ever had). Final alerts: "
               + ", ".join(f"{k} {v}" for k, v in res["final_alerts"].items()) + ".")
    doc.append("")
    rows = [("polls (ended in the phase) / up / over the interval",
             f"{fl['polls']} / {fl['polls_up']} / {fl['polls_over_interval']}",
             f"{st.get('polls')} / {st.get('polls_up')} / {st.get('polls_over_interval')}"),
            ("poll wall time, median / max", f"{fs(fl['poll_s_median'])} / {fs(fl['poll_s_max'])}",
             f"{fs(st.get('poll_s_median'))} / {fs(st.get('poll_s_max'))}"),
            ("sidecar CPU per poll (all of it / without the soak's own scrapes and alert reads)",
             f"{fs(fl.get('sidecar_cpu_s_per_poll'))} / {fs(fl.get('sidecar_cpu_s_per_poll_without_reads'))}",
             f"{fs(st.get('sidecar_cpu_s_per_poll'))} / {fs(st.get('sidecar_cpu_s_per_poll_without_reads'))}"),
            ("broker CPU per poll (its `beam.smp`, poll start to end, baseline included), median / max",
             f"{fs(fl['broker_cpu_s_per_poll_median'])} / {fs(fl['broker_cpu_s_per_poll_max'])}",
             f"{fs(st.get('broker_cpu_s_per_poll_median'))} / {fs(st.get('broker_cpu_s_per_poll_max'))}"),
            ("broker CPU per poll above its idle baseline (baseline cores × the poll's wall time subtracted), median",
             fs(fl.get("broker_cpu_s_per_poll_above_baseline_median")),
             fs(st.get("broker_cpu_s_per_poll_above_baseline_median")))]
    doc.append("| figure | windows filling | windows complete |")
    doc.append("|---|---|---|")
    doc += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    doc.append("")
    bl = res["broker_baseline_cores"]
    doc.append(f"Broker idle baseline before the sidecar started: {'n/a' if bl is None else f'{bl:.3f}'} cores.")
    doc.append("")
    mp, mg, aa = res["metrics_plain"], res["metrics_gzip"], res["api_alerts"]
    doc.append("| read (windows complete) | size, median (max) | time, median (max) | sidecar CPU per read, median |")
    doc.append("|---|---|---|---|")
    rows = [("`/metrics`, plain text", mp), ("`/metrics`, OpenMetrics + gzip (Prometheus's headers)", mg),
            ("`/metrics`, text format + gzip (`curl --compressed`)", res["metrics_gzip_text"]),
            ("`/api/v1/alerts` (all alerts)", aa)]
    for label, r in [(label, r) for label, r in rows if r["reads"]]:
        doc.append(f"| {label} | {r['bytes_median'] / 1e6 if r['bytes_median'] else 0:.2f} MB "
                   f"({(r['bytes_max'] or 0) / 1e6:.2f} MB) | {fs(r['time_s_median'])} ({fs(r['time_s_max'])}) | "
                   f"{fs(r['cpu_s_median'])} |")
    doc.append("")
    bump = lambda kb: "n/a" if kb is None else f"{kb * 1024 / 1e6:+.1f}"
    doc.append(f"RSS right after each `/api/v1/alerts` read, against the last sample before it: "
               f"median {bump(aa['rss_kb_bump_median'])} MB, max {bump(aa['rss_kb_bump_max'])} MB.")
    doc.append("")
    ra = res.get("rss_after_full")
    if ra:
        sl = ra["slope_kb_per_hour"]
        doc.append(f"**RSS once the windows were complete** ({ra['samples']} samples): first {mb(ra['first_kb'])}, "
                   f"last {mb(ra['last_kb'])}, min {mb(ra['min_kb'])}, max {mb(ra['max_kb'])}; median of the first "
                   f"minute {mb(ra['first_minute_median_kb'])}, of the last minute {mb(ra['last_minute_median_kb'])}; "
                   f"least-squares trend {'n/a' if sl is None else format(sl * 1024 / 1e6, '+.1f') + ' MB per hour'}. "
                   f"Peak over the whole run: {mb(res['rss_kb_max'])} sampled, VmHWM at the end {mb(res['hwm_kb_end'])}.")
        doc.append("")
    # Verdicts against the targets at 10,000 queues (windows complete, ~9,000 alerts).
    def verdict(value, limit):
        if value is None:
            return "not measured"
        if value <= limit:
            return f"**pass** ({(limit - value) / limit * 100:.0f}% under)"
        return f"**miss** ({(value - limit) / limit * 100:.0f}% over)"
    peak_after = (ra or {}).get("max_kb")
    growth = None
    if ra and ra["first_minute_median_kb"] is not None and ra["last_minute_median_kb"] is not None:
        growth = ra["last_minute_median_kb"] - ra["first_minute_median_kb"]
    res["targets"] = targets = [
        ("RSS ≤ 60 MB (peak sampled once the windows were complete)", mb(peak_after),
         verdict(None if peak_after is None else peak_after * 1024 / 1e6, 60.0)),
        ("sidecar CPU per poll ≤ 0.15 s (windows complete, without the soak's own reads)",
         fs(st.get("sidecar_cpu_s_per_poll_without_reads")), verdict(st.get("sidecar_cpu_s_per_poll_without_reads"), 0.15)),
        ("broker CPU per poll ≤ 1.0 s (windows complete, baseline included, median)",
         fs(st.get("broker_cpu_s_per_poll_median")), verdict(st.get("broker_cpu_s_per_poll_median"), 1.0)),
        ("  the same above the broker's idle baseline (median)",
         fs(st.get("broker_cpu_s_per_poll_above_baseline_median")),
         verdict(st.get("broker_cpu_s_per_poll_above_baseline_median"), 1.0)),
        ("no RSS growth once the windows are complete (median of the last minute − of the first)",
         "n/a" if growth is None else f"{growth * 1024 / 1e6:+.1f} MB",
         "not measured" if growth is None else ("**pass**" if growth * 1024 / 1e6 <= 1.0 else "**miss**")
         + " (limit +1 MB: allocator noise)"),
    ]
    json.dump(res, open(out_json, "w"), indent=2, sort_keys=True)
    doc.append("| target (issue #13, at 10,000 queues) | measured | verdict |")
    doc.append("|---|---|---|")
    doc += [f"| {a} | {b} | {c} |" for a, b, c in targets]
    doc.append("")
    doc.append("RSS over time (per minute of the run: the last sample and the minute's peak), with the alert")
    doc.append("instances and the backlog windows the sidecar held at the last scrape of that minute. A 0 in the")
    doc.append("windows columns is a scrape right after a poll whose queue listing failed (timed out on the")
    doc.append("loaded machine): the detector then reports nothing, and its windows and alerts are kept.")
    doc.append("")
    doc.append("| minute | RSS (last) | RSS (peak) | pending | firing | complete windows | backlog samples |")
    doc.append("|---|---|---|---|---|---|---|")
    for r in table:
        f = lambda x: "" if x is None else f"{int(x)}"
        doc.append(f"| {r['minute']} | {mb(r['rss_kb_last'])} | {mb(r['rss_kb_max'])} | {f(r['pending'])} | "
                   f"{f(r['firing'])} | {f(r['backlog_complete'])} | {f(r['backlog_samples'])} |")
    doc.append("")
    open(out_md, "w").write("\n".join(doc))
    print("\n".join(doc))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
