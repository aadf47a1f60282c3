//! What the target registry already has, asked before anything is read or sent: every
//! blob in every repository that needs it, every manifest by digest in its repository,
//! and every tag. The questions go out all at once, and may go out while the package is
//! still being verified: they send no content. `publish` asks its blob questions here
//! too (`ask_elsewhere`), so both skip and mount by the same answers.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures_util::stream::{self, StreamExt};
use oci_client::Reference;

use super::plan::PlannedImage;
use crate::digest::Digest;
use crate::registry::{Registry, RegistryError};

/// The answers so far.
#[derive(Default)]
pub(crate) struct Present {
    /// (repository, blob) pairs asked about, and those the registry has.
    asked_blobs: HashSet<(String, Digest)>,
    blobs: HashSet<(String, Digest)>,
    /// For each blob the registry has somewhere, one repository that has it: where a
    /// mount can take it from.
    holders: HashMap<Digest, Reference>,
    /// Manifests the registry has, keyed as push records what it sent: (repository,
    /// digest) for a manifest by digest, (whole reference, digest) for a tag naming it.
    asked_manifests: HashSet<(String, Digest)>,
    manifests: HashSet<(String, Digest)>,
    /// A question that failed is its blob's error, handed to the first who asks.
    failed: Mutex<HashMap<(String, Digest), RegistryError>>,
}

enum Question {
    Blob(Reference, Digest),
    /// A manifest by digest or a tag, asked at a reference, and recorded under its key.
    Manifest(Reference, (String, Digest)),
}

impl Present {
    pub(crate) fn has_blob(&self, digest: &Digest, repo: &Reference) -> bool {
        self.blobs
            .contains(&(repo.repository().to_owned(), digest.clone()))
    }

    /// A repository the registry was found to have `digest` in, if any.
    pub(crate) fn holder(&self, digest: &Digest) -> Option<&Reference> {
        self.holders.get(digest)
    }

    /// The error of asking about a blob, if asking failed.
    pub(crate) fn blob_failure(&self, digest: &Digest, repo: &Reference) -> Option<RegistryError> {
        let key = (repo.repository().to_owned(), digest.clone());
        self.failed.lock().ok()?.remove(&key)
    }

    /// The manifests the registry has, in the form push records what it has sent.
    pub(super) fn manifests(&self) -> HashSet<(String, Digest)> {
        self.manifests.clone()
    }

    /// Asks about everything `images` need that has not been asked yet.
    pub(super) async fn ask(
        &mut self,
        registry: &Registry,
        images: &[PlannedImage],
        concurrency: usize,
    ) {
        let mut questions = Vec::new();
        for image in images {
            let repo = image.target.repository().to_owned();
            for digest in &image.blobs {
                if self.asked_blobs.insert((repo.clone(), digest.clone())) {
                    questions.push(Question::Blob(image.target.clone(), digest.clone()));
                }
            }
            for place in image.manifest_places() {
                if self.asked_manifests.insert(place.key.clone()) {
                    questions.push(Question::Manifest(place.at, place.key));
                }
            }
        }
        self.answer(registry, questions, concurrency).await;
    }

    /// Asks whether each repository of `repos` has each blob of `digests`, where that
    /// has not been asked yet: where else a blob could be mounted from.
    pub(crate) async fn ask_elsewhere(
        &mut self,
        registry: &Registry,
        digests: &[&Digest],
        repos: &[&Reference],
        concurrency: usize,
    ) {
        let mut questions = Vec::new();
        for digest in digests {
            for repo in repos {
                let key = (repo.repository().to_owned(), (*digest).clone());
                if self.asked_blobs.insert(key) {
                    questions.push(Question::Blob((*repo).clone(), (*digest).clone()));
                }
            }
        }
        self.answer(registry, questions, concurrency).await;
    }

    async fn answer(&mut self, registry: &Registry, questions: Vec<Question>, concurrency: usize) {
        let answers: Vec<_> = stream::iter(questions)
            .map(|question| async move {
                match &question {
                    Question::Blob(repo, digest) => {
                        let answer = registry.blob_exists(repo, digest).await;
                        (question, answer)
                    }
                    Question::Manifest(at, (_, digest)) => {
                        // A manifest that cannot be asked about is put anyway; the put
                        // says what is wrong.
                        let has = registry.manifest_digest(at).await;
                        let answer = Ok(has.is_ok_and(|found| found.as_ref() == Some(digest)));
                        (question, answer)
                    }
                }
            })
            // HEADs are small: more of them at once than uploads.
            .buffer_unordered(concurrency.max(1) * 4)
            .collect()
            .await;
        for (question, answer) in answers {
            match (question, answer) {
                (Question::Blob(repo, digest), Ok(true)) => {
                    self.blobs
                        .insert((repo.repository().to_owned(), digest.clone()));
                    self.holders.entry(digest).or_insert(repo);
                }
                (Question::Blob(repo, digest), Err(err)) => {
                    if let Ok(mut failed) = self.failed.lock() {
                        failed.insert((repo.repository().to_owned(), digest), err);
                    }
                }
                (Question::Manifest(_, key), Ok(true)) => {
                    self.manifests.insert(key);
                }
                _ => {}
            }
        }
    }
}
