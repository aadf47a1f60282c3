//! Index resolution as the spec allows it: indexes that hold indexes, and the
//! attestation manifests buildx adds beside each platform.

use crate::support::images::{layer, Image, Pushed, Pusher};
use crate::support::package::Package;
use crate::support::registry::TestRegistry;
use crate::support::{package_path, stderr, Workspace};

fn definition(ws: &Workspace, reference: &str) {
    ws.write_definition(&format!(
        "kind: PkgrPackage\nmetadata:\n  name: idx\n  architecture: amd64\ncomponents:\n  - name: a\n    images:\n      - {reference}\n"
    ));
}

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
    definition(&ws, &format!("{}/app@{}", registry.addr, index.digest));
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
    definition(&ws, &reference);
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.entry(&reference)["digest"], amd.manifest.digest);
    assert_eq!(
        package.blob_names().len(),
        3,
        "the amd64 manifest, config and layer only"
    );

    let ws = Workspace::new();
    definition(&ws, &reference);
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
    definition(&ws, &reference);
    let package = Package::read(&package_path(&ws.create(&["--architecture", "arm64"])));
    let entry = package.entry(&reference);
    assert_eq!(entry["digest"], arm.manifest.digest);
    assert_eq!(entry["platform"]["architecture"], "arm64");
    assert!(package.blob(&amd.layers[0].digest).is_none());
    for blob in arm.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }

    let ws = Workspace::new();
    definition(&ws, &reference);
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
    definition(&ws, &reference);
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
