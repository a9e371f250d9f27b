#!/bin/sh
# make bench-mpi: training samples/s of the VAE (Fashion-MNIST, 784-400-20) at batch 128 and 1024, on this machine:
#   elbo         1 process x 2 threads, the one-GEMM step (the default binary)
#   elbo-mpi P=1 1 process x 2 threads (mpirun --bind-to none: its default binds one rank to one core), the chunked
#                step without an exchange (what chunks cost)
#   elbo-mpi P=2 2 ranks x 1 thread, with the exchange's exposed time per step (ELBO_DIST_STATS)
# and elbo-mpi P=1 x 1 thread, whose step time per sample is the compute side of scripts/mpi_scaling_model.py.
# Each configuration runs BENCH_MPI_RUNS times (default 3), alternating; the median is reported. A shared machine's
# load moves every figure: compare the rows of one run of this script, not across runs.
set -eu
cd "$(dirname "$0")/.."
E=build/elbo
EM=${ELBO_MPI:-build/elbo-mpi}
MPIRUN=${MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
RUNS=${BENCH_MPI_RUNS:-3}
DATA=${BENCH_MPI_DATA:-/usr/share/datasets/fashion-mnist}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# samples/s of an epoch line in file $1
rate() { sed -n 's/.*  \([0-9.]*\) samples\/s.*/\1/p' "$1" | tail -1; }
# median of the numbers on stdin
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                                          else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "| batch | configuration | samples/s (median of $RUNS) | ms/step | exchange exposed ms/step (wait for ranks + transfer) |"
echo "|---|---|---|---|---|"
for b in 128 1024; do
    steps=$((25600 / b))
    [ "$steps" -lt 15 ] && steps=15
    for r in $(seq "$RUNS"); do
        nice $E train --data "$DATA" --batch "$b" --steps "$steps" --threads 2 >"$tmp/a$r" 2>&1 || true
        ELBO_DIST_STATS=1 nice $MPIRUN -np 1 --bind-to none "$EM" train --data "$DATA" --batch "$b" --steps "$steps" --threads 2 \
            >"$tmp/b$r" 2>&1 || true
        ELBO_DIST_STATS=1 nice $MPIRUN -np 2 "$EM" train --data "$DATA" --batch "$b" --steps "$steps" --threads 1 \
            >"$tmp/c$r" 2>&1 || true
        ELBO_DIST_STATS=1 nice $MPIRUN -np 1 "$EM" train --data "$DATA" --batch "$b" --steps "$steps" --threads 1 \
            >"$tmp/d$r" 2>&1 || true
    done
    for cfg in "a:elbo, 1 x 2 threads (one-GEMM step)" "b:elbo-mpi, 1 rank x 2 threads (chunked)" \
               "c:elbo-mpi, 2 ranks x 1 thread" "d:elbo-mpi, 1 rank x 1 thread (chunked)"; do
        k=${cfg%%:*}
        name=${cfg#*:}
        sps=$(for r in $(seq "$RUNS"); do rate "$tmp/$k$r"; done | median)
        ms=$(for r in $(seq "$RUNS"); do sed -n 's/.*steps, \([0-9.]*\) ms\/step,.*/\1/p' "$tmp/$k$r"; done | median)
        ex=$(for r in $(seq "$RUNS"); do sed -n 's/.*exchange \([0-9.]*\) ms\/step exposed.*/\1/p' "$tmp/$k$r"; done | median)
        wt=$(for r in $(seq "$RUNS"); do sed -n 's/.*slowest rank \([0-9.]*\),.*/\1/p' "$tmp/$k$r"; done | median)
        tr=$(for r in $(seq "$RUNS"); do sed -n 's/.*gradients \([0-9.]*\)).*/\1/p' "$tmp/$k$r"; done | median)
        if [ "$k" = a ]; then
            echo "| $b | $name | $sps | - | - |"
        else
            echo "| $b | $name | $sps | $ms | $ex ($wt + $tr) |"
        fi
    done
done
echo
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
