#!/usr/bin/python3
"""elbo and PyTorch side by side: training samples/s of the same model, loss, optimizer and data on this
machine, in one run, at batch 64, 128, 256 and 1024 (`make bench-pytorch`).

  scripts/bench_pytorch.py [--batches 64,128,256,1024] [--rounds 2] [--seconds 2] [--samples 30000]
                           [--model vae|gan|flow|diffusion] [--out-dir results] [--json]

Model 784-400-20 (MSE), Adam 1e-3, Fashion-MNIST's training images, seed 1, on both sides.
- PyTorch (Debian's python3-torch, its fp32 GEMMs in OpenBLAS) gets its best configuration on this CPU: every
  pair of torch threads (torch.set_num_threads) x OpenBLAS threads (OPENBLAS_NUM_THREADS, read when OpenBLAS
  loads, so one process per configuration) from {1, 2, cores}, each on two OpenBLAS kernel choices: its own
  for this CPU (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from that child's environment, as some
  environments force a core for older OpenBLAS builds) and the forced --forced-core (Haswell, AVX2). Each
  process reports the core OpenBLAS ran (openblas_get_corename) and times every batch size for --seconds after
  20 warm-up steps (scripts/torch_throughput.py). The fp32 figure is the best of all of them, kernel named.
- PyTorch bf16 autocast (forward and loss under torch.autocast("cpu", dtype=torch.bfloat16), fp32 master weights
  and Adam; its GEMMs in oneDNN) is its own row, searched over the same thread pairs on OpenBLAS's own kernel.
- elbo: `elbo train --batch B --steps N --threads T --json` with N steps of about --samples samples, for T in
  {1, 2, cores}; its samples/s counts the training steps only (not loading, not the test evaluation). The VAE
  also with `--precision bf16` (bf16 GEMM operands, fp32 accumulation and master weights), the row to compare
  with PyTorch's autocast, where this CPU runs bf16 (otherwise the row says why not).
- --model gan|flow|diffusion: the same comparison for that model (elbo `train --model M`; PyTorch: the same model
  in scripts/torch_throughput.py --model M, fp32 only), written to OUT_DIR/pytorch-M-<cpu>-<yyyymmdd>.*.
The measurements run in --rounds interleaved rounds (elbo, then each PyTorch configuration); each side's figure
is its best configuration's best round, as the least disturbed one on a shared machine. The table is printed and
written to OUT_DIR/pytorch-<cpu>-<yyyymmdd>.md and .json (-2, -3, ... for later runs the same day).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

from results_files import cpu_slug, dated_path, elbo_info, write_atomic
from torch_throughput import FORCING_VARS, openblas_env

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# What each --model trains, in the report's words.
MODELS = {"vae": "784-400-20 VAE, MSE, Adam 1e-3",
          "flow": "RealNVP flow (8 checkerboard couplings, -log p with uniform dequantization, Adam 1e-3), both sides "
                  "with trimmed coupling nets (the 392 kept pixels in, s and t of the 392 transformed ones out: "
                  "392-512-512-784, 41 MFLOP per training image; PyTorch gathers and index_copies, "
                  "tests/parity/flow_torch.py TrimmedCoupling); no bf16 row",
          "gan": "GAN, the default recipe (G 64-256-512-784, D 784-512-256-1 spectrally normalized, two Adam "
                 "optimizers lr 2e-4 betas 0.5 / 0.999; samples/s of real images); no bf16 row",
          "diffusion": "DDPM eps-prediction residual MLP (784 -> 1024, 3 blocks, time embedding 128 -> 256 -> 256), "
                       "simple loss, Adam 1e-3, EMA 0.999 updated every step; no bf16 row"}


class RunError(Exception):
    """A measurement command failed: its message names the command and its last line of stderr."""


def run_json_lines(cmd, env=None):
    """Runs cmd; returns the JSON objects it printed, one per line. Raises RunError when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunError(f"{' '.join(cmd)}: exit status {p.returncode}: {last}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def thread_counts(cores):
    """The thread counts tried: 1, 2 and all cores (those that exist)."""
    return sorted({t for t in (1, 2, cores) if t <= cores})


def measure_elbo(a, batch, threads, precision="fp32"):
    """elbo's samples/s at (batch, threads, precision) over about a.samples samples (a GAN: a.samples / 4)."""
    cost = {"gan": 4, "flow": 10}.get(a.model, 1)  # a GAN step costs ~4 VAE steps, a flow's ~50 (fewer, >= 4 steps)
    steps = max(10 if a.model == "vae" else 4, -(-a.samples // batch) // cost)
    r = run_json_lines([a.elbo, "train", "--model", a.model, "--data", a.data, "--batch", str(batch), "--steps",
                        str(steps), "--threads", str(threads), "--precision", precision, "--json"])
    return r[-1]["samples_per_s"]


def torch_configs(threads, forced_core, bf16=True):
    """The PyTorch configurations searched, as (precision, requested OpenBLAS core, torch threads, OpenBLAS
    threads): fp32 on OpenBLAS's own core ("auto") and on forced_core, bf16 autocast on "auto" (unless not bf16)."""
    pairs = [(t, b) for t in threads for b in threads]
    return ([("fp32", "auto", t, b) for t, b in pairs] + [("fp32", forced_core, t, b) for t, b in pairs]
            + ([("bf16", "auto", t, b) for t, b in pairs] if bf16 else []))


def config_key(cfg):
    """A configuration's name in the results: precision/core/torch threads x OpenBLAS threads."""
    precision, core, t, b = cfg
    return f"{precision}/{core}/{t}x{b}"


def measure_torch(a, batches, cfg, model="vae"):
    """PyTorch's samples/s per batch size at one configuration, and what its process reported: framework and
    the OpenBLAS core it ran. The child's environment has the forcing variables cleared (core "auto") or the
    core forced, before torch loads."""
    precision, core, torch_threads, blas_threads = cfg
    env = openblas_env(os.environ, core, blas_threads)
    rs = run_json_lines([sys.executable, os.path.join(HERE, "torch_throughput.py"), "--batch",
                         ",".join(map(str, batches)), "--torch-threads", str(torch_threads), "--blas-threads",
                         str(blas_threads), "--openblas-core", core, "--precision", precision,
                         "--seconds", str(a.seconds), "--data", a.data, "--model", a.model, "--json"], env)
    if not rs:
        raise RunError(f"torch_throughput.py ({config_key(cfg)}): no results")
    return ({r["batch"]: r["samples_per_s"] for r in rs},
            {k: rs[0][k] for k in ("framework", "openblas_core", "openblas_config")})


def best(cells, keep=lambda c: True):
    """The (configuration, samples/s) with the highest samples/s among {configuration: [rates over rounds]},
    among the configurations keep() accepts."""
    cfg = max((c for c in cells if keep(c)), key=lambda c: max(cells[c]))
    return cfg, max(cells[cfg])


def markdown(res):
    """The Markdown report: the side-by-side table, the kernel each configuration ran, then every configuration
    measured."""
    forcing = ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in res["environment_forcing"].items())
    lines = [f"# elbo vs PyTorch, training samples/s ({res['cpu']}, {res['cores']} cores, {res['date']})", "",
             f"{MODELS[res.get('model', 'vae')]}, Fashion-MNIST; elbo {res['elbo_commit']} ({res['isa']}), "
             f"{res['pytorch']} (fp32 GEMMs in OpenBLAS, bf16 GEMMs in oneDNN); best configuration of each side "
             f"and row, best of {res['rounds']} rounds. PyTorch fp32 is the best over torch threads x OpenBLAS "
             f"threads on two kernel choices: OpenBLAS's own for this CPU (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE "
             f"cleared in its process) and forced {res['forced_core']}; the core that ran is named "
             f"(openblas_get_corename through ctypes on the libopenblas torch loaded). PyTorch bf16 is "
             f"torch.autocast(\"cpu\", dtype=torch.bfloat16) around the forward and the loss, fp32 master weights "
             f"and Adam, its own row. Environment of this run: {forcing}. "
             f"Load average (1, 5, 15 min) at start {res['load_avg_start']}, at end {res['load_avg_end']}: "
             f"the machine is shared, other work may have run alongside.", "",
             "| batch | elbo samples/s | elbo threads | PyTorch fp32 samples/s | PyTorch fp32 config (OpenBLAS core, "
             "torch × OpenBLAS threads) | elbo / PyTorch fp32 | PyTorch bf16 autocast samples/s | bf16 threads "
             "(torch × OpenBLAS) | elbo / PyTorch bf16 | elbo bf16 samples/s | elbo bf16 threads | "
             "elbo bf16 / PyTorch bf16 |", "|---" * 12 + "|"]
    if res.get("model", "vae") != "vae":  # no bf16 row: its three columns are dropped
        lines[-2] = "|".join(lines[-2].split("|")[:7]) + "|"
        lines[-1] = "|---" * 6 + "|"
    for r in res["rows"]:
        if res.get("model", "vae") != "vae":
            lines.append(f"| {r['batch']} | {r['elbo_samples_per_s']:,.0f} | {r['elbo_threads']} | "
                         f"{r['pytorch_samples_per_s']:,.0f} | {r['pytorch_openblas_core']}, "
                         f"{r['pytorch_torch_threads']} × {r['pytorch_blas_threads']} | {r['ratio']:.2f}× |")
            continue
        lines.append(f"| {r['batch']} | {r['elbo_samples_per_s']:,.0f} | {r['elbo_threads']} | "
                     f"{r['pytorch_samples_per_s']:,.0f} | {r['pytorch_openblas_core']}, {r['pytorch_torch_threads']} "
                     f"× {r['pytorch_blas_threads']} | {r['ratio']:.2f}× | {r['pytorch_bf16_samples_per_s']:,.0f} | "
                     f"{r['pytorch_bf16_torch_threads']} × {r['pytorch_bf16_blas_threads']} | {r['ratio_bf16']:.2f}× | "
                     + (f"{r['elbo_bf16_samples_per_s']:,.0f} | {r['elbo_bf16_threads']} | {r['ratio_elbo_bf16']:.2f}× |"
                        if r.get("elbo_bf16_threads") else "- | - | - |"))
    if res.get("model", "vae") == "vae":
        lines += ["", "elbo bf16 is `elbo train --precision bf16` (bf16 GEMM operands, fp32 accumulation, fp32 master "
                  "weights and Adam)" + (f"; not run on this CPU: {res['elbo_bf16_missing']}"
                                         if res.get("elbo_bf16_missing") else ".")]
    lines += ["", "OpenBLAS core each PyTorch configuration ran (requested → reported):", ""]
    for k, c in res["pytorch_configs"].items():
        lines.append(f"- {k}: {c['openblas_core_requested']} → {c['openblas_core']} ({c['openblas_config']})")
    keys = list(res["pytorch_configs"])
    lines += ["", "Every configuration (best round, samples/s):", "",
              "| batch | " + " | ".join(f"elbo t={t}" for t in res["elbo_threads"]) + " | "
              + " | ".join(f"torch {k}" for k in keys) + " |",
              "|---" * (1 + len(res["elbo_threads"]) + len(keys)) + "|"]
    for r in res["rows"]:
        lines.append(f"| {r['batch']} | " + " | ".join(f"{v:,.0f}" for v in r["elbo_all"]) + " | "
                     + " | ".join(f"{max(r['pytorch_rounds'][k]):,.0f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="64,128,256,1024")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of them counts (default 2)")
    p.add_argument("--seconds", type=float, default=2.0, help="PyTorch: timed seconds per batch size (default 2)")
    p.add_argument("--samples", type=int, default=30000, help="elbo: samples per measurement (default 30000)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--elbo", default=os.path.join(ROOT, "build", "elbo"))
    p.add_argument("--forced-core", default="Haswell",
                   help="the OpenBLAS core tried besides OpenBLAS's own choice (default Haswell, AVX2)")
    p.add_argument("--out-dir", default=None, help="write pytorch-<cpu>-<date>.md and .json there")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--model", choices=sorted(MODELS), default="vae",
                   help="the model both sides train (default vae; gan, flow, diffusion: fp32 only, no bf16 row)")
    a = p.parse_args()
    try:
        batches = [int(b) for b in a.batches.split(",")]
        if any(b < 1 for b in batches):
            raise ValueError
    except ValueError:
        p.error(f"--batches: expected positive integers separated by commas, got '{a.batches}'")
    if a.rounds < 1 or a.seconds <= 0 or a.samples < 1:
        p.error("--rounds, --seconds and --samples must be positive")
    if not os.access(a.elbo, os.X_OK):
        print(f"bench_pytorch: {a.elbo}: not found or not executable (run make first)", file=sys.stderr)
        return 2

    load_start = os.getloadavg()
    try:
        cpu, isa = elbo_info(a.elbo)
        cores = len(os.sched_getaffinity(0))
        threads = thread_counts(cores)
        configs = torch_configs(threads, a.forced_core, bf16=a.model == "vae")
        elbo_cells = {b: {t: [] for t in threads} for b in batches}
        elbo_bf16_cells = {b: {t: [] for t in threads} for b in batches} if a.model == "vae" else None
        elbo_bf16_missing = None  # why elbo has no bf16 row on this CPU, when it has none
        torch_cells = {b: {c: [] for c in configs} for b in batches}
        reported = {}
        for rnd in range(1, a.rounds + 1):
            print(f"bench-pytorch: round {rnd}/{a.rounds}: elbo at threads {threads}, PyTorch at {len(configs)} "
                  f"configurations (fp32 on OpenBLAS's own core and on {a.forced_core}"
                  f"{', bf16 autocast' if a.model == 'vae' else ''}; torch x OpenBLAS threads)", file=sys.stderr,
                  flush=True)
            for b in batches:
                for t in threads:
                    elbo_cells[b][t].append(measure_elbo(a, b, t))
                    if elbo_bf16_cells is not None and elbo_bf16_missing is None:
                        try:
                            elbo_bf16_cells[b][t].append(measure_elbo(a, b, t, "bf16"))
                        except RunError as e:  # e.g. no AVX512_BF16 / FEAT_BF16: the refusal line
                            elbo_bf16_missing = str(e).rsplit(": ", 1)[-1]
            for cfg in configs:
                rates, reported[cfg] = measure_torch(a, batches, cfg)
                for b in batches:
                    torch_cells[b][cfg].append(rates[b])
    except (RunError, OSError) as e:
        print(f"bench_pytorch: {e}", file=sys.stderr)
        return 2

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    rows = []
    for b in batches:
        et, er = best(elbo_cells[b])
        fp32, tr = best(torch_cells[b], lambda c: c[0] == "fp32")
        has_bf16 = any(c[0] == "bf16" for c in torch_cells[b])
        bf16, hr = best(torch_cells[b], lambda c: c[0] == "bf16") if has_bf16 else (("bf16", "-", 0, 0), float("nan"))
        if elbo_bf16_cells is not None and elbo_bf16_missing is None:
            e16t, e16r = best(elbo_bf16_cells[b])
        else:
            e16t, e16r = None, float("nan")
        rows.append({"batch": b, "elbo_samples_per_s": er, "elbo_threads": et, "pytorch_samples_per_s": tr,
                     "elbo_bf16_samples_per_s": e16r, "elbo_bf16_threads": e16t, "ratio_elbo_bf16": e16r / hr,
                     "pytorch_config": config_key(fp32), "pytorch_openblas_core": reported[fp32]["openblas_core"],
                     "pytorch_torch_threads": fp32[2], "pytorch_blas_threads": fp32[3], "ratio": er / tr,
                     "pytorch_bf16_samples_per_s": hr, "pytorch_bf16_config": config_key(bf16),
                     "pytorch_bf16_torch_threads": bf16[2], "pytorch_bf16_blas_threads": bf16[3],
                     "ratio_bf16": er / hr, "elbo_all": [max(elbo_cells[b][t]) for t in threads],
                     "elbo_rounds": {str(t): v for t, v in elbo_cells[b].items()},
                     "pytorch_rounds": {config_key(c): v for c, v in torch_cells[b].items()}})
    res = {"model": a.model, "cpu": cpu, "cores": cores, "isa": isa, "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "elbo_commit": commit, "pytorch": reported[configs[0]]["framework"], "rounds": a.rounds,
           "pytorch_seconds": a.seconds, "elbo_samples": a.samples, "elbo_threads": threads,
           "elbo_bf16_missing": elbo_bf16_missing,
           "forced_core": a.forced_core, "environment_forcing": {v: os.environ.get(v) for v in FORCING_VARS},
           "load_avg_start": [round(x, 2) for x in load_start], "load_avg_end": [round(x, 2) for x in os.getloadavg()],
           "pytorch_configs": {config_key(c): {"precision": c[0], "openblas_core_requested": c[1],
                                               "torch_threads": c[2], "blas_threads": c[3], **reported[c]}
                               for c in configs},
           "rows": rows}

    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"\nelbo vs PyTorch, training samples/s ({cpu}, {cores} cores; best configuration of each side, "
              f"best of {a.rounds} rounds; load average {res['load_avg_start'][0]} at start, "
              f"{res['load_avg_end'][0]} at end)")
        print(f"{'batch':>6} {'elbo':>10} {'thr':>4} {'PyTorch fp32':>13} {'core, torch x BLAS':>20} {'ratio':>7} "
              f"{'PyTorch bf16':>13} {'torch x BLAS':>13} {'ratio':>7} {'elbo bf16':>10} {'ratio':>7}")
        for r in rows:
            fp32_cfg = f"{r['pytorch_openblas_core']}, {r['pytorch_torch_threads']} x {r['pytorch_blas_threads']}"
            bf16_cfg = f"{r['pytorch_bf16_torch_threads']} x {r['pytorch_bf16_blas_threads']}"
            print(f"{r['batch']:>6} {r['elbo_samples_per_s']:>10,.0f} {r['elbo_threads']:>4} "
                  f"{r['pytorch_samples_per_s']:>13,.0f} {fp32_cfg:>20} {r['ratio']:>6.2f}x "
                  f"{r['pytorch_bf16_samples_per_s']:>13,.0f} {bf16_cfg:>13} {r['ratio_bf16']:>6.2f}x"
                  + (f" {r['elbo_bf16_samples_per_s']:>10,.0f} {r['ratio_elbo_bf16']:>6.2f}x"
                     if r.get("elbo_bf16_threads") else ""))
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
        path = dated_path(a.out_dir, "pytorch" if a.model == "vae" else "pytorch-" + a.model, cpu_slug(cpu),
                          [".json", ".md"])
        write_atomic(path + ".json", json.dumps(res, indent=1) + "\n")
        write_atomic(path + ".md", markdown(res))
        print(f"\nresults: {path}.md, {path}.json", file=sys.stderr if a.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
