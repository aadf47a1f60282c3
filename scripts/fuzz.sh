#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target for FUZZ_SECONDS (default 1200) one after
# another, seeded from testdata/. An input that crashes, runs over 10 s or takes over
# 512 MB counts as a finding; findings are left in fuzz/artifacts/<target>/ and make
# the run fail. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-1200}"
targets="${FUZZ_TARGETS:-package_reader definition manifest}"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "error: cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

corpus=fuzz/corpus
mkdir -p "$corpus/package_reader" "$corpus/definition" "$corpus/manifest"
# The package seed: testdata/package as a tar, in the order pkgr writes it.
python3 - "$corpus/package_reader/fixture.tar" <<'PY'
import os, sys, tarfile
root = "testdata/package"
first = ["pkgr.yaml", "checksums.txt", "images/oci-layout", "images/index.json"]
blobs = sorted("images/blobs/sha256/" + n for n in os.listdir(root + "/images/blobs/sha256"))
with tarfile.open(sys.argv[1], "w", format=tarfile.USTAR_FORMAT) as tar:
    for name in first + blobs:
        info = tar.gettarinfo(os.path.join(root, name), arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o644
        with open(os.path.join(root, name), "rb") as f:
            tar.addfile(info, f)
PY
if command -v zstd >/dev/null; then
    zstd -q -f "$corpus/package_reader/fixture.tar" -o "$corpus/package_reader/fixture.tar.zst"
fi
cp testdata/package/pkgr.yaml fuzz/seeds/definition/* "$corpus/definition/"
cp testdata/package/images/index.json "$corpus/manifest/"
for blob in testdata/package/images/blobs/sha256/*; do
    if head -c 1 "$blob" | grep -q '{'; then
        cp "$blob" "$corpus/manifest/"
    fi
done

failed=""
for target in $targets; do
    echo "==> fuzzing $target for ${seconds}s"
    if ! (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -max_len=262144 \
        -print_final_stats=1); then
        failed="$failed $target"
    fi
done
if [ -n "$failed" ]; then
    echo "error: findings in:$failed (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "no findings in $targets after ${seconds}s each"
