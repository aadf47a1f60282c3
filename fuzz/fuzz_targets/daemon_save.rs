//! Arbitrary bytes as a `docker save` stream, read into a fresh store as `create` reads
//! a daemon's image. Whatever the outcome, no partial file is left in the store's ingest
//! dir. When pkgr reads the stream, the `tar` crate must read it too, and every file
//! pkgr stored must be in the store under the digest of the bytes the `tar` crate sees
//! at that path; `index.json` and `manifest.json` must be those bytes.

#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pkgr::digest::Digest;
use pkgr::fuzzing::read_save;
use pkgr::store::Store;
use pkgr_fuzz::{scratch, tar_members, Reference};

/// Over what a 256 KiB input holds, under what a declared size may claim.
const MAX_BLOB_BYTES: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| scratch("store"));
    let _ = std::fs::remove_dir_all(dir);
    let (blobs, ingest) = (dir.join("blobs"), dir.join("ingest"));
    let store = Store::at(blobs, ingest.clone()).expect("a fresh store");
    let saved = read_save(data, &store, MAX_BLOB_BYTES);
    let left: Vec<_> = std::fs::read_dir(&ingest)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "partial files left in the store: {left:?}");
    let Ok(saved) = saved else {
        return;
    };
    let members = match tar_members(data) {
        Reference::Read(members) => members,
        Reference::Refused(why) => panic!("pkgr read a save the tar crate refuses ({why})"),
        Reference::TooLarge => unreachable!("no decoding"),
    };
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for member in members.into_iter().filter(|m| m.kind.is_file()) {
        files.insert(
            normalize(&String::from_utf8_lossy(&member.name)),
            member.bytes,
        );
    }
    for (path, bytes) in &files {
        match path.as_str() {
            "index.json" => assert_eq!(saved.index_json.as_ref(), Some(bytes), "index.json"),
            "manifest.json" => {
                assert_eq!(saved.manifest_json.as_ref(), Some(bytes), "manifest.json")
            }
            "oci-layout" | "repositories" => {}
            p if p.ends_with("/VERSION") || p.ends_with("/json") => {}
            _ => {
                let digest = Digest::of(bytes);
                let found = saved.lookup(path);
                assert_eq!(
                    found,
                    Some(&(digest.clone(), bytes.len() as u64)),
                    "`{path}`"
                );
                let stored = std::fs::read(store.blob_path(&digest)).expect("the stored blob");
                assert_eq!(&stored, bytes, "`{path}` in the store");
            }
        }
    }
});

/// As the save reader names files: `./a//b/` is `a/b`.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}
