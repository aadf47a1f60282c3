//! The local Docker daemon as a second place images come from: connecting to it
//! (`engine`), reading its `docker save` stream into the store as it arrives, under
//! the header caps and `--max-blob-size` bound a package is read with (`save`),
//! gzip-compressing the uncompressed layers it holds when asked to (`gzip`), and
//! turning what was saved into one root manifest whose every blob is named by its
//! bytes (`image`).
//!
//! Nothing here names a blob after Docker's image ID or a file name in the save: with
//! Docker's containerd image store the image ID is the manifest digest, and trusting
//! it is how crane packaged a config under the wrong name.

mod engine;
mod gzip;
mod image;
pub(crate) mod save;

pub use engine::Daemon;
pub use image::{from_save, import, Format, ImportOptions, Imported};

/// How the layers of a daemon-made image (one the daemon holds no compressed copy
/// of) go into the package: `--daemon-layers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DaemonLayers {
    /// As the daemon saved them, uncompressed (`application/vnd.oci.image.layer.v1.tar`,
    /// as Docker ≥ 25's own `docker save` writes them); the package is compressed anyway
    #[default]
    Tar,
    /// Gzip-compressed on every core (`…tar+gzip`), for registries or runtimes that
    /// take only compressed layers
    Gzip,
}

use crate::hint::{Fix, Hint};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the Docker daemon at {host} cannot be reached")]
    Unreachable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{image} is not in the Docker daemon at {host}")]
    NotFound { image: String, host: String },
    #[error("the Docker daemon at {host} failed to {action} {image}")]
    Api {
        host: String,
        action: &'static str,
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the Docker daemon at {host} has {image} as {actual}, not the digest it is pinned to")]
    PinnedDigest {
        image: String,
        host: String,
        actual: crate::digest::Digest,
    },
    #[error("{digest} of {image} is not among what the Docker daemon at {host} saved")]
    Missing {
        image: String,
        host: String,
        digest: crate::digest::Digest,
    },
    #[error("the docker save stream of {image} is not one pkgr can read: {message}")]
    Format { image: String, message: String },
    /// Refused from the entry's header, before its bytes were read.
    #[error(
        "`{name}` in the docker save stream of {image} declares {size} bytes ({}), more than the {} allowed for one blob",
        crate::progress::human_bytes(*size),
        crate::progress::human_bytes(*limit)
    )]
    EntryTooLarge {
        image: String,
        name: String,
        size: u64,
        limit: u64,
    },
    #[error("cannot store what the docker save stream of {image} holds")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
    /// A worker thread panicked: a bug in pkgr.
    #[error("internal error while reading the docker save stream of {image}")]
    Internal {
        image: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Hint for DaemonError {
    fn hint(&self) -> Option<Fix> {
        match self {
            Self::Unreachable { .. } => Some(Fix::StartDaemon),
            Self::NotFound { .. } => Some(Fix::LoadIntoDaemon),
            Self::EntryTooLarge { .. } => Some(Fix::RaiseMaxBlobSize),
            Self::Internal { .. } => Some(Fix::ReportBug),
            _ => None,
        }
    }
}

impl DaemonError {
    /// The path being written when its filesystem filled up, if that is what failed.
    pub fn no_space(&self) -> Option<&std::path::Path> {
        match self {
            Self::Store { source, .. } => source.no_space(),
            _ => None,
        }
    }
}
