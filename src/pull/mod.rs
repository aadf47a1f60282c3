//! The pull pipeline: resolve each reference through its [`Source`], discover what
//! travels with it (`--with-signatures`, see `discover`, held by `bounds` to a few
//! requests at once, a cap on the run's requests and one on what each subject may
//! bring), plan the unique blobs, and fetch them into the content-addressed store
//! through one per-digest table. Every reference is resolved before any blob is
//! fetched, and resolution goes on past a failed reference, so that one run names every
//! reference that cannot be packaged (`failures`); an image may also be refused by a
//! check given from above (`admit`, as `--image-key` does). `link` ties an artifact
//! to its subject; `fallback` lets the Docker daemon stand in for a registry that
//! cannot serve an image, and `daemon` serves what it imported from the store.

mod admit;
mod bounds;
mod daemon;
mod discover;
mod failures;
mod fallback;
mod fetch;
mod link;
mod plan;
mod resolve;
mod source;

pub use admit::Admit;
pub use bounds::{Bounds, DEFAULT_MAX_REFERRERS};
pub use daemon::DaemonImage;
pub use discover::discover;
pub use failures::ReferenceFailures;
pub use fallback::{falls_back, DaemonFallback, Fallback};
pub use fetch::Fetcher;
pub use link::{Link, Relation};
pub use plan::{BlobJob, Plan};
pub use resolve::{resolve, IndexPlatform, ResolveOptions, ResolvedImage};
pub use source::{RegistryImage, Source};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::stream::{self, FuturesUnordered, StreamExt};
use oci_client::Reference;

use crate::daemon::DaemonError;
use crate::definition::Definition;
use crate::digest::Digest;
use crate::hint::{Fix, Hint, PlatformPin};
use crate::manifest::walk::WalkError;
use crate::manifest::Descriptor;
use crate::progress::human_bytes;
use crate::registry::RegistryError;
use crate::space::{Demand, Shortfall, SpaceCheck};
use crate::store::{Store, StoreError};

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
    #[error(
        "{reference} is an image index of {}, and pkgr packages one platform per reference",
        count_platforms(platforms)
    )]
    IndexRefused {
        reference: String,
        architecture: String,
        /// Each platform with the reference that pins it.
        platforms: Vec<(IndexPlatform, String)>,
    },
    #[error(
        "{reference} has no linux/{architecture} image (it has {})",
        list_or_none(available)
    )]
    PlatformMissing {
        reference: String,
        architecture: String,
        available: Vec<String>,
    },
    #[error("the index {reference} was served with bytes that hash to {served}, so the platform it lists cannot be trusted")]
    IndexPinMismatch { reference: String, served: Digest },
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
    #[error("the manifests of {reference} cannot be followed")]
    Walk {
        reference: String,
        #[source]
        source: WalkError,
    },
    #[error("blob {digest} is listed with two sizes ({first} and {second} bytes) by {reference}")]
    ConflictingSizes {
        digest: Digest,
        first: u64,
        second: u64,
        reference: String,
    },
    #[error(
        "blob {digest} of {reference} declares {size} bytes ({}), more than the {} allowed for one blob",
        human_bytes(*size),
        human_bytes(*limit)
    )]
    BlobTooLarge {
        reference: String,
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error(transparent)]
    NoSpace(#[from] Shortfall),
    #[error("the blobs of {reference} declare more than 2^63 bytes in all")]
    ImageTooLarge { reference: String },
    #[error("the blobs of {reference} and of the images planned before it declare more than 2^63 bytes in all")]
    PlanTooLarge { reference: String },
    #[error("the download of blob {digest} for {reference} kept failing")]
    Interrupted {
        reference: String,
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("the download of blob {digest} for {reference} stalled")]
    Stalled {
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
    /// `--with-signatures` could not tell whether an image has signatures or referrers.
    #[error("cannot look for the signatures, attestations and referrers of {reference}")]
    Discovery {
        reference: String,
        #[source]
        source: Box<PullError>,
    },
    /// A subject lists more artifacts than `--max-referrers` lets one bring.
    #[error("{subject} in {reference} has more than {limit} signatures, attestations, SBOMs and referrers, the most one image or artifact may bring")]
    TooManyArtifacts {
        subject: Digest,
        reference: String,
        limit: usize,
    },
    /// Discovery made as many requests as one run may.
    #[error("looking for signatures, attestations and referrers took {limit} requests, the most this run may make")]
    DiscoveryRequests { limit: usize },
    /// The registry could not serve the image, and the Docker daemon could not either.
    #[error("{registry}, and the Docker daemon cannot serve it either: {daemon}")]
    NotInDaemon {
        registry: Box<RegistryError>,
        #[source]
        daemon: Box<DaemonError>,
    },
    #[error(transparent)]
    Daemon(Box<DaemonError>),
    /// Another asker's failure for the same digest, shared through the fetch table.
    #[error(transparent)]
    Shared(Arc<PullError>),
    /// A check given to the pull ([`Admit`]) refused the image; the error names it.
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
    /// Two or more references failed to resolve (one alone is reported as itself).
    #[error(transparent)]
    References(ReferenceFailures),
    /// A worker thread panicked: a bug in pkgr, never the user's doing.
    #[error("internal error while {what}")]
    Internal {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

fn count_platforms(platforms: &[(IndexPlatform, String)]) -> String {
    let attestations: usize = platforms.iter().map(|(p, _)| p.attestations.len()).sum();
    let mut text = format!(
        "{} platform{}",
        platforms.len(),
        if platforms.len() == 1 { "" } else { "s" }
    );
    if attestations > 0 {
        text.push_str(&format!(
            " (+{attestations} attestation{})",
            if attestations == 1 { "" } else { "s" }
        ));
    }
    text
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no platform images".to_owned()
    } else {
        items.join(", ")
    }
}

impl PullError {
    /// The path being written when its filesystem filled up, if that is what failed.
    pub fn no_space(&self) -> Option<&std::path::Path> {
        match self {
            Self::Store { source, .. } => source.no_space(),
            Self::Shared(e) => e.no_space(),
            Self::Discovery { source, .. } => source.no_space(),
            Self::NotInDaemon { daemon, .. } => daemon.no_space(),
            Self::Daemon(e) => e.no_space(),
            Self::References(failures) => failures.failed.iter().find_map(|(_, e)| e.no_space()),
            _ => None,
        }
    }
}

impl Hint for PullError {
    fn hint(&self) -> Option<Fix> {
        match self {
            Self::Registry(e) => e.hint(),
            Self::NotInDaemon { registry, daemon } => match (registry.hint(), daemon.hint()) {
                (Some(r), Some(d)) => Some(Fix::Either(Box::new(r), Box::new(d))),
                (r, d) => r.or(d),
            },
            Self::Daemon(e) => e.hint(),
            Self::Shared(e) => e.hint(),
            Self::Discovery { source, .. } => {
                Some(source.hint().unwrap_or(Fix::PackageWithoutSignatures))
            }
            Self::Internal { .. } => Some(Fix::ReportBug),
            Self::Stalled { .. } => Some(Fix::RaiseTimeout),
            Self::IndexRefused {
                architecture,
                platforms,
                ..
            } => Some(Fix::PinPlatform {
                platforms: platforms
                    .iter()
                    .map(|(platform, pinned)| pin(architecture, platform, pinned))
                    .collect(),
            }),
            Self::BlobTooLarge { .. } => Some(Fix::RaiseMaxBlobSize),
            Self::TooManyArtifacts { .. } | Self::DiscoveryRequests { .. } => {
                Some(Fix::RaiseMaxReferrers)
            }
            Self::NoSpace(shortfall) => shortfall.hint(),
            Self::PlatformMissing { .. } => Some(Fix::PickArchitecture),
            Self::References(failures) => failures.hint(),
            _ => None,
        }
    }
}

/// One platform of a refused index, as the refusal's fix lists it.
fn pin(architecture: &str, platform: &IndexPlatform, pinned: &str) -> PlatformPin {
    PlatformPin {
        platform: platform.platform.as_ref().map(ToString::to_string),
        pinned: pinned.to_owned(),
        matches: platform
            .platform
            .as_ref()
            .is_some_and(|p| p.matches_linux(architecture)),
        attestations: platform.attestations.clone(),
    }
}

/// What a pull produced: every image of the definition in definition order, and the
/// plan of unique blobs (each now in the fetcher's store).
#[derive(Debug)]
pub struct Pulled {
    pub images: Vec<ResolvedImage>,
    pub plan: Plan,
}

impl Pulled {
    /// Every manifest and blob the images need.
    pub fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.images
            .iter()
            .flat_map(|i| i.manifests.iter().map(|(d, _)| d))
            .chain(self.plan.jobs().map(|j| &j.digest))
    }
}

/// How a pull resolves and plans.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub resolve: ResolveOptions,
    /// How many references resolve at once.
    pub resolve_concurrency: usize,
    /// The most one blob may declare (see [`crate::space::DEFAULT_MAX_BLOB_SIZE`]).
    pub max_blob_size: u64,
    /// Discover each image's signatures, attestations, SBOMs and referrers
    /// (`--with-signatures`), which then travel as images of their own.
    pub with_signatures: bool,
    /// The most manifests discovery may bring for one subject (`--max-referrers`);
    /// the run's requests are bounded in proportion (see [`Bounds`]).
    pub max_referrers: usize,
    /// Configs and layers not to download, with their sizes: a differential package's
    /// base holds them (see [`Plan::left_out`]).
    pub held_elsewhere: Arc<BTreeMap<Digest, u64>>,
    /// A check every resolved image must pass, after discovery and before planning.
    pub admit: Option<Arc<dyn Admit>>,
}

/// Resolves every image of the definition, several at a time, then plans and fetches
/// their blobs. A reference that fails does not stop the others from resolving: when
/// any failed, every failure is returned together and nothing is downloaded. `open`
/// gives the source of a reference.
///
/// With `space`, everything planned so far is checked against the free space measured
/// before the first download, each time an image is planned; downloads start only once
/// every image is planned, so a build that cannot fit downloads nothing.
pub async fn pull(
    definition: &Definition,
    open: impl Fn(&Reference) -> Arc<dyn Source>,
    fetcher: &Fetcher<'_>,
    options: &PullOptions,
    space: Option<&SpaceCheck>,
) -> Result<Pulled, PullError> {
    let reporter = fetcher.reporter();
    // A reference listed twice takes its platform from an index if either entry says so.
    let mut unique: BTreeMap<String, (Reference, bool)> = BTreeMap::new();
    for image in definition.components.iter().flat_map(|c| &c.images) {
        unique
            .entry(image.full())
            .or_insert_with(|| (image.reference.clone(), false))
            .1 |= image.platform_from_index;
    }
    reporter.step(&format!("resolving {} image references", unique.len()));
    let store = fetcher.store();
    let Resolved {
        mut resolved,
        mut artifacts,
    } = resolve_all(definition, unique, &open, store, options).await?;

    let mut fetching = FuturesUnordered::new();
    let mut plan = Plan::new(options.max_blob_size).leaving_out(options.held_elsewhere.clone());
    let mut demand = Demand::default();
    let mut manifests_counted = HashSet::new();
    for (name, image) in &resolved {
        let found = artifacts.get(name).map_or(&[][..], Vec::as_slice);
        for image in std::iter::once(image).chain(found) {
            let jobs = plan.add(image)?;
            if let Some(space) = space {
                add_demand(&mut demand, &mut manifests_counted, store, image, &jobs);
                space.check(&demand)?;
            }
            // Cannot wrap: the plan refuses blobs that add up past MAX_SIZE.
            reporter.blobs_planned("downloading", jobs.len(), jobs.iter().map(|j| j.size).sum());
            // In plan order, largest first: the download semaphore is fair, so the big
            // blobs of each image get the first slots.
            for job in jobs {
                fetching.push(async move { fetcher.fetch(&job).await });
            }
        }
    }
    while let Some(fetched) = fetching.next().await {
        fetched?;
    }
    reporter.finish();

    let mut images = Vec::new();
    let mut seen = HashSet::new();
    for component in &definition.components {
        for image in &component.images {
            // A reference listed twice is packaged once, under its first component.
            // Taken, not copied: each is packaged once, and a definition may hold
            // thousands.
            if seen.insert(image.full()) {
                if let Some(mut entry) = resolved.remove(&image.full()) {
                    entry.component = component.name.clone();
                    images.push(entry);
                }
                // Each artifact right after its image, under the same component; one
                // that two images share comes once.
                for mut artifact in artifacts.remove(&image.full()).into_iter().flatten() {
                    if seen.insert(artifact.reference.whole()) {
                        artifact.component = component.name.clone();
                        images.push(artifact);
                    }
                }
            }
        }
    }
    Ok(Pulled { images, plan })
}

/// Every reference resolved, by its full name, with what discovery found for it.
struct Resolved {
    resolved: BTreeMap<String, ResolvedImage>,
    artifacts: BTreeMap<String, Vec<ResolvedImage>>,
}

/// Resolves every reference, going on past failures. One failure comes back as
/// itself, several as [`PullError::References`] in definition order; a failure that
/// no other reference can escape (the store, the disk, the run's request cap, a bug)
/// stops at once.
async fn resolve_all(
    definition: &Definition,
    unique: BTreeMap<String, (Reference, bool)>,
    open: &impl Fn(&Reference) -> Arc<dyn Source>,
    store: &Store,
    options: &PullOptions,
) -> Result<Resolved, PullError> {
    let total = unique.len();
    let bounds = Bounds::new(total, options.max_referrers);
    let bounds = &bounds;
    let mut resolving = stream::iter(unique)
        .map(|(name, (reference, from_index))| async move {
            let source = open(&reference);
            let result = resolve_and_discover(source, store, options, from_index, bounds).await;
            (name, result)
        })
        .buffer_unordered(options.resolve_concurrency.max(1));
    let mut done = Resolved {
        resolved: BTreeMap::new(),
        artifacts: BTreeMap::new(),
    };
    let mut failed = BTreeMap::new();
    // Blob lists by manifest digest: the same manifest names the same blobs, so
    // references to one image keep one list between them.
    let mut shared: HashMap<Digest, Arc<Vec<Descriptor>>> = HashMap::new();
    while let Some((name, result)) = resolving.next().await {
        match result {
            Ok((mut image, mut found)) => {
                for image in std::iter::once(&mut image).chain(found.iter_mut()) {
                    let blobs = shared
                        .entry(image.digest.clone())
                        .or_insert_with(|| image.blobs.clone());
                    image.blobs = blobs.clone();
                }
                done.artifacts.insert(name.clone(), found);
                done.resolved.insert(name, image);
            }
            Err(err) if stops_every_reference(&err) => return Err(err),
            Err(err) => {
                failed.insert(name, err);
            }
        }
    }
    if failed.len() == 1 {
        return Err(failed.into_values().next().expect("one failure"));
    }
    if !failed.is_empty() {
        let mut in_order = Vec::new();
        for image in definition.components.iter().flat_map(|c| &c.images) {
            if let Some(err) = failed.remove(&image.full()) {
                in_order.push((image.full(), err));
            }
        }
        return Err(PullError::References(ReferenceFailures {
            failed: in_order,
            total,
        }));
    }
    Ok(done)
}

/// Failures that are not one reference's: going on with the others would meet them
/// again, or make things worse.
fn stops_every_reference(err: &PullError) -> bool {
    match err {
        PullError::Store { .. }
        | PullError::NoSpace(_)
        | PullError::DiscoveryRequests { .. }
        | PullError::Internal { .. } => true,
        PullError::Shared(inner) => stops_every_reference(inner),
        _ => err.no_space().is_some(),
    }
}

/// Resolves one reference (taking its platform from an index if `from_index`) and,
/// with `--with-signatures`, discovers what travels with it.
async fn resolve_and_discover(
    source: Arc<dyn Source>,
    store: &Store,
    options: &PullOptions,
    from_index: bool,
    bounds: &Arc<Bounds>,
) -> Result<(ResolvedImage, Vec<ResolvedImage>), PullError> {
    let image = if from_index {
        let resolve_options = ResolveOptions {
            platform_from_index: true,
            ..options.resolve.clone()
        };
        resolve(source, store, &resolve_options).await?
    } else {
        resolve(source, store, &options.resolve).await?
    };
    let found = if options.with_signatures {
        discover(&image, store, &options.resolve, bounds)
            .await
            .map_err(|source| PullError::Discovery {
                reference: image.reference.whole(),
                source: Box::new(source),
            })?
    } else {
        Vec::new()
    };
    if let Some(admit) = &options.admit {
        admit.admit(&image, &found, store).await?;
    }
    Ok((image, found))
}

/// Adds what an image newly brings to the package, and what of it is still to be
/// downloaded: blobs neither in the store nor partly downloaded there. Its manifests
/// are already stored (resolve wrote them) and count toward the package only.
fn add_demand(
    demand: &mut Demand,
    counted: &mut HashSet<Digest>,
    store: &Store,
    image: &ResolvedImage,
    jobs: &[BlobJob],
) {
    for (digest, size) in &image.manifests {
        if counted.insert(digest.clone()) {
            demand.add(*size, 0);
        }
    }
    for job in jobs {
        let missing = if store.contains(&job.digest, job.size) {
            0
        } else {
            job.size.saturating_sub(store.partial_len(&job.digest))
        };
        demand.add(job.size, missing);
    }
}
