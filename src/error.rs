//! The error a command ends with: one sentence from the failing stage, its causes,
//! and a hint where a fix is known.

use crate::definition::DefinitionError;
use crate::package::writer::WriteError;
use crate::pull::PullError;
use crate::registry::RegistryError;
use crate::store::seal::SealError;
use crate::store::{CacheError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("the package failed its seal: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Read(#[from] crate::package::reader::ReadError),
    #[error("the package cannot be read: {message}")]
    BadPackage { message: String },
    #[error("the package failed verification: {} problem(s), the first: {}", problems.len(), problems[0])]
    Verification {
        problems: Vec<String>,
        /// Whether push refused the package (so nothing was sent).
        refused_push: bool,
    },
    #[error("cannot use the output directory {}", path.display())]
    Output {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} damaged blob(s) in the cache {} were removed", damaged.len(), root.display())]
    DamagedBlobs {
        root: std::path::PathBuf,
        damaged: Vec<crate::store::Digest>,
    },
    #[error("blob {digest} is listed with two sizes ({first} and {second} bytes) by {reference}")]
    ConflictingSizes {
        digest: crate::store::Digest,
        first: u64,
        second: u64,
        reference: String,
    },
    #[error(
        "blob {digest} of {reference} was damaged in the cache (its bytes do not match its name)"
    )]
    DamagedCache {
        reference: String,
        digest: crate::store::Digest,
    },
    #[error("{} image(s) failed to push: {}", failed.len(), failed.join(", "))]
    PushFailed {
        failed: Vec<String>,
        hint: Option<String>,
    },
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Pull(e) => e.hint(),
            Self::Registry(e) => e.hint(),
            Self::Cache(e) => e.hint(),
            Self::PushFailed { hint, .. } => hint.clone(),
            Self::Verification {
                refused_push: true, ..
            } => Some(
                "the package was changed or damaged after it was built; nothing was pushed".into(),
            ),
            Self::DamagedBlobs { .. } => {
                Some("the next pkgr create fetches them again from their registries".into())
            }
            Self::DamagedCache { .. } => {
                Some("the damaged entry was removed from the cache: build again".into())
            }
            _ => None,
        }
    }
}

/// The distinct messages below an error's own: wrappers that repeat their inner
/// message (`#[error(transparent)]`, or a message ending with the cause) add nothing.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut causes = Vec::new();
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if text != last && !last.ends_with(&text) {
            causes.push(text.clone());
        }
        last = text;
        source = cause.source();
    }
    causes
}
