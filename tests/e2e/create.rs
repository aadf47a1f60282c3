//! `pkgr create` on every kind of OCI content, checked the way a user would: digests,
//! bytes, and the package's own bookkeeping.

use std::collections::BTreeSet;

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, sha256, Pusher};
use crate::support::package::Package;
use crate::support::proxy::FaultProxy;
use crate::support::registry::TestRegistry;
use crate::support::{package_path, sha256_file, spawn, stderr, Workspace};

/// Every blob's name is the sha256 of its bytes, and checksums.txt covers every
/// other file exactly.
fn assert_self_consistent(package: &Package) {
    for name in package.blob_names() {
        let hex = name.rsplit('/').next().unwrap();
        assert_eq!(
            sha256(&package.files[name]),
            format!("sha256:{hex}"),
            "{name} is misnamed"
        );
    }
    let checksums = String::from_utf8(package.files["checksums.txt"].clone()).unwrap();
    let mut listed = BTreeSet::new();
    for line in checksums.lines() {
        let (hex, path) = line.split_once(' ').unwrap();
        assert_eq!(
            sha256(&package.files[path]),
            format!("sha256:{hex}"),
            "{path}"
        );
        listed.insert(path.to_owned());
    }
    let expected: BTreeSet<String> = package
        .files
        .keys()
        .filter(|n| *n != "checksums.txt")
        .cloned()
        .collect();
    assert_eq!(listed, expected, "checksums.txt must list every other file");
}

#[test]
fn docker_and_oci_images_sharing_a_base_layer() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let base = layer(&[("base/data", &noise(1, 3 << 20))]);
    let docker = pusher.image(
        "team/app-docker",
        "1.0",
        true,
        "amd64",
        &[base.clone(), layer(&[("app", b"docker app")])],
    );
    let oci = pusher.image(
        "team/app-oci",
        "2.0",
        false,
        "amd64",
        &[base.clone(), layer(&[("app", b"oci app")])],
    );
    let ws = Workspace::new();
    let refs = [
        format!("{}/team/app-docker:1.0", registry.addr),
        format!("{}/team/app-oci:2.0", registry.addr),
    ];
    ws.define(&Definition::new("shared").version("1.0.0").images(&refs));
    let path = package_path(&ws.create(&[]));
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        "pkgr-package-shared-amd64-1.0.0.tar.zst"
    );

    let package = Package::read(&path);
    assert_self_consistent(&package);
    assert_eq!(
        &package.order[..4],
        [
            "pkgr.yaml",
            "checksums.txt",
            "images/oci-layout",
            "images/index.json"
        ],
        "metadata must come first"
    );
    for (reference, image) in refs.iter().zip([&docker, &oci]) {
        let entry = package.entry(reference);
        assert_eq!(entry["digest"], image.manifest.digest, "{reference}");
        assert_eq!(entry["mediaType"], image.manifest.media_type);
        assert_eq!(
            entry["annotations"]["org.opencontainers.image.base.name"],
            *reference
        );
        for blob in image.all() {
            assert_eq!(
                package.blob(&blob.digest),
                Some(&blob.bytes),
                "{}",
                blob.digest
            );
        }
    }
    // The shared base layer is stored once: 2 manifests + 2 configs + 3 distinct layers.
    assert_eq!(package.blob_names().len(), 7);

    let built = String::from_utf8(package.files["pkgr.yaml"].clone()).unwrap();
    assert!(built.contains(&docker.manifest.digest), "{built}");
    assert!(built.contains("kind: container image"), "{built}");
}

#[test]
fn helm_chart_signature_and_empty_config_artifact_are_byte_exact() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let chart = pusher.helm_chart("charts/demo", "0.1.0");
    let signature = pusher.cosign_signature("app", &app.manifest);
    let sbom = pusher.empty_config_artifact("app-sbom", "v1", br#"{"spdxVersion":"SPDX-2.3"}"#);

    let sig_tag = format!("{}.sig", app.manifest.digest.replace(':', "-"));
    let refs = [
        format!("{}/charts/demo:0.1.0", registry.addr),
        format!("{}/app:{sig_tag}", registry.addr),
        format!("{}/app-sbom:v1", registry.addr),
    ];
    let ws = Workspace::new();
    ws.define(&Definition::new("artifacts").version("1.0.0").images(&refs));
    let package = Package::read(&package_path(&ws.create(&["--uncompressed"])));
    assert_self_consistent(&package);

    for (reference, content) in refs.iter().zip([&chart, &signature, &sbom]) {
        assert_eq!(package.entry(reference)["digest"], content.manifest.digest);
        for blob in content.all() {
            assert_eq!(
                package.blob(&blob.digest),
                Some(&blob.bytes),
                "{reference}: {} must be carried byte-exact",
                blob.media_type
            );
        }
    }
    let built = String::from_utf8(package.files["pkgr.yaml"].clone()).unwrap();
    for kind in ["kind: Helm chart", "kind: signature", "kind: artifact"] {
        assert!(built.contains(kind), "{kind} missing from\n{built}");
    }
}

#[test]
fn digest_only_reference() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let image = pusher.image("pinned", "latest", false, "amd64", &[layer(&[("x", b"x")])]);
    let reference = format!("{}/pinned@{}", registry.addr, image.manifest.digest);
    let ws = Workspace::new();
    ws.define(&Definition::new("pinned").version("1.0.0").image(&reference));
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.entry(&reference)["digest"], image.manifest.digest);
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
}

fn multi_arch(
    pusher: &Pusher,
    repo: &str,
) -> (
    crate::support::images::Image,
    crate::support::images::Image,
    crate::support::images::Pushed,
) {
    let amd = pusher.image(repo, "", false, "amd64", &[layer(&[("arch", b"amd64")])]);
    let arm = pusher.image(repo, "", false, "arm64", &[layer(&[("arch", b"arm64")])]);
    let index = pusher.index(
        repo,
        "3.0",
        false,
        &[("linux/amd64", &amd), ("linux/arm64/v8", &arm)],
    );
    (amd, arm, index)
}

#[test]
fn tag_on_an_index_picks_the_package_architecture() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let (amd, arm, _) = multi_arch(&pusher, "multi");
    let reference = format!("{}/multi:3.0", registry.addr);
    let ws = Workspace::new();
    ws.define(&Definition::new("multi").version("1.0.0").image(&reference));

    // --architecture overrides the file's amd64.
    let path = package_path(&ws.create(&["--architecture", "arm64"]));
    assert!(path
        .to_string_lossy()
        .ends_with("pkgr-package-multi-arm64-1.0.0.tar.zst"));
    let package = Package::read(&path);
    let entry = package.entry(&reference);
    assert_eq!(entry["digest"], arm.manifest.digest);
    assert_eq!(entry["platform"]["architecture"], "arm64");
    assert!(package.blob(&arm.layers[0].digest).is_some());
    assert!(
        package.blob(&amd.layers[0].digest).is_none(),
        "only one platform is packaged"
    );
}

#[test]
fn index_digest_is_refused_with_a_listing() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let (amd, arm, index) = multi_arch(&pusher, "multi");
    let reference = format!("{}/multi@{}", registry.addr, index.digest);
    let ws = Workspace::new();
    ws.define(&Definition::new("multi").version("1.0.0").image(&reference));
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is an image index of 2 platforms"), "{err}");
    let amd_line = format!(
        "{}/multi@{}   <- matches this package",
        registry.addr, amd.manifest.digest
    );
    assert!(err.contains(&amd_line), "{err}");
    assert!(
        err.contains(&format!(
            "linux/arm64/v8  {}/multi@{}\n",
            registry.addr, arm.manifest.digest
        )),
        "{err}"
    );
    assert!(err.contains("--allow-index"), "{err}");
    assert!(
        ws.output_files().is_empty(),
        "left behind: {:?}",
        ws.output_files()
    );
}

#[test]
fn allow_index_keeps_every_platform() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let (amd, arm, index) = multi_arch(&pusher, "multi");
    let reference = format!("{}/multi@{}", registry.addr, index.digest);
    let ws = Workspace::new();
    ws.define(&Definition::new("multi").version("1.0.0").image(&reference));
    let package = Package::read(&package_path(&ws.create(&["--allow-index"])));
    assert_self_consistent(&package);
    let entry = package.entry(&reference);
    assert_eq!(entry["digest"], index.digest);
    assert_eq!(entry["mediaType"], index.media_type);
    assert_eq!(package.blob(&index.digest), Some(&index.bytes));
    for image in [&amd, &arm] {
        for blob in image.all() {
            assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
        }
    }
}

#[test]
fn the_same_definition_gives_byte_identical_packages() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    pusher.image(
        "a",
        "1",
        true,
        "amd64",
        &[layer(&[("a", &noise(7, 1 << 20))])],
    );
    pusher.helm_chart("chart", "1.2.3");
    // A tag on an index: the index itself is fetched but must not ride along.
    let (_, _, index) = multi_arch(&pusher, "multi");
    let refs = [
        format!("{}/a:1", registry.addr),
        format!("{}/chart:1.2.3", registry.addr),
        format!("{}/multi:3.0", registry.addr),
    ];

    let first = Workspace::new();
    first.define(&Definition::new("same").version("1.0.0").images(&refs));
    let second = Workspace::new();
    second.define(&Definition::new("same").version("1.0.0").images(&refs));
    for extra in [&[][..], &["--uncompressed"][..]] {
        let one = package_path(&first.create(extra));
        // A different cache state (none at all) must not change a byte.
        let two =
            package_path(&second.create(&[extra, &["--no-cache", "--concurrency", "1"]].concat()));
        assert_eq!(sha256_file(&one), sha256_file(&two), "{extra:?}");
        let package = Package::read(&two);
        assert_self_consistent(&package);
        assert!(
            package.blob(&index.digest).is_none(),
            "an unreferenced index was packaged"
        );
    }
}

#[test]
fn two_processes_sharing_one_cache_both_succeed() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let base = layer(&[("base", &noise(3, 4 << 20))]);
    let mut refs = Vec::new();
    for i in 0..4 {
        let top = layer(&[("top", &noise(100 + i, 1 << 20))]);
        pusher.image(
            &format!("svc{i}"),
            "1",
            i % 2 == 0,
            "amd64",
            &[base.clone(), top],
        );
        refs.push(format!("{}/svc{i}:1", registry.addr));
    }
    let one = Workspace::new();
    let two = Workspace::new();
    let definition = Definition::new("racing").version("1.0.0").images(&refs);
    one.define(&definition);
    two.define(&definition);
    let shared_cache = one.path("cache");
    let spawn = |ws: &Workspace| {
        spawn(
            ws.create_command(&["--uncompressed"])
                .env("PKGR_CACHE_DIR", &shared_cache),
        )
    };
    let (a, b) = (spawn(&one), spawn(&two));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (pa, pb) = (package_path(&a), package_path(&b));
    assert_eq!(sha256_file(&pa), sha256_file(&pb));

    let blobs = shared_cache.join("blobs-v1").join("sha256");
    let mut count = 0;
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            sha256_file(&entry.path()),
            format!("sha256:{name}"),
            "bad cache entry"
        );
        count += 1;
    }
    // 4 manifests, 4 configs, 1 shared base and 4 top layers.
    assert_eq!(count, 13);
}

#[test]
fn a_cache_on_another_filesystem_still_gives_a_whole_package() {
    // Hard links cannot cross filesystems; /dev/shm is a tmpfs, the output is not.
    let shm = std::path::Path::new("/dev/shm");
    assert!(
        shm.is_dir(),
        "this test needs /dev/shm (a tmpfs) to put the cache on"
    );
    let cache = tempfile::tempdir_in(shm).unwrap();
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("a", &noise(3, 300_000))])],
    );
    let ws = Workspace::new();
    let reference = format!("{}/app:1", registry.addr);
    ws.define(&Definition::new("copied").version("1.0.0").image(&reference));
    let path = package_path(&ws.create(&["--cache", cache.path().to_str().unwrap()]));
    let package = Package::read(&path);
    assert_self_consistent(&package);
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
}

#[test]
fn an_images_blobs_are_downloaded_largest_first() {
    let registry = TestRegistry::start();
    // Layers listed smallest first, and a config smaller than all of them.
    let sizes = [20_000, 300_000, 80_000, 1_000_000];
    let layers: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(n, &size)| layer(&[("data", &noise(40 + n as u64, size))]))
        .collect();
    let image = Pusher::new(&registry.addr).image("app", "1", false, "amd64", &layers);
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let ws = Workspace::new();
    ws.define(
        &Definition::new("order")
            .version("1.0.0")
            .image(format!("{}/app:1", proxy.addr)),
    );
    package_path(&ws.create(&["--no-cache", "--concurrency", "1"]));

    let mut expected: Vec<&crate::support::images::Pushed> =
        image.layers.iter().chain([&image.config]).collect();
    expected.sort_by_key(|b| std::cmp::Reverse(b.bytes.len()));
    let expected: Vec<&str> = expected.iter().map(|b| b.digest.as_str()).collect();
    let requested: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/"))
        .map(|s| s.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(requested, expected, "one download at a time, largest first");
}

#[test]
fn create_json_gives_the_package_its_size_and_sha256_and_every_image() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let web = pusher.image("web", "1", false, "amd64", &[layer(&[("w", b"web")])]);
    let amd = pusher.image("multi", "", false, "amd64", &[layer(&[("m", b"amd")])]);
    let arm = pusher.image("multi", "", false, "arm64", &[layer(&[("m", b"arm")])]);
    pusher.index(
        "multi",
        "2",
        false,
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let ws = Workspace::new();
    let references = [
        format!("{}/web:1", registry.addr),
        format!("{}/multi:2", registry.addr),
    ];
    ws.define(&Definition::new("described").images(&references));

    let out = ws.create(&["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "create --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(doc["schemaVersion"], 1);
    let package = std::path::PathBuf::from(doc["package"].as_str().unwrap());
    assert!(package.is_file(), "{doc:#}");
    assert_eq!(doc["split"], false);
    assert_eq!(doc["bytes"], std::fs::metadata(&package).unwrap().len());
    assert_eq!(
        doc["sha256"],
        sha256_file(&package).trim_start_matches("sha256:")
    );
    let images: Vec<(String, String, String)> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let field = |name: &str| i[name].as_str().unwrap().to_owned();
            (field("reference"), field("digest"), field("platform"))
        })
        .collect();
    assert_eq!(
        images,
        [
            (
                references[0].clone(),
                web.manifest.digest.clone(),
                "linux/amd64".to_owned()
            ),
            (
                references[1].clone(),
                amd.manifest.digest.clone(),
                "linux/amd64".to_owned()
            ),
        ]
    );
    let closing = stderr(&out);
    assert!(
        closing
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("created {} (", package.display())),
        "{closing}"
    );
}
