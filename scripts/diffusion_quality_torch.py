#!/usr/bin/python3
"""The PyTorch reference of elbo's diffusion model, for the quality gate and the speed comparison: the same
eps_theta (tests/parity/diffusion_torch.py's EpsNet: time embedding 128 -> 256 -> 256, 784 -> 1024, 3 residual
blocks, 1024 -> 784), the same linear schedule (T 1000, beta 1e-4 .. 0.02), the simple loss, Adam 1e-3, batch 128,
the EMA of the weights (decay 0.999 with the warm-up min(decay, (1 + step) / (10 + step)), as elbo), and the same
samplers (DDPM with beta-tilde, DDIM eta 0 over uniformly spaced steps, x-hat_0 clipped to [-1, 1]) on the EMA.

  scripts/diffusion_quality_torch.py --out-dir DIR [--epochs 20] [--seed 1] [--batch 128] [--threads 2]
                                     [--samples 1000] [--samplers ddim50,ddim100,ddim250,ddpm] [--max-steps N]
      trains, prints one JSON line per epoch (train_loss, test_loss at one t and eps per test image, samples_per_s,
      seconds), then draws --samples images with each sampler from the EMA weights and writes them as IDX files
      DIR/samples-<sampler>.idx (score them with `elbo eval --classifier CLF --images FILE`), with the images/s of
      each sampler in DIR/summary.json, and the EMA weights as DIR/ema.pt.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
from diffusion_torch import EpsNet, schedule  # noqa: E402


def read_images(data, split):
    """uint8 images (n, 784) of Fashion-MNIST's split 'train' or 't10k' from the directory data (.gz or plain)."""
    base = os.path.join(data, f"{split}-images-idx3-ubyte")
    path = base if os.path.exists(base) else base + ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    n, rows, cols = struct.unpack(">III", raw[4:16])
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)


def write_idx(path, pixels, rows=28, cols=28):
    """pixels (n, rows * cols) uint8 as an IDX3 file, atomically."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(pixels), rows, cols) + pixels.astype(np.uint8).tobytes())
    os.replace(tmp, path)


class Diffusion:
    """The model, Adam, the EMA and the schedule as float32 tensors; one training step at a time."""

    def __init__(self, seed, lr=1e-3, ema_decay=0.999, T=1000):
        torch.manual_seed(seed)
        self.T = T
        self.model = EpsNet(784, 1024, 3, 128, 256)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, foreach=True)
        self.params = list(self.model.parameters())
        self.ema = [p.detach().clone() for p in self.params]
        self.decay = ema_decay
        self.steps = 0
        self.s = schedule("linear", T)
        self.sa = torch.tensor(np.sqrt(self.s["alpha_bar"]), dtype=torch.float32)
        self.sb = torch.tensor(np.sqrt(1 - self.s["alpha_bar"]), dtype=torch.float32)

    def loss(self, x8, t, eps):
        """The simple loss of uint8 images x8 (b, 784) at steps t with noise eps."""
        x0 = 2.0 * (x8.float() / 255.0) - 1.0
        xt = self.sa[t][:, None] * x0 + self.sb[t][:, None] * eps
        return F.mse_loss(self.model(xt, t), eps)

    def step(self, x8):
        """One optimizer step on x8 and the EMA update; returns the loss."""
        t = torch.randint(1, self.T + 1, (len(x8),))
        loss = self.loss(x8, t, torch.randn(len(x8), 784))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        rate = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            torch._foreach_mul_(self.ema, rate)
            torch._foreach_add_(self.ema, [p.detach() for p in self.params], alpha=1 - rate)
        return loss.item()

    def ema_model(self):
        """A copy of the network with the EMA weights."""
        m = EpsNet(784, 1024, 3, 128, 256)
        with torch.no_grad():
            for p, e in zip(m.parameters(), self.ema):
                p.copy_(e)
        return m


def sampler_steps(kind, T, S):
    """The steps of a sampler, largest first: DDPM T..1; DDIM round(1 + k (T - 1) / (S - 1)) for k = S-1..0."""
    if kind == "ddpm":
        return list(range(T, 0, -1))
    return [int(math.floor(1 + k * (T - 1) / (S - 1) + 0.5)) for k in range(S - 1, -1, -1)]


@torch.no_grad()
def sample(model, s, kind, S, n, gen):
    """n samples in [-1, 1] (n, 784) from model with DDPM or DDIM-S, x-hat_0 clipped to [-1, 1]."""
    T = len(s["beta"]) - 1
    x = torch.randn(n, 784, generator=gen)
    steps = sampler_steps(kind, T, S)
    for i, t in enumerate(steps):
        eps = model(x, torch.full((n,), t, dtype=torch.int64))
        ab = float(s["alpha_bar"][t])
        x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
        if kind == "ddpm":
            mean = float(s["coef_x0"][t]) * x0 + float(s["coef_xt"][t]) * x
            x = mean + math.sqrt(float(s["beta_tilde"][t])) * torch.randn(n, 784, generator=gen) if t > 1 else mean
        else:
            abp = float(s["alpha_bar"][steps[i + 1]]) if i + 1 < len(steps) else 1.0
            e = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
            x = math.sqrt(abp) * x0 + math.sqrt(1 - abp) * e
    return x


def gray(x):
    """Gray levels round(255 (x + 1) / 2) of samples in [-1, 1]."""
    return np.clip(np.floor(255.0 * (x.numpy().astype(np.float64) + 1) / 2 + 0.5), 0, 255).astype(np.uint8)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--samplers", default="ddim50,ddim100,ddim250,ddpm")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after N steps (smoke runs)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out_dir, exist_ok=True)
    train = torch.from_numpy(read_images(a.data, "train").copy())
    test = torch.from_numpy(read_images(a.data, "t10k").copy())
    d = Diffusion(a.seed)
    gen = torch.Generator().manual_seed(a.seed + 1000)
    t_test = torch.randint(1, d.T + 1, (len(test),), generator=gen)
    eps_test = torch.randn(len(test), 784, generator=gen)
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(train))
        t0, total, seen = time.perf_counter(), 0.0, 0
        for i in range(0, len(train), a.batch):
            if a.max_steps and i // a.batch >= a.max_steps:
                break
            x8 = train[perm[i:i + a.batch]]
            total += d.step(x8) * len(x8)
            seen += len(x8)
        secs = time.perf_counter() - t0
        with torch.no_grad():
            test_loss = sum(d.loss(test[i:i + 1000], t_test[i:i + 1000], eps_test[i:i + 1000]).item() * 1000
                            for i in range(0, len(test), 1000)) / len(test)
        print(json.dumps({"epoch": epoch, "steps": d.steps, "train_loss": total / seen, "test_loss": test_loss,
                          "samples_per_s": seen / secs, "seconds": secs}), flush=True)
    torch.save({"ema": d.ema, "names": [n for n, _ in d.model.named_parameters()]},
               os.path.join(a.out_dir, "ema.pt"))
    model = d.ema_model()
    summary = {"seed": a.seed, "epochs": a.epochs, "steps": d.steps, "torch": torch.__version__, "samplers": {}}
    for name in a.samplers.split(","):
        kind, S = ("ddpm", 0) if name == "ddpm" else ("ddim", int(name[4:]))
        gen_s = torch.Generator().manual_seed(a.seed + 2000)
        t0, parts = time.perf_counter(), []
        for i in range(0, a.samples, 500):
            parts.append(sample(model, d.s, kind, S, min(500, a.samples - i), gen_s))
        secs = time.perf_counter() - t0
        path = os.path.join(a.out_dir, f"samples-{name}.idx")
        write_idx(path, gray(torch.cat(parts)))
        summary["samplers"][name] = {"images": a.samples, "seconds": secs, "images_per_s": a.samples / secs,
                                     "idx": path}
        print(json.dumps({"sampler": name, **summary["samplers"][name]}), flush=True)
    with open(os.path.join(a.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
