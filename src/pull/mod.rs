//! The pull pipeline: resolve references to manifests, plan the unique blobs, fetch
//! them into the content-addressed store.

mod fetch;
mod resolve;

pub use fetch::{fetch_all, BlobJob};
pub use resolve::{resolve_all, ResolveOptions, ResolvedImage};

use crate::manifest::Platform;
use crate::registry::RegistryError;
use crate::store::{Digest, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot store {what}")]
    Store {
        what: String,
        #[source]
        source: StoreError,
    },
    #[error("{reference} is an image index of {} platforms, and pkgr packages one platform per reference", platforms.len())]
    IndexRefused {
        reference: String,
        architecture: String,
        platforms: Vec<(Option<Platform>, String)>,
    },
    #[error("{reference} has no linux/{architecture} image (it has {})", available.join(", "))]
    PlatformMissing {
        reference: String,
        architecture: String,
        available: Vec<String>,
    },
    #[error("the manifest {digest} of {reference} cannot be read: {message}")]
    BadManifest {
        reference: String,
        digest: Digest,
        message: String,
    },
    #[error("{reference}: the descriptor of {digest} declares {size} bytes, more than a manifest may have")]
    ChildTooLarge {
        reference: String,
        digest: Digest,
        size: u64,
    },
    #[error("the download of blob {digest} for {reference} kept failing")]
    Interrupted {
        reference: String,
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {digest} for {reference} is damaged")]
    Damaged {
        reference: String,
        digest: Digest,
        #[source]
        source: StoreError,
    },
}

impl PullError {
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Registry(e) => e.hint(),
            Self::IndexRefused {
                architecture,
                platforms,
                ..
            } => {
                let width = platforms
                    .iter()
                    .map(|(p, _)| p.as_ref().map_or(7, |p| p.to_string().len()))
                    .max()
                    .unwrap_or(0);
                let mut text = String::from("pin one platform's manifest instead:\n");
                for (platform, pinned) in platforms {
                    let name = platform
                        .as_ref()
                        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
                    let marker = if platform
                        .as_ref()
                        .is_some_and(|p| p.matches_linux(architecture))
                    {
                        "   <- matches this package"
                    } else {
                        ""
                    };
                    text.push_str(&format!("    {name:<width$}  {pinned}{marker}\n"));
                }
                text.push_str(
                    "or pass --allow-index to keep the whole index and every platform in it",
                );
                Some(text)
            }
            Self::PlatformMissing { .. } => Some(
                "set metadata.architecture (or --architecture) to one of the platforms listed"
                    .into(),
            ),
            _ => None,
        }
    }
}
