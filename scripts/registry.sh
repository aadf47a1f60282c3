# Sourced by the demo and the benchmark: start_registry ADDR DIR starts a throwaway
# docker-registry on ADDR with its storage and config in DIR, and stops it on exit.
start_registry() {
  local addr=$1 dir=$2
  cat >"$dir/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: $addr
YAML
  docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  registry_pid=$!
  # Expanded now: the function's locals are gone by the time the trap runs.
  # shellcheck disable=SC2064
  trap "kill $registry_pid 2>/dev/null || true; rm -rf '$dir'" EXIT
}
