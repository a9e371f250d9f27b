#!/bin/sh
# cmp the checkpoint after 30 steps (seed 3) of the worktree's binary against main's for 1, 2, 3 threads
cd /tmp/fp && rc=0
for t in 1 2 3; do
  [ -f ref$t.st ] || nice /tmp/elbo-flow-ref train --model flow --steps 30 --seed 3 --threads $t --save ref$t.st >/dev/null 2>&1
  nice /work/wt/flowperf/build/elbo train --model flow --steps 30 --seed 3 --threads $t --save new$t.st >/dev/null 2>&1
  if cmp -s ref$t.st new$t.st; then echo "t=$t identical"; else echo "t=$t DIFFERENT"; rc=1; fi
done
exit $rc
