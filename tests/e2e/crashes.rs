//! A create killed outright, and creates that share one cache: the cache is what
//! survives them, so it must resume what was cut off and serve every neighbour.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Pusher};
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::{package_path, sha256_file, spawn, stderr, wait_until, Workspace};

#[test]
fn a_create_killed_mid_download_resumes_and_builds_the_same_package() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(21, 4 << 20))])],
    );
    let big = image.layers[0].digest.clone();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![(big.clone(), Fault::StallAfter(2 << 20))],
    );

    let ws = Workspace::new();
    ws.define(&Definition::new("crash").image(format!("{}/app:1", proxy.addr)));
    let mut victim = ws
        .create_command(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = ws.partial_blob(&big);
    wait_until("the download to reach 1 MiB", || {
        std::fs::metadata(&partial).map_or(0, |m| m.len()) >= 1 << 20
    });
    let killed = Command::new("kill")
        .args(["-KILL", &victim.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    victim.wait().unwrap();
    let kept = std::fs::metadata(&partial).unwrap().len();

    let resumed = package_path(&ws.create(&[]));
    assert_eq!(
        ws.output_files(),
        vec![resumed.file_name().unwrap().to_str().unwrap()],
        "the killed run's staging directory must be swept"
    );
    let ranges: Vec<Option<String>> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&big))
        .map(|s| s.range)
        .collect();
    assert_eq!(
        ranges,
        vec![Some("bytes=0-".to_owned()), Some(format!("bytes={kept}-"))],
        "the rerun must resume the killed run's partial"
    );

    // A clean run through the same address, on a cache of its own.
    let clean_ws = Workspace::new();
    clean_ws.define(&Definition::new("crash").image(format!("{}/app:1", proxy.addr)));
    let clean = package_path(&clean_ws.create(&[]));
    assert_eq!(sha256_file(&resumed), sha256_file(&clean));
    let verified = ws.cache(&["verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
}

#[test]
fn eight_creates_on_one_cache_fetch_each_blob_once() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let base = layer(&[("base", &noise(1, 1 << 20))]);
    let repos = ["a", "b", "c", "d"];
    let images: Vec<_> = repos
        .iter()
        .enumerate()
        .map(|(i, repo)| {
            let own = layer(&[("own", &noise(10 + i as u64, 256 << 10))]);
            pusher.image(repo, "1", false, "amd64", &[base.clone(), own])
        })
        .collect();
    let proxy = FaultProxy::start(&registry.addr, vec![]);
    let cache = tempfile::tempdir().unwrap();

    // Process i packages images i and i+1 (mod 4), so every image is in four builds
    // and the base layer in all eight; processes i and i+4 build the same package.
    let workspaces: Vec<Workspace> = (0..8).map(|_| Workspace::new()).collect();
    let children: Vec<_> = workspaces
        .iter()
        .enumerate()
        .map(|(i, ws)| {
            let chosen = [repos[i % 4], repos[(i + 1) % 4]];
            ws.define(
                &Definition::new(&format!("p{}", i % 4))
                    .images(chosen.map(|repo| format!("{}/{repo}:1", proxy.addr))),
            );
            spawn(ws.create_command(&[]).env("PKGR_CACHE_DIR", cache.path()))
        })
        .collect();
    let packages: Vec<PathBuf> = children
        .into_iter()
        .map(|child| package_path(&child.wait_with_output().unwrap()))
        .collect();
    for i in 0..4 {
        assert_eq!(
            sha256_file(&packages[i]),
            sha256_file(&packages[i + 4]),
            "processes {i} and {} built the same definition",
            i + 4
        );
    }

    let seen = proxy.seen();
    for image in &images {
        for blob in [&image.config].into_iter().chain(&image.layers) {
            let fetches = seen
                .iter()
                .filter(|s| s.method == "GET" && s.path.ends_with(&blob.digest))
                .count();
            assert_eq!(fetches, 1, "{} was fetched {fetches} times", blob.digest);
        }
    }
    let verified = workspaces[0]
        .cache_command(&["verify"])
        .env("PKGR_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", stderr(&verified));
}
