//! The Docker daemon fallback against a real `dockerd`: an image that exists only in
//! the daemon (loaded from a tar built here, under a registry name nobody serves) is
//! packaged with every blob named by its bytes and pushed cleanly; the flag that turns
//! the fallback off, and a daemon that is absent or refuses, are clear errors.

use std::process::Output;

use crate::support::definition::Definition;
use crate::support::dockerd::{legacy_image_tar, plain_layer, TestDockerd};
use crate::support::images::{noise, sha256};
use crate::support::package::Package;
use crate::support::registry::{Options, TestRegistry};
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
    let listed = manifest["layers"].as_array().unwrap();
    assert_eq!(listed.len(), layers.len());
    for (descriptor, plain) in listed.iter().zip(&layers) {
        assert_eq!(
            descriptor["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let gz = read.blob(descriptor["digest"].as_str().unwrap()).unwrap();
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&gz[..]),
            &mut unpacked,
        )
        .unwrap();
        assert_eq!(&unpacked, plain, "a layer changed on the way");
    }

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
    std::fs::remove_file(&package).unwrap();
    let again = package_path(&create(&ws, &dockerd.host, &[]));
    assert_eq!(Package::read(&again).files, read.files);
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
