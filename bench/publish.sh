#!/usr/bin/env bash
# Benchmark (issue 21): `pkgr publish` and `pkgr pull` of the ~1 GiB corpus's package
# (bench/create.sh's six images, packaged once, not timed), in RUNS interleaved rounds
# (default 3):
#
# - publish against `pkgr push` of the same package, each into an empty registry (a
#   fresh one per run); target publish / push <= 1.1x;
# - pull of the package published once (not timed) into its own registry, against its
#   floor: one curl fetching every layer of the artifact into files, as many at a time
#   as pull's --concurrency, over kept-alive connections; target pull / floor <= 1.1x.
#   A second floor adds `tar | zstd -T0 -3` of those files: the compression that a pull
#   which rebuilds the package's bytes cannot skip. Every pulled file is compared with
#   the published one (cmp).
#
# Writes bench/results/publish.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init publish

addr=127.0.0.1:5581
target_addr=127.0.0.1:5582
published_addr=127.0.0.1:5583
build_release
seed_corpus "$addr"
package_corpus
echo "publishing it once (not timed)..." >&2
mkdir -p "$work/published"
start_registry "$published_addr" "$work/published"
"$pkgr" publish "$package" "oci://$published_addr/bench/package:1" --no-progress -q >/dev/null
curl -sSf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$published_addr/v2/bench/package/manifests/1" >"$work/manifest.json"
# Descriptors only: the annotations name the package file's own sha256 too.
grep -o '"digest":"sha256:[0-9a-f]\{64\}"' "$work/manifest.json" | cut -d'"' -f4 | sort -u |
  sed "s|^|http://$published_addr/v2/bench/package/blobs/|" >"$work/urls"
curl_config "$work/urls" "$work/urls.curl"
pull_concurrency=$(default_concurrency pull)
[ -n "$pull_concurrency" ] || { echo "error: no --concurrency default in pkgr pull --help" >&2; exit 1; }

# fetch_only CONFIG PARALLEL DIR: every URL of CONFIG into DIR/files.
fetch_only() {
  mkdir -p "$3/files"
  curl --parallel --parallel-max "$2" --silent --show-error --fail --noproxy '*' \
    --output-dir "$3/files" --config "$1"
}
export -f fetch_only


run=$work/run
case_push() {
  fresh_target "$target_addr"
  timed push "$pkgr" push "$package" "$target_addr" --no-progress
}
case_publish() {
  fresh_target "$target_addr"
  timed publish "$pkgr" publish "$package" "oci://$target_addr/bench/package" --no-progress
}
case_floor() {
  timed floor bash -euo pipefail -c 'fetch_only "$@"' _ "$work/urls.curl" "$pull_concurrency" "$run"
  rm -rf "$run"
}
case_floor_pack() {
  timed floor-pack bash -euo pipefail -c 'fetch_then_pack "$@"' _ "$work/urls.curl" "$pull_concurrency" "$run"
  rm -rf "$run"
}
case_pull() {
  timed pull "$pkgr" pull "oci://$published_addr/bench/package:1" -o "$run" --no-progress
  cmp "$package" "$run/$(basename "$package")"
  rm -rf "$run"
}
rounds case_push case_publish case_floor case_floor_pack case_pull

record "publish into an empty registry, 1 GiB" "pkgr publish" publish push "pkgr push of the same package"
record "pull of the published package, 1 GiB" "pkgr pull" pull floor \
  "curl --parallel of every layer into files"
record "pull, against fetching and packing" "pkgr pull" pull floor-pack \
  "the same curl, then tar | zstd -T0 -3 of the files"
note "every pulled file was byte-identical to the published one (cmp)"
note "$(awk -v pub="$(median_of publish)" -v push="$(median_of push)" \
  -v pull="$(median_of pull)" -v floor="$(median_of floor)" 'BEGIN {
  printf "check: publish / push %.2fx (target <= 1.1x): %s; ", pub / push, pub <= 1.1 * push ? "met" : "NOT met"
  printf "pull / floor %.2fx (target <= 1.1x): %s", pull / floor, pull <= 1.1 * floor ? "met" : "NOT met"
}')"
finish
