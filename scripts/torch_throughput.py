#!/usr/bin/python3
"""PyTorch's training throughput for the same VAE elbo trains (784-400-20, MSE, Adam), or with --model gan the
same GAN (tests/parity/gan_torch.py's, the default recipe: G 64-256-512-784, D 784-512-256-1 spectrally normalized,
two Adam optimizers lr 2e-4 betas 0.5 / 0.999, a D step on G(z) and the real batch in one D forward, then the
non-saturating G step; samples/s counts real images), on the same data, for comparing samples/s side by side.

  scripts/torch_throughput.py [--model vae|gan|flow|diffusion] [--batch 128[,256,...]] [--torch-threads 1] [--blas-threads N]
                              [--openblas-core auto|Haswell|...] [--precision fp32|bf16] [--seconds 10] [--json]

PyTorch 1.13 from Debian runs its fp32 GEMMs in OpenBLAS. OpenBLAS picks its kernels for the CPU when it loads,
unless OPENBLAS_CORETYPE forces a core (some environments set it, with OPENBLAS_L2_SIZE, for older OpenBLAS
builds that misbehave on some CPUs): --openblas-core auto (default) clears both in this process before torch
loads, so OpenBLAS runs its own choice for this CPU; a core name (e.g. Haswell) forces that core. The core that
ran is reported (openblas_get_corename, through ctypes on the libopenblas this process loaded).
--precision bf16 runs the forward and the loss under torch.autocast("cpu", dtype=torch.bfloat16) with fp32
master weights and Adam (the GEMMs then run in bf16, in oneDNN); fp32 (default) runs everything in fp32.
scripts/bench_pytorch.py searches the configurations (torch threads x OpenBLAS threads, core, precision).
For each batch size, a fresh model (seed 1) takes 20 warm-up steps, then steps are timed for --seconds; the
data are Fashion-MNIST's training images, shuffled once. One line (or JSON object) per batch size.
"""
import argparse
import ctypes
import json
import os
import sys
import time

FORCING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_env(env, core, blas_threads=None):
    """A copy of env for a process that loads OpenBLAS: core "auto" removes OPENBLAS_CORETYPE and
    OPENBLAS_L2_SIZE (OpenBLAS then picks its kernels for this CPU); another core name sets OPENBLAS_CORETYPE
    to it (OPENBLAS_L2_SIZE kept as env has it); blas_threads, when given, sets OPENBLAS_NUM_THREADS."""
    env = dict(env)
    if core == "auto":
        for v in FORCING_VARS:
            env.pop(v, None)
    else:
        env["OPENBLAS_CORETYPE"] = core
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    return env


def apply_openblas_env(core, blas_threads=None):
    """Makes this process's environment openblas_env(core, blas_threads); call it before importing torch
    (OpenBLAS reads these variables when it loads)."""
    new = openblas_env(os.environ, core, blas_threads)
    for v in FORCING_VARS:
        if v not in new:
            os.environ.pop(v, None)
    os.environ.update(new)


def openblas_info():
    """{"openblas_core", "openblas_config", "openblas_library"} of the libopenblas loaded into this process
    (openblas_get_corename and openblas_get_config through ctypes), or "none loaded" values."""
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "libopenblas" in line and ".so" in line})
    for lib in libs:
        try:
            h = ctypes.CDLL(lib)
            h.openblas_get_corename.restype = ctypes.c_char_p
            h.openblas_get_config.restype = ctypes.c_char_p
            return {"openblas_core": h.openblas_get_corename().decode(),
                    "openblas_config": h.openblas_get_config().decode(), "openblas_library": lib}
        except (OSError, AttributeError):
            continue
    return {"openblas_core": "none loaded", "openblas_config": "", "openblas_library": ""}


def parse_args():
    """The command line, checked."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("vae", "gan", "flow", "diffusion"), default="vae",
                   help="gan: the default recipe (tests/parity/gan_torch.py); flow: the RealNVP flow "
                        "(tests/parity/flow_torch.py, 3 warm-up steps); diffusion: elbo's DDPM "
                        "(scripts/diffusion_quality_torch.py: the residual MLP, the simple loss, Adam and the EMA "
                        "sweep), fp32 only")
    p.add_argument("--batch", default="128", help="batch size, or several separated by commas")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--blas-threads", type=int, default=os.cpu_count())
    p.add_argument("--openblas-core", default="auto",
                   help="auto: OpenBLAS's own choice (forcing variables cleared); or a core to force (Haswell)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: forward and loss under CPU autocast to bfloat16 (fp32 weights, fp32 Adam)")
    p.add_argument("--flow-nets", choices=("trimmed", "full"), default="trimmed",
                   help="flow: coupling nets on the kept pixels only, s and t of the transformed ones only (trimmed: "
                        "the same function with 41 instead of 70 MFLOP per image, as elbo runs it), or on the masked "
                        "image with 2 x 784 outputs (full, the model as first written)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    try:
        a.batches = [int(b) for b in a.batch.split(",")]
        if any(b < 1 for b in a.batches):
            raise ValueError
    except ValueError:
        p.error(f"--batch: expected positive integers separated by commas, got '{a.batch}'")
    return a


def measure(torch, VAE, per_sample_losses, x_all, batch, a):
    """(steps, samples/s) of training at this batch size for a.seconds after 20 warm-up steps (the flow: 3)."""
    torch.manual_seed(1)
    flow = a.model == "flow"
    if flow:
        from flow_torch import Flow
        model = Flow(28, 28, [512, 512], 8, "checkerboard", trimmed=a.flow_nets == "trimmed")
    else:
        model = VAE(x_all.shape[1], [400], 20, [400])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x_all))
    bf16 = a.precision == "bf16"

    def step(i):
        lo = (i * batch) % (len(x_all) - batch)
        x = x_all[perm[lo:lo + batch]]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if flow:
                loss = model.nll(x * 255.0, torch.rand(x.shape))[0].mean()
            else:
                logits, mu, logvar = model(x, torch.randn(len(x), 20))
                rec, kl = per_sample_losses(logits, x, mu, logvar, "mse", 0.5 ** 0.5)
                loss = (rec + kl).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(3 if flow else 20):
        step(i)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        step(steps)
        steps += 1
    return steps, steps * batch / (time.perf_counter() - t0)


def measure_diffusion(torch, x8_all, batch, a):
    """(steps, samples/s) of the diffusion model's training (its EMA update included) at this batch size for
    a.seconds after 5 warm-up steps."""
    from diffusion_quality_torch import Diffusion
    d = Diffusion(1)
    perm = torch.randperm(len(x8_all))

    def step(i):
        lo = (i * batch) % (len(x8_all) - batch)
        d.step(x8_all[perm[lo:lo + batch]])

    for i in range(5):
        step(i)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        step(steps)
        steps += 1
    return steps, steps * batch / (time.perf_counter() - t0)


def measure_gan(torch, x_all, batch, a):
    """(steps, samples/s) of GAN training (one D step and one G step per real batch) at this batch size for
    a.seconds after 20 warm-up steps."""
    from gan_torch import GAN
    torch.manual_seed(1)
    model = GAN(x_all.shape[1], 64, [256, 512], [512, 256], 0.2, spectral_norm=True)
    G = model.generator
    od = torch.optim.Adam(model.discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    perm = torch.randperm(len(x_all))
    bf16 = a.precision == "bf16"

    def step(i):
        lo = (i * batch) % (len(x_all) - batch)
        x = x_all[perm[lo:lo + batch]]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fake = G(torch.randn(batch, 64))
            d_loss = model.d_loss(fake.detach(), x, 1.0)
        od.zero_grad()
        d_loss.backward()
        od.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            g_loss = model.g_loss(fake)
        og.zero_grad()
        g_loss.backward()
        og.step()

    for i in range(20):
        step(i)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        step(steps)
        steps += 1
    return steps, steps * batch / (time.perf_counter() - t0)


def main():
    a = parse_args()
    apply_openblas_env(a.openblas_core, a.blas_threads)
    import numpy as np
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
    from vae_torch import VAE, find_idx, per_sample_losses, read_idx

    torch.set_num_threads(a.torch_threads)
    info = openblas_info()
    images = read_idx(find_idx(a.data, "train-images-idx3-ubyte"))
    x_all = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    if a.model == "diffusion":
        if a.precision != "fp32":
            print("torch_throughput.py: --model diffusion: fp32 only", file=sys.stderr)
            return 2
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        x8_all = torch.from_numpy(images.reshape(len(images), -1).copy())
    for batch in a.batches:
        if a.model == "gan":
            steps, rate = measure_gan(torch, x_all, batch, a)
        elif a.model == "diffusion":
            steps, rate = measure_diffusion(torch, x8_all, batch, a)
        else:
            steps, rate = measure(torch, VAE, per_sample_losses, x_all, batch, a)
        result = {"framework": "pytorch " + torch.__version__, "model": a.model, "batch": batch,
                  "precision": a.precision,
                  "torch_threads": a.torch_threads, "blas_threads": a.blas_threads,
                  "openblas_core_requested": a.openblas_core, **info, "steps": steps, "samples_per_s": rate}
        if a.json:
            print(json.dumps(result), flush=True)
        else:
            print(f"PyTorch {torch.__version__} {a.model} {a.precision}: batch {batch}, "
                  f"torch threads {a.torch_threads}, "
                  f"OpenBLAS threads {a.blas_threads} on core {info['openblas_core']} "
                  f"(requested {a.openblas_core}): {rate:.0f} samples/s over {steps} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
