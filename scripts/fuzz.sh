#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target one after another, for FUZZ_SECONDS each
# (default 1200), or FUZZ_SECONDS_<target> for one of them (for example
# FUZZ_SECONDS_package_reader=3600). FUZZ_TARGETS picks the targets. The corpora are
# seeded from testdata/: the fixture package as pkgr's writer writes it (a tar and a
# seekable .tar.zst), the hostile seekable packages of issue 18 built from it
# (examples/fuzz_seeds.rs), the daemon saves, and fuzz/seeds/. The package targets hold
# pkgr to a reference reader (`zstd -dc | tar`, see fuzz/src/lib.rs): a mismatch panics.
# An input that panics, runs over 10 s or takes over 512 MB counts as a finding;
# findings are left in fuzz/artifacts/<target>/ and make the run fail. Each target's
# figures (seconds, executions, exec/s) are printed at the end and kept in
# fuzz/runs/<target>.log. Not part of `make test`.
#
# No sanitizer: pkgr has no unsafe code, and AddressSanitizer would halve the speed
# for nothing it could find in safe Rust; the zstd C library is not instrumented
# either way.
set -euo pipefail
cd "$(dirname "$0")/.."

default_seconds="${FUZZ_SECONDS:-1200}"
targets="${FUZZ_TARGETS:-package_reader seekable split daemon_save challenge link definition manifest}"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "error: cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

corpus=fuzz/corpus
for target in package_reader seekable split daemon_save challenge link definition manifest; do
    mkdir -p "$corpus/$target"
done
echo "==> writing the package seeds"
cargo run --quiet --example fuzz_seeds -- "$corpus"
cp testdata/daemon/*.tar "$corpus/daemon_save/"
cp fuzz/seeds/challenge/* "$corpus/challenge/"
cp fuzz/seeds/link/* "$corpus/link/"
cp testdata/package/pkgr.yaml fuzz/seeds/definition/* "$corpus/definition/"
cp testdata/package/images/index.json "$corpus/manifest/"
for blob in testdata/package/images/blobs/sha256/*; do
    if head -c 1 "$blob" | grep -q '{'; then
        cp "$blob" "$corpus/manifest/"
    fi
done

mkdir -p fuzz/runs
failed=""
summary=""
for target in $targets; do
    seconds_var="FUZZ_SECONDS_$target"
    seconds="${!seconds_var:-$default_seconds}"
    log="fuzz/runs/$target.log"
    echo "==> fuzzing $target for ${seconds}s (log: $log)"
    status=0
    (cd fuzz && cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -max_len=262144 \
        -print_final_stats=1) >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::|SUMMARY|artifact_prefix|Test unit|thread .* panicked)' "$log" || true
    if [ "$status" -ne 0 ]; then
        failed="$failed $target"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    summary="$summary$target: ${seconds}s, ${runs:-?} executions, ${rate:-?} exec/s"$'\n'
done
printf '==> figures\n%s' "$summary"
if [ -n "$failed" ]; then
    echo "error: findings in:$failed (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "no findings in $targets"
