#!/usr/bin/env bash
# Benchmark: a 1 GiB image (SIZE_MIB) that exists only in a throwaway Docker daemon,
# packaged by `pkgr create --no-cache` under a registry name nothing serves, against
# the floor of `docker save -o FILE` of the same image, in RUNS interleaved rounds
# (default 3). The save streams through pkgr, so its peak RSS must not grow with the
# image: the script fails if it passes 150 MiB. Writes bench/results/daemon.json.
# DAEMON_LAYERS=gzip times `--daemon-layers gzip` instead of the layers as saved.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init daemon

size_mib=${SIZE_MIB:-1024}
budget_mib=150

# shellcheck source=scripts/dockerd.sh
. scripts/dockerd.sh
build_release
# Not under $work: the EXIT trap removes $work before it stops the daemon, whose
# data root stays busy until then.
start_dockerd "$(mktemp -d "${BENCH_TMP:-/tmp}/pkgr-bench-dockerd.XXXXXX")"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tag=127.0.0.1:$port/bench/daemon:1

echo "building and loading a $size_mib MiB image into the throwaway daemon (not timed)..." >&2
python3 scripts/daemon_image.py "$tag" "$work/image.tar" "$size_mib"
docker load -i "$work/image.tar" >&2
rm -f "$work/image.tar"
write_definition "$work/def" bench-daemon "$tag"

run=$work/run
case_save() {
  mkdir -p "$run"
  timed save docker save -o "$run/image.tar" "$tag"
  rm -rf "$run"
}
case_pkgr() {
  timed pkgr "$pkgr" create "$work/def" --output "$run/out" --no-cache --no-progress \
    ${DAEMON_LAYERS:+--daemon-layers "$DAEMON_LAYERS"}
  rm -rf "$run"
}
rounds case_save case_pkgr

record "$size_mib MiB image only in the Docker daemon" "pkgr create --no-cache" pkgr save "docker save -o FILE"
rss_mib=$(sort -n -k2 "$work/times/pkgr" | tail -1 | awk '{ print int($2 / 1024) }')
note "daemon: $size_mib MiB in $(((size_mib + 255) / 256 + 1)) layers, dockerd $(docker version --format '{{.Server.Version}}') (vfs); peak RSS $rss_mib MiB (budget $budget_mib MiB)"
finish
if [ "$rss_mib" -gt "$budget_mib" ]; then
  echo "over budget: peak RSS $rss_mib MiB > $budget_mib MiB" >&2
  exit 1
fi
