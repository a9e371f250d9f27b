#!/usr/bin/python3
"""bench_check_rates.py - measure the regression check's false-alarm and detection rates (make bench-check-rates).

    /usr/bin/python3 scripts/bench_check_rates.py --runs 20 --slowdown-pct 10 --out-dir DIR

Runs the bench-check subset --runs times with the benchmark as built (unchanged code) and --runs times with
build/bench/elbo_bench_slowdown (every GEMM call --slowdown-pct percent slower: bench/slowdown/gemm_slowdown.c),
alternating, each run's JSON kept in DIR; then judges every run against --baseline as `make bench-check` does and
writes DIR/rates.md: per run, the verdict and the gated rows that failed; the false-alarm rate (unchanged runs
that failed) and the detection rate (slowed runs that failed). With --judge-only the runs already in DIR are
judged again (e.g. under another rule), without benchmarking.
"""

import argparse
import glob
import io
import os
import re
import sys
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_check  # noqa: E402
from gbench import util  # noqa: E402


def judge(baseline, path, args):
    """(failed, the failing lines) of one run's JSON against the baseline under bench_check's rule."""
    out = io.StringIO()
    with redirect_stdout(out):
        failures = bench_check.compare(baseline, util.load_benchmark_results(path), args.filter, args.tolerance,
                                       args.alpha, args.min_repetitions, args.gate, args.gate_geomean,
                                       args.gate_row)
    lines = [l for l in out.getvalue().splitlines()
             if l.startswith(("REGRESSED", "MISSING")) or "geometric mean" in l]
    return (failures is None or failures > 0), lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--slowdown-pct", type=float, default=10.0)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--bench", default="build/bench/elbo_bench")
    ap.add_argument("--slow-bench", default="build/bench/elbo_bench_slowdown")
    ap.add_argument("--judge-only", action="store_true")
    ap.add_argument("--tolerance", type=float, default=bench_check.DEFAULT_TOLERANCE)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--min-repetitions", type=int, default=5)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.1)
    ap.add_argument("--filter", default=bench_check.DEFAULT_FILTER)
    ap.add_argument("--gate", default=bench_check.GATE_FILTER)
    ap.add_argument("--gate-geomean", type=float, default=bench_check.GATE_GEOMEAN)
    ap.add_argument("--gate-row", type=float, default=bench_check.GATE_ROW)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.judge_only:
        for i in range(args.runs):
            for kind, bench in (("unchanged", args.bench), ("slowed", args.slow_bench)):
                os.environ["ELBO_BENCH_SLOWDOWN_PCT"] = "%g" % args.slowdown_pct
                out = os.path.join(args.out_dir, "%s-%02d.json" % (kind, i + 1))
                bench_check.run_subset(bench, args.filter, args.repetitions, args.min_time, out)
                print("bench-check-rates: %s run %d of %d written" % (kind, i + 1, args.runs), flush=True)
    baseline = util.load_benchmark_results(args.baseline)
    report = ["# Regression check: false alarms and detection", "",
              "Baseline `%s`; gated rows `%s`; fails: their geometric mean change below -%g %%, or one of them below "
              "-%g %% (U test p < %g); slowed runs: every GEMM call %g %% slower (bench/slowdown/gemm_slowdown.c)."
              % (args.baseline, args.gate, args.gate_geomean, args.gate_row, args.alpha, args.slowdown_pct), "",
              "| run | failed | failing rows |", "|---|---|---|"]
    rates = {}
    for kind in ("unchanged", "slowed"):
        files = sorted(glob.glob(os.path.join(args.out_dir, kind + "-*.json")))
        fails = 0
        for f in files:
            failed, lines = judge(baseline, f, args)
            fails += failed
            rows = "; ".join(re.sub(r"\s+", " ", l) for l in lines)
            report.append("| %s | %s | %s |" % (os.path.basename(f), "yes" if failed else "no", rows))
        rates[kind] = (fails, len(files))
    u, s = rates["unchanged"], rates["slowed"]
    summary = ("false alarms: %d of %d unchanged runs failed; detection: %d of %d slowed runs failed"
               % (u[0], u[1], s[0], s[1]))
    report += ["", summary, ""]
    with open(os.path.join(args.out_dir, "rates.md"), "w") as fh:
        fh.write("\n".join(report))
    print("bench-check-rates: " + summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
