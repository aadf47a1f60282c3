#!/usr/bin/env bash
# Benchmark: `pkgr create` cold and warm against `skopeo copy` of the same images into
# one OCI layout followed by `tar | zstd`, on a ~1 GiB corpus served by a local
# docker-registry, then `pkgr inspect` of the package with and without --verify, and
# `pkgr push` of it into an empty registry and again into the same one, against its
# floor (curl uploads of the same blobs) and its peer (a `skopeo copy` loop), and the
# disk a push uses (bench/push.sh). Prints wall time and peak RSS for each; rerun with
# `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5556
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin pkgr --example bench_corpus
work=$(mktemp -d)
start_registry "$addr" "$work"
echo "seeding the corpus (not timed)..." >&2
"$target"/release/examples/bench_corpus "$addr"

images=()
for i in 0 1 2 3 4 5; do images+=("$addr/bench/img$i:1"); done
mkdir -p "$work/def"
{
  printf 'kind: PkgrPackage\nmetadata:\n  name: bench\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n'
  for image in "${images[@]}"; do printf '      - %s\n' "$image"; done
} >"$work/def/pkgr.yaml"

RUNS=${RUNS:-3}

# measure NAME PREP CMD...: runs PREP (untimed) then CMD under /usr/bin/time, RUNS
# times; prints the median wall time and the largest peak RSS, and leaves the median in
# $measured_wall for the ratios.
measure() {
  local name=$1 prep=$2
  shift 2
  : >"$work/times"
  for _ in $(seq "$RUNS"); do
    eval "$prep"
    sync
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || {
      cat "$work/stderr" >&2
      exit 1
    }
    cat "$work/time" >>"$work/times"
  done
  local wall rss
  wall=$(sort -n "$work/times" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }')
  rss=$(sort -n -k2 "$work/times" | tail -1 | awk '{ print int($2 / 1024) }')
  printf '%-34s %8.2f s %8s MiB\n' "$name" "$wall" "$rss"
  measured_wall=$wall
}

skopeo_then_zstd() {
  mkdir -p "$work/skopeo/layout"
  for i in 0 1 2 3 4 5; do
    skopeo copy --quiet --src-tls-verify=false "docker://$addr/bench/img$i:1" "oci:$work/skopeo/layout:img$i"
  done
  tar -C "$work/skopeo" -cf - layout | zstd -q -T0 -3 -o "$work/skopeo/package.tar.zst"
}
export -f skopeo_then_zstd
export work addr

# What the figures depend on besides pkgr: the machine is shared, so the load too.
machine_facts() {
  local cpu mem fs
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  mem=$(awk '/^MemTotal/ { print int($2 / 1048576) }' /proc/meminfo)
  fs=$(df -T "$work" | awk 'NR == 2 { print $2 }')
  echo "machine: $cpu, $mem GiB RAM, $fs under $work, load $(cut -d' ' -f1-3 /proc/loadavg);" \
    "pkgr $(git describe --always --dirty 2>/dev/null || echo '(no git)'), $(skopeo --version)"
}

corpus=$(du -sb "$work/data" | cut -f1)
echo
echo "corpus: 6 images, $((corpus / 1048576)) MiB in the registry; $(nproc) cores; median of $RUNS runs"
machine_facts
printf '%-34s %10s %12s\n' "run" "wall" "peak RSS"
measure "pkgr create (cold cache)" 'rm -rf "$work/cache" "$work/out"' \
  "$target"/release/pkgr create "$work/def" -o "$work/out" --cache "$work/cache" --no-progress
measure "pkgr create (warm cache)" 'rm -rf "$work/out"' \
  "$target"/release/pkgr create "$work/def" -o "$work/out" --cache "$work/cache" --no-progress
measure "pkgr create --no-cache" 'rm -rf "$work/out"' \
  "$target"/release/pkgr create "$work/def" -o "$work/out" --no-cache --no-progress
# -e: a failed copy inside the loop must fail the run, not time a partial layout.
measure "skopeo copy loop + tar | zstd" 'rm -rf "$work/skopeo"' bash -euo pipefail -c skopeo_then_zstd
package=$(ls "$work"/out/*.tar.zst)
measure "pkgr inspect (head only)" '' "$target"/release/pkgr inspect "$package"
measure "pkgr inspect --verify" '' "$target"/release/pkgr inspect --verify "$package"
# Push into an empty registry (a fresh one for every run), then again into the same one.
target_addr=127.0.0.1:5558
target_pid=""
runs=0
fresh_target() {
  if [ -n "$target_pid" ]; then
    kill "$target_pid"
    wait "$target_pid" 2>/dev/null || true
  fi
  runs=$((runs + 1))
  mkdir -p "$work/target$runs"
  start_registry "$target_addr" "$work/target$runs"
  target_pid=$registry_pid
}
measure "pkgr push (empty registry)" fresh_target \
  "$target"/release/pkgr push "$package" "$target_addr" --no-progress
push_wall=$measured_wall
measure "pkgr push (again: all present)" '' \
  "$target"/release/pkgr push "$package" "$target_addr" --no-progress
# shellcheck source=bench/push.sh
. bench/push.sh
measure_push_peers

printf '\npackage sizes: pkgr %s MiB, skopeo+zstd %s MiB\n' \
  "$(($(stat -c %s "$package") / 1048576))" \
  "$(($(stat -c %s "$work/skopeo/package.tar.zst") / 1048576))"
print_push_ratios
measure_push_disk
