#!/usr/bin/python3
"""A quality gate's table (issues 18 and 20): elbo's and the PyTorch reference's runs of the same model, each
scored by the same classifier (`elbo eval --classifier ... --json`, one DIR/<side>-s<seed>.eval.json per run), into
OUT.md and OUT.json: FD, coverage entropy and smallest class share per run (and, for the diffusion model, each
run's last train and test simple loss from DIR/elbo-s<seed>.log or DIR/torch-s<seed>/train.jsonl), each side's
medians, and the gate: elbo's median FD <= 1.15 x PyTorch's (the GAN also: every class >= 2 % of every elbo run's
samples).

  scripts/quality_table.py --model gan|diffusion DIR OUT
  e.g. scripts/quality_table.py --model gan results/gan-quality-amd-epyc-20261206 results/gan-quality-amd-epyc-20261206
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys

# Per model: the table's title and its description of the runs, and whether the class-coverage gate applies.
MODELS = {
    "gan": {"title": "GAN quality after 30 epochs: elbo vs the PyTorch reference of the same recipe",
            "about": "The default recipe (G 64-256-512-784 sigmoid, D 784-512-256-1 spectrally normalized, LeakyReLU "
                     "0.2, Adam lr 2e-4 betas 0.5 / 0.999 for both, batch 128, BCE-with-logits, non-saturating G "
                     "loss), 30 epochs on Fashion-MNIST, seeds 1, 2, 3 on each side; 10000 samples of each run scored "
                     "by the same classifier (FD in its last hidden layer, floor 0.56; coverage entropy of its "
                     "predicted classes, 3.32 bits when uniform).",
            "coverage_gate": True},
    "diffusion": {"title": "Diffusion quality after 20 epochs: elbo vs the PyTorch reference of the same model",
                  "about": "The default model (eps-prediction residual MLP 784 -> 1024, 3 blocks, time embedding 128 -> "
                           "256 -> 256, linear schedule T 1000, simple loss, Adam 1e-3, batch 128, EMA 0.999), 20 "
                           "epochs on Fashion-MNIST, seeds 1, 2, 3 on each side; 10000 DDIM-50 (eta 0) samples of "
                           "each run's EMA weights scored by the same classifier (FD in its last hidden layer, floor "
                           "0.56; coverage entropy of its predicted classes, 3.32 bits when uniform).",
                  "coverage_gate": False},
}

CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def runs(d):
    """{side: [(seed, eval result)]} of every DIR/<side>-s<seed>.eval.json that holds a result."""
    out = {"elbo": [], "torch": []}
    for path in sorted(glob.glob(os.path.join(d, "*-s*.eval.json"))):
        m = re.match(r"(elbo|torch)-s(\d+)\.eval\.json$", os.path.basename(path))
        try:
            r = json.load(open(path))
        except (OSError, ValueError):
            continue
        if m and "fd" in r:
            out[m.group(1)].append((int(m.group(2)), r))
    return out


def last_losses(d, side, seed):
    """(train, test) simple loss of a diffusion run's last epoch line, or None."""
    path = os.path.join(d, f"elbo-s{seed}.log") if side == "elbo" else os.path.join(d, f"torch-s{seed}", "train.jsonl")
    last = None
    try:
        for line in open(path):
            if line.startswith("{") and '"test_loss"' in line:
                last = json.loads(line)
    except OSError:
        return None
    return (last["train_loss"], last["test_loss"]) if last else None


def write_table(out, lines, res):
    """Writes the table's lines to OUT.md and res to OUT.json (each whole or not at all), and prints the table."""
    open(out + ".md.tmp", "w").write("\n".join(lines))
    os.replace(out + ".md.tmp", out + ".md")
    open(out + ".json.tmp", "w").write(json.dumps(res, indent=1) + "\n")
    os.replace(out + ".json.tmp", out + ".json")
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("dir")
    p.add_argument("out")
    a = p.parse_args()
    model, d, out = MODELS[a.model], a.dir, a.out
    res = {"model": a.model, "runs": [], "medians": {}}
    for side, rs in runs(d).items():
        for seed, r in rs:
            n = sum(r["class_counts"])
            share = min(r["class_counts"]) / n
            res["runs"].append({"side": side, "seed": seed, "fd": r["fd"], "coverage_entropy_bits":
                                r["coverage_entropy_bits"], "smallest_class": CLASSES[r["smallest_class"]],
                                "smallest_class_share": share, "class_counts": r["class_counts"],
                                "classifier_hash": r["classifier_hash"]})
            losses = last_losses(d, side, seed) if a.model == "diffusion" else None
            if losses:
                res["runs"][-1]["train_loss"], res["runs"][-1]["test_loss"] = losses
        if rs:
            entropy = statistics.median(r["coverage_entropy_bits"] for _, r in rs)
            res["medians"][side] = {"fd": statistics.median(r["fd"] for _, r in rs), "coverage_entropy_bits": entropy,
                                    "runs": len(rs)}
    m = res["medians"]
    if "elbo" in m and "torch" in m:
        res["fd_ratio"] = m["elbo"]["fd"] / m["torch"]["fd"]
        res["fd_gate_met"] = res["fd_ratio"] <= 1.15
    elbo_runs = [r for r in res["runs"] if r["side"] == "elbo"]
    if model["coverage_gate"]:
        res["coverage_gate_met"] = bool(elbo_runs) and all(r["smallest_class_share"] >= 0.02 for r in elbo_runs)
    cmds = open(os.path.join(d, "cmd.txt")).read() if os.path.exists(os.path.join(d, "cmd.txt")) else ""
    has_loss = any("test_loss" in r for r in res["runs"])
    lines = [f"# {model['title']} (AMD EPYC, 2026-12-06)", "", model["about"], "",
             "| side | seed | FD | coverage entropy (bits) | smallest class share | smallest class "
             "| class counts (of 10000) |" + (" train / test loss |" if has_loss else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if has_loss else "")]
    for r in sorted(res["runs"], key=lambda r: (r["side"], r["seed"])):
        loss = f" {r['train_loss']:.4f} / {r['test_loss']:.4f} |" if "test_loss" in r else (" |" if has_loss else "")
        lines.append(f"| {r['side']} | {r['seed']} | {r['fd']:.1f} | {r['coverage_entropy_bits']:.2f} | "
                     f"{100 * r['smallest_class_share']:.2f} % | {r['smallest_class']} | "
                     f"{' '.join(map(str, r['class_counts']))} |" + loss)
    lines += ["", "| side | runs | median FD | median coverage entropy |", "|---|---|---|---|"]
    for side, v in m.items():
        lines.append(f"| {side} | {v['runs']} | {v['fd']:.1f} | {v['coverage_entropy_bits']:.2f} |")
    lines.append("")
    if "fd_ratio" in res:
        lines.append(f"elbo's median FD / PyTorch's: {res['fd_ratio']:.3f} (gate <= 1.15: "
                     f"{'met' if res['fd_gate_met'] else 'NOT met'}).")
    if model["coverage_gate"]:
        lines.append(f"Every class >= 2 % in every elbo run: {'yes' if res['coverage_gate_met'] else 'no'} "
                     f"({len(elbo_runs)} elbo runs).")
    lines += ["", "## Commands", "", "```sh", cmds.rstrip(),
              f"scripts/quality_table.py --model {a.model} {d} {out}", "```", ""]
    write_table(out, lines, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
