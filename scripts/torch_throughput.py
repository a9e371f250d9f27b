#!/usr/bin/python3
"""PyTorch's training throughput for the same VAE elbo trains (784-400-20, MSE, Adam), on the same data,
for comparing samples/s side by side.

  scripts/torch_throughput.py [--batch 128[,256,...]] [--torch-threads 1] [--blas-threads N] [--seconds 10] [--json]

PyTorch 1.13 from Debian runs its GEMMs in OpenBLAS; its fastest configuration on small machines is
torch threads = 1 with OpenBLAS on all cores (more torch threads oversubscribe the cores OpenBLAS uses);
scripts/bench_pytorch.py searches the configurations. For each batch size, a fresh model (seed 1) takes 20
warm-up steps, then steps are timed for --seconds; the data are Fashion-MNIST's training images, shuffled
once. One line (or JSON object) per batch size.
"""
import argparse
import json
import os
import sys
import time

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--batch", default="128", help="batch size, or several separated by commas")
parser.add_argument("--torch-threads", type=int, default=1)
parser.add_argument("--blas-threads", type=int, default=os.cpu_count())
parser.add_argument("--seconds", type=float, default=10.0)
parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
parser.add_argument("--json", action="store_true")
args = parser.parse_args()
try:
    batches = [int(b) for b in args.batch.split(",")]
    if any(b < 1 for b in batches):
        raise ValueError
except ValueError:
    parser.error(f"--batch: expected positive integers separated by commas, got '{args.batch}'")
# OpenBLAS reads its thread count when it is loaded, so set it before importing torch.
os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from vae_torch import VAE, find_idx, per_sample_losses, read_idx  # noqa: E402

torch.set_num_threads(args.torch_threads)
images = read_idx(find_idx(args.data, "train-images-idx3-ubyte"))
x_all = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)


def measure(batch):
    """samples/s and steps of training at this batch size for args.seconds after a warm-up."""
    torch.manual_seed(1)
    model = VAE(x_all.shape[1], [400], 20, [400])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x_all))

    def step(i):
        lo = (i * batch) % (len(x_all) - batch)
        x = x_all[perm[lo:lo + batch]]
        logits, mu, logvar = model(x, torch.randn(len(x), 20))
        rec, kl = per_sample_losses(logits, x, mu, logvar, "mse", 0.5 ** 0.5)
        opt.zero_grad()
        (rec + kl).sum().backward()
        opt.step()

    for i in range(20):
        step(i)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        step(steps)
        steps += 1
    return steps, steps * batch / (time.perf_counter() - t0)


for batch in batches:
    steps, rate = measure(batch)
    result = {"framework": "pytorch " + torch.__version__, "batch": batch, "torch_threads": args.torch_threads,
              "blas_threads": args.blas_threads, "steps": steps, "samples_per_s": rate}
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(f"PyTorch {torch.__version__}: batch {batch}, torch threads {args.torch_threads}, OpenBLAS threads "
              f"{args.blas_threads}: {rate:.0f} samples/s over {steps} steps", flush=True)
