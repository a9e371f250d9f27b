#!/bin/sh
# The rest of the flow's quality gate after torch-seed1.jsonl: PyTorch seeds $TORCH_SEEDS (default 2 3) and elbo
# seeds $ELBO_SEEDS (default 1 2 3), every run on one thread beside the others (nice 10); each seed's .jsonl
# appears when that run has finished (.jsonl.part while it runs).
cd "$(dirname "$0")/../.."
out=results/flow-quality-amd-epyc-20261206
for s in ${TORCH_SEEDS:-2 3}; do
    (nice -n 10 /usr/bin/python3 scripts/flow_quality_torch.py 20 $s --threads 1 > $out/torch-seed$s.jsonl.part &&
        mv $out/torch-seed$s.jsonl.part $out/torch-seed$s.jsonl) &
done
for s in ${ELBO_SEEDS:-1 2 3}; do
    nice -n 10 ${ELBO:-build/elbo} train --model flow --data /usr/share/datasets/fashion-mnist --epochs 20 --seed $s \
        --threads 1 --json > $out/elbo-seed$s.jsonl.part &&
        mv $out/elbo-seed$s.jsonl.part $out/elbo-seed$s.jsonl
done
wait
