#!/bin/sh
# The diffusion gate's PyTorch side (issue 20) for one seed: 20 epochs of scripts/diffusion_quality_torch.py (one
# thread, nice -n 5), 10000 DDIM-50 samples from its EMA weights, scored by the reference classifier.
# From the top level: results/diffusion-quality-amd-epyc-20261206/run_torch.sh SEED [ELBO]
set -e
D=results/diffusion-quality-amd-epyc-20261206
S=$1
ELBO=${2:-build/elbo}
mkdir -p $D/torch-s$S
nice -n 5 /usr/bin/python3 scripts/diffusion_quality_torch.py --out-dir $D/torch-s$S --epochs 20 --seed $S \
  --threads 1 --samples 10000 --samplers ddim50 > $D/torch-s$S/train.jsonl 2> $D/torch-s$S/train.stderr
nice -n 5 $ELBO eval --classifier build/classifier.safetensors --images $D/torch-s$S/samples-ddim50.idx --threads 1 \
  --json > $D/torch-s$S.eval.json
