#!/usr/bin/python3
"""The picture of `elbo zoo`: each family's sample grid side by side (the same seed), one row per precision,
the numbers of the zoo's table in the captions.

  scripts/zoo_figure.py results/zoo-<cpu>-<date>.json

Reads the JSON and the grids it names (relative to the JSON's directory) and writes the .png beside the JSON
(through a temporary file and a rename). `elbo zoo` runs it; it can be rerun on a JSON alone.
"""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def fmt(x, digits):
    """x with `digits` decimals, or None when it is missing or not finite."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return f"{x:.{digits}f}"


def caption(run):
    """Three short lines: the family and precision, its own metric and FD, its speeds."""
    head = f"{run.get('title', run['family'])} {run['precision']}"
    if "error" in run:
        return head + "\nfailed"
    m = run.get("metric") or {}
    s = run.get("score") or {}
    t = run.get("train") or {}
    own = {
        "vae": lambda: f"-ELBO {fmt(m.get('neg_elbo_nats'), 1)} nats",
        "flow": lambda: f"{fmt(m.get('bits_per_dim'), 3)} bits/dim",
        "diffusion": lambda: f"bound {fmt(m.get('bound_bits_per_dim'), 3)} bits/dim",
    }.get(run["family"], lambda: "no likelihood")()
    quality = f"FD {fmt(s.get('fd'), 1)}, coverage {fmt(s.get('coverage_entropy_bits'), 2)} bits"
    pct = fmt(run.get("pct_peak"), 0)
    speed = f"train {fmt(t.get('samples_per_s'), 0)}/s" + (f" ({pct} % peak)" if pct else "")
    speed += f", sample {fmt(s.get('sample_images_per_s'), 0)}/s"
    return "\n".join([head, own + "; " + quality, speed])


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: zoo_figure.py ZOO.json")
    path = sys.argv[1]
    with open(path) as f:
        zoo = json.load(f)
    here = os.path.dirname(path)
    runs = zoo["runs"]
    families = list(dict.fromkeys(r["family"] for r in runs))
    precisions = list(dict.fromkeys(r["precision"] for r in runs))
    fig, axes = plt.subplots(len(precisions), len(families), squeeze=False,
                             figsize=(3.6 * len(families), 4.1 * len(precisions) + 0.6))
    for ax in axes.flat:
        ax.axis("off")
    for run in runs:
        ax = axes[precisions.index(run["precision"])][families.index(run["family"])]
        grid = run.get("grid")
        if grid and os.path.exists(os.path.join(here, grid)):
            ax.imshow(mpimg.imread(os.path.join(here, grid)), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(caption(run), fontsize=8)
    m = zoo.get("machine", {})
    st = zoo.get("settings", {})
    fig.suptitle(f"elbo zoo: {m.get('cpu', '?')}, {st.get('threads', '?')} threads, {m.get('isa', '?')} kernels, "
                 f"seed {st.get('seed', '?')}, {zoo.get('date', '')}", fontsize=10)
    fig.tight_layout()
    out = os.path.splitext(path)[0] + ".png"
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
