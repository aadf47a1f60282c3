#!/usr/bin/env bash
# The main job end to end: a throwaway registry seeded with images built here,
# `pkgr create` on examples/demo/pkgr.yaml, signed with a key openssl makes here,
# `pkgr inspect --verify` of the package, `pkgr verify --key` of its signature, and
# `pkgr push --key` into a second throwaway registry (the far side of the air gap). Then,
# where docker.io is installed, the daemon fallback: an image that exists only in a
# throwaway Docker daemon, under a registry name nothing serves, is packaged too. Last,
# `pkgr serve` of the package, and skopeo pulling an image out of it.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=127.0.0.1:5555
far_side=127.0.0.1:5556
# shellcheck source=scripts/registry.sh
. scripts/registry.sh

cargo build --release --quiet --bin pkgr --example seed
bin=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
start_registry "$addr" "$work"

echo "==> seeding a throwaway registry on $addr" >&2
"$bin/examples/seed" "$addr" >&2

echo "==> an ECDSA P-256 signing key, made by openssl in $work" >&2
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/signing.pem" 2>/dev/null
openssl pkey -in "$work/signing.pem" -pubout -out "$work/signing.pub"

echo "==> pkgr create examples/demo --signing-key $work/signing.pem" >&2
mkdir -p demo-out
package=$("$bin/pkgr" create examples/demo --output demo-out --signing-key "$work/signing.pem" | tail -n 1)

echo "==> pkgr inspect --verify $package" >&2
"$bin/pkgr" inspect --verify "$package"

echo "==> the package carries demo/web's signature and attestation" >&2
"$bin/pkgr" inspect "$package" | grep -F "$addr/demo/web:1.0  signature, attestation" >&2

echo "==> pkgr verify $package --key $work/signing.pub (the far side's first step)" >&2
"$bin/pkgr" verify "$package" --key "$work/signing.pub"

far=$(mktemp -d)
start_registry "$far_side" "$far"
echo "==> pkgr push $package $far_side --key $work/signing.pub" >&2
"$bin/pkgr" push "$package" "$far_side" --key "$work/signing.pub"
echo "==> the far side has demo/web's signature and attestation under cosign's tags" >&2
tags=$(curl -fsS "http://$far_side/v2/demo/web/tags/list")
for suffix in sig att; do
  grep -q "sha256-[0-9a-f]*\.$suffix" <<<"$tags" || { echo "no .$suffix tag on $far_side: $tags" >&2; exit 1; }
done

if command -v dockerd >/dev/null; then
  # shellcheck source=scripts/dockerd.sh
  . scripts/dockerd.sh
  daemon_dir=$(mktemp -d /tmp/pkgr-demo-dockerd.XXXXXX)
  start_dockerd "$daemon_dir"
  echo "==> docker load of an image built here, into a throwaway daemon ($DOCKER_HOST)" >&2
  python3 scripts/daemon_image.py 127.0.0.1:5559/demo/local:1.0 "$daemon_dir/image.tar"
  docker load -i "$daemon_dir/image.tar" >&2
  echo "==> pkgr create examples/demo-daemon (nothing serves 127.0.0.1:5559)" >&2
  daemon_package=$("$bin/pkgr" create examples/demo-daemon --output demo-out | tail -n 1)
  "$bin/pkgr" inspect --verify "$daemon_package"
  echo "==> pkgr push $daemon_package $far_side" >&2
  "$bin/pkgr" push "$daemon_package" "$far_side"
else
  echo "==> no daemon fallback demo: dockerd is missing (apt-get install docker.io)" >&2
fi

# Split round trip: the demo package again as Zarf's split parts of at most 4 MiB (it
# is about 11 MiB), inspected and verified from its part000, and pushed from it into a
# registry of its own, which then serves every image under the digest that the push of
# the whole package gave the far side.
split_side=127.0.0.1:5561
echo "==> pkgr create examples/demo --max-package-size 4MiB" >&2
split_first=$("$bin/pkgr" create examples/demo --output demo-out/split --max-package-size 4MiB | tail -n 1)
ls -l "${split_first%.part000}".part* >&2
echo "==> pkgr inspect --verify $split_first" >&2
"$bin/pkgr" inspect --verify "$split_first"
split_far=$(mktemp -d)
start_registry "$split_side" "$split_far"
# start_registry sets the EXIT trap anew: keep the daemon's cleanup in it too.
# shellcheck disable=SC2064
trap "$registry_cleanup ${dockerd_cleanup:-}" EXIT
echo "==> pkgr push $split_first $split_side" >&2
"$bin/pkgr" push "$split_first" "$split_side"
manifest_digest() {
  curl -fsSI -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json" \
    "http://$1/v2/$2/manifests/$3" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }'
}
for image in demo/web:1.0 demo/api:2.0 demo/charts/web:0.1.0 demo/web-sbom:1.0; do
  repo=${image%:*} tag=${image##*:}
  whole=$(manifest_digest "$far_side" "$repo" "$tag")
  [ -n "$whole" ] && [ "$whole" = "$(manifest_digest "$split_side" "$repo" "$tag")" ] ||
    { echo "$image differs on $split_side after the split round trip" >&2; exit 1; }
done
echo "==> every image came through the split parts under the same digest as through the whole package" >&2

# A differential round trip: next month's demo (demo/web:1.1, only its top layer new)
# leaves out every config and layer the first demo package holds, and is pushed to the
# far side, which already has that package.
cargo build --release --quiet --example seed_next
echo "==> next month: demo/web:1.1, a new top layer over the same base" >&2
"$bin/examples/seed_next" "$addr" >&2
echo "==> pkgr create examples/demo-next --differential $package" >&2
next=$("$bin/pkgr" create examples/demo-next --output demo-out --differential "$package" | tail -n 1)
"$bin/pkgr" inspect --verify "$next"
echo "==> $(stat -c %s "$next") bytes against $(stat -c %s "$package") for the first package" >&2
echo "==> pkgr push $next $far_side (after the first package)" >&2
"$bin/pkgr" push "$next" "$far_side"

# Serve: the first package as a read-only registry straight from its file, and one image
# pulled out of it with skopeo into a directory, under the digest the push gave the far
# side; then serve is stopped with SIGTERM, its normal end (exit 0).
serve_side=127.0.0.1:5562
echo "==> pkgr serve $package --listen $serve_side" >&2
"$bin/pkgr" serve "$package" --listen "$serve_side" -q &
serve_pid=$!
# shellcheck disable=SC2064
trap "kill $serve_pid 2>/dev/null || true; $registry_cleanup ${dockerd_cleanup:-}" EXIT
for _ in $(seq 150); do
  curl -fsS -o /dev/null "http://$serve_side/v2/" 2>/dev/null && break
  sleep 0.1
done
serve_dir=$(mktemp -d)
echo "==> skopeo copy docker://$serve_side/demo/web:1.0 dir:$serve_dir/web" >&2
skopeo copy --quiet --src-tls-verify=false "docker://$serve_side/demo/web:1.0" "dir:$serve_dir/web" >&2
[ "$(skopeo manifest-digest "$serve_dir/web/manifest.json")" = "$(manifest_digest "$far_side" demo/web 1.0)" ] ||
  { echo "demo/web:1.0 out of pkgr serve differs from the far side's" >&2; exit 1; }
rm -rf "$serve_dir"
echo "==> stopping pkgr serve with SIGTERM" >&2
kill "$serve_pid"
wait "$serve_pid"
echo "==> demo/web:1.0 came out of pkgr serve under the digest the push gave the far side" >&2

echo "$package"
