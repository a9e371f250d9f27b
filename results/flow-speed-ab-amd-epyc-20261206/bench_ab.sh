#!/bin/sh
# alternating runs of main's bench binary (ref) and the branch's (new): wall and process-CPU ms per step
N=${1:-6}; out=${2:-/tmp/fp/abbench_cpu.txt}; : > $out
for i in $(seq 1 $N); do
  for v in ref new; do
    nice /tmp/fp/elbo_bench_$v --benchmark_filter='train/flow/b:(64|128)/t:[12]/' --benchmark_min_time=2 2>&1 |
      grep -E "^train/flow/b:[0-9]+/t:[0-9]/process_time" | awk -v v=$v -v i=$i '{print v, i, $1, $2, $4}' >> $out
  done
done
