//! Seeds a registry with the many-small-images corpus: 300 repositories
//! `small/app<i>:1`, each one image of a config and three small layers (a 32 KiB layer
//! shared by every image, then 8–31 KiB and 2–13 KiB of incompressible bytes of its
//! own), half Docker and half OCI media types. That is 1,201 unique blobs and
//! manifests: 300 manifests, 300 configs, 600 unique layers and the shared one.
//!
//! Writes the URLs of those 1,201 requests to URLS_FILE, one a line, manifests by tag
//! and blobs by digest, each blob once: the requests a client that deduplicates blobs,
//! as pkgr does, has to make.
//!
//! Usage: `cargo run --release --example bench_small_corpus -- 127.0.0.1:5557 URLS_FILE`

#[path = "../tests/support/images.rs"]
mod images;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use images::{layer, noise, wait_for_registry, Image, Pusher};

pub const IMAGES: u64 = 300;
/// Pushing is not timed, but 2,700 sequential requests would take a while.
const PUSH_THREADS: u64 = 4;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(urls_file)) = (args.next(), args.next()) else {
        panic!("usage: bench_small_corpus HOST:PORT URLS_FILE");
    };
    wait_for_registry(&addr);
    let pusher = Pusher::new(&addr);
    let shared = layer(&[("base.bin", &noise(1, 32 << 10))]);

    let mut pushed: Vec<(u64, Image)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PUSH_THREADS)
            .map(|worker| {
                let (pusher, shared) = (&pusher, &shared);
                scope.spawn(move || {
                    (worker..IMAGES)
                        .step_by(PUSH_THREADS as usize)
                        .map(|i| {
                            let (app, data) = sizes(i);
                            let layers = [
                                shared.clone(),
                                layer(&[("app.bin", &noise(1000 + i, app))]),
                                layer(&[("data.bin", &noise(2000 + i, data))]),
                            ];
                            let image = pusher.image(&repo(i), "1", i % 2 == 0, "amd64", &layers);
                            (i, image)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a push thread panicked"))
            .collect()
    });
    pushed.sort_by_key(|(i, _)| *i);

    let base = format!("http://{addr}/v2");
    let mut urls = String::new();
    let mut seen = BTreeSet::new();
    for (i, _) in &pushed {
        writeln!(urls, "{base}/{}/manifests/1", repo(*i)).unwrap();
    }
    for (i, image) in &pushed {
        let blobs = std::iter::once(&image.config).chain(&image.layers);
        for blob in blobs.filter(|b| seen.insert(b.digest.clone())) {
            writeln!(urls, "{base}/{}/blobs/{}", repo(*i), blob.digest).unwrap();
        }
    }
    std::fs::write(&urls_file, urls).expect("write the URL list");
    eprintln!(
        "pushed {IMAGES} images; {} URLs in {urls_file}",
        IMAGES as usize + seen.len()
    );
}

/// The sizes of image `i`'s own two layers' contents: 8–31 KiB and 2–13 KiB.
fn sizes(i: u64) -> (usize, usize) {
    let kib = |n: u64| usize::try_from(n << 10).expect("a small size");
    (kib(8 + i * 37 % 24), kib(2 + i * 13 % 12))
}

fn repo(i: u64) -> String {
    format!("small/app{i}")
}
