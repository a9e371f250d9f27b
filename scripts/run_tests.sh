#!/bin/sh
# Runs cmocka test binaries (optionally under a runner such as qemu), then prints one
# summary line "tests: N passed, N failed" and exits non-zero if anything failed or crashed.
runner="$1"; shift
passed=0; failed=0; skipped=0; crashed=""
for t in "$@"; do
    out=$(mktemp)
    $runner "$t" 2>&1 | tee "$out"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\.$/\1/p' "$out" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' "$out" | tail -n 1)
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s).*/\1/p' "$out" | tail -n 1)
    skipped=$((skipped + ${s:-0}))
    if ! grep -q '^\[==========\] .* test(s) run\.$' "$out"; then
        crashed="$crashed $(basename "$t")"; f=$(( ${f:-0} + 1 ))
    fi
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    rm -f "$out"
done
[ -n "$crashed" ] && echo "tests: crashed or did not finish:$crashed"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
