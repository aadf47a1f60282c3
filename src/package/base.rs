//! The base of a differential package (`create --differential BASE`): a pkgr or Zarf
//! package, whole or split, opened and verified in full with the scan `inspect
//! --verify` runs, then summarized for its name, version and architecture. What it
//! holds (every blob, with its size) is what the new package may leave out, and
//! [`BaseRecord`] is how the new package names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::built::BaseRecord;
use super::reader::{classify, split, Known};
use super::scan::scan;
use super::summary::summarize;
use super::PackageError;
use crate::cancel::Cancellable;
use crate::digest::{hash_reader, Digest};
use crate::hint::{Fix, Hint};

/// A verified base package.
#[derive(Debug)]
pub struct Base {
    pub path: PathBuf,
    pub record: BaseRecord,
    /// Every blob the base holds, with its size.
    pub blobs: BTreeMap<Digest, u64>,
}

/// Why a base package cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("the base package {} cannot be read as a pkgr or Zarf package", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: Box<PackageError>,
    },
    #[error("the base package {} does not verify: {first}{}", path.display(), and_more(*count))]
    DoesNotVerify {
        path: PathBuf,
        first: String,
        count: usize,
    },
    #[error("the base package {} cannot be hashed", path.display())]
    Hash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the base package {} is for {base}, but this package is for {package}", path.display())]
    OtherArchitecture {
        path: PathBuf,
        base: String,
        package: String,
    },
}

fn and_more(count: usize) -> String {
    match count {
        0 | 1 => String::new(),
        2 => " (and 1 more problem)".to_owned(),
        n => format!(" (and {} more problems)", n - 1),
    }
}

impl Hint for BaseError {
    fn hint(&self) -> Option<Fix> {
        match self {
            Self::OtherArchitecture { .. } => Some(Fix::AllowOtherArchitecture),
            _ => None,
        }
    }
}

/// Opens the package at `path` (a file, or a split package's first part) and verifies
/// every byte of it; a package with any problem is refused, and with `architecture`,
/// so is one made for another (see [`Base::check_architecture`]).
pub fn open_base(path: &Path, architecture: Option<&str>) -> Result<Base, BaseError> {
    let unreadable = |source: PackageError| BaseError::Unreadable {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let scanned = scan(path).map_err(unreadable)?;
    if let Some(first) = scanned.problems.first() {
        return Err(BaseError::DoesNotVerify {
            path: path.to_owned(),
            first: first.to_string(),
            count: scanned.problems.len(),
        });
    }
    let metadata = summarize(path).map_err(unreadable)?.metadata;
    let blobs = scanned
        .files
        .iter()
        .filter(|(name, _)| matches!(classify(name), Ok(Known::Blob(_))))
        .map(|(_, (digest, size))| (digest.clone(), *size))
        .collect();
    let base = Base {
        record: BaseRecord {
            name: metadata.name,
            version: metadata.version,
            architecture: metadata.architecture,
            sha256: file_digest(path).map_err(unreadable)?,
        },
        path: path.to_owned(),
        blobs,
    };
    if let Some(architecture) = architecture {
        base.check_architecture(architecture)?;
    }
    Ok(base)
}

impl Base {
    /// Refuses a base made for another architecture than `package`'s. A base that does
    /// not say (a Zarf package may not) is taken as it is.
    pub fn check_architecture(&self, package: &str) -> Result<(), BaseError> {
        match &self.record.architecture {
            Some(base) if base != package => Err(BaseError::OtherArchitecture {
                path: self.path.clone(),
                base: base.clone(),
                package: package.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// The sha256 of the file, or of a split package's joined parts as its first part
/// declares it (the scan has just checked that the parts hash to it).
fn file_digest(path: &Path) -> Result<Digest, PackageError> {
    if split::is_split(path) {
        let declared = split::open(path).map_err(super::reader::ReadError::from)?;
        return Ok(Digest::from_hex(declared.declared_sha256())
            .expect("the split reader checked its sha256Sum"));
    }
    let hashed = std::fs::File::open(path).and_then(|file| hash_reader(Cancellable(file)));
    hashed.map(|(digest, _)| digest).map_err(|source| {
        PackageError::Read(super::reader::ReadError::Io {
            path: path.to_owned(),
            source,
        })
    })
}
