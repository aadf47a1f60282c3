#!/usr/bin/env bash
# Benchmark (issue 21): `skopeo copy` of the ~1 GiB corpus's six images (bench/create.sh's),
# one after the other, each into an empty docker-registry (a fresh one per run), out of
# three sources, in RUNS interleaved rounds (default 3):
#
# - the docker-registry that holds the images on its filesystem (the floor);
# - `pkgr serve` of their package, started afresh per run, so each run pays for hashing
#   every blob (in the background from the start, or on a blob's first request);
# - `pkgr serve --verify`, whose whole-package hash before it listens is not timed:
#   the cost of serving alone.
#
# Target: the copies out of `pkgr serve` take no longer than out of docker-registry
# (serve / registry <= 1.0x), with serve's peak RSS <= 100 MB. Writes
# bench/results/serve.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init serve

addr=127.0.0.1:5591
serve_addr=127.0.0.1:5592
target_addr=127.0.0.1:5593
build_release
seed_corpus "$addr"
package_corpus


# copy_all FROM: the six images from FROM into the target, one after the other.
copy_all() {
  local from=$1 i
  for i in 0 1 2 3 4 5; do
    skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false \
      "docker://$from/bench/img$i:1" "docker://$target_addr/bench/img$i:1" </dev/null
  done
}
export -f copy_all
export target_addr

# serve_start [OPTION...]: pkgr serve under /usr/bin/time, waited for until it
# answers; serve_stop: SIGTERM (serve's normal end, exit 0), its peak RSS kept.
serve_start() {
  /usr/bin/time -f "%M" -o "$work/serve-time" "$pkgr" serve "$package" \
    --listen "$serve_addr" -q "$@" 2>"$work/serve.log" &
  serve_pid=$!
  registry_cleanup="$registry_cleanup pkill -TERM -P $serve_pid 2>/dev/null || true;"
  # shellcheck disable=SC2064
  trap "$registry_cleanup" EXIT
  for _ in $(seq 600); do
    curl -fsS -o /dev/null "http://$serve_addr/v2/" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: pkgr serve did not start; its log:" >&2
  cat "$work/serve.log" >&2
  exit 1
}
serve_stop() {
  pkill -TERM -P "$serve_pid" || true
  wait "$serve_pid" || { echo "error: pkgr serve did not stop cleanly:" >&2; cat "$work/serve.log" >&2; exit 1; }
  tail -n 1 "$work/serve-time" >>"$work/serve-rss"
}
: >"$work/serve-rss"
case_registry() {
  fresh_target "$target_addr"
  timed registry bash -euo pipefail -c 'copy_all "$@"' _ "$addr"
}
case_serve() {
  fresh_target "$target_addr"
  serve_start
  timed serve bash -euo pipefail -c 'copy_all "$@"' _ "$serve_addr"
  serve_stop
}
case_serve_verified() {
  fresh_target "$target_addr"
  serve_start --verify
  timed serve-verified bash -euo pipefail -c 'copy_all "$@"' _ "$serve_addr"
  serve_stop
}
rounds case_registry case_serve case_serve_verified

floor_label="the same copies out of docker-registry"
record "skopeo copy of 6 images (940 MiB)" "out of pkgr serve" serve registry "$floor_label"
record "skopeo copy of 6 images (940 MiB)" "out of pkgr serve --verify (its hash not timed)" \
  serve-verified registry "$floor_label"
rss_kib=$(sort -n "$work/serve-rss" | tail -n 1)
record_value "pkgr serve peak RSS" "pkgr serve" "$((rss_kib / 1024))" MiB
note "$(awk -v r="$(median_of registry)" -v s="$(median_of serve)" -v rss="$rss_kib" 'BEGIN {
  rss_mb = rss * 1024 / 1e6
  printf "check: serve / docker-registry %.2fx (target <= 1.0x): %s; ", s / r, s <= r ? "met" : "NOT met"
  printf "serve peak RSS %.0f MB (target <= 100 MB): %s", rss_mb, rss_mb <= 100 ? "met" : "NOT met"
}')"
finish
