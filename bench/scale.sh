#!/usr/bin/env bash
# Benchmark: a definition of 10,000 references to one image under distinct tags
# (issue 18's scale case). A local docker-registry holds demo/web:1.0 (pushed by the
# demo's seeder) and 10,000 more tags of it, written straight into its storage. The
# floor is curl asking for every tag's manifest, 16 at a time over kept-alive
# connections; then `pkgr create --no-cache` of the definition, under /usr/bin/time.
#
# docker-registry spends most of each tag lookup's CPU on Go's garbage collector, so
# the registry alone sets the time. The benchmark runs against the registry as it
# ships (GOGC unset) and with GOGC=1000, a collector setting an operator may give a
# registry under load; REGISTRY_GOGC="default 1000" is the default list. Prints the
# median wall time of RUNS runs and the peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5558
references=${REFERENCES:-10000}
RUNS=${RUNS:-3}
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin pkgr --example seed
pkgr=$target/release/pkgr
work=$(mktemp -d)

# tag_all DIR: writes tags t1..tN of demo/web, each naming web:1.0's manifest, into
# the registry's storage under DIR, as the filesystem driver lays tags out.
tag_all() {
  local repo=$1/data/docker/registry/v2/repositories/demo/web/_manifests/tags
  local digest
  digest=$(cat "$repo/1.0/current/link")
  local i
  for i in $(seq "$references"); do
    mkdir -p "$repo/t$i/current" "$repo/t$i/index/sha256/${digest#sha256:}"
    printf '%s' "$digest" >"$repo/t$i/current/link"
    printf '%s' "$digest" >"$repo/t$i/index/sha256/${digest#sha256:}/link"
  done
}

mkdir -p "$work/def"
{
  printf 'kind: PkgrPackage\nmetadata:\n  name: scale\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n'
  for i in $(seq "$references"); do printf '      - %s/demo/web:t%s\n' "$addr" "$i"; done
} >"$work/def/pkgr.yaml"
for i in $(seq "$references"); do
  printf 'url = "http://%s/v2/demo/web/manifests/t%s"\noutput = "/dev/null"\n' "$addr" "$i"
done >"$work/urls.curl"
accept='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'
accept="$accept, application/vnd.docker.distribution.manifest.list.v2+json"
accept="$accept, application/vnd.docker.distribution.manifest.v2+json"

# timed NAME CMD...: runs CMD under /usr/bin/time, appending "wall rss" to
# $work/times/NAME.
mkdir -p "$work/times"
timed() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    exit 1
  }
  cat "$work/time" >>"$work/times/$name"
}
median_of() { sort -n "$work/times/$1" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }'; }
rss_of() { sort -n -k2 "$work/times/$1" | tail -1 | awk '{ print int($2 / 1024) }'; }

settings=${REGISTRY_GOGC:-default 1000}
for gogc in $settings; do
  dir=$(mktemp -d)
  if [ "$gogc" = default ]; then
    start_registry "$addr" "$dir"
  else
    GOGC=$gogc start_registry "$addr" "$dir"
  fi
  echo "seeding (not timed, GOGC $gogc)..." >&2
  "$target/release/examples/seed" "$addr" >/dev/null
  tag_all "$dir"
  for round in $(seq "$RUNS"); do
    echo "round $round of $RUNS (GOGC $gogc)..." >&2
    timed "floor-$gogc" curl --parallel --parallel-max 16 --silent --show-error --fail \
      --noproxy '*' -H "Accept: $accept" --config "$work/urls.curl"
    rm -rf "$work/out"
    timed "pkgr-$gogc" "$pkgr" create "$work/def" -o "$work/out" --no-cache --no-progress
  done
  kill "$registry_pid"
  wait "$registry_pid" 2>/dev/null || true
done

echo
echo "$references references to one image under distinct tags; $(nproc) cores;" \
  "median of $RUNS runs"
printf '%-44s %10s %12s\n' "run" "wall" "peak RSS"
for gogc in $settings; do
  printf '%-44s %8.2f s %8s MiB\n' "curl, 16 at a time (floor), GOGC $gogc" \
    "$(median_of "floor-$gogc")" "$(rss_of "floor-$gogc")"
  printf '%-44s %8.2f s %8s MiB\n' "pkgr create --no-cache, GOGC $gogc" \
    "$(median_of "pkgr-$gogc")" "$(rss_of "pkgr-$gogc")"
done
