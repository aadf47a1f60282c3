# Sourced by every bench/*.sh: the preamble they share and the figures of record.
#
# bench_init NAME sets up a run: the repository as the working directory, $target,
# $pkgr, a scratch $work under BENCH_TMP (default /tmp; removed on exit; registries,
# caches and packages all live there), RUNS (default 3) and the rows that
# bench/report.py turns into bench/results/NAME.json and a printed table. Then:
#
#   build_release                cargo build --release of pkgr and the corpus seeders,
#                                unless BUILD=0
#   write_definition DIR NAME REF...   a pkgr.yaml of one component holding REFs
#   seed_corpus ADDR             a registry on ADDR holding the ~1 GiB corpus
#   package_corpus               the corpus packaged once, untimed, into $package
#   rounds FN...                 RUNS rounds of the case functions FN, in turn: each
#                                round runs every case once, even rounds in reverse
#                                order, so load swings and writeback land on all alike
#   fresh_target ADDR            an empty docker-registry on ADDR, the one it started
#                                there before stopped and its storage removed
#   timed KEY CMD...             CMD once under /usr/bin/time: wall, peak RSS, CPU
#   record CASE TOOL KEY [FLOOR_KEY FLOOR_LABEL]   a row: KEY's median against FLOOR's
#   record_value CASE TOOL VALUE UNIT              a row that is a size or a count
#   note TEXT                    a line kept with the results (a check, a fact)
#   finish                       prints the table and writes the JSON
#
# The figures are "of record" only when RECORD=1 says the machine was quiet.

# shellcheck source=scripts/registry.sh
. scripts/registry.sh

bench_init() {
  bench_name=$1
  cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
  target=${CARGO_TARGET_DIR:-target}
  pkgr=$target/release/pkgr
  RUNS=${RUNS:-3}
  work=$(mktemp -d "${BENCH_TMP:-/tmp}/pkgr-bench-$bench_name.XXXXXX")
  # errexit holds in the trap too: a failed removal must not skip the stops after it.
  registry_cleanup="rm -rf '$work' || true;"
  # shellcheck disable=SC2064
  trap "$registry_cleanup" EXIT
  # Every tool's temporary files (pkgr's --no-cache staging, skopeo's) on the same
  # filesystem as the rest of the run.
  mkdir -p "$work/times" "$work/tmp"
  export TMPDIR=$work/tmp
  : >"$work/rows"
  : >"$work/notes"
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  started=$(date +%s)
  export work
}

# Every script builds the same set: with the examples' dev-dependencies the library's
# features differ from a build of the binary alone, so a narrower build in one script
# would rebuild pkgr for the next. BUILD=0 skips it: the binaries are already in
# $target/release.
build_release() {
  [ "${BUILD:-1}" = 0 ] || cargo build --release --locked --quiet --bin pkgr \
    --example bench_corpus --example bench_small_corpus --example seed
}

write_definition() {
  local dir=$1 name=$2
  shift 2
  mkdir -p "$dir"
  {
    printf 'kind: PkgrPackage\nmetadata:\n  name: %s\n  architecture: amd64\n' "$name"
    printf 'components:\n  - name: all\n    images:\n'
    printf '      - %s\n' "$@"
  } >"$dir/pkgr.yaml"
}

# The corpus of bench/create.sh, bench/split.sh and bench/ab.sh: six images of about
# 150 MiB sharing a 100 MiB base layer, 941 MiB of incompressible blobs.
corpus_images=()
seed_corpus() {
  local addr=$1 i
  mkdir -p "$work/registry"
  start_registry "$addr" "$work/registry"
  echo "seeding the corpus (not timed)..." >&2
  "$target"/release/examples/bench_corpus "$addr" >/dev/null 2>&1
  corpus_images=()
  for i in 0 1 2 3 4 5; do corpus_images+=("$addr/bench/img$i:1"); done
}

package_corpus() {
  write_definition "$work/def" bench "${corpus_images[@]}"
  echo "making the corpus's package (not timed)..." >&2
  "$pkgr" create "$work/def" -o "$work/pkg" --no-cache --no-progress >/dev/null 2>&1
  package=$(ls "$work"/pkg/*.tar.zst)
}

# The Accept header of every manifest request: a registry answers a tag GET without
# it with a schema-1 manifest or an error.
manifest_accept='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'
manifest_accept="$manifest_accept, application/vnd.docker.distribution.manifest.list.v2+json"
manifest_accept="$manifest_accept, application/vnd.docker.distribution.manifest.v2+json"
export manifest_accept

# The default of `pkgr SUBCOMMAND --concurrency`, read from its help so that a floor
# keeps up with it.
default_concurrency() {
  # One line: clap wraps a long help text, and the default may end up on the next.
  "$pkgr" "$1" -h | tr '\n' ' ' | sed -n 's/.*--concurrency[^[]*\[default: \([0-9]*\)\].*/\1/p'
}

# curl_config URLS OUT: a curl config that fetches every URL of the file URLS (one a
# line) into a file of its own, named by its line number, relative to --output-dir.
curl_config() {
  awk '{ printf "url = \"%s\"\noutput = \"f%05d\"\n", $0, NR }' "$1" >"$2"
}

# fetch_then_pack CONFIG PARALLEL DIR: the naive floor of a create. One curl process
# fetches every URL of CONFIG into DIR/files, PARALLEL at a time over kept-alive
# connections, then `tar | zstd -T0 -3` packs them into DIR/package.tar.zst.
fetch_then_pack() {
  local config=$1 parallel=$2 dir=$3
  mkdir -p "$dir/files"
  curl --parallel --parallel-max "$parallel" --silent --show-error --fail --noproxy '*' \
    -H "Accept: $manifest_accept" --output-dir "$dir/files" --config "$config"
  tar -C "$dir" -cf - files | zstd -q -T0 -3 -o "$dir/package.tar.zst"
}

# pack DIR OUT: `tar | zstd -T0 -3` of DIR into OUT, the floor of a warm create.
pack() {
  tar -C "$1" -cf - . | zstd -q -T0 -3 -o "$2"
}
export -f fetch_then_pack pack

target_pid=""
targets=0
fresh_target() {
  if [ -n "$target_pid" ]; then
    kill "$target_pid"
    wait "$target_pid" 2>/dev/null || true
    rm -rf "$work/target$targets"
  fi
  targets=$((targets + 1))
  mkdir -p "$work/target$targets"
  start_registry "$1" "$work/target$targets"
  target_pid=$registry_pid
}

rounds() {
  local round fn order
  for round in $(seq "$RUNS"); do
    echo "round $round of $RUNS..." >&2
    order=("$@")
    if [ $((round % 2)) = 0 ]; then
      order=()
      for fn in "$@"; do order=("$fn" "${order[@]}"); done
    fi
    for fn in "${order[@]}"; do "$fn"; done
  done
}

# timed KEY CMD...: appends "wall rss_kib user sys" to $work/times/KEY. Earlier runs'
# writeback would otherwise land in this one, hence the sync.
timed() {
  local key=$1
  shift
  sync
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr" || {
    echo "error: $key failed: $*" >&2
    cat "$work/stderr" >&2
    exit 1
  }
  tail -n 1 "$work/time" >>"$work/times/$key"
}

# The median wall time of KEY's rounds (the mean of the middle two for an even count,
# as bench/report.py has it).
median_of() {
  sort -n "$work/times/$1" | awk '{ w[NR] = $1 } END { m = int((NR + 1) / 2); print (NR % 2) ? w[m] : (w[m] + w[m + 1]) / 2 }'
}

record() {
  printf 'time\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" "${5:-}" >>"$work/rows"
}

record_value() {
  printf 'value\t%s\t%s\t%s\t%s\t\n' "$1" "$2" "$3" "$4" >>"$work/rows"
}

note() {
  echo "$*" >>"$work/notes"
}

finish() {
  local commit
  # The results of the scripts run before this one are not what makes a build dirty.
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- . ':(exclude)bench/results' 2>/dev/null || commit=$commit-dirty
  python3 bench/report.py record --name "$bench_name" --work "$work" --runs "$RUNS" \
    --commit "$commit" --load-before "$load_before" \
    --load-after "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --seconds "$(($(date +%s) - started))" --record "${RECORD:-0}" \
    --filesystem "$(df -T "$work" | awk 'NR == 2 { print $2 }')" \
    --out "bench/results/$bench_name.json"
}
