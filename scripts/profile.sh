#!/bin/sh
# Profiles training steps with perf: `make profile` (PROFILE_ARGS: elbo train options; PROFILE_OUT: directory
# for perf.data and the full reports; RESULTS_DIR: where the shareable files go).
#
# Uses the hardware cycle counter when this machine exposes it (`perf stat -e cycles` probe), else the
# cpu-clock software event (VMs); frame-pointer call graphs (the build keeps -fno-omit-frame-pointer).
# Writes into PROFILE_OUT: perf.data, top.txt (self time per symbol) and callgraph.txt (inclusive time with
# callers); into RESULTS_DIR: profile-<cpu>-<yyyymmdd>.txt (the top of `perf report --stdio`: the 40 hottest
# symbols) and profile-<cpu>-<yyyymmdd>.folded (folded stacks, perf's own stackcollapse script: one line
# "frame;frame;...;leaf count" per distinct stack, the input of flamegraph.pl, speedscope or inferno).
# Prints the top symbols.
set -eu
out=${PROFILE_OUT:-build/profile}
results=${RESULTS_DIR:-results}
args=${PROFILE_ARGS:-"--epochs 1 --steps 400"}
mkdir -p "$out" "$results"
if perf stat -e cycles true 2>&1 | grep -q "not supported"; then event=cpu-clock; else event=cycles; fi

# The CPU as elbo_bench names its results: the brand string from `elbo info`, as a lowercase slug.
cpu=$(build/elbo info | sed -n 's/^cpu: *//p' | sed 's/ ([^()]*)$//; s/ @ .*//; s/([RrTtMm]*)//g')
slug=$(printf '%s' "$cpu" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-*//; s/-*$//')
base="$results/profile-${slug:-unknown-cpu}-$(date +%Y%m%d)"

echo "profile: perf record -e $event -F 999 --call-graph fp -- build/elbo train $args"
# shellcheck disable=SC2086
perf record -q -e "$event" -F 999 --call-graph fp -o "$out/perf.data" -- build/elbo train $args --json >/dev/null
perf report -i "$out/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null \
    | grep -v '^$' > "$out/top.txt"
perf report -i "$out/perf.data" --children --sort symbol -g caller,0.5,callee --stdio 2>/dev/null \
    > "$out/callgraph.txt"

# Shareable copies: the report's header and its 40 hottest symbols; the folded stacks. Written to a temporary
# file and renamed, so a failed run leaves no half-written result.
{
    echo "# elbo train $args; perf record -e $event -F 999 --call-graph fp; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    grep '^#' "$out/top.txt" | grep -v -e '^# *$' -e 'Tip:' -e 'To display'
    grep -E '^ +[0-9]' "$out/top.txt" | head -40
} > "$base.txt.tmp"
perf script report stackcollapse -i "$out/perf.data" 2>/dev/null > "$base.folded.tmp"
if [ ! -s "$base.folded.tmp" ]; then
    rm -f "$base.txt.tmp" "$base.folded.tmp"
    echo "profile: perf script report stackcollapse wrote nothing for $out/perf.data" >&2
    exit 2
fi
mv "$base.txt.tmp" "$base.txt"
mv "$base.folded.tmp" "$base.folded"

echo "profile: $out/perf.data, $out/top.txt (self time per symbol), $out/callgraph.txt (inclusive, with callers)"
echo "profile: $base.txt (top symbols), $base.folded (folded stacks for a flame graph)"
grep -E '^ +[0-9]' "$out/top.txt" | head -20
