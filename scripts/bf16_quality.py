#!/usr/bin/env python3
"""bf16 training quality against fp32: the VAE's test -ELBO after 10 epochs (fp32 and bf16, seeds 1-3) and the
classifier's test accuracy after 20 epochs (bf16, seeds 1-3; fp32 from results/classifier-quality-amd-epyc-20261206.md
unless --classifier-fp32 runs it too). One run at a time, one thread each, under nice; each run's JSON lines go to
OUT/<model>-<precision>-seed<N>.jsonl, the commands to OUT/cmd.txt, the table to OUT/README.md.

Usage: scripts/bf16_quality.py OUT_DIR [--elbo build/elbo] [--classifier-fp32]"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

DATA = "/usr/share/datasets/fashion-mnist"
# results/classifier-quality-amd-epyc-20261206.md (elbo e0fe059, fp32, seeds 1-3)
CLASSIFIER_FP32 = {1: 0.8928, 2: 0.8931, 3: 0.8930}


def run(elbo, out, name, args):
    """Runs one training (nice, one thread), its JSON lines into OUT/name.jsonl; returns the last epoch's object."""
    cmd = ["nice", "-n", "5", elbo, "train", "--data", DATA, "--threads", "1", "--json"] + args
    with open(os.path.join(out, "cmd.txt"), "a") as f:  # as run from the repository root at the commit named
        f.write(" ".join(cmd[:3] + ["build/elbo"] + cmd[4:]) + "\n")
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    with open(os.path.join(out, name + ".jsonl"), "w") as f:
        f.write(res.stdout)
    last = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return last


def mean(xs):
    return sum(xs) / len(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--elbo", default="build/elbo")
    ap.add_argument("--classifier-fp32", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    elbo = f"/tmp/bf16-quality-elbo-{os.getpid()}"  # a copy: rebuilding the tree meanwhile does not change the runs
    shutil.copy2(a.elbo, elbo)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    seeds = [1, 2, 3]
    vae = {p: [run(elbo, a.out, f"vae-{p}-seed{s}", ["--epochs", "10", "--seed", str(s), "--precision", p])
               for s in seeds] for p in ("fp32", "bf16")}
    cls = {"bf16": [run(elbo, a.out, f"classifier-bf16-seed{s}",
                        ["--model", "classifier", "--epochs", "20", "--seed", str(s), "--precision", "bf16"])
                    for s in seeds]}
    if a.classifier_fp32:
        cls["fp32"] = [run(elbo, a.out, f"classifier-fp32-seed{s}",
                           ["--model", "classifier", "--epochs", "20", "--seed", str(s), "--precision", "fp32"])
                       for s in seeds]
    vae_m = {p: mean([r["test_neg_elbo"] for r in vae[p]]) for p in vae}
    acc = {p: [r["test_accuracy"] for r in cls[p]] for p in cls}
    acc_fp32 = acc.get("fp32", [CLASSIFIER_FP32[s] for s in seeds])
    rel = (vae_m["bf16"] - vae_m["fp32"]) / vae_m["fp32"]
    dacc = mean(acc["bf16"]) - mean(acc_fp32)
    lines = [f"# bf16 training quality (elbo {commit}, avx512, 1 thread each, Fashion-MNIST)", "",
             "VAE 784-400-20 MSE, Adam lr 0.001, batch 128, 10 epochs: test -ELBO per sample.", "",
             "| seed | fp32 | bf16 | fp32 samples/s | bf16 samples/s |", "|---|---|---|---|---|"]
    for i, s in enumerate(seeds):
        f, b = vae["fp32"][i], vae["bf16"][i]
        lines.append(f"| {s} | {f['test_neg_elbo']:.4f} | {b['test_neg_elbo']:.4f} | {f['samples_per_s']:,.0f} | "
                     f"{b['samples_per_s']:,.0f} |")
    lines += [f"| mean | {vae_m['fp32']:.4f} | {vae_m['bf16']:.4f} | | |", "",
              f"bf16 - fp32: {100 * rel:+.3f} % (gate: within 1 %): **{'pass' if abs(rel) <= 0.01 else 'FAIL'}**.", "",
              "Classifier 784-256-256-10, Adam lr 0.001, batch 128, 20 epochs: test accuracy "
              + ("(fp32 run here too)." if "fp32" in acc else
                 "(fp32: results/classifier-quality-amd-epyc-20261206.md, elbo e0fe059)."), "",
              "| seed | fp32 | bf16 |", "|---|---|---|"]
    for i, s in enumerate(seeds):
        lines.append(f"| {s} | {acc_fp32[i]:.4f} | {acc['bf16'][i]:.4f} |")
    lines += [f"| mean | {mean(acc_fp32):.4f} | {mean(acc['bf16']):.4f} |", "",
              f"bf16 - fp32: {100 * dacc:+.2f} points (gate: within 0.3): "
              f"**{'pass' if abs(dacc) <= 0.003 else 'FAIL'}**.", "",
              "Samples/s are indicative only (a shared, loaded machine). Commands: cmd.txt; JSON per run: *.jsonl.", ""]
    with open(os.path.join(a.out, "README.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
