#!/bin/sh
# make test-arm64, its command-line part: the arm64 `elbo` under qemu-aarch64 trains every model kind with
# --precision bf16 on the NEON BF16 kernels (-cpu max has FEAT_BF16):
#  - the checkpoint records bf16 and is byte-identical for 1 and 2 threads (the VAE, the GAN, the flow, the diffusion
#    model);
#  - it is a bf16 run: it differs from the same run in fp32;
#  - it trains the same model as the x86 build's bf16 emulation (ELBO_ISA=scalar, bit for bit the x86 instruction):
#    after 6 Adam steps every tensor within 1e-3 of its scale of the x86 checkpoint's (measured: 1.2e-4 the VAE,
#    4.1e-5 the flow, at most 1e-5 the others; a run in fp32 lands 0.015-0.33 away, since BFDOT rounds its dot products differently
#    from VDPBF16PS the two are not bitwise equal). Not for the diffusion model: Adam's normalized steps turn its
#    near-zero input-layer gradients into whole steps either way (fp32 lands as far as bf16 does);
#  - a CPU without FEAT_BF16 (-cpu cortex-a72) is refused in one line, exit 2, nothing written.
# ELBO_ARM64 (build-aarch64/elbo) and ELBO (build/elbo) name the binaries; QEMU the emulator.
set -eu
cd "$(dirname "$0")/.."
A=${ELBO_ARM64:-build-aarch64/elbo}
X=${ELBO:-build/elbo}
QEMU=${QEMU:-qemu-aarch64}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; fails=$((fails + 1)); }
# arm CPU NAME ARGS...: the arm64 elbo trains on qemu's CPU model CPU into $dir/NAME.safetensors (status in $rc)
arm() {
    cpu=$1 name=$2
    shift 2
    rc=0
    timeout 600 $QEMU -cpu "$cpu" "$A" train "$@" --save "$dir/$name.safetensors" >"$dir/out" 2>"$dir/err" || rc=$?
    [ "$rc" = 0 ] || [ "$cpu" != max ] || fail "arm64 $name: exit $rc: $(tail -1 "$dir/err")"
}
# within WHAT A B BOUND: every tensor of checkpoint A within BOUND of its scale of B's
within() {
    if why=$(/usr/bin/python3 scripts/checkpoint_close.py "$2" "$3" "" "$4"); then pass "$1 ($why)"; else fail "$1: $why"; fi
}

echo "test-arm64: bf16 training of the command line"
for kind in "vae --hidden 64" "classifier --hidden 96,40" "gan --hidden 48 --d-hidden 80" \
    "flow --couplings 2 --hidden 64" "diffusion --hidden 64"; do
    set -- $kind
    m=$1
    run="--model $kind --data synthetic:300 --batch 64 --steps 6 --seed 3"
    arm max "$m-1" $run --precision bf16 --threads 1
    [ "$rc" = 0 ] || continue
    if "$X" info --load "$dir/$m-1.safetensors" | grep -q "^training:.*precision bf16$"; then
        pass "$m: the checkpoint records bf16"
    else
        fail "$m: the checkpoint does not record bf16: $("$X" info --load "$dir/$m-1.safetensors" | grep "^training:")"
    fi
    if [ "$m" != classifier ]; then
        arm max "$m-2" $run --precision bf16 --threads 2
        if cmp -s "$dir/$m-1.safetensors" "$dir/$m-2.safetensors"; then pass "$m: 2 threads = 1 thread";
        else fail "$m: 2 threads differ from 1 thread"; fi
    fi
    arm max "$m-fp32" $run --precision fp32 --threads 1
    if ! cmp -s "$dir/$m-1.safetensors" "$dir/$m-fp32.safetensors"; then pass "$m: bf16 differs from fp32";
    else fail "$m: the bf16 run equals the fp32 run"; fi
    if [ "$m" != diffusion ]; then
        ELBO_ISA=scalar "$X" train $run --precision bf16 --threads 1 --save "$dir/$m-x86.safetensors" >"$dir/out" \
            2>"$dir/err" || fail "$m on x86 (scalar bf16): $(tail -1 "$dir/err")"
        within "$m: arm64 NEON BF16 = x86 bf16 emulation within 1e-3" "$dir/$m-1.safetensors" \
            "$dir/$m-x86.safetensors" 1e-3
    fi
done
arm cortex-a72 refused --model vae --hidden 64 --data synthetic:300 --batch 64 --steps 2 --precision bf16
n=$(grep -c '^elbo' "$dir/err" || true)
if [ "$rc" = 2 ] && [ "$n" = 1 ] && grep -q "FEAT_BF16" "$dir/err" && [ ! -e "$dir/refused.safetensors" ]; then
    pass "no FEAT_BF16 (cortex-a72): exit 2, one line, nothing written: $(cat "$dir/err")"
else
    fail "no FEAT_BF16 (cortex-a72): exit $rc, $n lines:"
    sed 's/^/        /' "$dir/err"
fi

if [ "$fails" = 0 ]; then
    echo "test-arm64: command line passed"
else
    echo "test-arm64: command line: $fails failed"
    exit 1
fi
