#!/bin/sh
# elbo's side of the flow's quality gate: 20 epochs, seeds 1, 2, 3 one at a time, 2 threads, nice 5 (after
# run_torch.sh has finished: one long run at a time).
cd "$(dirname "$0")/../.."
for s in 1 2 3; do
    nice -n 5 build/elbo train --model flow --data /usr/share/datasets/fashion-mnist --epochs 20 --seed $s \
        --threads 2 --json > results/flow-quality-amd-epyc-20261206/elbo-seed$s.jsonl.part &&
        mv results/flow-quality-amd-epyc-20261206/elbo-seed$s.jsonl.part results/flow-quality-amd-epyc-20261206/elbo-seed$s.jsonl
done
