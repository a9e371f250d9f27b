#!/usr/bin/python3
"""Whether two checkpoints hold the same mathematics: every tensor of A whose name starts with PREFIX ("" for all)
within BOUND of its scale (max |B|) of B's. Prints "N tensors, worst difference X of scale"; exit status 0 when
there is at least one such tensor and the worst is below BOUND, else 1. Used by make test-mpi and make test-arm64.

  checkpoint_close.py A B PREFIX BOUND
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from vae_torch import read_checkpoint  # noqa: E402


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    a, _ = read_checkpoint(sys.argv[1])
    b, _ = read_checkpoint(sys.argv[2])
    names = [k for k in a if k.startswith(sys.argv[3])]
    worst = max((float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp(min=1e-30)) for k in names), default=1.0)
    print(f"{len(names)} tensors, worst difference {worst:.2e} of scale")
    sys.exit(0 if names and worst < float(sys.argv[4]) else 1)


if __name__ == "__main__":
    main()
