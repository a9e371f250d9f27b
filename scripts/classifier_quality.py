#!/usr/bin/python3
"""The MLP classifier's quality against PyTorch: test accuracy and cross-entropy after the same training on
Fashion-MNIST, per seed, on both sides, with each side's training samples/s.

  scripts/classifier_quality.py [--seeds 1,2,3] [--epochs 20] [--batch 128] [--lr 1e-3] [--hidden 256,256]
                                [--data DIR] [--torch-threads 1] [--elbo-threads N] [--out-dir results]

- elbo: `elbo train --model classifier --epochs E --seed S --json` (Adam, batch 128, lr 1e-3 are its defaults
  and are passed explicitly); the last epoch's test_accuracy and test_cross_entropy; its samples/s is the
  training samples over the epochs' training seconds (not loading, not the test evaluations). Then 2 epochs on
  one thread (--threads 1), to compare with PyTorch's one thread: elbo's default thread count shares the
  machine's cores with other work, and its rate varies the most.
- PyTorch (Debian's python3-torch, GEMMs in OpenBLAS): the same 784-256-256-10 ReLU MLP of nn.Linear layers,
  torch.optim.Adam(lr) with its defaults (betas 0.9, 0.999, eps 1e-8, as elbo's), the minibatch SUM of the
  per-sample cross-entropies (F.cross_entropy(reduction="sum")), pixels / 255, a torch.randperm shuffle per
  epoch with the last partial batch used, E epochs, torch.manual_seed(S). Its initial weights come from
  nn.Linear's default initialization: the same distribution as elbo's (uniform +-1/sqrt(fan_in) for weights and
  biases) but not the same values, so per-seed numbers are two independent draws and only the means compare.
  Threads: torch.set_num_threads(--torch-threads) with OPENBLAS_NUM_THREADS=1 (set before torch loads unless the
  environment sets it): 1 x 1 is PyTorch's fastest configuration on this 2-core machine for this model (one
  epoch, samples/s: torch x OpenBLAS threads 1 x 1 47,800; 2 x 1 38,400; 1 x 2 43,500; 2 x 2 14,100). The
  samples/s reported count the training steps only.
The gate: elbo's mean test accuracy over the seeds >= 0.89. Writes OUT_DIR/classifier-quality-<cpu>-<yyyymmdd>
.json and .md (-2, -3, ... for later runs the same day); exit status 1 when the gate fails, 2 on errors.
"""
import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from results_files import cpu_slug, dated_path, elbo_info, write_atomic  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "parity"))
from classifier_torch import Classifier  # noqa: E402  (the oracle's model: one definition)
from vae_torch import read_idx  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GATE = 0.89


def load_split(d, prefix):
    """(images as (n, D) float32 / 255, labels as int64) of the IDX pair prefix-{images-idx3,labels-idx1}."""
    def find(stem):
        for name in (stem, stem + ".gz"):
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        raise OSError(f"{d}: missing {stem}[.gz]")
    x = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    x = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(y.astype(np.int64))


def train_torch(a, seed, train, test):
    """One PyTorch run: {seed, test_accuracy, test_cross_entropy, samples_per_s, train_seconds, wall_seconds}."""
    torch.set_num_threads(a.torch_threads)
    torch.manual_seed(seed)
    (xtr, ytr), (xte, yte) = train, test
    model = Classifier(xtr.shape[1], [int(w) for w in a.hidden.split(",")], int(ytr.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    t_wall, t_train, samples = time.perf_counter(), 0.0, 0
    for _ in range(a.epochs):
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        for i in range(0, len(xtr), a.batch):
            rows = perm[i:i + a.batch]
            loss = F.cross_entropy(model(xtr[rows]), ytr[rows], reduction="sum")
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_train += time.perf_counter() - t0
        samples += len(xtr)
    with torch.no_grad():
        logits = model(xte)
        ce = F.cross_entropy(logits, yte, reduction="mean").item()
        acc = (logits.argmax(1) == yte).float().mean().item()
    return {"seed": seed, "test_accuracy": acc, "test_cross_entropy": ce, "samples_per_s": samples / t_train,
            "train_seconds": t_train, "wall_seconds": time.perf_counter() - t_wall}


def elbo_command(a, seed):
    """The elbo command line of one seed."""
    cmd = [a.elbo, "train", "--model", "classifier", "--data", a.data, "--epochs", str(a.epochs), "--batch",
           str(a.batch), "--lr", repr(a.lr), "--hidden", a.hidden, "--seed", str(seed), "--json"]
    if a.elbo_threads:
        cmd += ["--threads", str(a.elbo_threads)]
    return cmd


def train_elbo(a, seed):
    """One elbo run: the same fields as train_torch's, plus threads and isa."""
    cmd = elbo_command(a, seed)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["no message"])[-1]
        raise OSError(f"{shlex.join(cmd)}: exit status {p.returncode}: {last}")
    epochs = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    if len(epochs) != a.epochs:
        raise OSError(f"{shlex.join(cmd)}: {len(epochs)} JSON lines, expected {a.epochs}")
    last = epochs[-1]
    train_s = sum(e["seconds"] for e in epochs)
    return {"seed": seed, "test_accuracy": last["test_accuracy"], "test_cross_entropy": last["test_cross_entropy"],
            "samples_per_s": sum(e["samples"] for e in epochs) / train_s, "train_seconds": train_s,
            "wall_seconds": wall, "threads": last["threads"],
            "per_epoch_test_accuracy": [e["test_accuracy"] for e in epochs]}


def elbo_one_thread_rate(a, seed):
    """elbo's training samples/s on one thread (2 epochs of seed; the same bits as any thread count), beside
    PyTorch's one thread: (samples/s, the command)."""
    cmd = elbo_command(argparse.Namespace(**{**vars(a), "epochs": 2, "elbo_threads": 1}), seed)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise OSError(f"{shlex.join(cmd)}: exit status {p.returncode}")
    epochs = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    return sum(e["samples"] for e in epochs) / sum(e["seconds"] for e in epochs), cmd


def mean(runs, key):
    """Mean of one field over runs."""
    return sum(r[key] for r in runs) / len(runs)


def shown_path(path):
    """path relative to the repository root when it lies inside it (the commands run from there)."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def walls(side):
    """Each run's wall time, "12 s, 13 s"."""
    return ", ".join(f"{r['wall_seconds']:.0f} s" for r in side["runs"])


def markdown(res):
    """The Markdown report: per-seed table, means, the gate and the exact commands."""
    e, t = res["elbo"], res["pytorch"]
    lines = [f"# Classifier quality: elbo vs PyTorch ({res['cpu']}, {res['cores']} cores, {res['date']})", "",
             f"{res['model']} MLP classifier (ReLU, softmax cross-entropy, objective the minibatch sum), Adam lr "
             f"{res['lr']}, batch {res['batch']}, {res['epochs']} epochs, Fashion-MNIST (60,000 train / 10,000 "
             f"test); elbo {res['elbo_commit']} ({res['isa']}, {e['runs'][0]['threads']} threads), "
             f"{res['pytorch_version']} ({res['torch_threads']} torch thread, OPENBLAS_NUM_THREADS="
             f"{res['openblas_threads']}). PyTorch's initial weights are nn.Linear's default draw: the same "
             f"distribution as elbo's, not the same values, so the seeds pair up only by number.", "",
             "| seed | elbo test accuracy | elbo test CE | PyTorch test accuracy | PyTorch test CE | elbo samples/s "
             "| PyTorch samples/s |", "|---|---|---|---|---|---|---|"]
    for er, tr in zip(e["runs"], t["runs"]):
        lines.append(f"| {er['seed']} | {er['test_accuracy']:.4f} | {er['test_cross_entropy']:.4f} | "
                     f"{tr['test_accuracy']:.4f} | {tr['test_cross_entropy']:.4f} | {er['samples_per_s']:,.0f} | "
                     f"{tr['samples_per_s']:,.0f} |")
    lines.append(f"| mean | {e['mean_test_accuracy']:.4f} | {e['mean_test_cross_entropy']:.4f} | "
                 f"{t['mean_test_accuracy']:.4f} | {t['mean_test_cross_entropy']:.4f} | "
                 f"{e['mean_samples_per_s']:,.0f} | {t['mean_samples_per_s']:,.0f} |")
    lines += ["", f"Gate: elbo's mean test accuracy {e['mean_test_accuracy']:.4f} >= {GATE}: "
              f"**{'pass' if res['gate_pass'] else 'FAIL'}**. elbo - PyTorch mean accuracy: "
              f"{e['mean_test_accuracy'] - t['mean_test_accuracy']:+.4f}.", "",
              f"Samples/s count the training steps only (elbo: its epochs' `seconds`; PyTorch: the timed step "
              f"loops). Wall time per seed: elbo {walls(e)}; PyTorch {walls(t)}. elbo on one thread, like "
              f"PyTorch: {res['elbo_one_thread_samples_per_s']:,.0f} samples/s (2 epochs, the last command below; "
              f"{res['elbo_one_thread_samples_per_s'] / t['mean_samples_per_s']:.2f}x PyTorch's mean). Load "
              f"average (1, 5, 15 min) at start {res['load_avg_start']}, at end {res['load_avg_end']}: the machine is shared, so "
              f"the speeds are indicative only.", "", "Commands (from the repository root):", "", "```"]
    lines += [shlex.join([shown_path(c[0])] + c[1:]) for c in res["elbo_commands"]]
    lines += [res["command"], shlex.join([shown_path(res["elbo_one_thread_command"][0])]
                                         + res["elbo_one_thread_command"][1:]), "```", ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--elbo-threads", type=int, default=0, help="0: elbo's default (one per physical core)")
    p.add_argument("--elbo", default=os.path.join(ROOT, "build", "elbo"))
    p.add_argument("--out-dir", default=os.path.join(ROOT, "results"))
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    if not os.access(a.elbo, os.X_OK):
        print(f"classifier_quality: {a.elbo}: not found or not executable (run make first)", file=sys.stderr)
        return 2
    load_start = os.getloadavg()
    try:
        cpu, isa = elbo_info(a.elbo)
        train, test = load_split(a.data, "train"), load_split(a.data, "t10k")
        elbo_runs, torch_runs = [], []
        for s in seeds:
            elbo_runs.append(train_elbo(a, s))
            print(f"classifier_quality: elbo seed {s}: {json.dumps(elbo_runs[-1])}", file=sys.stderr, flush=True)
            torch_runs.append(train_torch(a, s, train, test))
            print(f"classifier_quality: pytorch seed {s}: {json.dumps(torch_runs[-1])}", file=sys.stderr, flush=True)
        one_thread, one_thread_cmd = elbo_one_thread_rate(a, seeds[0])
    except OSError as e:
        print(f"classifier_quality: {e}", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"

    def side(runs):
        return {"runs": runs, "mean_test_accuracy": mean(runs, "test_accuracy"),
                "mean_test_cross_entropy": mean(runs, "test_cross_entropy"),
                "mean_samples_per_s": mean(runs, "samples_per_s")}

    res = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "isa": isa,
           "date": datetime.datetime.now().isoformat(timespec="seconds"), "elbo_commit": commit,
           "pytorch_version": f"pytorch {torch.__version__}", "torch_threads": a.torch_threads,
           "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"],
           "model": "-".join(["784"] + a.hidden.split(",") + ["10"]), "epochs": a.epochs, "batch": a.batch,
           "lr": a.lr, "seeds": seeds, "elbo": side(elbo_runs), "pytorch": side(torch_runs), "gate": GATE,
           "elbo_commands": [elbo_command(a, s) for s in seeds], "elbo_one_thread_samples_per_s": one_thread,
           "elbo_one_thread_command": one_thread_cmd,
           "command": shlex.join([sys.executable] + sys.argv),
           "load_avg_start": [round(x, 2) for x in load_start],
           "load_avg_end": [round(x, 2) for x in os.getloadavg()]}
    res["gate_pass"] = res["elbo"]["mean_test_accuracy"] >= GATE
    os.makedirs(a.out_dir, exist_ok=True)
    path = dated_path(a.out_dir, "classifier-quality", cpu_slug(cpu), [".json", ".md"])
    write_atomic(path + ".json", json.dumps(res, indent=1) + "\n")
    write_atomic(path + ".md", markdown(res))
    print(markdown(res))
    print(f"results: {path}.md, {path}.json")
    return 0 if res["gate_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
