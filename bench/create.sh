#!/usr/bin/env bash
# Benchmark of record for the ~1 GiB corpus (six images of ~150 MiB sharing a 100 MiB
# base layer, served by a local docker-registry), each case against its floor measured
# in the same run, RUNS interleaved rounds (default 3):
#
# - `pkgr create`, cold cache, against curl fetching every manifest and blob into
#   files (one process, as many at a time as pkgr's --concurrency, kept-alive
#   connections) then `tar | zstd -T0 -3` of them; the peer is a `skopeo copy` loop
#   into one OCI layout then `tar | zstd -T0 -3`.
# - `pkgr create --no-cache`, against the same floor.
# - `pkgr create`, warm cache, against `tar | zstd -T0 -3` of that cache.
# - `pkgr inspect` of the package, head only and --verify (warm: just written).
# - `pkgr push` into an empty registry and again into the same one, against curl
#   uploads of every blob (bench/push.sh), and a `skopeo copy` loop.
#
# Writes bench/results/create.json and prints it as a table.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init create

addr=127.0.0.1:5556
build_release
seed_corpus "$addr"
write_definition "$work/def" bench "${corpus_images[@]}"

# The floor's requests: each manifest by tag and each blob it names, once.
for image in "${corpus_images[@]}"; do
  repo=${image#*/}
  repo=${repo%:*}
  echo "http://$addr/v2/$repo/manifests/${image##*:}"
  curl -sSf -H "Accept: $manifest_accept" "http://$addr/v2/$repo/manifests/${image##*:}" |
    grep -o 'sha256:[0-9a-f]\{64\}' | sed "s|^|http://$addr/v2/$repo/blobs/|"
done | awk '{ split($0, p, "/blobs/"); if (!(p[2] in seen)) print; if (p[2] != "") seen[p[2]] = 1 }' \
  >"$work/urls"
curl_config "$work/urls" "$work/urls.curl"
create_concurrency=$(default_concurrency create)
[ -n "$create_concurrency" ] || { echo "error: no --concurrency default in pkgr create --help" >&2; exit 1; }

skopeo_then_zstd() {
  local dir=$1 i
  mkdir -p "$dir/layout"
  for i in 0 1 2 3 4 5; do
    skopeo copy --quiet --src-tls-verify=false "docker://$addr/bench/img$i:1" "oci:$dir/layout:img$i"
  done
  tar -C "$dir" -cf - layout | zstd -q -T0 -3 -o "$dir/package.tar.zst"
}
export -f skopeo_then_zstd
export addr

# The warm cache and the package that inspect and push read: made once, not timed.
echo "building the warm cache and the package (not timed)..." >&2
"$pkgr" create "$work/def" -o "$work/pkg" --cache "$work/warm" --no-progress >/dev/null 2>&1
package=$(ls "$work"/pkg/*.tar.zst)

# Every case writes into $work/run, removed right after: a handful of large files,
# so removing them costs the next run nothing, and the disk holds one run at a time.
run=$work/run
case_floor_cold() {
  timed floor-cold bash -euo pipefail -c 'fetch_then_pack "$@"' _ "$work/urls.curl" "$create_concurrency" "$run"
  rm -rf "$run"
}
case_cold() {
  timed cold "$pkgr" create "$work/def" -o "$run/out" --cache "$run/cache" --no-progress
  rm -rf "$run"
}
case_nocache() {
  timed nocache "$pkgr" create "$work/def" -o "$run/out" --no-cache --no-progress
  rm -rf "$run"
}
case_skopeo() {
  timed skopeo bash -euo pipefail -c 'skopeo_then_zstd "$@"' _ "$run"
  rm -rf "$run"
}
case_floor_warm() {
  mkdir -p "$run"
  timed floor-warm bash -euo pipefail -c 'pack "$@"' _ "$work/warm" "$run/package.tar.zst"
  rm -rf "$run"
}
case_warm() {
  timed warm "$pkgr" create "$work/def" -o "$run/out" --cache "$work/warm" --no-progress
  rm -rf "$run"
}
case_inspect() {
  timed inspect "$pkgr" inspect "$package"
  timed verify "$pkgr" inspect --verify "$package"
}

# shellcheck source=bench/push.sh
. bench/push.sh
prepare_push

rounds case_floor_cold case_cold case_skopeo case_nocache case_floor_warm case_warm \
  case_inspect case_floor_push case_push case_skopeo_push

floor_cold="curl -P $create_concurrency into files, then tar | zstd -T0 -3"
record "create, cold cache, 1 GiB of 6 images" "pkgr create" cold floor-cold "$floor_cold"
record "create, cold cache, 1 GiB of 6 images" "skopeo copy loop + tar | zstd" skopeo floor-cold "$floor_cold"
record "create --no-cache, 1 GiB of 6 images" "pkgr create --no-cache" nocache floor-cold "$floor_cold"
record "create, warm cache, 1 GiB of 6 images" "pkgr create" warm floor-warm "tar | zstd -T0 -3 of the cache"
record "inspect, head only, 1 GiB" "pkgr inspect" inspect
record "inspect --verify, 1 GiB, warm" "pkgr inspect --verify" verify
record_push
measure_push_disk
note "package: $(($(stat -c %s "$package") / 1048576)) MiB; corpus: $(($(du -sb "$work/registry/data" | cut -f1) / 1048576)) MiB in the registry, $(wc -l <"$work/urls") requests; $(skopeo --version)"
finish
