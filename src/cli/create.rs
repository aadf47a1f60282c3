//! `pkgr create`: definition → resolve → plan → fetch → seal → package.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use super::CreateArgs;
use crate::definition::{self, Definition};
use crate::package::built::BuiltDefinition;
use crate::package::writer::{write_package, Entry};
use crate::package::{CHECKSUMS, DEFINITION, LAYOUT_DIR};
use crate::progress::{self, human_bytes};
use crate::pull::{self, BlobJob, ResolveOptions, ResolvedImage};
use crate::registry::{Credentials, Registry};
use crate::store::cas::link_or_copy;
use crate::store::digest::hash_file;
use crate::store::layout::{annotations_for, IndexEntry, Layout};
use crate::store::seal::{seal, SealError, Sealed};
use crate::store::{Digest, Store, StoreError};
use crate::Error;

pub async fn run(args: CreateArgs) -> Result<(), Error> {
    let definition_path = definition::find_in(&args.dir)?;
    let definition = definition::load(&definition_path, args.architecture.as_deref())?;
    let reporter = progress::reporter(args.no_progress);
    for warning in &definition.warnings {
        reporter.warn(warning);
    }

    let output_dir = &args.output;
    std::fs::create_dir_all(output_dir).map_err(|source| Error::Output {
        path: output_dir.clone(),
        source,
    })?;
    let package_path = output_dir.join(package_file_name(&definition, !args.uncompressed));

    // Staging lives beside the output so the final rename never crosses filesystems;
    // the guard removes it on every exit path, Ctrl-C included.
    let staging = tempfile::Builder::new()
        .prefix(".pkgr-staging-")
        .tempdir_in(output_dir)
        .map_err(|source| Error::Output {
            path: output_dir.clone(),
            source,
        })?;
    let layout = Layout::create(&staging.path().join(LAYOUT_DIR))?;
    // Held until the package is written, so that a prune waits for this build.
    let cache = if args.no_cache {
        None
    } else {
        Some(super::cache::open_shared(args.cache.as_deref(), reporter.as_ref()).await?)
    };
    let store = cache
        .as_ref()
        .map_or_else(|| layout.store().clone(), |c| c.store().clone());

    let registries: BTreeSet<String> = definition
        .components
        .iter()
        .flat_map(|c| &c.images)
        .map(|i| i.reference.registry().to_owned())
        .collect();
    let registry = Registry::connect(
        &args.transport.transport(),
        &registries,
        Credentials::from_docker_config().map_err(crate::registry::RegistryError::from)?,
    )
    .await?;

    let options = ResolveOptions {
        architecture: definition.metadata.architecture.clone(),
        allow_index: args.allow_index,
        concurrency: usize::from(args.concurrency),
    };
    let images =
        pull::resolve_all(&registry, &store, &definition, &options, reporter.as_ref()).await?;

    let needed = plan(&images)?;
    let (jobs, cached_bytes) = split_cached(&store, &needed);
    let cached_blobs = needed.len() - jobs.len();
    reporter.plan(
        "downloading",
        jobs.len(),
        jobs.iter().map(|j| j.size).sum(),
        cached_blobs,
        cached_bytes,
    );
    pull::fetch_all(
        &registry,
        &store,
        jobs,
        usize::from(args.concurrency),
        reporter.as_ref(),
    )
    .await?;
    reporter.finish();

    let manifests = images
        .iter()
        .flat_map(|i| i.manifests.iter().map(|(d, _)| d));
    for digest in manifests.chain(needed.keys()) {
        link_or_copy(&store.blob_path(digest), &layout.store().blob_path(digest))?;
        if let Some(cache) = &cache {
            cache.mark_used(digest);
        }
    }
    layout.write_index(images.iter().map(index_entry).collect())?;
    let component_order: Vec<String> = definition
        .components
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let built = BuiltDefinition::new(&definition.metadata, &component_order, &images);
    let built_path = staging.path().join(DEFINITION);
    std::fs::write(&built_path, built.to_yaml())
        .map_err(|e| StoreError::io("write", &built_path, e))?;

    reporter.step("sealing: re-hashing every blob");
    let root = layout.root().to_owned();
    let sealed = tokio::task::spawn_blocking(move || seal(&root))
        .await
        .expect("the seal task does not panic");
    let sealed = match sealed {
        Ok(sealed) => sealed,
        Err(SealError::Misnamed { misnamed }) => {
            // A misnamed blob came from a damaged cache entry: evict it and name it.
            for digest in &misnamed {
                store.evict(digest);
            }
            let digest = misnamed[0].clone();
            return Err(Error::DamagedCache {
                reference: owner_of(&images, &digest),
                digest,
            });
        }
        Err(err) => return Err(err.into()),
    };

    let entries = package_entries(staging.path(), &sealed)?;
    let compressed = !args.uncompressed;
    let out = package_path.clone();
    reporter.step(&format!(
        "writing {} ({} blobs, {})",
        package_path.display(),
        sealed.blobs.len(),
        human_bytes(sealed.blobs.values().sum())
    ));
    tokio::task::spawn_blocking(move || write_package(&entries, &out, compressed))
        .await
        .expect("the writer task does not panic")?;
    drop(staging);
    drop(cache);

    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", package_path.display());
    Ok(())
}

/// `pkgr-package-<name>-<arch>[-<version>].tar[.zst]`
fn package_file_name(definition: &Definition, compressed: bool) -> String {
    let meta = &definition.metadata;
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

/// The unique blobs (configs and layers) of all images, each with one repository that
/// serves it. Manifests are already stored during resolve.
fn plan(images: &[ResolvedImage]) -> Result<BTreeMap<Digest, BlobJob>, Error> {
    let mut needed: BTreeMap<Digest, BlobJob> = BTreeMap::new();
    for image in images {
        for blob in &image.blobs {
            match needed.get(&blob.digest) {
                Some(job) if job.size != blob.size => {
                    return Err(Error::ConflictingSizes {
                        digest: blob.digest.clone(),
                        first: job.size,
                        second: blob.size,
                        reference: image.reference.whole(),
                    })
                }
                Some(_) => {}
                None => {
                    needed.insert(
                        blob.digest.clone(),
                        BlobJob {
                            digest: blob.digest.clone(),
                            size: blob.size,
                            source: image.reference.clone(),
                        },
                    );
                }
            }
        }
    }
    Ok(needed)
}

fn split_cached(store: &Store, needed: &BTreeMap<Digest, BlobJob>) -> (Vec<BlobJob>, u64) {
    let mut cached_bytes = 0;
    let mut jobs = Vec::new();
    for job in needed.values() {
        if store.contains(&job.digest, job.size) {
            cached_bytes += job.size;
        } else {
            jobs.push(job.clone());
        }
    }
    (jobs, cached_bytes)
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

/// The tar's order: metadata first, then manifests, then configs, then layers, each
/// group sorted by name, so that a reader finds every manifest before the configs it
/// names and needs only the head of the package.
fn package_entries(staging: &Path, sealed: &Sealed) -> Result<Vec<Entry>, Error> {
    let meta_files = [
        DEFINITION.to_owned(),
        format!("{LAYOUT_DIR}/oci-layout"),
        format!("{LAYOUT_DIR}/index.json"),
    ];
    let blob_name = |digest: &Digest| format!("{LAYOUT_DIR}/blobs/sha256/{}", digest.hex());

    let mut checksums: BTreeMap<String, String> = BTreeMap::new();
    for name in &meta_files {
        let path = staging.join(name);
        let (digest, _) = hash_file(&path).map_err(|e| StoreError::io("read", &path, e))?;
        checksums.insert(name.clone(), digest.hex().to_owned());
    }
    for digest in sealed.blobs.keys() {
        checksums.insert(blob_name(digest), digest.hex().to_owned());
    }
    let checksums_path = staging.join(CHECKSUMS);
    let text: String = checksums
        .iter()
        .map(|(name, hex)| format!("{hex} {name}\n"))
        .collect();
    std::fs::write(&checksums_path, text)
        .map_err(|e| StoreError::io("write", &checksums_path, e))?;

    let entry = |name: String| Entry {
        source: staging.join(&name),
        name,
    };
    let mut entries = vec![entry(DEFINITION.to_owned()), entry(CHECKSUMS.to_owned())];
    entries.extend(meta_files[1..].iter().cloned().map(entry));
    let group = |d: &Digest| {
        if sealed.manifests.contains(d) {
            0
        } else if sealed.configs.contains(d) {
            1
        } else {
            2
        }
    };
    let mut blobs: Vec<&Digest> = sealed.blobs.keys().collect();
    blobs.sort_by_key(|d| (group(d), *d));
    entries.extend(blobs.into_iter().map(|d| entry(blob_name(d))));
    Ok(entries)
}
