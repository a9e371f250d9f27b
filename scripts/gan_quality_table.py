#!/usr/bin/python3
"""The GAN quality gate's table (issue 18): elbo's and the PyTorch reference's runs of the same recipe, each scored
by the same classifier (`elbo eval --classifier ... --json`, one DIR/<side>-s<seed>.eval.json per run), into
OUT.md and OUT.json: FD, coverage entropy and smallest class share per run, each side's medians, and the gate's
two conditions (elbo's median FD <= 1.15 x PyTorch's; every class >= 2 % of every elbo run's samples).

  scripts/gan_quality_table.py DIR OUT
  e.g. scripts/gan_quality_table.py results/gan-quality-amd-epyc-20261206 results/gan-quality-amd-epyc-20261206
"""
import glob
import json
import os
import re
import statistics
import sys

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


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    d, out = sys.argv[1], sys.argv[2]
    res = {"runs": [], "medians": {}}
    for side, rs in runs(d).items():
        for seed, r in rs:
            n = sum(r["class_counts"])
            share = min(r["class_counts"]) / n
            res["runs"].append({"side": side, "seed": seed, "fd": r["fd"], "coverage_entropy_bits":
                                r["coverage_entropy_bits"], "smallest_class": CLASSES[r["smallest_class"]],
                                "smallest_class_share": share, "class_counts": r["class_counts"],
                                "classifier_hash": r["classifier_hash"]})
        if rs:
            entropy = statistics.median(r["coverage_entropy_bits"] for _, r in rs)
            res["medians"][side] = {"fd": statistics.median(r["fd"] for _, r in rs), "coverage_entropy_bits": entropy,
                                    "runs": len(rs)}
    m = res["medians"]
    if "elbo" in m and "torch" in m:
        res["fd_ratio"] = m["elbo"]["fd"] / m["torch"]["fd"]
        res["fd_gate_met"] = res["fd_ratio"] <= 1.15
    elbo_runs = [r for r in res["runs"] if r["side"] == "elbo"]
    res["coverage_gate_met"] = bool(elbo_runs) and all(r["smallest_class_share"] >= 0.02 for r in elbo_runs)
    cmds = open(os.path.join(d, "cmd.txt")).read() if os.path.exists(os.path.join(d, "cmd.txt")) else ""
    lines = ["# GAN quality after 30 epochs: elbo vs the PyTorch reference of the same recipe (AMD EPYC, 2026-12-06)",
             "", "The default recipe (G 64-256-512-784 sigmoid, D 784-512-256-1 spectrally normalized, LeakyReLU 0.2, "
             "Adam lr 2e-4 betas 0.5 / 0.999 for both, batch 128, BCE-with-logits, non-saturating G loss), 30 epochs "
             "on Fashion-MNIST, seeds 1, 2, 3 on each side; 10000 samples of each run scored by the same classifier "
             "(FD in its last hidden layer, floor 0.56; coverage entropy of its predicted classes, 3.32 bits when "
             "uniform).", "", "| side | seed | FD | coverage entropy (bits) | smallest class share | smallest class "
             "| class counts (of 10000) |", "|---|---|---|---|---|---|---|"]
    for r in sorted(res["runs"], key=lambda r: (r["side"], r["seed"])):
        lines.append(f"| {r['side']} | {r['seed']} | {r['fd']:.1f} | {r['coverage_entropy_bits']:.2f} | "
                     f"{100 * r['smallest_class_share']:.2f} % | {r['smallest_class']} | "
                     f"{' '.join(map(str, r['class_counts']))} |")
    lines += ["", "| side | runs | median FD | median coverage entropy |", "|---|---|---|---|"]
    for side, v in m.items():
        lines.append(f"| {side} | {v['runs']} | {v['fd']:.1f} | {v['coverage_entropy_bits']:.2f} |")
    lines.append("")
    if "fd_ratio" in res:
        lines.append(f"elbo's median FD / PyTorch's: {res['fd_ratio']:.3f} (gate <= 1.15: "
                     f"{'met' if res['fd_gate_met'] else 'NOT met'}).")
    lines.append(f"Every class >= 2 % in every elbo run: {'yes' if res['coverage_gate_met'] else 'no'} "
                 f"({len(elbo_runs)} elbo runs).")
    lines += ["", "## Commands", "", "```sh", cmds.rstrip(), "scripts/gan_quality_table.py " + d + " " + out, "```", ""]
    tmp = out + ".md.tmp"
    open(tmp, "w").write("\n".join(lines))
    os.replace(tmp, out + ".md")
    open(out + ".json.tmp", "w").write(json.dumps(res, indent=1) + "\n")
    os.replace(out + ".json.tmp", out + ".json")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
