#!/usr/bin/env python3
"""Projected data-parallel scaling of elbo-mpi: samples/s and efficiency for 1 .. 1024 nodes at a fixed per-node
batch, from the measured compute time per sample, the gradient bytes and an alpha-beta network model
(a message of m bytes takes latency + m / bandwidth).

Per step on N nodes (one rank each): compute T_c = node_batch * sample_us. Exchange (dist.h), as implemented (no
overlap, so it adds to T_c):
  agreement and loss sums: two allgathers of a few bytes, 2 ceil(log2 N) latencies (recursive doubling);
  gradients: the tree's pieces to the slice owners (alltoallv) and the root's slices to everyone (allgatherv),
  2 (N - 1) latencies (pairwise) and (pieces + 1) (N - 1) / N * 4n bytes sent by the busiest rank, pieces being its
  maximal nodes of the fixed tree over the N * node_batch / C chunks (computed here as grad_tree.c does).
Against a ring allreduce: 2 (N - 1) latencies and 2 (N - 1) / N * 4n bytes (what MPI_Allreduce would cost, without
the determinism). "overlap" is the bound if the exchange hid entirely behind the compute: max(T_c, T_x).

Example: scripts/mpi_scaling_model.py --sample-us 10 --link-gbps 10 (a node of many cores on a 10 Gb/s link)
"""
import argparse
import math


def node_range(n, k, j):
    """Chunks [lo, hi) of tree node (k, j) over n chunks."""
    return min(j << k, n), min((j + 1) << k, n)


def range_pieces(n, levels, a, b):
    """Number of maximal tree nodes inside chunks [a, b) (grad_tree.c's range_pieces)."""
    count = 0
    while a < b:
        k = 0
        while k + 1 <= levels and a % (1 << (k + 1)) == 0 and node_range(n, k + 1, a >> (k + 1))[1] <= b:
            k += 1
        count += 1
        a = node_range(n, k, a >> k)[1]
    return count


def max_pieces(n_chunks, ranks):
    """The most pieces any rank has when ranks share n_chunks chunks evenly (elbo_team_rows)."""
    levels = max(0, math.ceil(math.log2(n_chunks))) if n_chunks > 1 else 0
    most = 0
    # ranks of equal range size have at most a few distinct alignments: sample up to 4096 of them
    step = max(1, ranks // 4096)
    for r in range(0, ranks, step):
        lo = n_chunks * r // ranks
        hi = n_chunks * (r + 1) // ranks
        most = max(most, range_pieces(n_chunks, levels, lo, hi))
    return most


def project(args, nodes):
    """(samples/s, efficiency, samples/s with overlap, tree ms, ring ms, pieces) for `nodes` nodes."""
    alpha = args.latency_us * 1e-6
    beta = 8.0 / (args.link_gbps * 1e9)  # seconds per byte
    grad_bytes = 4.0 * args.grad_floats
    t_c = args.node_batch * args.sample_us * 1e-6
    chunks = math.ceil(nodes * args.node_batch / args.chunk_rows)
    pieces = max_pieces(chunks, nodes)
    if nodes == 1:
        t_tree = t_ring = 0.0
    else:
        frac = (nodes - 1) / nodes
        t_tree = 2 * math.ceil(math.log2(nodes)) * alpha + 2 * (nodes - 1) * alpha + (pieces + 1) * frac * grad_bytes * beta
        t_ring = 2 * (nodes - 1) * alpha + 2 * frac * grad_bytes * beta
    samples = nodes * args.node_batch
    sps = samples / (t_c + t_tree)
    sps_overlap = samples / max(t_c, t_tree)
    return sps, t_c / (t_c + t_tree), sps_overlap, 1e3 * t_tree, 1e3 * t_ring, pieces


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample-us", type=float, default=109.0,
                   help="compute time per sample on one node, microseconds (make bench-mpi: 1 rank x 1 thread "
                        "samples/s inverted; default 109: 9204 samples/s at batch 1024, one thread, under load 12)")
    p.add_argument("--node-batch", type=int, default=128, help="rows per node and step (default 128)")
    p.add_argument("--grad-floats", type=int, default=652832,
                   help="gradient floats (default 652832: the 784-400-20 VAE, 2.6 MB)")
    p.add_argument("--chunk-rows", type=int, default=24, help="rows per chunk, C (default 24)")
    p.add_argument("--link-gbps", type=float, default=100.0, help="link bandwidth, Gb/s (default 100)")
    p.add_argument("--latency-us", type=float, default=2.0, help="message latency, microseconds (default 2)")
    p.add_argument("--max-nodes", type=int, default=1024)
    p.add_argument("--check-step-ms", type=float, help="measured ms/step of 2 ranks on one machine (make bench-mpi)")
    p.add_argument("--check-exposed-ms", type=float, help="measured exposed exchange ms/step of that run")
    p.add_argument("--check-node-batch", type=int, default=64, help="rows per rank of that run (default 64)")
    args = p.parse_args()

    base = project(args, 1)[0]
    print(f"elbo-mpi scaling model: {args.grad_floats * 4 / 1e6:.2f} MB of gradients, {args.sample_us:g} us/sample, "
          f"node batch {args.node_batch}, C {args.chunk_rows}, {args.link_gbps:g} Gb/s, {args.latency_us:g} us")
    print(f"{'nodes':>6} {'pieces':>6} {'tree ms':>8} {'ring ms':>8} {'samples/s':>12} {'efficiency':>10} "
          f"{'with overlap':>13}")
    stop = None
    n = 1
    while n <= args.max_nodes:
        sps, eff, sps_o, t_tree, t_ring, pieces = project(args, n)
        print(f"{n:>6} {pieces:>6} {t_tree:>8.3f} {t_ring:>8.3f} {sps:>12.0f} {eff:>9.1%} {sps_o:>13.0f}")
        if stop is None and eff < 0.5:
            stop = n
        n *= 2
    if stop:
        print(f"efficiency falls below 50 % at {stop} nodes: the exchange then takes longer than the compute")
    else:
        print(f"efficiency stays above 50 % up to {args.max_nodes} nodes")
    if args.check_step_ms is not None and args.check_exposed_ms is not None:
        predicted = args.check_node_batch * args.sample_us * 1e-3
        measured = args.check_step_ms - args.check_exposed_ms
        print(f"compute check: {args.check_node_batch} rows per rank predicted {predicted:.2f} ms/step, measured "
              f"{measured:.2f} ms/step (step {args.check_step_ms:g} - exposed exchange {args.check_exposed_ms:g}): "
              f"{measured / predicted - 1:+.0%}")


if __name__ == "__main__":
    main()
