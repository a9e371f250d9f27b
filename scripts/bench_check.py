#!/usr/bin/python3
"""bench_check.py - compare a quick benchmark run with a baseline (make bench-check picks results/baselines/<chip>-<isa>.json); exit 1 on a regression.

    /usr/bin/python3 scripts/bench_check.py                   # run the subset, compare (make bench-check)
    /usr/bin/python3 scripts/bench_check.py --update-baseline # run it with more repetitions, write the baseline
    /usr/bin/python3 scripts/bench_check.py --baseline A.json --current B.json   # compare two files, no run

What is compared: each row's *efficiency*, not its time. Rows with a `pct_peak` counter (GEMM, train) use
it: % of the FMA peak of the same run. Rows with only `GB/s` (elementwise, membw) use GB/s per 100 GFLOP/s
of that same peak. Both divide out the speed of the machine and how busy it was, so a slower or loaded
machine is not taken for a regression. Two refinements, because pct_peak is taken against one FMA peak
measured at the start of the run (context `fma_peak_gflops`), which a busy moment can halve:
- the reference is the median of the run's `fma_peak` row when it has one (the default subset does: its
  repetitions are interleaved with the other rows', so it sees the same load), and pct_peak is rescaled to it;
- one-thread rows (and `fma_peak`) are taken per second *on the CPU*: each repetition's rate is multiplied
  by its wall time / CPU time (at least 1), which takes out the time the process was descheduled by other
  load. Rows on several threads (`t:2`, ...) keep wall time: CPU time below threads x wall time can be their
  own waiting, which is what a regression there may look like.
Without an `fma_peak` row the start-of-run figure is used as is. Rows with neither counter, and `fma_peak`
itself (the reference), are skipped and listed as such.

How it decides, per row: the median efficiency over the current run's repetitions against the baseline's.
A row REGRESSED when the median dropped by more than --tolerance percent (relative) AND Google Benchmark's
Mann-Whitney U test over the repetitions of both runs (gbench.report.calc_utest from Debian's
libbenchmark-tools, the one compare.py prints) gives p < --alpha. With fewer than --min-repetitions
repetitions on either side there is no meaningful U test and the threshold alone decides. IMPROVED is the
same the other way. Rows of the baseline missing from the current run also fail the check; new rows are
listed. A baseline whose context names another kernel path (`isa`) or FMA peak width (`fma_peak_vector_bits`)
than the current run is refused (efficiency divides out a machine's speed, not its kernels) unless
--allow-other-kernels. Exit status: 0 no regression, 1 a regression or a missing row, 2 nothing comparable /
bad input.
"""

import argparse
import math
import os
import re
import statistics
import sys

sys.path.insert(0, "/usr/share/benchmark")
from gbench import report, util  # noqa: E402  (Debian's libbenchmark-tools)

# Default subset: the FMA peak (the reference), elbo's batch-128 GEMM rows, the elementwise rows and the batch-128
# training rows. The GEMM peers' rows (gemm/openblas, gemm/onednn) are left out: they are not ours to gate, and
# they run in a child process, so their cpu_time is the parent's (near 0), which the CPU-time correction misreads.
DEFAULT_FILTER = r"^(fma_peak|gemm/elbo[^/]*/[^/]+/b:128/process|elementwise/|train/b:128/)"
# The gated rows, those stable enough on a shared machine to fail the check: the single-thread efficiencies of the
# GEMM and of a training step. The others (elementwise rows, memory-bound; two-thread rows, whose vCPUs move) are
# judged and printed the same way but marked "(not gated)" and never fail it.
GATE_FILTER = r"^(gemm/elbo[^/]*/[^/]+/b:128/process|train/b:128/t:1/)"
# What fails the check (docs/bench.md, Regression check, has the rates measured with these): the geometric mean of
# the gated rows' median efficiency changes dropping by more than GATE_GEOMEAN percent (a slower microkernel, a
# slower training step: every gated row moves, the noise of one row averages out), or one gated row alone dropping
# by more than GATE_ROW percent with U test p < alpha (a regression of one shape only, beyond the noise a busy
# machine puts on one row). Rows beyond DEFAULT_TOLERANCE are printed either way.
DEFAULT_TOLERANCE = 5.0
GATE_GEOMEAN = 6.0
GATE_ROW = 25.0
SUFFIX = "/process_time/real_time"


def threads(b):
    """The row's thread count: its `t:N`, else 1."""
    m = re.search(r"/t:(\d+)", b["name"])
    return int(m.group(1)) if m else 1


def descheduled(b):
    """Wall time / CPU time (at least 1) of a one-thread repetition; 1 for rows on several threads."""
    if threads(b) > 1 or not b.get("cpu_time"):
        return 1.0
    return max(1.0, b["real_time"] / b["cpu_time"])


def peaks(run):
    """(start-of-run peak, fma_peak row median on the CPU, fma_peak row median wall) in GFLOP/s, None if absent."""
    try:
        start = float(run["context"]["fma_peak_gflops"])
    except (KeyError, ValueError):
        start = None
    reps = [b for b in run["benchmarks"] if b["name"].startswith("fma_peak")
            and b.get("run_type", "iteration") == "iteration" and "GFLOP/s" in b]
    if not reps:
        return start, None, None
    return (start, statistics.median(b["GFLOP/s"] * descheduled(b) for b in reps),
            statistics.median(b["GFLOP/s"] for b in reps))


def efficiency_rows(run, regex):
    """The run's iteration rows in gbench's layout, each with its efficiency as `eff`; and the skipped names."""
    start, cpu_peak, wall_peak = peaks(run)
    rows, skipped = [], set()
    for b in run["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration" or not re.search(regex, b["name"]):
            continue
        f = descheduled(b)
        peak = (wall_peak if threads(b) > 1 else cpu_peak) or start
        if b["name"].startswith("fma_peak") or not peak:
            skipped.add(b["name"])
        elif "pct_peak" in b:
            rows.append(dict(b, eff=b["pct_peak"] * f * (start / peak if start else 1.0)))
        elif "GB/s" in b:
            rows.append(dict(b, eff=100.0 * b["GB/s"] * f / peak))
        else:
            skipped.add(b["name"])
    return {"benchmarks": rows}, skipped


def kernel_mismatch(base, cur):
    """Why the two runs' efficiencies are not comparable (different kernel path or FMA peak width), or None.

    pct_peak divides out a machine's speed, not its kernels: an AVX2 baseline against an AVX-512 run compares
    two programs. Files without these context keys (older runs) are compared as before."""
    def path(run):
        ctx = run.get("context", {})
        return ctx.get("isa"), ctx.get("fma_peak_vector_bits"), " ".join(str(ctx.get("cpu_model", "?")).split(",")[0].split())
    (b_isa, b_bits, b_cpu), (c_isa, c_bits, c_cpu) = path(base), path(cur)
    for key, b, c in (("isa", b_isa, c_isa), ("fma_peak_vector_bits", b_bits, c_bits)):
        if b is not None and c is not None and str(b) != str(c):
            return ("%s %s in the baseline (%s), %s in this run (%s)" % (key, b, b_cpu, c, c_cpu))
    return None


def compare(base, cur, regex, tolerance, alpha, min_reps, gate=GATE_FILTER, gate_geomean=GATE_GEOMEAN,
            gate_row=GATE_ROW):
    """Print one line per regressed/improved/missing/new/skipped row and the gated rows' geometric mean change;
    return the number of failures (the geometric mean below -gate_geomean %, a gated row below -gate_row %
    significantly, a missing gated row)."""
    b_rows, b_skip = efficiency_rows(base, regex)
    c_rows, c_skip = efficiency_rows(cur, regex)
    for what, run in (("baseline", base), ("current", cur)):
        print("bench-check: %-8s FMA peak, GFLOP/s: start of run %s; fma_peak row median %s on the CPU, %s wall"
              % ((what,) + tuple("%.1f" % p if p else "n/a" for p in peaks(run))))
    partitions = report.partition_benchmarks(b_rows, c_rows)  # rows in both, repetitions grouped by name
    if not partitions:
        print("bench-check: no row in common between the baseline and the current run")
        return None
    print("bench-check: %d rows; median efficiency, current vs baseline; listed: change beyond %g %% (U test p < %g "
          "with >= %d repetitions each, else noise); fails: gated rows' geometric mean below -%g %%, or one gated row "
          "below -%g %%" % (len(partitions), tolerance, alpha, min_reps, gate_geomean, gate_row))
    regressed = improved = 0
    gated_logs = []
    width = max(len(p[0][0]["name"]) for p in partitions) - len(SUFFIX)
    for lhs, rhs in partitions:
        name = lhs[0]["name"].replace(SUFFIX, "")
        old, new = report.extract_field((lhs, rhs), "eff")
        m_old, m_new = statistics.median(old), statistics.median(new)
        change = 100.0 * report.calculate_change(m_old, m_new)
        if min(len(old), len(new)) >= min_reps:
            _, _, pvalue = report.calc_utest((old, new), (old, new))
            significant = pvalue is not None and pvalue < alpha
            stat = "p=%.4f" % pvalue if pvalue is not None else "p=n/a"
        else:
            significant, stat = True, "no U test"
        stat += ", %d vs %d reps" % (len(old), len(new))
        unit = "%peak" if "pct_peak" in lhs[0] else "GB/s per 100 GFLOP/s peak"
        gated = re.search(gate, lhs[0]["name"]) is not None
        if gated:
            gated_logs.append(math.log(m_new / m_old))
        if abs(change) <= tolerance:
            continue
        if not significant:
            verdict = "noise"
        elif change > 0:
            verdict = "improved"
        elif gated and -change > gate_row:
            verdict = "REGRESSED"
        else:
            verdict = "slower"
        if not gated:
            stat += "; not gated"
        regressed += verdict == "REGRESSED"
        improved += verdict == "improved"
        print("%-9s  %-*s  %+6.1f %%  (%.2f -> %.2f %s; %s)"
              % (verdict, width, name, change, m_old, m_new, unit, stat))
    names = lambda rows: {b["name"] for b in rows["benchmarks"]}  # noqa: E731
    missing = sorted(n for n in names(b_rows) - names(c_rows) - c_skip if re.search(gate, n))
    for n in missing:
        print("MISSING    %s (in the baseline, not in the current run)" % n.replace(SUFFIX, ""))
    for n in sorted(names(c_rows) - names(b_rows) - b_skip):
        print("new        %s (not in the baseline)" % n.replace(SUFFIX, ""))
    for n in sorted(b_skip | c_skip):
        print("skipped    %s (no pct_peak or GB/s counter, or the peak itself)" % n.replace(SUFFIX, ""))
    geomean = 100.0 * (math.exp(sum(gated_logs) / len(gated_logs)) - 1.0) if gated_logs else 0.0
    geomean_failed = geomean < -gate_geomean
    print("bench-check: gated rows (%d): geometric mean change %+.1f %% (fails below -%g %%)%s"
          % (len(gated_logs), geomean, gate_geomean, ": REGRESSED" if geomean_failed else ""))
    print("bench-check: %s: %d gated row%s regressed alone, %d missing, %d improved"
          % ("FAILED" if geomean_failed or regressed or missing else "passed", regressed, "" if regressed == 1 else "s",
             len(missing), improved))
    return regressed + len(missing) + geomean_failed


def run_subset(bench, regex, repetitions, min_time, out):
    """Run the subset with Google Benchmark's own runner (gbench.util); the JSON goes to `out`."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    return util.run_benchmark(bench, [
        "--benchmark_filter=" + regex, "--benchmark_repetitions=%d" % repetitions,
        "--benchmark_min_time=%g" % min_time, "--benchmark_enable_random_interleaving=true",
        "--benchmark_display_aggregates_only=true", "--benchmark_out=" + out, "--benchmark_out_format=json"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="results/baselines/zen3-avx2.json", help="baseline results (default: %(default)s)")
    ap.add_argument("--current", help="compare this results file instead of running the benchmark")
    ap.add_argument("--gate", default=GATE_FILTER, help="rows that can fail the check (default: %(default)s)")
    ap.add_argument("--gate-geomean", type=float, default=GATE_GEOMEAN,
                    help="fail when the gated rows' geometric mean drops by more, %% (default: %(default)s)")
    ap.add_argument("--gate-row", type=float, default=GATE_ROW,
                    help="fail when one gated row drops by more, significantly, %% (default: %(default)s)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="allowed median drop, %% (default: %(default)s)")
    ap.add_argument("--alpha", type=float, default=0.05, help="U test significance level (default: %(default)s)")
    ap.add_argument("--min-repetitions", type=int, default=5,
                    help="fewer repetitions on a side: no U test, the threshold alone decides (default: %(default)s)")
    ap.add_argument("--filter", default=DEFAULT_FILTER, help="rows to run and compare (default: %(default)s)")
    ap.add_argument("--bench", default="build/bench/elbo_bench", help="benchmark program (default: %(default)s)")
    ap.add_argument("--out", default="build/bench/check.json", help="the quick run's JSON (default: %(default)s)")
    ap.add_argument("--repetitions", type=int, default=5, help="repetitions of the quick run (default: %(default)s)")
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per repetition (default: %(default)s)")
    ap.add_argument("--update-baseline", action="store_true",
                    help="run the subset with --baseline-repetitions and write --baseline; no comparison")
    ap.add_argument("--baseline-repetitions", type=int, default=15, help="(default: %(default)s)")
    ap.add_argument("--allow-other-kernels", action="store_true",
                    help="compare even when the baseline ran another kernel path (isa) or FMA peak width")
    args = ap.parse_args()

    if args.update_baseline:
        run_subset(args.bench, args.filter, args.baseline_repetitions, args.min_time, args.baseline)
        print("bench-check: wrote %s" % args.baseline)
        return 0
    if not os.path.isfile(args.baseline):
        print("bench-check: no baseline %s (make bench-baseline writes it)" % args.baseline)
        return 2
    if args.current:
        current = util.load_benchmark_results(args.current)
    else:
        if os.path.realpath(args.out).startswith(os.path.realpath("results") + os.sep):
            ap.error("--out must not be under results/")
        current = run_subset(args.bench, args.filter, args.repetitions, args.min_time, args.out)
    baseline = util.load_benchmark_results(args.baseline)
    mismatch = kernel_mismatch(baseline, current)
    if mismatch and not args.allow_other_kernels:
        print("bench-check: %s: not comparable with this run: %s; run `make bench-baseline` on this machine "
              "(or pass --allow-other-kernels)" % (args.baseline, mismatch))
        return 2
    failures = compare(baseline, current, args.filter, args.tolerance, args.alpha, args.min_repetitions, args.gate,
                       args.gate_geomean, args.gate_row)
    return 2 if failures is None else int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
