#!/usr/bin/python3
"""Writes the fuzzers' seed corpora under tests/fuzz_corpus/ (small, deterministic files):
idx/ (plain and gzip IDX image and label files), idx_gz/ (the gzip target's [flags, cut, flip, payload]
inputs), checkpoint/ (safetensors checkpoints of tiny models in elbo's format, with and without optimizer
state), args/ (NUL-separated argument lists). Run from the repository root: scripts/fuzz_seeds.py"""
import gzip
import json
import os
import random
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz_corpus")


def write(sub, name, data):
    d = os.path.join(ROOT, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx_images(count, rows, cols, rng):
    return struct.pack(">IIII", 0x803, count, rows, cols) + bytes(rng.randrange(256) for _ in range(count * rows * cols))


def idx_labels(count, rng):
    return struct.pack(">II", 0x801, count) + bytes(rng.randrange(10) for _ in range(count))


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def layout(input_dim, enc, latent, dec):
    """(name, shape) of every parameter tensor, in elbo's order (PyTorch state_dict names)."""
    t, inp = [], input_dim
    for i, w in enumerate(enc):
        t += [(f"encoder.{i}.weight", [w, inp]), (f"encoder.{i}.bias", [w])]
        inp = w
    t += [("fc_mu.weight", [latent, inp]), ("fc_mu.bias", [latent]),
          ("fc_logvar.weight", [latent, inp]), ("fc_logvar.bias", [latent])]
    inp = latent
    for i, w in enumerate(dec):
        t += [(f"decoder.{i}.weight", [w, inp]), (f"decoder.{i}.bias", [w])]
        inp = w
    return t + [("fc_out.weight", [input_dim, inp]), ("fc_out.bias", [input_dim])]


def checkpoint(input_dim, enc, latent, dec, recon, optimizer, state, rng, classes=None, fmt="elbo-vae-1",
               drop=()):
    """A checkpoint with format tag fmt and without the metadata keys in drop (an early elbo-vae-1 layout)."""
    params = layout(input_dim, enc, latent, dec)
    names = {"adam": ["exp_avg", "exp_avg_sq"], "sgd": ["momentum_buffer"]}[optimizer] if state else []
    tensors = list(params) + [(f"optimizer.{s}.{n}", shape) for s in names for n, shape in params]
    meta = {"format": fmt, "encoder_hidden": ",".join(map(str, enc)),
            "decoder_hidden": ",".join(map(str, dec)), "input_dim": str(input_dim), "latent": str(latent),
            "recon": recon, "sigma0": "0.70710678118654757", "beta": "1", "seed": "7", "step": "3", "epoch": "1",
            "optimizer": optimizer, "lr": "0.001", "batch": "4", "dataset": "synthetic", "epoch_step": "1",
            "momentum": "0.90000000000000002"}
    if classes is not None:
        meta["classes"] = classes
    for key in drop:
        del meta[key]
    header, data, off = {"__metadata__": meta}, b"", 0
    for name, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        blob = struct.pack(f"<{n}f", *(rng.uniform(-0.5, 0.5) for _ in range(n)))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
        data += blob
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    rng = random.Random(7)
    img, lab = idx_images(3, 2, 2, rng), idx_labels(3, rng)
    write("idx", "images.idx", img)
    write("idx", "labels.idx", lab)
    write("idx", "images.idx.gz", gz(img))
    write("idx", "labels.idx.gz", gz(lab))
    write("idx", "images-5x4x3.idx", idx_images(5, 4, 3, rng))
    write("idx", "truncated-header.idx", img[:10])
    write("idx", "truncated-body.idx.gz", gz(img)[:-12])
    write("idx_gz", "images", b"\0\0\0" + idx_images(4, 3, 3, rng))
    write("idx_gz", "labels", b"\0\0\0" + idx_labels(6, rng))
    write("idx_gz", "images-cut", b"\x01\x80\0" + idx_images(2, 2, 2, rng))
    write("idx_gz", "images-two-members", b"\x08\0\0" + img)
    write("checkpoint", "adam.safetensors", checkpoint(6, [5], 2, [4], "mse", "adam", True, rng))
    write("checkpoint", "sgd.safetensors", checkpoint(6, [3], 1, [3], "bce", "sgd", True, rng))
    write("checkpoint", "params-only.safetensors", checkpoint(4, [3, 2], 1, [2], "mse", "adam", False, rng))
    write("checkpoint", "classes.safetensors", checkpoint(6, [5], 2, [4], "mse", "adam", True, rng, "0,2,9"))
    write("checkpoint", "v2.safetensors", checkpoint(6, [5], 2, [4], "mse", "sgd", True, rng, "all", "elbo-vae-2"))
    write("checkpoint", "v1-early.safetensors",
          checkpoint(6, [5], 2, [4], "bce", "adam", False, rng, drop=("epoch_step", "momentum")))
    args = [
        ["--epochs", "3", "--lr=0.01", "--hidden", "512,256", "--json"],
        ["--batch", "0"], ["--lr", "nan"], ["--seed", "18446744073709551615"], ["--steps", "-1"],
        ["--recon", "bce", "--beta=0.5", "--data", "synthetic:60"], ["--help"], ["positional"], ["--json=1"],
        ["--hidden", "1,2,3,4,5,6,7,8,9"], ["--epochs", "1", "--epochs", "2"], ["--batch"],
        ["-b", "8", "-j", "-d", "synthetic:60"], ["-x"], ["-b"], ["-bb", "1"], ["-", "-b", "2", "--batch", "3"],
    ]
    for i, a in enumerate(args):
        write("args", f"args-{i:02d}", b"\0".join(s.encode() for s in a))


if __name__ == "__main__":
    main()
