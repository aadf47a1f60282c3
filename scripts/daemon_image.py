#!/usr/bin/env python3
"""Writes a `docker load`-able tar (the legacy docker-save format) of one image, so
the demo and the benchmark can put an image into a throwaway Docker daemon without
pulling anything.

usage: daemon_image.py TAG OUT.tar [MIB]

The image has a small script layer and, with MIB, MIB mebibytes of pseudo-random
data split over layers of at most 256 MiB (so gzip cannot shrink them away). The
data is streamed to the tar: memory stays small whatever MIB is.
"""

import hashlib
import io
import json
import os
import sys
import tarfile

CHUNK = 1 << 20
LAYER_MIB = 256


def noise_chunks(seed, mib):
    """mib MiB of deterministic pseudo-random bytes, a MiB at a time."""
    block = hashlib.sha256(str(seed).encode()).digest()
    for i in range(mib):
        # SHAKE-256 of (seed, i): fast enough, and incompressible.
        yield hashlib.shake_256(block + i.to_bytes(8, "little")).digest(CHUNK)


def layer_of(files):
    """An uncompressed layer tar (bytes) holding small files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Hashing:
    """A file-like sink that hashes and counts what passes to the real file."""

    def __init__(self, out):
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        return self.out.write(b)


def data_layer_header(name, size):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(format=tarfile.GNU_FORMAT)


def main():
    tag, out_path = sys.argv[1], sys.argv[2]
    mib = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    layers = [layer_of([("hello", b"#!/bin/sh\necho hello from a daemon-only image\n", 0o755)])]
    # Data layers are written to temp files first: their digest must be known before
    # the outer tar's manifest.json, which comes last anyway.
    tmpdir = os.path.dirname(os.path.abspath(out_path))
    data_layers = []
    left, n = mib, 0
    while left > 0:
        part = min(left, LAYER_MIB)
        path = os.path.join(tmpdir, f".layer{n}.tmp")
        with open(path, "wb") as f:
            h = Hashing(f)
            h.write(data_layer_header(f"data{n}.bin", part * CHUNK))
            for chunk in noise_chunks(n, part):
                h.write(chunk)
            # The layer's tar: pad the entry to 512 bytes, then two zero blocks.
            h.write(b"\0" * (1024 + (-(part * CHUNK)) % 512))
        data_layers.append((path, "sha256:" + h.sha.hexdigest(), h.size))
        left, n = left - part, n + 1

    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    diff_ids += [d for _, d, _ in data_layers]
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "scripts/daemon_image.py"} for _ in diff_ids],
    }, separators=(",", ":"), sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"

    with tarfile.open(out_path, "w", format=tarfile.GNU_FORMAT) as t:
        def add(name, data=None, path=None, size=None):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o644, 0
            if path is None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                info.size = size
                with open(path, "rb") as f:
                    t.addfile(info, f)

        names = []
        for i, layer in enumerate(layers):
            add(f"small{i}/layer.tar", layer)
            names.append(f"small{i}/layer.tar")
        for i, (path, _, size) in enumerate(data_layers):
            add(f"data{i}/layer.tar", path=path, size=size)
            names.append(f"data{i}/layer.tar")
            os.remove(path)
        add(config_name, config)
        add("manifest.json", json.dumps(
            [{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode())


if __name__ == "__main__":
    main()
