#!/usr/bin/env bash
# Benchmark: per-request overhead. `pkgr create` of 300 small images (a config and
# three layers of a few to tens of KiB each, one layer shared by all: 1,201 requests)
# served by a local docker-registry, against a floor of the same 1,201 GETs made by
# one `curl --parallel --parallel-max 8` (pkgr's default --concurrency), bodies
# discarded. Prints the median wall time of RUNS runs, the peak RSS, and pkgr/curl.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5557
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin pkgr --example bench_small_corpus
pkgr=$target/release/pkgr
work=$(mktemp -d)
start_registry "$addr" "$work"
echo "seeding the small-images corpus (not timed)..." >&2
"$target/release/examples/bench_small_corpus" "$addr" "$work/urls"

mkdir -p "$work/def"
{
  printf 'kind: PkgrPackage\nmetadata:\n  name: small\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n'
  for i in $(seq 0 299); do printf '      - %s/small/app%s:1\n' "$addr" "$i"; done
} >"$work/def/pkgr.yaml"

# curl's floor: one process, at most 8 transfers at a time over reused keep-alive
# connections, as pkgr's HTTP client does. Every request carries the manifest Accept
# header (a registry answers a tag GET without it with a schema-1 or an error; blob
# GETs ignore it, and pkgr sends it on those too). Bodies go to /dev/null: the floor is
# the requests alone, with no hashing, no files and no package.
accept='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'
accept="$accept, application/vnd.docker.distribution.manifest.list.v2+json"
accept="$accept, application/vnd.docker.distribution.manifest.v2+json"
awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$work/urls" >"$work/urls.curl"
curl_floor() {
  curl --parallel --parallel-max 8 --silent --show-error --fail --noproxy '*' \
    -H "Accept: $accept" --config "$work/urls.curl"
}
export -f curl_floor
export work accept

RUNS=${RUNS:-3}

# measure NAME PREP CMD...: runs PREP (untimed) then CMD under /usr/bin/time, RUNS
# times; prints the median wall time and the largest peak RSS, and leaves the median
# in $median.
median=""
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
  local rss
  median=$(sort -n "$work/times" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }')
  rss=$(sort -n -k2 "$work/times" | tail -1 | awk '{ print int($2 / 1024) }')
  printf '%-34s %8.2f s %8s MiB\n' "$name" "$median" "$rss"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

corpus=$(du -sb "$work/data" | cut -f1)
echo
echo "corpus: 300 images, $(wc -l <"$work/urls") requests, $((corpus / 1024)) KiB in the registry;" \
  "$(nproc) cores; median of $RUNS runs"
printf '%-34s %10s %12s\n' "run" "wall" "peak RSS"
measure "curl --parallel-max 8 (floor)" '' bash -c curl_floor
floor=$median
measure "pkgr create (cold cache)" 'rm -rf "$work/cache" "$work/out"' \
  "$pkgr" create "$work/def" -o "$work/out" --cache "$work/cache" --no-progress
cold=$median
measure "pkgr create (warm cache)" 'rm -rf "$work/out"' \
  "$pkgr" create "$work/def" -o "$work/out" --cache "$work/cache" --no-progress
measure "pkgr create --no-cache" 'rm -rf "$work/out"' \
  "$pkgr" create "$work/def" -o "$work/out" --no-cache --no-progress
nocache=$median
printf '\npkgr/curl: cold cache %s×, --no-cache %s×\n' \
  "$(ratio "$cold" "$floor")" "$(ratio "$nocache" "$floor")"
