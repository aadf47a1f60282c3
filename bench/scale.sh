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
# registry under load; REGISTRY_GOGC="default 1000" is the default list. RUNS
# interleaved rounds (default 3); writes bench/results/scale.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init scale

addr=127.0.0.1:5558
references=${REFERENCES:-10000}
build_release

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

refs=()
for i in $(seq "$references"); do refs+=("$addr/demo/web:t$i"); done
write_definition "$work/def" scale "${refs[@]}"
# The floor's bodies go to /dev/null: it is the registry's answers alone.
for i in $(seq "$references"); do
  printf 'url = "http://%s/v2/demo/web/manifests/t%s"\noutput = "/dev/null"\n' "$addr" "$i"
done >"$work/urls.curl"

settings=${REGISTRY_GOGC:-default 1000}
for gogc in $settings; do
  dir=$work/registry-$gogc
  mkdir -p "$dir"
  if [ "$gogc" = default ]; then
    start_registry "$addr" "$dir"
  else
    GOGC=$gogc start_registry "$addr" "$dir"
  fi
  echo "seeding (not timed, GOGC $gogc)..." >&2
  "$target/release/examples/seed" "$addr" >/dev/null
  tag_all "$dir"
  eval "case_floor_$gogc() { timed floor-$gogc curl --parallel --parallel-max 16 --silent --show-error --fail --noproxy '*' -H \"Accept: \$manifest_accept\" --config \"\$work/urls.curl\"; }"
  eval "case_pkgr_$gogc() { timed pkgr-$gogc \"\$pkgr\" create \"\$work/def\" -o \"\$work/out\" --no-cache --no-progress; rm -rf \"\$work/out\"; }"
  rounds "case_floor_$gogc" "case_pkgr_$gogc"
  kill "$registry_pid"
  wait "$registry_pid" 2>/dev/null || true
done

for gogc in $settings; do
  record "$references references to one image, registry GOGC $gogc" "pkgr create --no-cache" \
    "pkgr-$gogc" "floor-$gogc" "curl -P 16 of every tag's manifest"
done
finish
