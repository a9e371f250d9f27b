#!/bin/sh
# The gate's PyTorch side (issue 18): seeds 1-3 one after another, one thread each, nice -n 5; from the top level.
set -e
D=results/gan-quality-amd-epyc-20261206
for S in 1 2 3; do
  nice -n 5 /usr/bin/python3 scripts/gan_recipe_torch.py 30 $S 1.0 512,256 $D/torch-s$S.idx --spectral-norm > $D/torch-s$S.log 2>&1
  build/elbo eval --classifier build/classifier.safetensors --images $D/torch-s$S.idx --json > $D/torch-s$S.eval.json
done
