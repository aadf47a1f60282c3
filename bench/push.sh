# Sourced by bench/create.sh once its package exists: `pkgr push` against its floor and
# its peer on the same package (issue 7), as case functions for create.sh's rounds. It
# uses bench/lib.sh and create.sh's $work and $package, so the corpus is seeded once
# per `make bench`.
#
# - The floor: every blob of the package uploaded from a file with curl, POST then PUT,
#   with pkgr's default parallelism. Blobs only: manifests are a few hundred bytes.
# - The peer: `skopeo copy` of each image from the package's OCI layout, one after the
#   other, as a Zarf-style shell loop does.
# - The disk a push uses besides the package: `du` of its TMPDIR, sampled.

target_addr=127.0.0.1:5558
layout=$work/layout/images

# The package's layout, extracted once and not timed: the floor and the peer read blobs
# from files, as a site that was handed a plain OCI layout would.
extract_layout() {
  echo "extracting the package's OCI layout for the floor and skopeo (not timed)..." >&2
  mkdir -p "$work/layout"
  zstd -dc "$package" | tar -x -C "$work/layout"
}

# "DIGEST REF MEDIATYPE SIZE" for each entry of the layout's index.json. pkgr writes it
# pretty-printed, one field a line, each entry's annotations after its descriptor.
index_entries() {
  awk -F'"' '
    $2 == "mediaType" { m = $4 }
    $2 == "digest" { d = $4 }
    $2 == "size" { s = $3; gsub(/[^0-9]/, "", s) }
    $2 == "org.opencontainers.image.ref.name" { print d, $4, m, s }
  ' "$layout/index.json"
}

# "REPO FILE DIGEST" for each blob (config or layer) of the package, once, in the
# repository of the first image that needs it: pkgr pushes host/bench/imgN:1 to
# <target>/bench/imgN:1. pkgr also mounts a shared blob into the other repositories
# that need it; the floor leaves those requests out, which only makes it lower.
floor_plan() {
  local entries digest ref repo manifest blob blobs seen=" "
  entries=$(index_entries)
  [ -n "$entries" ] || { echo "error: no image in $layout/index.json" >&2; return 1; }
  while read -r digest ref _; do
    repo=${ref#*/}
    repo=${repo%:*}
    manifest=$layout/blobs/sha256/${digest#sha256:}
    # The corpus is single-platform images; an index would need a walk this plan skips.
    if grep -q '"manifests"' "$manifest"; then
      echo "error: $ref is an index; the floor handles image manifests only" >&2
      return 1
    fi
    # Every digest a manifest names is its config or one of its layers.
    blobs=$(grep -o 'sha256:[0-9a-f]\{64\}' "$manifest")
    for blob in $blobs; do
      case $seen in *" $blob "*) continue ;; esac
      seen="$seen$blob "
      echo "$repo $layout/blobs/sha256/${blob#sha256:} $blob"
    done
  done <<<"$entries"
}

# upload_blob REPO FILE DIGEST: a monolithic upload, the least a client can send: POST
# for a session, then PUT of the whole file to the Location it answers with.
upload_blob() {
  local repo=$1 file=$2 digest=$3 location
  location=$(curl -sSf -X POST -o /dev/null -w '%header{location}' \
    "http://$target_addr/v2/$repo/blobs/uploads/")
  [ -n "$location" ] || { echo "error: no Location for an upload to $repo" >&2; return 1; }
  case $location in /*) location=http://$target_addr$location ;; esac
  case $location in *\?*) location="$location&" ;; *) location="$location?" ;; esac
  # -T streams the file (--data-binary @file would read it all into memory first);
  # an empty Expect skips curl's wait for "100 Continue".
  curl -sSf -o /dev/null -T "$file" -H 'Content-Type: application/octet-stream' \
    -H 'Expect:' "${location}digest=$digest"
}

# The floor: the plan's uploads, $concurrency at a time. xargs exits non-zero if any
# upload failed.
upload_floor() {
  xargs -a "$work/floor-plan" -n 3 -P "$concurrency" bash -euo pipefail -c 'upload_blob "$@"' _
}

# skopeo's view of the layout: one directory per image with an index.json of that
# image's entry alone, its blobs the extracted ones (a symlink). skopeo 1.9 looks an
# `oci:DIR:REF` up among the index's OCI-typed entries only, and half the corpus has
# Docker media types ("no descriptor found for reference"); given no REF and an index
# of one entry it takes that entry, whatever its type, and copies it byte for byte.
skopeo_layouts() {
  local k=0 digest ref media size dir
  while read -r digest ref media size; do
    dir=$work/skopeo-src/$k
    mkdir -p "$dir"
    cp "$layout/oci-layout" "$dir/"
    ln -s "$layout/blobs" "$dir/blobs"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"%s","digest":"%s","size":%s}]}\n' \
      "$media" "$digest" "$size" >"$dir/index.json"
    echo "$dir ${ref#*/}"
    k=$((k + 1))
  done <"$work/entries"
}

# The peer: each image copied from its layout to the path pkgr would push it to
# (host/bench/imgN:1 to <target>/bench/imgN:1), one at a time.
skopeo_push_loop() {
  local dir dest
  while read -r dir dest; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$dir" "docker://$target_addr/$dest" </dev/null
  done <"$work/skopeo-plan"
}
export -f upload_blob upload_floor skopeo_push_loop
export work target_addr layout

# Untimed: the layout the floor and the peer read, their plans.
prepare_push() {
  concurrency=$(default_concurrency push)
  [ -n "$concurrency" ] || { echo "error: no --concurrency default in pkgr push --help" >&2; return 1; }
  export concurrency
  extract_layout
  index_entries >"$work/entries"
  floor_plan >"$work/floor-plan"
  skopeo_layouts >"$work/skopeo-plan"
}

# The cases, for create.sh's rounds: each into a fresh empty registry; pkgr's push is
# followed by a push of the same package into the registry that now has everything.
case_floor_push() {
  fresh_target "$target_addr"
  timed floor-push bash -euo pipefail -c upload_floor
}
case_push() {
  fresh_target "$target_addr"
  timed push "$pkgr" push "$package" "$target_addr" --no-progress
  timed push-again "$pkgr" push "$package" "$target_addr" --no-progress
}
case_skopeo_push() {
  fresh_target "$target_addr"
  timed skopeo-push bash -euo pipefail -c skopeo_push_loop
}

record_push() {
  local blobs bytes floor
  blobs=$(wc -l <"$work/floor-plan")
  bytes=$(awk '{ print $2 }' "$work/floor-plan" | xargs stat -c %s | awk '{ s += $1 } END { print s }')
  floor="curl POST+PUT -P $concurrency of $blobs blobs from files"
  record "push into an empty registry, 1 GiB" "pkgr push" push floor-push "$floor"
  record "push into an empty registry, 1 GiB" "skopeo copy loop" skopeo-push floor-push "$floor"
  record "push into a registry that has everything" "pkgr push" push-again
  note "push floor: $blobs blobs, $((bytes / 1048576)) MiB, each uploaded once from its file, $concurrency at a time; no manifests (a few hundred bytes each), no mounts"
}

# sample_du DIR OUT: the largest `du -sb DIR` seen, every 20 ms, written to OUT until
# killed. A file that vanishes between du's listing and its stat is not an error here.
sample_du() {
  local dir=$1 out=$2 size max=0
  while :; do
    size=$(du -sb "$dir" 2>/dev/null | cut -f1) || true
    if [ "${size:-0}" -gt "$max" ]; then
      max=$size
      # Renamed into place: the sampler is killed at any moment.
      echo "$max" >"$out.new" && mv "$out.new" "$out"
    fi
    sleep 0.02
  done
}

# One untimed push into an empty registry with TMPDIR on a fresh, empty directory;
# records the high-water mark of that directory. No --work-dir is passed: the option is being
# removed in another branch, and this must measure both the binary that has it and the
# one that does not.
measure_push_disk() {
  local dir=$work/push-tmpdir help sampler base high note
  mkdir "$dir"
  base=$(du -sb "$dir" | cut -f1)
  echo "$base" >"$work/du-high"
  fresh_target "$target_addr"
  sample_du "$dir" "$work/du-high" &
  sampler=$!
  registry_cleanup="$registry_cleanup kill $sampler 2>/dev/null || true;"
  # shellcheck disable=SC2064
  trap "$registry_cleanup" EXIT
  TMPDIR=$dir "$pkgr" push "$package" "$target_addr" --no-progress >/dev/null 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    return 1
  }
  # One more sample after the push, then stop the sampler.
  sleep 0.05
  kill "$sampler"
  wait "$sampler" 2>/dev/null || true
  high=$(($(cat "$work/du-high") - base))
  help=$("$pkgr" push --help)
  case $help in
    *--work-dir*) note="this pkgr push extracts and verifies the whole package under --work-dir, which defaults to TMPDIR" ;;
    *) note="this pkgr push has no --work-dir" ;;
  esac
  record_value "push extra disk (TMPDIR high-water, du every 20 ms)" "pkgr push" \
    "$(awk -v b="$high" 'BEGIN { printf "%.1f", b / 1048576 }')" MiB
  note "push extra disk: $note"
}
