//! `pkgr create` through a fault-injecting (and request-logging) proxy: cut bodies
//! resume with a Range request, transient statuses are retried, endless manifests are
//! cut off, corrupt bytes never reach a package or the cache, and no request is made
//! twice.

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Pusher};
use crate::support::package::Package;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::{package_path, spawn, stderr, wait_until, Workspace};

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(9, 3 << 20))])],
    );
    let big = &image.layers[0];
    let cut = 1 << 20;
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(big.digest.clone(), Fault::CutAfter(cut))],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(package.blob(&big.digest), Some(&big.bytes));

    let ranges: Vec<Option<String>> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&big.digest))
        .map(|s| s.range)
        .collect();
    assert_eq!(
        ranges,
        vec![Some("bytes=0-".to_owned()), Some(format!("bytes={cut}-"))],
        "the second request must resume where the cut left off"
    );
}

#[test]
fn transient_statuses_are_retried() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", true, "amd64", &[layer(&[("a", b"a")])]);
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![
            ("GET /v2/app/manifests/1".to_owned(), Fault::Status(503)),
            (image.layers[0].digest.clone(), Fault::Status(429)),
            (image.config.digest.clone(), Fault::Status(502)),
        ],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let package = Package::read(&package_path(&ws.create(&[])));
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
    // Each fault fired once, and the same request was then made again and served.
    let seen = proxy.seen();
    for pattern in [
        "/v2/app/manifests/1".to_owned(),
        image.layers[0].digest.clone(),
        image.config.digest.clone(),
    ] {
        let gets = seen
            .iter()
            .filter(|s| s.method == "GET" && s.path.contains(&pattern))
            .count();
        assert_eq!(gets, 2, "{pattern}: one faulted request and one retry");
    }
}

#[test]
fn a_registry_without_credentials_is_asked_each_thing_once() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("a", b"a")]), layer(&[("b", b"b")])],
    );
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    package_path(&ws.create(&[]));

    let mut gets: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET")
        .map(|s| s.path)
        .collect();
    gets.sort();
    let mut expected: Vec<String> = image
        .layers
        .iter()
        .chain([&image.config])
        .map(|blob| format!("/v2/app/blobs/{}", blob.digest))
        .chain(["/v2/app/manifests/1".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(gets, expected, "each object once, and no probe of /v2/");
}

#[test]
fn a_manifest_body_that_never_ends_is_refused_at_the_limit() {
    let registry = TestRegistry::start();
    Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![("GET /v2/app/manifests/1".to_owned(), Fault::EndlessBody)],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the manifest of {}/app:1 is over the 4194304-byte limit",
            proxy.addr
        )),
        "{err}"
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
}

#[test]
fn corrupt_bytes_fail_the_build_and_stay_out_of_the_cache() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("data", &noise(5, 200_000))])],
    );
    let bad = image.layers[0].digest.clone();
    // Every attempt gets the same flipped byte.
    let rules = (0..10)
        .map(|_| (bad.clone(), Fault::Corrupt(1000)))
        .collect();
    let proxy = FaultProxy::start(&registry.addr, rules);
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("blob {bad} for {}/app:1 is damaged", proxy.addr)),
        "{err}"
    );
    assert!(err.contains("wrong content"), "{err}");
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    let cached = ws.cached_blob(&bad);
    assert!(!cached.exists(), "a corrupt blob reached the cache");
}

#[test]
fn ctrl_c_leaves_no_package_and_no_staging() {
    signal_mid_download("INT", 130, "error: interrupted");
}

#[test]
fn sigterm_cleans_up_like_ctrl_c() {
    signal_mid_download("TERM", 143, "error: terminated");
}

/// Sends `signal` to a create whose only layer download is stalled, then checks the
/// exit status and message and that no package, staging or unfinished blob is left.
fn signal_mid_download(signal: &str, code: i32, message: &str) {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(
            image.layers[0].digest.clone(),
            Fault::Stall(std::time::Duration::from_secs(30)),
        )],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let child = spawn(ws.create_command(&[]));
    // Signal once the download is under way (the stalled layer has been asked for).
    wait_until("the download to start", || {
        proxy
            .seen()
            .iter()
            .any(|s| s.path.ends_with(&image.layers[0].digest))
    });
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(message), "{err}");
    assert!(
        ws.output_files().is_empty(),
        "left behind: {:?}",
        ws.output_files()
    );
    let cached = ws.path("cache").join("blobs-v1/sha256");
    let names: Vec<_> = std::fs::read_dir(cached)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| image.layers[0].digest.ends_with(n.to_str().unwrap())),
        "an unfinished blob reached the cache"
    );
}

/// Builds once through `addr` so the cache holds every blob, then flips one byte of
/// the cached layer in place (same length: only re-hashing can tell). Returns the
/// layer's digest and its cache path.
fn damage_cached_layer(
    ws: &Workspace,
    image: &crate::support::images::Image,
) -> (String, std::path::PathBuf) {
    let first = package_path(&ws.create(&[]));
    std::fs::remove_file(&first).unwrap();
    let digest = image.layers[0].digest.clone();
    let cached = ws.cached_blob(&digest);
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&cached, &bytes).unwrap();
    (digest, cached)
}

#[test]
fn a_damaged_cache_blob_heals_in_one_run() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("data", &noise(11, 100_000))])],
    );
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let (digest, cached) = damage_cached_layer(&ws, &image);
    let before = proxy.seen().len();

    let out = ws.create(&[]);
    let err = stderr(&out);
    let package = Package::read(&package_path(&out));
    let warning = format!(
        "warning: blob {digest} of {}/app:1 was damaged at {} (its bytes hash to sha256:",
        proxy.addr,
        cached.display()
    );
    assert_eq!(err.matches(&warning).count(), 1, "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert_eq!(package.blob(&digest), Some(&image.layers[0].bytes));
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        image.layers[0].bytes,
        "the cache entry must hold the right bytes again"
    );
    let refetched = proxy.seen()[before..]
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&digest))
        .count();
    assert_eq!(
        refetched, 1,
        "the damaged blob is fetched again exactly once"
    );
}

#[test]
fn a_damaged_cache_blob_whose_source_is_also_bad_stops_the_build() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("data", &noise(12, 100_000))])],
    );
    let bad = image.layers[0].digest.clone();
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", registry.addr)));
    let (digest, cached) = damage_cached_layer(&ws, &image);
    // From now on the source corrupts every download of that blob.
    let rules = (0..10)
        .map(|_| (bad.clone(), Fault::Corrupt(1000)))
        .collect();
    let proxy = FaultProxy::start(&registry.addr, rules);
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));

    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot fetch the damaged blob again"), "{err}");
    assert!(
        err.contains(&format!(
            "blob {digest} for {}/app:1 is damaged",
            proxy.addr
        )),
        "{err}"
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    assert!(
        !cached.exists(),
        "neither the damaged nor a corrupt copy may stay"
    );
}

#[test]
fn a_damaged_cached_manifest_heals_from_its_source_in_one_run() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("m", b"m")])]);
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    std::fs::remove_file(package_path(&ws.create(&[]))).unwrap();
    // The tag's manifest is fetched every run, but a same-size copy already in the
    // cache is not rewritten: only the seal can tell it is damaged.
    let digest = image.manifest.digest.clone();
    let cached = ws.cached_blob(&digest);
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&cached, &bytes).unwrap();
    let before = proxy.seen().len();

    let out = ws.create(&[]);
    let err = stderr(&out);
    let package = Package::read(&package_path(&out));
    let warning = format!(
        "warning: blob {digest} of {}/app:1 was damaged at {} (its bytes hash to sha256:",
        proxy.addr,
        cached.display()
    );
    assert_eq!(err.matches(&warning).count(), 1, "{err}");
    assert_eq!(package.blob(&digest), Some(&image.manifest.bytes));
    assert_eq!(std::fs::read(&cached).unwrap(), image.manifest.bytes);
    let by_digest = proxy.seen()[before..]
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&format!("/manifests/{digest}")))
        .count();
    assert_eq!(by_digest, 1, "the manifest is fetched again by digest once");
}

#[test]
fn a_registry_error_body_reaches_the_terminal_escaped() {
    let registry = TestRegistry::start();
    Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let hostile = format!("\\u001b[2J\\u001b]0;owned\\u0007{}", "x".repeat(5000));
    let body = format!(r#"{{"errors":[{{"code":"UNSUPPORTED","message":"{hostile}"}}]}}"#);
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(
            "GET /v2/app/manifests/1".to_owned(),
            Fault::Answer(400, body),
        )],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let bad = out
        .stderr
        .iter()
        .position(|&b| (b < 0x20 && b != b'\n') || b == 0x7f);
    assert!(bad.is_none(), "a control byte at {bad:?}: {err}");
    assert!(err.contains(r"\u{1b}[2J\u{1b}]0;owned\u{7}xxx"), "{err}");
    assert!(err.len() < 2000, "the 5000-byte message must be cut: {err}");
}

#[test]
fn a_trickling_blob_is_given_up_on_and_resumed() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(5, 64 << 10))])],
    );
    let big = image.layers[0].clone();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(
            big.digest.clone(),
            Fault::Trickle(std::time::Duration::from_millis(100)),
        )],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let package = Package::read(&package_path(&ws.create(&["--timeout", "1"])));
    assert_eq!(package.blob(&big.digest), Some(&big.bytes));
    let ranges: Vec<Option<String>> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&big.digest))
        .map(|s| s.range)
        .collect();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_ne!(
        ranges[1].as_deref(),
        Some("bytes=0-"),
        "the retry must resume after the trickled bytes: {ranges:?}"
    );
}

#[test]
fn a_registry_that_keeps_stalling_fails_saying_so() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let layer_digest = image.layers[0].digest.clone();
    let stall = Fault::Stall(std::time::Duration::from_secs(60));
    let proxy = FaultProxy::start(
        &registry.addr,
        (0..5)
            .map(|_| (layer_digest.clone(), stall.clone()))
            .collect(),
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let out = ws.create(&["--timeout", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: the download of blob {layer_digest} for {}/app:1 stalled",
            proxy.addr
        )),
        "{err}"
    );
    assert!(err.contains("raise --timeout"), "{err}");
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
}

#[test]
fn a_manifest_request_never_answered_is_retried_then_reported_as_a_stall() {
    let registry = TestRegistry::start();
    Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let manifest = "GET /v2/app/manifests/1".to_owned();

    let once = FaultProxy::start(&registry.addr, vec![(manifest.clone(), Fault::Hang)]);
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", once.addr)));
    package_path(&ws.create(&["--timeout", "1"]));

    let always = FaultProxy::start(
        &registry.addr,
        (0..5).map(|_| (manifest.clone(), Fault::Hang)).collect(),
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", always.addr)));
    let out = ws.create(&["--timeout", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: {0} stalled while sending {0}/app:1",
            always.addr
        )),
        "{err}"
    );
}

#[test]
fn a_blob_redirected_elsewhere_is_followed_and_a_redirect_loop_is_an_error() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let layer_digest = image.layers[0].digest.clone();
    // As registries send blobs to their storage: another server, here the registry
    // itself under its own address.
    let storage = format!("http://{}/v2/app/blobs/{layer_digest}", registry.addr);
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(layer_digest.clone(), Fault::Redirect(storage))],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", proxy.addr)));
    let package = Package::read(&package_path(&ws.create(&[])));
    assert_eq!(
        package.blob(&layer_digest),
        Some(&image.layers[0].bytes),
        "the redirected blob is byte-exact"
    );

    let looping = FaultProxy::start(
        &registry.addr,
        (0..100)
            .map(|_| (layer_digest.clone(), Fault::Redirect("SELF".into())))
            .collect(),
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", looping.addr)));
    let out = ws.create(&["--no-cache"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: the request for blob {layer_digest} of {}/app:1 failed",
            looping.addr
        )) && err.contains("caused by: too many redirects"),
        "{err}"
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
}

#[test]
fn an_upload_longer_than_the_timeout_is_not_taken_for_a_stall() {
    let source = TestRegistry::start();
    let image = Pusher::new(&source.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(8, 512 << 10))])],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("faults").image(format!("{}/app:1", source.addr)));
    let package = package_path(&ws.create(&[]));

    // 16 KiB every 100 ms: the layer takes about 3 s to upload, three timeouts.
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(
        &target.addr,
        vec![(
            // The upload's PUT names the digest in its query, `:` encoded.
            format!(
                "digest=sha256%3A{}",
                image.layers[0].digest.trim_start_matches("sha256:")
            ),
            Fault::SlowUpload(std::time::Duration::from_millis(100)),
        )],
    );
    let started = std::time::Instant::now();
    let out = ws.push(&package, &proxy.addr, &["--timeout", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() > std::time::Duration::from_secs(2),
        "the slow upload must have outlasted the timeout for this test to mean anything"
    );
    let puts = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(puts, 2, "each blob uploaded once, none retried");
    assert_eq!(
        Pusher::new(&target.addr).get_manifest("app", "1"),
        image.manifest.bytes
    );
}
