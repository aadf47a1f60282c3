//! Packages through a registry: a package file published as one OCI artifact
//! (`send`), pulled back into the identical file (`pull`), and summarized from the
//! registry without its image blobs (`remote_inspect`). `address` tells an
//! `oci://` address from a file path; `artifact` is the manifest's shape; `fetch`
//! brings a layer's bytes, checked against its size (and, where asked, its digest) as
//! they arrive; `behind` hashes and writes a rebuilt package on threads of its own.

pub mod address;
mod arrivals;
pub mod artifact;
mod behind;
mod fetch;
pub mod pull;
pub mod remote_inspect;
pub mod send;

use std::path::PathBuf;

pub use address::{is_address, Address, BadAddress};
pub use pull::{pull_package, PullRequest, PulledPackage};
pub use remote_inspect::summarize_published;
pub use send::{publish_package, PublishReport, PublishRequest};

use crate::digest::Digest;
use crate::hint::{Fix, Hint};
use crate::package::scan::Problem;
use crate::package::PackageError;
use crate::registry::RegistryError;

/// Why a publish, a pull or an inspect of a published package did nothing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Address(#[from] BadAddress),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The package was changed or damaged after it was built: nothing was sent.
    #[error("the package failed verification")]
    Verification { problems: Vec<Problem> },
    #[error("{} is a Zarf package: pkgr publishes only packages it wrote, which a pull can write again byte for byte", path.display())]
    ZarfPackage { path: PathBuf },
    #[error("inspect --verify reads a package file; pull {address} first and verify the file")]
    VerifyRemote { address: String },
    #[error("{address} is not a package pkgr published: {reason}")]
    NotAPackage {
        address: String,
        reason: artifact::NotAPackage,
    },
    #[error("{address} was written by another package writer ({theirs}) than this pkgr's ({ours}), so this pkgr cannot write it again byte for byte")]
    OtherWriter {
        address: String,
        theirs: String,
        ours: String,
    },
    #[error(
        "{name} in {address} is {size} bytes, over the {limit}-byte limit for what inspect reads"
    )]
    TooLarge {
        address: String,
        name: String,
        size: u64,
        limit: u64,
    },
    /// `found` says how: `its bytes hash to sha256:…`, or a size.
    #[error("the registry's copy of {name} in {address} is damaged: {found}")]
    Damaged {
        address: String,
        name: String,
        found: String,
    },
    #[error("cannot download {name} from {address}")]
    Download {
        address: String,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the package rebuilt from {address} hashes to {actual}, not the {expected} it was published with, so it was not kept")]
    Rebuilt {
        address: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    NoRoom(#[from] crate::space::Shortfall),
    #[error("cannot write {}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked: a bug in pkgr.
    #[error("internal error while {what}")]
    Internal {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl PublishError {
    /// The path being written when its filesystem filled up, if that is what failed.
    pub fn no_space(&self) -> Option<&std::path::Path> {
        match self {
            Self::Output { path, source } if crate::space::is_out_of_space(source) => Some(path),
            Self::Package(e) => e.no_space(),
            _ => None,
        }
    }
}

impl Hint for PublishError {
    fn hint(&self) -> Option<Fix> {
        match self {
            Self::Registry(e) => e.hint(),
            Self::Package(e) => e.hint(),
            Self::NoRoom(e) => e.hint(),
            Self::Internal { .. } => Some(Fix::ReportBug),
            _ => None,
        }
    }
}

/// Runs blocking work off the async threads, started at once: the future returned only
/// waits for it, so work spawned before other awaits runs beside them.
fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, PublishError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, PublishError>> {
    let running = tokio::task::spawn_blocking(work);
    async move {
        running
            .await
            .unwrap_or_else(|source| Err(PublishError::Internal { what, source }))
    }
}
