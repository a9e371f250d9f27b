#!/bin/sh
# make test-mpi: build/elbo-mpi under mpirun on this machine (oversubscribed).
#  - determinism: VAE checkpoints after 8 steps byte-identical for P = 1, 2, 3 (and 4 unless TEST_MPI_QUICK=1) ranks,
#    1 and 2 threads per rank (batch 120: 5 chunks of 24 rows, so 3 ranks own 1, 2, 2 and their pieces do not
#    align with the tree; the 5th step a partial batch of one chunk, leaving ranks without rows); the
#    classifier for P = 1 and 3; the diffusion model (EMA included) for P = 1, 2 x 2 threads, 3; --resume across rank counts (3 steps on 2 ranks, then 5 more on 3) gives the same
#    bytes as one run;
#  - the flow for P = 1, 2 x 2 threads, 3, --resume 2 -> 3 ranks, and with SGD on 2 ranks against one process;
#  - the GAN (two phases, spectral norm) for P = 1, 2 x 2 threads, 3, --d-steps 2, --resume 2 -> 3 ranks, and on
#    2 ranks with SGD against one process (within 1e-5 of each tensor's scale);
#  - refusals, one line each: more ranks than chunks, more ranks x threads than cores or more threads than a rank's
#    binding without --oversubscribe;
#  - placement: `info --topology` prints every rank's allowed cpus and threads;
#  - faults end the whole job with one line, never a hang: a bad --data on rank 1 (exit 2), divergence (exit 3),
#    SIGTERM to rank 1 alone (exit 143, rank 0's checkpoint written; resuming it reaches the uninterrupted run's
#    bytes); SIGKILL to rank 1 ends the job through mpirun with the last --save-every checkpoint intact.
# MPIRUN overrides the launcher (Open MPI's, as root, by default).
set -eu
cd "$(dirname "$0")/.."
E=${ELBO_MPI:-build/elbo-mpi}
MPIRUN=${MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; fails=$((fails + 1)); }
# run P ARGS...: elbo-mpi train on P ranks (status in $rc, stdout and stderr in $dir/out, $dir/err)
run() {
    p=$1
    shift
    rc=0
    timeout 300 $MPIRUN -np "$p" "$E" train --oversubscribe "$@" >"$dir/out" 2>"$dir/err" || rc=$?
}
# one_line WHAT WANT_STATUS PATTERN: the run ended with that status and exactly one elbo line matching PATTERN
one_line() {
    n=$(grep -c '^elbo' "$dir/err" || true)
    if [ "$rc" = "$2" ] && [ "$n" = 1 ] && grep -q "$3" "$dir/err"; then
        pass "$1: exit $rc, one line: $(grep '^elbo' "$dir/err")"
    else
        fail "$1: exit $rc (want $2), $n elbo lines (want 1 matching '$3'):"
        sed 's/^/        /' "$dir/err"
    fi
}
same() {
    if cmp -s "$2" "$3"; then pass "$1"; else fail "$1: $2 and $3 differ"; fi
}
# close_to WHAT A B PREFIX BOUND: every tensor of checkpoint A whose name starts with PREFIX is within BOUND of its
# scale of B's (one process's: the same mathematics, another summation order)
close_to() {
    if why=$(/usr/bin/python3 scripts/checkpoint_close.py "$2" "$3" "$4" "$5"); then pass "$1 = one process's ($why)";
    else fail "$1 differs from one process's: $why"; fi
}
# ranks_bitwise WHAT ARGS...: 6 steps of `train ARGS` on 1 rank, on 2 ranks x 2 threads and on 3 ranks, and 3 steps on
# 2 ranks then --resume to 6 on 3 ranks, all byte-identical ($dir/WHAT-1x1.safetensors is the 1-rank checkpoint)
ranks_bitwise() {
    what=$1
    shift
    for pt in 1x1 2x2 3x1; do
        run "${pt%x*}" "$@" --steps 6 --threads "${pt#*x}" --save "$dir/$what-$pt.safetensors"
        [ "$rc" = 0 ] || fail "$what on ${pt%x*} ranks x ${pt#*x} threads: exit $rc"
    done
    same "$what, 2 ranks x 2 threads = 1 rank" "$dir/$what-1x1.safetensors" "$dir/$what-2x2.safetensors"
    same "$what, 3 ranks = 1 rank" "$dir/$what-1x1.safetensors" "$dir/$what-3x1.safetensors"
    run 2 "$@" --steps 3 --threads 1 --save "$dir/$what-resumed.safetensors"
    run 3 --data synthetic:500 --steps 6 --threads 1 --resume "$dir/$what-resumed.safetensors" \
        --save "$dir/$what-resumed.safetensors"
    same "$what, 3 steps on 2 ranks then --resume to 6 on 3 ranks = 6 steps on 1 rank" "$dir/$what-1x1.safetensors" \
        "$dir/$what-resumed.safetensors"
}
# sgd_as_one_process WHAT LR ARGS...: 6 SGD steps of `train ARGS` on 2 ranks land within 1e-5 of each tensor's scale
# of one process's (SGD carries the summation order's rounding differences linearly)
sgd_as_one_process() {
    what=$1 lr=$2
    shift 2
    run 2 "$@" --steps 6 --threads 1 --optimizer sgd --lr "$lr" --save "$dir/$what-sgd.safetensors"
    "${ELBO:-build/elbo}" train "$@" --steps 6 --threads 1 --optimizer sgd --lr "$lr" \
        --save "$dir/$what-sgd-one.safetensors" >"$dir/out" 2>"$dir/err" || fail "$what in one process: $(cat "$dir/err")"
    close_to "$what on 2 ranks (SGD)" "$dir/$what-sgd.safetensors" "$dir/$what-sgd-one.safetensors" "" 1e-5
}

VAE="--data synthetic:500 --batch 120 --epochs 2"
ranks="1 2 3 4"
[ "${TEST_MPI_QUICK:-0}" = 1 ] && ranks="1 2 3"
echo "test-mpi: determinism"
for p in $ranks; do
    for t in 1 2; do
        run "$p" $VAE --steps 8 --threads "$t" --save "$dir/vae-$p-$t.safetensors"
        [ "$rc" = 0 ] || { fail "VAE on $p ranks x $t threads: exit $rc"; cat "$dir/err"; continue; }
        [ "$p$t" = 11 ] || same "VAE, $p ranks x $t threads = 1 rank x 1 thread" "$dir/vae-1-1.safetensors" \
            "$dir/vae-$p-$t.safetensors"
    done
done
rc=0
ELBO_DIST_NO_BUCKETS=1 timeout 300 $MPIRUN -np 3 -x ELBO_DIST_NO_BUCKETS "$E" train --oversubscribe $VAE --steps 8 \
    --threads 1 --save "$dir/vae-nobuckets.safetensors" >"$dir/out" 2>"$dir/err" || rc=$?
same "VAE, 3 ranks, one exchange after all layers (ELBO_DIST_NO_BUCKETS=1) = 1 rank" "$dir/vae-1-1.safetensors" \
    "$dir/vae-nobuckets.safetensors"
for p in 1 3; do
    run "$p" --model classifier --data synthetic:500 --batch 120 --steps 6 --threads 1 --save "$dir/clf-$p.safetensors"
    [ "$rc" = 0 ] || fail "classifier on $p ranks: exit $rc"
done
same "classifier, 3 ranks = 1 rank" "$dir/clf-1.safetensors" "$dir/clf-3.safetensors"
# the diffusion model: a batch-mean loss (each rank divides by the step's rows), noise per batch row, the moving
# average of the weights updated after every block on every rank (its ema.* tensors in the checkpoint)
DIFF="--model diffusion --data synthetic:500 --batch 120 --hidden 64 --seed 2"
ranks_bitwise diffusion $DIFF
# the moving average really moves on the ranks: against the one-process build's (whose gradient sums differ in
# rounding only) each ema.* tensor is within 1e-4 of its scale; skipped moving averages leave it at the
# initialization, 1e-2 away after 6 steps
"${ELBO:-build/elbo}" train $DIFF --steps 6 --threads 1 --save "$dir/diff-single.safetensors" >"$dir/out" 2>"$dir/err" ||
    fail "diffusion in one process: $(cat "$dir/err")"
close_to "diffusion on ranks: the moving average" "$dir/diffusion-1x1.safetensors" "$dir/diff-single.safetensors" \
    ema. 1e-4
# the GAN: two optimizer phases per step, D over the fake and the real rows of each chunk, spectral norm (u and v
# iterated on every rank, the path through sigma summed per chunk); 6 steps reach the last partial batch (20 rows:
# one chunk, ranks without rows still iterate u and v)
GAN="--model gan --data synthetic:500 --batch 120 --hidden 64,96 --d-hidden 80,40 --seed 2"
ranks_bitwise GAN $GAN
for p in 1 3; do
    run "$p" $GAN --steps 6 --d-steps 2 --threads 1 --save "$dir/gan-d2-$p.safetensors"
    [ "$rc" = 0 ] || fail "GAN --d-steps 2 on $p ranks: exit $rc"
done
same "GAN --d-steps 2, 3 ranks = 1 rank" "$dir/gan-d2-1.safetensors" "$dir/gan-d2-3.safetensors"
# the same mathematics as one process (measured 4e-7 of scale; a chunk's real rows left out of D's gradient, or the
# path through sigma summed over one block, are 1e-2 away)
sgd_as_one_process GAN 0.05 $GAN
# the flow: a batch-mean loss over the step's rows, dequantization noise per batch row; SGD on 2 ranks against one
# process within 1e-5 of each tensor's scale (measured 1.7e-7; noise drawn per rank row is 1.7e-3 away, each rank's
# mean over its own rows 0.96)
FLOW="--model flow --data synthetic:500 --batch 120 --hidden 64,64 --couplings 4 --seed 2"
ranks_bitwise flow $FLOW
sgd_as_one_process flow 1e-4 $FLOW
run 2 $VAE --steps 3 --threads 1 --save "$dir/resumed.safetensors"
run 3 --data synthetic:500 --epochs 2 --steps 8 --threads 1 --resume "$dir/resumed.safetensors" \
    --save "$dir/resumed.safetensors"
same "VAE, 3 steps on 2 ranks then --resume to 8 on 3 ranks = 8 steps on 1 rank" "$dir/vae-1-1.safetensors" \
    "$dir/resumed.safetensors"

echo "test-mpi: refusals"
run 6 $VAE --steps 2 --threads 1
one_line "6 ranks, batch 120 (5 chunks)" 2 "6 ranks but --batch 120 has only 5 chunks"
cores=$(nproc)
rc=0
timeout 300 $MPIRUN -np "$((cores + 1))" "$E" train $VAE --steps 2 --threads 1 >"$dir/out" 2>"$dir/err" || rc=$?
one_line "$((cores + 1)) ranks x 1 thread on $cores cores, no --oversubscribe" 2 "pass --oversubscribe"
rc=0
timeout 300 $MPIRUN -np 1 --bind-to core "$E" train $VAE --steps 2 --threads 2 >"$dir/out" 2>"$dir/err" || rc=$?
one_line "1 rank bound to 1 core, --threads 2, no --oversubscribe" 2 "is bound to 1 CPU"
echo "test-mpi: placement"
rc=0
timeout 300 $MPIRUN -np 2 "$E" info --topology >"$dir/out" 2>"$dir/err" || rc=$?
if [ "$rc" = 0 ] && grep -q "== rank 1 of 2 ==" "$dir/out" && [ "$(grep -c '^allowed cpus' "$dir/out")" = 2 ]; then
    pass "info --topology on 2 ranks: $(grep '^allowed cpus' "$dir/out" | tr -s ' ' | tr '\n' ';')"
else
    fail "info --topology on 2 ranks: exit $rc, no section per rank"
    sed 's/^/        /' "$dir/out" "$dir/err"
fi

echo "test-mpi: faults"
rc=0
timeout 120 $MPIRUN -np 3 sh -c 'd=synthetic:500; [ "${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}" = 1 ] && d=/nonexistent;
    exec "$0" train --oversubscribe --data "$d" --batch 96 --steps 4 --threads 1' "$E" >"$dir/out" 2>"$dir/err" || rc=$?
one_line "bad --data on rank 1 of 3" 2 "/nonexistent"
run 3 $VAE --steps 8 --threads 1 --lr 1e5
one_line "divergence on 3 ranks" 3 "NaN"
rm -f "$dir"/pid.*
rc=0
(st=0; timeout 300 $MPIRUN -np 3 sh -c 'echo $$ > "$1/pid.${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}";
    exec "$0" train --oversubscribe --data synthetic:2000 --batch 96 --epochs 100 --threads 1 --save "$1/sig.safetensors"' \
    "$E" "$dir" >"$dir/out" 2>"$dir/err" || st=$?; echo "$st" >"$dir/rc") &
job=$!
sleep 3
while [ ! -s "$dir/pid.1" ]; do sleep 1; done
sleep 2
kill -TERM "$(cat "$dir/pid.1")"
wait "$job" || true
rc=$(cat "$dir/rc")
one_line "SIGTERM to rank 1 of 3" 143 "stopped by SIGTERM after step"
step=$(sed -n 's/.*after step \([0-9]*\).*/\1/p' "$dir/err")
if [ -n "$step" ]; then
    total=$((step + 3))
    run 2 --data synthetic:2000 --epochs 100 --steps "$total" --threads 1 --resume "$dir/sig.safetensors" \
        --save "$dir/sig.safetensors"
    run 1 --data synthetic:2000 --batch 96 --epochs 100 --steps "$total" --threads 1 --save "$dir/straight.safetensors"
    same "the SIGTERM checkpoint (step $step) resumed on 2 ranks to step $total = $total steps on 1 rank" \
        "$dir/straight.safetensors" "$dir/sig.safetensors"
fi
rm -f "$dir"/pid.* "$dir/kill.safetensors"
(st=0; timeout 300 $MPIRUN -np 3 sh -c 'echo $$ > "$1/pid.${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}";
    exec "$0" train --oversubscribe --data synthetic:2000 --batch 96 --epochs 100 --threads 1 --save-every 5 \
    --save "$1/kill.safetensors"' "$E" "$dir" >"$dir/out" 2>"$dir/err" || st=$?; echo "$st" >"$dir/rc") &
job=$!
while [ ! -s "$dir/kill.safetensors" ] || [ ! -s "$dir/pid.1" ]; do sleep 1; done
sleep 1
kill -KILL "$(cat "$dir/pid.1")"
wait "$job" || true
rc=$(cat "$dir/rc")
if [ "$rc" != 0 ] && "$E" info --load "$dir/kill.safetensors" >"$dir/out" 2>&1; then
    pass "SIGKILL to rank 1 of 3: mpirun ended the job (exit $rc), the last checkpoint loads: $(grep '^training' "$dir/out")"
else
    fail "SIGKILL to rank 1 of 3: exit $rc, or the checkpoint does not load"
    sed 's/^/        /' "$dir/out"
fi

if [ "$fails" = 0 ]; then
    echo "test-mpi: all passed"
else
    echo "test-mpi: $fails failed"
    exit 1
fi
