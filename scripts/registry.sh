# Sourced by the demo and the benchmark: start_registry ADDR DIR starts a throwaway
# docker-registry on ADDR with its storage and config in DIR, and stops every one
# started this way (and removes its DIR) on exit. The new registry's pid is left in
# $registry_pid.
registry_cleanup=""
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
  registry_cleanup="$registry_cleanup kill $registry_pid 2>/dev/null || true; rm -rf '$dir';"
  # shellcheck disable=SC2064
  trap "$registry_cleanup" EXIT
  local host=${addr%:*} port=${addr##*:}
  for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "error: docker-registry did not start on $addr; see $dir/registry.log" >&2
  return 1
}
