#!/usr/bin/python3
"""The flow's quality reference on the PyTorch side: trains tests/parity/flow_torch.py's RealNVP (8 checkerboard
couplings, 784-512-512-1568 ReLU, scale init 0, shift rows of the last layer 0) on Fashion-MNIST with elbo's recipe
(Adam lr 1e-3, batch 128, the batch mean of -log p in nats, dequantization u ~ U[0, 1) per step), and prints each
epoch's train bits/dim and the test bits/dim (one dequantization draw per image, fixed noise) as JSON lines.

  flow_quality_torch.py EPOCHS SEED [--threads 1] [--data DIR]
"""
import argparse
import glob
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from flow_torch import Flow  # noqa: E402
from gan_recipe_torch import read_idx  # noqa: E402  (the same IDX reader)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("epochs", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    train = torch.tensor(read_idx(glob.glob(os.path.join(a.data, "train-images-idx3-ubyte*"))[0]).astype(np.float32))
    test = torch.tensor(read_idx(glob.glob(os.path.join(a.data, "t10k-images-idx3-ubyte*"))[0]).astype(np.float32))
    model = Flow(28, 28, [512, 512], 8, "checkerboard")
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    d, t0 = 784, time.time()
    gtest = torch.Generator().manual_seed(12345)
    utest = torch.rand(test.shape, generator=gtest)
    for ep in range(a.epochs):
        perm, total = torch.randperm(len(train)), 0.0
        for i in range(0, len(train), 128):
            xb = train[perm[i:i + 128]]
            loss = model.nll(xb, torch.rand(xb.shape))[0]
            total += loss.sum().item()
            opt.zero_grad()
            loss.mean().backward()
            opt.step()
        with torch.no_grad():
            tl = sum(model.nll(test[i:i + 1000], utest[i:i + 1000])[0].sum().item() for i in range(0, len(test), 1000))
        print(json.dumps({"epoch": ep + 1, "train_bits_per_dim": total / len(train) / (d * math.log(2)),
                          "test_bits_per_dim": tl / len(test) / (d * math.log(2)), "seconds": time.time() - t0}),
              flush=True)


if __name__ == "__main__":
    main()
