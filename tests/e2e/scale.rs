//! Definitions at scale: ten thousand references to one image (one digest under
//! distinct tags) resolve, plan and package within the bounds of issue 18.

use std::time::{Duration, Instant};

use crate::support::definition::Definition;
use crate::support::images::{layer, Pusher};
use crate::support::measure::measure;
use crate::support::package::Package;
use crate::support::registry::TestRegistry;
use crate::support::{package_path, stderr, Workspace};

const REFERENCES: usize = 10_000;
const MAX_SECONDS: u64 = 5;
const MAX_RSS_KIB: u64 = 100 * 1024;

#[test]
fn ten_thousand_references_to_one_image_package_within_five_seconds_and_100_mb() {
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
    eprintln!("setup took {:?}", setup.elapsed());

    let run = measure(&ws.create_command(&[]), ws.dir.path());
    eprintln!(
        "create of {REFERENCES} references: {:?}, peak RSS {} KiB",
        run.elapsed, run.peak_rss_kib
    );
    let package = Package::read(&package_path(&run.out));
    let index = package.index();
    assert_eq!(index.len(), REFERENCES, "{}", stderr(&run.out));
    assert!(index
        .iter()
        .all(|e| e["digest"] == app.manifest.digest.as_str()));
    assert!(
        run.elapsed < Duration::from_secs(MAX_SECONDS),
        "took {:?}, over {MAX_SECONDS} s",
        run.elapsed
    );
    assert!(
        run.peak_rss_kib < MAX_RSS_KIB,
        "peak RSS {} KiB, over {MAX_RSS_KIB} KiB",
        run.peak_rss_kib
    );
}
