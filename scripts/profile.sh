#!/bin/sh
# Profiles training steps with perf: `make profile` (PROFILE_ARGS: elbo train options; PROFILE_OUT: directory).
#
# Uses the hardware cycle counter when this machine exposes it (`perf stat -e cycles` probe), else the
# cpu-clock software event (VMs); frame-pointer call graphs (the build keeps -fno-omit-frame-pointer).
# Writes perf.data and a text report (top symbols, self time; then the call graph of the step) into
# PROFILE_OUT, and prints the top of the report.
set -eu
out=${PROFILE_OUT:-build/profile}
args=${PROFILE_ARGS:-"--epochs 1 --steps 400"}
mkdir -p "$out"
if perf stat -e cycles true 2>&1 | grep -q "not supported"; then event=cpu-clock; else event=cycles; fi
echo "profile: perf record -e $event -F 999 --call-graph fp -- build/elbo train $args"
# shellcheck disable=SC2086
perf record -q -e "$event" -F 999 --call-graph fp -o "$out/perf.data" -- build/elbo train $args --json >/dev/null
perf report -i "$out/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null \
    | grep -v '^$' > "$out/top.txt"
perf report -i "$out/perf.data" --children --sort symbol -g caller,0.5,callee --stdio 2>/dev/null \
    > "$out/callgraph.txt"
echo "profile: $out/perf.data, $out/top.txt (self time per symbol), $out/callgraph.txt (inclusive, with callers)"
grep -E '^ +[0-9]' "$out/top.txt" | head -20
