//! Reading a package as a stream, safely: every tar entry is checked before its bytes
//! are used. Only regular files at known paths are accepted; absolute paths, `..`,
//! links, devices, duplicates and oversized metadata are refused with the entry named.
//! Tar headers are walked by `tarwalk`, which bounds extended headers; names reach
//! messages only through `shown`. Whatever the package's form (`access`), every reader
//! sees the entries a plain `zstd -dc | tar` sees: a seek table is used only once its
//! frames bear it out, and one they contradict refuses the package
//! ([`ReadError::SeekTable`]).

mod access;
mod shown;
pub(crate) mod split;

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::seekable::SeekTableError;
use super::PackageError;
use crate::digest::Digest;
use crate::tarwalk;
pub use access::PackageBytes;
use access::TarBytes;
pub use shown::shown;
pub use split::{is_split, open as open_split, SplitError};
use tarwalk::{Forward, TarWalk};
pub use tarwalk::{TarError, MAX_EXTENDED_HEADER_BYTES};

/// pkgr.yaml, zarf.yaml, index.json and checksums.txt larger than this are refused.
pub const MAX_METADATA_BYTES: u64 = 16 * 1024 * 1024;

/// A signature file larger than this is refused: a signature or a keyed bundle is a
/// few hundred bytes, and these files are outside checksums.txt, so nothing may hide
/// in them.
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the package {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the package holds an unsafe entry `{name}`: {reason}")]
    Unsafe { name: String, reason: &'static str },
    #[error("the package holds `{name}` twice")]
    Duplicate { name: String },
    #[error("`{name}` in the package is {size} bytes, over the {MAX_METADATA_BYTES}-byte limit for metadata")]
    TooLarge { name: String, size: u64 },
    #[error("`{name}` in the package is {size} bytes, over the {MAX_SIGNATURE_BYTES}-byte limit for a signature")]
    SignatureTooLarge { name: String, size: u64 },
    #[error("`{name}` in the package is not where a package keeps files")]
    Unknown { name: String },
    #[error(transparent)]
    Tar(TarError),
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error(transparent)]
    SeekTable(SeekTableError),
}

/// A read failure at `path`; a split package's own failure keeps its sentence.
fn read_failure(path: &Path, source: io::Error) -> ReadError {
    match source.downcast::<SplitError>() {
        Ok(split) => ReadError::Split(split),
        Err(source) => ReadError::Io {
            path: path.to_owned(),
            source,
        },
    }
}

/// What a package entry is, by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    PkgrDefinition,
    ZarfDefinition,
    Checksums,
    OciLayout,
    Index,
    Blob(Digest),
    /// Zarf files pkgr carries but does not use (component tarballs, SBOMs).
    ZarfExtra,
    /// A signature of the definition: `pkgr.yaml.sig` and `pkgr.bundle.sig`, or Zarf's
    /// `zarf.yaml.sig` and `zarf.bundle.sig`. Outside checksums.txt, and small.
    Signature,
}

impl Known {
    fn is_metadata(&self) -> bool {
        matches!(
            self,
            Self::PkgrDefinition
                | Self::ZarfDefinition
                | Self::Checksums
                | Self::OciLayout
                | Self::Index
        )
    }
}

/// Classifies a normalized entry name, or says why it does not belong.
pub fn classify(name: &str) -> Result<Known, ReadError> {
    let unknown = || ReadError::Unknown {
        name: shown(name.as_bytes()),
    };
    let known = match name {
        "pkgr.yaml" => Known::PkgrDefinition,
        "zarf.yaml" => Known::ZarfDefinition,
        "checksums.txt" => Known::Checksums,
        "images/oci-layout" => Known::OciLayout,
        "images/index.json" => Known::Index,
        "sboms.tar" => Known::ZarfExtra,
        "pkgr.yaml.sig" | "pkgr.bundle.sig" | "zarf.yaml.sig" | "zarf.bundle.sig" => {
            Known::Signature
        }
        _ => {
            if let Some(hex) = name.strip_prefix("images/blobs/sha256/") {
                let digest = Digest::from_hex(hex).map_err(|_| unknown())?;
                Known::Blob(digest)
            } else if name.starts_with("components/") && !name[11..].contains('/') {
                Known::ZarfExtra
            } else {
                return Err(unknown());
            }
        }
    };
    Ok(known)
}

/// Checks a raw entry name and returns it without a leading `./`.
fn normalize(raw: &[u8]) -> Result<String, ReadError> {
    let unsafe_entry = |reason| ReadError::Unsafe {
        name: shown(raw),
        reason,
    };
    let name = std::str::from_utf8(raw).map_err(|_| unsafe_entry("its name is not UTF-8"))?;
    if name.starts_with('/') {
        return Err(unsafe_entry("its path is absolute"));
    }
    let trimmed = name.trim_start_matches("./");
    if trimmed.split('/').any(|part| part == "..") {
        return Err(unsafe_entry("its path climbs out with `..`"));
    }
    if trimmed.contains('\\') || trimmed.contains('\0') {
        return Err(unsafe_entry("its path has a backslash or NUL"));
    }
    Ok(trimmed.trim_end_matches('/').to_owned())
}

impl Forward for TarBytes {
    fn forward(&mut self, n: u64) -> io::Result<()> {
        TarBytes::forward(self, n)
    }
}

/// What the callback wants next.
pub enum Flow {
    Continue,
    Stop,
}

/// One entry of the package, as a walk hands it to its callback.
pub struct Entry<'a> {
    pub known: Known,
    pub name: &'a str,
    pub size: u64,
    /// Where its bytes start in the tar, for [`PackageBytes::read_at`].
    pub offset: u64,
    /// Its bytes; what the callback leaves unread is passed over.
    pub reader: &'a mut dyn Read,
}

/// Walks the package's entries in order, refusing any unsafe one before the callback
/// sees it.
pub fn for_each_entry(
    package: &PackageBytes,
    mut visit: impl FnMut(Entry<'_>) -> Result<Flow, PackageError>,
) -> Result<(), PackageError> {
    let path = package.path();
    let io_err = |source| read_failure(path, source);
    let mut walk = TarWalk::new(package.tar()?);
    let mut seen = HashSet::new();
    loop {
        let member = match walk.next_member() {
            Ok(Some(member)) => member,
            Ok(None) => {
                // Read to the very end: a split package checks its digest there.
                walk.drain().map_err(io_err)?;
                break;
            }
            Err(TarError::Io(source)) => return Err(io_err(source).into()),
            Err(e) => return Err(ReadError::Tar(e).into()),
        };
        let name = normalize(&member.name)?;
        let kind = member.kind;
        let refuse = |reason| ReadError::Unsafe {
            name: shown(name.as_bytes()),
            reason,
        };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink => return Err(refuse("it is a symbolic link").into()),
            tar::EntryType::Link => return Err(refuse("it is a hard link").into()),
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refuse("it is a device").into())
            }
            tar::EntryType::Fifo => return Err(refuse("it is a FIFO").into()),
            _ => return Err(refuse("it is not a regular file").into()),
        }
        let known = classify(&name)?;
        if !seen.insert(name.clone()) {
            return Err(ReadError::Duplicate {
                name: shown(name.as_bytes()),
            }
            .into());
        }
        // The member's size, not the header's: a PAX record may override the header.
        let (size, offset) = (member.size, member.offset);
        if known.is_metadata() && size > MAX_METADATA_BYTES {
            return Err(ReadError::TooLarge {
                name: shown(name.as_bytes()),
                size,
            }
            .into());
        }
        if known == Known::Signature && size > MAX_SIGNATURE_BYTES {
            return Err(ReadError::SignatureTooLarge {
                name: shown(name.as_bytes()),
                size,
            }
            .into());
        }
        let entry = Entry {
            known,
            name: &name,
            size,
            offset,
            reader: &mut walk,
        };
        match visit(entry)? {
            Flow::Continue => {}
            Flow::Stop => break,
        }
    }
    Ok(())
}

/// Reads a whole entry into memory, bounded by `limit`.
pub fn read_bounded(
    reader: &mut dyn Read,
    name: &str,
    size: u64,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    if size > limit {
        return Err(ReadError::TooLarge {
            name: shown(name.as_bytes()),
            size,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    reader
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: PathBuf::from(name),
            source,
        })?;
    if bytes.len() as u64 != size {
        return Err(ReadError::Io {
            path: PathBuf::from(name),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "the entry ends early"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(
            normalize(b"./images/index.json").unwrap(),
            "images/index.json"
        );
        for bad in [&b"/etc/passwd"[..], b"images/../../x", b"../x", b"a\\b"] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
        assert!(classify("images/blobs/sha256/nothex").is_err());
        assert!(classify("etc/cron.d/evil").is_err());
        assert!(matches!(
            classify("components/web.tar"),
            Ok(Known::ZarfExtra)
        ));
        assert!(classify("components/a/b.tar").is_err());
    }
}
