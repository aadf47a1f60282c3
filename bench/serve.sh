#!/usr/bin/env bash
# Benchmark: `skopeo copy` of the 1 GiB corpus's six images (bench/create.sh's) out of
# `pkgr serve` of their package, against the same copies out of the docker-registry
# that holds them on its filesystem, each into an empty docker-registry (a fresh one
# for every run), one image after the other. Serve is started afresh for every run, so
# each run pays its first-request hashing; its peak RSS is taken over the runs. Prints
# the median wall times, serve's peak RSS and serve's speed against the registry's.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5591
serve_addr=127.0.0.1:5592
target_addr=127.0.0.1:5593
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin pkgr --example bench_corpus
pkgr=$target/release/pkgr
work=$(mktemp -d)
start_registry "$addr" "$work"
echo "seeding the corpus and packaging it (not timed)..." >&2
"$target"/release/examples/bench_corpus "$addr"
mkdir -p "$work/def"
{
  printf 'kind: PkgrPackage\nmetadata:\n  name: bench\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n'
  for i in 0 1 2 3 4 5; do printf '      - %s/bench/img%s:1\n' "$addr" "$i"; done
} >"$work/def/pkgr.yaml"
"$pkgr" create "$work/def" -o "$work/out" --cache "$work/cache" --no-progress >/dev/null
package=$(ls "$work"/out/*.tar.zst)

RUNS=${RUNS:-3}

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

# serve_start / serve_stop: pkgr serve under /usr/bin/time, its peak RSS appended to
# $work/serve-rss when it stops (SIGTERM to pkgr itself, so that time reports).
serve_start() {
  /usr/bin/time -f "%M" -o "$work/serve-time" "$pkgr" serve "$package" --listen "$serve_addr" -q \
    2>"$work/serve.log" &
  serve_time_pid=$!
  local host=${serve_addr%:*} port=${serve_addr##*:}
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      registry_cleanup="$registry_cleanup kill $(pgrep -P "$serve_time_pid") 2>/dev/null || true;"
      # shellcheck disable=SC2064
      trap "$registry_cleanup" EXIT
      return 0
    fi
    sleep 0.1
  done
  echo "error: pkgr serve did not start; its log:" >&2
  cat "$work/serve.log" >&2
  return 1
}
serve_stop() {
  kill "$(pgrep -P "$serve_time_pid")"
  wait "$serve_time_pid" 2>/dev/null || true
  tail -1 "$work/serve-time" >>"$work/serve-rss"
}

# measure NAME PREP DONE CMD...: PREP, CMD timed, DONE; RUNS times; the median wall.
measure() {
  local name=$1 prep=$2 done=$3
  shift 3
  : >"$work/times"
  for _ in $(seq "$RUNS"); do
    eval "$prep"
    sync
    /usr/bin/time -f "%e" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || {
      cat "$work/stderr" >&2
      exit 1
    }
    eval "$done"
    cat "$work/time" >>"$work/times"
  done
  measured_wall=$(sort -n "$work/times" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }')
  printf '%-44s %8.2f s\n' "$name" "$measured_wall"
}

corpus=$(du -sb "$work/data" 2>/dev/null | cut -f1) || corpus=0
echo
echo "corpus: 6 images, $((corpus / 1048576)) MiB in the registry; package $(($(stat -c %s "$package") / 1048576)) MiB;" \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); median of $RUNS runs; $(skopeo --version)"
: >"$work/serve-rss"
measure "skopeo copy x6 out of docker-registry" fresh_target : bash -euo pipefail -c "copy_all $addr"
registry_wall=$measured_wall
measure "skopeo copy x6 out of pkgr serve" "fresh_target; serve_start" serve_stop \
  bash -euo pipefail -c "copy_all $serve_addr"
serve_wall=$measured_wall
rss=$(sort -n "$work/serve-rss" | tail -1)
printf 'pkgr serve peak RSS: %s MiB (issue 21: <= 100 MB)\n' "$((rss / 1024))"
awk -v r="$registry_wall" -v s="$serve_wall" \
  'BEGIN { printf "docker-registry / pkgr serve: %.2fx (issue 21: >= 1.0x)\n", r / s }'
