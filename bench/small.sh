#!/usr/bin/env bash
# Benchmark: per-request overhead. `pkgr create` of 300 small images (a config and
# three layers of a few to tens of KiB each, one layer shared by all: 1,201 requests)
# served by a local docker-registry, against the floor of the same 1,201 GETs made by
# one `curl --parallel` (as many at a time as pkgr's --concurrency, over reused
# keep-alive connections) into files, then `tar | zstd -T0 -3` of them. RUNS
# interleaved rounds (default 3); writes bench/results/small.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init small

addr=127.0.0.1:5557
build_release
mkdir -p "$work/registry"
start_registry "$addr" "$work/registry"
echo "seeding the small-images corpus (not timed)..." >&2
"$target/release/examples/bench_small_corpus" "$addr" "$work/urls" >/dev/null 2>&1

refs=()
for i in $(seq 0 299); do refs+=("$addr/small/app$i:1"); done
write_definition "$work/def" small "${refs[@]}"
curl_config "$work/urls" "$work/urls.curl"
concurrency=$(default_concurrency create)
[ -n "$concurrency" ] || { echo "error: no --concurrency default in pkgr create --help" >&2; exit 1; }

# Each run writes into directories of its own, removed only after the last round: on
# ext4, creating files soon after deleting many costs several times more system time
# (the inode allocator steps over recently deleted inodes), which deleting the previous
# run's 1,201 files just before would add to every run but the first. "tmpfs" puts the
# cache and the output in /dev/shm, which shows pkgr's per-request cost without the
# filesystem's.
disk=$work/runs
shm=$(mktemp -d /dev/shm/pkgr-bench.XXXXXX)
registry_cleanup="$registry_cleanup rm -rf '$shm';"
# shellcheck disable=SC2064
trap "$registry_cleanup" EXIT
mkdir -p "$disk"
"$pkgr" create "$work/def" -o "$disk/warm-out" --cache "$disk/warm" --no-progress >/dev/null 2>&1

fresh() { mktemp -d "${1:-$disk}/run.XXXXXX"; }
case_floor() {
  timed floor bash -euo pipefail -c 'fetch_then_pack "$@"' _ "$work/urls.curl" "$concurrency" "$(fresh)"
}
case_cold() {
  local run
  run=$(fresh)
  timed cold "$pkgr" create "$work/def" -o "$run/out" --cache "$run/cache" --no-progress
}
case_warm() {
  timed warm "$pkgr" create "$work/def" -o "$(fresh)/out" --cache "$disk/warm" --no-progress
}
case_nocache() {
  timed nocache "$pkgr" create "$work/def" -o "$(fresh)/out" --no-cache --no-progress
}
case_cold_tmpfs() {
  local run
  run=$(fresh "$shm")
  timed cold-tmpfs "$pkgr" create "$work/def" -o "$run/out" --cache "$run/cache" --no-progress
}
rounds case_floor case_cold case_warm case_nocache case_cold_tmpfs

floor="curl -P $concurrency with reuse into files, then tar | zstd -T0 -3"
title="300 small images, 3 layers each"
record "$title, cold cache" "pkgr create" cold floor "$floor"
record "$title, --no-cache" "pkgr create --no-cache" nocache floor "$floor"
record "$title, cold cache on tmpfs" "pkgr create" cold-tmpfs floor "$floor"
record "$title, warm cache" "pkgr create" warm
note "small: $(wc -l <"$work/urls") requests, $(($(du -sb "$work/registry/data" | cut -f1) / 1024)) KiB in the registry"
finish
