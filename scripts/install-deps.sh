#!/usr/bin/env bash
# Installs what pkgr's demo, tests and benchmark need on Debian, if it is missing:
# docker-registry (the real registry), skopeo (the round-trip check and the benchmark's
# peer), openssl (certificates for the TLS test), zstd, curl (the small-images
# benchmark's floor), man-db (the man-page test), GNU time (memory bounds in the
# tests), docker.io (the real Docker daemon that the daemon-fallback tests, the demo
# and bench/daemon.sh start on a private socket) and python3 (the scripts that build
# images for it); and for the build itself, libzstd-dev and pkg-config (pkgr links the
# system's libzstd rather than building the bundled one).
set -euo pipefail

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v zstd >/dev/null || missing+=(zstd)
command -v curl >/dev/null || missing+=(curl)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v openssl >/dev/null || missing+=(openssl)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v python3 >/dev/null || missing+=(python3)
# GNU time: the tests bound the peak memory of pkgr under hostile input with it.
[ -x /usr/bin/time ] || missing+=(time)
# kill(1) and mount(8) as programs, not shell builtins: the tests signal pkgr and
# mount small tmpfs filesystems.
{ [ -x /bin/kill ] || [ -x /usr/bin/kill ]; } || missing+=(procps)
command -v mount >/dev/null || missing+=(mount)
# man(1): the tests render every generated man page with `man -l`.
command -v man >/dev/null || missing+=(man-db)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists libzstd 2>/dev/null || missing+=(libzstd-dev)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo is missing; install Rust with your distribution's rustup or cargo package" >&2
  exit 1
fi
