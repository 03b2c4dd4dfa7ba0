#!/usr/bin/env python3
"""Medians and ratios from the per-bench CSVs of one `bench/run.sh` run.

    bench/summarize.py RESULTS_DIR

Reads RESULTS_DIR/{wsh,iomux,lifecycle,scaling,wardend}.csv (whichever exist;
all but scaling.csv are case,run,value,unit), wsh-hyperfine.json, machine.env and
load.csv.
Writes summary.csv, README-table.md and, when matplotlib is importable,
exec-latency.png, lifecycle.png, throughput.png and scaling.png; prints the
table on stdout.
"""

import csv
import json
import os
import statistics
import sys

RES = sys.argv[1] if len(sys.argv) > 1 else "bench/results"


def path(name):
    return os.path.join(RES, name)


def read_long(name):
    """case -> (unit, [values]) from a case,run,value,unit file."""
    out = {}
    if not os.path.exists(path(name)):
        return out
    with open(path(name)) as f:
        for row in csv.DictReader(f):
            try:
                v = float(row["value"])
            except (KeyError, ValueError):
                continue
            out.setdefault(row["case"], (row["unit"], []))[1].append(v)
    return out


def read_scaling():
    """(xs, {column: ys}) from scaling.csv (n,create_ms,...: one row per
    container): x is the first column naming a count, ys every *_ms column."""
    if not os.path.exists(path("scaling.csv")):
        return [], {}
    with open(path("scaling.csv")) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return [], {}
    cols = list(rows[0].keys())
    xkeys = ("n", "live", "containers", "count")
    x = next((c for k in xkeys for c in cols if c.lower() == k), cols[0])
    ycols = [c for c in cols if c != x and c.lower().endswith("ms")]
    xs, ys = [], {c: [] for c in ycols}
    for r in rows:
        try:
            vals = [float(r[c]) for c in [x] + ycols]
        except (TypeError, ValueError):
            continue
        xs.append(vals[0])
        for c, v in zip(ycols, vals[1:]):
            ys[c].append(v)
    return xs, ys


def machine():
    m = {}
    if os.path.exists(path("machine.env")):
        for line in open(path("machine.env")):
            k, _, v = line.rstrip("\n").partition("=")
            m[k] = v
    return m


def load_during(cpus):
    """' 1-minute load during the run: min / median / max.' from load.csv,
    and whether the machine was busy with more than the benchmarks (a median
    load above its cpu count)."""
    try:
        with open(path("load.csv")) as f:
            loads = [float(r["load1"]) for r in csv.DictReader(f)]
    except (OSError, KeyError, ValueError):
        return ""
    if not loads:
        return ""
    median = statistics.median(loads)
    busy = cpus is not None and median > cpus
    return (" 1-minute load during the run (every 5 s): min %.2f, median %.2f, max %.2f. %s"
            % (min(loads), median, max(loads),
               "The machine was shared with other work, so the numbers are noisy."
               if busy else "The machine ran little else (median load at most its cpu count)."))


def fmt(v):
    if v is None:
        return ""
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.3g" % v


wsh = read_long("wsh.csv")
iomux = read_long("iomux.csv")
life = read_long("lifecycle.csv")
wardend = read_long("wardend.csv")
scale_x, scale_y = read_scaling()
scaling = bool(scale_x)
rows = []  # (group, measure, median, unit, ratio, relative_to, runs)


def med(data, case):
    if case not in data:
        return None, None, 0
    unit, vals = data[case]
    return statistics.median(vals), unit, len(vals)


def add(group, label, data, case, ref_case=None, ref_label=""):
    m, unit, n = med(data, case)
    if m is None:
        return
    ratio = None
    if ref_case:
        r, _, _ = med(data, ref_case)
        if r:
            ratio = m / r
    rows.append((group, label, m, unit, ratio, ref_label if ratio is not None else "", n))


ref = "bare fork/exec"
add("exec round trip", "wsh /bin/true", wsh, "exec_wsh", "exec_bare", ref)
add("confinement", "wsh /bin/true, confined (interleaved)", wsh, "exec_wsh_confined", "exec_wsh_unconfined", "unconfined")
add("confinement", "wsh /bin/true, unconfined (interleaved)", wsh, "exec_wsh_unconfined", "exec_wsh_unconfined", "unconfined")
add("exec round trip", "nsenter /bin/true (same container)", wsh, "exec_nsenter", "exec_bare", ref)
add("exec round trip", "runc exec /bin/true", wsh, "exec_runc", "exec_bare", ref)
add("exec round trip", "bare fork/exec /bin/true", wsh, "exec_bare", "exec_bare", ref)
for case in sorted(wsh):
    if case.startswith("output_plain_pipe"):
        size = case.rsplit("_", 1)[1]
        add("output", "plain pipe (dd %s)" % size, wsh, case, case, "plain pipe")
        add("output", "through wsh (dd %s)" % size, wsh, "output_wsh_" + size, case, "plain pipe")
add("output", "plain pipe (1 GiB)", iomux, "output_plain_pipe_1GiB", "output_plain_pipe_1GiB", "plain pipe")
add("output", "iomux, 1 link (1 GiB)", iomux, "output_iomux_1_link_1GiB", "output_plain_pipe_1GiB", "plain pipe")
add("output", "iomux, 100 links (aggregate)", iomux, "output_iomux_100_links_aggregate", "output_plain_pipe_1GiB", "plain pipe")
add("output", "iomux links that fell behind (of 100)", iomux, "failed_links_of_100")
add("lifecycle", "wardenctl create + first run", life, "warden_start", "runc_run", "runc run")
add("lifecycle", "create + first run, unconfined", life, "warden_start_unconfined", "runc_run", "runc run")
add("confinement", "create + first run, confined vs unconfined", life, "warden_start", "warden_start_unconfined", "unconfined")
add("lifecycle", "wardenctl destroy", life, "warden_destroy", "runc_run", "runc run")
add("lifecycle", "create + first run + destroy", life, "warden_cycle", "runc_run", "runc run")
add("lifecycle", "runc run /bin/true", life, "runc_run", "runc_run", "runc run")
SCALE_LABELS = {"create_ms": "create", "limits_ms": "limits (memory, cpu, bandwidth, net-in/out)",
                "total_ms": "create + limits"}
for col, ys in scale_y.items():
    if col not in ("create_ms", "total_ms"):
        continue
    k = max(1, len(ys) // 10)
    h, t = statistics.median(ys[:k]), statistics.median(ys[-k:])
    label = SCALE_LABELS.get(col, col)
    rows.append(("scaling", "%s, containers 1-%d" % (label, int(scale_x[k - 1])), h, "ms", 1.0,
                 "first containers", k))
    rows.append(("scaling", "%s, containers %d-%d" % (label, int(scale_x[-k]), int(scale_x[-1])),
                 t, "ms", t / h if h else None, "first containers", k))
add("wardend", "ping, 1 client (requests/s)", wardend, "ping_1_client", "ping_1_client", "1 client")
add("wardend", "ping, 64 clients (requests/s)", wardend, "ping_64_clients", "ping_1_client", "1 client")
add("wardend", "run /bin/true through wardend (target <= 2x wsh)", wardend, "run_wardend", "run_wsh",
    "wsh straight to wshd")
add("wardend", "run /bin/true through wardend (target <= 0.5x)", wardend, "run_wardend", "run_wardenctl",
    "wardenctl run")
add("wardend", "wardenctl run H -- /bin/true", wardend, "run_wardenctl", "run_wsh", "wsh straight to wshd")
add("wardend", "wsh /bin/true straight to wshd (interleaved)", wardend, "run_wsh", "run_wsh",
    "wsh straight to wshd")
add("wardend", "spawn /bin/true through wardend (job start)", wardend, "spawn_wardend", "run_wardend",
    "run through wardend")
add("wardend", "info through wardend (in every run reply)", wardend, "info_wardend", "run_wardend",
    "run through wardend")
add("memory", "wshd RSS, idle container", wsh, "rss_wshd_idle")
add("memory", "iomux-spawn peak RSS, 100 links", iomux, "rss_iomux_spawn_100_links")
add("memory", "wardend RSS, idle", wardend, "rss_wardend_idle", "rss_wardend_idle", "idle")
for case in sorted(wardend, key=lambda c: (not c.endswith("_containers"), c)):
    parts = case.split("_")
    if case.startswith("rss_wardend_") and parts[-1] in ("containers", "streams") and parts[2].isdigit():
        what = "containers" if parts[-1] == "containers" else "open streams"
        add("memory", "wardend RSS, %s %s" % (parts[2], what), wardend, case, "rss_wardend_idle", "idle")
        if parts[-1] == "streams":
            add("memory", "wardend threads, %s open streams" % parts[2], wardend,
                "threads_wardend_%s_streams" % parts[2])
add("memory", "job recorder RSS (a process per job)", wardend, "rss_recorder_per_job")

with open(path("summary.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["group", "measure", "median", "unit", "ratio", "relative_to", "runs"])
    for g, l, m, u, r, rl, n in rows:
        w.writerow([g, l, "%.4g" % m, u, "" if r is None else "%.2f" % r, rl, n])

mach = machine()
header = ("group", "measure", "median", "unit", "ratio", "relative to", "runs")
table = [header] + [(g, l, fmt(m), u, "" if r is None else "%.2f" % r, rl, str(n))
                    for g, l, m, u, r, rl, n in rows]
widths = [max(len(r[i]) for r in table) for i in range(len(header))]
for r in table:
    print("  ".join(c.ljust(widths[i]) if i < 2 or i == 5 else c.rjust(widths[i])
                    for i, c in enumerate(r)))

with open(path("README-table.md"), "w") as f:
    f.write("# Benchmark results\n\n")
    f.write("Medians of one `make bench` run (%s mode); ratio = median / the "
            "median of the row named in *relative to*.\n\n" % mach.get("mode", "?"))
    f.write("| " + " | ".join(header) + " |\n")
    f.write("|---|---|---:|---|---:|---|---:|\n")
    for r in table[1:]:
        f.write("| " + " | ".join(r) + " |\n")
    f.write("\nMachine: %s cpus, %s; kernel %s; %s; commit %s.\n"
            % (mach.get("nproc", "?"), mach.get("cpu", "?"), mach.get("kernel", "?"),
               mach.get("date", "?"), mach.get("commit", "?")))
    try:
        cpus = int(mach.get("nproc", ""))
    except ValueError:
        cpus = None
    f.write("Load average (1, 5, 15 min) at start: %s; at end: %s.%s\n"
            % (mach.get("load_start", "?"), mach.get("load_end", "?"), load_during(cpus)))
    f.write("\nOutput through wsh can beat its plain pipe (`dd bs=1M | cat`): wsh "
            "widens the process's stdout pipe to 1 MiB, so dd's 1 MiB writes take fewer "
            "wake-ups than in a default 64 KiB pipe. The iomux rows use `head -c 1G "
            "/dev/zero | cat` as their pipe.\n")
    if wardend:
        f.write("\nwardend's targets: `run /bin/true` through wardend within 2x the direct "
                "`wsh /bin/true` round trip and at most 0.5x `wardenctl run`; the three are "
                "timed alike (fork/exec/wait, or one request on an open connection) in "
                "interleaved batches. The spawn and info rows show where a run's time goes.\n")
    data_files = [n for n in ("wsh.csv", "wsh-hyperfine.json", "iomux.csv", "lifecycle.csv",
                              "scaling.csv", "wardend.csv") if os.path.exists(path(n))]
    f.write("\nPer-run data: %s. Plots: exec-latency.png, throughput.png, lifecycle.png%s.\n"
            % (", ".join(data_files), ", scaling.png" if scaling else ""))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is missing (apt-get install python3-matplotlib): no plots", file=sys.stderr)
    sys.exit(0)

subtitle = "%s cpus, load %s at start" % (mach.get("nproc", "?"), mach.get("load_start", "?"))

if os.path.exists(path("wsh-hyperfine.json")):
    res = json.load(open(path("wsh-hyperfine.json")))["results"]
    names = [r["command"] for r in res]
    data = [[t * 1000 for t in r["times"]] for r in res]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.violinplot(data, showmedians=False, showextrema=False)
    ax.boxplot(data, widths=0.15, showfliers=False)
    for i, d in enumerate(data, 1):
        ax.scatter([i] * len(d), d, s=2, alpha=0.3, color="black")
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel("round trip, ms (log scale)")
    ax.set_title("Exec round trip, %d runs each (%s)" % (len(data[0]), subtitle))
    fig.tight_layout()
    fig.savefig(path("exec-latency.png"), dpi=100)

if life:
    cases = [c for c in ("warden_start", "warden_destroy", "runc_run") if c in life]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.boxplot([life[c][1] for c in cases], showfliers=True)
    ax.set_xticks(range(1, len(cases) + 1),
                  ["wardenctl create\n+ first run", "wardenctl destroy", "runc run"][: len(cases)]
                  if cases == ["warden_start", "warden_destroy", "runc_run"] else cases)
    ax.set_ylabel("ms")
    ax.set_title("Container lifecycle, %d runs (%s)" % (len(life[cases[0]][1]), subtitle))
    fig.tight_layout()
    fig.savefig(path("lifecycle.png"), dpi=100)

tp = [(l, med(d, c)[0], d[c][1]) for l, d, c in (
    ("pipe (dd)", wsh, next((c for c in wsh if c.startswith("output_plain_pipe")), "")),
    ("wsh", wsh, next((c for c in wsh if c.startswith("output_wsh")), "")),
    ("pipe (head)", iomux, "output_plain_pipe_1GiB"),
    ("iomux 1 link", iomux, "output_iomux_1_link_1GiB"),
    ("iomux 100 links\n(aggregate)", iomux, "output_iomux_100_links_aggregate")) if c in d]
if tp:
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.bar(range(len(tp)), [m for _, m, _ in tp], color="lightsteelblue")
    for i, (_, _, vals) in enumerate(tp):
        ax.scatter([i] * len(vals), vals, s=8, color="black")
    ax.set_xticks(range(len(tp)), [l for l, _, _ in tp])
    ax.set_ylabel("GB/s (bar: median, dots: runs)")
    ax.set_title("Output throughput (%s)" % subtitle)
    fig.tight_layout()
    fig.savefig(path("throughput.png"), dpi=100)

if scaling:
    fig, ax = plt.subplots(figsize=(8, 5))
    k = max(1, len(scale_x) // 20)
    for col, ys in scale_y.items():
        line, = ax.plot(scale_x, ys, ".", alpha=0.5, label=SCALE_LABELS.get(col, col))
        roll = [statistics.median(ys[max(0, i - k):i + k + 1]) for i in range(len(ys))]
        ax.plot(scale_x, roll, "-", color=line.get_color())
    ax.set_xlabel("live containers (this one included)")
    ax.set_ylabel("ms (dots: each container; line: running median)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title("wardenctl create as live containers grow (%s)" % subtitle)
    fig.tight_layout()
    fig.savefig(path("scaling.png"), dpi=100)
