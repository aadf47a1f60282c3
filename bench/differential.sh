#!/usr/bin/env bash
# Benchmark: the size of a differential package. The corpus of bench/create.sh (six
# images of ~150 MiB sharing a 100 MiB base layer) is packaged as last month's package;
# then every image is pushed again as :2 with its top layer (40 MiB of data) changed,
# and this month is packaged in full and with --differential against last month. Zarf's
# image-level differential carries every image whose reference changed whole: here
# every image, which is what the full package holds. Prints the three sizes and the
# ratios; no timing.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5563
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin pkgr --example bench_corpus
pkgr=$target/release/pkgr
work=$(mktemp -d)
start_registry "$addr" "$work"
echo "seeding last month's and this month's corpus (not measured)..." >&2
"$target"/release/examples/bench_corpus "$addr"
"$target"/release/examples/bench_corpus "$addr" --next-month

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
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
base_bytes=$(size "$base")
full_bytes=$(size "$full")
diff_bytes=$(size "$diff")
# Zarf's figure: every image whose reference changed, whole. All six changed tags, so
# that is every blob of this month: the full package.
zarf_bytes=$full_bytes

echo
echo "corpus: 6 images, each with its 40 MiB top layer changed; $(nproc) cores; pkgr $(git describe --always --dirty 2>/dev/null || echo '(no git)')"
printf '%-48s %12s\n' "package" "size"
printf '%-48s %12s\n' "last month (the base)" "$(mib "$base_bytes")"
printf '%-48s %12s\n' "this month, full" "$(mib "$full_bytes")"
printf '%-48s %12s\n' "this month, Zarf-style image-level differential" "$(mib "$zarf_bytes")"
printf '%-48s %12s\n' "this month, pkgr --differential" "$(mib "$diff_bytes")"
awk -v d="$diff_bytes" -v f="$full_bytes" -v z="$zarf_bytes" \
  'BEGIN { printf "pkgr differential / full: %.1f%%; Zarf-style / full: %.1f%%\n", 100 * d / f, 100 * z / f }'
