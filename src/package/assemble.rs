//! Assembly: from a pull to a package file. [`Staging`] owns the staging directory
//! (beside the output, removed on every exit path), `index.json`, the definition as
//! built, the seal and what happens when it fails, `checksums.txt`, the entry order
//! and the file name.
//!
//! A seal that finds a blob whose bytes do not match its name heals once: the damaged
//! copy is evicted from its store, the digest is fetched again from its source in the
//! same run with a warning, and the layout is sealed again. Only a second failure
//! stops the build.

use std::path::PathBuf;

use super::built::BuiltDefinition;
use super::contents::entries;
use super::writer::write_package;
use super::{PackageError, DEFINITION, LAYOUT_DIR};
use crate::definition::{Definition, Metadata};
use crate::digest::Digest;
use crate::progress::human_bytes;
use crate::pull::{Fetcher, Pulled, ResolvedImage};
use crate::store::layout::{annotations_for, IndexEntry, Layout};
use crate::store::seal::{seal, Misnamed, SealError, Sealed};
use crate::store::{link_or_copy, Store, StoreError};

/// Where the package goes and in which form.
#[derive(Debug, Clone)]
pub struct Output {
    pub dir: PathBuf,
    pub compressed: bool,
}

/// A package being assembled.
pub struct Staging {
    /// Removed when dropped, Ctrl-C included.
    dir: tempfile::TempDir,
    layout: Layout,
    output: Output,
}

impl Staging {
    /// Creates the output directory and a staging directory inside it, so that the
    /// final rename never crosses filesystems.
    pub fn create(output: Output) -> Result<Self, PackageError> {
        let output_error = |source| PackageError::Output {
            path: output.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&output.dir).map_err(output_error)?;
        let dir = tempfile::Builder::new()
            .prefix(".pkgr-staging-")
            .tempdir_in(&output.dir)
            .map_err(output_error)?;
        let layout = Layout::create(&dir.path().join(LAYOUT_DIR))?;
        Ok(Self {
            dir,
            layout,
            output,
        })
    }

    /// The staging layout's own store: where blobs go when there is no cache.
    pub fn store(&self) -> &Store {
        self.layout.store()
    }

    /// Builds the package from what was pulled into `fetcher`'s store and returns its
    /// path. Nothing is left at that path unless the whole package was written.
    pub async fn package(
        self,
        definition: &Definition,
        pulled: &Pulled,
        fetcher: &Fetcher<'_>,
    ) -> Result<PathBuf, PackageError> {
        let reporter = fetcher.reporter();
        let path = self
            .output
            .dir
            .join(file_name(&definition.metadata, self.output.compressed));
        self.link_all(fetcher.store(), pulled).await?;
        self.layout
            .write_index(pulled.images.iter().map(index_entry).collect())?;
        let component_order: Vec<String> = definition
            .components
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let built = BuiltDefinition::new(&definition.metadata, &component_order, &pulled.images);
        let built_path = self.dir.path().join(DEFINITION);
        std::fs::write(&built_path, built.to_yaml())
            .map_err(|e| StoreError::io("write", &built_path, e))?;

        reporter.step("sealing: re-hashing every blob");
        let sealed = match self.seal().await? {
            Err(SealError::Misnamed { misnamed }) => {
                self.heal(&misnamed, pulled, fetcher).await?;
                match self.seal().await? {
                    Err(SealError::Misnamed { misnamed }) => {
                        return Err(damaged_again(misnamed, pulled))
                    }
                    other => other?,
                }
            }
            other => other?,
        };

        let entries = entries(self.dir.path(), &sealed)?;
        reporter.step(&format!(
            "writing {} ({} blobs, {})",
            path.display(),
            sealed.blobs.len(),
            human_bytes(sealed.blobs.values().sum())
        ));
        let (out, compressed) = (path.clone(), self.output.compressed);
        run_blocking("writing the package", move || {
            write_package(&entries, &out, compressed).map_err(PackageError::from)
        })
        .await?;
        drop(self);
        Ok(path)
    }

    /// Places every manifest and planned blob from `from` into the staging layout.
    async fn link_all(&self, from: &Store, pulled: &Pulled) -> Result<(), PackageError> {
        let digests: Vec<Digest> = pulled.digests().cloned().collect();
        let (from, to) = (from.clone(), self.layout.store().clone());
        run_blocking("placing blobs in the staging directory", move || {
            digests
                .iter()
                .try_for_each(|d| link_or_copy(&from.blob_path(d), &to.blob_path(d)))
                .map_err(PackageError::from)
        })
        .await
    }

    /// The seal's own verdict, inside the failure of the thread that ran it.
    async fn seal(&self) -> Result<Result<Sealed, SealError>, PackageError> {
        let root = self.layout.root().to_owned();
        run_blocking("sealing the package", move || Ok(seal(&root))).await
    }

    /// Fetches each misnamed digest again, once, and places it in the layout.
    async fn heal(
        &self,
        misnamed: &[Misnamed],
        pulled: &Pulled,
        fetcher: &Fetcher<'_>,
    ) -> Result<(), PackageError> {
        let store = fetcher.store();
        for blob in misnamed {
            fetcher.reporter().warn(&format!(
                "blob {} of {} was damaged in the cache (its bytes hash to {}); fetching it again",
                blob.named,
                owner_of(&pulled.images, &blob.named),
                blob.actual
            ));
            store.evict(&blob.named);
            if let Some(job) = pulled.plan.job(&blob.named) {
                fetcher.refetch(job).await.map_err(PackageError::Heal)?;
            } else if let Some(image) = pulled
                .images
                .iter()
                .find(|i| i.manifests.iter().any(|(d, _)| d == &blob.named))
            {
                let (bytes, _) = image
                    .source
                    .manifest(Some(&blob.named))
                    .await
                    .map_err(PackageError::Heal)?;
                store.put_bytes(&blob.named, &bytes)?;
            } else {
                // Nothing this package needs: the second seal drops it or names it missing.
                continue;
            }
            link_or_copy(
                &store.blob_path(&blob.named),
                &self.layout.store().blob_path(&blob.named),
            )?;
        }
        Ok(())
    }
}

async fn run_blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, PackageError> + Send + 'static,
) -> Result<T, PackageError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|source| Err(PackageError::Internal { what, source }))
}

fn damaged_again(misnamed: Vec<Misnamed>, pulled: &Pulled) -> PackageError {
    match misnamed.first() {
        Some(blob) => PackageError::DamagedAgain {
            reference: owner_of(&pulled.images, &blob.named),
            digest: blob.named.clone(),
        },
        None => PackageError::Seal(SealError::Misnamed { misnamed }),
    }
}

/// `pkgr-package-<name>-<arch>[-<version>].tar[.zst]`
pub fn file_name(meta: &Metadata, compressed: bool) -> String {
    let mut name = format!(
        "pkgr-package-{}-{}",
        meta.name,
        meta.architecture.replace('/', "-")
    );
    if let Some(version) = &meta.version {
        name.push('-');
        name.push_str(version);
    }
    name.push_str(if compressed { ".tar.zst" } else { ".tar" });
    name
}

fn index_entry(image: &ResolvedImage) -> IndexEntry {
    IndexEntry {
        media_type: image.media_type.clone(),
        digest: image.digest.clone(),
        size: image.size,
        annotations: annotations_for(&image.reference.whole()),
        platform: image.platform.clone(),
    }
}

fn owner_of(images: &[ResolvedImage], digest: &Digest) -> String {
    images
        .iter()
        .find(|i| {
            i.blobs.iter().any(|b| &b.digest == digest)
                || i.manifests.iter().any(|(d, _)| d == digest)
        })
        .map_or_else(|| "(unknown image)".to_owned(), |i| i.reference.whole())
}
