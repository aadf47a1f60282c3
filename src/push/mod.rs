//! The push pipeline: every image of a verified package goes to `REGISTRY[/PREFIX]`
//! plus its original repository path. Blobs go first, each digest handled once across
//! all images: every repository is asked (HEAD, in parallel) which it has, then each
//! missing blob is mounted from a repository that has it or uploaded straight from the
//! package, hashed again as it streams. Manifests follow byte-exact, children before
//! their index, by digest then by tag, and artifacts (signatures, referrers) after the
//! images they describe.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use futures_util::stream::{self, StreamExt};
use oci_client::Reference;

mod present;

use crate::digest::Digest;
use crate::hint::Hint;
use crate::manifest::parsed::ParsedManifests;
use crate::manifest::walk::{Role, Walk, WalkError};
use crate::manifest::{is_manifest_media_type, Descriptor};
use crate::package::reader::PackageBytes;
use crate::progress::Reporter;
use crate::reference::{parse_reference, ReferenceError, Target};
use crate::registry::{Registry, RegistryError};
use crate::store::layout::{IndexEntry, LayoutIndex};
pub use present::Present;

/// Why one image was not pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("its manifests cannot be followed")]
    Walk(#[from] WalkError),
    #[error("blob {digest} could not be pushed")]
    BlobFailed { digest: Digest },
    #[error("its manifest {digest} is not in the package")]
    MissingManifest { digest: Digest },
}

impl Hint for PushError {
    fn hint(&self) -> Option<crate::hint::Fix> {
        match self {
            Self::Registry(e) => e.hint(),
            _ => None,
        }
    }
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub count: usize,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

#[derive(Debug, Default)]
pub struct PushReport {
    pub pushed: Vec<String>,
    pub failed: Vec<(String, PushError)>,
    pub uploaded: Tally,
    pub skipped: Tally,
    pub mounted: Tally,
}

/// One image of the package, planned for its target.
struct PlannedImage {
    source: String,
    target: Reference,
    /// Manifests in push order: children first, the root last.
    manifests: Vec<(Digest, String)>,
    blobs: BTreeSet<Digest>,
}

/// A verified package, as push reads it.
pub struct Layout<'a> {
    pub index: &'a LayoutIndex,
    pub manifests: &'a BTreeMap<Digest, Vec<u8>>,
    pub package: &'a PackageBytes,
    /// Where each blob starts in the package's tar.
    pub offsets: &'a BTreeMap<Digest, u64>,
    pub sizes: &'a BTreeMap<Digest, u64>,
}

/// Asks the registry what it has of what `index` and `manifests` (from a package not
/// yet verified) need, so that the answers can come while the package is verified.
pub async fn ask_early(
    registry: &Registry,
    index: &LayoutIndex,
    manifests: &BTreeMap<Digest, Vec<u8>>,
    target: &Target,
    concurrency: usize,
) -> Present {
    let images = plan_images(index, manifests, target, &mut Vec::new());
    let mut present = Present::default();
    present.ask(registry, &images, concurrency).await;
    present
}

/// Pushes every image of the verified package. `present` holds what the registry was
/// already asked ([`ask_early`]); what it lacks is asked now.
pub async fn push(
    registry: &Registry,
    layout: &Layout<'_>,
    target: &Target,
    concurrency: usize,
    reporter: &dyn Reporter,
    mut present: Present,
) -> PushReport {
    let mut report = PushReport::default();
    let images = plan_images(layout.index, layout.manifests, target, &mut report.failed);
    present.ask(registry, &images, concurrency).await;

    // Each digest once: the repositories that need it, in a fixed order.
    let mut needed: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    for image in &images {
        for digest in &image.blobs {
            let repos = needed.entry(digest.clone()).or_default();
            if !repos
                .iter()
                .any(|r| r.repository() == image.target.repository())
            {
                repos.push(image.target.clone());
            }
        }
    }
    let (mut sending, mut missing) = (0, 0u64);
    for (digest, repos) in &needed {
        if repos.iter().any(|repo| !present.has_blob(digest, repo)) {
            sending += 1;
            missing = missing.saturating_add(layout.sizes.get(digest).copied().unwrap_or(0));
        }
    }
    reporter.blobs_planned("pushing", sending, missing);
    // A package read in one pass is read in the order of its blobs, one at a time.
    let mut in_order: Vec<(Digest, Vec<Reference>)> = needed.into_iter().collect();
    in_order.sort_by_key(|(digest, _)| layout.offsets.get(digest).copied());
    let parallel = if layout.package.is_random_access() {
        concurrency.max(1)
    } else {
        1
    };
    let present = &present;
    let outcomes: Vec<(Digest, Result<Vec<Outcome>, RegistryError>)> = stream::iter(in_order)
        .map(|(digest, repos)| async move {
            let result = push_blob(registry, layout, present, &digest, &repos, reporter).await;
            (digest, result)
        })
        .buffered(parallel)
        .collect()
        .await;
    reporter.finish();

    let mut failed_blobs: BTreeMap<Digest, RegistryError> = BTreeMap::new();
    for (digest, outcome) in outcomes {
        let size = layout.sizes.get(&digest).copied().unwrap_or(0);
        match outcome {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome {
                        Outcome::Uploaded => report.uploaded.add(size),
                        Outcome::Skipped => report.skipped.add(size),
                        Outcome::Mounted => report.mounted.add(size),
                    }
                }
            }
            Err(err) => {
                failed_blobs.insert(digest, err);
            }
        }
    }

    // What the registry has counts as sent.
    let mut manifests_sent = present.manifests();
    for image in images {
        if let Some(digest) = image.blobs.iter().find(|d| failed_blobs.contains_key(*d)) {
            let err = failed_blobs.remove(digest).map_or_else(
                || PushError::BlobFailed {
                    digest: digest.clone(),
                },
                PushError::from,
            );
            report.failed.push((image.source, err));
            continue;
        }
        match push_manifests(registry, layout, &image, &mut manifests_sent).await {
            Ok(()) => {
                reporter.step(&format!(
                    "pushed {} to {}",
                    image.source,
                    image.target.whole()
                ));
                report.pushed.push(image.source);
            }
            Err(err) => report.failed.push((image.source, err)),
        }
    }
    report
}

/// Each entry of the package's index, planned for `target`; an entry that cannot be is
/// recorded as failed. Entries that name one digest are walked once.
fn plan_images(
    index: &LayoutIndex,
    manifests: &BTreeMap<Digest, Vec<u8>>,
    target: &Target,
    failed: &mut Vec<(String, PushError)>,
) -> Vec<PlannedImage> {
    let parsed = ParsedManifests::new(manifests);
    let mut collected: HashMap<&Digest, Collected> = HashMap::new();
    let mut images = Vec::new();
    // A manifest with a subject goes after its subject: entries that describe another
    // (linked by `--with-signatures`, or whose manifest names a `subject`) come after
    // every other entry, in index order, where a signature of an attestation already
    // follows the attestation.
    let describes = |entry: &&IndexEntry| {
        entry.link().is_some()
            || parsed
                .get(&entry.digest)
                .is_some_and(|m| m.subject.is_some())
    };
    let subjects_first = index
        .manifests
        .iter()
        .filter(|e| !describes(e))
        .chain(index.manifests.iter().filter(describes));
    for entry in subjects_first {
        let source = entry.reference().unwrap_or("(unnamed)").to_owned();
        let source_ref = match parse_reference(&source) {
            Ok(reference) => reference,
            Err(err) => {
                failed.push((source, err.into()));
                continue;
            }
        };
        let walked = match collected.get(&entry.digest) {
            Some(done) => Ok(done.clone()),
            None => collect(&parsed, entry.descriptor()),
        };
        match walked {
            Ok((manifests, blobs)) => {
                collected.insert(&entry.digest, (manifests.clone(), blobs.clone()));
                images.push(PlannedImage {
                    target: target.map(&source_ref),
                    source,
                    manifests,
                    blobs,
                });
            }
            Err(err) => failed.push((source, err.into())),
        }
    }
    images
}

/// An image's manifests in push order, each with its media type, and its blobs.
type Collected = (Vec<(Digest, String)>, BTreeSet<Digest>);

/// Walks an image's graph: its manifests children-first, each with the media type to
/// push it with, and every config and layer. An index's children are manifests
/// whatever media type their descriptor claims; each manifest is pushed with the media
/// type its own bytes declare.
fn collect(parsed: &ParsedManifests<'_>, root: Descriptor) -> Result<Collected, WalkError> {
    let root_digest = root.digest.clone();
    let mut walk = Walk::from_root(root)?;
    let mut media_types: HashMap<Digest, String> = HashMap::new();
    let mut blobs = BTreeSet::new();
    while let Some(node) = walk.next_node() {
        parsed.spend(1)?;
        if node.role != Role::Manifest {
            blobs.insert(node.digest().clone());
            continue;
        }
        let manifest = parsed.get(node.digest());
        let declared = &node.descriptor.media_type;
        let media_type = match &manifest {
            Some(m) if m.media_type.is_some() => m.effective_media_type().to_owned(),
            Some(m) if !is_manifest_media_type(declared) => m.effective_media_type().to_owned(),
            _ => declared.clone(),
        };
        if let Some(manifest) = manifest {
            walk.descend(&node, manifest)?;
        }
        media_types.insert(node.digest().clone(), media_type);
    }
    let manifests = walk
        .children_first(&root_digest)
        .into_iter()
        .map(|digest| {
            let media_type = media_types.get(&digest).cloned().unwrap_or_default();
            (digest, media_type)
        })
        .collect();
    Ok((manifests, blobs))
}

enum Outcome {
    Uploaded,
    Skipped,
    Mounted,
}

async fn push_blob(
    registry: &Registry,
    layout: &Layout<'_>,
    present: &Present,
    digest: &Digest,
    repos: &[Reference],
    reporter: &dyn Reporter,
) -> Result<Vec<Outcome>, RegistryError> {
    let mut outcomes = Vec::new();
    let mut holder: Option<&Reference> = None;
    for repo in repos {
        if let Some(err) = present.blob_failure(digest, repo) {
            return Err(err);
        }
        let outcome = if present.has_blob(digest, repo) {
            Outcome::Skipped
        } else if let Some(from) = holder {
            if registry.mount(repo, from, digest).await? {
                Outcome::Mounted
            } else {
                upload(registry, layout, repo, digest, reporter).await?
            }
        } else {
            upload(registry, layout, repo, digest, reporter).await?
        };
        outcomes.push(outcome);
        holder = Some(repo);
    }
    Ok(outcomes)
}

/// Uploads a blob straight from the package.
async fn upload(
    registry: &Registry,
    layout: &Layout<'_>,
    repo: &Reference,
    digest: &Digest,
    reporter: &dyn Reporter,
) -> Result<Outcome, RegistryError> {
    let size = layout.sizes.get(digest).copied().unwrap_or(0);
    let offset = layout.offsets.get(digest).copied();
    let open = || match offset {
        Some(offset) => layout.package.read_at(offset, size),
        None => Err(std::io::Error::other(format!(
            "blob {digest} is not in the package"
        ))),
    };
    reporter.blob_start(digest, size);
    registry.upload(repo, digest, size, &open).await?;
    reporter.blob_progress(digest, size);
    reporter.blob_done(digest);
    Ok(Outcome::Uploaded)
}

/// Puts an image's manifests by digest, children first, then its tag. A manifest this
/// run has already put into the same repository (or tag) is not sent again: entries
/// that share an index would otherwise send it once per entry.
async fn push_manifests(
    registry: &Registry,
    layout: &Layout<'_>,
    image: &PlannedImage,
    sent: &mut HashSet<(String, Digest)>,
) -> Result<(), PushError> {
    for (digest, media_type) in &image.manifests {
        let key = (image.target.repository().to_owned(), digest.clone());
        if sent.contains(&key) {
            continue;
        }
        let bytes = layout
            .manifests
            .get(digest)
            .ok_or_else(|| PushError::MissingManifest {
                digest: digest.clone(),
            })?;
        let by_digest = Reference::with_digest(
            image.target.registry().to_owned(),
            image.target.repository().to_owned(),
            digest.to_string(),
        );
        registry.put_manifest(&by_digest, bytes, media_type).await?;
        sent.insert(key);
    }
    // The root comes last in children-first order.
    if let (Some(_), Some((digest, media_type))) = (image.target.tag(), image.manifests.last()) {
        let key = (image.target.whole(), digest.clone());
        if sent.contains(&key) {
            return Ok(());
        }
        let bytes = layout
            .manifests
            .get(digest)
            .ok_or_else(|| PushError::MissingManifest {
                digest: digest.clone(),
            })?;
        registry
            .put_manifest(&image.target, bytes, media_type)
            .await?;
        sent.insert(key);
    }
    Ok(())
}
