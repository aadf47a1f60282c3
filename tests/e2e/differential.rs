//! `pkgr create --differential BASE`: last month's package as the base, this month's
//! package leaving out every config and layer the base holds; `inspect` naming the
//! base, `push` checking the target before anything is sent, and bad bases refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Image, Pusher};
use crate::support::package::Package;
use crate::support::registry::TestRegistry;
use crate::support::tarfix::{read_entries, write_raw_tar, RawEntry};
use crate::support::{package_path, sha256_file, stderr, stdout, Workspace};

/// Last month (web:1, api:1) and this month (web:2, whose top layer alone changed;
/// api:1 unchanged; db:1, new, on last month's base layer) in one source registry.
struct Months {
    source: TestRegistry,
    ws: Workspace,
    base: PathBuf,
    web1: Image,
    web2: Image,
    api1: Image,
    db1: Image,
}

fn months() -> Months {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let shared = layer(&[("base", &noise(7, 3 << 20))]);
    let web1 = pusher.image(
        "app/web",
        "1",
        false,
        "amd64",
        &[shared.clone(), layer(&[("web", &noise(1, 64 << 10))])],
    );
    let web2 = pusher.image(
        "app/web",
        "2",
        false,
        "amd64",
        &[shared.clone(), layer(&[("web", &noise(2, 64 << 10))])],
    );
    let api1 = pusher.image(
        "app/api",
        "1",
        true,
        "amd64",
        &[shared.clone(), layer(&[("api", &noise(3, 1 << 20))])],
    );
    let db1 = pusher.image(
        "app/db",
        "1",
        false,
        "amd64",
        &[shared, layer(&[("db", &noise(4, 32 << 10))])],
    );
    let ws = Workspace::new();
    ws.define(&last_month(&source.addr));
    let base = package_path(&ws.create(&[]));
    ws.define(&this_month(&source.addr));
    Months {
        source,
        ws,
        base,
        web1,
        web2,
        api1,
        db1,
    }
}

fn last_month(addr: &str) -> Definition {
    Definition::new("monthly").version("2026.11").component(
        "apps",
        [format!("{addr}/app/web:1"), format!("{addr}/app/api:1")],
    )
}

fn this_month(addr: &str) -> Definition {
    Definition::new("monthly").version("2026.12").component(
        "apps",
        [
            format!("{addr}/app/web:2"),
            format!("{addr}/app/api:1"),
            format!("{addr}/app/db:1"),
        ],
    )
}

fn differential(m: &Months) -> PathBuf {
    package_path(&m.ws.create(&["--differential", m.base.to_str().unwrap()]))
}

fn failed(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

/// The configs and layers a package holds, by digest.
fn configs_and_layers(package: &Path) -> BTreeSet<String> {
    let read = Package::read(package);
    let manifests: BTreeSet<String> = manifest_digests(&read);
    read.blob_names()
        .into_iter()
        .map(|name| format!("sha256:{}", name.rsplit('/').next().unwrap()))
        .filter(|digest| !manifests.contains(digest))
        .collect()
}

fn manifest_digests(read: &Package) -> BTreeSet<String> {
    read.index()
        .iter()
        .map(|entry| entry["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn leaves_out_what_the_base_holds_and_keeps_every_manifest() {
    let m = months();
    let package = differential(&m);
    let full = package_path(
        &m.ws
            .create_command_into(&m.ws.path("full"), &[])
            .output()
            .unwrap(),
    );

    // Only what last month did not carry: web:2's config and new top layer, and db's.
    let expected: BTreeSet<String> = [
        &m.web2.config,
        &m.web2.layers[1],
        &m.db1.config,
        &m.db1.layers[1],
    ]
    .iter()
    .map(|p| p.digest.clone())
    .collect();
    assert_eq!(configs_and_layers(&package), expected);
    let read = Package::read(&package);
    for image in [&m.web2, &m.api1, &m.db1] {
        assert_eq!(
            read.blob(&image.manifest.digest),
            Some(&image.manifest.bytes),
            "every manifest is still in the package"
        );
    }
    let (small, whole) = (
        std::fs::metadata(&package).unwrap().len(),
        std::fs::metadata(&full).unwrap().len(),
    );
    assert!(small * 10 < whole, "{small} bytes against {whole} in full");

    // The definition records the base and what was left to it.
    let yaml: serde_json::Value = serde_yaml_ng::from_slice(&read.files["pkgr.yaml"]).unwrap();
    let base = &yaml["differential"]["base"];
    assert_eq!(base["name"], "monthly");
    assert_eq!(base["version"], "2026.11");
    assert_eq!(base["architecture"], "amd64");
    assert_eq!(base["sha256"], sha256_file(&m.base));
    let left_out: BTreeSet<&str> = yaml["differential"]["leftOut"]
        .as_array()
        .unwrap()
        .iter()
        .map(|blob| blob["digest"].as_str().unwrap())
        .collect();
    let shared = m.web1.layers[0].digest.as_str();
    assert_eq!(
        left_out,
        BTreeSet::from([
            shared,
            m.api1.config.digest.as_str(),
            m.api1.layers[1].digest.as_str()
        ])
    );
    // The full package of the same definition has no such key.
    assert!(
        !String::from_utf8_lossy(&Package::read(&full).files["pkgr.yaml"]).contains("differential")
    );
}

#[test]
fn left_out_blobs_are_never_downloaded() {
    let m = months();
    // A fresh cache: only what the package carries may be fetched into it.
    let empty_cache = m.ws.path("fresh-cache");
    let out =
        m.ws.create_command(&["--differential", m.base.to_str().unwrap()])
            .env("PKGR_CACHE_DIR", &empty_cache)
            .output()
            .unwrap();
    package_path(&out);
    let shared = &m.web1.layers[0].digest;
    let cached = empty_cache
        .join("blobs-v1/sha256")
        .join(shared.trim_start_matches("sha256:"));
    assert!(!cached.exists(), "the base's layer was downloaded");
}

#[test]
fn inspect_names_the_base_and_verify_lists_what_is_left_out() {
    let m = months();
    let package = differential(&m);
    let left_out_bytes = (m.web1.layers[0].bytes.len()
        + m.api1.config.bytes.len()
        + m.api1.layers[1].bytes.len()) as u64;

    let out = m.ws.inspect(&package, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = format!(
        "differential against monthly 2026.11 ({}): 3 blobs, {} left out",
        sha256_file(&m.base),
        pkgr::progress::human_bytes(left_out_bytes)
    );
    assert!(stdout(&out).contains(&line), "{}", stdout(&out));

    let out = m.ws.inspect(&package, &["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let differential = &json["differential"];
    assert_eq!(differential["base"]["name"], "monthly");
    assert_eq!(differential["base"]["version"], "2026.11");
    assert_eq!(differential["base"]["sha256"], sha256_file(&m.base));
    assert_eq!(differential["leftOutBlobs"], 3);
    assert_eq!(differential["leftOutBytes"], left_out_bytes);

    let out = m.ws.inspect(&package, &["--verify"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("verified: "), "{text}");
    assert!(
        text.contains("left out, expected on the target (the base holds them): 3 blobs"),
        "{text}"
    );
    assert!(text.contains(&m.web1.layers[0].digest), "{text}");
    assert!(!text.contains("missing"), "{text}");

    let out = m.ws.inspect(&package, &["--verify", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verification"]["ok"], true);
    assert_eq!(json["verification"]["leftOut"].as_array().unwrap().len(), 3);
}

#[test]
fn pushed_after_its_base_every_image_arrives() {
    let m = months();
    let package = differential(&m);
    let target = TestRegistry::start();
    let out = m.ws.push(&m.base, &target.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = m.ws.push(&package, &target.addr, &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with("pushed 3 of 3 images"), "{summary}");
    // db:1's base layer was in app/web and app/api only: mounted from there.
    assert!(summary.contains("1 mounted"), "{summary}");

    let pusher = Pusher::new(&target.addr);
    for (repo, tag, image) in [
        ("app/web", "2", &m.web2),
        ("app/api", "1", &m.api1),
        ("app/db", "1", &m.db1),
    ] {
        assert_eq!(
            pusher.get_manifest(repo, tag),
            image.manifest.bytes,
            "{repo}:{tag}"
        );
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            assert_eq!(pusher.get_blob(repo, &blob.digest), blob.bytes, "{repo}");
        }
    }
    drop(m.source);
}

#[test]
fn a_left_out_blob_is_mounted_from_another_repository_of_the_package() {
    let m = months();
    // Last month: api:1 alone. This month: web:2, on the base layer that the target
    // holds only under app/api, and a chart in app/api that does not need that layer.
    Pusher::new(&m.source.addr).helm_chart("app/api", "chart-1");
    m.ws.define(
        &Definition::new("narrow")
            .version("1")
            .component("apps", [format!("{}/app/api:1", m.source.addr)]),
    );
    let base = package_path(
        &m.ws
            .create_command_into(&m.ws.path("narrow"), &[])
            .output()
            .unwrap(),
    );
    m.ws.define(&Definition::new("narrow").version("2").component(
        "apps",
        [
            format!("{}/app/web:2", m.source.addr),
            format!("{}/app/api:chart-1", m.source.addr),
        ],
    ));
    let package = package_path(
        &m.ws
            .create_command_into(
                &m.ws.path("narrow"),
                &["--differential", base.to_str().unwrap()],
            )
            .output()
            .unwrap(),
    );
    let target = TestRegistry::start();
    assert!(m.ws.push(&base, &target.addr, &[]).status.success());
    let out = m.ws.push(&package, &target.addr, &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("1 mounted"), "{}", stdout(&out));
    let pusher = Pusher::new(&target.addr);
    assert_eq!(pusher.get_manifest("app/web", "2"), m.web2.manifest.bytes);
    let shared = &m.web2.layers[0];
    assert_eq!(pusher.get_blob("app/web", &shared.digest), shared.bytes);
}

#[test]
fn pushed_where_the_base_never_went_nothing_is_sent() {
    let m = months();
    let package = differential(&m);
    let target = TestRegistry::start();
    let err = failed(&m.ws.push(&package, &target.addr, &[]));
    assert!(
        err.contains("that this differential package leaves to its base package monthly 2026.11"),
        "{err}"
    );
    assert!(err.contains("the target lacks 3 blob(s)"), "{err}");
    assert!(err.contains("/app/web:2"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert_eq!(target.catalog(), Vec::<String>::new(), "something was sent");
}

#[test]
fn a_split_base_is_named_by_the_sha256_its_first_part_declares() {
    let m = months();
    let bytes = std::fs::read(&m.base).unwrap();
    let first = m.ws.path("split/base.tar.zst.part000");
    std::fs::create_dir_all(first.parent().unwrap()).unwrap();
    let half = bytes.len() / 2;
    std::fs::write(m.ws.path("split/base.tar.zst.part001"), &bytes[..half]).unwrap();
    std::fs::write(m.ws.path("split/base.tar.zst.part002"), &bytes[half..]).unwrap();
    let declared = sha256_file(&m.base);
    std::fs::write(
        &first,
        format!(
            r#"{{"sha256Sum":"{}","bytes":{},"count":2}}"#,
            declared.trim_start_matches("sha256:"),
            bytes.len()
        ),
    )
    .unwrap();
    let package = package_path(&m.ws.create(&["--differential", first.to_str().unwrap()]));
    let json: serde_json::Value =
        serde_json::from_slice(&m.ws.inspect(&package, &["--json"]).stdout).unwrap();
    assert_eq!(json["differential"]["base"]["sha256"], declared);
    assert_eq!(json["differential"]["leftOutBlobs"], 3);
}

#[test]
fn a_zarf_base_is_read_like_a_pkgr_one() {
    let m = months();
    // Last month's package as Zarf lays one out: zarf.yaml in place of pkgr.yaml.
    let zarf_yaml = "kind: ZarfPackageConfig\nmetadata:\n  name: monthly-zarf\n  version: 0.0.11\n  architecture: amd64\ncomponents:\n  - name: apps\n    images: []\n";
    let mut entries: Vec<RawEntry> = read_entries(&m.base)
        .into_iter()
        .filter(|entry| entry.name != b"pkgr.yaml")
        .collect();
    for entry in &mut entries {
        if entry.name == b"checksums.txt" {
            let text = String::from_utf8(entry.data.clone()).unwrap();
            let kept: String = text
                .lines()
                .filter(|line| !line.ends_with(" pkgr.yaml"))
                .map(|line| format!("{line}\n"))
                .collect();
            entry.data = kept.into_bytes();
        }
    }
    entries.insert(0, RawEntry::file("zarf.yaml", zarf_yaml.as_bytes()));
    let zarf = m.ws.path("zarf-package-monthly-zarf-amd64-0.0.11.tar");
    write_raw_tar(&zarf, &entries);

    let package = package_path(&m.ws.create(&["--differential", zarf.to_str().unwrap()]));
    let json: serde_json::Value =
        serde_json::from_slice(&m.ws.inspect(&package, &["--json"]).stdout).unwrap();
    let differential = &json["differential"];
    assert_eq!(differential["base"]["name"], "monthly-zarf");
    assert_eq!(differential["base"]["version"], "0.0.11");
    assert_eq!(differential["base"]["sha256"], sha256_file(&zarf));
    assert_eq!(differential["leftOutBlobs"], 3);
    let expected: BTreeSet<String> = [
        &m.web2.config,
        &m.web2.layers[1],
        &m.db1.config,
        &m.db1.layers[1],
    ]
    .iter()
    .map(|p| p.digest.clone())
    .collect();
    assert_eq!(configs_and_layers(&package), expected);
}

/// Runs a create that must fail: exit 1, one sentence, and nothing in the output.
fn refused(m: &Months, extra: &[&str]) -> String {
    let output = m.ws.path("refused");
    let out = m.ws.create_command_into(&output, extra).output().unwrap();
    let err = failed(&out);
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    let written = std::fs::read_dir(&output).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 0, "something was written: {err}");
    err
}

#[test]
fn a_base_that_is_not_a_package_is_refused() {
    let m = months();
    let not_a_package = m.ws.path("notes.tar.zst");
    std::fs::write(
        &not_a_package,
        "these are not the packages you are looking for\n",
    )
    .unwrap();
    let err = refused(&m, &["--differential", not_a_package.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "error: the base package {} cannot be read as a pkgr or Zarf package",
            not_a_package.display()
        )),
        "{err}"
    );
}

#[test]
fn a_damaged_base_is_refused() {
    let m = months();
    // An uncompressed copy of last month, with one byte of its shared layer changed.
    m.ws.define(&last_month(&m.source.addr));
    let plain = package_path(
        &m.ws
            .create_command_into(&m.ws.path("plain"), &["--uncompressed"])
            .output()
            .unwrap(),
    );
    m.ws.define(&this_month(&m.source.addr));
    let mut bytes = std::fs::read(&plain).unwrap();
    let layer = &m.web1.layers[0].bytes;
    let at = bytes
        .windows(64)
        .position(|w| w == &layer[1000..1064])
        .expect("the layer is in the tar as it is");
    bytes[at] ^= 0xff;
    let damaged = m.ws.path("damaged.tar");
    std::fs::write(&damaged, bytes).unwrap();
    let err = refused(&m, &["--differential", damaged.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "error: the base package {} does not verify: ",
            damaged.display()
        )),
        "{err}"
    );
    assert!(err.contains(&m.web1.layers[0].digest[7..]), "{err}");
}

#[test]
fn a_base_of_another_architecture_is_refused_unless_allowed() {
    let m = months();
    let base = m.base.to_str().unwrap();
    let err = refused(&m, &["--differential", base, "--architecture", "arm64"]);
    assert!(
        err.contains(&format!(
            "error: the base package {base} is for amd64, but this package is for arm64"
        )),
        "{err}"
    );
    assert!(err.contains("--allow-other-architecture"), "{err}");

    let out = m.ws.create(&[
        "--differential",
        base,
        "--architecture",
        "arm64",
        "--allow-other-architecture",
    ]);
    let package = package_path(&out);
    let json: serde_json::Value =
        serde_json::from_slice(&m.ws.inspect(&package, &["--json"]).stdout).unwrap();
    assert_eq!(json["differential"]["base"]["architecture"], "amd64");
    assert_eq!(json["metadata"]["architecture"], "arm64");
}
