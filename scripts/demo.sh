#!/usr/bin/env bash
# The main job end to end: a throwaway registry seeded with images built here, then
# `pkgr create` on examples/demo/pkgr.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5555
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

cargo build --release --quiet --bin pkgr --example seed

work=$(mktemp -d)
start_registry "$addr" "$work"

echo "==> seeding a throwaway registry on $addr" >&2
target/release/examples/seed "$addr" >&2

echo "==> pkgr create examples/demo" >&2
mkdir -p demo-out
target/release/pkgr create examples/demo --output demo-out
