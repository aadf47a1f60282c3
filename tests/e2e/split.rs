//! `pkgr create --max-package-size`: a package over the size written as Zarf's split
//! parts, checked the way a user would (part sizes, part000 against the joined bytes,
//! the real `zstd` and `tar` on the joined parts, inspect and push from part000), one
//! that fits left as one file, and sizes that are no size refused before any work.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::definition::Definition;
use crate::support::images::{
    layer, noise, sha256, Image, Pushed, Pusher, OCI_CONFIG, OCI_MANIFEST,
};
use crate::support::registry::TestRegistry;
use crate::support::{package_path, spawn, stderr, stdout, wait_until, Workspace};

const PART: &str = "12MB";
const PART_BYTES: u64 = 12_000_000;
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Two images of incompressible layers, about 50 MiB in all, so that the compressed
/// package is about 50 MiB too: five parts of 12 MB. The layers are plain noise, not
/// gzipped tars: pkgr carries a layer's bytes as they are, and the test stays quick.
fn big_images(registry: &TestRegistry) -> Vec<(String, Image)> {
    let pusher = Pusher::new(&registry.addr);
    vec![
        (
            "big/one:1".to_owned(),
            noise_image(&pusher, "big/one", &[(51, 20 << 20), (52, 10 << 20)]),
        ),
        (
            "big/two:1".to_owned(),
            noise_image(&pusher, "big/two", &[(53, 20 << 20)]),
        ),
    ]
}

/// An OCI image tagged `1` in `repo` whose layers are `noise(seed, len)`.
fn noise_image(pusher: &Pusher, repo: &str, layers: &[(u64, usize)]) -> Image {
    let layers: Vec<Pushed> = layers
        .iter()
        .map(|&(seed, len)| pusher.blob(repo, OCI_LAYER, noise(seed, len)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.digest).collect::<Vec<_>>()},
    });
    let config = pusher.blob(repo, OCI_CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Pushed::descriptor).collect::<Vec<_>>(),
    }))
    .unwrap();
    Image {
        manifest: pusher.manifest(repo, "1", OCI_MANIFEST, manifest),
        config,
        layers,
    }
}

/// `<out>.partNNN` beside part000 `first`.
fn part(first: &Path, number: usize) -> PathBuf {
    let name = first.file_name().unwrap().to_str().unwrap();
    let stem = name.strip_suffix(".part000").unwrap();
    first.with_file_name(format!("{stem}.part{number:03}"))
}

/// The data parts that part000 `first` counts, joined into `joined`, checked against
/// part000's JSON (hashed by coreutils' `sha256sum`: the test's own hashing is
/// unoptimised); returns their bytes.
fn joined_parts(first: &Path, joined: &Path) -> Vec<u8> {
    let header: serde_json::Value = serde_json::from_slice(&std::fs::read(first).unwrap()).unwrap();
    let keys: Vec<&String> = header.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{header}");
    let count = header["count"].as_u64().unwrap() as usize;
    let mut bytes = Vec::new();
    for number in 1..=count {
        bytes.extend(std::fs::read(part(first, number)).unwrap());
    }
    assert_eq!(
        header["bytes"].as_u64(),
        Some(bytes.len() as u64),
        "{header}"
    );
    std::fs::write(joined, &bytes).unwrap();
    let sum = Command::new("sha256sum").arg(joined).output().unwrap();
    assert!(sum.status.success(), "{}", stderr(&sum));
    let hex = stdout(&sum).split(' ').next().unwrap().to_owned();
    assert_eq!(header["sha256Sum"].as_str(), Some(hex.as_str()), "{header}");
    bytes
}

fn read_parts(first: &Path, count: usize) -> Vec<Vec<u8>> {
    (0..=count)
        .map(|n| std::fs::read(part(first, n)).unwrap())
        .collect()
}

/// Whether the registry at `addr` holds blob `digest` in `repo`.
fn has_blob(addr: &str, repo: &str, digest: &str) -> bool {
    crate::support::http_client()
        .no_proxy()
        .build()
        .unwrap()
        .head(format!("http://{addr}/v2/{repo}/blobs/{digest}"))
        .send()
        .unwrap()
        .status()
        .is_success()
}

/// One 50 MiB package, one fixture for every check that needs it (seeding it is the
/// slow part): the parts, a second create, the real zstd and tar, inspect, push, a
/// larger size over the same name, and Ctrl-C while parts are written.
#[test]
fn a_package_over_the_size_is_written_in_parts_that_read_and_push_as_one() {
    let source = TestRegistry::start();
    let images = big_images(&source);
    let ws = Workspace::new();
    ws.define(
        &Definition::new("big").images(
            images
                .iter()
                .map(|(reference, _)| format!("{}/{reference}", source.addr)),
        ),
    );

    let first = package_path(&ws.create(&["--max-package-size", PART]));
    assert_eq!(
        first.file_name().unwrap(),
        "pkgr-package-big-amd64.tar.zst.part000"
    );
    let names: Vec<String> = (0..=5)
        .map(|n| format!("pkgr-package-big-amd64.tar.zst.part{n:03}"))
        .collect();
    assert_eq!(
        ws.output_files(),
        names,
        "nothing else is left in the output"
    );
    let sizes: Vec<u64> = (1..=5)
        .map(|n| std::fs::metadata(part(&first, n)).unwrap().len())
        .collect();
    assert!(sizes[..4].iter().all(|&s| s == PART_BYTES), "{sizes:?}");
    assert!(sizes[4] > 0 && sizes[4] <= PART_BYTES, "{sizes:?}");
    let joined_path = ws.path("joined.tar.zst");
    let joined = joined_parts(&first, &joined_path);

    // The parts are the package an unsplit create writes, cut.
    let whole_dir = ws.path("whole");
    let whole = package_path(&ws.create_command_into(&whole_dir, &[]).output().unwrap());
    assert!(
        std::fs::read(&whole).unwrap() == joined,
        "joined parts differ"
    );

    // The same definition and cache give the same parts.
    let parts = read_parts(&first, 5);
    assert_eq!(
        package_path(&ws.create(&["--max-package-size", PART])),
        first
    );
    assert_eq!(ws.output_files(), names);
    assert!(read_parts(&first, 5) == parts, "a second create differs");

    // The real zstd and tar read the joined parts.
    let listing = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; zstd -dc '{}' | tar -t",
            joined_path.display()
        ))
        .output()
        .unwrap();
    assert!(listing.status.success(), "{}", stderr(&listing));
    let listing = stdout(&listing);
    for (_, image) in &images {
        for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
            let name = format!(
                "images/blobs/sha256/{}",
                blob.digest.trim_start_matches("sha256:")
            );
            assert!(
                listing.lines().any(|l| l == name),
                "{name} not in {listing}"
            );
        }
    }
    assert!(listing.lines().any(|l| l == "images/index.json"));

    let out = ws.inspect(&first, &["--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (reference, _) in &images {
        assert!(stdout(&out).contains(&format!("{}/{reference}", source.addr)));
    }

    let target = TestRegistry::start();
    let out = ws.push(&first, &target.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (reference, image) in &images {
        let (repo, tag) = reference.split_once(':').unwrap();
        let pushed = Pusher::new(&target.addr).get_manifest(repo, tag);
        assert_eq!(sha256(&pushed), image.manifest.digest, "{reference}");
        for blob in image.layers.iter().chain([&image.config]) {
            assert!(
                has_blob(&target.addr, repo, &blob.digest),
                "{reference}: {} missing",
                blob.digest
            );
        }
    }

    // A larger size over the same name: three parts, and the earlier five are gone,
    // as Zarf's reader (which counts every part beside part000) needs.
    assert_eq!(
        package_path(&ws.create(&["--max-package-size", "20MB"])),
        first
    );
    assert_eq!(ws.output_files(), names[..4]);
    assert!(
        joined_parts(&first, &joined_path) == joined,
        "the three parts differ"
    );

    // Ctrl-C while the parts are being written leaves nothing in the output.
    let cut = ws.path("cut");
    let child = spawn(ws.create_command_into(&cut, &["--max-package-size", "1MiB"]));
    wait_until("the second part to be written", || {
        parts_in_staging(&cut) >= 2
    });
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(&cut).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// How many part files the staging directories in `output` hold.
fn parts_in_staging(output: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(output) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".pkgr-staging-")
        })
        .filter_map(|staging| std::fs::read_dir(staging.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with(".pkgr-part-"))
        .count()
}

#[test]
fn a_package_that_fits_stays_one_file_as_without_the_option() {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    pusher.image(
        "small/app",
        "1",
        false,
        "amd64",
        &[layer(&[("a", &noise(61, 2 << 20))])],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("small").image(format!("{}/small/app:1", source.addr)));

    let package = package_path(&ws.create(&["--max-package-size", PART]));
    assert_eq!(
        ws.output_files(),
        ["pkgr-package-small-amd64.tar.zst"],
        "{}",
        package.display()
    );
    let plain_dir = ws.path("plain");
    let plain = package_path(&ws.create_command_into(&plain_dir, &[]).output().unwrap());
    assert!(std::fs::read(&package).unwrap() == std::fs::read(&plain).unwrap());
}

/// A `--max-package-size` that is not a size, or is under 1 MiB, is a usage error
/// before the definition's registry is asked anything.
#[test]
fn a_max_package_size_that_is_no_size_or_under_a_mib_is_a_usage_error() {
    let ws = Workspace::new();
    ws.define(&Definition::new("x").image("127.0.0.1:1/never/asked:1"));
    for (bad, why) in [
        ("0", "`0` is less than 1 MiB, the smallest part pkgr writes"),
        (
            "10",
            "`10` is less than 1 MiB, the smallest part pkgr writes",
        ),
        (
            "512KiB",
            "`512KiB` is less than 1 MiB, the smallest part pkgr writes",
        ),
        (
            "abc",
            "`abc` is not a size: write a whole number, e.g. 64GiB",
        ),
    ] {
        let out = ws.create(&["--max-package-size", bad]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.starts_with(&format!(
                "error: invalid value '{bad}' for '--max-package-size <SIZE>': {why}\n"
            )),
            "{bad}: {err}"
        );
        assert!(
            ws.output_files().is_empty(),
            "{bad}: {:?}",
            ws.output_files()
        );
        assert!(
            std::fs::read_dir(ws.path("cache"))
                .unwrap()
                .next()
                .is_none(),
            "{bad}: the cache was touched"
        );
    }
}
