#!/usr/bin/env python3
"""Writes the docker-save fixtures of the two Docker >= 25 formats, which the
dockerd 20.10 that the tests run cannot produce:

- oci-classic.tar: the classic image store. An OCI layout whose manifest the daemon
  made itself, listing uncompressed layers (application/vnd.oci.image.layer.v1.tar).
- oci-containerd.tar: the containerd image store. An OCI layout holding a registry's
  original blobs: a nested index (index.json -> image index -> a linux/amd64
  manifest with a gzip layer, its buildx attestation manifest, and a linux/arm64
  manifest that was never pulled, so its blobs are absent). The image ID is the
  amd64 manifest's digest, and the save holds the config under that ID: the
  shape of crane's bug (Zarf #2584), where a config was stored under a name that
  was not the hash of its bytes.

Deterministic: run it again and the tars are byte-identical.
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def sha(b):
    return hashlib.sha256(b).hexdigest()


def js(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def layer_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_tar(path, entries):
    with tarfile.open(path, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            t.addfile(info, io.BytesIO(data))


def desc(media_type, data, **extra):
    d = {"mediaType": media_type, "digest": "sha256:" + sha(data), "size": len(data)}
    d.update(extra)
    return d


def config_for(layers, arch):
    return js({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(l) for l in layers]},
    })


def classic():
    layers = [layer_tar([("hello", b"#!/bin/sh\necho classic\n")]),
              layer_tar([("data.bin", bytes(range(256)) * 64)])]
    config = config_for(layers, "amd64")
    manifest = js({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", l) for l in layers],
    })
    name = "registry.invalid/fixtures/classic:1"
    index = js({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [desc("application/vnd.oci.image.manifest.v1+json", manifest, annotations={
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": "1",
        })],
    })
    entries = [("blobs/sha256/" + sha(b), b) for b in layers + [config, manifest]]
    entries += [
        ("index.json", index),
        ("manifest.json", js([{
            "Config": "blobs/sha256/" + sha(config),
            "RepoTags": [name],
            "Layers": ["blobs/sha256/" + sha(l) for l in layers],
        }])),
        ("oci-layout", js({"imageLayoutVersion": "1.0.0"})),
        ("repositories", js({"registry.invalid/fixtures/classic": {"1": sha(manifest)}})),
    ]
    write_tar(os.path.join(HERE, "oci-classic.tar"), entries)


def containerd():
    plain = layer_tar([("hello", b"#!/bin/sh\necho containerd\n")])
    # A registry's gzip layer, as pushed: pkgr must carry these bytes untouched.
    gz = gzip.compress(plain, compresslevel=9, mtime=0)
    config = config_for([plain], "amd64")
    manifest = js({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", gz)],
    })
    statement = js({"_type": "https://in-toto.io/Statement/v0.1", "subject": []})
    empty = js({})
    attestation = js({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", empty),
        "layers": [desc("application/vnd.in-toto+json", statement)],
    })
    # Never pulled: listed in the index, absent from the save.
    arm = js({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "config": desc("application/vnd.oci.image.config.v1+json", config_for([plain], "arm64")),
              "layers": []})
    image_index = js({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            desc("application/vnd.oci.image.manifest.v1+json", manifest,
                 platform={"architecture": "amd64", "os": "linux"}),
            desc("application/vnd.oci.image.manifest.v1+json", arm,
                 platform={"architecture": "arm64", "os": "linux"}),
            desc("application/vnd.oci.image.manifest.v1+json", attestation,
                 platform={"architecture": "unknown", "os": "unknown"},
                 annotations={"vnd.docker.reference.digest": "sha256:" + sha(manifest),
                              "vnd.docker.reference.type": "attestation-manifest"}),
        ],
    })
    name = "registry.invalid/fixtures/containerd:1"
    index = js({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [desc("application/vnd.oci.image.index.v1+json", image_index, annotations={
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": "1",
        })],
    })
    image_id = sha(manifest)  # the containerd store's image ID: the manifest digest
    entries = [("blobs/sha256/" + sha(b), b)
               for b in [gz, config, manifest, empty, statement, attestation, image_index]]
    entries += [
        ("index.json", index),
        # The #2584 shape: the config's bytes under a name made from the image ID,
        # which is the manifest's digest, not the config's, and the legacy-compatible
        # metadata pointing at it.
        (image_id + ".json", config),
        ("manifest.json", js([{
            "Config": image_id + ".json",
            "RepoTags": [name],
            "Layers": ["blobs/sha256/" + sha(gz)],
        }])),
        ("oci-layout", js({"imageLayoutVersion": "1.0.0"})),
        ("repositories", js({"registry.invalid/fixtures/containerd": {"1": image_id}})),
    ]
    write_tar(os.path.join(HERE, "oci-containerd.tar"), entries)


if __name__ == "__main__":
    classic()
    containerd()
