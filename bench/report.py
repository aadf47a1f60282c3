#!/usr/bin/env python3
"""The figures of record of `make bench`: JSON results and their chart.

usage:
  report.py record --name NAME --work DIR --out FILE ...   (called by bench/lib.sh)
  report.py chart [RESULTS_DIR]                            (draws RESULTS_DIR/chart.svg)

`record` reads the rows and timings a bench script collected under DIR (see
bench/lib.sh), prints them as a table and writes them as one JSON file: for each case
and tool, the median wall time, every round, the peak RSS, and the floor measured in
the same run with the ratio to it. `chart` draws every results file of RESULTS_DIR
(default bench/results) as bars, one group per case: each tool against its floor.
Python's standard library only.
"""

import argparse
import datetime
import glob
import json
import os
import statistics
import sys
from xml.sax.saxutils import escape


def rounds_of(work, key):
    """Each round of KEY as (wall s, peak RSS KiB, user s, sys s)."""
    with open(os.path.join(work, "times", key)) as f:
        return [tuple(float(x) for x in line.split()) for line in f if line.strip()]


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / 1048576)}


def time_row(work, case, tool, key, floor_key, floor_label):
    runs = rounds_of(work, key)
    row = {
        "case": case,
        "tool": tool,
        "median_s": round(statistics.median(r[0] for r in runs), 3),
        "rounds_s": [r[0] for r in runs],
        "cpu_median_s": round(statistics.median(r[2] + r[3] for r in runs), 2),
        "peak_rss_mib": round(max(r[1] for r in runs) / 1024, 1),
        "floor": None,
        "floor_median_s": None,
        "floor_rounds_s": None,
        "ratio": None,
    }
    if floor_key:
        floor = [r[0] for r in rounds_of(work, floor_key)]
        row["floor"] = floor_label
        row["floor_median_s"] = round(statistics.median(floor), 3)
        row["floor_rounds_s"] = floor
        if row["floor_median_s"] > 0:
            row["ratio"] = round(row["median_s"] / row["floor_median_s"], 3)
    return row


def record(args):
    meta = {
        "script": args.name,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": args.commit,
        **machine(),
        "load_before": args.load_before,
        "load_after": args.load_after,
        "runs": args.runs,
        "filesystem": args.filesystem,
        "of_record": args.record == "1",
        "script_seconds": args.seconds,
    }
    results, values = [], []
    with open(os.path.join(args.work, "rows")) as f:
        for line in f:
            kind, *fields = line.rstrip("\n").split("\t")
            if kind == "time":
                results.append(time_row(args.work, *fields))
            else:
                case, tool, value, unit = fields[:4]
                values.append({"case": case, "tool": tool, "value": float(value), "unit": unit})
    for row in results + values:
        row.update(date=meta["date"], commit=meta["commit"], nproc=meta["nproc"])
    with open(os.path.join(args.work, "notes")) as f:
        notes = [l.rstrip("\n") for l in f if l.strip()]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({**meta, "results": results, "values": values, "notes": notes}, f, indent=2)
        f.write("\n")
    print_table(meta, results, values, notes)


def print_table(meta, results, values, notes):
    record_word = "of record" if meta["of_record"] else "NOT of record (RECORD=1 not set)"
    print(f"\n{meta['script']}: {meta['commit']}, {meta['nproc']} cores, {meta['cpu']}, "
          f"{meta['filesystem']}, median of {meta['runs']} interleaved rounds, load {meta['load_before']} -> "
          f"{meta['load_after']}; {record_word}")
    print(f"{'case':<52} {'tool':<30} {'median':>9} {'floor':>9} {'ratio':>7} {'peak RSS':>10}  rounds")
    for r in results:
        floor = f"{r['floor_median_s']:.2f} s" if r["floor"] else ""
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        rounds = " ".join(f"{s:.2f}" for s in r["rounds_s"])
        print(f"{r['case']:<52} {r['tool']:<30} {r['median_s']:>7.2f} s {floor:>9} {ratio:>7} "
              f"{r['peak_rss_mib']:>6.0f} MiB  {rounds}")
        if r["floor"]:
            print(f"{'':<52}   floor: {r['floor']}")
    for v in values:
        print(f"{v['case']:<52} {v['tool']:<30} {v['value']:>12g} {v['unit']}")
    for n in notes:
        print(n)


# The chart: one group of bars per case, each group on its own scale (cases run from
# hundredths of a second to tens of seconds), the seconds written beside each bar.
COLOURS = {"pkgr": "#1f77b4", "floor": "#9e9e9e"}
PEERS = ["#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
BAR, GAP, LABEL_W, PLOT_W, WIDTH = 16, 14, 390, 380, 920


def bars_of(results):
    """[(case title, [(tool, seconds, colour)])] in the order of the results."""
    groups, peers = {}, {}
    for r in results:
        title = f"{r['case']} ({r['script']})"
        bars = groups.setdefault(title, [])
        if r["floor"] and not any(b[0].startswith("floor") for b in bars):
            bars.append((f"floor: {r['floor']}", r["floor_median_s"], COLOURS["floor"], ""))
        tool = r["tool"]
        colour = COLOURS["pkgr"] if tool.startswith("pkgr") else peers.setdefault(
            tool.split()[0], PEERS[len(peers) % len(PEERS)])
        ratio = f" ({r['ratio']:.2f}x floor)" if r["ratio"] is not None else ""
        bars.append((tool, r["median_s"], colour, ratio))
    # The floor last in each group, under the tools measured against it.
    return [(t, sorted(b, key=lambda x: x[0].startswith("floor"))) for t, b in groups.items()]


def chart(results_dir):
    files = sorted(glob.glob(os.path.join(results_dir, "*.json")))
    results, stamps, all_of_record = [], [], True
    for path in files:
        with open(path) as f:
            data = json.load(f)
        for r in data["results"]:
            results.append({**r, "script": data["script"]})
        record_word = "of record" if data["of_record"] else "not of record"
        all_of_record = all_of_record and data["of_record"]
        stamps.append(f"{data['script']}: {data['date']}, {data['commit']}, "
                      f"{data['nproc']} cores, {data['filesystem']}, load {data['load_before']}, "
                      f"{record_word}")
    groups = bars_of(results)
    quiet = all_of_record and files
    height = 66 + sum(34 + len(b) * (BAR + 4) + GAP for _, b in groups) + 16 * len(stamps)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           '<text x="10" y="22" font-size="15" font-weight="bold">make bench: median wall time '
           'of each tool against its floor (grey); each case on its own scale</text>',
           f'<text x="10" y="40" fill="#a00">{"" if quiet else "NOT of record (run without RECORD=1)"}'
           '</text>']
    y = 56
    for title, bars in groups:
        out.append(f'<text x="10" y="{y + 12}" font-weight="bold">{escape(title)}</text>')
        y += 22
        top = max(b[1] for b in bars) or 1
        for tool, seconds, colour, ratio in bars:
            w = max(1, PLOT_W * seconds / top)
            out.append(f'<text x="{LABEL_W - 6}" y="{y + BAR - 4}" text-anchor="end">'
                       f'{escape(tool[:62])}</text>')
            out.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR}" fill="{colour}"/>')
            out.append(f'<text x="{LABEL_W + w + 4:.1f}" y="{y + BAR - 4}">{seconds:.2f} s{ratio}</text>')
            y += BAR + 4
        y += GAP + 12
    for stamp in stamps:
        out.append(f'<text x="10" y="{y}" font-size="10" fill="#555">{escape(stamp)}</text>')
        y += 16
    out.append("</svg>")
    path = os.path.join(results_dir, "chart.svg")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"chart: {path} ({len(groups)} cases from {len(files)} files)")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "chart":
        chart(sys.argv[2] if len(sys.argv) > 2 else "bench/results")
        return
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["record"])
    for opt in ["name", "work", "out", "commit", "load-before", "load-after", "record",
                "filesystem"]:
        p.add_argument(f"--{opt}", required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--seconds", type=int, required=True)
    record(p.parse_args())


if __name__ == "__main__":
    main()
