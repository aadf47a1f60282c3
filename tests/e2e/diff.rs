//! `pkgr diff`: a base package against next month's (whole, split, and the base as Zarf
//! lays it out), as a table and as JSON, with the bytes each image adds checked against
//! the blobs really pushed; and input that is missing, not a package, or damaged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::inspect::{as_zarf, split_package};
use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Image, Pusher};
use crate::support::registry::TestRegistry;
use crate::support::tarfix::{read_entries, write_raw_tar};
use crate::support::{package_path, stderr, stdout, Workspace};

/// The two months' packages and what the test expects of their comparison.
struct Months {
    base: PathBuf,
    next: PathBuf,
    /// Reference → (old digest, new digest, blobs only NEW has: digest → size).
    changed: (String, String, String, BTreeMap<String, u64>),
    added: (String, String, BTreeMap<String, u64>),
    removed: (String, String),
}

fn blobs(image: &Image) -> BTreeMap<String, u64> {
    image
        .all()
        .into_iter()
        .map(|p| (p.digest.clone(), p.bytes.len() as u64))
        .collect()
}

/// A base package (`app`, `gone`, `same`), then next month's: `app` with a new top
/// layer under the same tag, `gone` dropped, `new` added, sharing `app`'s new top layer.
fn two_months(ws: &Workspace, registry: &TestRegistry) -> Months {
    let pusher = Pusher::new(&registry.addr);
    let addr = &registry.addr;
    let base_layer = layer(&[("base", &noise(1, 300_000))]);
    let app_v1 = pusher.image(
        "app",
        "1",
        false,
        "amd64",
        &[base_layer.clone(), layer(&[("top", &noise(2, 40_000))])],
    );
    let gone = pusher.image("gone", "1", false, "amd64", &[layer(&[("g", b"gone")])]);
    pusher.image(
        "same",
        "1",
        false,
        "amd64",
        std::slice::from_ref(&base_layer),
    );
    let definition = |version: &str, images: &[&str]| {
        Definition::new("monthly")
            .version(version)
            .images(images.iter().map(|i| format!("{addr}/{i}:1")))
    };
    ws.define(&definition("1.0.0", &["app", "gone", "same"]));
    let base = package_path(&ws.create(&[]));

    let top_v2 = layer(&[("top", &noise(3, 50_000))]);
    let app_v2 = pusher.image(
        "app",
        "1",
        false,
        "amd64",
        &[base_layer.clone(), top_v2.clone()],
    );
    let new = pusher.image(
        "new",
        "1",
        false,
        "amd64",
        &[top_v2, layer(&[("n", &noise(4, 20_000))])],
    );
    ws.define(&definition("1.1.0", &["same", "app", "new"]));
    let next = package_path(&ws.create(&[]));

    let in_base: Vec<String> = [blobs(&app_v1), blobs(&gone)]
        .into_iter()
        .flat_map(|b| b.into_keys())
        .collect();
    let only_new = |image: &Image| -> BTreeMap<String, u64> {
        let mut b = blobs(image);
        b.retain(|digest, _| !in_base.contains(digest));
        b
    };
    Months {
        base,
        next,
        changed: (
            format!("{addr}/app:1"),
            app_v1.manifest.digest.clone(),
            app_v2.manifest.digest.clone(),
            only_new(&app_v2),
        ),
        added: (
            format!("{addr}/new:1"),
            new.manifest.digest.clone(),
            only_new(&new),
        ),
        removed: (format!("{addr}/gone:1"), gone.manifest.digest.clone()),
    }
}

fn diff(ws: &Workspace, old: &Path, new: &Path, extra: &[&str]) -> std::process::Output {
    ws.pkgr()
        .arg("diff")
        .arg(old)
        .arg(new)
        .args(extra)
        .output()
        .unwrap()
}

/// `pkgr diff OLD NEW` plus `extra`, which must succeed quietly: its stdout.
fn compared(ws: &Workspace, old: &Path, new: &Path, extra: &[&str]) -> String {
    let out = diff(ws, old, new, extra);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    stdout(&out)
}

/// As [`compared`], with `--json`, parsed.
fn compared_json(ws: &Workspace, old: &Path, new: &Path) -> serde_json::Value {
    serde_json::from_str(&compared(ws, old, new, &["--json"])).unwrap()
}

fn sum(blobs: &BTreeMap<String, u64>) -> u64 {
    blobs.values().sum()
}

/// Checks `--json` of base against next (NEW given as `next`, whole or split).
fn assert_json(ws: &Workspace, months: &Months, next: &Path) {
    let value = compared_json(ws, &months.base, next);
    assert_eq!(value["schemaVersion"], 1);
    assert_eq!(value["old"]["name"], "monthly");
    assert_eq!(value["old"]["version"], "1.0.0");
    assert_eq!(value["new"]["version"], "1.1.0");
    assert_eq!(value["new"]["format"], "pkgr");
    assert_eq!(value["new"]["images"], 3);

    let (app, app_old, app_new, app_blobs) = &months.changed;
    let (new, new_digest, new_blobs) = &months.added;
    let (gone, gone_digest) = &months.removed;
    let rows: Vec<serde_json::Value> = value["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            serde_json::json!([
                i["change"],
                i["reference"],
                i["oldDigest"],
                i["newDigest"],
                i["newBlobs"],
                i["newBytes"],
                i["kind"],
                i["platform"]
            ])
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            serde_json::json!([
                "changed",
                app,
                app_old,
                app_new,
                app_blobs.len(),
                sum(app_blobs),
                "container-image",
                "linux/amd64"
            ]),
            serde_json::json!([
                "added",
                new,
                null,
                new_digest,
                new_blobs.len(),
                sum(new_blobs),
                "container-image",
                "linux/amd64"
            ]),
            serde_json::json!([
                "removed",
                gone,
                gone_digest,
                null,
                0,
                0,
                "container-image",
                "linux/amd64"
            ]),
        ]
    );
    // The new top layer that app and new share counts in each row, once in the total.
    let mut all = app_blobs.clone();
    all.extend(new_blobs.clone());
    assert!(all.len() < app_blobs.len() + new_blobs.len());
    let totals = &value["totals"];
    assert_eq!(
        totals,
        &serde_json::json!({
            "changed": 1, "added": 1, "removed": 1, "unchanged": 1,
            "newBlobs": all.len(), "newBytes": sum(&all),
        })
    );
}

#[test]
fn next_months_package_against_the_base_lists_each_change_and_the_bytes_it_adds() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let months = two_months(&ws, &registry);
    // app's new manifest, config and top layer; the base layer crossed last month.
    assert_eq!(months.changed.3.len(), 3);
    assert_json(&ws, &months, &months.next);

    let text = compared(&ws, &months.base, &months.next, &[]);
    assert!(
        text.starts_with("old: pkgr package monthly 1.0.0 (amd64), 3 images"),
        "{text}"
    );
    assert!(
        text.contains("\nnew: pkgr package monthly 1.1.0 (amd64), 3 images"),
        "{text}"
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| {
            ["changed ", "added ", "removed "]
                .iter()
                .any(|c| l.starts_with(c))
        })
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (app, _, app_new, app_blobs) = &months.changed;
    let (new, new_digest, new_blobs) = &months.added;
    let (gone, gone_digest) = &months.removed;
    let app_count = app_blobs.len().to_string();
    let new_count = new_blobs.len().to_string();
    assert_eq!(rows.len(), 3, "{text}");
    for (row, (change, reference, count, digest)) in rows.iter().zip([
        ("changed", app, app_count.as_str(), app_new),
        ("added", new, new_count.as_str(), new_digest),
        ("removed", gone, "-", gone_digest),
    ]) {
        assert_eq!(
            (row[0], row[1], row[2], *row.last().unwrap()),
            (change, reference.as_str(), count, digest.as_str()),
            "{text}"
        );
    }
    let mut all = app_blobs.clone();
    all.extend(new_blobs.clone());
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "1 changed, 1 added, 1 removed, 1 unchanged; NEW adds {} blobs, ",
            all.len()
        )) && last.contains(&format!("({} bytes)", sum(&all))),
        "{text}"
    );

    // The other way round: app changed back, new removed, gone added back, and what
    // NEW adds is what the base alone holds.
    let value = compared_json(&ws, &months.next, &months.base);
    let changes: Vec<(&str, &str)> = value["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["change"].as_str().unwrap(),
                i["reference"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("changed", app.as_str()),
            ("added", gone.as_str()),
            ("removed", new.as_str())
        ]
    );

    // A package against itself: nothing differs, nothing is added.
    let text = compared(&ws, &months.next, &months.next, &[]);
    assert!(
        text.contains("no image was added, removed or changed"),
        "{text}"
    );
    assert!(
        text.ends_with("0 changed, 0 added, 0 removed, 3 unchanged; NEW adds 0 blobs, 0 B (0 bytes), each blob counted once\n"),
        "{text}"
    );
}

/// `package` split into three parts as Zarf splits a package, in a directory of its
/// own; returns the `part000` path.
fn split(ws: &Workspace, package: &Path, dir: &str) -> PathBuf {
    let dir = ws.path(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tar = zstd::decode_all(std::fs::File::open(package).unwrap()).unwrap();
    split_package(&tar, &dir)
}

#[test]
fn a_split_package_and_a_zarf_package_compare_as_the_pkgr_package_does() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let months = two_months(&ws, &registry);
    let next = split(&ws, &months.next, "next");
    assert_json(&ws, &months, &next);
    let base = split(&ws, &months.base, "base");
    let whole = compared_json(&ws, &months.base, &months.next);
    assert_eq!(compared_json(&ws, &base, &next), whole);

    // The base as Zarf lays it out: the same images, told as a Zarf package.
    let zarf_yaml = format!(
        "kind: ZarfPackageConfig\nmetadata:\n  name: monthly\n  version: 1.0.0\n  architecture: amd64\ncomponents:\n  - name: a\n    images:\n      - {0}/app:1\n      - {0}/gone:1\n      - {0}/same:1\n",
        registry.addr
    );
    let zarf = ws.path("zarf-package-monthly-amd64-1.0.0.tar");
    write_raw_tar(&zarf, &as_zarf(&months.base, &zarf_yaml));
    let from_zarf = compared_json(&ws, &zarf, &next);
    assert_eq!(from_zarf["old"]["format"], "zarf");
    for field in ["images", "totals"] {
        assert_eq!(from_zarf[field], whole[field], "{field}");
    }
}

#[test]
fn input_that_is_not_a_package_or_is_damaged_is_one_sentence_and_exit_1() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    let pusher = Pusher::new(&registry.addr);
    pusher.image("app", "1", false, "amd64", &[layer(&[("a", b"app")])]);
    ws.define(&Definition::new("one").image(format!("{}/app:1", registry.addr)));
    let package = package_path(&ws.create(&[]));
    let text = ws.path("notes.txt");
    std::fs::write(&text, "not a package\n".repeat(100)).unwrap();
    let missing = ws.path("missing.tar.zst");
    let dir = ws.path("out");
    // A damaged head: index.json that is not JSON.
    let damaged = ws.path("damaged.tar");
    let mut entries = read_entries(&package);
    let index = entries
        .iter_mut()
        .find(|e| e.name == b"images/index.json")
        .unwrap();
    index.data = b"{\"manifests\": [".to_vec();
    write_raw_tar(&damaged, &entries);

    for (old, new, first_line) in [
        (
            &text,
            &package,
            format!(
                "error: old package {}: the package is not a tar archive: its first header is not a tar header",
                text.display()
            ),
        ),
        (
            &package,
            &text,
            format!(
                "error: new package {}: the package is not a tar archive: its first header is not a tar header",
                text.display()
            ),
        ),
        (
            &package,
            &damaged,
            format!(
                "error: new package {}: images/index.json cannot be read",
                damaged.display()
            ),
        ),
        (
            &missing,
            &package,
            format!(
                "error: old package {}: cannot read the package {}",
                missing.display(),
                missing.display()
            ),
        ),
        (
            &package,
            &dir,
            format!("error: {} is not a regular file (it is a directory)", dir.display()),
        ),
    ] {
        for extra in [&[][..], &["--json"][..]] {
            let out = diff(&ws, old, new, extra);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(out.stdout.is_empty(), "{}", stdout(&out));
            assert_eq!(err.lines().next(), Some(first_line.as_str()), "{err}");
            assert!(
                err.lines().skip(1).all(|l| l.starts_with("  caused by: ")),
                "{err}"
            );
        }
    }
}
