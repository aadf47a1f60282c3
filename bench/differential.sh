#!/usr/bin/env bash
# Benchmark: the size of a differential package. The corpus of bench/create.sh (six
# images of ~150 MiB sharing a 100 MiB base layer) is packaged as last month's package;
# then every image is pushed again as :2 with its top layer (40 MiB of data) changed,
# and this month is packaged in full and with --differential against last month. Zarf's
# image-level differential carries every image whose reference changed whole: here
# every image, which is what the full package holds. Prints the three sizes and the
# ratios; no timing. Writes bench/results/differential.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init differential

addr=127.0.0.1:5563
build_release
seed_corpus "$addr"
echo "seeding this month's corpus (not measured)..." >&2
"$target"/release/examples/bench_corpus "$addr" --next-month >/dev/null 2>&1

# define DIR VERSION TAG: a definition of the six images at TAG.
define() {
  mkdir -p "$1"
  {
    printf 'kind: PkgrPackage\nmetadata:\n  name: bench\n  version: "%s"\n  architecture: amd64\ncomponents:\n  - name: all\n    images:\n' "$2"
    for i in 0 1 2 3 4 5; do printf '      - %s/bench/img%s:%s\n' "$addr" "$i" "$3"; done
  } >"$1/pkgr.yaml"
}
define "$work/last" 2026.11 1
define "$work/this" 2026.12 2

create() { "$pkgr" create --no-progress --cache "$work/cache" "$@" | tail -n 1; }
base=$(create "$work/last" --output "$work/out-base")
full=$(create "$work/this" --output "$work/out-full")
diff=$(create "$work/this" --output "$work/out-diff" --differential "$base")
"$pkgr" inspect --verify "$diff" >/dev/null

size() { stat -c %s "$1"; }
base_bytes=$(size "$base")
full_bytes=$(size "$full")
diff_bytes=$(size "$diff")
# Zarf's figure: every image whose reference changed, whole. All six changed tags, so
# that is every blob of this month: the full package.
zarf_bytes=$full_bytes

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
record_value "differential package, 6 images with a new 40 MiB top layer" "last month (the base)" "$(mib "$base_bytes")" MiB
record_value "differential package, 6 images with a new 40 MiB top layer" "this month, full" "$(mib "$full_bytes")" MiB
record_value "differential package, 6 images with a new 40 MiB top layer" "Zarf-style image-level differential" "$(mib "$zarf_bytes")" MiB
record_value "differential package, 6 images with a new 40 MiB top layer" "pkgr create --differential" "$(mib "$diff_bytes")" MiB
note "$(awk -v d="$diff_bytes" -v f="$full_bytes" -v z="$zarf_bytes" \
  'BEGIN { printf "pkgr differential / full: %.1f%%; Zarf-style / full: %.1f%%", 100 * d / f, 100 * z / f }')"
finish
