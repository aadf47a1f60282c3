//! The graph check of a scanned package: the definition and `index.json` are there,
//! then [`crate::store::graph`] runs over the blobs the scan hashed and the manifests
//! it kept, every fault a [`Problem`]. A pkgr package's definition may name blobs left
//! out on purpose (a differential package): those are expected, not missing.

use std::collections::BTreeMap;

use super::{Problem, Scan};
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::package::built::{BuiltDefinition, Differential};
use crate::store::graph::{self, Blobs, Fault, Faults};

impl Scan {
    pub(super) fn check_graph(&mut self) {
        if self.definition.is_none() {
            self.problems.push(Problem::NoDefinition);
        }
        let Some(index) = &self.index else {
            let unreadable = self
                .problems
                .iter()
                .any(|p| matches!(p, Problem::IndexUnreadable { .. }));
            if !unreadable {
                self.problems.push(Problem::IndexMissing);
            }
            return;
        };
        self.differential = match (&self.definition, self.zarf) {
            (Some(bytes), false) => BuiltDefinition::read(bytes)
                .ok()
                .and_then(|definition| definition.differential),
            _ => None,
        };
        let left_out = self
            .differential
            .as_ref()
            .map(Differential::left_out_map)
            .unwrap_or_default();
        let packaged = PackagedBlobs {
            files: &self.files,
            manifests: &self.manifests,
            left_out: &left_out,
        };
        let checked = graph::check(index, &packaged, Faults::All);
        self.problems
            .extend(checked.faults.into_iter().map(Problem::from));
        self.left_out = checked.left_out;
    }
}

/// The package's blobs as the scan found them: sizes from the hashing, manifests from
/// the small blobs it kept.
struct PackagedBlobs<'a> {
    files: &'a BTreeMap<String, (Digest, u64)>,
    manifests: &'a BTreeMap<Digest, Vec<u8>>,
    left_out: &'a BTreeMap<Digest, u64>,
}

impl Blobs for PackagedBlobs<'_> {
    /// Not kept, or not a manifest: the problem says no more.
    type Unreadable = ();

    fn size(&self, digest: &Digest) -> Option<u64> {
        let name = format!("images/blobs/sha256/{}", digest.hex());
        self.files.get(&name).map(|(_, size)| *size)
    }

    fn manifest(&self, digest: &Digest) -> Result<Manifest, ()> {
        let bytes = self.manifests.get(digest).ok_or(())?;
        Manifest::parse(bytes).map_err(|_| ())
    }

    fn left_out(&self, digest: &Digest) -> Option<u64> {
        self.left_out.get(digest).copied()
    }
}

impl From<Fault<()>> for Problem {
    fn from(fault: Fault<()>) -> Self {
        match fault {
            Fault::Missing { reference, digest } => Self::BlobMissing { reference, digest },
            Fault::WrongSize {
                reference,
                digest,
                declared,
                actual,
            } => Self::BlobWrongSize {
                reference,
                digest,
                actual,
                declared,
            },
            Fault::ManifestUnreadable {
                reference, digest, ..
            } => Self::ManifestUnreadable { reference, digest },
            Fault::Unfollowable { reference, source } => Self::GraphUnfollowable {
                reference,
                message: source.to_string(),
            },
        }
    }
}
