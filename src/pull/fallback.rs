//! The Docker daemon as a fallback behind the [`Source`] trait. [`DaemonFallback`]
//! wraps an image's registry source and, when the registry cannot serve the image (not
//! found, cannot be reached, TLS failure), imports it from the local daemon instead;
//! credentials that were refused and rate limits are never a reason to. From then on
//! the imported image is served by [`DaemonImage`].

use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use oci_client::Reference;

use super::daemon::DaemonImage;
use super::{PullError, Source};
use crate::daemon::{self, Daemon, DaemonError};
use crate::digest::Digest;
use crate::registry::{BlobStream, RegistryError};
use crate::store::Store;

/// What every fallback of one run shares: where imports go, and where their
/// warnings go (the command prints them as they come, during the pull).
#[derive(Debug)]
pub struct Fallback {
    store: Store,
    max_blob_size: u64,
    warnings: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Fallback {
    /// Fallbacks that import into `store` (the fetcher's), refusing any file of a save
    /// over `max_blob_size`, and the receiving end of their warnings.
    pub fn new(
        store: Store,
        max_blob_size: u64,
    ) -> (Arc<Self>, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (warnings, receiver) = tokio::sync::mpsc::unbounded_channel();
        let fallback = Self {
            store,
            max_blob_size,
            warnings,
        };
        (Arc::new(fallback), receiver)
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
        let imported = async {
            let daemon = Daemon::connect().await?;
            daemon.has(&name).await?;
            // Said now, not after the import: a large image takes a while to save.
            let _ = self.fallback.warnings.send(format!(
                "{failure}; packaging {name} from the Docker daemon at {} instead",
                daemon.host()
            ));
            let (store, bound) = (&self.fallback.store, self.fallback.max_blob_size);
            let imported = daemon::import(&daemon, &name, store, bound).await?;
            // A pinned digest holds for the daemon as for a registry: a manifest pkgr
            // built (which no registry ever served) cannot have it.
            if reference
                .digest()
                .is_some_and(|pinned| pinned != imported.digest.to_string())
            {
                return Err(DaemonError::PinnedDigest {
                    image: name.clone(),
                    host: daemon.host().to_owned(),
                    actual: imported.digest,
                });
            }
            Ok::<_, DaemonError>((daemon, imported))
        }
        .await;
        let (daemon, imported) = match imported {
            Ok(done) => done,
            Err(daemon) => {
                return Err(PullError::NotInDaemon {
                    registry: Box::new(failure),
                    daemon: Box::new(daemon),
                })
            }
        };
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
