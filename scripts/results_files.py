"""Naming and writing the files scripts put into results/: the CPU slug elbo_bench uses, numbered names per
day, atomic writes."""
import datetime
import os
import re
import subprocess


def elbo_info(elbo):
    """(CPU brand string, ISA path chosen) from `elbo info`; raises OSError when it cannot run."""
    p = subprocess.run([elbo, "info"], capture_output=True, text=True)
    if p.returncode != 0:
        raise OSError(f"{elbo} info: exit status {p.returncode}")
    fields = dict(re.findall(r"^([a-z ]+):\s+(.*)$", p.stdout, re.M))
    cpu = re.sub(r"\s+\([^()]*\)$", "", fields.get("cpu", "unknown cpu"))  # drop " (x86_64)"
    return cpu, fields.get("isa chosen", "?")


def cpu_slug(model):
    """The CPU brand string as a file-name slug, as elbo_bench names its results (bench/bench_context.c)."""
    model = model.split(" @ ")[0]
    model = re.sub(r"\((r|tm)\)", "", model, flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return slug or "unknown-cpu"


def dated_path(out_dir, prefix, slug, extensions):
    """OUT_DIR/<prefix>-<slug>-<yyyymmdd> (no extension), numbered -2, -3, ... when a file of that name with
    one of the extensions exists."""
    base = os.path.join(out_dir, f"{prefix}-{slug}-{datetime.date.today():%Y%m%d}")
    path, n = base, 2
    while any(os.path.exists(path + e) for e in extensions):
        path, n = f"{base}-{n}", n + 1
    return path


def write_atomic(path, text):
    """Writes text to path through a temporary file and a rename."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
