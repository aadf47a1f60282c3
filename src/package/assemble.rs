//! Assembly: from a pull to a package file. [`Staging`] owns the staging directory
//! (beside the output, removed on every exit path), `index.json`, the definition as
//! built, the seal and what happens when it fails, `checksums.txt`, the entry order
//! and the file name. A differential package (see `base`) records its base in the
//! definition as built and is sealed with the base's blobs expected elsewhere. A
//! signed package's definition records the sha256 of `checksums.txt` and is signed
//! last, once everything it covers is written.
//!
//! A seal that finds a blob whose bytes do not match its name heals once, with a
//! warning naming the blob and where it was damaged: the fetcher evicts its store's
//! copy if it is still bad, fetches the digest again from its source in the same run,
//! and the layout is sealed again. Only a second failure stops the build.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::built::{BaseRecord, BuildRecord, BuiltDefinition, Differential, LeftOut};
use super::contents::{entries, signed_entries};
use super::staging_dir::StagingDir;
use super::writer::{write_package_in_parts_via, write_package_via, Entry};
use super::{PackageError, BUNDLE, CHECKSUMS, DEFINITION, LAYOUT_DIR, SIGNATURE};
use crate::definition::{Definition, Metadata};
use crate::digest::Digest;
use crate::progress::human_bytes;
use crate::pull::{BlobJob, Fetcher, Pulled, ResolvedImage};
use crate::store::layout::{annotations_for, IndexEntry, Layout, FROM_INDEX, RELATION, SUBJECT};
use crate::store::seal::{seal_leaving_out, Misnamed, SealError, Sealed};
use crate::store::{link_or_copy, Store, StoreError};
use crate::trust::SigningKey;

/// Where the package goes and in which form.
#[derive(Debug, Clone)]
pub struct Output {
    pub dir: PathBuf,
    pub compressed: bool,
    /// Over this many bytes, the package is written as Zarf's split parts of at most
    /// this size each.
    pub max_part: Option<u64>,
}

/// A package being assembled.
pub struct Staging {
    /// Removed when dropped, Ctrl-C included; swept by a later create after a crash.
    dir: StagingDir,
    layout: Layout,
    output: Output,
    /// The base of a differential package.
    base: Option<BaseRecord>,
    /// The key a signed package's definition is signed with.
    signing_key: Option<SigningKey>,
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
        let dir = StagingDir::create(&output.dir).map_err(output_error)?;
        let layout = Layout::create(&dir.path().join(LAYOUT_DIR))?;
        Ok(Self {
            dir,
            layout,
            output,
            base: None,
            signing_key: None,
        })
    }

    /// Signs the package with `key` (`create --signing-key`).
    pub fn sign_with(&mut self, key: SigningKey) {
        self.signing_key = Some(key);
    }

    /// Makes the package differential against `base`: the blobs the pull left out
    /// (`Plan::left_out`) are recorded, with the base, in the definition as built.
    pub fn make_differential(&mut self, base: BaseRecord) {
        self.base = Some(base);
    }

    /// The staging layout's own store: where blobs go when there is no cache.
    pub fn store(&self) -> &Store {
        self.layout.store()
    }

    /// Builds the package from what was pulled into `fetcher`'s store and returns its
    /// path (its part000 when it was split). Nothing is left at that path unless the
    /// whole package was written.
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
        let mut built =
            BuiltDefinition::new(&definition.metadata, &component_order, &pulled.images);
        let left_out = pulled.plan.left_out();
        built.differential = self.base.clone().map(|base| Differential {
            base,
            left_out: left_out
                .iter()
                .map(|(digest, &size)| LeftOut {
                    digest: digest.clone(),
                    size,
                })
                .collect(),
        });

        reporter.step("sealing: re-hashing every blob not hashed on its way in");
        let sealed = match self.seal(left_out, fetcher.store()).await? {
            Err(SealError::Misnamed { misnamed }) => {
                self.heal(&misnamed, pulled, fetcher).await?;
                match self.seal(left_out, fetcher.store()).await? {
                    Err(SealError::Misnamed { misnamed }) => {
                        return Err(damaged_again(misnamed, pulled))
                    }
                    other => other?,
                }
            }
            other => other?,
        };

        let entries = self.entries_with_definition(built, &sealed)?;
        let split = match self.output.max_part {
            Some(max_part) => format!(", in parts of {} if larger", human_bytes(max_part)),
            None => String::new(),
        };
        reporter.step(&format!(
            "writing {} ({} blobs, {}{split})",
            path.display(),
            sealed.blobs.len(),
            human_bytes(sealed.blobs.values().fold(0, |a, b| a.saturating_add(*b)))
        ));
        let (out, output) = (path, self.output.clone());
        // The unfinished package lives in the staging directory, so a create killed
        // while writing it leaves nothing that the next create does not sweep.
        let temp_dir = self.dir.path().to_owned();
        let path = run_blocking("writing the package", move || {
            match output.max_part {
                None => {
                    write_package_via(&entries, &out, output.compressed, &temp_dir).map(|()| out)
                }
                Some(max_part) => write_package_in_parts_via(
                    &entries,
                    &out,
                    output.compressed,
                    &temp_dir,
                    max_part,
                ),
            }
            .map_err(PackageError::from)
        })
        .await?;
        drop(self);
        Ok(path)
    }

    /// Writes `pkgr.yaml` and `checksums.txt` (and for a signed package, its
    /// signatures: the definition records the sha256 of `checksums.txt` and is signed
    /// once that is written) and returns every entry in tar order.
    fn entries_with_definition(
        &self,
        mut built: BuiltDefinition,
        sealed: &Sealed,
    ) -> Result<Vec<Entry>, PackageError> {
        let dir = self.dir.path();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| StoreError::io("write", &path, e))
        };
        let Some(key) = &self.signing_key else {
            write(DEFINITION, built.to_yaml().as_bytes())?;
            return entries(dir, sealed);
        };
        let entries = signed_entries(dir, sealed)?;
        let checksums_path = dir.join(CHECKSUMS);
        let checksums = std::fs::read(&checksums_path)
            .map_err(|e| StoreError::io("read", &checksums_path, e))?;
        built.build = Some(BuildRecord {
            aggregate_checksum: Digest::of(&checksums).hex().to_owned(),
        });
        let definition = built.to_yaml();
        let signed = crate::trust::sign(key, definition.as_bytes());
        write(DEFINITION, definition.as_bytes())?;
        write(SIGNATURE, &signed.detached)?;
        write(BUNDLE, &signed.bundle)?;
        Ok(entries)
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
    async fn seal(
        &self,
        left_out: &BTreeMap<Digest, u64>,
        from: &Store,
    ) -> Result<Result<Sealed, SealError>, PackageError> {
        let root = self.layout.root().to_owned();
        let left_out = left_out.clone();
        // Staged by hard link, or by a copy read from those very files.
        let hashed_here = from.hashed_here();
        run_blocking("sealing the package", move || {
            Ok(seal_leaving_out(&root, &left_out, &hashed_here))
        })
        .await
    }

    /// Fetches each misnamed digest the package needs again, once, and places it in
    /// the layout. The fetcher evicts its store's copy only if that is still bad.
    async fn heal(
        &self,
        misnamed: &[Misnamed],
        pulled: &Pulled,
        fetcher: &Fetcher<'_>,
    ) -> Result<(), PackageError> {
        let store = fetcher.store();
        for blob in misnamed {
            // Nothing this package needs: the second seal no longer sees it.
            let Some(heal) = what_to_heal(pulled, &blob.named) else {
                continue;
            };
            fetcher.reporter().warn(&format!(
                "blob {} of {} was damaged {} (its bytes hash to {}); fetching it again",
                blob.named,
                owner_of(&pulled.images, &blob.named),
                damaged_where(store, self.layout.store(), &blob.named),
                blob.actual
            ));
            match heal {
                Heal::Blob(job) => fetcher.refetch(job).await,
                Heal::Manifest(image, size) => {
                    fetcher
                        .refetch_manifest(&image.source, &blob.named, size)
                        .await
                }
            }
            .map_err(PackageError::Heal)?;
            link_or_copy(
                &store.blob_path(&blob.named),
                &self.layout.store().blob_path(&blob.named),
            )?;
        }
        Ok(())
    }
}

/// How a damaged digest is fetched again.
enum Heal<'p> {
    Blob(&'p BlobJob),
    /// A manifest of this image, with its size.
    Manifest(&'p ResolvedImage, u64),
}

fn what_to_heal<'p>(pulled: &'p Pulled, digest: &Digest) -> Option<Heal<'p>> {
    if let Some(job) = pulled.plan.job(digest) {
        return Some(Heal::Blob(job));
    }
    pulled.images.iter().find_map(|image| {
        image
            .manifests
            .iter()
            .find(|(d, _)| d == digest)
            .map(|&(_, size)| Heal::Manifest(image, size))
    })
}

/// Where the damaged copy was, for the warning. Without a cache the fetcher's store
/// is the staging layout itself, whose path means nothing once the run is over.
fn damaged_where(store: &Store, staging: &Store, digest: &Digest) -> String {
    let path = store.blob_path(digest);
    if path == staging.blob_path(digest) {
        "in this run's staging directory".to_owned()
    } else {
        format!("at {}", path.display())
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
    let mut annotations = annotations_for(&image.reference.whole());
    if let Some(link) = &image.link {
        annotations.insert(SUBJECT.to_owned(), link.subject.to_string());
        annotations.insert(RELATION.to_owned(), link.relation.as_str().to_owned());
    }
    if let Some(index) = &image.from_index {
        annotations.insert(FROM_INDEX.to_owned(), index.to_string());
    }
    IndexEntry {
        media_type: image.media_type.clone(),
        digest: image.digest.clone(),
        size: image.size,
        annotations,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heal_warning_says_where_the_damaged_copy_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = |name: &str| {
            Store::at(
                dir.path().join(name).join("blobs/sha256"),
                dir.path().join(name).join("ingest"),
            )
            .unwrap()
        };
        let (cache, staging) = (store("cache"), store("staging"));
        let digest = Digest::of(b"damaged");
        assert_eq!(
            damaged_where(&cache, &staging, &digest),
            format!("at {}", cache.blob_path(&digest).display())
        );
        // Without a cache the fetcher writes straight into the staging layout.
        assert_eq!(
            damaged_where(&staging, &staging, &digest),
            "in this run's staging directory"
        );
    }
}
