//! Disks that are too small or fill up: `pkgr create` checks free space at plan time
//! and stops before downloading; a write that meets a full disk anyway is one sentence
//! naming the path and its filesystem, with no package, staging directory or damaged
//! cache entry left; and a blob that declares an absurd size is refused unless
//! `--max-blob-size` allows it. Each test mounts its own small tmpfs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, sha256, Image, Pusher};
use crate::support::package::Package;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::tmpfs::Tmpfs;
use crate::support::{package_path, spawn, stderr, wait_until, Workspace};

const MIB: u64 = 1 << 20;

/// A registry holding `app:1`, one layer of `layer_mib` MiB that does not compress,
/// and a proxy in front of it applying `rules` (built once the image is known).
fn registry_with_image(
    layer_mib: usize,
    rules: impl FnOnce(&Image) -> Vec<(String, Fault)>,
) -> (TestRegistry, Image, FaultProxy) {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(7, layer_mib << 20))])],
    );
    let proxy = FaultProxy::start(&registry.addr, rules(&image));
    (registry, image, proxy)
}

/// Asserts a failed run: exit 1, and returns stderr's `error:` and `hint:` lines.
fn failure(out: &Output) -> (String, String) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    let line = |prefix: &str| {
        err.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{err}"))
            .to_owned()
    };
    (line("error: "), line("hint: "))
}

/// No blob was asked of the registry: the run stopped before downloading anything.
fn assert_no_blob_requested(proxy: &FaultProxy) {
    let blobs: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/blobs/"))
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert!(blobs.is_empty(), "blobs were requested: {blobs:?}");
}

/// Every blob in the cache hashes to its name; returns how many there are.
fn assert_cache_entries_whole(cache: &Path) -> usize {
    let blobs = cache.join("blobs-v1/sha256");
    let Ok(entries) = std::fs::read_dir(&blobs) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            sha256(&bytes),
            format!("sha256:{name}"),
            "cache entry {name}"
        );
        count += 1;
    }
    count
}

/// The number in "needs N MiB" of a space refusal, in bytes (to within 0.05 MiB).
fn needed_mib(line: &str) -> f64 {
    let rest = line
        .split("needs ")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"));
    let (number, unit) = rest.split_once(' ').unwrap();
    assert!(unit.starts_with("MiB "), "{line}");
    number.parse().unwrap()
}

#[test]
fn a_package_too_large_for_the_output_filesystem_is_refused_before_any_download() {
    let (_registry, image, proxy) = registry_with_image(12, |_| Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("disk").image(format!("{}/app:1", proxy.addr)));
    let small = Tmpfs::mount(&ws.path("small"), 8 * MIB);

    let (error, hint) = failure(&ws.create_command_into(&small.path, &[]).output().unwrap());
    // The cache is on another filesystem: the output holds a copy of every blob in
    // the staging directory, then the package.
    assert!(
        error.starts_with("error: not enough free space: this build needs "),
        "{error}"
    );
    assert!(
        error.ends_with(&format!(
            " MiB on the filesystem of {}, and 8.0 MiB is free there",
            small.path.display()
        )),
        "{error}"
    );
    let content = image.all().iter().map(|b| b.bytes.len()).sum::<usize>() as f64;
    let needed = needed_mib(&error) * MIB as f64;
    assert!(
        needed >= 2.0 * content && needed < 2.0 * content + 0.5 * MIB as f64,
        "{error}"
    );
    assert_eq!(
        hint,
        "hint: free some space there, or pass --output a directory on a filesystem with more room"
    );
    assert_no_blob_requested(&proxy);
    assert_eq!(small.names(""), Vec::<String>::new(), "left in the output");

    // Without a cache the downloads go to the staging directory there: the same need.
    let (error, hint) = failure(
        &ws.create_command_into(&small.path, &["--no-cache"])
            .output()
            .unwrap(),
    );
    // (The manifest, already in the staging directory, is not downloaded again.)
    let without_cache = needed_mib(&error) * MIB as f64;
    assert!(
        (without_cache - needed).abs() <= 0.1 * MIB as f64,
        "{error}"
    );
    assert!(hint.contains("pass --output a directory"), "{hint}");
    assert_no_blob_requested(&proxy);
    assert_eq!(small.names(""), Vec::<String>::new(), "left in the output");
}

#[test]
fn a_cache_without_room_for_the_downloads_is_refused_naming_the_cache() {
    let (_registry, image, proxy) = registry_with_image(12, |_| Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("disk").image(format!("{}/app:1", proxy.addr)));
    let cache = Tmpfs::mount(&ws.path("cache"), 8 * MIB);

    let (error, hint) = failure(
        &ws.create_command_into(&ws.path("out"), &[])
            .output()
            .unwrap(),
    );
    // The downloads are the layer and the config; the manifest is already stored.
    let download = (image.layers[0].bytes.len() + image.config.bytes.len()) as f64;
    assert_eq!(
        error,
        format!(
            "error: not enough free space: this build needs {:.1} MiB on the filesystem of {}, and 8.0 MiB is free there",
            download / MIB as f64,
            cache.path.display()
        )
    );
    assert_eq!(
        hint,
        "hint: free some space there, or pass --cache a directory on a filesystem with more room"
    );
    assert_no_blob_requested(&proxy);
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
}

#[test]
fn on_one_filesystem_the_cache_and_the_output_needs_are_added_up() {
    // 5 MiB to download plus a 5 MiB package: each fits in 8 MiB, both do not.
    let (_registry, _image, proxy) = registry_with_image(5, |_| Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("disk").image(format!("{}/app:1", proxy.addr)));
    let disk = Tmpfs::mount(&ws.path("disk"), 8 * MIB);
    let (cache, output) = (disk.path.join("cache"), disk.path.join("out"));

    let out = ws
        .create_command_into(&output, &[])
        .env("PKGR_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let (error, hint) = failure(&out);
    assert!(
        error.ends_with(&format!(
            " MiB on the filesystem of {} and {}, and 8.0 MiB is free there",
            cache.display(),
            output.display()
        )),
        "{error}"
    );
    let needed = needed_mib(&error);
    assert!((10.0..10.5).contains(&needed), "{error}");
    assert_eq!(
        hint,
        "hint: free some space there, or pass --cache or --output a directory on a filesystem with more room"
    );
    assert_no_blob_requested(&proxy);
    assert_eq!(disk.names("out"), Vec::<String>::new());
}

/// A proxy rule for each blob of the image that holds its request until `gate` opens.
fn hold_blobs(image: &Image, gate: &Arc<AtomicBool>) -> Vec<(String, Fault)> {
    [&image.config, &image.layers[0]]
        .iter()
        .map(|blob| (blob.digest.clone(), Fault::Hold(gate.clone())))
        .collect()
}

/// Waits until the proxy has seen a GET for each of the image's blobs: the plan-time
/// check has passed and the downloads are waiting at the proxy.
fn wait_for_blob_requests(proxy: &FaultProxy, image: &Image) {
    let asked = |digest: &str| {
        proxy
            .seen()
            .iter()
            .any(|s| s.method == "GET" && s.path.ends_with(digest))
    };
    wait_until("pkgr to ask for the blobs", || {
        asked(&image.config.digest) && asked(&image.layers[0].digest)
    });
}

/// Runs create until its downloads wait at the proxy, lets `meanwhile` fill a disk,
/// then lets the downloads go on and returns how the run ended.
fn create_while_a_disk_fills(
    cmd: Command,
    proxy: &FaultProxy,
    image: &Image,
    gate: &AtomicBool,
    meanwhile: impl FnOnce(),
) -> Output {
    let child = spawn(cmd);
    wait_for_blob_requests(proxy, image);
    meanwhile();
    gate.store(true, Ordering::SeqCst);
    child.wait_with_output().unwrap()
}

#[test]
fn a_cache_that_fills_up_during_the_download_is_one_clear_error_and_damages_no_entry() {
    let gate = Arc::new(AtomicBool::new(false));
    let (_registry, image, proxy) = registry_with_image(3, |image| hold_blobs(image, &gate));
    let ws = Workspace::new();
    ws.define(&Definition::new("disk").image(format!("{}/app:1", proxy.addr)));
    let cache = Tmpfs::mount(&ws.path("cache"), 8 * MIB);

    let out = create_while_a_disk_fills(
        ws.create_command_into(&ws.path("out"), &[]),
        &proxy,
        &image,
        &gate,
        || cache.fill("filler", 0),
    );
    let (error, hint) = failure(&out);
    let partial = |digest: &str| {
        cache
            .path
            .join("ingest-v1")
            .join(format!("{}.partial", &digest["sha256:".len()..]))
    };
    let expected = |path: PathBuf| {
        format!(
            "error: no space left on device while writing {} (the filesystem at {} is full)",
            path.display(),
            cache.path.display()
        )
    };
    // Both downloads meet the full disk; whichever fails first is reported.
    assert!(
        error == expected(partial(&image.layers[0].digest))
            || error == expected(partial(&image.config.digest)),
        "{error}"
    );
    assert_eq!(
        hint,
        format!(
            "hint: free some space on {}, or pass --cache a directory on a filesystem with more room",
            cache.path.display()
        )
    );
    assert_eq!(
        stderr(&out)
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    assert_eq!(
        assert_cache_entries_whole(&cache.path),
        1,
        "only the manifest, stored before the downloads, is in the cache"
    );

    // With room again, the same build completes from the same cache.
    std::fs::remove_file(cache.path.join("filler")).unwrap();
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(
        package.blob(&image.layers[0].digest),
        Some(&image.layers[0].bytes)
    );
    assert_eq!(assert_cache_entries_whole(&cache.path), 3);
}

#[test]
fn an_output_that_fills_up_while_the_package_is_written_leaves_nothing_behind() {
    let gate = Arc::new(AtomicBool::new(false));
    let (_registry, image, proxy) = registry_with_image(3, |image| hold_blobs(image, &gate));
    let ws = Workspace::new();
    ws.define(&Definition::new("disk").image(format!("{}/app:1", proxy.addr)));
    // 8 MiB holds the staged copy of the 3 MiB layer and the 3 MiB package, so the
    // plan-time check passes; once it has, another writer leaves 4 MiB: room for the
    // copy, not for the package.
    let disk = Tmpfs::mount(&ws.path("disk"), 8 * MIB);
    let output = disk.path.join("out");

    let out = create_while_a_disk_fills(
        ws.create_command_into(&output, &[]),
        &proxy,
        &image,
        &gate,
        || disk.fill("filler", 4 * MIB),
    );
    let (error, hint) = failure(&out);
    assert_eq!(
        error,
        format!(
            "error: no space left on device while writing {} (the filesystem at {} is full)",
            output.join("pkgr-package-disk-amd64.tar.zst").display(),
            disk.path.display()
        )
    );
    assert_eq!(
        hint,
        format!(
            "hint: free some space on {}, or pass --output a directory on a filesystem with more room",
            disk.path.display()
        )
    );
    assert_eq!(
        disk.names("out"),
        Vec::<String>::new(),
        "no partial package and no staging directory"
    );
    assert_eq!(assert_cache_entries_whole(&ws.path("cache")), 3);
}

#[test]
fn a_push_needs_no_temporary_space_for_a_package_far_larger_than_it() {
    let (registry, image, _proxy) = registry_with_image(48, |_| Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("disk").image(format!("{}/app:1", registry.addr)));
    let package = package_path(&ws.create(&[]));
    assert!(std::fs::metadata(&package).unwrap().len() > 48 * MIB);
    let target = TestRegistry::start();
    let tmp = Tmpfs::mount(&ws.path("tmp"), 16 * MIB);

    let out = ws
        .push_command(&package, &target.addr, &[])
        .env("TMPDIR", &tmp.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "push failed: {}", stderr(&out));
    // The registry checks each upload against its digest, and the manifest is taken
    // only once every blob it names is there.
    let pushed = crate::support::http_client()
        .build()
        .unwrap()
        .get(format!("http://{}/v2/app/manifests/1", target.addr))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(&pushed[..], &image.manifest.bytes[..]);
    assert_eq!(tmp.names(""), Vec::<String>::new());
}

#[test]
fn a_blob_declared_larger_than_the_bound_is_refused_unless_the_flag_raises_it() {
    use crate::support::images::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let config = pusher.blob(
        "app",
        OCI_CONFIG,
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
    );
    let small = pusher.blob("app", OCI_LAYER_GZIP, layer(&[("f", b"f")]));
    let mut declared = small.descriptor();
    declared["size"] = serde_json::json!(100u64 << 30);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [declared],
    }))
    .unwrap();
    pusher.manifest("app", "1", OCI_MANIFEST, manifest);
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("disk").image(format!("{}/app:1", proxy.addr)));
    let cache = Tmpfs::mount(&ws.path("cache"), 8 * MIB);

    let (error, hint) = failure(
        &ws.create_command_into(&ws.path("out"), &[])
            .output()
            .unwrap(),
    );
    assert_eq!(
        error,
        format!(
            "error: blob {} of {}/app:1 declares 107374182400 bytes (100.0 GiB), more than the 64.0 GiB allowed for one blob",
            small.digest, proxy.addr
        )
    );
    assert_eq!(
        hint,
        "hint: if the image really has a blob this large, raise the bound with --max-blob-size (e.g. --max-blob-size 128GiB)"
    );
    assert_no_blob_requested(&proxy);

    // Raised, the bound lets the blob through to the next check, the free space on
    // the cache's 8 MiB: 100 GiB would not fit there.
    let raised = ws
        .create_command_into(&ws.path("out"), &["--max-blob-size", "128GiB"])
        .output()
        .unwrap();
    let (error, _) = failure(&raised);
    assert_eq!(
        error,
        format!(
            "error: not enough free space: this build needs 100.0 GiB on the filesystem of {}, and 8.0 MiB is free there",
            cache.path.display()
        )
    );
    assert_no_blob_requested(&proxy);
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
}

#[test]
fn a_max_blob_size_that_is_not_a_size_is_a_usage_error() {
    let ws = Workspace::new();
    let out = ws.create(&["--max-blob-size", "lots"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "invalid value 'lots' for '--max-blob-size <SIZE>': `lots` is not a size: write a whole number, e.g. 64GiB"
        ),
        "{}",
        stderr(&out)
    );
}
