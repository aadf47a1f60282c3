//! Arbitrary bytes as a manifest, an index and a layout's index.json, then walked as a
//! graph whose only document is itself (so a self-reference is a cycle).

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use pkgr::digest::Digest;
use pkgr::manifest::parsed::ParsedManifests;
use pkgr::manifest::walk::{Role, Walk};
use pkgr::manifest::{Descriptor, Manifest, OCI_INDEX};
use pkgr::store::layout::LayoutIndex;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<LayoutIndex>(data);
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    let _ = (
        manifest.kind(),
        manifest.is_index(),
        manifest.effective_media_type(),
    );
    let digest = Digest::of(data);
    let docs = BTreeMap::from([(digest.clone(), data.to_vec())]);
    let parsed = ParsedManifests::new(&docs);
    let root = Descriptor::new(OCI_INDEX, digest, data.len() as u64);
    let Ok(mut walk) = Walk::from_root(root) else {
        return;
    };
    while let Some(node) = walk.next_node() {
        if parsed.spend(1).is_err() {
            break;
        }
        if node.role != Role::Manifest {
            continue;
        }
        if let Some(manifest) = parsed.get(node.digest()) {
            if walk.descend(&node, manifest).is_err() {
                break;
            }
        }
    }
});
