#!/usr/bin/env bash
# The main job end to end: a throwaway registry seeded with images built here,
# `pkgr create` on examples/demo/pkgr.yaml, `pkgr inspect --verify` of the package, and
# `pkgr push` into a second throwaway registry (the far side of the air gap).
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5555
far_side=127.0.0.1:5556
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

cargo build --release --quiet --bin pkgr --example seed

work=$(mktemp -d)
start_registry "$addr" "$work"

echo "==> seeding a throwaway registry on $addr" >&2
target/release/examples/seed "$addr" >&2

echo "==> pkgr create examples/demo" >&2
mkdir -p demo-out
package=$(target/release/pkgr create examples/demo --output demo-out | tail -n 1)

echo "==> pkgr inspect --verify $package" >&2
target/release/pkgr inspect --verify "$package"

echo "==> the package carries demo/web's signature and attestation" >&2
target/release/pkgr inspect "$package" | grep -F "$addr/demo/web:1.0  signature, attestation" >&2

far=$(mktemp -d)
start_registry "$far_side" "$far"
echo "==> pkgr push $package $far_side" >&2
target/release/pkgr push "$package" "$far_side"
echo "==> the far side has demo/web's signature and attestation under cosign's tags" >&2
tags=$(curl -fsS "http://$far_side/v2/demo/web/tags/list")
for suffix in sig att; do
  grep -q "sha256-[0-9a-f]*\.$suffix" <<<"$tags" || { echo "no .$suffix tag on $far_side: $tags" >&2; exit 1; }
done

echo "$package"
