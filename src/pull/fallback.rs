//! The Docker daemon as a fallback behind the [`Source`] trait. [`DaemonFallback`]
//! wraps an image's registry source and, when the registry cannot serve the image (not
//! found, cannot be reached, TLS failure), imports it from the local daemon instead;
//! credentials that were refused and rate limits are never a reason to. From then on
//! the imported image is served by [`DaemonImage`].
//!
//! An import writes the whole save into the store before any plan sees it, so it is
//! checked against the build's free space first (the size the daemon reports, and as
//! much again for gzip copies with `--daemon-layers gzip`) and reserved there, so the
//! plan's later checks count it; its bytes are reported as they arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures_util::future::BoxFuture;
use oci_client::Reference;

use super::daemon::DaemonImage;
use super::{PullError, Source};
use crate::daemon::{self, Daemon, DaemonError, DaemonLayers, ImportOptions, Imported};
use crate::digest::Digest;
use crate::progress::Note;
use crate::registry::{BlobStream, RegistryError};
use crate::space::SpaceCheck;
use crate::store::Store;

/// Import progress is told at most once per this many bytes.
const PROGRESS_STEP: u64 = 1 << 20;

/// What every fallback of one run shares: where imports go, what they must fit in,
/// and where their warnings and progress go (the command tells them as they come,
/// during the pull).
#[derive(Debug)]
pub struct Fallback {
    store: Store,
    max_blob_size: u64,
    layers: DaemonLayers,
    space: Option<SpaceCheck>,
    notes: tokio::sync::mpsc::UnboundedSender<Note>,
}

impl Fallback {
    /// Fallbacks that import into `store` (the fetcher's), refusing any file of a save
    /// over `max_blob_size`, keeping daemon-made layers as `layers` says, each import
    /// checked against `space` first; and the receiving end of their notes.
    pub fn new(
        store: Store,
        max_blob_size: u64,
        layers: DaemonLayers,
        space: Option<SpaceCheck>,
    ) -> (Arc<Self>, tokio::sync::mpsc::UnboundedReceiver<Note>) {
        let (notes, receiver) = tokio::sync::mpsc::unbounded_channel();
        let fallback = Self {
            store,
            max_blob_size,
            layers,
            space,
            notes,
        };
        (Arc::new(fallback), receiver)
    }

    /// Reserves room for an import of an image the daemon sizes at `size`: the save
    /// into the store, gzip copies beside it if asked for, and the package's copy.
    fn make_room(&self, size: u64) -> Result<(), PullError> {
        let Some(space) = &self.space else {
            return Ok(());
        };
        let written = match self.layers {
            DaemonLayers::Tar => size,
            DaemonLayers::Gzip => size.saturating_mul(2),
        };
        Ok(space.reserve(written, size)?)
    }

    /// Imports `name` from `daemon`, telling its progress; `size` is the daemon's.
    async fn import(
        &self,
        daemon: &Daemon,
        name: &str,
        size: u64,
    ) -> Result<Imported, DaemonError> {
        let label = format!("{name} from the Docker daemon");
        let note = |note| drop(self.notes.send(note));
        note(Note::ImportStart {
            label: label.clone(),
            bytes: size,
        });
        let (started, told) = (Instant::now(), AtomicU64::new(0));
        let progress = |arrived: u64| {
            if arrived >= told.load(Ordering::Relaxed) + PROGRESS_STEP {
                told.store(arrived, Ordering::Relaxed);
                note(Note::ImportProgress {
                    label: label.clone(),
                    done: arrived,
                    total: size,
                });
            }
        };
        let options = ImportOptions {
            max_blob_size: self.max_blob_size,
            layers: self.layers,
            progress: &progress,
        };
        let imported = daemon::import(daemon, name, &self.store, options).await;
        note(Note::ImportDone {
            label: label.clone(),
            done: told.load(Ordering::Relaxed).max(size),
            elapsed: started.elapsed(),
        });
        imported
    }
}

/// Whether a registry's failure may be made good by the daemon: the registry does not
/// have the image, or cannot be spoken to at all. A refusal of credentials is an
/// answer about the image, and a stall or rate limit is a registry that works.
pub fn falls_back(err: &RegistryError) -> bool {
    matches!(
        err,
        RegistryError::NotFound { .. }
            | RegistryError::Unreachable { .. }
            | RegistryError::UntrustedCertificate { .. }
            | RegistryError::PlainHttpPort { .. }
    )
}

/// A registry source that falls back to the daemon for its root manifest; once it
/// has, every later request goes to the daemon's copy.
pub struct DaemonFallback {
    registry: Arc<dyn Source>,
    fallback: Arc<Fallback>,
    chosen: OnceLock<Arc<dyn Source>>,
}

impl DaemonFallback {
    pub fn open(registry: Arc<dyn Source>, fallback: Arc<Fallback>) -> Arc<dyn Source> {
        Arc::new(Self {
            registry,
            fallback,
            chosen: OnceLock::new(),
        })
    }

    fn current(&self) -> &Arc<dyn Source> {
        self.chosen.get().unwrap_or(&self.registry)
    }

    async fn import_from_daemon(
        &self,
        failure: RegistryError,
    ) -> Result<(Vec<u8>, Digest), PullError> {
        let reference = self.registry.reference().clone();
        let name = daemon_name(&reference);
        let not_in_daemon = |failure, daemon| PullError::NotInDaemon {
            registry: Box::new(failure),
            daemon: Box::new(daemon),
        };
        let found = async {
            let daemon = Daemon::connect().await?;
            let size = daemon.has(&name).await?;
            Ok::<_, DaemonError>((daemon, size))
        }
        .await;
        let (daemon, size) = match found {
            Ok(found) => found,
            Err(daemon) => return Err(not_in_daemon(failure, daemon)),
        };
        self.fallback.make_room(size)?;
        // Said now, not after the import: a large image takes a while to save.
        let _ = self.fallback.notes.send(Note::Warning(format!(
            "{failure}; packaging {name} from the Docker daemon at {} instead",
            daemon.host()
        )));
        let imported = match self.fallback.import(&daemon, &name, size).await {
            Ok(imported) => imported,
            Err(daemon) => return Err(not_in_daemon(failure, daemon)),
        };
        // A pinned digest holds for the daemon as for a registry: a manifest pkgr
        // built (which no registry ever served) cannot have it.
        if reference
            .digest()
            .is_some_and(|pinned| pinned != imported.digest.to_string())
        {
            let pinned = DaemonError::PinnedDigest {
                image: name.clone(),
                host: daemon.host().to_owned(),
                actual: imported.digest,
            };
            return Err(not_in_daemon(failure, pinned));
        }
        let image = DaemonImage::open(
            reference,
            &imported,
            self.fallback.store.clone(),
            daemon.host(),
        );
        let _ = self.chosen.set(image);
        Ok((imported.bytes, imported.digest))
    }
}

/// The name the daemon knows the image by: the reference as written, normalized (the
/// daemon resolves `docker.io/library/…` names itself).
fn daemon_name(reference: &Reference) -> String {
    reference.whole()
}

impl Source for DaemonFallback {
    fn reference(&self) -> &Reference {
        self.registry.reference()
    }

    fn manifest<'a>(
        &'a self,
        digest: Option<&'a Digest>,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>> {
        Box::pin(async move {
            if self.chosen.get().is_some() || digest.is_some() {
                return self.current().manifest(digest).await;
            }
            match self.registry.manifest(None).await {
                Err(PullError::Registry(failure)) if falls_back(&failure) => {
                    self.import_from_daemon(failure).await
                }
                other => other,
            }
        })
    }

    fn blob<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
    ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>> {
        self.current().blob(digest, offset)
    }

    // Signature discovery asks the registry while it serves the image; an image taken
    // from the daemon has no registry to ask, and `DaemonImage` says so.
    fn sibling(&self, reference: Reference) -> Option<Arc<dyn Source>> {
        self.current().sibling(reference)
    }

    fn referrers<'a>(
        &'a self,
        digest: &'a Digest,
        enough: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Vec<u8>>>, PullError>> {
        self.current().referrers(digest, enough)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_or_unreachable_registries_fall_back() {
        let not_found = RegistryError::NotFound {
            reference: "r".into(),
        };
        let refused = RegistryError::Unauthorized {
            registry: "r".into(),
            reference: "r".into(),
        };
        let no_credentials = RegistryError::NoCredentials {
            registry: "r".into(),
            reference: "r".into(),
        };
        assert!(falls_back(&not_found));
        assert!(!falls_back(&refused));
        assert!(!falls_back(&no_credentials));
    }
}
