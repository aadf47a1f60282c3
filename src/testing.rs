//! Fixtures for unit tests: copies of `testdata/package` (see `testdata/generate.py`)
//! and package files written from it, so each stage is tested without a registry.

use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// The fixture's digests, by what they are.
pub mod digests {
    pub const WEB: &str = "sha256:7bec0e9d8485b639498343268b8da7b5af0374c1b4367fbd05d736b364cd82d9";
    pub const CHART: &str =
        "sha256:01d73fb4a128853127bb5e24e2a95379732d4db1a85dcb8e4593d556a4add46b";
    pub const MULTI: &str =
        "sha256:aab4ea77e691803fe35f468e0ea35675f9607570be24d76ce2c534875b28fc9d";
}

pub fn digest(text: &str) -> Digest {
    text.parse().expect("a fixture digest")
}

/// A private copy of the fixture package directory.
pub fn fixture_dir() -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("a temp dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/package");
    copy_tree(&source, copy.path());
    copy
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a fixture dir");
    for entry in std::fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("a fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a fixture file");
        }
    }
}

/// The blob file of `digest` in a fixture directory.
pub fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("images/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Seals a fixture directory and writes it as a package file inside it.
pub fn write_fixture_package(dir: &Path, compressed: bool) -> PathBuf {
    let sealed = crate::store::seal::seal(&dir.join("images")).expect("the fixture seals");
    let entries = crate::package::contents::entries(dir, &sealed).expect("the fixture's entries");
    let out = dir.join(if compressed {
        "fixture.tar.zst"
    } else {
        "fixture.tar"
    });
    crate::package::writer::write_package(&entries, &out, compressed).expect("the fixture writes");
    out
}
