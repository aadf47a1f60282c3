//! `pkgr publish`, `pkgr pull` and `pkgr inspect oci://…`: a package through a real
//! registry and back, byte for byte; the summary of a published package without its
//! image blobs; skips and mounts counted at a proxy; and each bad input refused in one
//! sentence with nothing written.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Pusher};
use crate::support::keys::key_pair;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::tmpfs::Tmpfs;
use crate::support::{package_path, sha256_file, spawn, stderr, stdout, wait_until, Workspace};

/// A package of two images that share a large base layer, and a Helm chart.
struct Fixture {
    _source: TestRegistry,
    ws: Workspace,
    package: PathBuf,
    /// The digests of the images' layers (not their manifests or configs).
    layers: Vec<String>,
}

fn fixture() -> Fixture {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let base = layer(&[("base", &noise(7, 3 << 20))]);
    let web = pusher.image(
        "team/web",
        "1.0",
        true,
        "amd64",
        &[base.clone(), layer(&[("w", b"web")])],
    );
    let api = pusher.image(
        "team/api",
        "2.0",
        false,
        "amd64",
        &[base, layer(&[("a", b"api")])],
    );
    pusher.helm_chart("charts/web", "0.1.0");
    let ws = Workspace::new();
    ws.define(
        &Definition::new("shop").version("1.2.0").component(
            "all",
            ["team/web:1.0", "team/api:2.0", "charts/web:0.1.0"]
                .iter()
                .map(|r| format!("{}/{r}", source.addr)),
        ),
    );
    let package = package_path(&ws.create(&[]));
    let mut layers: Vec<String> = [web, api]
        .iter()
        .flat_map(|image| image.layers.iter().map(|l| l.digest.clone()))
        .collect();
    layers.sort();
    layers.dedup();
    Fixture {
        _source: source,
        ws,
        package,
        layers,
    }
}

fn run(ws: &Workspace, args: &[&str]) -> Output {
    ws.pkgr().args(args).output().unwrap()
}

fn publish(ws: &Workspace, package: &Path, address: &str, extra: &[&str]) -> Output {
    let mut cmd = ws.pkgr();
    cmd.args(["publish", "--no-progress"])
        .arg(package)
        .arg(address)
        .args(extra);
    cmd.output().unwrap()
}

/// The fixture's package published into a registry of its own, as `team/shop:1`.
fn published(f: &Fixture) -> (TestRegistry, String) {
    let target = TestRegistry::start();
    let address = format!("oci://{}/team/shop:1", target.addr);
    assert_ok("publish", &publish(&f.ws, &f.package, &address, &[]));
    (target, address)
}

fn pull(ws: &Workspace, address: &str, into: &Path) -> Output {
    ws.pull_command(address, into).output().unwrap()
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// The one `error:` line, and that nothing else failed loudly.
fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let err = stderr(out);
    err.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(read) => read
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The blob digests a proxy saw asked for with GET, and how many uploads it saw start.
fn blob_gets(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/sha256:"))
        .map(|s| s.path.rsplit('/').next().unwrap().to_owned())
        .collect()
}

fn uploads(proxy: &FaultProxy) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/blobs/uploads/"))
        .count()
}

#[test]
fn a_published_package_pulls_back_into_the_identical_file() {
    let f = fixture();
    let target = TestRegistry::start();
    let out = publish(
        &f.ws,
        &f.package,
        &format!("oci://{}/team/shop", target.addr),
        &[],
    );
    assert_ok("publish", &out);
    let address = format!("oci://{}/team/shop:1.2.0-amd64", target.addr);
    assert!(
        stdout(&out).contains(&format!("to {address} (sha256:")),
        "{}",
        stdout(&out)
    );

    let into = f.ws.path("pulled");
    let out = pull(&f.ws, &address, &into);
    assert_ok("pull", &out);
    let name = f.package.file_name().unwrap();
    assert_eq!(entries(&into), [name.to_string_lossy().into_owned()]);
    let sha256 = sha256_file(&f.package);
    assert_eq!(sha256_file(&into.join(name)), sha256);
    assert!(stdout(&out).contains(&sha256), "{}", stdout(&out));
    assert_eq!(
        std::fs::read(into.join(name)).unwrap(),
        std::fs::read(&f.package).unwrap()
    );

    // The uncompressed form round-trips too, under a tag of the caller's.
    let plain = f.ws.path("plain");
    let made =
        f.ws.create_command_into(&plain, &["--uncompressed"])
            .output()
            .unwrap();
    let plain_package = package_path(&made);
    let address = format!("oci://{}/team/shop:plain", target.addr);
    assert_ok("publish", &publish(&f.ws, &plain_package, &address, &[]));
    let into = f.ws.path("pulled-plain");
    assert_ok("pull", &pull(&f.ws, &address, &into));
    let name = plain_package.file_name().unwrap();
    assert_eq!(sha256_file(&into.join(name)), sha256_file(&plain_package));

    // A split package is published whole and pulled as the one file its parts join to.
    let split = f.ws.path("split");
    let made =
        f.ws.create_command_into(&split, &["--max-package-size", "1MiB"])
            .output()
            .unwrap();
    let part000 = package_path(&made);
    assert!(
        part000.to_string_lossy().ends_with(".part000"),
        "{}",
        part000.display()
    );
    let address = format!("oci://{}/team/shop:split", target.addr);
    assert_ok("publish", &publish(&f.ws, &part000, &address, &[]));
    let into = f.ws.path("pulled-split");
    assert_ok("pull", &pull(&f.ws, &address, &into));
    assert_eq!(
        entries(&into),
        [f.package
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()]
    );
    assert_eq!(
        sha256_file(&into.join(f.package.file_name().unwrap())),
        sha256
    );
}

#[test]
fn inspect_of_a_published_package_shows_the_files_summary_without_its_image_layers() {
    let f = fixture();
    let (target, _) = published(&f);
    let proxy = FaultProxy::start(&target.addr, vec![]);
    let through_proxy = format!("oci://{}/team/shop:1", proxy.addr);

    for extra in [&[][..], &["--json"][..]] {
        let local = f.ws.inspect(&f.package, extra);
        assert_ok("inspect", &local);
        let mut args = vec!["inspect", through_proxy.as_str()];
        args.extend(extra);
        let remote = run(&f.ws, &args);
        assert_ok("inspect oci://", &remote);
        assert_eq!(stdout(&remote), stdout(&local), "{extra:?}");
    }
    let fetched = blob_gets(&proxy);
    assert!(!fetched.is_empty());
    for layer in &f.layers {
        assert!(
            !fetched.contains(layer),
            "inspect fetched image layer {layer}"
        );
    }
}

#[test]
fn inspect_of_a_published_signed_package_says_so_and_checks_the_key_as_for_the_file() {
    let f = fixture();
    let dir = f.ws.dir.path();
    let ((private, public), (_, other)) = (key_pair(dir, "signer"), key_pair(dir, "other"));
    let signed = package_path(
        &f.ws
            .create_command_into(
                &f.ws.path("signed"),
                &["--signing-key", private.to_str().unwrap()],
            )
            .output()
            .unwrap(),
    );
    let target = TestRegistry::start();
    let address = format!("oci://{}/team/shop:signed", target.addr);
    assert_ok("publish", &publish(&f.ws, &signed, &address, &[]));
    let inspect = |what: &str, key: Option<&Path>| {
        let mut cmd = f.ws.pkgr();
        cmd.arg("inspect").arg(what);
        if let Some(key) = key {
            cmd.arg("--key").arg(key);
        }
        cmd.output().unwrap()
    };
    let file = signed.to_str().unwrap();
    let remote = inspect(&address, None);
    assert_ok("inspect oci://", &remote);
    assert!(
        stdout(&remote).contains("signature: signed, not verified (pass --key)"),
        "{}",
        stdout(&remote)
    );
    assert_eq!(stdout(&remote), stdout(&inspect(file, None)));
    let remote = inspect(&address, Some(&public));
    assert_ok("inspect oci:// --key", &remote);
    assert_eq!(stdout(&remote), stdout(&inspect(file, Some(&public))));
    let (remote, local) = (inspect(&address, Some(&other)), inspect(file, Some(&other)));
    assert_eq!(remote.status.code(), Some(1), "{}", stderr(&remote));
    assert_eq!(stdout(&remote), stdout(&local));
    assert_eq!(refused(&remote), refused(&local));
}

#[test]
fn a_second_publish_sends_no_blob_and_one_after_push_mounts_the_images_blobs() {
    let f = fixture();
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(&target.addr, vec![]);
    let address = format!("oci://{}/team/shop:1", proxy.addr);
    assert_ok("publish", &publish(&f.ws, &f.package, &address, &[]));
    let first = uploads(&proxy);
    assert!(first > 0);

    let out = publish(&f.ws, &f.package, &address, &["--json"]);
    assert_ok("publish", &out);
    assert_eq!(uploads(&proxy), first, "the second publish uploaded");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["uploaded"]["blobs"], 0);
    assert_eq!(doc["mounted"]["blobs"], 0);
    assert_eq!(doc["package"]["sha256"], sha256_file(&f.package));

    // Images pushed first: every one of their blobs is mounted, not sent again.
    let other = TestRegistry::start();
    assert_ok("push", &f.ws.push(&f.package, &other.addr, &[]));
    let proxy = FaultProxy::start(&other.addr, vec![]);
    let address = format!("oci://{}/team/shop", proxy.addr);
    let out = publish(&f.ws, &f.package, &address, &["--json"]);
    assert_ok("publish", &out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let put: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path.contains("digest=sha256"))
        .map(|s| s.path)
        .collect();
    for layer in &f.layers {
        assert!(
            !put.iter().any(|p| p.contains(layer.as_str())),
            "{layer} was sent: {put:?}"
        );
    }
    assert!(
        doc["mounted"]["blobs"].as_u64().unwrap() >= f.layers.len() as u64,
        "{doc}"
    );
    assert_eq!(
        sha256_file(&pulled(&f.ws, &format!("{address}:1.2.0-amd64"))),
        sha256_file(&f.package)
    );
}

/// Pulls `address` into a fresh directory; the package file written.
fn pulled(ws: &Workspace, address: &str) -> PathBuf {
    let into = ws.path("mounted-pull");
    assert_ok("pull", &pull(ws, address, &into));
    let name = entries(&into).pop().unwrap();
    into.join(name)
}

#[test]
fn bad_addresses_unknown_tags_and_damaged_blobs_are_refused_leaving_nothing() {
    let f = fixture();
    let target = TestRegistry::start();

    let out = publish(
        &f.ws,
        &f.package,
        &format!("{}/team/shop", target.addr),
        &[],
    );
    assert_eq!(
        refused(&out),
        format!(
            "error: `{}/team/shop` is not a published package's address: write oci://REGISTRY/REPOSITORY[:TAG]",
            target.addr
        )
    );
    assert!(target.catalog().is_empty());
    let into = f.ws.path("pulled");
    let untagged = format!("oci://{}/team/shop", target.addr);
    assert_eq!(
        refused(&pull(&f.ws, &untagged, &into)),
        format!("error: `{untagged}` names no tag: write oci://REGISTRY/REPOSITORY:TAG")
    );

    let address = format!("oci://{}/team/shop:1", target.addr);
    assert_ok("publish", &publish(&f.ws, &f.package, &address, &[]));
    let unknown = format!("oci://{}/team/shop:2", target.addr);
    assert_eq!(
        refused(&pull(&f.ws, &unknown, &into)),
        format!(
            "error: {}/team/shop:2 was not found in its registry",
            target.addr
        )
    );
    assert_eq!(
        refused(&run(&f.ws, &["inspect", &unknown])),
        format!(
            "error: {}/team/shop:2 was not found in its registry",
            target.addr
        )
    );
    assert!(entries(&into).is_empty(), "{:?}", entries(&into));

    // One byte of the shared base layer changed in the registry's own storage.
    let base = &f.layers[0];
    let stored = target.blob_in_storage(base);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let expected = format!(
        "error: the registry's copy of images/blobs/sha256/{} in {address} is damaged: its bytes hash to sha256:",
        base.trim_start_matches("sha256:")
    );
    let line = refused(&pull(&f.ws, &address, &into));
    assert!(line.starts_with(&expected), "{line}");
    assert!(entries(&into).is_empty(), "{:?}", entries(&into));
    // Held back until the writer waits for it, the layer goes to the writer in memory
    // only, so naming it takes fetching it again: the same sentence, two GETs.
    let proxy = FaultProxy::start(
        &target.addr,
        vec![(base.clone(), Fault::Stall(Duration::from_secs(1)))],
    );
    let through = format!("oci://{}/team/shop:1", proxy.addr);
    let line = refused(&pull(&f.ws, &through, &into));
    assert!(
        line.starts_with(&expected.replace(&address, &through)),
        "{line}"
    );
    let gets = blob_gets(&proxy);
    assert_eq!(gets.iter().filter(|d| *d == base).count(), 2, "{gets:?}");
    assert!(entries(&into).is_empty(), "{:?}", entries(&into));
}

#[test]
fn a_pull_whose_downloads_are_cut_resumes_or_starts_over_and_still_rebuilds_the_file() {
    let f = fixture();
    let (target, _) = published(&f);
    // The 3 MiB base layer is cut after 1.5 MiB, past the first MiB the package writer
    // may already have read; its resumed request loses its Range, so the registry sends
    // it whole and the staged file starts over under the reader. Another layer is cut
    // once and resumed from where it stopped.
    let mut by_size = f.layers.clone();
    by_size.sort_by_key(|d| std::fs::metadata(target.blob_in_storage(d)).unwrap().len());
    let (base, other) = (by_size.last().unwrap(), &by_size[0]);
    assert!(
        std::fs::metadata(target.blob_in_storage(base))
            .unwrap()
            .len()
            > 3 << 20
    );
    let proxy = FaultProxy::start(
        &target.addr,
        vec![
            (base.clone(), Fault::CutAfter(3 << 19)),
            (base.clone(), Fault::IgnoreRange),
            (other.clone(), Fault::CutAfter(100)),
        ],
    );
    let into = f.ws.path("pulled");
    let through = format!("oci://{}/team/shop:1", proxy.addr);
    assert_ok("pull", &pull(&f.ws, &through, &into));
    let name = f.package.file_name().unwrap();
    assert_eq!(entries(&into), [name.to_string_lossy().into_owned()]);
    assert_eq!(sha256_file(&into.join(name)), sha256_file(&f.package));
    let gets = blob_gets(&proxy);
    assert_eq!(gets.iter().filter(|d| *d == base).count(), 2, "{gets:?}");
    assert_eq!(gets.iter().filter(|d| *d == other).count(), 2, "{gets:?}");
}

#[test]
fn a_pull_over_a_slow_link_widens_to_run_its_large_layers_at_once() {
    // Three layers of a little over 8 MiB: the 16 MiB window a pull starts with holds
    // one of them at a time; over a link of 4 MiB/s per connection the writer waits,
    // and the window widens until all three run at once (one at a time without it).
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let layers: Vec<_> = (0..3)
        .map(|i| layer(&[("big", &noise(100 + i, 8 << 20))]))
        .collect();
    let image = pusher.image("big", "1", false, "amd64", &layers);
    let ws = Workspace::new();
    ws.define(&Definition::new("slow").image(format!("{}/big:1", source.addr)));
    let package = package_path(&ws.create(&[]));
    let target = TestRegistry::start();
    let address = format!("oci://{}/team/slow:1", target.addr);
    assert_ok("publish", &publish(&ws, &package, &address, &[]));
    let slow = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), Fault::Throttle(4 << 20)))
        .collect();
    let proxy = FaultProxy::start(&target.addr, slow);
    let into = ws.path("pulled");
    let through = format!("oci://{}/team/slow:1", proxy.addr);
    assert_ok("pull", &pull(&ws, &through, &into));
    let name = package.file_name().unwrap();
    assert_eq!(sha256_file(&into.join(name)), sha256_file(&package));
    assert_eq!(
        proxy.most_throttled_at_once(),
        3,
        "the large layers did not all run at once over the slow link"
    );
}

#[test]
fn a_pull_without_room_is_refused_before_any_download() {
    let f = fixture();
    let (target, _) = published(&f);
    let proxy = FaultProxy::start(&target.addr, vec![]);
    let size = std::fs::metadata(&f.package).unwrap().len();
    // Room for the package or for its staged layers, not for both side by side.
    let disk = Tmpfs::mount(&f.ws.path("disk"), size * 3 / 2);
    let into = disk.path.join("out");
    let out = pull(&f.ws, &format!("oci://{}/team/shop:1", proxy.addr), &into);
    let line = refused(&out);
    assert!(
        line.starts_with("error: not enough free space: this build needs ")
            && line.contains(&format!("on the filesystem of {},", into.display())),
        "{line}"
    );
    assert!(
        stderr(&out).contains(
            "hint: free some space there, or pass --output a directory on a filesystem with more room"
        ),
        "{}",
        stderr(&out)
    );
    assert!(blob_gets(&proxy).is_empty(), "{:?}", blob_gets(&proxy));
    assert!(entries(&into).is_empty(), "{:?}", entries(&into));
}

#[test]
fn a_pull_whose_filesystem_fills_up_meanwhile_is_one_sentence_and_leaves_nothing() {
    let f = fixture();
    let (target, _) = published(&f);
    let size = std::fs::metadata(&f.package).unwrap().len();
    let gate = Arc::new(AtomicBool::new(false));
    let held = f.layers[0].clone();
    let proxy = FaultProxy::start(
        &target.addr,
        vec![(held.clone(), Fault::Hold(gate.clone()))],
    );
    // Room enough when pull checks; then another writer leaves half a package.
    let disk = Tmpfs::mount(&f.ws.path("disk"), size * 3);
    let into = disk.path.join("out");
    let through = format!("oci://{}/team/shop:1", proxy.addr);
    let child = spawn(f.ws.pull_command(&through, &into));
    wait_until("pull to ask for the held layer", || {
        blob_gets(&proxy).contains(&held)
    });
    disk.fill("filler", size / 2);
    gate.store(true, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    let package = into.join(f.package.file_name().unwrap());
    assert_eq!(
        refused(&out),
        format!(
            "error: no space left on device while writing {} (the filesystem at {} is full)",
            package.display(),
            disk.path.display()
        )
    );
    assert!(
        stderr(&out).contains(&format!(
            "hint: free some space on {}, or pass --output a directory on a filesystem with more room",
            disk.path.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(entries(&into).is_empty(), "{:?}", entries(&into));
}

#[test]
fn a_package_that_fails_verification_is_not_published() {
    let f = fixture();
    let mut bytes = std::fs::read(&f.package).unwrap();
    // Inside the large base layer's frames, past the package's head.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    let tampered = f.ws.path("tampered.tar.zst");
    std::fs::write(&tampered, bytes).unwrap();
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(&target.addr, vec![]);
    let out = publish(
        &f.ws,
        &tampered,
        &format!("oci://{}/team/shop", proxy.addr),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
}
