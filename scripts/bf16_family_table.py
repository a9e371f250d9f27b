#!/usr/bin/python3
"""bf16 against fp32 for the GAN, the flow and the diffusion model (issue 21's "the other models' metrics"): each
family's 3 bf16 seeds (BF16DIR/<family>-bf16-s<seed>.log and .eval.json, run_family.sh there) against elbo's 3 fp32
seeds of that family's quality gate (the flow also over its further seeds in both precisions, FLOW_MORE), with the
gate each family's comparison with PyTorch uses, fp32 in PyTorch's place: the flow's mean test bits/dim within 1 % of fp32's (the VAE's rule for its -ELBO; the flow gate's own bound,
mean + max(1 %, 2 sd), reported too), the GAN's and the diffusion model's median FD <= 1.15 x fp32's (and every
class >= 2 % of each GAN run's samples). Writes OUT.md and OUT.json.

  scripts/bf16_family_table.py BF16DIR OUT
  e.g. scripts/bf16_family_table.py results/bf16-quality-amd-epyc-20261206 results/bf16-quality-amd-epyc-20261206/families
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality_table import write_table  # noqa: E402

# Per family: where elbo's fp32 gate runs are, and the file of a seed's fp32 and bf16 result.
FP32 = {
    "flow": ("results/flow-quality-amd-epyc-20261206", "elbo-seed{s}.jsonl", "flow-bf16-s{s}.log"),
    "gan": ("results/gan-quality-amd-epyc-20261206", "elbo-s{s}.eval.json", "gan-bf16-s{s}.eval.json"),
    "diffusion": ("results/diffusion-quality-amd-epyc-20261206", "elbo-s{s}.eval.json", "diffusion-bf16-s{s}.eval.json"),
}
# The flow's further seeds, both precisions run side by side with the same binary: (directory, fp32 file, bf16 file,
# seeds).
FLOW_MORE = ("results/flow-bf16-seeds-amd-epyc-20261207", "flow-fp32-s{s}.log", "flow-bf16-s{s}.log", (4, 5, 6))


def last_epoch(path):
    """The last epoch line of a training log (--json), or None."""
    last = None
    try:
        for line in open(path):
            if line.startswith("{") and '"epoch"' in line:
                last = json.loads(line)
    except OSError:
        return None
    return last


def metric(family, path):
    """A run's metric: the flow's final test bits/dim, else the eval's {fd, smallest class share}; None if absent."""
    if family == "flow":
        e = last_epoch(path)
        return {"bits_per_dim": e["test_bits_per_dim"], "epochs": e["epoch"]} if e else None
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        return None
    return {"fd": r["fd"], "smallest_class_share": min(r["class_counts"]) / sum(r["class_counts"]),
            "classifier_hash": r["classifier_hash"]}


def flow_gates(f, b):
    """The flow's gates for fp32 results f and bf16 results b (test bits/dim): means, fp32's sd, bf16 - fp32
    relative, within 1 %, and the flow gate's bound mean + max(1 %, 2 sd)."""
    mf, mb, sd = statistics.mean(f), statistics.mean(b), statistics.stdev(f)
    return {"fp32_mean": mf, "bf16_mean": mb, "fp32_sd": sd, "rel": (mb - mf) / mf, "gate_met": mb <= mf * 1.01,
            "flow_gate_bound": mf + max(0.01 * mf, 2 * sd)}


def flow_all_seeds(bf16_dir, res):
    """The flow over seeds 1-3 and FLOW_MORE's seeds, where they exist: the table's lines; res["flow_all_seeds"]."""
    more_dir, fp32_more, bf16_more, seeds = FLOW_MORE
    fp32_dir, fp32_name, bf16_name = FP32["flow"]
    rows = []
    for s in (1, 2, 3) + seeds:
        fp32_path, bf16_path = ((os.path.join(fp32_dir, fp32_name), os.path.join(bf16_dir, bf16_name)) if s <= 3 else
                                (os.path.join(more_dir, fp32_more), os.path.join(more_dir, bf16_more)))
        f, b = metric("flow", fp32_path.format(s=s)), metric("flow", bf16_path.format(s=s))
        if f and b and f["epochs"] == 20 and b["epochs"] == 20:
            rows.append((s, f["bits_per_dim"], b["bits_per_dim"]))
    if len(rows) <= 3:
        return []
    f, b = [r[1] for r in rows], [r[2] for r in rows]
    g = flow_gates(f, b)
    mf, mb, sf, sb, bound = g["fp32_mean"], g["bf16_mean"], g["fp32_sd"], statistics.stdev(b), g["flow_gate_bound"]
    medf, medb = statistics.median(f), statistics.median(b)
    res["flow_all_seeds"] = {"seeds": [r[0] for r in rows], "fp32": f, "bf16": b, "fp32_mean": mf, "bf16_mean": mb,
                             "fp32_sd": sf, "bf16_sd": sb, "rel": g["rel"], "flow_gate_bound": bound,
                             "fp32_median": medf, "bf16_median": medb}
    lines = [f"## flow, {len(rows)} seeds", "", "Seeds 4 on: both precisions side by side, one thread each "
             f"({more_dir}). Test bits/dim after 20 epochs.", "", "| seed | fp32 | bf16 |", "|---|---|---|"]
    lines += [f"| {s} | {x:.4f} | {y:.4f} |" for s, x, y in rows]
    lines += ["", f"mean (sd) fp32 {mf:.4f} ({sf:.3f}), bf16 {mb:.4f} ({sb:.3f}): bf16 - fp32 "
              f"{100 * g['rel']:+.2f} % (within 1 %: {'met' if g['gate_met'] else 'NOT met'}; the flow "
              f"gate's bound mean + max(1 %, 2 sd) = {bound:.4f}: {'met' if mb <= bound else 'NOT met'}); medians, "
              f"which a run ending in a loss spike moves less: fp32 {medf:.4f}, bf16 {medb:.4f} "
              f"({100 * (medb - medf) / medf:+.2f} %).", ""]
    return lines


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    bf16_dir, out = sys.argv[1], sys.argv[2]
    res, lines = {}, ["# bf16 against fp32: the GAN, the flow and the diffusion model (AMD EPYC, 2026-12-06)", "",
                      "Each family's quality-gate recipe (one thread; fp32 runs: elbo's side of that family's gate), "
                      "3 seeds in bf16 (`--precision bf16`, run_family.sh here) against its 3 fp32 seeds.", ""]
    for family, (fp32_dir, fp32_name, bf16_name) in FP32.items():
        runs = {"fp32": [], "bf16": []}
        for s in (1, 2, 3):
            for prec, path in (("fp32", os.path.join(fp32_dir, fp32_name.format(s=s))),
                               ("bf16", os.path.join(bf16_dir, bf16_name.format(s=s)))):
                m = metric(family, path)
                if m:
                    runs[prec].append(dict(m, seed=s))
        r = {"runs": runs}
        key = "bits_per_dim" if family == "flow" else "fd"
        lines += [f"## {family}", "", "| seed | fp32 | bf16 |", "|---|---|---|"]
        for s in (1, 2, 3):
            cell = [next((f"{x[key]:.4f}" if family == "flow" else f"{x[key]:.1f}" for x in runs[p] if x["seed"] == s),
                         "(missing)") for p in ("fp32", "bf16")]
            lines.append(f"| {s} | {cell[0]} | {cell[1]} |")
        if len(runs["fp32"]) == 3 and len(runs["bf16"]) == 3:
            f, b = [x[key] for x in runs["fp32"]], [x[key] for x in runs["bf16"]]
            if family == "flow":
                g = flow_gates(f, b)
                mf, mb = g["fp32_mean"], g["bf16_mean"]
                r.update((k, g[k]) for k in ("fp32_mean", "bf16_mean", "rel", "gate_met", "flow_gate_bound"))
                lines += ["", f"mean fp32 {mf:.4f}, bf16 {mb:.4f}: bf16 - fp32 {100 * r['rel']:+.2f} % (gate: within "
                          f"1 %: {'met' if r['gate_met'] else 'NOT met'}; the flow gate's bound mean + max(1 %, 2 sd) = "
                          f"{r['flow_gate_bound']:.4f}: {'met' if mb <= r['flow_gate_bound'] else 'NOT met'})."]
            else:
                mf, mb = statistics.median(f), statistics.median(b)
                r.update(fp32_median_fd=mf, bf16_median_fd=mb, fd_ratio=mb / mf, gate_met=mb / mf <= 1.15)
                line = f"median FD fp32 {mf:.1f}, bf16 {mb:.1f}: ratio {mb / mf:.3f} (gate <= 1.15: " \
                       f"{'met' if r['gate_met'] else 'NOT met'})"
                if family == "gan":
                    cov = all(x["smallest_class_share"] >= 0.02 for x in runs["bf16"])
                    r["coverage_gate_met"] = cov
                    line += f"; every class >= 2 % of every bf16 run's samples: {'yes' if cov else 'no'}"
                lines += ["", line + "."]
        lines.append("")
        res[family] = r
    lines += flow_all_seeds(bf16_dir, res)
    lines += ["## Commands", "", "```sh", "# S in 1 2 3, F in gan flow diffusion (from the top level):",
              "results/bf16-quality-amd-epyc-20261206/run_family.sh F S", f"scripts/bf16_family_table.py {bf16_dir} {out}",
              "```", ""]
    write_table(out, lines, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
