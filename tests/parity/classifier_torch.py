#!/usr/bin/python3
"""PyTorch oracle for elbo's classifier parity tests: the same MLP as an nn.Module whose state_dict names match
elbo's classifier checkpoints (hidden.0.weight, hidden.0.bias, ..., fc_out.weight, fc_out.bias).

  classifier_torch.py grads OUT.safetensors [--input 784] [--hidden 256,256] [--classes 10] [--batch 16]
                      [--seed 0]
      random weights, uint8 images and labels; writes them with the per-sample cross-entropies, their sum, the
      argmax of each row's logits and every parameter gradient (autograd, float32) of the batch-summed
      cross-entropy.
  classifier_torch.py grads-suite OUTDIR
      the parity cases elbo's tests use, one file per case (CASES below), in one process.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae_torch import write_safetensors  # noqa: E402


class Classifier(nn.Module):
    """Hidden nn.Linear layers with ReLU, then the fc_out logits."""

    def __init__(self, d, hidden, classes):
        super().__init__()
        widths = [d] + hidden
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.fc_out = nn.Linear(hidden[-1], classes)

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.fc_out(x)


def cmd_grads(a):
    torch.manual_seed(a.seed)
    hidden = [int(w) for w in a.hidden.split(",")]
    model = Classifier(a.input, hidden, a.classes)
    # Wider weights than nn.Linear's default: more ReLUs cut on both sides and logits a few units apart, so
    # the softmax is neither uniform nor saturated.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    g = torch.Generator().manual_seed(a.seed + 1)
    x8 = torch.randint(0, 256, (a.batch, a.input), generator=g, dtype=torch.int64)
    x8[0, :] = 0
    x8[1, :] = 255
    y = torch.randint(0, a.classes, (a.batch,), generator=g, dtype=torch.int64)
    y[:min(a.classes, a.batch)] = torch.arange(min(a.classes, a.batch))  # every class a label somewhere
    logits = model(x8.float() / 255.0)
    ce = F.cross_entropy(logits, y, reduction="none")
    loss = ce.sum()
    loss.backward()
    t = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for k, p in model.named_parameters():
        t["grad." + k] = p.grad.numpy()
    t["input.x"] = x8.float().numpy()
    t["input.y"] = y.float().numpy()
    t["out.ce"] = ce.detach().numpy()
    t["out.loss"] = np.array([loss.item()], dtype=np.float32)
    t["out.pred"] = logits.argmax(1).float().numpy()
    meta = {"input_dim": str(a.input), "hidden": ",".join(map(str, hidden)), "classes": str(a.classes)}
    write_safetensors(a.out, t, meta)


# name: arguments of `grads`: the default model at a small batch and at the training batch, one hidden layer,
# and odd widths (no multiple of any register tile) with 7 classes.
CASES = {
    "clf_784_256_256_10_b16": "--hidden 256,256 --classes 10 --batch 16 --seed 1",
    "clf_784_256_256_10_b128": "--hidden 256,256 --classes 10 --batch 128 --seed 2",
    "clf_784_64_10": "--hidden 64 --classes 10 --batch 24 --seed 3",
    "clf_100_37_13_7": "--input 100 --hidden 37,13 --classes 7 --batch 9 --seed 4",
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
    g.add_argument("--hidden", default="256,256")
    g.add_argument("--classes", type=int, default=10)
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
