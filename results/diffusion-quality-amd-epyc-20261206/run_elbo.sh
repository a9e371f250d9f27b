#!/bin/sh
# The diffusion gate's elbo side (issue 20) for one seed: 20 epochs of the default recipe (one thread, nice -n 5),
# scored by the reference classifier on 10000 DDIM-50 samples of the EMA weights.
# From the top level: results/diffusion-quality-amd-epyc-20261206/run_elbo.sh SEED [ELBO]
set -e
D=results/diffusion-quality-amd-epyc-20261206
S=$1
ELBO=${2:-build/elbo}
nice -n 5 $ELBO train --model diffusion --epochs 20 --seed $S --threads 1 --save /tmp/diff-elbo-s$S.safetensors \
  --json > $D/elbo-s$S.log 2>&1
nice -n 5 $ELBO eval --load /tmp/diff-elbo-s$S.safetensors --classifier build/classifier.safetensors --threads 1 \
  --json > $D/elbo-s$S.eval.json
