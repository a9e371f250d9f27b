#!/usr/bin/python3
"""PyTorch oracle for elbo's diffusion parity tests: the same residual MLP eps_theta(x_t, t) as a module whose
state_dict names match elbo's diffusion checkpoints (time.0, time.2, inp, blocks.k.{u,w1,w2}, out), and the noise
schedule in float64.

  diffusion_torch.py grads OUT.safetensors [--input 784] [--hidden 1024] [--blocks 3] [--emb 128] [--time-dim 256]
                     [--steps 1000] [--schedule linear|cosine] [--batch 16] [--seed 0]
      random weights, uint8 images scaled to x0 in [-1, 1], time steps t (the first row t = 1, the last t = T) and
      normals eps; writes them with, on those weights: the simple loss F.mse_loss(eps_theta(x_t, t), eps) and its
      gradient for every parameter (grad.<name>), float32 autograd; and the schedule in float64 as pairs of floats
      (sched.<array>.hi + sched.<array>.lo): beta, alpha_bar, beta_tilde, coef_x0, coef_xt (T + 1 entries each).
  diffusion_torch.py grads-suite OUTDIR
      the parity cases elbo's tests use, one file per case (CASES below), in one process.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def schedule(kind, T, beta_1=1e-4, beta_T=0.02):
    """beta, alpha_bar, beta_tilde, coef_x0, coef_xt (float64, T + 1 entries, t = 0 first) of Ho et al.'s linear or
    Nichol and Dhariwal's cosine schedule."""
    if kind == "linear":
        beta = np.linspace(beta_1, beta_T, T, dtype=np.float64)
    else:
        f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
        beta = np.array([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=np.float64)
    beta = np.concatenate([[0.0], beta])
    ab = np.cumprod(1 - beta)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        bt = np.where(np.arange(T + 1) > 0, (1 - ab_prev) / (1 - ab) * beta, 0.0)
        c0 = np.where(np.arange(T + 1) > 0, np.sqrt(ab_prev) * beta / (1 - ab), 0.0)
        c1 = np.where(np.arange(T + 1) > 0, np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab), 0.0)
    return {"beta": beta, "alpha_bar": ab, "beta_tilde": bt, "coef_x0": c0, "coef_xt": c1}


def time_embedding(t, dim):
    """[sin(t f_k) | cos(t f_k)], f_k = exp(-ln(1e4) k / (dim/2)), in float64 rounded once to float32."""
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    v = t.double()[:, None] * f[None, :]
    return torch.cat([torch.sin(v), torch.cos(v)], dim=1).float()


class Block(nn.Module):
    def __init__(self, hidden, time_dim):
        super().__init__()
        self.u = nn.Linear(time_dim, hidden)
        self.w1 = nn.Linear(hidden, hidden)
        self.w2 = nn.Linear(hidden, hidden)

    def forward(self, h, e):
        return h + self.w2(F.silu(self.w1(F.silu(h)) + self.u(e)))


class EpsNet(nn.Module):
    """eps_theta: the time embedding through Linear-SiLU-Linear, Linear in, residual blocks, Linear out on SiLU."""

    def __init__(self, d, hidden, n_blocks, emb, time_dim):
        super().__init__()
        self.emb = emb
        self.time = nn.Sequential(nn.Linear(emb, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.inp = nn.Linear(d, hidden)
        self.blocks = nn.ModuleList([Block(hidden, time_dim) for _ in range(n_blocks)])
        self.out = nn.Linear(hidden, d)

    def forward(self, xt, t):
        e = self.time(time_embedding(t, self.emb))
        h = self.inp(xt)
        for b in self.blocks:
            h = b(h, e)
        return self.out(F.silu(h))


def write_safetensors(path, tensors, metadata):
    """Writes float32 tensors (dict name -> array) in the safetensors format."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def cmd_grads(a):
    torch.manual_seed(a.seed)
    model = EpsNet(a.input, a.hidden, a.blocks, a.emb, a.time_dim)
    g = torch.Generator().manual_seed(a.seed + 1)
    x8 = torch.randint(0, 256, (a.batch, a.input), generator=g, dtype=torch.int64)
    x8[0, :] = 0
    x8[-1, :] = 255
    t = torch.randint(1, a.steps + 1, (a.batch,), generator=g)
    t[0], t[-1] = 1, a.steps
    eps = torch.randn(a.batch, a.input, generator=g)
    x0 = 2.0 * (x8.float() / 255.0) - 1.0
    s = schedule(a.schedule, a.steps)
    sa = torch.tensor(np.sqrt(s["alpha_bar"]), dtype=torch.float32)
    sb = torch.tensor(np.sqrt(1 - s["alpha_bar"]), dtype=torch.float32)
    xt = sa[t][:, None] * x0 + sb[t][:, None] * eps
    loss = F.mse_loss(model(xt, t), eps)
    model.zero_grad()
    loss.backward()
    out = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for k, p in model.named_parameters():
        out["grad." + k] = p.grad.numpy().copy()
    out["input.x0"] = x0.numpy()
    out["input.t"] = t.float().numpy()
    out["input.eps"] = eps.numpy()
    out["out.loss"] = np.array([loss.item()], dtype=np.float32)
    for k, v in s.items():
        hi = v.astype(np.float32)
        out["sched.%s.hi" % k] = hi
        out["sched.%s.lo" % k] = (v - hi.astype(np.float64)).astype(np.float32)
    meta = {"input_dim": str(a.input), "hidden": str(a.hidden), "blocks": str(a.blocks), "emb_dim": str(a.emb),
            "time_dim": str(a.time_dim), "steps": str(a.steps), "schedule": a.schedule}
    write_safetensors(a.out, out, meta)


# name: arguments of `grads`: the default model at a small batch and at the training batch, odd sizes (no multiple
# of any register tile, two blocks, 50 steps), and the cosine schedule.
CASES = {
    "diffusion_default_b16": "--batch 16 --seed 1",
    "diffusion_default_b128": "--batch 128 --seed 2",
    "diffusion_odd_b9": "--input 50 --hidden 40 --blocks 2 --emb 10 --time-dim 24 --steps 50 --batch 9 --seed 3",
    "diffusion_cosine_b16": "--schedule cosine --hidden 256 --blocks 1 --batch 16 --seed 4",
}


def cmd_grads_suite(a, parser):
    torch.set_num_threads(1)
    for name, args in CASES.items():
        ca = parser.parse_args(["grads", os.path.join(a.outdir, name + ".safetensors")] + args.split())
        cmd_grads(ca)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grads")
    g.add_argument("out")
    g.add_argument("--input", type=int, default=784)
    g.add_argument("--hidden", type=int, default=1024)
    g.add_argument("--blocks", type=int, default=3)
    g.add_argument("--emb", type=int, default=128)
    g.add_argument("--time-dim", type=int, default=256)
    g.add_argument("--steps", type=int, default=1000)
    g.add_argument("--schedule", choices=["linear", "cosine"], default="linear")
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("grads-suite")
    s.add_argument("outdir")
    a = p.parse_args()
    if a.cmd == "grads":
        cmd_grads(a)
    else:
        cmd_grads_suite(a, p)


if __name__ == "__main__":
    sys.exit(main())
