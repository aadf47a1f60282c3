//! The push pipeline: every image of a verified package goes to `REGISTRY[/PREFIX]`
//! plus its original repository path. [`push_package`] is the one entry point (`run`):
//! it verifies the package while the registry is asked what it has (`present`), and
//! refuses a package that fails. Then each image is planned onto the target (`plan`);
//! blobs go first, each digest handled once across all images, mounted from a
//! repository that has it or uploaded straight from the package, hashed again as it
//! streams (`blobs`); manifests follow byte-exact, children before their index, by
//! digest then by tag (`manifests`), and artifacts (signatures, referrers) after the
//! images they describe. `images` runs those steps in order; `document` is the
//! `--json` view of the report. A differential package's left-out blobs are checked
//! on the target first (`left_out`), and mounted from the repository that has them
//! where another lacks them.

use std::collections::BTreeMap;

mod blobs;
mod document;
mod images;
mod left_out;
mod manifests;
pub(crate) mod order;
pub(crate) mod plan;
pub(crate) mod present;
mod run;

use crate::digest::Digest;
use crate::hint::Hint;
use crate::manifest::walk::WalkError;
use crate::package::reader::PackageBytes;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::store::layout::LayoutIndex;
pub use document::{document, SCHEMA_VERSION as JSON_SCHEMA_VERSION};
pub use run::{push_package, PushPackageError, PushRequest};

/// Why one image was not pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("its manifests cannot be followed")]
    Walk(#[from] WalkError),
    #[error("blob {digest} could not be pushed")]
    BlobFailed { digest: Digest },
    #[error("its manifest {digest} is not in the package")]
    MissingManifest { digest: Digest },
}

impl Hint for PushError {
    fn hint(&self) -> Option<crate::hint::Fix> {
        match self {
            Self::Registry(e) => e.hint(),
            _ => None,
        }
    }
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub count: usize,
    pub bytes: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// What became of one blob in one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobOutcome {
    /// Uploaded from the package.
    Sent,
    /// Mounted from another repository of the target that had just received it.
    Mounted,
    /// Already there: nothing moved.
    Present,
}

/// One blob's outcome in one repository of the target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlobRecord {
    pub digest: Digest,
    /// `REGISTRY/repository`, as the target names it.
    pub repository: String,
    pub outcome: BlobOutcome,
    pub bytes: u64,
}

/// One image pushed: where it came from, where it went, and its manifest's digest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushedImage {
    /// The reference the package records.
    pub source: String,
    /// The reference on the target.
    pub target: String,
    pub digest: Digest,
}

/// What a push did: the images pushed and those not (with why), and the blobs moved.
#[derive(Debug, Default)]
pub struct PushReport {
    pub pushed: Vec<PushedImage>,
    pub failed: Vec<(String, PushError)>,
    pub uploaded: Tally,
    pub skipped: Tally,
    pub mounted: Tally,
    /// Blobs the target already held, so that push neither read nor verified them.
    pub not_read: Tally,
    /// Every blob some repository needed, in the order the package holds them, each
    /// with its repositories in the order images are pushed.
    pub blobs: Vec<BlobRecord>,
}

/// A verified package, as push reads it.
struct Layout<'a> {
    index: &'a LayoutIndex,
    manifests: &'a BTreeMap<Digest, Vec<u8>>,
    package: &'a PackageBytes,
    /// Where each blob starts in the package's tar.
    offsets: &'a BTreeMap<Digest, u64>,
    sizes: &'a BTreeMap<Digest, u64>,
    /// A differential package's configs and layers left to its base, with their sizes.
    left_out: &'a BTreeMap<Digest, u64>,
    /// Configs and layers the target held, passed over unverified: mounted from the
    /// repository that has them where another lacks them.
    not_read: &'a BTreeMap<Digest, u64>,
}

impl Layout<'_> {
    fn size_of(&self, digest: &Digest) -> u64 {
        self.sizes
            .get(digest)
            .or_else(|| self.left_out.get(digest))
            .copied()
            .unwrap_or(0)
    }
}
