#!/usr/bin/env bash
# Benchmark: what writing a package as Zarf's split parts costs over writing one file.
# `pkgr create` of the ~1 GiB corpus (bench_corpus, served by a local docker-registry)
# with and without --max-package-size (SIZE, default 200MiB: five parts and part000),
# both with --no-cache (the whole build) and from a warm cache (where writing the
# package is most of the work, so the split's share shows most), in RUNS interleaved
# rounds (default 3). The whole-file run is each split run's floor; the target is at
# most 1.05. The median CPU time (user + sys) is in the JSON too: it is steadier than
# the wall time on a busy machine. Writes bench/results/split.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init split

addr=127.0.0.1:5571
SIZE=${SIZE:-200MiB}
build_release
seed_corpus "$addr"
write_definition "$work/def" bench "${corpus_images[@]}"
"$pkgr" create "$work/def" -o "$work/warm-out" --cache "$work/warm" --no-progress >/dev/null 2>&1
rm -rf "$work/warm-out"

# The output is a handful of large files, so removing it right away costs the next
# run nothing.
out=$work/out
case_whole() {
  timed whole "$pkgr" create "$work/def" -o "$out" --no-cache --no-progress
  rm -rf "$out"
}
case_split() {
  timed split "$pkgr" create "$work/def" -o "$out" --no-cache --no-progress --max-package-size "$SIZE"
  parts=$(find "$out" -name '*.part*' | wc -l)
  rm -rf "$out"
}
case_whole_warm() {
  timed whole-warm "$pkgr" create "$work/def" -o "$out" --cache "$work/warm" --no-progress
  rm -rf "$out"
}
case_split_warm() {
  timed split-warm "$pkgr" create "$work/def" -o "$out" --cache "$work/warm" --no-progress \
    --max-package-size "$SIZE"
  rm -rf "$out"
}
rounds case_whole case_split case_whole_warm case_split_warm

record "split create --no-cache, 1 GiB" "pkgr create --max-package-size $SIZE" split whole "the same create, one file"
record "split create, warm cache, 1 GiB" "pkgr create --max-package-size $SIZE" split-warm whole-warm "the same create, one file"
note "split: $((parts - 1)) parts of at most $SIZE and part000; target: split/whole at most 1.05"
finish
