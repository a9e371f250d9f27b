#!/bin/sh
# Runs cmocka test binaries (optionally under a runner such as "timeout 900 qemu-aarch64"), names each suite
# that failed and why, then prints one summary line "tests: N passed, N failed, N skipped" (kept last: CI
# greps it) and exits non-zero if any suite failed.
#
# A suite fails when its process exits non-zero (a failed test, a crash, a sanitizer report printed after the
# PASSED lines, a timeout of the runner), when cmocka's "Running N test(s)" and "N test(s) run" differ or one
# is missing (a group setup that failed, a suite that stopped midway or never started), or when its passed,
# failed and skipped counts do not add up to the tests run. "N failed" counts failed tests, plus one for each
# failed suite in which no single test failed, so it is never 0 when a suite failed.
#
# TEST_JOBS=N runs up to N suites at once (default 1); each suite's output is printed whole, in the order given, as
# soon as it and the suites before it have finished.
runner="$1"; shift
jobs=${TEST_JOBS:-1}
CMOCKA_MESSAGE_OUTPUT=STDOUT; export CMOCKA_MESSAGE_OUTPUT # the standard text format parsed below
passed=0; failed=0; skipped=0; report=""
tmp=$(mktemp -d) || exit 1
pool=""
trap '[ -n "$pool" ] && kill "$pool" 2>/dev/null; rm -rf "$tmp"' EXIT

# The number in the last line of $tmp/out matching the sed pattern $1 (its \1), or empty.
count() { sed -n "s/$1/\\1/p" "$tmp/out" | tail -n 1; }

# Suite i runs into $tmp/i.out; $tmp/i.status (the exit status of the test process itself, through the runner)
# appears when it has finished.
i=0
for t in "$@"; do i=$((i + 1)); printf '%s %s\n' "$i" "$t"; done > "$tmp/list"
RUNNER="$runner" DIR="$tmp" xargs -P "$jobs" -L 1 sh -c \
    '$RUNNER "$2" > "$DIR/$1.out" 2>&1; echo $? > "$DIR/$1.st"; mv "$DIR/$1.st" "$DIR/$1.status"' sh < "$tmp/list" &
pool=$!

i=0
for t in "$@"; do
    i=$((i + 1))
    name=$(basename "$t")
    while [ ! -f "$tmp/$i.status" ]; do sleep 0.2; done
    cat "$tmp/$i.out"
    mv "$tmp/$i.out" "$tmp/out"
    status=$(cat "$tmp/$i.status")
    n_start=$(count '^\[==========\] Running \([0-9]*\) test(s)\.$')
    n_run=$(count '^\[==========\] \([0-9]*\) test(s) run\.$')
    p=$(count '^\[  PASSED  \] \([0-9]*\) test(s)\.$'); p=${p:-0}
    f=$(count '^\[  FAILED  \] \([0-9]*\) test(s), listed below:$'); f=${f:-0}
    s=$(count '^\[  SKIPPED \] \([0-9]*\) test(s), listed below:$'); s=${s:-0}
    why=""
    if [ "$status" -ne 0 ]; then
        if [ "$status" -gt 128 ]; then why="$why, killed by signal $((status - 128))"
        elif [ "$status" -eq 124 ] && [ "${runner#timeout }" != "$runner" ]; then why="$why, timed out"
        else why="$why, exit status $status"; fi
    fi
    grep -q 'ERROR: [A-Za-z]*Sanitizer\|runtime error:' "$tmp/out" && why="$why, sanitizer report"
    grep -q '^\[  FAILED  \] GROUP SETUP$' "$tmp/out" && why="$why, group setup failed"
    grep -q '^\[  FAILED  \] GROUP TEARDOWN$' "$tmp/out" && why="$why, group teardown failed"
    if [ -z "$n_start" ]; then why="$why, never started (no 'Running N test(s)' line)"
    elif [ -z "$n_run" ]; then
        last=$(sed -n 's/^\[ RUN      \] //p' "$tmp/out" | tail -n 1)
        why="$why, stopped${last:+ in $last} (no 'N test(s) run' line)"
    elif [ "$n_run" -ne "$n_start" ]; then why="$why, ran $n_run of $n_start test(s)"
    elif [ $((p + f + s)) -ne "$n_run" ]; then why="$why, $p passed + $f failed + $s skipped != $n_run run"
    fi
    if [ "$f" -gt 0 ]; then
        names=$(sed -n '/^\[  FAILED  \] [0-9]* test(s), listed below:$/,$ s/^\[  FAILED  \] \([^ ]*\)$/\1/p' \
                "$tmp/out" | tr '\n' ' ')
        why="$why, $f failed: ${names% }"
    fi
    passed=$((passed + p)); skipped=$((skipped + s)); failed=$((failed + f))
    if [ -n "$why" ]; then
        [ "$f" -eq 0 ] && failed=$((failed + 1))
        report="$report
tests: FAILED $name: ${why#, }"
    fi
done
wait "$pool"
[ -n "$report" ] && printf '%s\n' "${report#?}"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ -z "$report" ]
