#!/bin/sh
# The PyTorch reference of the flow's quality gate: 20 epochs, seeds 1, 2, 3 one at a time, 1 thread, nice 5.
cd "$(dirname "$0")/../.."
for s in 1 2 3; do
    nice -n 5 /usr/bin/python3 scripts/flow_quality_torch.py 20 $s --threads 1 > results/flow-quality-amd-epyc-20261206/torch-seed$s.jsonl.part &&
        mv results/flow-quality-amd-epyc-20261206/torch-seed$s.jsonl.part results/flow-quality-amd-epyc-20261206/torch-seed$s.jsonl
done
