#!/bin/sh
# ab_build_base.sh REV DIR: DIR/base.a = the library built from revision REV, in a temporary git worktree under DIR
# (removed afterwards); kept and reused while REV names the same commit (DIR/base.commit).
set -eu
rev=$1 dir=$2
commit=$(git rev-parse --verify --quiet "$rev^{commit}") || {
    echo "bench-ab: BASE: not a revision of this repository: '$rev'" >&2
    exit 2
}
mkdir -p "$dir"
if [ -f "$dir/base.a" ] && [ "$(cat "$dir/base.commit" 2>/dev/null)" = "$commit" ]; then
    echo "bench-ab: base $rev ($commit) already built"
    exit 0
fi
rm -f "$dir/base.a" "$dir/base.commit"
wt="$dir/worktree"
git worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
git worktree prune # a worktree left registered by an interrupted run
git worktree add --quiet --detach "$wt" "$commit"
trap 'git worktree remove --force "$wt"' EXIT
echo "bench-ab: building base $rev ($commit)"
make -C "$wt" -j"$(nproc)" build/libelbo.a > "$dir/base-build.log" 2>&1 || {
    echo "bench-ab: building $rev failed (log: $dir/base-build.log)" >&2
    exit 1
}
cp "$wt/build/libelbo.a" "$dir/base.a.part"
mv "$dir/base.a.part" "$dir/base.a"
echo "$commit" > "$dir/base.commit"
