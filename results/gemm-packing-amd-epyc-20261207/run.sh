#!/bin/sh
# run.sh RUNS NAME...: every shape below RUNS times, the builds NAME alternating (bin/*-NAME), one line per run;
# summarize.py reduces them to medians per shape and build.
cd "$(dirname "$0")"
export OMP_NUM_THREADS=1
for i in $(seq "$1"); do
    for shape in "784 400 1024 1 0" "400 784 1024 1 0" "1024 400 784 0 0" "2048 2048 2048 0 0" "784 400 128 1 0" \
                 "400 784 128 1 0"; do
        for name in $(echo "$@" | cut -d' ' -f2-); do
            echo "fp32 $name $(bin/vs_onednn-$name $shape 15)"
        done
    done
    for shape in "2048 2048 2048 0 0 0 0" "784 400 1024 1 0 1 0" "400 784 1024 1 0 1 0"; do
        for name in $(echo "$@" | cut -d' ' -f2-); do
            echo "bf16 $name $(bin/bf16_rate-$name $shape 11)"
        done
    done
done
