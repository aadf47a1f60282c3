//! Packages whose small size hides a large graph: thousands of `index.json` entries
//! sharing one index that repeats a child thousands of times. `inspect`, `--verify`
//! and `push` must stay linear in the package (before, a 4.5 MB package of this shape
//! kept `inspect` busy for minutes), and push must not send one manifest again and
//! again.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::images::{sha256, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::support::proxy::FaultProxy;
use crate::support::registry::TestRegistry;
use crate::support::tarfix::{write_raw_tar, RawEntry};
use crate::support::{run_within, stderr, stdout, Workspace};

const ENTRIES: usize = 10_000;

/// Far above what these take now (well under a second) and far below what they took.
const FINISH_WITHIN: Duration = Duration::from_secs(30);

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// Writes a Zarf-shaped package: one image, an index listing it `ENTRIES` times, and
/// `index.json` with `ENTRIES` entries under `reference`. With `distinct_roots`, each
/// entry is its own small index that names the shared one.
fn fan_package(path: &Path, reference: &str, distinct_roots: bool) {
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = b"not really a layer".to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [descriptor(OCI_LAYER_GZIP, &layer)],
    }))
    .unwrap();
    let mut child = descriptor(OCI_MANIFEST, &manifest);
    child["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let shared = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": vec![child; ENTRIES],
    }))
    .unwrap();
    // Hashed once each: the shared index is 1.5 MB.
    let shared_descriptor = descriptor(OCI_INDEX, &shared);
    let entries: Vec<serde_json::Value> = (0..ENTRIES)
        .map(|i| {
            let mut entry = if distinct_roots {
                let root = serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [shared_descriptor],
                    "annotations": {"n": i.to_string()},
                }))
                .unwrap();
                let entry = descriptor(OCI_INDEX, &root);
                blobs.push(root);
                entry
            } else {
                shared_descriptor.clone()
            };
            entry["annotations"] = json!({"org.opencontainers.image.base.name": reference});
            entry
        })
        .collect();
    blobs.extend([config, layer, manifest, shared]);

    let mut files = vec![
        (
            "zarf.yaml".to_owned(),
            b"kind: ZarfPackageConfig\nmetadata:\n  name: fan\n  architecture: amd64\ncomponents: []\n".to_vec(),
        ),
        (
            "images/oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "images/index.json".to_owned(),
            serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))
                .unwrap(),
        ),
    ];
    for blob in blobs {
        let name = format!(
            "images/blobs/sha256/{}",
            sha256(&blob).trim_start_matches("sha256:")
        );
        files.push((name, blob));
    }
    let checksums: String = files
        .iter()
        .map(|(name, data)| format!("{} {name}\n", sha256(data).trim_start_matches("sha256:")))
        .collect();
    files.insert(1, ("checksums.txt".to_owned(), checksums.into_bytes()));
    let entries: Vec<RawEntry> = files
        .iter()
        .map(|(name, data)| RawEntry::file(name, data))
        .collect();
    write_raw_tar(path, &entries);
}

#[test]
fn shared_indexes_cost_the_same_as_one_in_inspect_and_verify() {
    let ws = Workspace::new();
    for (distinct_roots, blobs) in [(false, 4), (true, ENTRIES + 4)] {
        let path = ws.path("fan.tar");
        fan_package(&path, "127.0.0.1:5000/fan:1", distinct_roots);
        let out = run_within(ws.inspect_command(&path, &[]), FINISH_WITHIN);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("{ENTRIES} images, {blobs} blobs")),
            "{}",
            stdout(&out)
        );
        let out = run_within(ws.inspect_command(&path, &["--verify"]), FINISH_WITHIN);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn entries_that_share_an_index_send_each_manifest_once() {
    let target = TestRegistry::start();
    let proxy = FaultProxy::start(&target.addr, vec![]);
    let ws = Workspace::new();
    let path = ws.path("fan.tar");
    fan_package(&path, "127.0.0.1:5000/fan:1", false);
    let out = run_within(ws.push_command(&path, &proxy.addr, &[]), FINISH_WITHIN);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut puts: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.path.contains("/manifests/"))
        .map(|s| s.path)
        .collect();
    puts.sort();
    // The image manifest and the shared index by digest, then the tag once.
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts.contains(&"/v2/fan/manifests/1".to_owned()), "{puts:?}");
}
