#!/usr/bin/python3
"""The GAN recipe study's PyTorch side: trains tests/parity/gan_torch.py's GAN (G 64-256-512-784 sigmoid, D
784-<d-hidden>-1, LeakyReLU 0.2) on Fashion-MNIST with elbo's step (a D step on BCE-with-logits(D(x), real label) +
BCE-with-logits(D(G(z)), 0), then the non-saturating G step on the same z and G(z)), two Adam optimizers lr 2e-4,
betas 0.5 / 0.999, batch 128, one thread; writes 10000 samples as an IDX file for
`elbo eval --classifier build/classifier.safetensors --images OUT --json`.

  gan_recipe_torch.py EPOCHS SEED REAL_LABEL D_HIDDEN OUT.idx [--data DIR] [--spectral-norm] [--dropout P]
                      [--mbstd] [--d-lr-scale S] [--d-steps N]

--spectral-norm wraps every D linear in torch.nn.utils.spectral_norm (one power iteration per D forward; D sees
the fake and real rows in one forward per D step, and G(z) in one forward per G step). --dropout P drops D's hidden
features with probability P during training; --mbstd appends the batch standard deviation feature (Karras et al.:
the mean over features of the per-feature standard deviation over the batch, fake and real rows apart) to D's last
hidden layer. --d-steps N runs N D steps (each on the next real batch, a fresh z) per G step.
"""
import argparse
import glob
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from gan_torch import GAN  # noqa: E402


def read_idx(path):
    """The images of an IDX file (gzipped or not) as (n, rows * cols) uint8."""
    b = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    n, r, c = struct.unpack(">III", b[4:16])
    return np.frombuffer(b[16:], np.uint8).reshape(n, r * c)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("epochs", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("real_label", type=float)
    p.add_argument("d_hidden")
    p.add_argument("out")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--spectral-norm", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--mbstd", action="store_true")
    p.add_argument("--d-lr-scale", type=float, default=1.0)
    p.add_argument("--d-steps", type=int, default=1)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    x = torch.tensor(read_idx(glob.glob(os.path.join(a.data, "train-images-idx3-ubyte*"))[0]).astype(np.float32) / 255)
    m = GAN(784, 64, [256, 512], [int(w) for w in a.d_hidden.split(",")], 0.2, spectral_norm=a.spectral_norm,
            dropout=a.dropout, mbstd=a.mbstd)
    G, D = m.generator, m.discriminator
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4 * a.d_lr_scale, betas=(0.5, 0.999))
    t0, k = time.time(), 0
    for ep in range(a.epochs):
        perm = torch.randperm(len(x))
        i = 0
        while i < len(x):
            xb = x[perm[i:i + 128]]
            i += len(xb)
            b = len(xb)
            fake = G(torch.randn(b, 64))
            ld = m.d_loss(fake.detach(), xb, a.real_label)
            od.zero_grad()
            ld.backward()
            od.step()
            k += 1
            if k % a.d_steps != 0:
                continue
            lg = m.g_loss(fake)
            og.zero_grad()
            lg.backward()
            og.step()
        print(f"epoch {ep + 1}: D loss {ld.item():.4f}, G loss {lg.item():.4f}, {time.time() - t0:.1f} s", flush=True)
    with torch.no_grad():
        s = (G(torch.randn(10000, 64)) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    with open(a.out, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, 10000, 28, 28) + s.tobytes())


if __name__ == "__main__":
    main()
