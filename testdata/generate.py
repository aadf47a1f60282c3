#!/usr/bin/env python3
"""Writes testdata/package/: a small pkgr package laid out as a directory, for the unit
tests of plan, seal, scan, summary and the writer, and the inspect snapshots.

It holds a container image, a Helm chart and a whole two-platform index whose amd64
image shares its base layer with the container image. Every file is deterministic:
run it again and `git status` stays clean.
"""
import hashlib
import json
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "package")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

blobs = {}


def blob(data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def doc(value, media_type):
    return blob(json.dumps(value, indent=2).encode() + b"\n", media_type)


def image(arch, layers):
    layer_descs = [blob(data, OCI_LAYER) for data in layers]
    config = doc(
        {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        },
        OCI_CONFIG,
    )
    return doc(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layer_descs},
        OCI_MANIFEST,
    )


base = b"base layer shared by web and multi/amd64\n" * 64
web = image("amd64", [base, b"web layer\n" * 16])
chart = doc(
    {
        "schemaVersion": 2,
        "config": blob(b'{"name":"demo","version":"0.1.0","apiVersion":"v2"}', HELM_CONFIG),
        "layers": [blob(b"chart archive bytes\n" * 8, HELM_CHART)],
    },
    OCI_MANIFEST,
)
amd = image("amd64", [base, b"amd64 layer\n" * 8])
arm = image("arm64", [b"arm64 layer\n" * 8])
amd_entry = dict(amd, platform={"os": "linux", "architecture": "amd64"})
arm_entry = dict(arm, platform={"os": "linux", "architecture": "arm64", "variant": "v8"})
multi = doc({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd_entry, arm_entry]}, OCI_INDEX)

refs = [
    ("web", "registry.test/team/web:1.0", web, "container image", "linux/amd64"),
    ("tools", "registry.test/charts/demo:0.1.0", chart, "Helm chart", None),
    ("tools", "registry.test/multi@" + multi["digest"], multi, "index", None),
]

shutil.rmtree(ROOT, ignore_errors=True)
os.makedirs(os.path.join(ROOT, "images", "blobs", "sha256"))
for digest, data in blobs.items():
    with open(os.path.join(ROOT, "images", "blobs", "sha256", digest[7:]), "wb") as f:
        f.write(data)
with open(os.path.join(ROOT, "images", "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
index_entries = []
for _, ref, desc, _, platform in refs:
    entry = {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"]}
    entry["annotations"] = {
        "org.opencontainers.image.base.name": ref,
        "org.opencontainers.image.ref.name": ref,
    }
    if platform:
        entry["platform"] = {"os": "linux", "architecture": "amd64"}
    index_entries.append(entry)
with open(os.path.join(ROOT, "images", "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}, f, indent=2)

lines = [
    "kind: PkgrPackage",
    "metadata:",
    "  name: fixture",
    "  version: 1.0.0",
    "  architecture: amd64",
    "  description: An image, a Helm chart and a whole index",
    "components:",
]
for component in ["web", "tools"]:
    lines += [f"- name: {component}", "  images:"]
    for comp, ref, desc, kind, platform in refs:
        if comp != component:
            continue
        lines += [
            f"  - reference: {ref}",
            f"    digest: {desc['digest']}",
            f"    mediaType: {desc['mediaType']}",
            f"    kind: {kind}",
        ]
        if platform:
            lines.append(f"    platform: {platform}")
with open(os.path.join(ROOT, "pkgr.yaml"), "w") as f:
    f.write("\n".join(lines) + "\n")

sums = {}
for name in ["pkgr.yaml", "images/oci-layout", "images/index.json"]:
    with open(os.path.join(ROOT, name), "rb") as f:
        sums[name] = hashlib.sha256(f.read()).hexdigest()
for digest in blobs:
    sums["images/blobs/sha256/" + digest[7:]] = digest[7:]
with open(os.path.join(ROOT, "checksums.txt"), "w") as f:
    for name in sorted(sums):
        f.write(f"{sums[name]} {name}\n")
