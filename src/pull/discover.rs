//! Discovery (`--with-signatures`): the signatures, attestations, SBOMs and referrers
//! that travel with an image. It runs between resolve and fetch. Each artifact found is
//! resolved like any image, so it becomes a [`ResolvedImage`] of its own, linked to its
//! subject, planned and fetched through the same per-digest table, and packaged as its
//! own `index.json` entry.
//!
//! For every manifest an image keeps (the picked platform's; with `--allow-index` the
//! index's and each child's), the image's own registry is asked for:
//! - cosign's tags `sha256-<hex>.sig`, `.att` and `.sbom`;
//! - the digest's OCI referrers, through the referrers API, or, where the registry
//!   answers that API with 404, through the `sha256-<hex>` tag that holds a referrers
//!   index (OCI 1.1's fallback); that index travels too, so the far side keeps it;
//! - the buildx attestation manifest that the image's index holds for the platform
//!   picked (annotated `vnd.docker.reference.digest` with its digest).
//!
//! Then the same once more for each artifact found (a signature of an attestation), and
//! no deeper. A tag or referrer that is not there is normal; any other failure of the
//! registry stops the build, since a package that silently lacks a signature would
//! fail verification on the far side for a reason nobody could see here.
//!
//! A hostile registry cannot make this endless: every request goes through the run's
//! [`Bounds`] (16 at once, a cap on the run's total), and each subject may bring at
//! most `--max-referrers` manifests, counted as soon as a listing or index names them,
//! so a listing of thousands is refused before any of it is fetched.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use oci_client::Reference;

use super::bounds::{Bounds, Counted, Tally};
use super::link::{Link, Relation};
use super::{resolve, PullError, ResolveOptions, ResolvedImage};
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::reference::Target;
use crate::registry::RegistryError;
use crate::store::Store;

const COSIGN_TAGS: [(&str, Relation); 3] = [
    ("sig", Relation::Signature),
    ("att", Relation::Attestation),
    ("sbom", Relation::Sbom),
];

/// Subjects looked up at once, per image. Each costs four or five requests, and the
/// images themselves already resolve several at a time; [`Bounds`] holds the requests
/// of the whole run to a few at once whatever these allow.
const SUBJECTS_AT_ONCE: usize = 4;

/// Referrers of one subject resolved at once.
const REFERRERS_AT_ONCE: usize = 8;

/// Every artifact that travels with `image`: first those of its own manifests, then
/// those of the artifacts found (one level), each once, in a fixed order whatever
/// order the answers come in. An image whose source cannot be asked for other
/// references (see [`super::Source::sibling`]) has none. Every request goes through
/// the run's `bounds`, and a subject that would bring more than its cap is refused.
pub async fn discover(
    image: &ResolvedImage,
    store: &Store,
    options: &ResolveOptions,
    bounds: &Arc<Bounds>,
) -> Result<Vec<ResolvedImage>, PullError> {
    let ask = Ask {
        from: image,
        store,
        bounds,
        // Artifacts keep whatever they are: an index is not a platform choice here.
        options: ResolveOptions {
            allow_index: true,
            platform_from_index: false,
            ..options.clone()
        },
    };
    let mut seen = HashSet::from([image.reference.whole()]);
    let mut artifacts = Vec::new();
    let mut keep = |found: Vec<ResolvedImage>, artifacts: &mut Vec<ResolvedImage>| {
        for artifact in found {
            if seen.insert(artifact.reference.whole()) {
                artifacts.push(artifact);
            }
        }
    };
    let buildx = ask.tally(&image.digest);
    for digest in &image.buildx_attestations {
        let link = Link {
            subject: image.digest.clone(),
            relation: Relation::BuildxAttestation,
        };
        let found = ask
            .optional(Target::pinned(&image.reference, digest), link, &buildx)
            .await?;
        keep(found.into_iter().collect(), &mut artifacts);
    }
    let subjects: Vec<Digest> = image.manifests.iter().map(|(d, _)| d.clone()).collect();
    keep(ask.artifacts_of_each(subjects).await?, &mut artifacts);
    // One level further, for what was found (a referrers index is only a listing).
    let subjects: Vec<Digest> = artifacts
        .iter()
        .filter(|a| a.link.as_ref().map(|l| l.relation) != Some(Relation::ReferrersTag))
        .map(|a| a.digest.clone())
        .collect();
    keep(ask.artifacts_of_each(subjects).await?, &mut artifacts);
    Ok(artifacts)
}

/// What discovery asks with, for one image.
struct Ask<'a> {
    from: &'a ResolvedImage,
    store: &'a Store,
    bounds: &'a Arc<Bounds>,
    options: ResolveOptions,
}

impl Ask<'_> {
    /// The artifacts of each subject, a few subjects at a time, in subject order.
    async fn artifacts_of_each(
        &self,
        subjects: Vec<Digest>,
    ) -> Result<Vec<ResolvedImage>, PullError> {
        let found: Vec<Vec<ResolvedImage>> = stream::iter(subjects)
            .map(|subject| async move { self.artifacts_of(&subject).await })
            .buffered(SUBJECTS_AT_ONCE)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// A fresh count of what `subject` brings.
    fn tally(&self, subject: &Digest) -> Arc<Tally> {
        Tally::new(subject.clone(), self.from.reference.whole())
    }

    /// The cosign tags and the referrers of `subject`, in the image's repository,
    /// asked at once and given in that order.
    async fn artifacts_of(&self, subject: &Digest) -> Result<Vec<ResolvedImage>, PullError> {
        let tag = format!("sha256-{}", subject.hex());
        let tally = self.tally(subject);
        let cosign = COSIGN_TAGS.map(|(suffix, relation)| {
            let link = Link {
                subject: subject.clone(),
                relation,
            };
            self.optional(self.at(format!("{tag}.{suffix}")), link, &tally)
        });
        let [sig, att, sbom] = cosign;
        let (sig, att, sbom, referrers) =
            futures_util::try_join!(sig, att, sbom, self.referrers_of(subject, &tag, &tally))?;
        Ok(sig
            .into_iter()
            .chain(att)
            .chain(sbom)
            .chain(referrers)
            .collect())
    }

    /// The referrers of `subject`: through the referrers API, or where the registry
    /// answers it with 404, through the `sha256-<hex>` tag, which comes first. A
    /// listing longer than the subject may bring is refused before any is fetched.
    async fn referrers_of(
        &self,
        subject: &Digest,
        tag: &str,
        tally: &Arc<Tally>,
    ) -> Result<Vec<ResolvedImage>, PullError> {
        let mut found = Vec::new();
        let enough = self.bounds.max_per_subject().saturating_add(1);
        let answer = self
            .bounds
            .request(self.from.source.referrers(subject, enough))
            .await?;
        let pages: Vec<(Digest, Vec<u8>)> = match answer {
            Some(pages) => pages.into_iter().map(|b| (Digest::of(&b), b)).collect(),
            None => {
                let link = Link {
                    subject: subject.clone(),
                    relation: Relation::ReferrersTag,
                };
                let Some(index) = self.optional(self.at(tag.to_owned()), link, tally).await? else {
                    return Ok(found);
                };
                let path = self.store.blob_path(&index.digest);
                let bytes = std::fs::read(&path).map_err(|e| PullError::Store {
                    what: format!("the referrers index {}", index.digest),
                    source: crate::store::StoreError::io("read", &path, e),
                })?;
                let digest = index.digest.clone();
                found.push(index);
                vec![(digest, bytes)]
            }
        };
        let mut listed = HashSet::new();
        let mut referrers = Vec::new();
        for (page, bytes) in pages {
            let listing = Manifest::parse(&bytes).map_err(|e| PullError::BadManifest {
                reference: format!(
                    "the referrers of {subject} in {}",
                    self.from.reference.whole()
                ),
                digest: page,
                message: e.to_string(),
            })?;
            tally.count(listing.manifests.iter().map(|r| &r.digest), self.bounds)?;
            for referrer in listing.manifests {
                if listed.insert(referrer.digest.clone()) {
                    referrers.push(referrer.digest);
                }
            }
        }
        let resolved: Vec<Option<ResolvedImage>> = stream::iter(referrers)
            .map(|referrer| {
                let link = Link {
                    subject: subject.clone(),
                    relation: Relation::Referrer,
                };
                let pinned = Target::pinned(&self.from.reference, &referrer);
                async move { self.optional(pinned, link, tally).await }
            })
            .buffered(REFERRERS_AT_ONCE)
            .try_collect()
            .await?;
        found.extend(resolved.into_iter().flatten());
        Ok(found)
    }

    /// `tag` in the image's repository.
    fn at(&self, tag: String) -> Reference {
        Reference::with_tag(
            self.from.reference.registry().to_owned(),
            self.from.reference.repository().to_owned(),
            tag,
        )
    }

    /// Resolves `reference` as an artifact with `link`, if the registry has it: its
    /// own manifest answering "not found" means there is none, which is normal. Its
    /// manifests count against `tally` as they arrive.
    async fn optional(
        &self,
        reference: Reference,
        link: Link,
        tally: &Arc<Tally>,
    ) -> Result<Option<ResolvedImage>, PullError> {
        let whole = reference.whole();
        let Some(source) = self.from.source.sibling(reference) else {
            return Ok(None);
        };
        let counted: Arc<dyn super::Source> = Arc::new(Counted {
            inner: source.clone(),
            bounds: self.bounds.clone(),
            tally: tally.clone(),
        });
        match resolve(counted, self.store, &self.options).await {
            Ok(mut artifact) => {
                artifact.link = Some(link);
                artifact.component = self.from.component.clone();
                // Fetching and healing are not discovery: they go to the source itself.
                artifact.source = source;
                Ok(Some(artifact))
            }
            // Only the artifact's own manifest may be absent: a child it names that is
            // missing is a broken artifact, and an error like any other.
            Err(PullError::Registry(RegistryError::NotFound { reference }))
                if reference == whole =>
            {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::pull::Source;
    use crate::registry::BlobStream;

    /// One repository held in memory: manifests by tag and by digest.
    struct Repo {
        reference: Reference,
        manifests: Arc<HashMap<String, Vec<u8>>>,
    }

    impl Source for Repo {
        fn reference(&self) -> &Reference {
            &self.reference
        }
        fn manifest<'a>(
            &'a self,
            digest: Option<&'a Digest>,
        ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>> {
            let (key, whole) = match digest {
                Some(d) => (d.to_string(), Target::pinned(&self.reference, d).whole()),
                None => (
                    self.reference
                        .digest()
                        .or(self.reference.tag())
                        .unwrap_or_default()
                        .to_owned(),
                    self.reference.whole(),
                ),
            };
            let found = self.manifests.get(&key).cloned();
            Box::pin(async move {
                let bytes = found.ok_or(RegistryError::NotFound { reference: whole })?;
                let digest = Digest::of(&bytes);
                Ok((bytes, digest))
            })
        }
        fn blob<'a>(
            &'a self,
            _: &'a Digest,
            _: u64,
        ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>> {
            unreachable!("discovery never asks for a blob")
        }
        fn sibling(&self, reference: Reference) -> Option<Arc<dyn Source>> {
            Some(Arc::new(Repo {
                reference,
                manifests: self.manifests.clone(),
            }))
        }
    }

    fn manifest(layer: &[u8], extra: serde_json::Value) -> Vec<u8> {
        let mut value = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(b"{}").to_string(), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": Digest::of(layer).to_string(), "size": layer.len()}],
        });
        if let (Some(map), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        serde_json::to_vec(&value).unwrap()
    }

    async fn discover_in(
        manifests: HashMap<String, Vec<u8>>,
    ) -> Result<Vec<ResolvedImage>, PullError> {
        let source: Arc<dyn Source> = Arc::new(Repo {
            reference: "registry.test/app:1".parse().unwrap(),
            manifests: Arc::new(manifests),
        });
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let options = ResolveOptions {
            architecture: "amd64".into(),
            allow_index: false,
            platform_from_index: false,
        };
        let image = resolve(source, &store, &options).await?;
        discover(&image, &store, &options, &Bounds::new(1, 1000)).await
    }

    #[tokio::test]
    async fn a_missing_tag_is_absence_but_a_missing_child_of_an_artifact_is_an_error() {
        let app = manifest(b"app", serde_json::json!({}));
        let tag = format!("sha256-{}", Digest::of(&app).hex());
        let signature = manifest(b"signature", serde_json::json!({}));
        let mut manifests = HashMap::from([
            ("1".to_owned(), app.clone()),
            (format!("{tag}.sig"), signature.clone()),
        ]);
        let found = discover_in(manifests.clone()).await.unwrap();
        let links: Vec<(String, Option<Link>)> = found
            .iter()
            .map(|a| (a.reference.whole(), a.link.clone()))
            .collect();
        assert_eq!(
            links,
            vec![(
                format!("registry.test/app:{tag}.sig"),
                Some(Link {
                    subject: Digest::of(&app),
                    relation: Relation::Signature
                })
            )]
        );

        // A referrers index under the fallback tag that names a manifest the registry
        // does not have: a broken artifact, not an absent one.
        let gone = manifest(b"gone", serde_json::json!({}));
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_INDEX,
            "manifests": [{"mediaType": crate::manifest::OCI_MANIFEST, "digest": Digest::of(&gone).to_string(), "size": gone.len()}],
        }))
        .unwrap();
        manifests.insert(tag, index);
        let err = discover_in(manifests).await.unwrap_err();
        assert!(
            matches!(&err, PullError::Registry(RegistryError::NotFound { reference }) if reference.contains(&Digest::of(&gone).to_string())),
            "{err}"
        );
    }
}
