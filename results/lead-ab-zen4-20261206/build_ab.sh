#!/bin/sh
# Builds ab_gemm against the working tree's build/libelbo.a and the base commit's GEMM sources ($1, default HEAD).
set -e
cd "$(dirname "$0")"
ROOT=../..
BASE=${1:-HEAD}
O=/tmp/ab_old.$$
mkdir -p $O
git -C $ROOT show $BASE:src/kernels/gemm.c >$O/gemm.c
git -C $ROOT show $BASE:src/kernels/gemm_avx512.c >$O/gemm_avx512.c
REN=""
for s in elbo_gemm elbo_gemm_packed elbo_gemm_packed_cols elbo_gemm_workspace_init elbo_gemm_workspace_free \
  elbo_operand_f32 elbo_operand_u8 elbo_packed_b_floats elbo_packed_b_alloc elbo_packed_b_view elbo_packed_b_free \
  elbo_pack_b elbo_pack_b_part elbo_pack_b_region elbo_gemm_register_avx512 elbo_sleef_avx512_tanh_mismatches \
  elbo_sleef_avx512_mismatches; do REN="$REN -D$s=ab_old_$s"; done
CF="-std=c11 -O3 -g -fno-omit-frame-pointer -D_GNU_SOURCE -fopenmp -I$ROOT/src/kernels -I$ROOT/src -I$ROOT/bench"
gcc $CF $REN -mavx512f -mavx2 -mfma -c $O/gemm.c -o $O/gemm.o
gcc $CF $REN -mavx512f -mavx2 -mfma -c $O/gemm_avx512.c -o $O/gemm_avx512.o
gcc $CF -c ab_gemm.c -o $O/ab.o
gcc $CF -mavx512f -c $ROOT/bench/fma_peak_avx512.c -o $O/fma.o
gcc $O/ab.o $O/gemm.o $O/gemm_avx512.o $O/fma.o $ROOT/build/libelbo.a -ldnnl -lsleef -lhwloc -lgomp -lm -o ab_gemm
rm -rf $O
