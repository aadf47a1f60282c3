#!/usr/bin/env bash
# Benchmark: what writing a package as Zarf's split parts costs over writing one file.
# `pkgr create` of the ~1 GiB corpus (bench_corpus, served by a local docker-registry)
# with and without --max-package-size (200MiB: six parts), both with --no-cache (the
# whole build) and from a warm cache (where writing the package is most of the work,
# so the split's share shows most). Prints the median wall time and CPU time of RUNS
# interleaved rounds, the peak RSS, and split/whole for each pair; the target is at
# most 1.05.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5571
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin pkgr --example bench_corpus
pkgr=$target/release/pkgr
work=$(mktemp -d)
start_registry "$addr" "$work"
echo "seeding the corpus (not timed)..." >&2
"$target"/release/examples/bench_corpus "$addr" 2>/dev/null

mkdir -p "$work/def"
{
  printf 'kind: PkgrPackage\nmetadata:\n  name: bench\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n'
  for i in 0 1 2 3 4 5; do printf '      - %s/bench/img%s:1\n' "$addr" "$i"; done
} >"$work/def/pkgr.yaml"

RUNS=${RUNS:-5}
SIZE=${SIZE:-200MiB}
mkdir -p "$work/times" "$work/warm"
"$pkgr" create "$work/def" -o "$work/warm/out" --cache "$work/warm/cache" --no-progress >/dev/null 2>&1
rm -rf "$work/warm/out"

# case_run NAME CMD...: runs CMD once under /usr/bin/time into a fresh output
# directory ({out} in CMD), appending "wall rss user sys" to $work/times/NAME. The output is a
# handful of large files, so removing it right away costs the next run nothing.
case_run() {
  local name=$1 out=$work/out
  shift
  local args=("${@//\{out\}/$out}")
  sync
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" "${args[@]}" >"$work/stdout" 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    exit 1
  }
  cat "$work/time" >>"$work/times/$name"
  case "$name" in
    split*) parts=$(find "$out" -name '*.part*' | wc -l) ;;
  esac
  rm -rf "$out"
}
median_of() { sort -n "$work/times/$1" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }'; }
# CPU seconds (user + sys): what the split adds in work, less swayed than the wall
# time by whatever else the machine is running.
cpu_of() { awk '{ print $3 + $4 }' "$work/times/$1" | sort -n | awk '{ c[NR] = $1 } END { print c[int((NR + 1) / 2)] }'; }
rss_of() { sort -n -k2 "$work/times/$1" | tail -1 | awk '{ print int($2 / 1024) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

cases=(whole split whole-warm split-warm)
declare -A label=(
  [whole]="pkgr create --no-cache"
  [split]="... --max-package-size $SIZE"
  [whole-warm]="pkgr create (warm cache)"
  [split-warm]="... --max-package-size $SIZE"
)
for round in $(seq "$RUNS"); do
  echo "round $round of $RUNS..." >&2
  case_run whole "$pkgr" create "$work/def" -o "{out}" --no-cache --no-progress
  case_run split "$pkgr" create "$work/def" -o "{out}" --no-cache --no-progress --max-package-size "$SIZE"
  case_run whole-warm "$pkgr" create "$work/def" -o "{out}" --cache "$work/warm/cache" --no-progress
  case_run split-warm "$pkgr" create "$work/def" -o "{out}" --cache "$work/warm/cache" --no-progress \
    --max-package-size "$SIZE"
done

corpus=$(du -sb "$work/data" | cut -f1)
echo
echo "corpus: 6 images, $((corpus / 1048576)) MiB in the registry; split into $((parts - 1)) parts" \
  "of at most $SIZE and part000; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "median of $RUNS interleaved rounds"
printf '%-40s %10s %10s %12s\n' "run" "wall" "CPU" "peak RSS"
for name in "${cases[@]}"; do
  printf '%-40s %8.2f s %8.2f s %8s MiB\n' "${label[$name]}" "$(median_of "$name")" \
    "$(cpu_of "$name")" "$(rss_of "$name")"
done
echo
for name in "${cases[@]}"; do
  printf '%-12s runs: %s\n' "$name" "$(cut -d' ' -f1 "$work/times/$name" | tr '\n' ' ')"
done
printf '\nsplit/whole, wall: --no-cache %s, warm cache %s (target: at most 1.05)\n' \
  "$(ratio "$(median_of split)" "$(median_of whole)")" \
  "$(ratio "$(median_of split-warm)" "$(median_of whole-warm)")"
printf 'split/whole, CPU:  --no-cache %s, warm cache %s\n' \
  "$(ratio "$(cpu_of split)" "$(cpu_of whole)")" \
  "$(ratio "$(cpu_of split-warm)" "$(cpu_of whole-warm)")"
