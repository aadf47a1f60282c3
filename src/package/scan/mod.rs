//! A full pass over a package: every file hashed, every blob checked against its name,
//! `checksums.txt` compared both ways (and, in a signed pkgr package, against the
//! sha256 its `pkgr.yaml` records), every descriptor reachable from `index.json`
//! found with its size, and a pkgr package's definition compared with `index.json`.
//! What is wrong is a typed list of [`Problem`]s. The scan records where each blob
//! starts, which is how `push` reads them again. A differential package's left-out
//! configs and layers (listed in its `pkgr.yaml`) are expected, not missing: the scan
//! returns them apart, for `inspect --verify` to list and `push` to look for. Push may
//! name blobs to pass over unread (`scan_package_but`): those its target already holds.
//!
//! One room each: `problem` (the type and its text), `pass` (the entries read in
//! order), `hashing` (the large blobs of a package that can be read from any offset,
//! hashed on all cores), the checks `checksums`, `graph` and `definition_agrees`, and
//! `head` (the unverified read that lets push ask the registry early).

mod checksums;
mod definition_agrees;
mod graph;
mod hashing;
mod head;
mod pass;
mod problem;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use head::{head, Head};
pub use problem::Problem;

use super::reader::{classify, Known, PackageBytes};
use super::PackageError;
use crate::digest::Digest;
use crate::package::built::Differential;
use crate::store::layout::LayoutIndex;
use hashing::Hashed;

/// What a full pass found.
#[derive(Debug, Default)]
pub struct Scan {
    pub zarf: bool,
    pub definition: Option<Vec<u8>>,
    pub index: Option<LayoutIndex>,
    /// Every file: its true digest and size (for a blob in `not_read`, the digest its
    /// name claims and the size its tar header gives).
    pub files: BTreeMap<String, (Digest, u64)>,
    /// Blobs small enough to be manifests, kept to walk the graph.
    pub manifests: BTreeMap<Digest, Vec<u8>>,
    /// Where each blob's bytes start in the package's tar.
    pub offsets: BTreeMap<Digest, u64>,
    pub problems: Vec<Problem>,
    /// A differential package's record of its base.
    pub differential: Option<Differential>,
    /// The configs and layers the graph reached that the package leaves out on purpose,
    /// with their sizes: expected on the target.
    pub left_out: BTreeMap<Digest, u64>,
    /// The signature files (`pkgr.yaml.sig`, `pkgr.bundle.sig`, Zarf's), by name:
    /// outside checksums.txt, checked only against a key (`package::signature`).
    pub signatures: BTreeMap<String, Vec<u8>>,
    /// The blobs the caller asked to be passed over, with their sizes: neither read nor
    /// hashed, so nothing is known of their bytes.
    pub not_read: BTreeMap<Digest, u64>,
    checksums: Option<String>,
}

/// Reads the whole package at `path`.
pub fn scan(path: &Path) -> Result<Scan, PackageError> {
    scan_package(&PackageBytes::open(path)?)
}

/// Reads the whole package. Where the package can be read from any offset, blobs too
/// large to be manifests are hashed afterwards, on all cores.
pub fn scan_package(package: &PackageBytes) -> Result<Scan, PackageError> {
    scan_package_but(package, &BTreeSet::new())
}

/// As [`scan_package`], but the blobs named in `unread` are neither read nor hashed
/// (push's: those the target already holds). Every other check runs as usual: the
/// manifests, `index.json` and `checksums.txt` are read and checked, an unread blob's
/// name and header size standing in for its bytes.
pub fn scan_package_but(
    package: &PackageBytes,
    unread: &BTreeSet<Digest>,
) -> Result<Scan, PackageError> {
    let pass::Pass {
        mut scan,
        mut hashed,
        deferred,
    } = pass::read_entries(package, unread)?;
    hashed.extend(hashing::hash_deferred(package, deferred)?);
    hashed.sort_by_key(|entry| entry.order);
    scan.record_hashed(hashed);
    scan.check_checksums();
    scan.check_graph();
    scan.check_definition_agrees();
    Ok(scan)
}

impl Scan {
    /// Records each hashed entry, in the package's order, and checks each blob's bytes
    /// against its name.
    fn record_hashed(&mut self, hashed: Vec<Hashed>) {
        for Hashed {
            name, actual, read, ..
        } in hashed
        {
            let named = match classify(&name) {
                Ok(Known::Blob(digest)) => Some(digest),
                _ => None,
            };
            if named.is_some_and(|digest| digest != actual) {
                self.problems.push(Problem::BlobMismatch {
                    name: name.clone(),
                    actual: actual.clone(),
                });
            }
            self.files.insert(name, (actual, read));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{blob_path, digests, fixture_dir, write_fixture_package};

    #[test]
    fn a_sound_package_has_no_problems() {
        let dir = fixture_dir();
        let package = write_fixture_package(dir.path(), false);
        let scan = scan(&package).unwrap();
        assert_eq!(scan.problems, Vec::new());
        // 13 blobs, pkgr.yaml, checksums.txt, oci-layout and index.json.
        assert_eq!(scan.files.len(), 17);
    }

    #[test]
    fn a_changed_blob_is_reported_as_typed_problems() {
        let dir = fixture_dir();
        let sealed = crate::store::seal::seal(&dir.path().join("images")).unwrap();
        let entries = crate::package::contents::entries(dir.path(), &sealed).unwrap();
        // Changed after the checksums were taken, as a tampered package would be.
        let chart = blob_path(dir.path(), digests::CHART);
        let mut bytes = std::fs::read(&chart).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&chart, &bytes).unwrap();
        let package = dir.path().join("tampered.tar");
        crate::package::writer::write_package(&entries, &package, false).unwrap();

        let scan = scan(&package).unwrap();
        let name = format!("images/blobs/sha256/{}", &digests::CHART[7..]);
        assert_eq!(
            scan.problems,
            vec![
                Problem::BlobMismatch {
                    name: name.clone(),
                    actual: Digest::of(&bytes),
                },
                Problem::ChecksumMismatch { name },
                // The chart's manifest no longer parses, so its graph stops there.
                Problem::ManifestUnreadable {
                    reference: "registry.test/charts/demo:0.1.0".into(),
                    digest: crate::testing::digest(digests::CHART),
                },
            ]
        );
    }
}
