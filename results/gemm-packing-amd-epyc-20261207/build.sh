#!/bin/sh
# build.sh COMMIT NAME: builds commit COMMIT's libelbo.a in a temporary worktree and links vs_onednn and bf16_rate
# against it as bin/vs_onednn-NAME and bin/bf16_rate-NAME.
set -e
cd "$(dirname "$0")"
ROOT=$(git rev-parse --show-toplevel)
W=$(mktemp -d)
git -C "$ROOT" worktree add -q --detach "$W" "$1"
make -C "$W" -j"$(nproc)" build/libelbo.a >/dev/null
mkdir -p bin
for h in vs_onednn bf16_rate; do
    gcc -O2 -march=native -I"$W/src/kernels" -I"$W/src" -I"$ROOT/bench" $h.c "$W/build/libelbo.a" -fopenmp -lsleef -lhwloc -lz -lpng \
        -ldnnl -lm -o bin/$h-$2
done
git -C "$ROOT" worktree remove --force "$W"
