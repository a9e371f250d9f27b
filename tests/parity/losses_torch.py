#!/usr/bin/python3
"""PyTorch oracle for elbo's fused losses (tests/test_kernel_losses.c).

  losses_torch.py OUT.safetensors
      writes inputs (random, extreme and NaN entries), per-row losses (reduction="none" summed over a row),
      gradients by autograd of the batch loss, and argmax, for:
        bce.y<k>.*  F.binary_cross_entropy_with_logits against the constant label LABELS[k], grad of the
                    reduction="sum" loss divided by B (scale 1/B)
        mse.*       F.mse_loss, grad of the reduction="mean" loss (scale 1/(B N))
        ce.*        F.cross_entropy against class labels, grad of the reduction="mean" loss (scale 1/B), and
                    torch.argmax of each row
      Labels and argmax are stored as float32 (the file holds F32 tensors only); the metadata holds the scales.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae_torch import write_safetensors  # noqa: E402

LABELS = [1.0, 0.0, 0.9]
EXTREMES = [100.0, -100.0, 1e30, -1e30, 0.0, -0.0, 30.0, -30.0]


def with_extremes(x, gen, nan_at=None):
    """x (B, N) with a third of the entries replaced by EXTREMES and an optional NaN at (row, col)."""
    ext = torch.tensor(EXTREMES, dtype=torch.float32)
    pick = torch.randint(0, len(EXTREMES), x.shape, generator=gen)
    mask = torch.rand(x.shape, generator=gen) < 1.0 / 3.0
    x = torch.where(mask, ext[pick], x)
    if nan_at is not None:
        x[nan_at] = float("nan")
    return x


def bce_cases(gen, out, meta):
    b, n = 6, 37
    for k, y in enumerate(LABELS):
        logits = with_extremes(torch.randn(b, n, generator=gen) * 6.0, gen, nan_at=(b - 1, 5))
        leaf = logits.clone().requires_grad_(True)
        target = torch.full((b, n), y)
        rows = F.binary_cross_entropy_with_logits(leaf, target, reduction="none").sum(1)
        (F.binary_cross_entropy_with_logits(leaf, target, reduction="sum") / b).backward()
        out[f"bce.y{k}.logits"] = logits
        out[f"bce.y{k}.loss"] = rows.detach()
        out[f"bce.y{k}.grad"] = leaf.grad
        meta[f"bce.y{k}.label"] = repr(y)
    meta["bce.count"] = str(len(LABELS))
    meta["bce.scale"] = repr(1.0 / b)


def mse_cases(gen, out, meta):
    b, n = 5, 33
    pred = torch.randn(b, n, generator=gen) * 3.0
    pred[1, :8] = torch.tensor([100.0, -100.0, 1e15, -1e15, 0.0, -0.0, 1e-20, 7.0])
    pred[b - 1, 3] = float("nan")
    target = torch.randn(b, n, generator=gen)
    leaf = pred.clone().requires_grad_(True)
    rows = F.mse_loss(leaf, target, reduction="none").sum(1)
    F.mse_loss(leaf, target, reduction="mean").backward()
    out["mse.pred"], out["mse.target"] = pred, target
    out["mse.loss"], out["mse.grad"] = rows.detach(), leaf.grad
    meta["mse.scale"] = repr(1.0 / (b * n))


def ce_cases(gen, out, meta):
    b, c = 9, 10
    logits = torch.randn(b, c, generator=gen) * 4.0
    logits[1] = torch.tensor([1.0, 3.0, 2.0, 3.0, 3.0, -1.0, 0.0, 3.0, 1.0, 2.0])  # ties: first maximum
    logits[2] = torch.tensor([1e30, -1e30, 0.0, 100.0, -100.0, 1e30, 5.0, -0.0, 2.0, 1.0])
    logits[3] = torch.tensor([-1e30, 100.0, -100.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    logits[4] = torch.zeros(c)
    logits[5, 6] = float("nan")
    logits[5, 8] = float("nan")  # argmax: the first NaN
    labels = torch.randint(0, c, (b,), generator=gen)
    labels[3] = 0  # the label at -1e30
    leaf = logits.clone().requires_grad_(True)
    rows = F.cross_entropy(leaf, labels, reduction="none")
    F.cross_entropy(leaf, labels, reduction="mean").backward()
    out["ce.logits"], out["ce.labels"] = logits, labels.float()
    out["ce.loss"], out["ce.grad"] = rows.detach(), leaf.grad
    out["ce.argmax"] = torch.argmax(logits, 1).float()
    meta["ce.scale"] = repr(1.0 / b)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: losses_torch.py OUT.safetensors")
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1713)
    out, meta = {}, {"torch": torch.__version__}
    bce_cases(gen, out, meta)
    mse_cases(gen, out, meta)
    ce_cases(gen, out, meta)
    write_safetensors(sys.argv[1], {k: v.detach().numpy() for k, v in out.items()}, meta)


if __name__ == "__main__":
    main()
