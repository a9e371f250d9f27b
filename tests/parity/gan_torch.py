#!/usr/bin/python3
"""PyTorch oracle for elbo's GAN parity tests: the same G and D as nn.Sequential models whose state_dict names match
elbo's GAN checkpoints (generator.0.weight, ..., discriminator.4.bias).

  gan_torch.py grads OUT.safetensors [--input 784] [--latent 64] [--g-hidden 256,512] [--d-hidden 512,256]
               [--slope 0.2] [--real-label 1] [--batch 16] [--seed 0] [--spectral-norm]
      random weights, uint8 real images and normals z; writes them with, on those weights (no update between):
      the D step's loss BCE(D(x), real label) + BCE(D(G(z)), 0) (batch means) and its gradient for every D parameter
      (grad_d.<name>), the G step's non-saturating loss BCE(D(G(z)), 1) and its gradient for every G parameter
      (grad_g.<name>), and the G loss's gradient with respect to G's pre-sigmoid output (out.dgpre: what D's first
      layer's data gradient gives G), all float32 autograd. With --spectral-norm D's linears are
      torch.nn.utils.spectral_norm's (weight_orig written as weight, weight_u and weight_v as they were before the D
      step; D sees G(z) and x in one forward per step, so the D step and the G step each run one power iteration),
      and out.discriminator.<k>.weight_u / _v are u and v after both steps.
  gan_torch.py dsteps OUT.safetensors [the options of grads] [--lr 1e-3]
      a --d-steps 2 iteration: two D steps on real batches x1, x2 and normals z1, z2 (input.x1, ...), each followed by
      D's Adam step, then the G step on G(z2) through the updated D and G's first Adam step (Adam lr, betas
      0.5 / 0.999, one optimizer per network); writes the weights before, each step's gradients (grad_d1., grad_d2.,
      grad_g.) and every tensor after (after.<name>).
  gan_torch.py grads-suite OUTDIR
      the parity cases elbo's tests use, one file per case (CASES below), in one process.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mlp(widths, slope, last):
    """nn.Sequential of Linear layers over widths with LeakyReLU(slope) between them and `last` at the end."""
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        layers.append(nn.LeakyReLU(slope) if i + 2 < len(widths) else last)
    return nn.Sequential(*layers)


class MinibatchStd(nn.Module):
    """Appends to each row the mean over features of the features' standard deviation (biased) over the rows of its
    group of the batch (groups = 2 in the D step: fake rows, then real rows, in one forward)."""
    groups = 1

    def forward(self, h):
        halves = h.chunk(MinibatchStd.groups)
        out = []
        for part in halves:
            s = (part.var(0, unbiased=False) + 1e-8).sqrt().mean()
            out.append(torch.cat([part, s.expand(part.shape[0], 1)], 1))
        return torch.cat(out, 0)


def discriminator(widths, slope, spectral_norm=False, dropout=0.0, mbstd=False):
    """D as nn.Sequential: Linear (spectral-normalized when asked), LeakyReLU, Dropout when p > 0, ..., the batch
    standard deviation feature before the last Linear when asked; the Linear layers keep the indices 0, 2, 4, ... of
    the plain MLP when no dropout or mbstd is asked."""
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        last = i + 2 == len(widths)
        lin = nn.Linear(a + (1 if last and mbstd else 0), b)
        if last and mbstd:
            layers.append(MinibatchStd())
        layers.append(nn.utils.spectral_norm(lin) if spectral_norm else lin)
        if not last:
            layers.append(nn.LeakyReLU(slope))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class GAN(nn.Module):
    def __init__(self, d, latent, g_hidden, d_hidden, slope, spectral_norm=False, dropout=0.0, mbstd=False):
        super().__init__()
        self.generator = mlp([latent] + g_hidden + [d], slope, nn.Sigmoid())
        if spectral_norm or dropout > 0 or mbstd:
            self.discriminator = discriminator([d] + d_hidden + [1], slope, spectral_norm, dropout, mbstd)
        else:
            self.discriminator = mlp([d] + d_hidden + [1], slope, nn.Identity())

    def d_loss(self, fake, x, real_label):
        """The D step's loss: one D forward of the fake rows, then the real rows (batch means)."""
        b = x.shape[0]
        MinibatchStd.groups = 2
        logit = self.discriminator(torch.cat([fake, x], 0))
        MinibatchStd.groups = 1
        return F.binary_cross_entropy_with_logits(logit[b:], torch.full((b, 1), real_label)) + \
            F.binary_cross_entropy_with_logits(logit[:b], torch.zeros(b, 1))

    def g_loss(self, fake):
        """The non-saturating G loss on one D forward of G(z)."""
        return F.binary_cross_entropy_with_logits(self.discriminator(fake), torch.ones(fake.shape[0], 1))


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


def elbo_name(k):
    """elbo's checkpoint name of a state_dict key: a spectral-normalized layer's weight_orig is its weight."""
    return k[:-len("_orig")] if k.endswith(".weight_orig") else k


def cmd_grads(a):
    torch.manual_seed(a.seed)
    gh = [int(w) for w in a.g_hidden.split(",")]
    dh = [int(w) for w in a.d_hidden.split(",")]
    model = GAN(a.input, a.latent, gh, dh, a.slope, spectral_norm=a.spectral_norm)
    G, D = model.generator, model.discriminator
    # the weights (and a spectral norm's u and v) before any forward: a training-mode forward iterates u and v
    t = {elbo_name(k): v.detach().numpy().copy() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(a.seed + 1)
    x8 = torch.randint(0, 256, (a.batch, a.input), generator=g, dtype=torch.int64)
    x8[0, :] = 0
    x8[-1, :] = 255
    z = torch.randn(a.batch, a.latent, generator=g)
    x = x8.float() / 255.0
    ones = torch.ones(a.batch, 1)
    real = torch.full((a.batch, 1), a.real_label)
    zeros = torch.zeros(a.batch, 1)
    # the D step: G(z) detached; under spectral norm D sees G(z) and x in one forward (one power iteration)
    pre = G[:-1](z)
    fake = torch.sigmoid(pre)
    if a.spectral_norm:
        d_loss = model.d_loss(fake.detach(), x, a.real_label)
    else:
        d_loss = F.binary_cross_entropy_with_logits(D(x), real) + \
            F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)
    model.zero_grad()
    d_loss.backward()
    for k, p in D.named_parameters():
        t["grad_d.discriminator." + elbo_name(k)] = p.grad.numpy().copy()
    # the G step on the same weights, z and G(z): the non-saturating loss through D
    model.zero_grad()
    pre = G[:-1](z)
    pre.retain_grad()
    g_loss = F.binary_cross_entropy_with_logits(D(torch.sigmoid(pre)), ones)
    g_loss.backward()
    for k, p in G.named_parameters():
        t["grad_g.generator." + k] = p.grad.numpy().copy()
    for k, v in D.state_dict().items():  # u and v after the D step's and the G step's power iterations
        if k.endswith((".weight_u", ".weight_v")):
            t["out.discriminator." + k] = v.numpy().copy()
    t["input.x"] = x8.float().numpy()
    t["input.z"] = z.numpy()
    t["out.d_loss"] = np.array([d_loss.item()], dtype=np.float32)
    t["out.g_loss"] = np.array([g_loss.item()], dtype=np.float32)
    t["out.dgpre"] = pre.grad.numpy()
    meta = {"input_dim": str(a.input), "latent": str(a.latent), "generator_hidden": ",".join(map(str, gh)),
            "discriminator_hidden": ",".join(map(str, dh)), "leaky_slope": repr(a.slope),
            "real_label": repr(a.real_label), "spectral_norm": str(int(a.spectral_norm))}
    write_safetensors(a.out, t, meta)


def cmd_dsteps(a):
    """Two D steps (real batches x1, x2, normals z1, z2), each followed by D's Adam step, then one G step on z2's
    G(z2) through the twice-updated D and G's Adam step (its first: its own bias corrections); two Adam optimizers
    lr a.lr, betas 0.5 / 0.999."""
    torch.manual_seed(a.seed)
    gh = [int(w) for w in a.g_hidden.split(",")]
    dh = [int(w) for w in a.d_hidden.split(",")]
    model = GAN(a.input, a.latent, gh, dh, a.slope, spectral_norm=a.spectral_norm)
    G, D = model.generator, model.discriminator
    t = {elbo_name(k): v.detach().numpy().copy() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(a.seed + 1)
    od = torch.optim.Adam(D.parameters(), a.lr, betas=(0.5, 0.999))
    og = torch.optim.Adam(G.parameters(), a.lr, betas=(0.5, 0.999))
    for s in (1, 2):
        x8 = torch.randint(0, 256, (a.batch, a.input), generator=g, dtype=torch.int64)
        z = torch.randn(a.batch, a.latent, generator=g)
        t[f"input.x{s}"] = x8.float().numpy()
        t[f"input.z{s}"] = z.numpy()
        fake = G(z)
        d_loss = model.d_loss(fake.detach(), x8.float() / 255.0, a.real_label)
        od.zero_grad()
        d_loss.backward()
        for k, p in D.named_parameters():
            t[f"grad_d{s}.discriminator." + elbo_name(k)] = p.grad.numpy().copy()
        od.step()
    g_loss = model.g_loss(fake)
    og.zero_grad()
    g_loss.backward()
    for k, p in G.named_parameters():
        t["grad_g.generator." + k] = p.grad.numpy().copy()
    og.step()
    for k, v in model.state_dict().items():
        t["after." + elbo_name(k)] = v.detach().numpy().copy()
    meta = {"input_dim": str(a.input), "latent": str(a.latent), "generator_hidden": ",".join(map(str, gh)),
            "discriminator_hidden": ",".join(map(str, dh)), "leaky_slope": repr(a.slope),
            "real_label": repr(a.real_label), "spectral_norm": str(int(a.spectral_norm)), "lr": repr(a.lr)}
    write_safetensors(a.out, t, meta)


# name: arguments of `grads`: the default model at a small batch and at the training batch, odd widths (no
# multiple of any register tile), and one-sided label smoothing of D's real target.
CASES = {
    "gan_default_b16": "--batch 16 --seed 1",
    "gan_default_b128": "--batch 128 --seed 2",
    "gan_odd_b9": "--input 50 --latent 7 --g-hidden 13,29 --d-hidden 37,11 --batch 9 --seed 3",
    "gan_smooth_b16": "--real-label 0.9 --d-hidden 256,128 --batch 16 --seed 4",
    "gan_sn_b16": "--spectral-norm --batch 16 --seed 5",
    "gan_sn_odd_b9": "--spectral-norm --input 50 --latent 7 --g-hidden 13,29 --d-hidden 37,11 --batch 9 --seed 6",
    "gan_sn_b128": "--spectral-norm --real-label 0.9 --batch 128 --seed 7",
}
# name: arguments of `dsteps`: plain, and with spectral norm and odd widths.
DSTEP_CASES = {
    "gan_dsteps2_b16": "--batch 16 --seed 8",
    "gan_dsteps2_sn_odd_b9": "--spectral-norm --input 50 --latent 7 --g-hidden 13,29 --d-hidden 37,11 --batch 9 "
                             "--seed 9",
}


def cmd_grads_suite(a, parser):
    torch.set_num_threads(1)
    for name, args in CASES.items():
        ca = parser.parse_args(["grads", os.path.join(a.outdir, name + ".safetensors")] + args.split())
        cmd_grads(ca)
    for name, args in DSTEP_CASES.items():
        ca = parser.parse_args(["dsteps", os.path.join(a.outdir, name + ".safetensors")] + args.split())
        cmd_dsteps(ca)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grads")
    g.add_argument("out")
    g.add_argument("--input", type=int, default=784)
    g.add_argument("--latent", type=int, default=64)
    g.add_argument("--g-hidden", default="256,512")
    g.add_argument("--d-hidden", default="512,256")
    g.add_argument("--slope", type=float, default=0.2)
    g.add_argument("--real-label", type=float, default=1.0)
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--spectral-norm", action="store_true")
    g.add_argument("--seed", type=int, default=0)
    ds = sub.add_parser("dsteps")
    ds.add_argument("out")
    for flag, kind, default in (("--input", int, 784), ("--latent", int, 64), ("--g-hidden", str, "256,512"),
                                ("--d-hidden", str, "512,256"), ("--slope", float, 0.2), ("--real-label", float, 1.0),
                                ("--batch", int, 16), ("--seed", int, 0), ("--lr", float, 1e-3)):
        ds.add_argument(flag, type=kind, default=default)
    ds.add_argument("--spectral-norm", action="store_true")
    s = sub.add_parser("grads-suite")
    s.add_argument("outdir")
    a = p.parse_args()
    if a.cmd == "grads":
        cmd_grads(a)
    elif a.cmd == "dsteps":
        cmd_dsteps(a)
    else:
        cmd_grads_suite(a, p)


if __name__ == "__main__":
    sys.exit(main())
