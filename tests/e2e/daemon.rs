//! The Docker daemon fallback against a real `dockerd`: an image that exists only in
//! the daemon (loaded from a tar built here, under a registry name nobody serves) is
//! packaged with every blob named by its bytes (its layers as the daemon saved them,
//! or gzip-compressed when asked; the same image, the same package bytes), checked
//! against the free space before it is imported, and pushed cleanly; the flag that turns
//! the fallback off, and a daemon that is absent or refuses, are clear errors. Hostile
//! save streams, which no real daemon can be made to write, come from a stand-in of
//! the engine API, and are refused at once, in bounded memory, leaving nothing behind.

use std::process::Output;

use crate::support::definition::Definition;
use crate::support::dockerd::{legacy_image_tar, plain_layer, TestDockerd};
use crate::support::images::{noise, sha256};
use crate::support::measure::measure;
use crate::support::package::Package;
use crate::support::registry::{Options, TestRegistry};
use crate::support::save_stand_in::{SaveStandIn, Tail};
use crate::support::tarfix::header;
use crate::support::{package_path, stderr, stdout, Workspace};

/// A loopback port that nothing listens on: bound, then freed.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `pkgr create` with `DOCKER_HOST` set to `host`.
fn create(ws: &Workspace, host: &str, extra: &[&str]) -> Output {
    let mut cmd = ws.create_command(extra);
    cmd.env("DOCKER_HOST", host).output().unwrap()
}

/// Loads an image of two uncompressed layers (one of 1 MiB of noise) into `dockerd`
/// as `tag`; returns the config's bytes and the layers.
fn load(dockerd: &TestDockerd, tag: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let layers = vec![
        plain_layer(&[("hello", b"#!/bin/sh\necho from the daemon\n")]),
        plain_layer(&[("data.bin", &noise(7, 1 << 20))]),
    ];
    let (tar, config) = legacy_image_tar(tag, &layers);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(&path, tar).unwrap();
    dockerd.load(&path);
    (config, layers)
}

/// Checks the contract of a failed create and returns its stderr from the `error:`
/// line on (progress steps come before it).
fn failed(ws: &Workspace, out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(
        ws.output_files().is_empty(),
        "a failed create left {:?}",
        ws.output_files()
    );
    let at = err
        .find("error: ")
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    err[at..].to_owned()
}

#[test]
fn image_only_in_the_daemon_is_packaged_content_named_and_pushed() {
    let dockerd = TestDockerd::start();
    let port = closed_port();
    let reference = format!("127.0.0.1:{port}/daemon/app:1");
    let (config, layers) = load(&dockerd, &reference);
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(&reference));

    let out = create(&ws, &dockerd.host, &[]);
    let package = package_path(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning: cannot reach the registry 127.0.0.1:{port}; packaging {reference} from the Docker daemon at {}",
            dockerd.host
        )),
        "{err}"
    );

    let read = Package::read(&package);
    for name in read.blob_names() {
        assert_eq!(
            sha256(&read.files[name]),
            format!("sha256:{}", name.rsplit('/').next().unwrap()),
            "{name} is not named by its bytes"
        );
    }
    let entry = read.entry(&reference);
    let manifest_bytes = read.blob(entry["digest"].as_str().unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(manifest_bytes).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // The config is the daemon's bytes, named by them: with this store the image ID
    // is the config digest, and it is the content that decides the name, not the ID.
    assert_eq!(manifest["config"]["digest"], sha256(&config));
    assert_eq!(
        read.blob(manifest["config"]["digest"].as_str().unwrap())
            .unwrap(),
        &config
    );
    assert_eq!(dockerd.image_id(&reference), sha256(&config));
    // The daemon holds the layers uncompressed, and they are kept so: each is the
    // daemon's bytes, named by them (the config's diff_ids), as `docker save` has them.
    let listed = manifest["layers"].as_array().unwrap();
    assert_eq!(listed.len(), layers.len());
    for (descriptor, plain) in listed.iter().zip(&layers) {
        assert_eq!(
            descriptor["mediaType"],
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(descriptor["digest"], sha256(plain));
        assert_eq!(descriptor["size"], plain.len());
        let kept = read.blob(descriptor["digest"].as_str().unwrap()).unwrap();
        assert_eq!(kept, plain, "a layer changed on the way");
    }
    let config_json: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let diff_ids: Vec<_> = layers.iter().map(|l| sha256(l)).collect();
    assert_eq!(
        config_json["rootfs"]["diff_ids"],
        serde_json::json!(diff_ids)
    );
    // The import is reported, with its size, before and after.
    assert!(
        err.contains(&format!("importing {reference} from the Docker daemon (")),
        "{err}"
    );
    assert!(
        err.contains(&format!("imported {reference} from the Docker daemon: ")),
        "{err}"
    );

    let verify = ws.inspect(&package, &["--verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));

    let target = TestRegistry::start();
    let pushed = ws.push(&package, &target.addr, &[]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let skopeo = |extra: &[&str]| {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .args(extra)
            .arg(format!("docker://{}/daemon/app:1", target.addr))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run skopeo ({e}): install it with `apt-get install skopeo`")
            });
        assert!(out.status.success(), "skopeo: {}", stderr(&out));
        out.stdout
    };
    assert_eq!(&skopeo(&["--raw"]), manifest_bytes);
    assert_eq!(skopeo(&["--config", "--raw"]), config);
    let inspected: serde_json::Value = serde_json::from_slice(&skopeo(&[])).unwrap();
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);

    // Again, from the cache: the same package, byte for byte.
    let first = std::fs::read(&package).unwrap();
    std::fs::remove_file(&package).unwrap();
    let again = package_path(&create(&ws, &dockerd.host, &[]));
    assert_eq!(Package::read(&again).files, read.files);
    assert!(
        std::fs::read(&again).unwrap() == first,
        "the package changed"
    );
}

/// Creates a package of `reference` from the daemon with a fresh import (no cache)
/// and `extra`; returns the package's bytes and its image manifest.
fn fresh_import(
    ws: &Workspace,
    dockerd: &TestDockerd,
    reference: &str,
    extra: &[&str],
) -> (Vec<u8>, serde_json::Value) {
    let out = create(ws, &dockerd.host, &[&["--no-cache"], extra].concat());
    let package = package_path(&out);
    let bytes = std::fs::read(&package).unwrap();
    let read = Package::read(&package);
    let digest = read.entry(reference)["digest"].as_str().unwrap().to_owned();
    let manifest = serde_json::from_slice(read.blob(&digest).unwrap()).unwrap();
    std::fs::remove_file(&package).unwrap();
    (bytes, manifest)
}

#[test]
fn the_same_daemon_image_gives_the_same_package_bytes_with_either_layer_format() {
    let dockerd = TestDockerd::start();
    let reference = format!("127.0.0.1:{}/daemon/app:1", closed_port());
    let (_, layers) = load(&dockerd, &reference);
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(&reference));

    let (tar, tar_manifest) = fresh_import(&ws, &dockerd, &reference, &[]);
    let explicit = fresh_import(&ws, &dockerd, &reference, &["--daemon-layers", "tar"]);
    assert!(explicit.0 == tar, "`tar` is the default, byte for byte");
    let (gzip, gzip_manifest) =
        fresh_import(&ws, &dockerd, &reference, &["--daemon-layers", "gzip"]);
    let (again, _) = fresh_import(&ws, &dockerd, &reference, &["--daemon-layers", "gzip"]);
    assert!(again == gzip, "two gzip imports differ");
    assert!(gzip != tar);

    // Gzip layers hold the daemon's bytes, under other digests; the config is the same.
    assert_eq!(gzip_manifest["config"], tar_manifest["config"]);
    let listed = gzip_manifest["layers"].as_array().unwrap();
    assert_eq!(listed.len(), layers.len());
    let out = create(&ws, &dockerd.host, &["--daemon-layers", "gzip"]);
    let read = Package::read(&package_path(&out));
    for ((descriptor, plain), as_tar) in listed
        .iter()
        .zip(&layers)
        .zip(tar_manifest["layers"].as_array().unwrap())
    {
        assert_eq!(
            descriptor["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_ne!(descriptor["digest"], as_tar["digest"]);
        let gz = read.blob(descriptor["digest"].as_str().unwrap()).unwrap();
        assert_eq!(sha256(gz), descriptor["digest"].as_str().unwrap());
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&gz[..]),
            &mut unpacked,
        )
        .unwrap();
        assert_eq!(&unpacked, plain, "a layer changed on the way");
    }
}

#[test]
fn daemon_layers_takes_tar_or_gzip_and_needs_the_fallback() {
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image("127.0.0.1:1/app:1"));
    let out = ws.create(&["--daemon-layers", "zip"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid value 'zip' for '--daemon-layers <FORMAT>'"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("[possible values: tar, gzip]"));
    let out = ws.create(&["--daemon-layers", "gzip", "--no-daemon-fallback"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("'--daemon-layers <FORMAT>' cannot be used with '--no-daemon-fallback'"),
        "{}",
        stderr(&out)
    );
    assert!(ws.output_files().is_empty());
}

#[test]
fn an_import_that_cannot_fit_is_refused_before_it_writes_anything() {
    use crate::support::tmpfs::Tmpfs;
    let dockerd = TestDockerd::start();
    let reference = format!("127.0.0.1:{}/daemon/app:1", closed_port());
    load(&dockerd, &reference);
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(&reference));
    // The image is over 1 MiB; the cache has 512 KiB.
    let cache = Tmpfs::mount(&ws.path("small-cache"), 512 << 10);
    let cache_dir = cache.path.display().to_string();
    let out = create(&ws, &dockerd.host, &["--cache", &cache_dir]);
    let err = failed(&ws, &out);
    assert!(
        err.starts_with("error: not enough free space: this build needs "),
        "{err}"
    );
    assert!(err.contains(&cache_dir), "{err}");
    assert!(!stderr(&out).contains("importing"), "{}", stderr(&out));
    let blobs = cache.path.join("blobs-v1").join("sha256");
    let kept: Vec<_> = std::fs::read_dir(&blobs)
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(kept.is_empty(), "the refused import stored {kept:?}");
}

#[test]
fn no_daemon_fallback_makes_the_registry_failure_the_error() {
    let dockerd = TestDockerd::start();
    let port = closed_port();
    let reference = format!("127.0.0.1:{port}/daemon/app:1");
    load(&dockerd, &reference);
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(&reference));
    let out = create(&ws, &dockerd.host, &["--no-daemon-fallback"]);
    let err = failed(&ws, &out);
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the registry 127.0.0.1:{port}\n"
        )),
        "{err}"
    );
    assert!(!err.contains("Docker daemon"), "{err}");
}

#[test]
fn an_absent_daemon_is_named_beside_the_registry_failure() {
    let port = closed_port();
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(format!("127.0.0.1:{port}/app:1")));
    let host = format!("unix://{}", ws.path("absent.sock").display());
    let err = failed(&ws, &create(&ws, &host, &[]));
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the registry 127.0.0.1:{port}, and the Docker daemon cannot serve it either: the Docker daemon at {host} cannot be reached\n"
        )),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    assert!(err.contains("DOCKER_HOST"), "{err}");
}

#[test]
fn a_daemon_that_refuses_the_connection_is_named_beside_the_registry_failure() {
    let (registry_port, daemon_port) = (closed_port(), closed_port());
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(format!("127.0.0.1:{registry_port}/app:1")));
    let host = format!("tcp://127.0.0.1:{daemon_port}");
    let err = failed(&ws, &create(&ws, &host, &[]));
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the registry 127.0.0.1:{registry_port}, and the Docker daemon cannot serve it either: the Docker daemon at {host} cannot be reached\n"
        )),
        "{err}"
    );
}

#[test]
fn an_image_in_neither_place_names_both() {
    let dockerd = TestDockerd::start();
    let registry = TestRegistry::start();
    let reference = format!("{}/nowhere:1", registry.addr);
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(&reference));
    let err = failed(&ws, &create(&ws, &dockerd.host, &[]));
    assert!(
        err.starts_with(&format!(
            "error: {reference} was not found in its registry, and the Docker daemon cannot serve it either: {reference} is not in the Docker daemon at {}\n",
            dockerd.host
        )),
        "{err}"
    );
}

#[test]
fn refused_credentials_do_not_fall_back() {
    let dockerd = TestDockerd::start();
    let registry = TestRegistry::start_with(Options {
        htpasswd: Some(("user".into(), "secret".into())),
        tls: false,
    });
    let reference = format!("{}/app:1", registry.addr);
    load(&dockerd, &reference);
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(&reference));
    let out = create(&ws, &dockerd.host, &[]);
    let err = failed(&ws, &out);
    assert!(
        err.starts_with(&format!(
            "error: {0} asks for credentials for {0}/app:1, and none are configured for it\n",
            registry.addr
        )),
        "{err}"
    );
    assert!(!err.contains("Docker daemon"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_image_its_registry_does_not_have_is_taken_from_the_daemon_beside_one_it_has() {
    use crate::support::images::{layer, Pusher};
    let dockerd = TestDockerd::start();
    let registry = TestRegistry::start();
    let served =
        Pusher::new(&registry.addr).image("served", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let local = format!("{}/local:1", registry.addr);
    let (config, _) = load(&dockerd, &local);
    let ws = Workspace::new();
    ws.define(
        &Definition::new("both")
            .image(format!("{}/served:1", registry.addr))
            .image(&local),
    );
    let out = create(&ws, &dockerd.host, &[]);
    let package = package_path(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning: {local} was not found in its registry; packaging {local} from the Docker daemon at {}",
            dockerd.host
        )),
        "{err}"
    );
    assert_eq!(
        err.matches("warning: ").count(),
        1,
        "only the missing image falls back: {err}"
    );
    let read = Package::read(&package);
    // The registry's image is its bytes as served; the daemon's has the daemon's config.
    assert_eq!(
        read.entry(&format!("{}/served:1", registry.addr))["digest"],
        served.manifest.digest
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        read.blob(read.entry(&local)["digest"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["config"]["digest"], sha256(&config));
}

/// What a refused hostile save may cost.
const MAX_SECONDS: u64 = 5;
const MAX_RSS_KIB: u64 = 100 * 1024;

/// Runs create against a stand-in daemon whose save of the image is `head` then
/// `tail`, with a registry that lacks the image; checks the refusal's bounds (exit 1,
/// under 5 s and 100 MB, nothing left in the cache's ingest dir, far fewer bytes taken
/// than claimed) and returns the rest of the error line, which must name the image.
fn refused_save(head: Vec<u8>, tail: Tail, extra: &[&str]) -> (String, Workspace) {
    let stand_in = SaveStandIn::start(head, tail);
    let registry = TestRegistry::start();
    let reference = format!("{}/hostile/app:1", registry.addr);
    let ws = Workspace::new();
    ws.define(&Definition::new("from-daemon").image(&reference));
    let mut cmd = ws.create_command(extra);
    cmd.env("DOCKER_HOST", &stand_in.host);
    let run = measure(&cmd, ws.dir.path());
    let err = failed(&ws, &run.out);
    eprintln!(
        "refused in {:?}, peak RSS {} KiB, {} bytes streamed",
        run.elapsed,
        run.peak_rss_kib,
        stand_in.sent()
    );
    assert!(
        run.elapsed.as_secs() < MAX_SECONDS,
        "refused after {:?}: {err}",
        run.elapsed
    );
    assert!(
        run.peak_rss_kib < MAX_RSS_KIB,
        "peak RSS {} KiB: {err}",
        run.peak_rss_kib
    );
    let prefix = format!(
        "error: {reference} was not found in its registry, and the Docker daemon cannot serve it either: "
    );
    assert!(err.starts_with(&prefix), "{err}");
    assert!(err.contains(&reference), "the image is not named: {err}");
    let ingest = ws.path("cache").join("ingest-v1");
    let left: Vec<_> = std::fs::read_dir(&ingest)
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "the failed import left {left:?} in {ingest:?}"
    );
    // The stand-in may have sent more than pkgr took (sockets buffer), not gigabytes.
    assert!(
        stand_in.sent() < 1 << 30,
        "{} bytes were streamed",
        stand_in.sent()
    );
    let line = err[prefix.len()..].lines().next().unwrap().to_owned();
    (line, ws)
}

/// A save starting with a 2 GiB PAX header, its body streamed for real: it used to be
/// buffered whole (2.13 GB RSS). A stand-in, since no daemon writes such a save.
#[test]
fn a_save_starting_with_a_2_gib_pax_header_is_refused_unread() {
    let (line, _) = refused_save(
        header(b"PaxHeaders/x", tar::EntryType::XHeader, 2 << 30),
        Tail::Zeros,
        &[],
    );
    assert!(
        line.ends_with("is not one pkgr can read: entry 1 has a 2147483648-byte extended header, over the 65536-byte limit"),
        "{line}"
    );
}

/// A save whose first entry declares 8.6 GB of zeros (it used to take 49 s, and leave
/// 8.1 GB in the cache): over --max-blob-size it is refused from its header; within
/// the bound, a stream that ends early leaves no file at all. A stand-in, since no
/// daemon writes such a save.
#[test]
fn a_save_whose_first_entry_declares_8_6_gb_is_bounded_and_leaves_nothing() {
    let name = format!("blobs/sha256/{}", "0".repeat(64));
    let claim = header(name.as_bytes(), tar::EntryType::Regular, 8_600_000_000);
    let (line, _) = refused_save(claim.clone(), Tail::Zeros, &["--max-blob-size", "4GiB"]);
    assert!(
        line.starts_with(&format!("`{name}` in the docker save stream of ")),
        "{line}"
    );
    assert!(
        line.ends_with(
            "declares 8600000000 bytes (8.0 GiB), more than the 4.0 GiB allowed for one blob"
        ),
        "{line}"
    );

    let mut cut_short = claim;
    cut_short.extend(noise(3, 1 << 20));
    let (line, ws) = refused_save(cut_short, Tail::End, &[]);
    assert!(
        line.ends_with("is not one pkgr can read: it ends inside an entry"),
        "{line}"
    );
    let blobs = ws.path("cache").join("blobs-v1").join("sha256");
    let kept: Vec<_> = std::fs::read_dir(&blobs)
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(kept.is_empty(), "a cut-short entry was stored: {kept:?}");
}

/// A save whose `manifest.json` declares 1 GB, its body streamed for real: it used to
/// be refused only after 6.6 s of reading. A stand-in, since no daemon writes it.
#[test]
fn a_save_with_a_1_gb_manifest_json_is_refused_from_its_header() {
    let (line, _) = refused_save(
        header(b"manifest.json", tar::EntryType::Regular, 1 << 30),
        Tail::Zeros,
        &[],
    );
    assert!(
        line.ends_with("is not one pkgr can read: its manifest.json declares 1073741824 bytes, over the 4194304-byte limit"),
        "{line}"
    );
}
