#!/usr/bin/env bash
# The main job end to end: a throwaway registry seeded with images built here, then
# `pkgr create` on examples/demo/pkgr.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5555
work=$(mktemp -d)
registry_pid=""
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --bin pkgr --example seed

cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: $addr
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!

echo "==> seeding a throwaway registry on $addr" >&2
target/release/examples/seed "$addr" >&2

echo "==> pkgr create examples/demo" >&2
mkdir -p demo-out
target/release/pkgr create examples/demo --output demo-out
