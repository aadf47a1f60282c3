//! `publish`: a package file sent as one artifact. The package is verified in full
//! (the scan `inspect --verify` runs) and hashed whole before anything is sent; then
//! the registry is asked, with push's own questions (`push::present`), which of the
//! package's files the target repository holds (skipped) and which the repositories
//! the package's images are pushed to there hold (mounted from them); the rest is
//! uploaded straight from the package, re-hashed as it streams, and the manifest goes
//! last, under the tag.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_client::Reference;

use super::address::{default_tag, Address};
use super::artifact::{Artifact, Facts, PackageFile, EMPTY_CONFIG};
use super::{blocking, PublishError};
use crate::digest::{Digest, Hasher};
use crate::manifest::OCI_MANIFEST;
use crate::package::built::BuiltDefinition;
use crate::package::reader::{for_each_entry, is_split, open_split, Flow, PackageBytes};
use crate::package::scan::{scan_package, Scan};
use crate::package::PackageError;
use crate::progress::Reporter;
use crate::push::order::largest_first;
use crate::push::present::Present;
use crate::push::{BlobOutcome, Tally};
use crate::reference::{parse_reference, Target};
use crate::registry::{Credentials, Registry, RegistryError, Transport};
use crate::store::layout::LayoutIndex;

/// A publish to run.
pub struct PublishRequest {
    pub package: PathBuf,
    /// Without a tag, the package's `VERSION-ARCHITECTURE` is used.
    pub address: Address,
    pub transport: Transport,
    pub credentials: Credentials,
    /// Uploads in flight.
    pub concurrency: usize,
}

/// What a publish did.
#[derive(Debug)]
pub struct PublishReport {
    /// With the tag it went under.
    pub address: Address,
    /// The artifact's manifest.
    pub digest: Digest,
    pub facts: Facts,
    pub files: usize,
    pub uploaded: Tally,
    pub skipped: Tally,
    pub mounted: Tally,
}

/// One entry of the package: where its bytes start in the tar.
struct Listed {
    name: String,
    offset: u64,
}

/// Above this many questions, the package's other repositories are not asked about
/// the blobs the target lacks (as push's look elsewhere).
const MAX_QUESTIONS_ELSEWHERE: usize = 4096;

pub async fn publish_package(
    request: PublishRequest,
    reporter: &dyn Reporter,
) -> Result<PublishReport, PublishError> {
    let PublishRequest {
        package: path,
        address,
        transport,
        credentials,
        concurrency,
    } = request;
    reporter.step(&format!("verifying {}", path.display()));
    let package = {
        let path = path.clone();
        blocking("opening the package", move || {
            Ok(PackageBytes::open(&path).map_err(PackageError::from)?)
        })
        .await?
    };
    let package = Arc::new(package);
    let verified = {
        let package = package.clone();
        blocking("verifying the package", move || verify(&package))
    };
    let whole = {
        let path = path.clone();
        blocking("hashing the package", move || hash_whole(&path))
    };
    let ((scanned, listed), (sha256, size, compressed)) = tokio::try_join!(verified, whole)?;
    let artifact = artifact_of(&path, &scanned, &listed, sha256, size, compressed)?;
    let facts = &artifact.facts;
    let address = address.or_tag(&default_tag(facts.version.as_deref(), &facts.architecture));
    let registries = BTreeSet::from([address.registry().to_owned()]);
    let registry = Registry::connect(&transport, &registries, credentials).await?;
    let offsets: BTreeMap<Digest, u64> = listed
        .iter()
        .zip(&artifact.files)
        .map(|(entry, file)| (file.digest.clone(), entry.offset))
        .collect();
    let elsewhere = other_repositories(scanned.index.as_ref(), &address);
    let sending = Sending {
        registry: &registry,
        target: address.reference(),
        package: &package,
        offsets: &offsets,
        reporter,
    };
    let present = sending.ask(&artifact, &elsewhere, concurrency).await;
    let outcomes = sending.send_all(&artifact, &present, concurrency).await?;
    let manifest = artifact.to_manifest();
    reporter.step(&format!("tagging {address}"));
    registry
        .put_manifest(address.reference(), &manifest, OCI_MANIFEST)
        .await?;
    let mut report = PublishReport {
        address,
        digest: Digest::of(&manifest),
        files: artifact.files.len(),
        facts: artifact.facts,
        uploaded: Tally::default(),
        skipped: Tally::default(),
        mounted: Tally::default(),
    };
    for (outcome, size) in outcomes {
        match outcome {
            BlobOutcome::Sent => report.uploaded.add(size),
            BlobOutcome::Present => report.skipped.add(size),
            BlobOutcome::Mounted => report.mounted.add(size),
        }
    }
    Ok(report)
}

/// The scan `inspect --verify` runs, refused on any problem; and every entry's place,
/// in the package's order.
fn verify(package: &PackageBytes) -> Result<(Scan, Vec<Listed>), PublishError> {
    let scanned = scan_package(package)?;
    if !scanned.problems.is_empty() {
        return Err(PublishError::Verification {
            problems: scanned.problems,
        });
    }
    if scanned.zarf {
        return Err(PublishError::ZarfPackage {
            path: package.path().to_owned(),
        });
    }
    let mut listed = Vec::new();
    for_each_entry(package, |entry| {
        listed.push(Listed {
            name: entry.name.to_owned(),
            offset: entry.offset,
        });
        Ok(Flow::Continue)
    })?;
    Ok((scanned, listed))
}

/// The sha256 and size of the whole package (a split one's parts joined), and whether
/// it is zstd.
fn hash_whole(path: &Path) -> Result<(Digest, u64, bool), PublishError> {
    let failed = |source| {
        PackageError::from(crate::package::reader::ReadError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let mut reader: Box<dyn Read> = if is_split(path) {
        let split = open_split(path).map_err(crate::package::reader::ReadError::Split);
        Box::new(split.map_err(PackageError::from)?)
    } else {
        Box::new(std::fs::File::open(path).map_err(failed)?)
    };
    let mut reader = crate::cancel::Cancellable(&mut reader);
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    loop {
        let n = reader.read(&mut buf).map_err(failed)?;
        if n == 0 {
            break;
        }
        if head.len() < 4 {
            head.extend_from_slice(&buf[..n.min(4 - head.len())]);
        }
        hasher.update(&buf[..n]);
    }
    let size = hasher.bytes_hashed();
    Ok((hasher.finish(), size, head == [0x28, 0xb5, 0x2f, 0xfd]))
}

/// The artifact of a verified package: its files in order, as the scan hashed them.
fn artifact_of(
    path: &Path,
    scanned: &Scan,
    listed: &[Listed],
    sha256: Digest,
    size: u64,
    compressed: bool,
) -> Result<Artifact, PublishError> {
    let definition = scanned
        .definition
        .as_deref()
        .ok_or(PackageError::NoDefinition)?;
    let built = BuiltDefinition::read(definition)
        .map_err(|e| crate::package::summary::definition_error("pkgr.yaml", e))?;
    let whole = if is_split(path) {
        path.with_extension("")
    } else {
        path.to_owned()
    };
    let file_name = whole
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = listed
        .iter()
        .map(|entry| {
            let (digest, size) = scanned.files.get(&entry.name).cloned().unwrap_or_else(|| {
                unreachable!("the scan hashed every entry the listing walked past")
            });
            PackageFile {
                name: entry.name.clone(),
                digest,
                size,
            }
        })
        .collect();
    let facts = Facts {
        file_name,
        name: built.metadata.name,
        version: built.metadata.version,
        architecture: built.metadata.architecture,
        sha256,
        size,
        compressed,
        writer: crate::package::writer::identity(compressed),
    };
    Ok(Artifact { facts, files })
}

/// The repositories, on the target's registry, that `push` would put the package's
/// images in: where its blobs may already be, to be mounted from.
fn other_repositories(index: Option<&LayoutIndex>, address: &Address) -> Vec<Reference> {
    let target = Target {
        registry: address.registry().to_owned(),
        prefix: None,
    };
    let mut seen = BTreeSet::from([address.reference().repository().to_owned()]);
    index
        .map(|index| index.manifests.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| parse_reference(entry.reference()?).ok())
        .map(|reference| target.map(&reference))
        .filter(|mapped| seen.insert(mapped.repository().to_owned()))
        .collect()
}

/// What sending needs at hand.
struct Sending<'a> {
    registry: &'a Registry,
    target: &'a Reference,
    package: &'a PackageBytes,
    offsets: &'a BTreeMap<Digest, u64>,
    reporter: &'a dyn Reporter,
}

impl Sending<'_> {
    /// Which of the artifact's blobs the target repository has, and where else the
    /// registry has those it lacks.
    async fn ask(
        &self,
        artifact: &Artifact,
        elsewhere: &[Reference],
        concurrency: usize,
    ) -> Present {
        let empty = Digest::of(EMPTY_CONFIG);
        let mut digests: Vec<&Digest> = artifact.files.iter().map(|f| &f.digest).collect();
        digests.push(&empty);
        digests.sort();
        digests.dedup();
        let mut present = Present::default();
        present
            .ask_elsewhere(self.registry, &digests, &[self.target], concurrency)
            .await;
        let lacking: Vec<&Digest> = digests
            .into_iter()
            .filter(|d| !present.has_blob(d, self.target))
            .collect();
        let others: Vec<&Reference> = elsewhere.iter().collect();
        if !lacking.is_empty() && lacking.len() * others.len() <= MAX_QUESTIONS_ELSEWHERE {
            present
                .ask_elsewhere(self.registry, &lacking, &others, concurrency)
                .await;
        }
        present
    }

    /// Sends each digest once (the empty config among them, first), the others in the
    /// order `push::order` gives; returns each file's outcome with its size (the empty
    /// config's is not counted), or the error of the first to fail in the package's
    /// order.
    async fn send_all(
        &self,
        artifact: &Artifact,
        present: &Present,
        concurrency: usize,
    ) -> Result<Vec<(BlobOutcome, u64)>, PublishError> {
        let mut unique: BTreeMap<&Digest, u64> = BTreeMap::new();
        for file in &artifact.files {
            unique.insert(&file.digest, file.size);
        }
        let empty = Digest::of(EMPTY_CONFIG);
        let mut to_send: Vec<(&Digest, u64)> = unique.into_iter().collect();
        to_send.sort_by_key(|(digest, _)| self.offsets.get(*digest).copied());
        let missing = to_send
            .iter()
            .filter(|(d, _)| !present.has_blob(d, self.target))
            .fold((0, 0u64), |(n, bytes), (_, size)| (n + 1, bytes + size));
        self.reporter
            .blobs_planned("publishing", missing.0, missing.1);
        let config = self.send(&empty, EMPTY_CONFIG.len() as u64, present);
        config.await?;
        let outcomes = largest_first(
            &to_send,
            self.package.is_random_access(),
            concurrency,
            |(_, size)| *size,
            |(digest, size)| self.send_sized(digest, *size, present),
        )
        .await;
        self.reporter.finish();
        Ok(outcomes.into_iter().collect::<Result<_, _>>()?)
    }

    async fn send_sized(
        &self,
        digest: &Digest,
        size: u64,
        present: &Present,
    ) -> Result<(BlobOutcome, u64), RegistryError> {
        Ok((self.send(digest, size, present).await?, size))
    }

    /// One blob: skipped where the target has it, mounted from a repository that has
    /// it, else uploaded from the package (or, for the empty config, from memory).
    async fn send(
        &self,
        digest: &Digest,
        size: u64,
        present: &Present,
    ) -> Result<BlobOutcome, RegistryError> {
        if let Some(err) = present.blob_failure(digest, self.target) {
            return Err(err);
        }
        if present.has_blob(digest, self.target) {
            return Ok(BlobOutcome::Present);
        }
        if let Some(from) = present.holder(digest) {
            if self.registry.mount(self.target, from, digest).await? {
                return Ok(BlobOutcome::Mounted);
            }
        }
        let offset = self.offsets.get(digest).copied();
        let open = || -> std::io::Result<Box<dyn Read + Send>> {
            match offset {
                Some(offset) => self.package.read_at(offset, size),
                None => Ok(Box::new(Cursor::new(EMPTY_CONFIG))),
            }
        };
        self.reporter.blob_start(digest, size);
        self.registry
            .upload(self.target, digest, size, &open)
            .await?;
        self.reporter.blob_progress(digest, size);
        self.reporter.blob_done(digest);
        Ok(BlobOutcome::Sent)
    }
}
