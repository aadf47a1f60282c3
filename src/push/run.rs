//! The one entry point: a package file pushed to a target. The package is opened, and
//! the registry is connected to and asked what it already has of what the package's
//! (still unverified) head says it needs. A package that can be read from any offset
//! is then verified but for the configs and layers the target already holds, which
//! push reads only if a mount of one is refused (and the upload hashes it as it goes);
//! one read in a single pass is verified in full while the registry is asked. Every
//! manifest and index is verified either way; a package that fails verification is
//! refused, whatever the registry says, and no content is sent before it verifies. A differential package is refused, still
//! before anything is sent, when the target lacks what it leaves to its base
//! (`left_out`). Then its images are pushed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::images::push_images;
use super::left_out::{check_left_out, look_elsewhere};
use super::plan::{plan_images, PlannedImage};
use super::present::Present;
use super::{Layout, PushReport};
use crate::digest::Digest;
use crate::package::reader::{classify, Known, PackageBytes};
use crate::package::scan::{head, scan_package, scan_package_but, Head, Problem, Scan};
use crate::package::signature::{Check, SignedParts};
use crate::package::PackageError;
use crate::progress::{human_bytes, Reporter};
use crate::reference::Target;
use crate::registry::{Credentials, Registry, RegistryError, Transport};
use crate::trust::PublicKey;

/// A push to run: which package, where to, and how to reach the registry.
pub struct PushRequest {
    pub package: PathBuf,
    pub target: Target,
    pub transport: Transport,
    pub credentials: Credentials,
    /// Blob uploads in flight across all images.
    pub concurrency: usize,
    /// `--key`: the package's signature must verify with it before anything is sent.
    pub key: Option<PublicKey>,
}

/// Why nothing of a package was pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushPackageError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The package was changed or damaged after it was built: it is refused whole.
    #[error("the package failed verification")]
    Verification { problems: Vec<Problem> },
    /// A differential package's base is not (wholly) on the target: nothing was sent.
    #[error(
        "the target lacks {blobs} blob(s) ({}) that this differential package leaves to its base package {base}, needed by {}{}; push the base package there first",
        human_bytes(*bytes),
        images.join(", "),
        match more_images { 0 => String::new(), n => format!(" and {n} more image(s)") }
    )]
    BaseMissing {
        /// `NAME VERSION (sha256:…)`.
        base: String,
        blobs: usize,
        bytes: u64,
        /// The first few images that need them.
        images: Vec<String>,
        more_images: usize,
    },
    /// The package's signature does not verify with the key given, or the package is
    /// not signed: nothing was sent.
    #[error("the package signature does not verify")]
    Signature { failed: Vec<Check> },
    /// A thread reading the package panicked: a bug in pkgr.
    #[error("internal error while verifying the package")]
    Internal(#[source] tokio::task::JoinError),
}

/// Verifies the package at `request.package` and pushes every image in it. An image
/// that fails is in the report; an error means nothing was pushed.
pub async fn push_package(
    request: PushRequest,
    reporter: &dyn Reporter,
) -> Result<PushReport, PushPackageError> {
    let PushRequest {
        package,
        target,
        transport,
        credentials,
        concurrency,
        key,
    } = request;
    reporter.step(&format!("verifying {}", package.display()));
    let package =
        Arc::new(blocking(move || PackageBytes::open(&package).map_err(PackageError::from)).await?);
    let asked = ask_registry(
        package.clone(),
        &target,
        &transport,
        credentials,
        concurrency,
    );
    let (
        scanned,
        Asked {
            registry,
            mut present,
            ..
        },
    ) = if package.is_random_access() {
        verify_after(package.clone(), asked).await?
    } else {
        verify_while(package.clone(), asked).await?
    };
    check_signature(&scanned, key.as_ref(), reporter)?;
    say_what_stays_behind(&scanned, reporter);
    let index = scanned.index.as_ref().ok_or(PackageError::NoIndex)?;
    if let Some(differential) = &scanned.differential {
        reporter.step(&format!(
            "checking that the target holds the {} blob(s) left to the base package",
            scanned.left_out.len()
        ));
        let images = plan_images(index, &scanned.manifests, &target, &mut Vec::new());
        present.ask(&registry, &images, concurrency).await;
        let left_out = &scanned.left_out;
        look_elsewhere(&registry, left_out, &images, &mut present, concurrency).await;
        check_left_out(differential, &scanned.left_out, &images, &present)?;
    }
    let sizes = blob_sizes(&scanned);
    let layout = Layout {
        index,
        manifests: &scanned.manifests,
        package: &package,
        offsets: &scanned.offsets,
        sizes: &sizes,
        left_out: &scanned.left_out,
        not_read: &scanned.not_read,
    };
    let mut report = push_images(&registry, &layout, &target, concurrency, reporter, present).await;
    for size in scanned.not_read.values() {
        report.not_read.add(*size);
    }
    Ok(report)
}

/// Verifies the package while `asked` runs. A package that fails verification is the
/// error, at once, without waiting for `asked`.
async fn verify_while<T>(
    package: Arc<PackageBytes>,
    asked: impl std::future::Future<Output = Result<T, PushPackageError>>,
) -> Result<(Scan, T), PushPackageError> {
    let verified = blocking(move || scan_package(&package));
    tokio::pin!(verified, asked);
    let mut answered = None;
    let scanned = loop {
        tokio::select! {
            scanned = &mut verified => break scanned?,
            connected = &mut asked, if answered.is_none() => answered = Some(connected),
        }
    };
    if !scanned.problems.is_empty() {
        return Err(PushPackageError::Verification {
            problems: scanned.problems,
        });
    }
    let answer = match answered {
        Some(answer) => answer?,
        None => asked.await?,
    };
    Ok((scanned, answer))
}

/// Verifies the package once `asked` has answered, passing over the blobs the target
/// already holds: those are addressed by their digest, so the package's copy cannot
/// change what the registry serves. Were the registry not to answer, the whole package
/// is verified, and a package that fails is refused before the registry's error.
async fn verify_after(
    package: Arc<PackageBytes>,
    asked: impl std::future::Future<Output = Result<Asked, PushPackageError>>,
) -> Result<(Scan, Asked), PushPackageError> {
    let answer = asked.await;
    let unread = match &answer {
        Ok(asked) => asked.unread.clone(),
        Err(_) => BTreeSet::new(),
    };
    let scanned = blocking(move || scan_package_but(&package, &unread)).await?;
    if !scanned.problems.is_empty() {
        return Err(PushPackageError::Verification {
            problems: scanned.problems,
        });
    }
    Ok((scanned, answer?))
}

/// The registry, connected, and what it said it has.
struct Asked {
    registry: Registry,
    present: Present,
    /// The configs and layers every repository that needs them already has, or that
    /// one of them has for the others to mount: push need not read them.
    unread: BTreeSet<Digest>,
}

/// Connects to the registry and, where the package can be read at offsets, asks it what
/// it has of what the package's unverified head says it needs. The questions send no
/// content.
async fn ask_registry(
    package: Arc<PackageBytes>,
    target: &Target,
    transport: &Transport,
    credentials: Credentials,
    concurrency: usize,
) -> Result<Asked, PushPackageError> {
    let registries = BTreeSet::from([target.registry.clone()]);
    let registry = Registry::connect(transport, &registries, credentials).await?;
    let mut present = Present::default();
    let mut unread = BTreeSet::new();
    if package.is_random_access() {
        if let Ok(Head {
            index: Some(index),
            manifests,
        }) = blocking(move || head(&package)).await
        {
            let images = plan_images(&index, &manifests, target, &mut Vec::new());
            present.ask(&registry, &images, concurrency).await;
            unread = held_by_target(&images, &present);
        }
    }
    Ok(Asked {
        registry,
        present,
        unread,
    })
}

/// The configs and layers of `images` the target holds, in the repository that needs
/// them or in another of the target's to mount from; never a digest that is also one
/// of the images' manifests, which are always read and verified.
fn held_by_target(images: &[PlannedImage], present: &Present) -> BTreeSet<Digest> {
    let manifests: BTreeSet<&Digest> = images
        .iter()
        .flat_map(|image| image.manifests.iter().map(|(digest, _)| digest))
        .collect();
    images
        .iter()
        .flat_map(|image| &image.blobs)
        .filter(|digest| !manifests.contains(digest) && present.holder(digest).is_some())
        .cloned()
        .collect()
}

/// With a key, the package's signature must verify; without one, a signed package is
/// pushed with a warning that its signature was not checked.
fn check_signature(
    scanned: &Scan,
    key: Option<&PublicKey>,
    reporter: &dyn Reporter,
) -> Result<(), PushPackageError> {
    let parts = SignedParts::of_scan(scanned);
    match key {
        Some(key) => {
            let failed: Vec<Check> = parts.check(key).into_iter().filter(|c| !c.ok).collect();
            if !failed.is_empty() {
                return Err(PushPackageError::Signature { failed });
            }
        }
        None if parts.is_signed() => {
            reporter.warn("the package is signed, but its signature was not checked (pass --key)")
        }
        None => {}
    }
    Ok(())
}

/// Push loads images only: says how many of a Zarf package's other files (components,
/// SBOMs, signature) stay behind.
fn say_what_stays_behind(scanned: &Scan, reporter: &dyn Reporter) {
    let others = scanned
        .files
        .keys()
        .filter(|name| match classify(name) {
            Ok(Known::ZarfExtra) => true,
            Ok(Known::Signature) => scanned.zarf,
            _ => false,
        })
        .count();
    if others > 0 {
        reporter.step(&format!(
            "push loads images only: the package's {others} other file(s) (components, SBOMs, signature) are not pushed"
        ));
    }
}

/// Each blob's size, as the scan measured it.
fn blob_sizes(scanned: &Scan) -> BTreeMap<crate::digest::Digest, u64> {
    scanned
        .files
        .iter()
        .filter(|(name, _)| name.starts_with("images/blobs/"))
        .map(|(_, (digest, size))| (digest.clone(), *size))
        .collect()
}

/// Runs blocking package work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PackageError> + Send + 'static,
) -> Result<T, PushPackageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(PushPackageError::Internal)?
        .map_err(PushPackageError::from)
}
