#!/usr/bin/python3
"""Compares CPUs from the benchmark results in results/*.json (Google Benchmark JSON written by `make bench`).

  scripts/report.py [--results DIR] [--out PREFIX]

Writes PREFIX.md (a Markdown table of the headline figures per CPU) and PREFIX.png (a chart), default
PREFIX = results/report. Headline figures, each the median over the run's repetitions:
  - training throughput at batch 128: samples/s on one thread and on all of the run's threads, and per core;
    a whole epoch's samples/s on all threads (shuffle and last partial batch included) where the run has it;
  - efficiency: % of the FMA peak measured in the same run (training at all threads; each GEMM shape at batch 128);
  - elbo's GEMM against the best peer of the same run (OpenBLAS, oneDNN) on the same shapes;
  - the FMA peak per core and the copy bandwidth behind the percentages.
Files named baseline*.json (the regression baseline) are skipped.
"""
import argparse
import glob
import json
import os
import re
import sys

PEERS = ["openblas", "onednn"]  # the GEMM peers' rows: gemm/<peer>/<shape>/b:128
SHAPES = ["enc1.fwd", "dec2.fwd", "enc_heads.fwd", "dec2.dgrad", "enc1.wgrad", "dec2.wgrad", "dec1.wgrad"]


def medians(bench):
    """Row name (without Google Benchmark's /process_time/real_time suffix) -> the median row."""
    rows = {}
    plain = {}
    for b in bench["benchmarks"]:
        name = re.sub(r"/process_time/real_time(_median|_mean|_stddev|_cv)?$", "", b["name"])
        if b.get("aggregate_name") == "median":
            rows[name] = b
        elif b.get("run_type") == "iteration":
            plain.setdefault(name, b)
    for name, b in plain.items():  # runs with one repetition have no aggregates
        rows.setdefault(name, b)
    return rows


def load(path):
    """The headline figures of one results file, or None when it is not an elbo bench result."""
    try:
        with open(path) as f:
            bench = json.load(f)
    except (OSError, ValueError) as e:
        print(f"report: skipping {path}: {e}", file=sys.stderr)
        return None
    if not isinstance(bench, dict):
        return None
    ctx = bench.get("context", {})
    if "cpu_model" not in ctx:
        return None
    rows = medians(bench)
    threads = sorted(int(m.group(1)) for n in rows for m in [re.match(r"train/b:128/t:(\d+)$", n)] if m)
    if not threads:
        return None
    t1, tn = rows["train/b:128/t:1"], rows[f"train/b:128/t:{threads[-1]}"]
    cores = int(ctx.get("cores", threads[-1]))
    stem = os.path.splitext(os.path.basename(path))[0]
    cpu = " ".join(ctx["cpu_model"].split(",")[0].split())  # brand strings may carry runs of padding spaces
    r = {
        "file": os.path.basename(path),
        "cpu": cpu,
        "label": f"{cpu} ({cores} cores, {ctx.get('isa', '?')}) {stem[-8:]}",
        "cores": cores,
        "threads": threads[-1],
        "isa": ctx.get("isa", "?"),
        "peak": float(ctx.get("fma_peak_gflops", "nan")),
        "commit": ctx.get("git_commit", "?"),
        "sps1": t1["samples_per_s"],
        "spsn": tn["samples_per_s"],
        "pct": tn["pct_peak"],
        "copy": rows.get("membw/copy/t:1", {}).get("GB/s"),
        "epoch": next((b["samples_per_s"] for n, b in rows.items()
                       if re.match(rf"epoch/b:128/t:{threads[-1]}(/repeats:\d+)?$", n)), None),
        "gemm": {},
        "ratio": {},
    }
    for s in SHAPES:
        e = rows.get(f"gemm/elbo/{s}/b:128")
        peers = [rows[n]["GFLOP/s"] for n in (f"gemm/{p}/{s}/b:128" for p in PEERS)
                 if n in rows and rows[n].get("GFLOP/s") and not rows[n].get("error_occurred")]
        if e:
            r["gemm"][s] = e["pct_peak"]
            if peers:
                r["ratio"][s] = e["GFLOP/s"] / max(peers)
    return r


def markdown(results):
    """The comparison table in Markdown."""
    out = ["| CPU (cores, ISA) | run | FMA peak/core | train b128, 1 thread | all threads | per core | % of peak |"
           " epoch, all threads | GEMM % of peak (b128: " + ", ".join(SHAPES) + ") | vs best peer (geomean) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratios = list(r["ratio"].values())
        geo = 1.0
        for x in ratios:
            geo *= x
        geo = geo ** (1 / len(ratios)) if ratios else float("nan")
        out.append(
            f"| {r['cpu']} ({r['cores']}, {r['isa']}) | {r['file']} ({r['commit']}) | {r['peak']:.0f} GFLOP/s | "
            f"{r['sps1']:,.0f}/s | {r['spsn']:,.0f}/s ({r['threads']} t) | {r['spsn'] / r['threads']:,.0f}/s | "
            f"{r['pct']:.0f} % | " + (f"{r['epoch']:,.0f}/s" if r["epoch"] else "–") + " | " + " / ".join(f"{r['gemm'].get(s, float('nan')):.0f}" for s in SHAPES) +
            f" | {geo:.2f}× |")
    return "\n".join(out) + "\n"


def chart(results, path):
    """Two panels: training samples/s per core (1 thread, all threads), and GEMM efficiency per shape."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    n = len(results)
    w = 0.8 / max(n, 1)
    for i, r in enumerate(results):
        a.bar([0 + i * w, 1 + i * w], [r["sps1"], r["spsn"] / r["threads"]], w, label=r["label"])
        b.bar([k + i * w for k in range(len(SHAPES))], [r["gemm"].get(s, 0) for s in SHAPES], w, label=r["label"])
    a.set_xticks([k + w * (n - 1) / 2 for k in range(2)])
    a.set_xticklabels(["1 thread", "all threads, per core"])
    a.set_ylabel("training samples/s (784-400-20, batch 128)")
    a.set_title("End-to-end training")
    b.set_xticks([k + w * (n - 1) / 2 for k in range(len(SHAPES))])
    b.set_xticklabels(SHAPES, rotation=20)
    b.set_ylabel("% of the FMA peak measured in the same run")
    b.set_ylim(0, 100)
    b.set_title("GEMM efficiency, batch 128, one thread")
    b.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results")
    p.add_argument("--out", default="results/report")
    a = p.parse_args()
    files = sorted(f for f in glob.glob(os.path.join(a.results, "*.json"))
                   if not os.path.basename(f).startswith("baseline"))
    results = [r for r in (load(f) for f in files) if r]
    if not results:
        print(f"report: no elbo benchmark results in {a.results}/*.json (run `make bench` first)", file=sys.stderr)
        return 2
    table = markdown(results)
    with open(a.out + ".md", "w") as f:
        f.write(table)
    chart(results, a.out + ".png")
    sys.stdout.write(table)
    print(f"report: {a.out}.md, {a.out}.png ({len(results)} result file{'s' if len(results) != 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
