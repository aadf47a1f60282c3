#!/usr/bin/env bash
# Benchmark: `pkgr publish` and `pkgr pull` of the ~1 GiB benchmark package (bench_corpus,
# served by a local docker-registry, packaged once, not timed), against what they are
# measured by (issue 21):
# - publish against `pkgr push` of the same package, each into an empty registry (a
#   fresh one per run); target publish / push <= 1.1;
# - pull against its floor: every layer of the published artifact fetched with curl,
#   as many at a time as pull's --concurrency default, into files; target
#   pull / floor <= 1.1.
# Rounds are interleaved (push, publish, floor, pull); prints the median wall time and
# peak RSS of RUNS rounds and the two ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5581
target_addr=127.0.0.1:5582
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin pkgr --example bench_corpus
pkgr=$target/release/pkgr
work=$(mktemp -d)
start_registry "$addr" "$work"
echo "seeding the corpus and making the package (not timed)..." >&2
"$target"/release/examples/bench_corpus "$addr" 2>/dev/null
mkdir -p "$work/def"
{
  printf 'kind: PkgrPackage\nmetadata:\n  name: bench\n  version: "1.0"\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n'
  for i in 0 1 2 3 4 5; do printf '      - %s/bench/img%s:1\n' "$addr" "$i"; done
} >"$work/def/pkgr.yaml"
"$pkgr" create "$work/def" -o "$work/pkg" --no-cache --no-progress >/dev/null 2>&1
package=$(ls "$work"/pkg/*.tar.zst)

RUNS=${RUNS:-3}
mkdir -p "$work/times"
target_pid=""
rounds=0
# A fresh, empty target registry.
fresh_target() {
  if [ -n "$target_pid" ]; then
    kill "$target_pid"
    wait "$target_pid" 2>/dev/null || true
    rm -rf "$work/target$rounds"
  fi
  rounds=$((rounds + 1))
  mkdir -p "$work/target$rounds"
  start_registry "$target_addr" "$work/target$rounds"
  target_pid=$registry_pid
}

# timed NAME CMD...: CMD once under /usr/bin/time, "wall rss" appended to times/NAME.
timed() {
  local name=$1
  shift
  sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    exit 1
  }
  cat "$work/time" >>"$work/times/$name"
}
median_of() { sort -n "$work/times/$1" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }'; }
rss_of() { sort -n -k2 "$work/times/$1" | tail -1 | awk '{ print int($2 / 1024) }'; }

# The floor of a pull: every layer of the artifact's manifest, $concurrency at a time,
# each into a file of its own.
fetch_floor() {
  local out=$1
  mkdir -p "$out"
  # Descriptors only: the annotations name the package file's own sha256 too.
  grep -o '"digest":"sha256:[0-9a-f]\{64\}"' "$work/manifest.json" | cut -d'"' -f4 | sort -u |
    xargs -P "$concurrency" -I{} curl -sSf -o "$out/{}" "http://$target_addr/v2/bench/package/blobs/{}"
}
export -f fetch_floor
export work target_addr

concurrency=$(sed -n 's/.*--concurrency.*\[default: \([0-9]*\)\].*/\1/p' <<<"$("$pkgr" pull --help)")
export concurrency
for _ in $(seq "$RUNS"); do
  fresh_target
  timed "push" "$pkgr" push "$package" "$target_addr" --no-progress
  fresh_target
  timed "publish" "$pkgr" publish "$package" "oci://$target_addr/bench/package" --no-progress --json
  tag=$(sed -n 's/.*"address": "oci:[^"]*:\([^":]*\)".*/\1/p' "$work/stdout")
  address=oci://$target_addr/bench/package:$tag
  curl -sSf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$target_addr/v2/bench/package/manifests/$tag" >"$work/manifest.json" || {
    echo "error: no manifest under tag '$tag'; publish said:" >&2
    cat "$work/stdout" "$work/stderr" >&2
    exit 1
  }
  rm -rf "$work/floor" "$work/pulled"
  timed "floor" bash -euo pipefail -c "fetch_floor '$work/floor'"
  rm -rf "$work/floor"
  timed "pull" "$pkgr" pull "$address" -o "$work/pulled" --no-progress
  cmp "$package" "$work/pulled/$(basename "$package")"
  rm -rf "$work/pulled"
done

echo
echo "package: $(($(stat -c %s "$package") / 1048576)) MiB, $(grep -c '"digest"' "$work/manifest.json") descriptors in the artifact; $(nproc) cores; median of $RUNS interleaved rounds"
echo "machine load: $(cut -d' ' -f1-3 /proc/loadavg); pkgr $(git describe --always --dirty 2>/dev/null || echo '(no git)')"
printf '%-40s %10s %12s\n' "run" "wall" "peak RSS"
for name in push publish floor pull; do
  case $name in
    push) label="pkgr push (empty registry)" ;;
    publish) label="pkgr publish (empty registry)" ;;
    floor) label="curl GET -P $concurrency (pull floor)" ;;
    pull) label="pkgr pull (byte-identical, checked)" ;;
  esac
  printf '%-40s %8.2f s %8s MiB\n' "$label" "$(median_of "$name")" "$(rss_of "$name")"
done
awk -v pub="$(median_of publish)" -v push="$(median_of push)" \
  -v pull="$(median_of pull)" -v floor="$(median_of floor)" 'BEGIN {
  printf "\npublish / push: %.2fx (issue 21: <= 1.1x)\n", pub / push
  printf "pull / floor:   %.2fx (issue 21: <= 1.1x)\n", pull / floor
}'
