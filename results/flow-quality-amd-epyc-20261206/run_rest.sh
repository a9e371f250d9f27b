#!/bin/sh
# The rest of the flow's quality gate after torch-seed1.jsonl: PyTorch seeds 2 and 3 and elbo seeds 1-3, the two
# chains side by side on one thread each (nice 10); each seed's .jsonl appears when that run has finished.
cd "$(dirname "$0")/../.."
out=results/flow-quality-amd-epyc-20261206
(for s in 2 3; do
    nice -n 10 /usr/bin/python3 scripts/flow_quality_torch.py 20 $s --threads 1 > $out/torch-seed$s.jsonl.part &&
        mv $out/torch-seed$s.jsonl.part $out/torch-seed$s.jsonl
done) &
for s in 1 2 3; do
    nice -n 10 ${ELBO:-build/elbo} train --model flow --data /usr/share/datasets/fashion-mnist --epochs 20 --seed $s \
        --threads 1 --json > $out/elbo-seed$s.jsonl.part &&
        mv $out/elbo-seed$s.jsonl.part $out/elbo-seed$s.jsonl
done
wait
