//! [`Problem`]: one thing wrong with a package, as typed data, and its text. Every
//! string in a problem comes from the package, so the text escapes and cuts it.

use std::fmt;

use crate::digest::Digest;
use crate::package::reader::shown;

/// One thing wrong with a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoDefinition,
    IndexMissing,
    IndexUnreadable {
        message: String,
    },
    ChecksumsMissing,
    ChecksumLineUnreadable {
        line: usize,
    },
    ListedButMissing {
        name: String,
    },
    ChecksumMismatch {
        name: String,
    },
    NotListed {
        name: String,
    },
    /// A signed pkgr package's `checksums.txt` is not the one its `pkgr.yaml` records.
    AggregateMismatch,
    /// A blob whose bytes do not hash to its name.
    BlobMismatch {
        name: String,
        actual: Digest,
    },
    BlobMissing {
        reference: String,
        digest: Digest,
    },
    BlobWrongSize {
        reference: String,
        digest: Digest,
        actual: u64,
        declared: u64,
    },
    ManifestUnreadable {
        reference: String,
        digest: Digest,
    },
    GraphUnfollowable {
        reference: String,
        message: String,
    },
    DefinitionUnreadable {
        message: String,
    },
    /// An image of pkgr.yaml that index.json lacks, or holds under another digest.
    IndexDisagrees {
        reference: String,
        definition: Digest,
        index: Option<Digest>,
    },
    /// An entry of index.json that pkgr.yaml does not list.
    NotInDefinition {
        reference: String,
        digest: Digest,
    },
}

impl Problem {
    /// The problem with each string from the package passed through `shown`.
    fn escaped(&self) -> Self {
        let esc = |text: &String| shown(text.as_bytes());
        let mut out = self.clone();
        match &mut out {
            Self::IndexUnreadable { message }
            | Self::GraphUnfollowable { message, .. }
            | Self::DefinitionUnreadable { message } => *message = esc(message),
            Self::ListedButMissing { name }
            | Self::ChecksumMismatch { name }
            | Self::NotListed { name }
            | Self::BlobMismatch { name, .. } => *name = esc(name),
            _ => {}
        }
        match &mut out {
            Self::BlobMissing { reference, .. }
            | Self::BlobWrongSize { reference, .. }
            | Self::ManifestUnreadable { reference, .. }
            | Self::GraphUnfollowable { reference, .. }
            | Self::IndexDisagrees { reference, .. }
            | Self::NotInDefinition { reference, .. } => *reference = esc(reference),
            _ => {}
        }
        out
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every string here comes from the package (checksums.txt lines, index.json
        // annotations, parser messages that quote it), so it is escaped and cut.
        match self.escaped() {
            Self::NoDefinition => write!(f, "the package has no pkgr.yaml or zarf.yaml"),
            Self::IndexMissing => write!(f, "images/index.json is missing"),
            Self::IndexUnreadable { message } => {
                write!(f, "images/index.json cannot be read: {message}")
            }
            Self::ChecksumsMissing => write!(f, "checksums.txt is missing"),
            Self::ChecksumLineUnreadable { line } => {
                write!(f, "checksums.txt line {line} cannot be read")
            }
            Self::ListedButMissing { name } => {
                write!(f, "{name} is listed in checksums.txt but missing")
            }
            Self::ChecksumMismatch { name } => {
                write!(f, "{name} does not match its checksum in checksums.txt")
            }
            Self::NotListed { name } => write!(f, "{name} is not listed in checksums.txt"),
            Self::AggregateMismatch => write!(
                f,
                "checksums.txt does not match the sha256 that pkgr.yaml records for it"
            ),
            Self::BlobMismatch { name, actual } => {
                write!(f, "{name} holds bytes whose digest is {actual}")
            }
            Self::BlobMissing { reference, digest } => {
                write!(f, "{reference}: blob {digest} is missing")
            }
            Self::BlobWrongSize {
                reference,
                digest,
                actual,
                declared,
            } => write!(
                f,
                "{reference}: blob {digest} is {actual} bytes, but its descriptor says {declared}"
            ),
            Self::ManifestUnreadable { reference, digest } => {
                write!(f, "{reference}: manifest {digest} cannot be read")
            }
            Self::GraphUnfollowable { reference, message } => {
                write!(f, "{reference}: {message}")
            }
            Self::DefinitionUnreadable { message } => {
                write!(f, "pkgr.yaml cannot be read: {message}")
            }
            Self::IndexDisagrees {
                reference,
                definition,
                index: Some(index),
            } => write!(
                f,
                "{reference} is {definition} in pkgr.yaml but {index} in images/index.json"
            ),
            Self::IndexDisagrees {
                reference,
                index: None,
                ..
            } => write!(
                f,
                "{reference} is in pkgr.yaml but not in images/index.json"
            ),
            Self::NotInDefinition { reference, digest } => write!(
                f,
                "images/index.json holds {reference} ({digest}), which pkgr.yaml does not list"
            ),
        }
    }
}
