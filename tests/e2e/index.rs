//! Index resolution as the spec allows it: indexes that hold indexes, and the
//! attestation manifests buildx adds beside each platform.

use crate::support::definition::Definition;
use crate::support::images::{layer, Image, Pushed, Pusher};
use crate::support::package::Package;
use crate::support::proxy::FaultProxy;
use crate::support::registry::TestRegistry;
use crate::support::{package_path, stderr, Workspace};

/// `repo:tag` is a buildx index of amd64 and arm64, each with an attestation.
fn buildx(pusher: &Pusher, repo: &str, tag: &str) -> (Pushed, Image, Image, Vec<Image>) {
    let amd = pusher.image(repo, "", false, "amd64", &[layer(&[("p", b"amd64")])]);
    let arm = pusher.image(repo, "", false, "arm64", &[layer(&[("p", b"arm64")])]);
    let (index, attestations) =
        pusher.buildx_index(repo, tag, &[("linux/amd64", &amd), ("linux/arm64", &arm)]);
    (index, amd, arm, attestations)
}

#[test]
fn attestations_are_named_beside_their_platform_not_counted_as_platforms() {
    let registry = TestRegistry::start();
    let (index, amd, arm, attestations) = buildx(&Pusher::new(&registry.addr), "app", "1");
    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(format!("{}/app@{}", registry.addr, index.digest)));
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is an image index of 2 platforms (+2 attestations),"),
        "{err}"
    );
    assert!(!err.contains("unknown/unknown"), "{err}");
    let amd_line = format!(
        "    linux/amd64  {}/app@{}   <- matches this package\n                   with its attestation {}\n",
        registry.addr, amd.manifest.digest, attestations[0].manifest.digest
    );
    assert!(err.contains(&amd_line), "{err}");
    let arm_line = format!(
        "    linux/arm64  {}/app@{}\n                   with its attestation {}\n",
        registry.addr, arm.manifest.digest, attestations[1].manifest.digest
    );
    assert!(err.contains(&arm_line), "{err}");
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
}

#[test]
fn a_tag_on_a_buildx_index_takes_the_platform_and_allow_index_keeps_everything() {
    let registry = TestRegistry::start();
    let (index, amd, arm, attestations) = buildx(&Pusher::new(&registry.addr), "app", "1");
    let reference = format!("{}/app:1", registry.addr);

    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(&reference));
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.entry(&reference)["digest"], amd.manifest.digest);
    assert_eq!(
        package.blob_names().len(),
        3,
        "the amd64 manifest, config and layer only"
    );

    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(&reference));
    let package = Package::read(&package_path(&ws.create(&["--allow-index"])));
    assert_eq!(package.entry(&reference)["digest"], index.digest);
    for image in [&amd, &arm].into_iter().chain(&attestations) {
        for blob in image.all() {
            assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
        }
    }
}

/// `outer:1` is an index whose only entry is the index `inner` of amd64 and arm64.
fn nested(pusher: &Pusher) -> (Pushed, Pushed, Image, Image) {
    let amd = pusher.image("nest", "", false, "amd64", &[layer(&[("n", b"amd64")])]);
    let arm = pusher.image("nest", "", false, "arm64", &[layer(&[("n", b"arm64")])]);
    let inner = pusher.index(
        "nest",
        "",
        false,
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let outer = pusher.raw_index("nest", "1", vec![inner.descriptor()]);
    (outer, inner, amd, arm)
}

#[test]
fn a_tag_on_an_index_of_indexes_descends_to_the_platform() {
    let registry = TestRegistry::start();
    let (_, _, amd, arm) = nested(&Pusher::new(&registry.addr));
    let reference = format!("{}/nest:1", registry.addr);
    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(&reference));
    let package = Package::read(&package_path(&ws.create(&["--architecture", "arm64"])));
    let entry = package.entry(&reference);
    assert_eq!(entry["digest"], arm.manifest.digest);
    assert_eq!(entry["platform"]["architecture"], "arm64");
    assert!(package.blob(&amd.layers[0].digest).is_none());
    for blob in arm.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }

    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(&reference));
    let out = ws.create(&["--architecture", "s390x"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("has no linux/s390x image (it has linux/amd64, linux/arm64)"),
        "{err}"
    );
}

#[test]
fn an_index_of_indexes_round_trips_children_first() {
    let registry = TestRegistry::start();
    let (outer, inner, amd, arm) = nested(&Pusher::new(&registry.addr));
    let reference = format!("{}/nest:1", registry.addr);
    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(&reference));
    let package = package_path(&ws.create(&["--allow-index"]));
    let target = TestRegistry::start();
    let out = ws.push(&package, &target.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pusher = Pusher::new(&target.addr);
    assert_eq!(pusher.get_manifest("nest", "1"), outer.bytes);
    for pushed in [&inner, &amd.manifest, &arm.manifest] {
        assert_eq!(pusher.get_manifest("nest", &pushed.digest), pushed.bytes);
    }
}

/// Rewrites the cached copy of `digest` with `change`, which must keep its size.
fn damage_in_place(ws: &Workspace, digest: &str, change: impl FnOnce(&str) -> String) {
    let path = ws.cached_blob(digest);
    let text = std::fs::read_to_string(&path).unwrap();
    let damaged = change(&text);
    assert_ne!(damaged, text, "no damage done");
    assert_eq!(damaged.len(), text.len(), "the damage must keep the size");
    std::fs::write(&path, damaged).unwrap();
}

#[test]
fn cached_child_manifests_are_used_only_when_their_bytes_match_their_digest() {
    let registry = TestRegistry::start();
    let (_, inner, amd, arm) = nested(&Pusher::new(&registry.addr));
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let reference = format!("{}/nest:1", proxy.addr);
    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(&reference));
    let manifest_gets = |from: usize, digest: &str| {
        proxy.seen()[from..]
            .iter()
            .filter(|s| s.method == "GET" && s.path.ends_with(&format!("/manifests/{digest}")))
            .count()
    };
    std::fs::remove_file(package_path(&ws.create(&[]))).unwrap();

    // A good cache answers for the pinned child manifests: only the tag is asked for.
    let before = proxy.seen().len();
    std::fs::remove_file(package_path(&ws.create(&[]))).unwrap();
    assert_eq!(manifest_gets(before, &inner.digest), 0);
    assert_eq!(manifest_gets(before, &amd.manifest.digest), 0);

    // Same sizes, still valid JSON, wrong bytes: the inner index now swaps the two
    // platforms' labels, and the amd64 manifest names a layer that does not exist.
    damage_in_place(&ws, &inner.digest, |text| {
        text.replace("\"amd64\"", "\"swap!\"")
            .replace("\"arm64\"", "\"amd64\"")
            .replace("\"swap!\"", "\"arm64\"")
    });
    let layer = amd.layers[0].digest.trim_start_matches("sha256:");
    let last = if layer.ends_with('0') { "1" } else { "0" };
    let wrong_layer = format!("{}{last}", &layer[..63]);
    damage_in_place(&ws, &amd.manifest.digest, |text| {
        text.replace(layer, &wrong_layer)
    });

    let before = proxy.seen().len();
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.entry(&reference)["digest"], amd.manifest.digest);
    for blob in amd.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
    assert!(package.blob(&arm.manifest.digest).is_none());
    assert_eq!(
        manifest_gets(before, &inner.digest),
        1,
        "fetched again once"
    );
    assert_eq!(
        manifest_gets(before, &amd.manifest.digest),
        1,
        "fetched again once"
    );
    assert_eq!(
        std::fs::read(ws.cached_blob(&inner.digest)).unwrap(),
        inner.bytes
    );
    assert_eq!(
        std::fs::read(ws.cached_blob(&amd.manifest.digest)).unwrap(),
        amd.manifest.bytes
    );
}
