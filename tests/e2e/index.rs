//! Index resolution as the spec allows it: indexes that hold indexes, the attestation
//! manifests buildx adds beside each platform, and `platformFromIndex`, which takes the
//! package's platform from an index that a reference pins.

use crate::support::definition::Definition;
use crate::support::images::{layer, Image, Pushed, Pusher};
use crate::support::package::Package;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::{package_path, stderr, stdout, Workspace};

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

/// `app@<index>` with `platformFromIndex: true`, in the definition's map form.
fn from_index_definition(reference: &str) -> String {
    format!(
        "kind: PkgrPackage\nmetadata:\n  name: idx\n  architecture: amd64\ncomponents:\n  - name: a\n    images:\n      - image: {reference}\n        platformFromIndex: true\n"
    )
}

/// `app:1` is an index of amd64 and arm64.
fn two_platforms(pusher: &Pusher) -> (Pushed, Image, Image) {
    let amd = pusher.image("app", "", false, "amd64", &[layer(&[("p", b"amd64")])]);
    let arm = pusher.image("app", "", false, "arm64", &[layer(&[("p", b"arm64")])]);
    let index = pusher.index(
        "app",
        "1",
        false,
        &[("linux/arm64", &arm), ("linux/amd64", &amd)],
    );
    (index, amd, arm)
}

#[test]
fn a_pinned_index_with_platform_from_index_packages_the_platform_and_records_the_index() {
    let registry = TestRegistry::start();
    let (index, amd, arm) = two_platforms(&Pusher::new(&registry.addr));
    let reference = format!("{}/app@{}", registry.addr, index.digest);
    let ws = Workspace::new();
    ws.write_definition(&from_index_definition(&reference));
    let out = ws.create(&["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["images"][0]["digest"], amd.manifest.digest);
    assert_eq!(made["images"][0]["fromIndex"], index.digest);
    let package_file = std::path::PathBuf::from(made["package"].as_str().unwrap());
    let package = Package::read(&package_file);

    let entry = package.entry(&reference);
    assert_eq!(entry["digest"], amd.manifest.digest);
    assert_eq!(entry["platform"]["architecture"], "amd64");
    assert_eq!(entry["annotations"]["dev.pkgr.index"], index.digest);
    for blob in amd.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
    for digest in [&index.digest, &arm.manifest.digest, &arm.layers[0].digest] {
        assert!(package.blob(digest).is_none(), "{digest} is packaged");
    }

    let out = ws.inspect(&package_file, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "\nplatforms taken from indexes:\n  {reference}  linux/amd64 from index {}\n",
            index.digest
        )),
        "{text}"
    );
    let out = ws.inspect(&package_file, &["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["images"][0]["digest"], amd.manifest.digest);
    assert_eq!(json["images"][0]["fromIndex"], index.digest);

    // The index is not in the package: the image goes by its own digest.
    let target = TestRegistry::start();
    let out = ws.push(&package_file, &target.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed = Pusher::new(&target.addr).get_manifest("app", &amd.manifest.digest);
    assert_eq!(pushed, amd.manifest.bytes);
}

#[test]
fn the_option_takes_every_entry_platform_from_its_index_pinned_or_tagged() {
    let registry = TestRegistry::start();
    let (index, amd, _) = two_platforms(&Pusher::new(&registry.addr));
    let pinned = format!("{}/app@{}", registry.addr, index.digest);
    let tagged = format!("{}/app:1", registry.addr);
    let ws = Workspace::new();
    ws.define(&Definition::new("idx").images([&pinned, &tagged]));
    let package = Package::read(&package_path(&ws.create(&["--platform-from-index"])));
    for reference in [&pinned, &tagged] {
        let entry = package.entry(reference);
        assert_eq!(entry["digest"], amd.manifest.digest);
        assert_eq!(entry["annotations"]["dev.pkgr.index"], index.digest);
    }

    // Without it, the tag takes its platform as before, with nothing recorded.
    let ws = Workspace::new();
    ws.define(&Definition::new("idx").image(&tagged));
    let package = Package::read(&package_path(&ws.create(&[])));
    let entry = package.entry(&tagged);
    assert_eq!(entry["digest"], amd.manifest.digest);
    assert!(entry["annotations"].get("dev.pkgr.index").is_none());

    let out = ws.create(&["--platform-from-index", "--allow-index"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_pinned_index_served_with_other_bytes_is_refused_and_its_child_never_fetched() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let (index, amd, _) = two_platforms(&pusher);
    // Another amd64 image, and an index that lists it instead.
    let other = pusher.image("app", "", false, "amd64", &[layer(&[("p", b"other")])]);
    let swapped = pusher.index("app", "2", false, &[("linux/amd64", &other)]);
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(
            format!("GET /v2/app/manifests/{}", index.digest),
            Fault::Answer(200, String::from_utf8(swapped.bytes.clone()).unwrap()),
        )],
    );
    let reference = format!("{}/app@{}", proxy.addr, index.digest);
    let ws = Workspace::new();
    ws.write_definition(&from_index_definition(&reference));
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the registry answered {reference} with content whose digest is not {}",
            index.digest
        )),
        "{err}"
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    let fetched: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| {
            s.path.contains(&other.manifest.digest) || s.path.contains(&amd.manifest.digest)
        })
        .collect();
    assert!(fetched.is_empty(), "{fetched:?}");
}

#[test]
fn a_pinned_index_without_the_package_platform_is_refused_with_its_platforms() {
    let registry = TestRegistry::start();
    let (index, _, _) = two_platforms(&Pusher::new(&registry.addr));
    let reference = format!("{}/app@{}", registry.addr, index.digest);
    let ws = Workspace::new();
    ws.write_definition(&from_index_definition(&reference));
    let out = ws.create(&["--architecture", "s390x"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: {reference} has no linux/s390x image (it has linux/arm64, linux/amd64)"
        )),
        "{err}"
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
}

#[test]
fn a_bad_image_map_is_a_definition_fault_at_its_line_and_column() {
    let ws = Workspace::new();
    let head = "kind: PkgrPackage\nmetadata:\n  name: idx\ncomponents:\n  - name: a\n    images:\n";
    let path = ws.path("def").join("pkgr.yaml").display().to_string();
    for (entry, fault) in [
        (
            "      - image: app:1\n        platform: amd64\n",
            "8:9: components[0].images[0]: unknown field `platform`, expected `image` or `platformFromIndex`",
        ),
        (
            "      - image: app:1\n        platformFromIndex: 1\n",
            "8:28: components[0].images[0].platformFromIndex: invalid type: integer `1`, expected a boolean",
        ),
    ] {
        ws.write_definition(&format!("{head}{entry}"));
        let out = ws.create(&[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with(&format!("error: {path}:{fault}\n")), "{err}");
        assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    }
}
