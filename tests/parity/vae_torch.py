#!/usr/bin/python3
"""PyTorch oracle for elbo's parity tests: the same VAE as an nn.Module whose state_dict names match
elbo's checkpoints.

  vae_torch.py grads OUT.safetensors --input 784 --hidden 400 --latent 20 [--decoder-hidden 400]
               [--recon mse|bce] [--beta 1] [--batch 16] [--seed 0]
      random weights, uint8 images and noise; writes them with the loss and every parameter gradient
      (autograd, float32) of the batch-summed loss.
  vae_torch.py grads-suite OUTDIR
      the parity cases elbo's tests use, one file per case (CASES below), in one process.
  vae_torch.py iw CKPT --data DIR --k 1,10 [--seed 0]
      loads an elbo checkpoint and prints one JSON line with the test set's mean ELBO and importance-weighted
      bounds log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), every density from torch.distributions (Normal for
      the MSE likelihood with sigma0, Bernoulli-logits terms for BCE), torch's own noise.
  vae_torch.py train-steps IN.safetensors OUT.safetensors [IN2 OUT2 ...]
      replays a training run elbo's test wrote to IN: initial parameters (state_dict names), uint8 images
      (input.x as floats), each step's batch rows (step.S.rows, indices into input.x) and noise (step.S.eps),
      the model and optimizer in the metadata (optimizer adam|sgd, lr, beta1, beta2, eps, momentum, steps). Each
      step minimizes the batch SUM of the per-sample losses with torch.optim.Adam or torch.optim.SGD
      (single-tensor updates, float32). Writes to OUT, for every step S and after the last (S = steps), every
      parameter at the start of step S (sS.NAME) and the optimizer state then (sS.exp_avg.NAME and
      sS.exp_avg_sq.NAME, or sS.momentum_buffer.NAME; zeros before the first step), each step's gradients
      (sS.grad.NAME) and batch losses (loss). Several IN OUT pairs share one process.
  vae_torch.py train --data DIR --seeds 0,1,2 [--epochs 1] [--batch 128] [--lr 1e-3] [--hidden 400] [--latent 20]
      trains with Adam on the IDX dataset in DIR and prints one JSON line with the test -ELBO per seed.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class VAE(nn.Module):
    """Encoder MLP -> (mu, logvar) heads; z = mu + exp(logvar/2) * eps; decoder MLP -> logits."""

    def __init__(self, d, enc, z, dec):
        super().__init__()
        widths = [d] + enc
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.fc_mu = nn.Linear(enc[-1], z)
        self.fc_logvar = nn.Linear(enc[-1], z)
        widths = [z] + dec
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.fc_out = nn.Linear(dec[-1], d)

    def forward(self, x, eps):
        h = x
        for layer in self.encoder:
            h = F.relu(layer(h))
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        h = z
        for layer in self.decoder:
            h = F.relu(layer(h))
        return self.fc_out(h), mu, logvar


def per_sample_losses(logits, x, mu, logvar, recon, sigma0):
    """Reconstruction and KL per sample (sums over pixels and latent dims)."""
    if recon == "mse":
        rec = ((x - torch.sigmoid(logits)) ** 2).sum(1) / (2.0 * sigma0 * sigma0)
    else:
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = 0.5 * (mu * mu + torch.exp(logvar) - logvar - 1.0).sum(1)
    return rec, kl


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


def widths(s):
    return [int(w) for w in s.split(",")]


def cmd_grads(a):
    torch.manual_seed(a.seed)
    enc, dec = widths(a.hidden), widths(a.decoder_hidden or ",".join(reversed(a.hidden.split(","))))
    model = VAE(a.input, enc, a.latent, dec)
    # Wider weights than nn.Linear's default so that ReLUs and sigmoids are exercised on both sides.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    g = torch.Generator().manual_seed(a.seed + 1)
    x8 = torch.randint(0, 256, (a.batch, a.input), generator=g, dtype=torch.int64)
    x8[0, :] = 0
    x8[1, :] = 255
    eps = torch.randn(a.batch, a.latent, generator=g)
    x = x8.float() / 255.0
    sigma0 = math.sqrt(0.5) if a.sigma0 is None else a.sigma0
    logits, mu, logvar = model(x, eps)
    rec, kl = per_sample_losses(logits, x, mu, logvar, a.recon, sigma0)
    loss = (rec + a.beta * kl).sum()
    loss.backward()
    t = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for k, p in model.named_parameters():
        t["grad." + k] = p.grad.numpy()
    t["input.x"] = x8.float().numpy()
    t["input.eps"] = eps.numpy()
    t["out.recon"] = rec.detach().numpy()
    t["out.kl"] = kl.detach().numpy()
    t["out.loss"] = np.array([loss.item()], dtype=np.float32)
    meta = {"input_dim": str(a.input), "encoder_hidden": ",".join(map(str, enc)), "latent": str(a.latent),
            "decoder_hidden": ",".join(map(str, dec)), "recon": a.recon, "sigma0": repr(sigma0),
            "beta": repr(a.beta)}
    write_safetensors(a.out, t, meta)


# name: arguments of `grads` (784-400-20 and a two-hidden-layer model, both likelihoods, Z = 2 with
# a non-default sigma0 and beta, a non-mirrored decoder).
CASES = {
    "mse_784_400_20": "--hidden 400 --latent 20 --recon mse --batch 16 --seed 1",
    "bce_784_400_20": "--hidden 400 --latent 20 --recon bce --batch 16 --seed 2",
    "mse_784_512_256_32": "--hidden 512,256 --latent 32 --recon mse --batch 24 --seed 3",
    "bce_784_512_256_32": "--hidden 512,256 --latent 32 --recon bce --batch 24 --seed 4",
    "mse_z2_sigma_beta": "--input 100 --hidden 64 --latent 2 --decoder-hidden 48,80 --recon mse --sigma0 0.3 "
                         "--beta 2.5 --batch 7 --seed 5",
}


def cmd_grads_suite(a, parser):
    for name, args in CASES.items():
        ca = parser.parse_args(["grads", os.path.join(a.outdir, name + ".safetensors")] + args.split())
        cmd_grads(ca)


def read_idx(path):
    """uint8 array of an IDX file (plain or gzip)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_idx(d, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f"{d}: missing {stem}[.gz]")


def cmd_train(a):
    torch.set_num_threads(a.threads)
    train = read_idx(find_idx(a.data, "train-images-idx3-ubyte"))
    test = read_idx(find_idx(a.data, "t10k-images-idx3-ubyte"))
    d = train.shape[1] * train.shape[2]
    xtr = torch.from_numpy(train.reshape(len(train), d).astype(np.float32) / 255.0)
    xte = torch.from_numpy(test.reshape(len(test), d).astype(np.float32) / 255.0)
    enc = widths(a.hidden)
    sigma0 = math.sqrt(0.5)
    results = []
    for seed in (int(s) for s in a.seeds.split(",")):
        torch.manual_seed(seed)
        model = VAE(d, enc, a.latent, list(reversed(enc)))
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        for _ in range(a.epochs):
            perm = torch.randperm(len(xtr))
            for i in range(0, len(xtr), a.batch):
                x = xtr[perm[i:i + a.batch]]
                logits, mu, logvar = model(x, torch.randn(len(x), a.latent))
                rec, kl = per_sample_losses(logits, x, mu, logvar, "mse", sigma0)
                opt.zero_grad()
                (rec + kl).sum().backward()
                opt.step()
        with torch.no_grad():
            logits, mu, logvar = model(xte, torch.randn(len(xte), a.latent))
            rec, kl = per_sample_losses(logits, xte, mu, logvar, "mse", sigma0)
            results.append({"seed": seed, "test_neg_elbo": (rec + kl).mean().item(),
                            "test_recon": rec.mean().item(), "test_kl": kl.mean().item()})
    mean = sum(r["test_neg_elbo"] for r in results) / len(results)
    print(json.dumps({"runs": results, "mean_test_neg_elbo": mean}))


def read_checkpoint(path):
    """(state_dict of float32 tensors, metadata dict) of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    n, = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    state = {}
    for name, t in header.items():
        if name.startswith("optimizer."):
            continue
        lo, hi = t["data_offsets"]
        state[name] = torch.from_numpy(np.frombuffer(raw[base + lo:base + hi], dtype=np.float32).reshape(t["shape"]).copy())
    return state, meta


def cmd_train_steps_one(inp, out):
    t, meta = read_checkpoint(inp)
    enc, dec = widths(meta["encoder_hidden"]), widths(meta["decoder_hidden"])
    d, z = int(meta["input_dim"]), int(meta["latent"])
    recon, sigma0, beta = meta["recon"], float(meta["sigma0"]), float(meta["beta"])
    model = VAE(d, enc, z, dec)
    model.load_state_dict({k: t[k] for k in model.state_dict().keys()})
    lr = float(meta["lr"])
    if meta["optimizer"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(float(meta["beta1"]), float(meta["beta2"])),
                               eps=float(meta["eps"]), foreach=False)
        state_keys = ["exp_avg", "exp_avg_sq"]
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=float(meta["momentum"]), foreach=False)
        state_keys = ["momentum_buffer"]
    res = {}

    def record(s):
        """Parameters and optimizer state at the start of step s (zeros before the first step)."""
        for k, p in model.named_parameters():
            res[f"s{s}.{k}"] = p.detach().numpy().copy()
            for sk in state_keys:
                st = opt.state[p].get(sk) if p in opt.state else None
                res[f"s{s}.{sk}.{k}"] = np.zeros(p.shape, np.float32) if st is None else st.numpy().copy()

    x8 = t["input.x"]
    losses = []
    steps = int(meta["steps"])
    for s in range(steps):
        record(s)
        x = x8[t[f"step.{s}.rows"].long()] / 255.0
        logits, mu, logvar = model(x, t[f"step.{s}.eps"])
        rec, kl = per_sample_losses(logits, x, mu, logvar, recon, sigma0)
        loss = (rec + beta * kl).sum()
        opt.zero_grad()
        loss.backward()
        for k, p in model.named_parameters():
            res[f"s{s}.grad.{k}"] = p.grad.numpy().copy()
        opt.step()
        losses.append(loss.item())
    record(steps)
    res["loss"] = np.array(losses, dtype=np.float32)
    write_safetensors(out, res, {})


def cmd_train_steps(a):
    torch.set_num_threads(1)
    if len(a.files) % 2:
        raise SystemExit("train-steps: give IN OUT pairs")
    for inp, out in zip(a.files[::2], a.files[1::2]):
        cmd_train_steps_one(inp, out)


def cmd_iw(a):
    from torch.distributions import Normal
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    state, meta = read_checkpoint(a.checkpoint)
    enc = widths(meta["encoder_hidden"])
    dec = widths(meta["decoder_hidden"])
    d, z = int(meta["input_dim"]), int(meta["latent"])
    model = VAE(d, enc, z, dec)
    model.load_state_dict(state)
    test = read_idx(find_idx(a.data, "t10k-images-idx3-ubyte"))
    x = torch.from_numpy(test.reshape(len(test), d).astype(np.float64) / 255.0)
    model = model.double()
    sigma0 = float(meta["sigma0"])

    def log_px_z(logits):
        if meta["recon"] == "mse":
            return Normal(torch.sigmoid(logits), sigma0).log_prob(x).sum(1)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)

    ks = [int(k) for k in a.k.split(",")]
    out = {}
    with torch.no_grad():
        h = x
        for layer in model.encoder:
            h = F.relu(layer(h))
        mu, logvar = model.fc_mu(h), model.fc_logvar(h)
        q = Normal(mu, torch.exp(0.5 * logvar))
        prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
        logw = []
        for _ in range(max(ks)):
            zs = q.sample()
            h = zs
            for layer in model.decoder:
                h = F.relu(layer(h))
            lpxz = log_px_z(model.fc_out(h))
            if not logw:
                kl = torch.distributions.kl_divergence(q, prior).sum(1)
                out["test_elbo"] = (lpxz - kl).mean().item()
            logw.append(lpxz + prior.log_prob(zs).sum(1) - q.log_prob(zs).sum(1))
        lw = torch.stack(logw)
        for k in ks:
            out[f"iw_{k}"] = (torch.logsumexp(lw[:k], 0) - math.log(k)).mean().item()
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grads")
    g.add_argument("out")
    g.add_argument("--input", type=int, default=784)
    g.add_argument("--hidden", default="400")
    g.add_argument("--decoder-hidden", default=None)
    g.add_argument("--latent", type=int, default=20)
    g.add_argument("--recon", choices=["mse", "bce"], default="mse")
    g.add_argument("--sigma0", type=float, default=None)
    g.add_argument("--beta", type=float, default=1.0)
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("grads-suite")
    s.add_argument("outdir")
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--seeds", default="0,1,2")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--hidden", default="400")
    t.add_argument("--latent", type=int, default=20)
    # torch threads = 1 with OpenBLAS on its own threads is its fastest configuration here; more torch
    # threads oversubscribe the cores OpenBLAS already uses.
    t.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("train-steps")
    r.add_argument("files", nargs="+")
    w = sub.add_parser("iw")
    w.add_argument("checkpoint")
    w.add_argument("--data", required=True)
    w.add_argument("--k", default="1,10")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    if a.cmd == "iw":
        cmd_iw(a)
    elif a.cmd == "grads":
        cmd_grads(a)
    elif a.cmd == "grads-suite":
        cmd_grads_suite(a, p)
    elif a.cmd == "train-steps":
        cmd_train_steps(a)
    else:
        cmd_train(a)


if __name__ == "__main__":
    sys.exit(main())
