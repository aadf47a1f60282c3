# Sourced by the demo and the daemon benchmark: start_dockerd DIR starts a throwaway
# Docker daemon (Debian's docker.io, as root) with its socket, data root and log in
# DIR, exports DOCKER_HOST for it, and stops it (and removes DIR) on exit. vfs needs
# no overlay support, and --iptables=false --bridge=none leave the host's network
# alone. Nothing is pulled: images reach it by `docker load`.
dockerd_cleanup=""
start_dockerd() {
  local dir=$1
  if ! command -v dockerd >/dev/null; then
    echo "error: dockerd is missing; install it with \`apt-get install docker.io\`" >&2
    return 1
  fi
  dockerd --storage-driver=vfs --iptables=false --bridge=none \
    --host "unix://$dir/docker.sock" --data-root "$dir/root" --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" >"$dir/dockerd.log" 2>&1 &
  local pid=$!
  # Expanded now: the function's locals are gone by the time the trap runs. dockerd
  # stops its containerd on SIGTERM; the wait lets it before DIR goes.
  dockerd_cleanup="$dockerd_cleanup kill $pid 2>/dev/null; while kill -0 $pid 2>/dev/null; do sleep 0.2; done; rm -rf '$dir';"
  # shellcheck disable=SC2064
  trap "${registry_cleanup:-} $dockerd_cleanup" EXIT
  export DOCKER_HOST="unix://$dir/docker.sock"
  for _ in $(seq 300); do
    if docker version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "error: dockerd did not start (it must run as root); its log:" >&2
  cat "$dir/dockerd.log" >&2
  return 1
}
