#!/usr/bin/env bash
# A/B: the pkgr of git revision REV against this checkout's, round by round, the two
# sides' order swapped every round (A B, B A, ...) so that neither always runs first
# and the machine's drift lands on both alike, on the ~1 GiB corpus of
# `bench/create.sh`: `create --no-cache`, `create` from a warm cache (one cache both
# sides share, filled before the first round) and `push` into an empty registry.
# Prints every run and each side's median. Usage: bench/ab.sh REV [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."

rev=${1:?usage: bench/ab.sh REV [ROUNDS]}
rounds=${2:-3}
target=${CARGO_TARGET_DIR:-target}

addr=127.0.0.1:5561
# shellcheck source=scripts/registry.sh
. scripts/registry.sh
work=$(mktemp -d)
registry_cleanup="git worktree remove --force '$work/old-src' 2>/dev/null || true; rm -rf '$work';"
# shellcheck disable=SC2064
trap "$registry_cleanup" EXIT

echo "building $rev and this checkout (not timed)..." >&2
git worktree add --quiet --detach "$work/old-src" "$rev"
# One target directory for both: the dependencies are built once.
shared_target=$(realpath "$target")
(cd "$work/old-src" && CARGO_TARGET_DIR="$shared_target" cargo build --release --quiet --bin pkgr)
cp "$target/release/pkgr" "$work/pkgr-old"
cargo build --release --quiet --bin pkgr --example bench_corpus
cp "$target/release/pkgr" "$work/pkgr-new"

mkdir -p "$work/source"
start_registry "$addr" "$work/source"
"$target"/release/examples/bench_corpus "$addr" >/dev/null
mkdir -p "$work/def"
{
  printf 'kind: PkgrPackage\nmetadata:\n  name: bench\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n'
  for i in 0 1 2 3 4 5; do printf '      - %s/bench/img%s:1\n' "$addr" "$i"; done
} >"$work/def/pkgr.yaml"
"$work/pkgr-new" create "$work/def" -o "$work/pkg" --cache "$work/cache" --no-progress >/dev/null 2>&1
package=$(ls "$work"/pkg/*.tar.zst)

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
port=5562
# Not a pipeline: each target registry must be started by this shell, so that its
# cleanup joins the EXIT trap (in a pipeline's subshell it was lost, and the
# registries outlived the run).
for round in $(seq "$rounds"); do
  sides="old new"
  if [ $((round % 2)) -eq 0 ]; then sides="new old"; fi
  for side in $sides; do
    out=$(mktemp -d "$work/out.XXXX")
    echo "create $side $(seconds "$work/pkgr-$side" create "$work/def" -o "$out" --no-cache --no-progress)" | tee -a "$work/runs"
    rm -rf "$out"
    out=$(mktemp -d "$work/out.XXXX")
    echo "warm $side $(seconds "$work/pkgr-$side" create "$work/def" -o "$out" --cache "$work/cache" --no-progress)" | tee -a "$work/runs"
    rm -rf "$out"
    port=$((port + 1))
    start_registry "127.0.0.1:$port" "$(mktemp -d "$work/target.XXXX")"
    echo "push $side $(seconds "$work/pkgr-$side" push "$package" "127.0.0.1:$port" --no-progress)" | tee -a "$work/runs"
  done
done
for case in create warm push; do
  for side in old new; do
    median=$(awk -v c="$case" -v s="$side" '$1 == c && $2 == s { print $3 }' "$work/runs" |
      sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    echo "median $case $side ${median}s"
  done
done
