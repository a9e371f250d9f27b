#!/usr/bin/python3
"""Time to quality, as MLPerf Training measures it: wall time from process start (data loading included)
until the test -ELBO per sample reaches a target, over N runs with the fastest and the slowest dropped,
for elbo and for PyTorch on the same model, data, batch and optimizer.

  scripts/time_to_quality.py [--target 31.0] [--runs 5] [--eval-every 100] [--out-dir results] [--json]

Model: 784-400-20, MSE (sum of squares), Adam 1e-3, batch 128, Fashion-MNIST. Both sides evaluate the whole
test set every --eval-every steps (one posterior sample per image) and stop at the first evaluation at or below
the target; the evaluations count in the time, as in MLPerf. Run seeds are 1..N on both sides, elbo and PyTorch
alternating. elbo's clock starts when `elbo train` starts (before it loads the data); PyTorch's when this script
launches its process (interpreter start and `import torch` included). elbo runs on its default threads (one per
core). PyTorch runs in its best configuration on this CPU: OpenBLAS on its own kernel choice (OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE removed from PyTorch's processes, as some environments force a core for older OpenBLAS
builds), and the torch threads x OpenBLAS threads pair from {1, 2, cores} that trains fastest at batch 128 in a
quick search before the runs (scripts/torch_throughput.py, --search-seconds each, as `make bench-pytorch` searches
them); --torch-threads and --blas-threads together skip the search. The configuration, the search's rates and the
OpenBLAS core each run reported (openblas_get_corename) are recorded. With --out-dir, the summary and every run
are written to OUT_DIR/ttq-<cpu>-<yyyymmdd>.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from results_files import cpu_slug, dated_path, elbo_info, write_atomic
from torch_throughput import apply_openblas_env, openblas_env, openblas_info

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def torch_run(args):
    """One PyTorch run in this process; prints its JSON line. The clock starts at interpreter start."""
    start = time.monotonic() - (time.time() - args.started)
    apply_openblas_env("auto", args.blas_threads)
    import numpy as np
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
    from vae_torch import VAE, find_idx, per_sample_losses, read_idx
    torch.set_num_threads(args.torch_threads)
    train = read_idx(find_idx(args.data, "train-images-idx3-ubyte"))
    test = read_idx(find_idx(args.data, "t10k-images-idx3-ubyte"))
    xtr = torch.from_numpy(train.reshape(len(train), -1).astype(np.float32) / 255.0)
    xte = torch.from_numpy(test.reshape(len(test), -1).astype(np.float32) / 255.0)
    torch.manual_seed(args.seed)
    model = VAE(xtr.shape[1], [400], 20, [400])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step, reached, value = 0, False, float("nan")
    while not reached and step < args.max_steps:
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            x = xtr[perm[i:i + 128]]
            logits, mu, logvar = model(x, torch.randn(len(x), 20))
            rec, kl = per_sample_losses(logits, x, mu, logvar, "mse", 0.5 ** 0.5)
            opt.zero_grad()
            (rec + kl).sum().backward()
            opt.step()
            step += 1
            if step % args.eval_every == 0:
                with torch.no_grad():
                    logits, mu, logvar = model(xte, torch.randn(len(xte), 20))
                    rec, kl = per_sample_losses(logits, xte, mu, logvar, "mse", 0.5 ** 0.5)
                    value = (rec + kl).mean().item()
                if value <= args.target:
                    reached = True
                    break
    print(json.dumps({"reached": reached, "steps": step, "test_neg_elbo": value,
                      "seconds_to_target": time.monotonic() - start, **openblas_info()}))


def run(cmd, env=None):
    """Runs cmd and returns its last JSON line (with seconds_to_target measured from process start); raises
    OSError naming the command and its last stderr line when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise OSError(f"{' '.join(cmd)}: exit status {p.returncode}: {last}")
    return json.loads(lines[-1])


def search_torch_config(a):
    """(torch threads, OpenBLAS threads, {"TxB": samples/s}): the pair from {1, 2, cores} with the highest
    samples/s at batch 128 over a.search_seconds each, OpenBLAS on its own kernel (scripts/torch_throughput.py)."""
    cores = len(os.sched_getaffinity(0))
    threads = sorted({t for t in (1, 2, cores) if t <= cores})
    rates = {}
    for t in threads:
        for b in threads:
            r = run([sys.executable, os.path.join(HERE, "torch_throughput.py"), "--batch", "128", "--torch-threads",
                     str(t), "--blas-threads", str(b), "--openblas-core", "auto", "--seconds", str(a.search_seconds),
                     "--data", a.data, "--json"], openblas_env(os.environ, "auto", b))
            rates[(t, b)] = r["samples_per_s"]
    t, b = max(rates, key=rates.get)
    return t, b, {f"{k[0]}x{k[1]}": v for k, v in rates.items()}


def trimmed(values):
    """Mean after dropping the fastest and the slowest (with at least 3 values)."""
    v = sorted(values)
    v = v[1:-1] if len(v) >= 3 else v
    return statistics.mean(v)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", type=float, default=31.0)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--elbo", default=os.path.join(ROOT, "build", "elbo"))
    p.add_argument("--torch-threads", type=int, default=None, help="with --blas-threads: skip the search")
    p.add_argument("--blas-threads", type=int, default=None, help="with --torch-threads: skip the search")
    p.add_argument("--search-seconds", type=float, default=1.0,
                   help="timed seconds per configuration in the quick search (default 1)")
    p.add_argument("--out-dir", default=None, help="write ttq-<cpu>-<date>.json there")
    p.add_argument("--json", action="store_true")
    p.add_argument("--torch-run", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--started", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--max-steps", type=int, default=20 * 469, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.torch_run:
        torch_run(a)
        return 0
    if a.runs < 1:
        p.error("--runs must be at least 1")
    if (a.torch_threads is None) != (a.blas_threads is None):
        p.error("--torch-threads and --blas-threads go together (neither: the quick search chooses them)")
    try:
        return measure(a)
    except OSError as e:
        print(f"time_to_quality: {e}", file=sys.stderr)
        return 2


def measure(a):
    """The N runs of each side, the summary printed and (with --out-dir) written; returns 0."""
    load_start = os.getloadavg()
    search = None
    if a.torch_threads is None:
        a.torch_threads, a.blas_threads, search = search_torch_config(a)
        print(f"PyTorch configuration: {a.torch_threads} torch x {a.blas_threads} OpenBLAS threads, OpenBLAS's own "
              f"kernel (quick search at batch 128, samples/s: {', '.join(f'{k} {v:,.0f}' for k, v in search.items())})",
              file=sys.stderr, flush=True)
    results = {"elbo": [], "pytorch": []}
    for seed in range(1, a.runs + 1):
        r = run([a.elbo, "train", "--data", a.data, "--epochs", "20", "--target", str(a.target), "--eval-every",
                 str(a.eval_every), "--seed", str(seed), "--json"])
        results["elbo"].append(r)
        env = openblas_env(os.environ, "auto", a.blas_threads)
        r = run([sys.executable, os.path.abspath(__file__), "--torch-run", "--seed", str(seed), "--target",
                 str(a.target), "--eval-every", str(a.eval_every), "--data", a.data, "--torch-threads",
                 str(a.torch_threads), "--blas-threads", str(a.blas_threads), "--started", str(time.time())], env)
        results["pytorch"].append(r)
    summary = {}
    for name, rs in results.items():
        ok = [r["seconds_to_target"] for r in rs if r["reached"]]
        summary[name] = {"runs": len(rs), "reached": len(ok), "seconds_trimmed_mean": trimmed(ok) if ok else None,
                         "seconds": ok, "steps": [r["steps"] for r in rs]}
    cores_ran = sorted({r.get("openblas_core", "?") for r in results["pytorch"]})
    result = {"target_neg_elbo": a.target, "eval_every": a.eval_every, "pytorch_torch_threads": a.torch_threads,
              "pytorch_blas_threads": a.blas_threads, "pytorch_openblas_core": ", ".join(cores_ran),
              "pytorch_openblas_forcing": "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE cleared in PyTorch's processes",
              "pytorch_config_search": search, "pytorch_config_search_seconds": a.search_seconds if search else None,
              **summary, "runs": results,
              "load_avg_start": [round(x, 2) for x in load_start], "load_avg_end": [round(x, 2) for x in os.getloadavg()]}
    if a.out_dir:
        cpu, _ = elbo_info(a.elbo)
        os.makedirs(a.out_dir, exist_ok=True)
        path = dated_path(a.out_dir, "ttq", cpu_slug(cpu), [".json"]) + ".json"
        write_atomic(path, json.dumps({"cpu": cpu, **result}, indent=1) + "\n")
    if a.json:
        print(json.dumps(result))
    else:
        for name, s in summary.items():
            t = s["seconds_trimmed_mean"]
            print(f"{name:8s} time to test -ELBO <= {a.target}: "
                  f"{'not reached' if t is None else f'{t:.2f} s'} (trimmed mean of {s['reached']}/{s['runs']} runs; "
                  f"all: {', '.join(f'{x:.2f}' for x in s['seconds'])}; steps {s['steps']})")
        print(f"PyTorch ran {a.torch_threads} torch x {a.blas_threads} OpenBLAS threads on OpenBLAS core "
              f"{result['pytorch_openblas_core']} (forcing variables cleared"
              f"{', configuration from the quick search' if search else ', configuration given'})")
        e, t = summary["elbo"]["seconds_trimmed_mean"], summary["pytorch"]["seconds_trimmed_mean"]
        if e and t:
            print(f"elbo reaches the target {t / e:.1f}x sooner")
    if a.out_dir:
        print(f"results: {path}", file=sys.stderr if a.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
