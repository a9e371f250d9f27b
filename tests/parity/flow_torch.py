#!/usr/bin/python3
"""PyTorch oracle for elbo's normalizing flow (RealNVP): the same model as an nn.Module whose state_dict names match
elbo's flow checkpoints (couplings.K.net.0.weight, couplings.K.net.2.weight, couplings.K.net.4.weight, their biases,
couplings.K.scale).

The model: x = (pixel + u) / 256 with u ~ U[0, 1), y = logit(alpha + (1 - 2 alpha) x), then K affine couplings; coupling
k keeps the pixels where its mask is 1 and transforms the others: raw = net(h * mask) (D -> hidden -> 2D, ReLU
between), s = (1 - mask) * scale * tanh(raw[:, :D]), t = (1 - mask) * raw[:, D:], h' = h * exp(s) + t; z = h after the
last coupling, base N(0, I). The loss per image is -log p of the discrete pixels in nats (the dequantization bound):
    0.5 |z|^2 + D/2 ln(2 pi) - sum_k sum(s_k) - sum_j ln|dy_j/dx_j| + D ln 256,
ln|dy/dx| = ln(1 - 2 alpha) - ln(v) - ln(1 - v), v = alpha + (1 - 2 alpha) x; bits/dim = loss / (D ln 2).

  flow_torch.py grads OUT.safetensors [--rows 28] [--cols 28] [--hidden 512,512] [--couplings 8]
                [--mask checkerboard|half] [--batch 16] [--seed 0]
      random weights (scale uniform in +-1 so every path has a gradient), uint8 pixels and dequantization noise u;
      writes them with the batch-mean loss, each row's loss, z and coupling log-determinant, and the loss's gradient
      for every parameter (grad.<name>), float32 autograd.
  flow_torch.py jacobian OUT.safetensors [--rows 4] [--cols 4] [--hidden 8,8] [--couplings 4] [--seed 0]
      random weights and logit-space inputs y; the coupling stack's log|det dz/dy| per row from the full Jacobian
      (autograd in double), with z.
  flow_torch.py grads-suite OUTDIR
      the parity cases elbo's tests use, one file per case (CASES below), in one process.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gan_torch import write_safetensors  # noqa: E402

ALPHA = 0.05


def make_mask(rows, cols, kind, k):
    """Coupling k's mask (D,) of the pixels it keeps (1) and transforms (0): the checkerboard (r + c even kept on even
    couplings) or the halves (the first D / 2 pixels kept on even couplings), complemented on odd couplings."""
    r = torch.arange(rows).view(-1, 1)
    c = torch.arange(cols).view(1, -1)
    if kind == "checkerboard":
        base = ((r + c) % 2 == 0).reshape(-1)
    else:
        base = torch.arange(rows * cols) < (rows * cols) // 2
    base = base.float()
    return base if k % 2 == 0 else 1 - base


def relu_mlp(widths):
    """Linear layers through widths with a ReLU between each two (net.0, net.2, ... hold the Linear layers)."""
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i + 2 < len(widths):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Coupling(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.net = relu_mlp([d] + hidden + [2 * d])
        self.scale = nn.Parameter(torch.zeros(d))
        self.d = d

    def st(self, h, mask):
        """s and t (B, D) of the transformed pixels (0 on the kept ones) for the coupling's input h."""
        raw = self.net(h * mask)
        s = (1 - mask) * self.scale * torch.tanh(raw[:, :self.d])
        t = (1 - mask) * raw[:, self.d:]
        return s, t

    def forward(self, h, mask):
        s, t = self.st(h, mask)
        return h * torch.exp(s) + t, s.sum(1)

    def inverse(self, hp, mask):
        s, t = self.st(hp * mask, mask)
        return (hp - t) * torch.exp(-s)


class TrimmedCoupling(nn.Module):
    """The same function as Coupling with nets that skip what the mask zeroes: the kept pixels in (gathered), s and t
    of the transformed pixels only out (D/2 -> hidden -> D for a half mask), as elbo computes it. Throughput only:
    its state_dict does not match elbo's checkpoints."""

    def __init__(self, mask, hidden):
        super().__init__()
        self.register_buffer("keep", mask.nonzero().squeeze(1))
        self.register_buffer("moved", (1 - mask).nonzero().squeeze(1))
        n_in, n_out = len(self.keep), len(self.moved)
        self.net = relu_mlp([n_in] + hidden + [2 * n_out])
        self.scale = nn.Parameter(torch.zeros(n_out))
        self.d = n_out

    def forward(self, h, mask=None):
        raw = self.net(h[:, self.keep])
        s = self.scale * torch.tanh(raw[:, :self.d])
        moved = h[:, self.moved] * torch.exp(s) + raw[:, self.d:]
        return h.index_copy(1, self.moved, moved), s.sum(1)


class Flow(nn.Module):
    def __init__(self, rows, cols, hidden, couplings, mask, trimmed=False):
        super().__init__()
        d = rows * cols
        self.d = d
        masks = [make_mask(rows, cols, mask, k) for k in range(couplings)]
        self.couplings = nn.ModuleList([TrimmedCoupling(m, hidden) if trimmed else Coupling(d, hidden)
                                        for m in masks])
        for c in self.couplings:  # the shift rows of the last layer start at 0: each coupling is the identity
            with torch.no_grad():
                c.net[-1].weight[c.d:].zero_()
                c.net[-1].bias[c.d:].zero_()
        self.register_buffer("masks", torch.stack(masks))

    def forward_y(self, y):
        """z and the couplings' log-determinant (B,) of logit-space inputs y."""
        logdet = torch.zeros(y.shape[0], dtype=y.dtype)
        for k, c in enumerate(self.couplings):
            y, ld = c(y, self.masks[k].to(y.dtype))
            logdet = logdet + ld
        return y, logdet

    def inverse_z(self, z):
        for k in reversed(range(len(self.couplings))):
            z = self.couplings[k].inverse(z, self.masks[k].to(z.dtype))
        return z

    def nll(self, pixels, u):
        """Per-row loss (nats of the discrete pixels), z and the couplings' log-determinant."""
        x = (pixels + u) / 256.0
        v = ALPHA + (1 - 2 * ALPHA) * x
        y = torch.log(v) - torch.log1p(-v)
        pre_logdet = (math.log(1 - 2 * ALPHA) - torch.log(v) - torch.log1p(-v)).sum(1)
        z, logdet = self.forward_y(y)
        d = self.d
        prior = 0.5 * (z * z).sum(1) + 0.5 * d * math.log(2 * math.pi)
        return prior - logdet - pre_logdet + d * math.log(256.0), z, logdet


def random_flow(a):
    """The model of a's sizes with every scale uniform in +-1 (so the scale and s paths have gradients)."""
    torch.manual_seed(a.seed)
    model = Flow(a.rows, a.cols, [int(w) for w in a.hidden.split(",")], a.couplings, a.mask)
    with torch.no_grad():
        for c in model.couplings:
            c.scale.uniform_(-1, 1)
            c.net[-1].weight[model.d:].uniform_(-0.05, 0.05)
            c.net[-1].bias[model.d:].uniform_(-0.05, 0.05)
    return model


def meta_of(a):
    return {"model": "flow", "image_rows": str(a.rows), "image_cols": str(a.cols), "hidden": a.hidden,
            "couplings": str(a.couplings), "mask": a.mask}


def cmd_grads(a):
    model = random_flow(a)
    d = model.d
    g = torch.Generator().manual_seed(a.seed + 1)
    x8 = torch.randint(0, 256, (a.batch, d), generator=g, dtype=torch.int64)
    x8[0, :] = 0
    x8[-1, :] = 255
    u = torch.rand(a.batch, d, generator=g)
    loss_rows, z, logdet = model.nll(x8.float(), u)
    loss = loss_rows.mean()
    model.zero_grad()
    loss.backward()
    t = {k: v.detach().numpy() for k, v in model.state_dict().items() if k != "masks"}
    for k, p in model.named_parameters():
        t["grad." + k] = p.grad.numpy().copy()
    t["input.x"] = x8.float().numpy()
    t["input.u"] = u.numpy()
    t["out.loss"] = np.array([loss.item()], dtype=np.float32)
    t["out.loss_rows"] = loss_rows.detach().numpy()
    t["out.z"] = z.detach().numpy()
    t["out.logdet"] = logdet.detach().numpy()
    write_safetensors(a.out, t, meta_of(a))


def cmd_jacobian(a):
    model = random_flow(a).double()
    g = torch.Generator().manual_seed(a.seed + 1)
    y = torch.randn(a.batch, model.d, generator=g, dtype=torch.float64) * 2
    z, logdet = model.forward_y(y)
    jac_logdet = []
    for r in range(a.batch):
        j = torch.autograd.functional.jacobian(lambda v: model.forward_y(v.view(1, -1))[0].view(-1), y[r])
        jac_logdet.append(torch.linalg.slogdet(j)[1].item())
    t = {k: v.detach().float().numpy() for k, v in model.state_dict().items() if k != "masks"}
    t["input.y"] = y.float().numpy()
    t["out.z"] = z.detach().float().numpy()
    t["out.logdet"] = logdet.detach().float().numpy()
    t["out.jac_logdet"] = np.array(jac_logdet, dtype=np.float32)
    write_safetensors(a.out, t, meta_of(a))


# name: command and arguments: the default model at a small batch, a small odd-sized one (no multiple of any register
# tile) with the half mask, and the Jacobian of a 5x5 three-coupling flow against its log-determinant.
CASES = {
    "flow_default_b16": "grads --batch 16 --seed 1",
    "flow_odd_half_b9": "grads --rows 5 --cols 7 --hidden 13,29 --couplings 3 --mask half --batch 9 --seed 2",
    "flow_jacobian": "jacobian --rows 5 --cols 5 --hidden 9,7 --couplings 3 --batch 4 --seed 3",
}


def add_sizes(s, rows, cols, hidden, couplings, batch):
    s.add_argument("out")
    s.add_argument("--rows", type=int, default=rows)
    s.add_argument("--cols", type=int, default=cols)
    s.add_argument("--hidden", default=hidden)
    s.add_argument("--couplings", type=int, default=couplings)
    s.add_argument("--mask", default="checkerboard", choices=["checkerboard", "half"])
    s.add_argument("--batch", type=int, default=batch)
    s.add_argument("--seed", type=int, default=0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    add_sizes(sub.add_parser("grads"), 28, 28, "512,512", 8, 16)
    add_sizes(sub.add_parser("jacobian"), 4, 4, "8,8", 4, 4)
    s = sub.add_parser("grads-suite")
    s.add_argument("outdir")
    a = p.parse_args()
    if a.cmd == "grads-suite":
        torch.set_num_threads(1)
        for name, args in CASES.items():
            argv = args.split()
            ca = p.parse_args([argv[0], os.path.join(a.outdir, name + ".safetensors")] + argv[1:])
            (cmd_grads if ca.cmd == "grads" else cmd_jacobian)(ca)
    elif a.cmd == "grads":
        cmd_grads(a)
    else:
        cmd_jacobian(a)


if __name__ == "__main__":
    sys.exit(main())
