#!/usr/bin/python3
"""elbo and PyTorch side by side: training samples/s of the same model, loss, optimizer and data on this
machine, in one run, at batch 64, 128, 256 and 1024 (`make bench-pytorch`).

  scripts/bench_pytorch.py [--batches 64,128,256,1024] [--rounds 2] [--seconds 2] [--samples 30000]
                           [--out-dir results] [--json]

Model 784-400-20 (MSE), Adam 1e-3, Fashion-MNIST's training images, seed 1, on both sides.
- PyTorch (Debian's python3-torch, its GEMMs in OpenBLAS) gets its best thread configuration: every pair of
  torch threads (torch.set_num_threads) x OpenBLAS threads (OPENBLAS_NUM_THREADS, read when OpenBLAS loads, so
  one process per pair) from {1, 2, cores}; each process times every batch size for --seconds after 20 warm-up
  steps (scripts/torch_throughput.py).
- elbo: `elbo train --batch B --steps N --threads T --json` with N steps of about --samples samples, for T in
  {1, 2, cores}; its samples/s counts the training steps only (not loading, not the test evaluation).
The measurements run in --rounds interleaved rounds (elbo, then each PyTorch configuration); each side's figure
is its best configuration's best round, as the least disturbed one on a shared machine. The table is printed and
written to OUT_DIR/pytorch-<cpu>-<yyyymmdd>.md and .json (-2, -3, ... for later runs the same day).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

from results_files import cpu_slug, dated_path, elbo_info, write_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class RunError(Exception):
    """A measurement command failed: its message names the command and its last line of stderr."""


def run_json_lines(cmd, env=None):
    """Runs cmd; returns the JSON objects it printed, one per line. Raises RunError when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunError(f"{' '.join(cmd)}: exit status {p.returncode}: {last}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def thread_counts(cores):
    """The thread counts tried: 1, 2 and all cores (those that exist)."""
    return sorted({t for t in (1, 2, cores) if t <= cores})


def measure_elbo(a, batch, threads):
    """elbo's samples/s at (batch, threads) over about a.samples samples."""
    steps = max(10, -(-a.samples // batch))
    r = run_json_lines([a.elbo, "train", "--data", a.data, "--batch", str(batch), "--steps", str(steps),
                        "--threads", str(threads), "--json"])
    return r[-1]["samples_per_s"]


def measure_torch(a, batches, torch_threads, blas_threads):
    """PyTorch's samples/s per batch size at one (torch threads, OpenBLAS threads) configuration."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads))
    rs = run_json_lines([sys.executable, os.path.join(HERE, "torch_throughput.py"), "--batch",
                         ",".join(map(str, batches)), "--torch-threads", str(torch_threads), "--blas-threads",
                         str(blas_threads), "--seconds", str(a.seconds), "--data", a.data, "--json"], env)
    return {r["batch"]: r["samples_per_s"] for r in rs}, rs[0]["framework"] if rs else "pytorch"


def best(cells):
    """The (configuration, samples/s) with the highest samples/s among {configuration: [rates over rounds]}."""
    cfg = max(cells, key=lambda c: max(cells[c]))
    return cfg, max(cells[cfg])


def markdown(res):
    """The Markdown report: the side-by-side table, then every PyTorch configuration measured."""
    lines = [f"# elbo vs PyTorch, training samples/s ({res['cpu']}, {res['cores']} cores, {res['date']})", "",
             f"784-400-20 VAE, MSE, Adam 1e-3, Fashion-MNIST; elbo {res['elbo_commit']} ({res['isa']}), "
             f"{res['pytorch']} with OpenBLAS; best configuration of each side, best of {res['rounds']} rounds. "
             f"Load average (1, 5, 15 min) at start {res['load_avg_start']}, at end {res['load_avg_end']}: "
             f"well above the threads measured, other work shared the machine.", "",
             "| batch | elbo samples/s | elbo threads | PyTorch samples/s | PyTorch threads (torch × OpenBLAS) "
             "| elbo / PyTorch |", "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['batch']} | {r['elbo_samples_per_s']:,.0f} | {r['elbo_threads']} | "
                     f"{r['pytorch_samples_per_s']:,.0f} | {r['pytorch_torch_threads']} × {r['pytorch_blas_threads']} "
                     f"| {r['ratio']:.2f}× |")
    lines += ["", "Every configuration (best round, samples/s):", "",
              "| batch | " + " | ".join(f"elbo t={t}" for t in res["elbo_threads"]) + " | "
              + " | ".join(f"torch {t}×{b}" for t, b in res["pytorch_configs"]) + " |",
              "|---" * (1 + len(res["elbo_threads"]) + len(res["pytorch_configs"])) + "|"]
    for r in res["rows"]:
        lines.append(f"| {r['batch']} | " + " | ".join(f"{v:,.0f}" for v in r["elbo_all"]) + " | "
                     + " | ".join(f"{v:,.0f}" for v in r["pytorch_all"]) + " |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="64,128,256,1024")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of them counts (default 2)")
    p.add_argument("--seconds", type=float, default=2.0, help="PyTorch: timed seconds per batch size (default 2)")
    p.add_argument("--samples", type=int, default=30000, help="elbo: samples per measurement (default 30000)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--elbo", default=os.path.join(ROOT, "build", "elbo"))
    p.add_argument("--out-dir", default=None, help="write pytorch-<cpu>-<date>.md and .json there")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    a = p.parse_args()
    try:
        batches = [int(b) for b in a.batches.split(",")]
        if any(b < 1 for b in batches):
            raise ValueError
    except ValueError:
        p.error(f"--batches: expected positive integers separated by commas, got '{a.batches}'")
    if a.rounds < 1 or a.seconds <= 0 or a.samples < 1:
        p.error("--rounds, --seconds and --samples must be positive")
    if not os.access(a.elbo, os.X_OK):
        print(f"bench_pytorch: {a.elbo}: not found or not executable (run make first)", file=sys.stderr)
        return 2

    load_start = os.getloadavg()
    try:
        cpu, isa = elbo_info(a.elbo)
        cores = len(os.sched_getaffinity(0))
        threads = thread_counts(cores)
        configs = [(t, b) for t in threads for b in threads]
        elbo_cells = {b: {t: [] for t in threads} for b in batches}
        torch_cells = {b: {c: [] for c in configs} for b in batches}
        framework = "pytorch"
        for rnd in range(1, a.rounds + 1):
            print(f"bench-pytorch: round {rnd}/{a.rounds}: elbo at threads {threads}, PyTorch at {len(configs)} "
                  f"configurations (torch x OpenBLAS threads)", file=sys.stderr, flush=True)
            for b in batches:
                for t in threads:
                    elbo_cells[b][t].append(measure_elbo(a, b, t))
            for t, bl in configs:
                rates, framework = measure_torch(a, batches, t, bl)
                for b in batches:
                    torch_cells[b][(t, bl)].append(rates[b])
    except (RunError, OSError) as e:
        print(f"bench_pytorch: {e}", file=sys.stderr)
        return 2

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    rows = []
    for b in batches:
        et, er = best(elbo_cells[b])
        (tt, tb), tr = best(torch_cells[b])
        rows.append({"batch": b, "elbo_samples_per_s": er, "elbo_threads": et, "pytorch_samples_per_s": tr,
                     "pytorch_torch_threads": tt, "pytorch_blas_threads": tb, "ratio": er / tr,
                     "elbo_all": [max(elbo_cells[b][t]) for t in threads],
                     "pytorch_all": [max(torch_cells[b][c]) for c in configs],
                     "elbo_rounds": {str(t): v for t, v in elbo_cells[b].items()},
                     "pytorch_rounds": {f"{t}x{bl}": v for (t, bl), v in torch_cells[b].items()}})
    res = {"cpu": cpu, "cores": cores, "isa": isa, "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "elbo_commit": commit, "pytorch": framework, "rounds": a.rounds, "pytorch_seconds": a.seconds,
           "elbo_samples": a.samples, "elbo_threads": threads,
           "load_avg_start": [round(x, 2) for x in load_start], "load_avg_end": [round(x, 2) for x in os.getloadavg()], "pytorch_configs": configs, "rows": rows}

    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"\nelbo vs PyTorch, training samples/s ({cpu}, {cores} cores; best configuration of each side, "
              f"best of {a.rounds} rounds; load average {res['load_avg_start'][0]} at start, "
              f"{res['load_avg_end'][0]} at end)")
        print(f"{'batch':>6} {'elbo':>12} {'threads':>8} {'PyTorch':>12} {'torch x BLAS':>13} {'elbo/PyTorch':>13}")
        for r in rows:
            print(f"{r['batch']:>6} {r['elbo_samples_per_s']:>12,.0f} {r['elbo_threads']:>8} "
                  f"{r['pytorch_samples_per_s']:>12,.0f} {r['pytorch_torch_threads']:>8} x {r['pytorch_blas_threads']:<2} "
                  f"{r['ratio']:>12.2f}x")
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
        path = dated_path(a.out_dir, "pytorch", cpu_slug(cpu), [".json", ".md"])
        write_atomic(path + ".json", json.dumps(res, indent=1) + "\n")
        write_atomic(path + ".md", markdown(res))
        print(f"\nresults: {path}.md, {path}.json", file=sys.stderr if a.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
