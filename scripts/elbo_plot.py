#!/usr/bin/python3
"""Labelled plots for the elbo command (matplotlib, Agg backend), each written atomically (temp file + rename).

  elbo_plot.py scatter LATENT.csv OUT.png [--title T]
      LATENT.csv: index,label,class,mu_0..mu_{Z-1} (elbo latent-map). Scatter of the posterior means coloured by
      class, the class names in a legend; for Z > 2 the first two principal components (numpy eigh of the
      covariance), with the explained variance on the axes.
  elbo_plot.py histogram SCORES.csv OUT.png --auroc A... --threshold T... --fpr F [--title T]
      SCORES.csv: index,label,is_normal, then one column per score (elbo anomaly: recon_error,neg_elbo for a VAE,
      flow_bits_per_dim for a flow), one --auroc and --threshold per score in column order. Histograms of each score
      for normal and anomalous images, the AUROC in each panel's title and the threshold at the false-positive rate
      drawn.
Errors print one line "elbo_plot.py: FILE: reason" and exit 2.
"""
import argparse
import csv
import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fail(path, why):
    """Prints one error line naming the file and exits 2."""
    print(f"elbo_plot.py: {path}: {why}", file=sys.stderr)
    sys.exit(2)


def read_csv(path, required):
    """Rows of a CSV file as dicts; fails unless every required column is present and there is a row."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        fail(path, e.strerror)
    if not rows:
        fail(path, "no rows")
    missing = [c for c in required if c not in rows[0]]
    if missing:
        fail(path, f"missing column {missing[0]}")
    return rows


def save_atomic(fig, out):
    """Saves fig as PNG to out through a temporary file in the same directory."""
    d = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(out) + ".tmp.", dir=d)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    plt.close(fig)


def scatter(args):
    """Latent scatter coloured by class (PCA to 2-D when Z > 2)."""
    rows = read_csv(args.csv, ["label", "class", "mu_0"])
    zcols = [c for c in rows[0] if c.startswith("mu_")]
    try:
        mu = np.array([[float(r[c]) for c in zcols] for r in rows])
        labels = np.array([int(r["label"]) for r in rows])
    except ValueError as e:
        fail(args.csv, f"bad number: {e}")
    names = {int(r["label"]): r["class"] for r in rows}
    if mu.shape[1] == 1:
        fail(args.csv, "Z = 1: nothing to scatter in 2-D")
    xlabel, ylabel = "z[0] (posterior mean)", "z[1] (posterior mean)"
    if mu.shape[1] > 2:
        centred = mu - mu.mean(axis=0)
        evals, evecs = np.linalg.eigh(np.cov(centred, rowvar=False))
        order = np.argsort(evals)[::-1][:2]
        mu = centred @ evecs[:, order]
        share = evals[order] / evals.sum()
        xlabel = f"principal component 1 ({100 * share[0]:.0f} % of variance)"
        ylabel = f"principal component 2 ({100 * share[1]:.0f} % of variance)"
    fig, ax = plt.subplots(figsize=(8, 6.5))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, lab in enumerate(sorted(names)):
        sel = labels == lab
        ax.scatter(mu[sel, 0], mu[sel, 1], s=3, alpha=0.6, color=cmap(i % cmap.N), label=f"{lab}: {names[lab]}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(args.title or "posterior means")
    ax.legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="class")
    fig.tight_layout()
    save_atomic(fig, args.out)


def histogram(args):
    """Histograms of each score (reconstruction error, -ELBO, a flow's -log p), normal against anomalous images."""
    rows = read_csv(args.csv, ["is_normal"])
    keys = [k for k in rows[0] if k not in ("index", "label", "is_normal")]
    if not keys or len(keys) != len(args.auroc) or len(keys) != len(args.threshold):
        fail(args.csv, f"{len(keys)} score columns for {len(args.auroc)} --auroc and {len(args.threshold)} --threshold")
    try:
        normal = np.array([r["is_normal"] == "1" for r in rows])
        scores = {k: np.array([float(r[k]) for r in rows]) for k in keys}
    except ValueError as e:
        fail(args.csv, f"bad number: {e}")
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    titles = {"recon_error": "reconstruction error (sum of squared errors)", "neg_elbo": "-ELBO (nats)",
              "flow_bits_per_dim": "flow -log p (bits/dim)"}
    for ax, key, auroc, thr in zip(axes[0], keys, args.auroc, args.threshold):
        s = scores[key]
        bins = np.linspace(np.percentile(s, 0.1), np.percentile(s, 99.9), 60)
        ax.hist(s[normal], bins=bins, alpha=0.6, density=True, label=f"normal ({normal.sum()})")
        ax.hist(s[~normal], bins=bins, alpha=0.6, density=True, label=f"anomalous ({(~normal).sum()})")
        ax.axvline(thr, color="k", linestyle="--", linewidth=1, label=f"threshold at FPR {args.fpr:g}")
        ax.set_title(f"{titles.get(key, key)}: AUROC {auroc:.3f}", fontsize=10)
        ax.set_xlabel(titles.get(key, key).split(" (")[0])
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.suptitle(args.title or "anomaly scores", fontsize=11)
    fig.tight_layout()
    save_atomic(fig, args.out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scatter")
    s.add_argument("csv")
    s.add_argument("out")
    s.add_argument("--title")
    h = sub.add_parser("histogram")
    h.add_argument("csv")
    h.add_argument("out")
    h.add_argument("--title")
    h.add_argument("--auroc", type=float, nargs="+", required=True)
    h.add_argument("--threshold", type=float, nargs="+", required=True)
    h.add_argument("--fpr", type=float, required=True)
    args = p.parse_args()
    {"scatter": scatter, "histogram": histogram}[args.cmd](args)


if __name__ == "__main__":
    main()
