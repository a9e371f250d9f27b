#!/bin/sh
# ab_prefix.sh PREFIX LIB OUT [KEEP...]: OUT = every object of the static library LIB linked into one, whose only
# global symbols are the GEMM entry points bench/ab/gemm_ab.c calls, renamed PREFIX_<name>, and the KEEP symbols
# as they are; every other symbol of the library becomes local, so two builds of it link side by side.
set -eu
prefix=$1 lib=$2 out=$3
shift 3
entry="elbo_kernels_select elbo_gemm_workspace_init elbo_gemm elbo_packed_b_alloc elbo_pack_b elbo_gemm_packed
       elbo_gemm_bf16_workspace_init elbo_gemm_bf16 elbo_packed_b_bf16_alloc elbo_pack_b_bf16 elbo_gemm_bf16_packed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ld -r --whole-archive "$lib" -o "$tmp/all.o"
rename="" keep=""
for s in $entry; do
    rename="$rename --redefine-sym $s=${prefix}_$s"
    keep="$keep -G ${prefix}_$s"
done
for s in "$@"; do
    keep="$keep -G $s"
done
# shellcheck disable=SC2086 # the flag lists are split on purpose
objcopy $rename "$tmp/all.o" "$tmp/renamed.o"
# shellcheck disable=SC2086
objcopy $keep "$tmp/renamed.o" "$out.part"
mv "$out.part" "$out"
