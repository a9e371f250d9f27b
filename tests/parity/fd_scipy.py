#!/usr/bin/python3
"""SciPy oracle for elbo's Fréchet distance (tests/test_model_scoring.c).

  fd_scipy.py A.f32 N1 B.f32 N2 D
      reads two little-endian float32 feature sets (N1 x D and N2 x D, row-major), computes each set's mean and
      covariance in float64 (numpy.cov, rows are observations, divisor N - 1) and prints one line:
      "FD TR1 TR2 TRSQRT" with FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)), the matrix square
      root of the (non-symmetric) product by scipy.linalg.sqrtm, its real part, as the usual FID code does.
"""
import sys

import numpy as np
import scipy.linalg


def stats(path, n, d):
    """Mean (d) and covariance (d, d) of the n x d float32 rows in path, in float64."""
    x = np.fromfile(path, dtype="<f4")
    if x.size != n * d:
        sys.exit(f"{path}: {x.size} floats, expected {n} x {d}")
    x = x.reshape(n, d).astype(np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    a, n1, b, n2, d = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    mu1, s1 = stats(a, n1, d)
    mu2, s2 = stats(b, n2, d)
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    tr_sqrt = float(np.trace(covmean))
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
    print(f"{fd!r} {float(np.trace(s1))!r} {float(np.trace(s2))!r} {tr_sqrt!r}")


if __name__ == "__main__":
    main()
