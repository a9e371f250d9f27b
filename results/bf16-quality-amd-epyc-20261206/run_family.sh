#!/bin/sh
# One seed of a family's quality run in bf16, with its fp32 gate's recipe (one thread, nice -n 5): the GAN 30 epochs
# and the diffusion model 20 epochs, each scored by the reference classifier (build/classifier.safetensors, tensors
# da842143e1b0cbf8) on 10000 samples; the flow 20 epochs, test bits/dim. Outputs land here as *.part until done.
# From the top level: results/bf16-quality-amd-epyc-20261206/run_family.sh gan|flow|diffusion SEED [ELBO]
set -e
D=results/bf16-quality-amd-epyc-20261206
F=$1
S=$2
ELBO=${3:-build/elbo}
case $F in
gan) EPOCHS=30 ;;
flow | diffusion) EPOCHS=20 ;;
*) echo "run_family.sh: unknown family $F" >&2; exit 2 ;;
esac
nice -n 5 $ELBO train --model $F --epochs $EPOCHS --seed $S --threads 1 --precision bf16 \
    --save /tmp/bf16q-$F-s$S.safetensors --json > $D/$F-bf16-s$S.log.part 2>&1
mv $D/$F-bf16-s$S.log.part $D/$F-bf16-s$S.log
if [ $F != flow ]; then
    nice -n 5 $ELBO eval --load /tmp/bf16q-$F-s$S.safetensors --classifier build/classifier.safetensors --threads 1 \
        --json > $D/$F-bf16-s$S.eval.json.part
    mv $D/$F-bf16-s$S.eval.json.part $D/$F-bf16-s$S.eval.json
fi
