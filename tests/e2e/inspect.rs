//! `pkgr inspect` and the package reader: stable output, tamper detection (which also
//! stops push before it sends anything), hostile tars, and Zarf packages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::definition::Definition;
use crate::support::images::{layer, sha256, Pusher};
use crate::support::registry::TestRegistry;
use crate::support::tarfix::{read_entries, write_raw_tar, RawEntry};
use crate::support::{package_path, run_within, stderr, stdout, Workspace};

fn small_package(ws: &Workspace, registry: &TestRegistry) -> PathBuf {
    let pusher = Pusher::new(&registry.addr);
    pusher.image("app", "1", false, "amd64", &[layer(&[("a", b"app")])]);
    pusher.helm_chart("chart", "0.2.0");
    ws.define(
        &Definition::new("small")
            .version("0.1.0")
            .description("two things")
            .component("app", [format!("{}/app:1", registry.addr)])
            .component("chart", [format!("{}/chart:0.2.0", registry.addr)]),
    );
    package_path(&ws.create(&["--uncompressed"]))
}

#[test]
fn json_output_of_a_created_package_is_complete() {
    // Exact output is pinned by the snapshots; this checks a package create wrote.
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let one = ws.inspect(&package, &["--json"]);
    assert!(one.status.success(), "{}", stderr(&one));
    let value: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(value["metadata"]["name"], "small");
    assert_eq!(value["components"][1]["name"], "chart");
    let images = value["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["reference"], format!("{}/app:1", registry.addr));
    assert_eq!(images[0]["kind"], "container-image");
    assert_eq!(images[0]["platform"], "linux/amd64");
    assert_eq!(
        images[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(images[1]["kind"], "helm-chart");
    for image in images {
        assert!(image["digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(image["size"].as_u64().unwrap() > 0);
    }

    let human = ws.inspect(&package, &["--verify"]);
    let text = stdout(&human);
    assert!(human.status.success(), "{}", stderr(&human));
    assert!(text.contains("pkgr package small 0.1.0 (amd64)"), "{text}");
    assert!(text.contains("Helm chart"), "{text}");
    assert!(text.contains("verified: "), "{text}");
}

/// Tampered copies of a good package: (what was done, what --verify must say).
fn tampered(package: &Path, dir: &Path) -> Vec<(PathBuf, String)> {
    let entries = read_entries(package);
    let blob = entries
        .iter()
        .position(|e| e.name.starts_with(b"images/blobs/") && e.data.len() > 100)
        .unwrap();
    let blob_name = String::from_utf8(entries[blob].name.clone()).unwrap();
    let mut cases = Vec::new();

    let mut flipped = read_entries(package);
    flipped[blob].data[50] ^= 1;
    let path = dir.join("flipped.tar");
    write_raw_tar(&path, &flipped);
    cases.push((path, format!("{blob_name} holds bytes whose digest is")));

    let mut added = read_entries(package);
    let extra = b"not part of the package";
    let extra_name = format!("images/blobs/sha256/{}", &sha256(extra)[7..]);
    added.push(RawEntry::file(&extra_name, extra));
    let path = dir.join("added.tar");
    write_raw_tar(&path, &added);
    cases.push((path, format!("{extra_name} is not listed in checksums.txt")));

    let mut removed = read_entries(package);
    let gone = String::from_utf8(removed.remove(blob).name).unwrap();
    let path = dir.join("removed.tar");
    write_raw_tar(&path, &removed);
    cases.push((
        path,
        format!("{gone} is listed in checksums.txt but missing"),
    ));

    let mut edited = read_entries(package);
    let sums = edited
        .iter_mut()
        .find(|e| e.name == b"checksums.txt")
        .unwrap();
    let text = String::from_utf8(sums.data.clone()).unwrap();
    let first = text.lines().next().unwrap().to_owned();
    let (_, name) = first.split_once(' ').unwrap();
    sums.data = text
        .replacen(&first, &format!("{} {name}", "0".repeat(64)), 1)
        .into_bytes();
    let path = dir.join("edited.tar");
    write_raw_tar(&path, &edited);
    cases.push((
        path,
        format!("{name} does not match its checksum in checksums.txt"),
    ));
    cases
}

#[test]
fn tampered_packages_fail_verify_and_push_sends_nothing() {
    let registry = TestRegistry::start();
    let target = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    for (path, expected) in tampered(&package, ws.dir.path()) {
        let out = ws.inspect(&path, &["--verify"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains(&expected),
            "{}:\n{}",
            path.display(),
            stdout(&out)
        );
        assert!(
            stderr(&out).contains("failed verification"),
            "{}",
            stderr(&out)
        );

        let out = ws.push(&path, &target.addr, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("nothing was pushed"), "{err}");
        assert!(
            target.catalog().is_empty(),
            "push sent something from {}",
            path.display()
        );
    }
}

#[test]
fn hostile_tars_are_refused_and_nothing_escapes() {
    let ws = Workspace::new();
    let sandbox = ws.path("sandbox");
    std::fs::create_dir_all(sandbox.join("deep/er")).unwrap();
    let target = TestRegistry::start();
    let cases: Vec<(&str, RawEntry, &str)> = vec![
        (
            "traversal",
            RawEntry::file("../../escaped", b"x"),
            "climbs out with `..`",
        ),
        (
            "absolute",
            RawEntry::file("/tmp/pkgr-absolute-escape", b"x"),
            "its path is absolute",
        ),
        (
            "symlink",
            RawEntry {
                name: format!("images/blobs/sha256/{}", "a".repeat(64)).into_bytes(),
                kind: tar::EntryType::Symlink,
                data: Vec::new(),
                link: Some(b"/etc/passwd".to_vec()),
            },
            "is a symbolic link",
        ),
        (
            "device",
            RawEntry {
                name: b"images/oci-layout".to_vec(),
                kind: tar::EntryType::Char,
                data: Vec::new(),
                link: None,
            },
            "is a device",
        ),
        (
            "oversized",
            RawEntry::file("images/index.json", &vec![b' '; 17 << 20]),
            "over the 16777216-byte limit",
        ),
        (
            "unknown",
            RawEntry::file("etc/cron.d/evil", b"x"),
            "is not where a package keeps files",
        ),
    ];
    for (label, entry, expected) in cases {
        let path = sandbox.join("deep/er").join(format!("{label}.tar"));
        write_raw_tar(
            &path,
            &[RawEntry::file("pkgr.yaml", b"kind: PkgrPackage\n"), entry],
        );
        for (command, mut cmd) in ws.package_readers(&path, &target.addr) {
            let out = cmd
                .current_dir(sandbox.join("deep/er"))
                .env("TMPDIR", &sandbox)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{label} `{command}`: {err}");
            assert!(err.contains(expected), "{label} `{command}`: {err}");
        }
    }
    assert!(!sandbox.join("escaped").exists() && !ws.dir.path().join("escaped").exists());
    assert!(!Path::new("/tmp/pkgr-absolute-escape").exists());
    assert!(target.catalog().is_empty());
}

/// The entries of a pkgr package laid out the way Zarf lays it out: `zarf_yaml` in
/// place of pkgr.yaml, and not listed in checksums.txt.
pub(crate) fn as_zarf(package: &Path, zarf_yaml: &str) -> Vec<RawEntry> {
    let mut entries: Vec<RawEntry> = read_entries(package)
        .into_iter()
        .filter(|e| e.name != b"pkgr.yaml")
        .collect();
    for entry in &mut entries {
        if entry.name == b"checksums.txt" {
            let text = String::from_utf8(entry.data.clone()).unwrap();
            entry.data = text
                .lines()
                .filter(|l| !l.ends_with(" pkgr.yaml"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .into_bytes();
        }
    }
    entries.insert(0, RawEntry::file("zarf.yaml", zarf_yaml.as_bytes()));
    entries
}

#[test]
fn zarf_packages_are_inspected_and_pushed() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let zarf_yaml = format!(
        "kind: ZarfPackageConfig\nmetadata:\n  name: small-zarf\n  version: 0.0.1\n  architecture: amd64\ncomponents:\n  - name: app\n    images:\n      - {}/app:1\n",
        registry.addr
    );
    let entries = as_zarf(&package, &zarf_yaml);
    let path = ws
        .path("out")
        .join("zarf-package-small-zarf-amd64-0.0.1.tar");
    write_raw_tar(&path, &entries);

    let out = ws.inspect(&path, &["--json", "--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["format"], "zarf");
    assert_eq!(value["metadata"]["name"], "small-zarf");
    assert_eq!(value["images"][0]["component"], "app");
    assert_eq!(value["verification"]["ok"], true);

    let target = TestRegistry::start();
    let out = ws.push(&path, &target.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("pushed 2 of 2 images"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn inspect_reads_only_the_head() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let pusher = Pusher::new(&registry.addr);
    pusher.image(
        "big",
        "1",
        false,
        "amd64",
        &[layer(&[(
            "data",
            &crate::support::images::noise(77, 2 << 20),
        )])],
    );
    ws.define(&Definition::new("head").image(format!("{}/big:1", registry.addr)));
    let package = package_path(&ws.create(&[]));
    // Cut the compressed package in half: only the layer's bytes are lost.
    let bytes = std::fs::read(&package).unwrap();
    let cut = ws.path("out").join("cut.tar.zst");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();

    let out = ws.inspect(&cut, &[]);
    assert!(
        out.status.success(),
        "inspect must not read past the metadata: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains(&format!("{}/big:1", registry.addr)));
    let out = ws.inspect(&cut, &["--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_deeply_nested_definition_in_a_package_is_refused() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let levels = 100_000;
    let deep = format!(
        "kind: ZarfPackageConfig\nmetadata:\n  name: deep\n  architecture: amd64\ncomponents: []\nx: {}{}\n",
        "[".repeat(levels),
        "]".repeat(levels)
    );
    let entries = as_zarf(&package, &deep);
    let path = ws.path("out").join("zarf-package-deep-amd64.tar");
    write_raw_tar(&path, &entries);

    for args in [&[][..], &["--verify"][..]] {
        let out = ws.inspect(&path, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("zarf.yaml nests more than 64 levels deep (line 6)"),
            "{args:?}: {err}"
        );
    }
}

/// The package's entries with `name` holding `data` instead, and checksums.txt
/// rewritten to match, so that the checksums cannot tell.
fn with_replaced(package: &Path, name: &str, data: Vec<u8>) -> Vec<RawEntry> {
    let new_sum = sha256(&data);
    let mut entries = read_entries(package);
    for entry in &mut entries {
        if entry.name == name.as_bytes() {
            entry.data = data.clone();
        } else if entry.name == b"checksums.txt" {
            let text = String::from_utf8(entry.data.clone()).unwrap();
            entry.data = text
                .lines()
                .map(|l| match l.split_once(' ') {
                    Some((_, listed)) if listed == name => {
                        format!("{} {name}\n", new_sum.trim_start_matches("sha256:"))
                    }
                    _ => format!("{l}\n"),
                })
                .collect::<String>()
                .into_bytes();
        }
    }
    entries
}

/// The package's entries with images/index.json replaced by `edit`'s version of it.
fn with_index(package: &Path, edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> Vec<RawEntry> {
    let entries = read_entries(package);
    let raw = &entries
        .iter()
        .find(|e| e.name == b"images/index.json")
        .unwrap()
        .data;
    let mut index: serde_json::Value = serde_json::from_slice(raw).unwrap();
    edit(index["manifests"].as_array_mut().unwrap());
    with_replaced(
        package,
        "images/index.json",
        serde_json::to_vec(&index).unwrap(),
    )
}

#[test]
fn a_definition_that_cannot_be_read_is_refused_by_verify_and_push() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let path = ws.path("unreadable.tar");
    write_raw_tar(
        &path,
        &with_replaced(&package, "pkgr.yaml", b"kind: [PkgrPackage\n".to_vec()),
    );
    let target = TestRegistry::start();
    for out in [
        ws.inspect(&path, &["--verify"]),
        ws.push(&path, &target.addr, &[]),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("pkgr.yaml cannot be read"), "{err}");
    }
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());
}

#[test]
fn an_index_that_disagrees_with_the_definition_is_refused_by_verify_and_push() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let (app, chart) = (
        format!("{}/app:1", registry.addr),
        format!("{}/chart:0.2.0", registry.addr),
    );
    let target = TestRegistry::start();

    // Each tag's entry now points at the other image: every digest is still sound.
    let swapped = with_index(&package, |manifests| {
        let fields = ["digest", "size", "mediaType"];
        for field in fields {
            let first = manifests[0][field].clone();
            manifests[0][field] = manifests[1][field].clone();
            manifests[1][field] = first;
        }
    });
    let entry_digest = |i: usize| {
        read_index(&package)[i]["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (app_digest, chart_digest) = (entry_digest(0), entry_digest(1));
    let swapped_path = ws.path("swapped.tar");
    write_raw_tar(&swapped_path, &swapped);

    // One more entry, under a name the definition never listed.
    let extra = with_index(&package, |manifests| {
        let mut added = manifests[0].clone();
        for value in added["annotations"].as_object_mut().unwrap().values_mut() {
            if value.as_str() == Some(app.as_str()) {
                *value = serde_json::Value::String(format!("{}/extra:1", registry.addr));
            }
        }
        manifests.push(added);
    });
    let extra_path = ws.path("extra.tar");
    write_raw_tar(&extra_path, &extra);

    let cases = [
        (
            &swapped_path,
            vec![
                format!(
                    "{app} is {app_digest} in pkgr.yaml but {chart_digest} in images/index.json"
                ),
                format!(
                    "{chart} is {chart_digest} in pkgr.yaml but {app_digest} in images/index.json"
                ),
            ],
        ),
        (
            &extra_path,
            vec![format!(
                "images/index.json holds {}/extra:1 ({app_digest}), which pkgr.yaml does not list",
                registry.addr
            )],
        ),
    ];
    for (path, expected) in cases {
        let out = ws.inspect(path, &["--verify", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            value["verification"]["problems"],
            serde_json::json!(expected),
            "{}",
            stdout(&out)
        );
        let out = ws.push(path, &target.addr, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(expected[0].as_str()), "{err}");
    }
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());
}

fn read_index(package: &Path) -> Vec<serde_json::Value> {
    let entries = read_entries(package);
    let index = entries
        .iter()
        .find(|e| e.name == b"images/index.json")
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&index.data).unwrap();
    value["manifests"].as_array().unwrap().clone()
}

#[test]
fn a_fifo_or_a_directory_is_refused_by_inspect_and_push_before_it_is_opened() {
    let ws = Workspace::new();
    let fifo = ws.path("package.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let dir = ws.path("def");
    for (path, kind) in [(&fifo, "a FIFO"), (&dir, "a directory")] {
        for (command, cmd) in [
            ("inspect", ws.inspect_command(path, &[])),
            ("push", ws.push_command(path, "127.0.0.1:1", &[])),
        ] {
            // A package path that blocks on open must fail the test, not stall the suite.
            let out = run_within(cmd, Duration::from_secs(10));
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{command}: {err}");
            assert_eq!(
                err.lines().next(),
                Some(
                    format!(
                        "error: {} is not a regular file (it is {kind})",
                        path.display()
                    )
                    .as_str()
                ),
                "{command}: {err}"
            );
        }
    }
}

#[test]
fn an_invalid_package_name_is_refused_by_inspect_verify_and_push() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let definition = read_entries(&package)
        .into_iter()
        .find(|e| e.name == b"pkgr.yaml")
        .unwrap()
        .data;
    let renamed = String::from_utf8(definition)
        .unwrap()
        .replace("name: small", "name: ../evil");
    let path = ws.path("renamed.tar");
    write_raw_tar(
        &path,
        &with_replaced(&package, "pkgr.yaml", renamed.into_bytes()),
    );
    let target = TestRegistry::start();

    let out = ws.inspect(&path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().next(),
        Some(
            "error: pkgr.yaml in the package names it `../evil`, which is not a valid package name"
        )
    );
    for out in [
        ws.inspect(&path, &["--verify"]),
        ws.push(&path, &target.addr, &[]),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("pkgr.yaml cannot be read: `../evil` is not a valid package name"),
            "{err}"
        );
    }
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());
}

/// Fails the test if `text` holds a byte that a terminal would act on.
fn assert_no_control_bytes(label: &str, text: &[u8]) {
    let bad = text
        .iter()
        .position(|&b| (b < 0x20 && b != b'\n') || b == 0x7f);
    assert!(
        bad.is_none(),
        "{label} holds a control byte at {bad:?}: {}",
        String::from_utf8_lossy(text)
    );
}

#[test]
fn names_from_checksums_and_annotations_reach_the_terminal_escaped() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let hostile = format!("\x1b[2J\x1b]0;owned\x07{}", "x".repeat(5000));

    // An index.json entry renamed to the hostile string, as inspect and --verify show it.
    let renamed = with_index(&package, |manifests| {
        let annotations = manifests[0]["annotations"].as_object_mut().unwrap();
        for value in annotations.values_mut() {
            *value = serde_json::json!(hostile);
        }
    });
    let path = ws.path("renamed.tar");
    write_raw_tar(&path, &renamed);
    let listing = ws.inspect(&path, &[]);
    assert!(listing.status.success(), "{}", stderr(&listing));
    assert_no_control_bytes("the listing", &listing.stdout);
    assert!(
        stdout(&listing).contains(r"\u{1b}[2J\u{1b}]0;owned\u{7}xxx"),
        "{}",
        stdout(&listing)
    );
    let verified = ws.inspect(&path, &["--verify"]);
    assert_eq!(verified.status.code(), Some(1), "{}", stderr(&verified));
    assert_no_control_bytes("--verify's report", &verified.stdout);
    assert_no_control_bytes("--verify's error", &verified.stderr);
    assert!(
        stdout(&verified).contains("xxx… (5014 bytes in all) ("),
        "a 5000-byte name must be cut: {}",
        stdout(&verified)
    );

    // A checksums.txt line naming a file that is not there.
    let mut entries = read_entries(&package);
    for entry in &mut entries {
        if entry.name == b"checksums.txt" {
            entry
                .data
                .extend(format!("{}  {hostile}\n", "0".repeat(64)).into_bytes());
        }
    }
    let listed = ws.path("listed.tar");
    write_raw_tar(&listed, &entries);
    let verified = ws.inspect(&listed, &["--verify"]);
    assert_eq!(verified.status.code(), Some(1), "{}", stderr(&verified));
    assert_no_control_bytes("--verify's report", &verified.stderr);
    assert!(
        stderr(&verified).contains(r"\u{1b}[2J")
            && stderr(&verified).contains("is listed in checksums.txt but missing"),
        "{}",
        stderr(&verified)
    );
}

#[test]
fn an_index_json_with_too_many_entries_is_refused() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let crowded = with_index(&package, |manifests| {
        let first = manifests[0].clone();
        manifests.resize(10_001, first);
    });
    let path = ws.path("crowded.tar");
    write_raw_tar(&path, &crowded);
    for args in [&[][..], &["--verify"][..]] {
        let out = ws.inspect(&path, args);
        let report = stdout(&out) + &stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {report}");
        assert!(
            report.contains("it lists more than 10000 entries, more than pkgr accepts"),
            "{args:?}: {report}"
        );
    }
}

/// `package` as Zarf writes it: zarf.yaml, components and SBOM tarballs, a signature,
/// and either the crane-era index.json (no `mediaType`, entries named only by
/// `org.opencontainers.image.base.name`) or the current one (`mediaType`, entries
/// named by `org.opencontainers.image.ref.name`).
fn zarf_shaped(package: &Path, addr: &str, crane_era: bool) -> Vec<RawEntry> {
    let zarf_yaml = format!(
        "kind: ZarfPackageConfig\nmetadata:\n  name: shaped\n  version: 1.0.0\n  architecture: amd64\ncomponents:\n  - name: app\n    images:\n      - {addr}/app:1\n  - name: chart\n    images:\n      - {addr}/chart:0.2.0\n"
    );
    let mut entries = as_zarf(package, &zarf_yaml);
    for entry in &mut entries {
        if entry.name != b"images/index.json" {
            continue;
        }
        let mut index: serde_json::Value = serde_json::from_slice(&entry.data).unwrap();
        if crane_era {
            index.as_object_mut().unwrap().remove("mediaType");
        }
        for manifest in index["manifests"].as_array_mut().unwrap() {
            let annotations = manifest["annotations"].as_object_mut().unwrap();
            let name = annotations
                .values()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            annotations.clear();
            let key = if crane_era {
                "org.opencontainers.image.base.name"
            } else {
                "org.opencontainers.image.ref.name"
            };
            annotations.insert(key.into(), name.into());
        }
        entry.data = serde_json::to_vec(&index).unwrap();
    }
    let component = b"a component tarball's bytes".to_vec();
    let sboms = b"an SBOM tarball's bytes".to_vec();
    let listed: String = entries
        .iter()
        .filter(|e| e.name != b"checksums.txt" && e.name != b"zarf.yaml")
        .map(|e| (String::from_utf8(e.name.clone()).unwrap(), e.data.clone()))
        .chain([
            ("components/app.tar".to_owned(), component.clone()),
            ("sboms.tar".to_owned(), sboms.clone()),
        ])
        .map(|(name, data)| format!("{} {name}\n", sha256(&data).trim_start_matches("sha256:")))
        .collect();
    for entry in &mut entries {
        if entry.name == b"checksums.txt" {
            entry.data = listed.clone().into_bytes();
        }
    }
    entries.insert(2, RawEntry::file("components/app.tar", &component));
    entries.push(RawEntry::file("sboms.tar", &sboms));
    entries.push(RawEntry::file("zarf.yaml.sig", b"a signature"));
    entries
}

#[test]
fn zarf_packages_of_both_eras_with_their_other_files_are_inspected_and_pushed() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let originals: Vec<(String, serde_json::Value)> = read_index(&package)
        .into_iter()
        .map(|e| {
            let name = e["annotations"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .clone();
            (name.as_str().unwrap().to_owned(), e["digest"].clone())
        })
        .collect();
    for crane_era in [true, false] {
        let path = ws.path(&format!("zarf-package-shaped-amd64-1.0.0-{crane_era}.tar"));
        write_raw_tar(&path, &zarf_shaped(&package, &registry.addr, crane_era));

        let out = ws.inspect(&path, &["--verify"]);
        assert!(out.status.success(), "{crane_era}: {}", stderr(&out));
        let listing = stdout(&out);
        assert!(
            listing.contains("other files (verified, never pushed):"),
            "{listing}"
        );
        assert!(
            listing.contains("zarf.yaml.sig")
                && listing.contains("signature present, not verified"),
            "{listing}"
        );
        assert!(listing.contains("components/app.tar"), "{listing}");
        let out = ws.inspect(&path, &["--json"]);
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            value["otherFiles"],
            serde_json::json!([
                {"name": "components/app.tar", "size": 27, "kind": "component"},
                {"name": "sboms.tar", "size": 23, "kind": "sboms"},
                {"name": "zarf.yaml.sig", "size": 11, "kind": "signature"},
            ]),
            "{crane_era}"
        );

        let target = TestRegistry::start();
        let out = ws.push(&path, &target.addr, &[]);
        assert!(out.status.success(), "{crane_era}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("push loads images only: the package's 3 other file(s)"),
            "{}",
            stderr(&out)
        );
        let pusher = Pusher::new(&target.addr);
        for (name, digest) in &originals {
            let (repo, tag) = name
                .trim_start_matches(&format!("{}/", registry.addr))
                .split_once(':')
                .unwrap();
            let pushed = pusher.get_manifest(repo, tag);
            assert_eq!(serde_json::json!(sha256(&pushed)), *digest, "{name}");
        }
    }
}

/// Writes `package` compressed and split into 3 parts as Zarf splits it; returns the
/// first part's path.
pub(crate) fn split_package(package: &[u8], dir: &Path) -> PathBuf {
    let compressed = zstd::encode_all(package, 3).unwrap();
    let chunk = compressed.len().div_ceil(3);
    for (i, piece) in compressed.chunks(chunk).enumerate() {
        std::fs::write(
            dir.join(format!(
                "zarf-package-shaped-amd64-1.0.0.tar.zst.part{:03}",
                i + 1
            )),
            piece,
        )
        .unwrap();
    }
    let first = dir.join("zarf-package-shaped-amd64-1.0.0.tar.zst.part000");
    std::fs::write(
        &first,
        format!(
            r#"{{"sha256Sum":"{}","bytes":{},"count":3}}"#,
            sha256(&compressed).trim_start_matches("sha256:"),
            compressed.len()
        ),
    )
    .unwrap();
    first
}

#[test]
fn a_split_package_is_read_part_by_part_and_a_bad_part_stops_everything() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let package = small_package(&ws, &registry);
    let whole = ws.path("whole.tar");
    write_raw_tar(&whole, &zarf_shaped(&package, &registry.addr, false));
    let parts = ws.path("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let first = split_package(&std::fs::read(&whole).unwrap(), &parts);

    let out = ws.inspect(&first, &["--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("{}/app:1", registry.addr)));
    let target = TestRegistry::start();
    let out = ws.push(&first, &target.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        Pusher::new(&target.addr).get_manifest("app", "1"),
        Pusher::new(&registry.addr).get_manifest("app", "1")
    );

    // A later part given instead of the first.
    let second = parts.join("zarf-package-shaped-amd64-1.0.0.tar.zst.part002");
    let err = stderr(&ws.inspect(&second, &[]));
    assert!(err.contains("give its first part"), "{err}");

    // One byte of the last part changed: caught (by zstd's checksum here, by the
    // digest in part000 in any case) before anything is sent.
    let last = parts.join("zarf-package-shaped-amd64-1.0.0.tar.zst.part003");
    let original = std::fs::read(&last).unwrap();
    let mut damaged = original.clone();
    let at = damaged.len() - 5;
    damaged[at] ^= 0x01;
    std::fs::write(&last, &damaged).unwrap();
    let untouched = TestRegistry::start();
    for out in [
        ws.inspect(&first, &["--verify"]),
        ws.push(&first, &untouched.addr, &[]),
    ] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
    assert!(untouched.catalog().is_empty(), "{:?}", untouched.catalog());
    std::fs::write(&last, &original).unwrap();

    // Sound parts, but part000 names another digest.
    let header = std::fs::read_to_string(&first).unwrap();
    let declared = serde_json::from_str::<serde_json::Value>(&header).unwrap()["sha256Sum"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&first, header.replace(&declared, &"0".repeat(64))).unwrap();
    for out in [
        ws.inspect(&first, &["--verify"]),
        ws.push(&first, &untouched.addr, &[]),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "error: the split package's parts hash to sha256:{declared}, but {} says sha256:{}",
                first.display(),
                "0".repeat(64)
            )),
            "{err}"
        );
    }
    assert!(untouched.catalog().is_empty(), "{:?}", untouched.catalog());

    // The last part missing.
    std::fs::remove_file(&last).unwrap();
    let out = ws.push(&first, &untouched.addr, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: the split package is missing part 3 ({})",
            last.display()
        )),
        "{err}"
    );
    assert!(untouched.catalog().is_empty(), "{:?}", untouched.catalog());
}
