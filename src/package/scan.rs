//! A full pass over a package: every file hashed, every blob checked against its name,
//! `checksums.txt` compared both ways, and every descriptor reachable from
//! `index.json` found with its size. What is wrong is a typed list of [`Problem`]s.
//! A package that can be read from any offset has its large blobs hashed in parallel,
//! and the scan records where each blob starts, which is how `push` reads them again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::Path;

use super::built::BuiltDefinition;
use super::kept::Kept;
use super::reader::{
    classify, for_each_entry, read_bounded, shown, Entry, Flow, Known, PackageBytes,
    MAX_METADATA_BYTES,
};
use super::PackageError;
use crate::digest::{Digest, Hasher};
use crate::manifest::{Manifest, MAX_MANIFEST_BYTES};
use crate::parallel::{self, Stopped};
use crate::store::graph::{self, Blobs, Fault, Faults};
use crate::store::layout::LayoutIndex;
use crate::store::StoreError;

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

/// What a full pass found.
#[derive(Debug, Default)]
pub struct Scan {
    pub zarf: bool,
    pub definition: Option<Vec<u8>>,
    pub index: Option<LayoutIndex>,
    /// Every file: its true digest and size.
    pub files: BTreeMap<String, (Digest, u64)>,
    /// Blobs small enough to be manifests, kept to walk the graph.
    pub manifests: BTreeMap<Digest, Vec<u8>>,
    /// Where each blob's bytes start in the package's tar.
    pub offsets: BTreeMap<Digest, u64>,
    pub problems: Vec<Problem>,
    checksums: Option<String>,
}

/// Reads the whole package at `path`.
pub fn scan(path: &Path) -> Result<Scan, PackageError> {
    scan_package(&PackageBytes::open(path)?)
}

/// The package's `index.json` and the blobs that may be manifests, read without
/// verifying anything: enough to know what a push will need, so that the registry can
/// be asked while the package is verified. Large blobs are passed over, so this is
/// quick only where the package can be read from any offset.
pub fn head(package: &PackageBytes) -> Result<Head, PackageError> {
    let mut index = None;
    let mut manifests = BTreeMap::new();
    let mut kept = Kept::default();
    for_each_entry(package, |entry| {
        match &entry.known {
            Known::Index => {
                let bytes = read_bounded(entry.reader, entry.name, entry.size, MAX_METADATA_BYTES)?;
                index = serde_json::from_slice(&bytes).ok();
            }
            Known::Blob(digest) if entry.size <= MAX_MANIFEST_BYTES => {
                kept.add(entry.size)?;
                let bytes = read_bounded(entry.reader, entry.name, entry.size, MAX_MANIFEST_BYTES)?;
                if bytes.first() == Some(&b'{') {
                    manifests.insert(digest.clone(), bytes);
                }
            }
            _ => {}
        }
        Ok(Flow::Continue)
    })?;
    Ok(Head { index, manifests })
}

/// What [`head`] read, unverified.
pub struct Head {
    pub index: Option<LayoutIndex>,
    pub manifests: BTreeMap<Digest, Vec<u8>>,
}

/// A blob left for the parallel pass: too large to be a manifest, in a package that
/// can be read from its offsets.
struct Deferred {
    /// Its place among the package's entries, so problems keep the package's order.
    order: usize,
    name: String,
    offset: u64,
    size: u64,
}

/// Reads the whole package. Where the package can be read from any offset, blobs too
/// large to be manifests are hashed afterwards, on all cores.
pub fn scan_package(package: &PackageBytes) -> Result<Scan, PackageError> {
    let mut scan = Scan::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut kept_bytes = Kept::default();
    let mut deferred = Vec::new();
    let mut hashed = Vec::new();
    let mut order = 0usize;
    for_each_entry(package, |entry| {
        order += 1;
        let Entry {
            known,
            name,
            size,
            offset,
            reader,
        } = entry;
        if let Known::Blob(digest) = &known {
            scan.offsets.insert(digest.clone(), offset);
        }
        match &known {
            Known::PkgrDefinition
            | Known::ZarfDefinition
            | Known::Checksums
            | Known::Index
            | Known::OciLayout => {
                let bytes = read_bounded(reader, name, size, MAX_METADATA_BYTES)?;
                scan.files
                    .insert(name.to_owned(), (Digest::of(&bytes), bytes.len() as u64));
                match known {
                    Known::PkgrDefinition => scan.definition = Some(bytes),
                    Known::ZarfDefinition => {
                        scan.zarf = true;
                        scan.definition = Some(bytes);
                    }
                    Known::Checksums => {
                        scan.checksums = Some(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    Known::Index => match serde_json::from_slice(&bytes) {
                        Ok(index) => scan.index = Some(index),
                        Err(e) => scan.problems.push(Problem::IndexUnreadable {
                            message: e.to_string(),
                        }),
                    },
                    _ => {}
                }
            }
            Known::Blob(_) | Known::ZarfExtra
                if package.is_random_access() && size > MAX_MANIFEST_BYTES =>
            {
                deferred.push(Deferred {
                    order,
                    name: name.to_owned(),
                    offset,
                    size,
                });
            }
            Known::Blob(digest) => {
                let keep = size <= MAX_MANIFEST_BYTES;
                let mut kept = Vec::new();
                let (actual, read) =
                    hash_stream(reader, &mut buf, keep.then_some(&mut kept), name)?;
                if keep && kept.first() == Some(&b'{') && &actual == digest {
                    kept_bytes.add(kept.len() as u64)?;
                    scan.manifests.insert(digest.clone(), kept);
                }
                hashed.push((order, name.to_owned(), actual, read));
            }
            Known::ZarfExtra => {
                let (actual, read) = hash_stream(reader, &mut buf, None, name)?;
                hashed.push((order, name.to_owned(), actual, read));
            }
        }
        Ok(Flow::Continue)
    })?;
    hashed.extend(hash_in_parallel(package, deferred)?);
    hashed.sort_by_key(|(order, ..)| *order);
    for (_, name, actual, read) in hashed {
        let named = match classify(&name) {
            Ok(Known::Blob(digest)) => Some(digest),
            _ => None,
        };
        if named.is_some_and(|digest| digest != actual) {
            scan.problems.push(Problem::BlobMismatch {
                name: name.clone(),
                actual: actual.clone(),
            });
        }
        scan.files.insert(name, (actual, read));
    }
    scan.check_checksums();
    scan.check_graph();
    scan.check_definition_agrees();
    Ok(scan)
}

/// Hashes the deferred entries, largest first, one per core at a time; returns each
/// one's order, name, true digest and length.
fn hash_in_parallel(
    package: &PackageBytes,
    mut deferred: Vec<Deferred>,
) -> Result<Vec<(usize, String, Digest, u64)>, PackageError> {
    deferred.sort_by_key(|entry| std::cmp::Reverse(entry.size));
    let hashed = parallel::try_map_init(
        &deferred,
        || vec![0u8; 1 << 20],
        |buf, entry| {
            let mut reader = package
                .read_at(entry.offset, entry.size)
                .map_err(|e| StoreError::io("read", package.path(), e))?;
            let (actual, read) = hash_stream(&mut reader, buf, None, &entry.name)?;
            Ok((entry.order, entry.name.clone(), actual, read))
        },
    );
    hashed.map_err(|stopped| match stopped {
        Stopped::Failed(e) => e,
        Stopped::Panicked(source) => PackageError::Panicked {
            what: "hashing the package's blobs",
            source,
        },
    })
}

/// Hashes an entry to its end; returns its digest and how many bytes it really had.
fn hash_stream(
    reader: &mut dyn Read,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
    name: &str,
) -> Result<(Digest, u64), PackageError> {
    let mut hasher = Hasher::default();
    hasher
        .update_from(reader, buf, |chunk| {
            if let Some(kept) = keep.as_deref_mut() {
                kept.extend_from_slice(chunk);
            }
        })
        .map_err(|e| StoreError::io("read", Path::new(name), e))?;
    let read = hasher.bytes_hashed();
    Ok((hasher.finish(), read))
}

impl Scan {
    /// A pkgr package's definition as built lists every image with its digest, and
    /// index.json must hold exactly those: what `push` publishes under each tag is
    /// what the definition says was built. (A Zarf definition lists references as
    /// their author wrote them, without digests; it is not compared.)
    fn check_definition_agrees(&mut self) {
        let (Some(bytes), false, Some(index)) = (&self.definition, self.zarf, &self.index) else {
            return;
        };
        let definition = match BuiltDefinition::read(bytes) {
            Ok(definition) => definition,
            Err(unreadable) => {
                self.problems.push(Problem::DefinitionUnreadable {
                    message: unreadable.to_string(),
                });
                return;
            }
        };
        let mut indexed: BTreeMap<&str, Vec<&Digest>> = BTreeMap::new();
        for entry in &index.manifests {
            indexed
                .entry(entry.reference().unwrap_or("(unnamed)"))
                .or_default()
                .push(&entry.digest);
        }
        let mut listed = BTreeSet::new();
        let mut disagreeing = BTreeSet::new();
        for image in definition.components.iter().flat_map(|c| &c.images) {
            listed.insert((image.reference.as_str(), &image.digest));
            let found = indexed.get(image.reference.as_str());
            if !found.is_some_and(|digests| digests.contains(&&image.digest)) {
                disagreeing.insert(image.reference.as_str());
                self.problems.push(Problem::IndexDisagrees {
                    reference: image.reference.clone(),
                    definition: image.digest.clone(),
                    index: found
                        .and_then(|digests| digests.first())
                        .map(|d| (*d).clone()),
                });
            }
        }
        // A reference already reported above under another digest is not reported again.
        for (reference, digests) in indexed.iter().filter(|(r, _)| !disagreeing.contains(*r)) {
            for digest in digests {
                if !listed.contains(&(*reference, *digest)) {
                    self.problems.push(Problem::NotInDefinition {
                        reference: (*reference).to_owned(),
                        digest: (*digest).clone(),
                    });
                }
            }
        }
    }

    fn check_checksums(&mut self) {
        let Some(text) = self.checksums.clone() else {
            self.problems.push(Problem::ChecksumsMissing);
            return;
        };
        let mut listed = BTreeSet::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((hex, name)) = line.split_once(' ') else {
                self.problems
                    .push(Problem::ChecksumLineUnreadable { line: number + 1 });
                continue;
            };
            let name = name.trim();
            listed.insert(name.to_owned());
            match self.files.get(name) {
                None => self.problems.push(Problem::ListedButMissing {
                    name: name.to_owned(),
                }),
                Some((digest, _)) if digest.hex() != hex => {
                    self.problems.push(Problem::ChecksumMismatch {
                        name: name.to_owned(),
                    })
                }
                Some(_) => {}
            }
        }
        // Zarf signs and sums its definition separately.
        let exempt: &[&str] = if self.zarf {
            &["checksums.txt", "zarf.yaml", "zarf.yaml.sig"]
        } else {
            &["checksums.txt"]
        };
        for name in self.files.keys() {
            if !listed.contains(name) && !exempt.contains(&name.as_str()) {
                self.problems
                    .push(Problem::NotListed { name: name.clone() });
            }
        }
    }

    fn check_graph(&mut self) {
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
        let packaged = PackagedBlobs {
            files: &self.files,
            manifests: &self.manifests,
        };
        let checked = graph::check(index, &packaged, Faults::All);
        self.problems
            .extend(checked.faults.into_iter().map(Problem::from));
    }
}

/// The package's blobs as the scan found them: sizes from the hashing, manifests from
/// the small blobs it kept.
struct PackagedBlobs<'a> {
    files: &'a BTreeMap<String, (Digest, u64)>,
    manifests: &'a BTreeMap<Digest, Vec<u8>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{blob_path, digests, fixture_dir, write_fixture_package};

    #[test]
    fn a_sound_package_has_no_problems() {
        let dir = fixture_dir();
        let package = write_fixture_package(dir.path(), false);
        let scan = scan(&package).unwrap();
        assert_eq!(scan.problems, Vec::new());
        // 13 blobs, pkgr.yaml, checksums.txt, oci-layout and index.json.
        assert_eq!(scan.files.len(), 17);
    }

    #[test]
    fn a_changed_blob_is_reported_as_typed_problems() {
        let dir = fixture_dir();
        let sealed = crate::store::seal::seal(&dir.path().join("images")).unwrap();
        let entries = crate::package::contents::entries(dir.path(), &sealed).unwrap();
        // Changed after the checksums were taken, as a tampered package would be.
        let chart = blob_path(dir.path(), digests::CHART);
        let mut bytes = std::fs::read(&chart).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&chart, &bytes).unwrap();
        let package = dir.path().join("tampered.tar");
        crate::package::writer::write_package(&entries, &package, false).unwrap();

        let scan = scan(&package).unwrap();
        let name = format!("images/blobs/sha256/{}", &digests::CHART[7..]);
        assert_eq!(
            scan.problems,
            vec![
                Problem::BlobMismatch {
                    name: name.clone(),
                    actual: Digest::of(&bytes),
                },
                Problem::ChecksumMismatch { name },
                // The chart's manifest no longer parses, so its graph stops there.
                Problem::ManifestUnreadable {
                    reference: "registry.test/charts/demo:0.1.0".into(),
                    digest: crate::testing::digest(digests::CHART),
                },
            ]
        );
    }
}
