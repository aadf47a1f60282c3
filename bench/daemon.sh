#!/usr/bin/env bash
# The daemon fallback's memory: a 1 GiB image (SIZE_MIB) that exists only in a
# throwaway Docker daemon is packaged by `pkgr create --no-cache`, under a registry
# name nothing serves; GNU time reports pkgr's peak RSS. The save streams through
# pkgr (its blobs straight into the store, its layers kept as saved, or gzip-compressed
# from there with DAEMON_LAYERS=gzip), so the peak must not grow with the image: the
# budget is 150 MB. The floor is `docker save -o FILE` of the same image, timed after.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${SIZE_MIB:-1024}
budget_mib=150

# shellcheck source=scripts/dockerd.sh
. scripts/dockerd.sh
# PKGR names a binary built elsewhere (another commit, for a before/after pair).
if [ -z "${PKGR:-}" ]; then cargo build --release --quiet --bin pkgr; fi
pkgr=${PKGR:-${CARGO_TARGET_DIR:-target}/release/pkgr}

work=$(mktemp -d /tmp/pkgr-bench-daemon.XXXXXX)
start_dockerd "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tag=127.0.0.1:$port/bench/daemon:1

echo "building and loading a $size_mib MiB image into the throwaway daemon (not timed)..." >&2
python3 scripts/daemon_image.py "$tag" "$work/image.tar" "$size_mib"
docker load -i "$work/image.tar" >&2
rm -f "$work/image.tar"

mkdir -p "$work/def" "$work/out"
cat >"$work/def/pkgr.yaml" <<YAML
kind: PkgrPackage
metadata:
  name: bench-daemon
  architecture: amd64
components:
  - name: big
    images:
      - $tag
YAML

start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/rss" "$pkgr" create "$work/def" --output "$work/out" \
  --no-cache --no-progress ${DAEMON_LAYERS:+--daemon-layers "$DAEMON_LAYERS"} >"$work/stdout" 2>"$work/stderr" || {
  cat "$work/stderr" >&2
  exit 1
}
end=$(date +%s.%N)
rss_kib=$(tail -n 1 "$work/rss")
package=$(tail -n 1 "$work/stdout")
package_mib=$(( $(stat -c %s "$package") / 1048576 ))
rm -rf "$work/out"
save_start=$(date +%s.%N)
docker save -o "$work/saved.tar" "$tag"
save_end=$(date +%s.%N)
rm -f "$work/saved.tar"

printf 'image: %s MiB in %s layers, only in a throwaway dockerd %s (legacy save format)\n' \
  "$size_mib" "$(( (size_mib + 255) / 256 + 1 ))" "$(docker version --format '{{.Server.Version}}')"
printf 'machine: %s cores, load %s; pkgr %s\n' "$(nproc)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(git rev-parse --short HEAD)"
printf 'pkgr create --no-cache (layers: %s) from the daemon: %.2f s, peak RSS %d MiB (budget %d MiB)\n' \
  "${DAEMON_LAYERS:-default}" "$(awk "BEGIN { print $end - $start }")" "$((rss_kib / 1024))" "$budget_mib"
printf 'docker save -o FILE of the same image: %.2f s; ratio %.2fx\n' \
  "$(awk "BEGIN { print $save_end - $save_start }")" \
  "$(awk "BEGIN { print ($end - $start) / ($save_end - $save_start) }")"
printf 'package: %s MiB\n' "$package_mib"
if [ "$((rss_kib / 1024))" -gt "$budget_mib" ]; then
  echo "over budget" >&2
  exit 1
fi
