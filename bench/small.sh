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

RUNS=${RUNS:-5}

# The runs go round by round (each case once per round) so that the machine's drift
# lands on every case alike, and each run writes into directories of its own that
# are removed only after the last round: on ext4, creating files soon after deleting
# many costs several times more system time (the inode allocator steps over recently
# deleted inodes), which deleting the previous run's cache just before would add to
# every run but the first. "tmpfs" puts the cache and the output in /dev/shm, which
# shows pkgr's per-request cost without the filesystem's.
disk=$work/runs
shm=$(mktemp -d /dev/shm/pkgr-bench.XXXXXX)
registry_cleanup="$registry_cleanup rm -rf '$shm';"
# shellcheck disable=SC2064
trap "$registry_cleanup" EXIT
mkdir -p "$disk/warm" "$work/times"
"$pkgr" create "$work/def" -o "$disk/warm/out" --cache "$disk/warm/cache" --no-progress >/dev/null 2>&1

# case NAME CMD...: runs CMD once under /usr/bin/time, appending "wall rss" to
# $work/times/NAME; {run} in CMD becomes a fresh directory.
case_run() {
  local name=$1 base=$disk run
  shift
  case "$name" in *tmpfs*) base=$shm ;; esac
  run=$(mktemp -d "$base/run.XXXXXX")
  local args=("${@//\{run\}/$run}")
  # Earlier runs' writeback would otherwise land in this one.
  sync
  /usr/bin/time -f "%e %M" -o "$work/time" "${args[@]}" >/dev/null 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    exit 1
  }
  cat "$work/time" >>"$work/times/$name"
}
median_of() { sort -n "$work/times/$1" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }'; }
rss_of() { sort -n -k2 "$work/times/$1" | tail -1 | awk '{ print int($2 / 1024) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cases=(floor cold warm nocache cold-tmpfs)
declare -A label=(
  [floor]="curl --parallel-max 8 (floor)"
  [cold]="pkgr create (cold cache)"
  [warm]="pkgr create (warm cache)"
  [nocache]="pkgr create --no-cache"
  [cold-tmpfs]="pkgr create (cold cache, tmpfs)"
)
for round in $(seq "$RUNS"); do
  echo "round $round of $RUNS..." >&2
  case_run floor bash -c curl_floor
  case_run cold "$pkgr" create "$work/def" -o "{run}/out" --cache "{run}/cache" --no-progress
  case_run warm "$pkgr" create "$work/def" -o "{run}/out" --cache "$disk/warm/cache" --no-progress
  case_run nocache "$pkgr" create "$work/def" -o "{run}/out" --no-cache --no-progress
  case_run cold-tmpfs "$pkgr" create "$work/def" -o "{run}/out" --cache "{run}/cache" --no-progress
done

corpus=$(du -sb "$work/data" | cut -f1)
echo
echo "corpus: 300 images, $(wc -l <"$work/urls") requests, $((corpus / 1024)) KiB in the registry;" \
  "$(nproc) cores; median of $RUNS interleaved runs"
printf '%-34s %10s %12s\n' "run" "wall" "peak RSS"
for name in "${cases[@]}"; do
  printf '%-34s %8.2f s %8s MiB\n' "${label[$name]}" "$(median_of "$name")" "$(rss_of "$name")"
done
floor=$(median_of floor)
printf '\npkgr/curl: cold cache %s×, --no-cache %s×, cold cache on tmpfs %s×\n' \
  "$(ratio "$(median_of cold)" "$floor")" "$(ratio "$(median_of nocache)" "$floor")" \
  "$(ratio "$(median_of cold-tmpfs)" "$floor")"
