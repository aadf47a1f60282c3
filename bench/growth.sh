#!/usr/bin/env bash
# Benchmark: cost as the work grows. Two single-layer images, of 0.5 GB and 2 GB of
# incompressible random bytes (SIZES_MB, in MB of 10^6 bytes), made by this script and
# pushed into a local docker-registry with curl, are each packaged by
# `pkgr create --no-cache` in RUNS interleaved rounds (default 3). Time per GB and
# peak RSS must stay flat: the check line compares the largest image's time per GB
# with the smallest's (within 15%) and every run's peak RSS with 100 MB.
# Writes bench/results/growth.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init growth

addr=127.0.0.1:5564
read -r -a sizes <<<"${SIZES_MB:-500 2000}"
build_release
mkdir -p "$work/registry"
start_registry "$addr" "$work/registry"

# write_layer MB FILE: an uncompressed layer tar of one file of MB million random
# bytes; prints its sha256 and size.
write_layer() {
  python3 - "$1" "$2" <<'PY'
import hashlib, io, os, sys, tarfile
size, path = int(sys.argv[1]) * 10**6, sys.argv[2]
sha, chunk = hashlib.sha256(), 1 << 20
class Sink:
    def __init__(self, f): self.f = f
    def write(self, b): sha.update(b); return self.f.write(b)
class Noise(io.RawIOBase):
    def __init__(self): self.left = size
    def readable(self): return True
    def readinto(self, b):
        n = min(len(b), self.left, chunk)
        b[:n] = os.urandom(n)
        self.left -= n
        return n
with open(path, "wb") as f:
    with tarfile.open(fileobj=Sink(f), mode="w|", format=tarfile.GNU_FORMAT) as t:
        info = tarfile.TarInfo("data.bin")
        info.size, info.mode, info.mtime = size, 0o644, 0
        t.addfile(info, io.BufferedReader(Noise(), chunk))
    f.flush()
    print("sha256:" + sha.hexdigest(), f.tell())
PY
}

# put_blob REPO FILE DIGEST: a monolithic upload.
put_blob() {
  local location
  location=$(curl -sSf -X POST -o /dev/null -w '%header{location}' "http://$addr/v2/$1/blobs/uploads/")
  case $location in /*) location=http://$addr$location ;; esac
  case $location in *\?*) location="$location&" ;; *) location="$location?" ;; esac
  curl -sSf -o /dev/null -T "$2" -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    "${location}digest=$3"
}

# push_image MB: growth/mbMB:1, one layer of MB random megabytes.
push_image() {
  local mb=$1 repo=growth/mb$1 digest size config_digest
  read -r digest size < <(write_layer "$mb" "$work/layer.tar")
  put_blob "$repo" "$work/layer.tar" "$digest"
  rm -f "$work/layer.tar"
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$digest" >"$work/config.json"
  config_digest=sha256:$(sha256sum "$work/config.json" | cut -d' ' -f1)
  put_blob "$repo" "$work/config.json" "$config_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$config_digest" "$(stat -c %s "$work/config.json")" "$digest" "$size" >"$work/manifest.json"
  curl -sSf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @"$work/manifest.json" "http://$addr/v2/$repo/manifests/1"
}

cases=()
for mb in "${sizes[@]}"; do
  echo "making and pushing a $mb MB single-layer image (not timed)..." >&2
  push_image "$mb"
  write_definition "$work/def$mb" "growth$mb" "$addr/growth/mb$mb:1"
  eval "case_$mb() { timed mb$mb \"\$pkgr\" create \"\$work/def$mb\" -o \"\$work/run\" --no-cache --no-progress; rm -rf \"\$work/run\"; }"
  cases+=("case_$mb")
done
rounds "${cases[@]}"

for mb in "${sizes[@]}"; do
  record "create --no-cache, one layer of $mb MB" "pkgr create --no-cache" "mb$mb"
  record_value "time per GB, one layer of $mb MB" "pkgr create --no-cache" \
    "$(awk -v s="$(median_of "mb$mb")" -v mb="$mb" 'BEGIN { printf "%.3f", s / (mb / 1000) }')" "s/GB"
done
small=${sizes[0]}
large=${sizes[${#sizes[@]}-1]}
max_rss_kib=$(cat "$work"/times/mb* | sort -n -k2 | tail -1 | awk '{ print $2 }')
note "$(awk -v a="$(median_of "mb$small")" -v b="$(median_of "mb$large")" -v sm="$small" -v lg="$large" \
  -v rss="$max_rss_kib" 'BEGIN {
    per_small = a / (sm / 1000); per_large = b / (lg / 1000); drift = per_large / per_small - 1
    rss_mb = rss * 1024 / 1e6
    printf "check: time per GB %.2f s at %s MB, %.2f s at %s MB (%+.1f%%; target within 15%%): %s; ", \
      per_small, sm, per_large, lg, 100 * drift, (drift <= 0.15 && drift >= -0.15) ? "met" : "NOT met"
    printf "peak RSS %.0f MB (target <= 100 MB): %s", rss_mb, rss_mb <= 100 ? "met" : "NOT met"
  }')"
finish
