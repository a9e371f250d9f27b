#!/usr/bin/python3
"""The diffusion model's sampler trade-off (issue 20): for one checkpoint, each sampler's FD and class coverage on
COUNT samples (scored by the reference classifier) beside its images/s, and an 8x8 grid of each sampler's samples
under the same seed.

  scripts/diffusion_sampler_table.py CKPT OUT_DIR [--classifier build/classifier.safetensors] [--count 1000]
                                     [--samplers ddim50,ddim100,ddim250,ddpm] [--threads N] [--elbo build/elbo]

Runs `elbo eval --load CKPT --classifier CLF --count COUNT --sampler S [--sample-steps K] --json` per sampler (the
images/s is eval's own timing of the draw, JSON sample_images_per_s) and `elbo sample ... -n 8 -o
OUT_DIR/samples-<sampler>.png`; writes OUT_DIR/samplers.json and OUT_DIR/samplers.md (the table, the command
lines, the load average before and after: images/s read on a busy machine says so).
"""
import argparse
import json
import os
import subprocess
import sys


def sampler_args(name):
    """elbo's flags for a sampler name: ddpm, or ddimK (DDIM over K uniformly spaced steps)."""
    if name == "ddpm":
        return ["--sampler", "ddpm"]
    if name.startswith("ddim") and name[4:].isdigit():
        return ["--sampler", "ddim", "--sample-steps", name[4:]]
    sys.exit(f"diffusion_sampler_table.py: --samplers: '{name}' is not ddpm or ddim<steps>")


def run(cmd):
    """Runs cmd (a list), returns its stdout; exits with its stderr on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"diffusion_sampler_table.py: {' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("out_dir")
    p.add_argument("--classifier", default="build/classifier.safetensors")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--samplers", default="ddim50,ddim100,ddim250,ddpm")
    p.add_argument("--threads", type=int, default=0, help="0: elbo's default (one per core)")
    p.add_argument("--elbo", default="build/elbo")
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    threads = ["--threads", str(a.threads)] if a.threads else []
    rows, cmds = [], []
    load_before = os.getloadavg()[0]
    for name in a.samplers.split(","):
        flags = sampler_args(name)
        ev = [a.elbo, "eval", "--load", a.ckpt, "--classifier", a.classifier, "--count", str(a.count), *flags,
              *threads, "--json"]
        png = os.path.join(a.out_dir, f"samples-{name}.png")
        sm = [a.elbo, "sample", "--load", a.ckpt, *flags, *threads, "-n", "8", "-o", png]
        r = json.loads(run(ev))
        run(sm)
        cmds += [" ".join(ev), " ".join(sm)]
        rows.append({"sampler": name, "fd": r["fd"], "fd_floor": r["fd_floor"],
                     "coverage_entropy_bits": r["coverage_entropy_bits"], "smallest_class_share":
                     r["smallest_class_share"], "images": r["images"], "sample_seconds": r["sample_seconds"],
                     "images_per_s": r["sample_images_per_s"], "png": os.path.basename(png)})
        print(f"{name}: FD {r['fd']:.2f}, {r['sample_images_per_s']:.1f} images/s", flush=True)
    load_after = os.getloadavg()[0]
    out = {"checkpoint": a.ckpt, "classifier": a.classifier, "count": a.count, "load_before": load_before,
           "load_after": load_after, "rows": rows, "commands": cmds}
    with open(os.path.join(a.out_dir, "samplers.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(a.out_dir, "samplers.md"), "w") as f:
        f.write(f"# Sampler trade-off: {a.ckpt}, {a.count} samples per sampler\n\n")
        f.write(f"Load average {load_before:.1f} before, {load_after:.1f} after.\n\n")
        f.write("| sampler | FD | FD floor | coverage (bits) | smallest class | images/s | grid |\n")
        f.write("|---|---:|---:|---:|---:|---:|---|\n")
        for r in rows:
            f.write(f"| {r['sampler']} | {r['fd']:.2f} | {r['fd_floor']:.2f} | {r['coverage_entropy_bits']:.3f} | "
                    f"{100 * r['smallest_class_share']:.1f} % | {r['images_per_s']:.1f} | {r['png']} |\n")
        f.write("\nCommands:\n\n")
        for c in cmds:
            f.write(f"    {c}\n")


if __name__ == "__main__":
    main()
