//! The push pipeline: every image of a verified layout goes to `REGISTRY[/PREFIX]` plus
//! its original repository path. Blobs go first, each digest handled once across all
//! images (HEAD, then mount from a repository that has it, then streamed upload);
//! manifests follow byte-exact, children before their index, by digest then by tag.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use oci_client::Reference;

use crate::definition::parse_reference;
use crate::manifest::{is_manifest_media_type, Manifest};
use crate::progress::Reporter;
use crate::registry::{Registry, RegistryError};
use crate::store::layout::LayoutIndex;
use crate::store::{Digest, Store};

/// Where images go: a registry host and an optional repository prefix.
#[derive(Debug, Clone)]
pub struct Target {
    pub registry: String,
    pub prefix: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a registry target (expected REGISTRY[/PREFIX], like 127.0.0.1:5000/mirror)")]
pub struct BadTarget(pub String);

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.prefix {
            Some(prefix) => write!(f, "{}/{prefix}", self.registry),
            None => f.write_str(&self.registry),
        }
    }
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, BadTarget> {
        let text = text.trim_end_matches('/');
        let (registry, prefix) = match text.split_once('/') {
            Some((registry, prefix)) => (registry, Some(prefix.to_owned())),
            None => (text, None),
        };
        let valid_prefix = prefix.as_deref().is_none_or(|p| {
            !p.is_empty()
                && p.split('/').all(|part| {
                    !part.is_empty()
                        && part.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
                        })
                })
        });
        if registry.is_empty() || registry.contains("://") || !valid_prefix {
            return Err(BadTarget(text.to_owned()));
        }
        Ok(Self {
            registry: registry.to_owned(),
            prefix,
        })
    }

    /// `ghcr.io/org/app:1.2` → `<registry>/[<prefix>/]org/app:1.2`.
    pub fn map(&self, source: &Reference) -> Reference {
        let repository = match &self.prefix {
            Some(prefix) => format!("{prefix}/{}", source.repository()),
            None => source.repository().to_owned(),
        };
        match source.tag() {
            Some(tag) => Reference::with_tag(self.registry.clone(), repository, tag.to_owned()),
            None => Reference::with_digest(
                self.registry.clone(),
                repository,
                source.digest().unwrap_or_default().to_owned(),
            ),
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
        self.bytes += bytes;
    }
}

#[derive(Debug, Default)]
pub struct PushReport {
    pub pushed: Vec<String>,
    pub failed: Vec<(String, RegistryError)>,
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

pub struct Layout<'a> {
    pub index: &'a LayoutIndex,
    pub manifests: &'a BTreeMap<Digest, Vec<u8>>,
    pub blobs: &'a Store,
    pub sizes: &'a BTreeMap<Digest, u64>,
}

pub async fn push(
    registry: &Registry,
    layout: &Layout<'_>,
    target: &Target,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> PushReport {
    let mut report = PushReport::default();
    let mut images = Vec::new();
    for entry in &layout.index.manifests {
        let source = entry.reference().unwrap_or("(unnamed)").to_owned();
        let source_ref = match parse_reference(&source) {
            Ok(reference) => reference,
            Err(message) => {
                report
                    .failed
                    .push((source, RegistryError::BadReference { message }));
                continue;
            }
        };
        let mut image = PlannedImage {
            target: target.map(&source_ref),
            source,
            manifests: Vec::new(),
            blobs: BTreeSet::new(),
        };
        collect(layout, &entry.digest, &entry.media_type, &mut image, 0);
        images.push(image);
    }

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
    let total: u64 = needed
        .keys()
        .map(|d| layout.sizes.get(d).copied().unwrap_or(0))
        .sum();
    reporter.plan("pushing", needed.len(), total, 0, 0);
    let outcomes: Vec<(Digest, Result<Vec<Outcome>, RegistryError>)> = stream::iter(needed)
        .map(|(digest, repos)| async move {
            let result = push_blob(registry, layout, &digest, &repos, reporter).await;
            (digest, result)
        })
        .buffer_unordered(concurrency.max(1))
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

    for image in images {
        if let Some(digest) = image.blobs.iter().find(|d| failed_blobs.contains_key(*d)) {
            let err = failed_blobs
                .remove(digest)
                .unwrap_or_else(|| RegistryError::BlobFailed {
                    digest: digest.clone(),
                });
            report.failed.push((image.source, err));
            continue;
        }
        match push_manifests(registry, layout, &image).await {
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

/// Nesting deeper than this (an index of indexes of …) is not followed.
const MAX_NESTING: usize = 8;

/// Walks an image's graph, recording manifests children-first and every blob. An
/// index's children are manifests whatever media type their descriptor claims; each
/// manifest is pushed with the media type its own bytes declare.
fn collect(
    layout: &Layout<'_>,
    digest: &Digest,
    descriptor_type: &str,
    image: &mut PlannedImage,
    depth: usize,
) {
    if depth > MAX_NESTING || image.manifests.iter().any(|(d, _)| d == digest) {
        return;
    }
    let manifest = layout
        .manifests
        .get(digest)
        .and_then(|b| Manifest::parse(b).ok());
    let media_type = match &manifest {
        Some(m) if m.media_type.is_some() => m.effective_media_type().to_owned(),
        Some(m) if !is_manifest_media_type(descriptor_type) => m.effective_media_type().to_owned(),
        _ => descriptor_type.to_owned(),
    };
    if let Some(manifest) = manifest {
        for child in &manifest.manifests {
            collect(layout, &child.digest, &child.media_type, image, depth + 1);
        }
        for blob in manifest.blobs() {
            image.blobs.insert(blob.digest.clone());
        }
    }
    image.manifests.push((digest.clone(), media_type));
}

enum Outcome {
    Uploaded,
    Skipped,
    Mounted,
}

async fn push_blob(
    registry: &Registry,
    layout: &Layout<'_>,
    digest: &Digest,
    repos: &[Reference],
    reporter: &dyn Reporter,
) -> Result<Vec<Outcome>, RegistryError> {
    let size = layout.sizes.get(digest).copied().unwrap_or(0);
    let path = layout.blobs.blob_path(digest);
    let mut outcomes = Vec::new();
    let mut holder: Option<&Reference> = None;
    for repo in repos {
        let outcome = if registry.blob_exists(repo, digest).await? {
            Outcome::Skipped
        } else if let Some(from) = holder {
            if registry.mount(repo, from, digest).await? {
                Outcome::Mounted
            } else {
                upload(registry, repo, digest, &path, size, reporter).await?
            }
        } else {
            upload(registry, repo, digest, &path, size, reporter).await?
        };
        outcomes.push(outcome);
        holder = Some(repo);
    }
    Ok(outcomes)
}

async fn upload(
    registry: &Registry,
    repo: &Reference,
    digest: &Digest,
    path: &std::path::Path,
    size: u64,
    reporter: &dyn Reporter,
) -> Result<Outcome, RegistryError> {
    reporter.blob_start(digest, size);
    registry.upload(repo, digest, path, size).await?;
    reporter.blob_progress(digest, size);
    reporter.blob_done(digest);
    Ok(Outcome::Uploaded)
}

async fn push_manifests(
    registry: &Registry,
    layout: &Layout<'_>,
    image: &PlannedImage,
) -> Result<(), RegistryError> {
    for (digest, media_type) in &image.manifests {
        let bytes = layout
            .manifests
            .get(digest)
            .ok_or_else(|| RegistryError::BlobFailed {
                digest: digest.clone(),
            })?;
        let by_digest = Reference::with_digest(
            image.target.registry().to_owned(),
            image.target.repository().to_owned(),
            digest.to_string(),
        );
        registry.put_manifest(&by_digest, bytes, media_type).await?;
    }
    if image.target.tag().is_some() {
        let (digest, media_type) = image
            .manifests
            .last()
            .expect("an image has a root manifest");
        registry
            .put_manifest(&image.target, &layout.manifests[digest], media_type)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_references_onto_the_target() {
        let target = Target::parse("127.0.0.1:5000").unwrap();
        let mapped = target.map(&parse_reference("ghcr.io/org/app:1.2").unwrap());
        assert_eq!(mapped.whole(), "127.0.0.1:5000/org/app:1.2");
        let mapped = target.map(&parse_reference("nginx:1.25").unwrap());
        assert_eq!(mapped.whole(), "127.0.0.1:5000/library/nginx:1.25");
        let target = Target::parse("reg.local/mirror/team").unwrap();
        let mapped = target.map(&parse_reference("ghcr.io/org/app:1.2").unwrap());
        assert_eq!(mapped.whole(), "reg.local/mirror/team/org/app:1.2");
        assert!(Target::parse("https://reg.local").is_err());
        assert!(Target::parse("reg.local/UPPER").is_err());
    }
}
