//! The package file: assembling it from a pull (staging, seal, heal, checksums, the
//! deterministic writer, whole or in split parts), the base a differential package is
//! made against (`base`), and reading it back safely for `inspect` and `push`.

pub mod assemble;
pub mod base;
pub mod built;
pub mod contents;
pub mod diff;
mod framed;
mod kept;
pub mod made;
mod needed;
pub mod parts;
pub mod reader;
pub mod scan;
pub mod seekable;
pub mod signature;
pub(crate) mod staging_dir;
pub mod summary;
pub mod writeback;
pub mod writer;

use std::path::PathBuf;

pub use assemble::{file_name, Output, Staging};

use crate::digest::Digest;
use crate::hint::{Fix, Hint};
use crate::manifest::walk::WalkError;
use crate::nesting::MAX_FLOW_DEPTH;

/// Paths inside a package.
pub const DEFINITION: &str = "pkgr.yaml";
pub const CHECKSUMS: &str = "checksums.txt";
pub const LAYOUT_DIR: &str = "images";
/// A signed package's signature of its `pkgr.yaml`: detached, and as a Sigstore bundle.
pub const SIGNATURE: &str = "pkgr.yaml.sig";
pub const BUNDLE: &str = "pkgr.bundle.sig";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Read(#[from] reader::ReadError),
    #[error(transparent)]
    Write(#[from] writer::WriteError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the package failed its seal")]
    Seal(#[from] crate::store::seal::SealError),
    #[error("cannot fetch the damaged blob again")]
    Heal(#[source] crate::pull::PullError),
    #[error("blob {digest} of {reference} was damaged, and again after it was fetched anew")]
    DamagedAgain { reference: String, digest: Digest },
    /// A worker thread panicked: a bug in pkgr, never the user's doing.
    #[error("internal error while {what}")]
    Internal {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A worker thread of a parallel pass panicked: a bug in pkgr, as above.
    #[error("internal error while {what}")]
    Panicked {
        what: &'static str,
        #[source]
        source: crate::parallel::Panicked,
    },
    #[error("cannot use the output directory {}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the package has no pkgr.yaml or zarf.yaml")]
    NoDefinition,
    #[error("the package has no images/index.json")]
    NoIndex,
    #[error("images/index.json cannot be read")]
    BadIndex(#[source] serde_json::Error),
    #[error("{name} cannot be read")]
    BadDefinition {
        name: &'static str,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error(
        "{name} nests more than {MAX_FLOW_DEPTH} levels deep (line {line}), more than any definition needs"
    )]
    DefinitionTooDeep { name: &'static str, line: usize },
    #[error("{file} in the package names it `{shown_name}`, which is not a valid package name")]
    InvalidName {
        file: &'static str,
        /// Escaped and cut for the message.
        shown_name: String,
    },
    #[error("the package's manifests and configs exceed {limit} bytes in all")]
    TooMuchMetadata { limit: u64 },
    #[error("the manifest {digest} of {reference} is missing")]
    MissingManifest { reference: String, digest: Digest },
    #[error("the manifests of {reference} cannot be followed")]
    Walk {
        reference: String,
        #[source]
        source: WalkError,
    },
}

impl PackageError {
    /// The path being written when its filesystem filled up, if that is what failed.
    pub fn no_space(&self) -> Option<&std::path::Path> {
        match self {
            Self::Write(e) => e.no_space(),
            Self::Store(e) => e.no_space(),
            Self::Heal(e) => e.no_space(),
            Self::Output { path, source } if crate::space::is_out_of_space(source) => Some(path),
            _ => None,
        }
    }
}

impl Hint for PackageError {
    fn hint(&self) -> Option<Fix> {
        match self {
            Self::Heal(e) => e.hint(),
            Self::Internal { .. } | Self::Panicked { .. } => Some(Fix::ReportBug),
            Self::DamagedAgain { .. } => Some(Fix::CheckDisk),
            _ => None,
        }
    }
}
