//! The per-digest fetch table, driven through pkgr's library against a real registry
//! behind the counting proxy: however many askers want a digest at once, it is
//! downloaded once; a refetch downloads it again only if the stored copy is bad; and
//! progress counts each byte of a blob once when a server ignores a Range request.

use std::collections::BTreeSet;
use std::sync::Arc;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use pkgr::digest::Digest;
use pkgr::progress::Reporter;
use pkgr::pull::{BlobJob, Fetcher, RegistryImage};
use pkgr::registry::{Credentials, Registry, Transport};
use pkgr::store::Store;

use crate::support::images::{layer, noise, Pusher};
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::registry::TestRegistry;

/// Counts what the fetcher reports, to tell a shared result from a second look.
#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    found_in_place: AtomicUsize,
}

impl Reporter for Counts {
    fn step(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn blobs_planned(&self, _: &str, _: usize, _: u64) {}
    fn blob_cached(&self, _: u64) {
        self.found_in_place.fetch_add(1, Ordering::SeqCst);
    }
    fn blob_start(&self, _: &Digest, _: u64) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn blob_progress(&self, _: &Digest, _: u64) {}
    fn blob_discarded(&self, _: &Digest, _: u64) {}
    fn blob_done(&self, _: &Digest) {}
    fn finish(&self) {}
}

fn gets_of(proxy: &FaultProxy, digest: &str) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(digest))
        .count()
}

#[test]
fn concurrent_askers_share_one_download_and_a_refetch_replaces_only_a_bad_copy() {
    // The test content is pushed with a blocking client, outside the runtime.
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(21, 4 << 20))])],
    );
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(fetch_through(&proxy, &image));
}

async fn fetch_through(proxy: &FaultProxy, image: &crate::support::images::Image) {
    let client = Registry::connect(
        &Transport::default(),
        &BTreeSet::from([proxy.addr.clone()]),
        Credentials::default(),
    )
    .await
    .unwrap();
    let reference = format!("{}/app:1", proxy.addr).parse().unwrap();
    let source = RegistryImage::open(Arc::new(client), reference);
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::at(
        store_dir.path().join("blobs"),
        store_dir.path().join("ingest"),
    )
    .unwrap();
    let counts = Counts::default();
    let fetcher = Fetcher::new(store.clone(), 8, &counts);
    let layer = &image.layers[0];
    let job = BlobJob {
        digest: layer.digest.parse().unwrap(),
        size: layer.bytes.len() as u64,
        source,
    };

    let askers = (0..6).map(|_| fetcher.fetch(&job));
    for result in futures_util::future::join_all(askers).await {
        result.unwrap();
    }
    assert_eq!(gets_of(proxy, &layer.digest), 1, "six askers, one download");
    // The other five awaited the first one's result: none of them even looked.
    assert_eq!(counts.started.load(Ordering::SeqCst), 1);
    assert_eq!(counts.found_in_place.load(Ordering::SeqCst), 0);
    assert_eq!(
        std::fs::read(store.blob_path(&job.digest)).unwrap(),
        layer.bytes
    );

    fetcher.fetch(&job).await.unwrap();
    assert_eq!(
        gets_of(proxy, &layer.digest),
        1,
        "a done digest is not fetched again"
    );

    // A refetch after damage was seen, when a peer has already put a good copy back:
    // that copy is kept, not thrown away and downloaded again.
    fetcher.refetch(&job).await.unwrap();
    assert_eq!(gets_of(proxy, &layer.digest), 1, "a good copy is kept");
    assert_eq!(counts.started.load(Ordering::SeqCst), 1);

    // Damaged in place (same size): the refetch evicts it and downloads anew.
    let mut damaged = layer.bytes.clone();
    damaged[100] ^= 0xff;
    std::fs::write(store.blob_path(&job.digest), &damaged).unwrap();
    fetcher.refetch(&job).await.unwrap();
    assert_eq!(
        gets_of(proxy, &layer.digest),
        2,
        "a bad copy is downloaded anew"
    );
    assert_eq!(
        std::fs::read(store.blob_path(&job.digest)).unwrap(),
        layer.bytes
    );
}

/// The bytes a reporter was told moved, net of those it was told to take back.
#[derive(Default)]
struct Net(AtomicI64);

impl Reporter for Net {
    fn step(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn blobs_planned(&self, _: &str, _: usize, _: u64) {}
    fn blob_cached(&self, _: u64) {}
    fn blob_start(&self, _: &Digest, _: u64) {}
    fn blob_progress(&self, _: &Digest, bytes: u64) {
        self.0.fetch_add(bytes as i64, Ordering::SeqCst);
    }
    fn blob_discarded(&self, _: &Digest, bytes: u64) {
        self.0.fetch_sub(bytes as i64, Ordering::SeqCst);
    }
    fn blob_done(&self, _: &Digest) {}
    fn finish(&self) {}
}

#[test]
fn a_restart_after_an_ignored_range_takes_back_the_partial_s_progress() {
    let registry = TestRegistry::start();
    let image = Pusher::new(&registry.addr).image(
        "app",
        "1",
        false,
        "amd64",
        &[layer(&[("big", &noise(22, 3 << 20))])],
    );
    let layer = &image.layers[0];
    let cut = 1 << 20;
    // The first download is cut; the resume's Range is then ignored, so the whole
    // blob comes again from byte 0.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![
            (layer.digest.clone(), Fault::CutAfter(cut)),
            (layer.digest.clone(), Fault::IgnoreRange),
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let net = Net::default();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::at(
        store_dir.path().join("blobs"),
        store_dir.path().join("ingest"),
    )
    .unwrap();
    let digest: Digest = layer.digest.parse().unwrap();
    runtime.block_on(async {
        let client = Registry::connect(
            &Transport::default(),
            &BTreeSet::from([proxy.addr.clone()]),
            Credentials::default(),
        )
        .await
        .unwrap();
        let reference = format!("{}/app:1", proxy.addr).parse().unwrap();
        let job = BlobJob {
            digest: digest.clone(),
            size: layer.bytes.len() as u64,
            source: RegistryImage::open(Arc::new(client), reference),
        };
        Fetcher::new(store.clone(), 8, &net)
            .fetch(&job)
            .await
            .unwrap();
    });
    let ranges: Vec<Option<String>> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&layer.digest))
        .map(|s| s.range)
        .collect();
    assert_eq!(
        ranges,
        vec![Some("bytes=0-".to_owned()), Some(format!("bytes={cut}-"))],
        "a cut download, then a resume whose Range the proxy dropped"
    );
    assert_eq!(
        std::fs::read(store.blob_path(&digest)).unwrap(),
        layer.bytes
    );
    assert_eq!(
        net.0.load(Ordering::SeqCst),
        layer.bytes.len() as i64,
        "each byte of the blob is counted once"
    );
}
