//! From a `docker save` to one root manifest in the store, in each of the daemon's
//! three formats:
//!
//! - an OCI layout (Docker ≥ 25) whose root manifest lists compressed layers, or is an
//!   index: the containerd image store, holding the registry's original blobs. The
//!   root's bytes are kept exactly; a nested index and attestation manifests are
//!   resolved later like any registry's.
//! - an OCI layout whose root is an image manifest listing uncompressed layers: the
//!   classic store of Docker ≥ 25, which made that manifest itself;
//! - `manifest.json` alone (Docker < 25): `<config>.json` and `<id>/layer.tar`.
//!
//! In the last two, pkgr builds an OCI manifest it owns: the config's exact bytes and
//! each layer as the daemon saved it (`application/vnd.oci.image.layer.v1.tar`, as
//! Docker ≥ 25 and Zarf write them: the package is compressed whole anyway), or
//! gzip-compressed with `--daemon-layers gzip`; everything named by content, and
//! serialized one fixed way, so the same daemon image gives the same manifest. The
//! root is found in the layout by its digest among the hashed bytes, never by a file
//! name.

use std::io::Read;

use futures_util::StreamExt;
use serde::Serialize;

use super::save::{self, ReadError, Saved};
use super::{Daemon, DaemonError, DaemonLayers};
use crate::digest::Digest;
use crate::manifest::{
    DOCKER_LAYER_TAR, MAX_MANIFEST_BYTES, OCI_IMAGE_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR,
    OCI_MANIFEST,
};
use crate::store::Store;

/// Layer media types that say "uncompressed tar": what a daemon writes, never what a
/// registry serves for an image pulled from it.
const UNCOMPRESSED_LAYERS: [&str; 2] = [OCI_LAYER_TAR, DOCKER_LAYER_TAR];

/// Which of the daemon's save formats an image came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker < 25: `manifest.json` and `<id>/layer.tar`.
    Legacy,
    /// Docker ≥ 25, classic store: an OCI layout of daemon-made manifests.
    OciDaemonMade,
    /// Docker ≥ 25, containerd store: an OCI layout of the registry's own blobs.
    OciOriginal,
}

/// The image as it now lies in the store.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The root manifest's exact bytes, and their digest.
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub format: Format,
}

/// How one import runs: the bound on each file of the save, what becomes of
/// uncompressed layers, and whom to tell how many bytes of the save have arrived.
pub struct ImportOptions<'a> {
    pub max_blob_size: u64,
    pub layers: DaemonLayers,
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// Exports `image` from the daemon and puts all it holds into `store`, reading the
/// save as it streams: a blocking thread reads the tar while this task feeds it. An
/// entry declaring more than `max_blob_size` bytes is refused from its header. The
/// caller has asked [`Daemon::has`] first, for a clear "not found".
pub async fn import(
    daemon: &Daemon,
    image: &str,
    store: &Store,
    options: ImportOptions<'_>,
) -> Result<Imported, DaemonError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(16);
    let mut stream = Box::pin(daemon.export(image));
    let progress = options.progress;
    let pump = async move {
        let mut arrived = 0u64;
        while let Some(item) = stream.next().await {
            if let Ok(chunk) = &item {
                arrived += chunk.len() as u64;
                progress(arrived);
            }
            let stop = item.is_err();
            // A closed channel means the reader is done (or failed): stop reading.
            if tx.send(item.map_err(std::io::Error::other)).await.is_err() || stop {
                break;
            }
        }
    };
    let (store, name) = (store.clone(), image.to_owned());
    let (max_blob_size, layers) = (options.max_blob_size, options.layers);
    let reading = tokio::task::spawn_blocking(move || {
        from_save(
            ChannelReader {
                rx,
                chunk: bytes::Bytes::new(),
            },
            &store,
            &name,
            max_blob_size,
            layers,
        )
    });
    let ((), read) = tokio::join!(pump, reading);
    read.map_err(|source| DaemonError::Internal {
        image: image.to_owned(),
        source,
    })?
}

/// Reads a whole save and finds (or builds) its root manifest: no file of the save
/// may declare more than `max_blob_size`, and `layers` says what becomes of
/// uncompressed layers.
pub fn from_save(
    reader: impl Read,
    store: &Store,
    image: &str,
    max_blob_size: u64,
    layers: DaemonLayers,
) -> Result<Imported, DaemonError> {
    let format = unreadable(image);
    let reader = crate::cancel::Cancellable(reader);
    let saved = save::read(reader, store, max_blob_size).map_err(|e| match e {
        ReadError::Format(message) => format(message),
        ReadError::TooLarge { name, size, limit } => DaemonError::EntryTooLarge {
            image: image.to_owned(),
            name,
            size,
            limit,
        },
        ReadError::Store(source) => DaemonError::Store {
            image: image.to_owned(),
            source,
        },
    })?;
    let own = Own {
        saved: &saved,
        store,
        image,
        layers,
    };
    let imported = if let Some(index) = &saved.index_json {
        from_layout(&own, index)?
    } else if let Some(manifest) = &saved.manifest_json {
        from_legacy(&own, manifest)?
    } else {
        return Err(format("it has neither index.json nor manifest.json".into()));
    };
    Ok(imported)
}

#[derive(serde::Deserialize)]
struct Index {
    manifests: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    digest: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    config: Option<LayerEntry>,
    layers: Option<Vec<LayerEntry>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerEntry {
    media_type: Option<String>,
    digest: String,
}

/// The error for a save of `image` that is not one pkgr can read, given why.
fn unreadable(image: &str) -> impl Fn(String) -> DaemonError + '_ {
    move |message| DaemonError::Format {
        image: image.to_owned(),
        message,
    }
}

/// What building a manifest of its own from a save needs.
struct Own<'a> {
    saved: &'a Saved,
    store: &'a Store,
    image: &'a str,
    layers: DaemonLayers,
}

fn from_layout(own: &Own, index: &[u8]) -> Result<Imported, DaemonError> {
    let (saved, store, image) = (own.saved, own.store, own.image);
    let format = unreadable(image);
    let index: Index = serde_json::from_slice(index)
        .map_err(|e| format(format!("its index.json cannot be read ({e})")))?;
    // One image was asked for, so the layout has one entry for it.
    let [root] = index.manifests.as_slice() else {
        return Err(format(format!(
            "its index.json lists {} images, not one",
            index.manifests.len()
        )));
    };
    let digest = saved_digest(saved, &root.digest, image)?;
    let bytes = read_stored(store, &digest, image)?;
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| format(format!("its manifest {digest} cannot be read ({e})")))?;
    let daemon_made = matches!(&manifest.layers, Some(layers) if !layers.is_empty()
        && layers.iter().all(|l| l.media_type.as_deref().is_some_and(|t| UNCOMPRESSED_LAYERS.contains(&t))));
    if !daemon_made {
        return Ok(Imported {
            bytes,
            digest,
            format: Format::OciOriginal,
        });
    }
    let config = manifest
        .config
        .ok_or_else(|| format(format!("its manifest {digest} has no config")))?;
    let config = saved_digest(saved, &config.digest, image)?;
    let layers = manifest
        .layers
        .unwrap_or_default()
        .iter()
        .map(|l| saved_digest(saved, &l.digest, image))
        .collect::<Result<Vec<_>, _>>()?;
    let mut imported = build(own, &config, &layers)?;
    imported.format = Format::OciDaemonMade;
    Ok(imported)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyEntry {
    config: String,
    layers: Vec<String>,
}

fn from_legacy(own: &Own, manifest: &[u8]) -> Result<Imported, DaemonError> {
    let (saved, image) = (own.saved, own.image);
    let format = unreadable(image);
    let entries: Vec<LegacyEntry> = serde_json::from_slice(manifest)
        .map_err(|e| format(format!("its manifest.json cannot be read ({e})")))?;
    let [entry] = entries.as_slice() else {
        return Err(format(format!(
            "its manifest.json lists {} images, not one",
            entries.len()
        )));
    };
    let by_path = |path: &str| {
        saved
            .lookup(path)
            .map(|(digest, _)| digest.clone())
            .ok_or_else(|| {
                format(format!(
                    "manifest.json names {path}, which it does not hold"
                ))
            })
    };
    let config = by_path(&entry.config)?;
    let layers = entry
        .layers
        .iter()
        .map(|p| by_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    build(own, &config, &layers)
}

/// A digest named in the layout's metadata, checked to be among the bytes the save
/// held (as hashed here): its file name in the save plays no part.
fn saved_digest(saved: &Saved, named: &str, image: &str) -> Result<Digest, DaemonError> {
    let digest: Digest = named.parse().map_err(|_| DaemonError::Format {
        image: image.to_owned(),
        message: format!("it names a blob by the invalid digest {named:?}"),
    })?;
    match saved.size_of(&digest) {
        Some(_) => Ok(digest),
        None => Err(DaemonError::Format {
            image: image.to_owned(),
            message: format!("it names {digest}, and no file in it has those bytes"),
        }),
    }
}

fn read_stored(store: &Store, digest: &Digest, image: &str) -> Result<Vec<u8>, DaemonError> {
    let path = store.blob_path(digest);
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| DaemonError::Store {
            image: image.to_owned(),
            source: crate::store::StoreError::io("read", &path, e),
        })?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES || Digest::of(&bytes) != *digest {
        return Err(DaemonError::Format {
            image: image.to_owned(),
            message: format!(
                "its manifest {digest} is over the {MAX_MANIFEST_BYTES}-byte limit or changed"
            ),
        });
    }
    Ok(bytes)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
}

/// The OCI manifest pkgr owns for a daemon-made image: the config's bytes as the
/// daemon has them, each layer as saved or gzip-compressed, serialized one fixed way.
fn build(own: &Own, config: &Digest, layers: &[Digest]) -> Result<Imported, DaemonError> {
    let (saved, store) = (own.saved, own.store);
    let store_error = |source| DaemonError::Store {
        image: own.image.to_owned(),
        source,
    };
    let config_size = saved.size_of(config).unwrap_or_default();
    let (layer_type, layers) = match own.layers {
        DaemonLayers::Tar => (
            OCI_LAYER_TAR,
            layers
                .iter()
                .map(|d| (d.clone(), saved.size_of(d).unwrap_or_default()))
                .collect(),
        ),
        DaemonLayers::Gzip => (
            OCI_LAYER_GZIP,
            super::gzip::compress_all(store, layers).map_err(store_error)?,
        ),
    };
    let manifest = OwnManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config: Descriptor {
            media_type: OCI_IMAGE_CONFIG,
            digest: config.to_string(),
            size: config_size,
        },
        layers: layers
            .into_iter()
            .map(|(digest, size)| Descriptor {
                media_type: layer_type,
                digest: digest.to_string(),
                size,
            })
            .collect(),
    };
    let bytes =
        serde_json::to_vec(&manifest).expect("a manifest of strings and numbers serializes");
    let digest = Digest::of(&bytes);
    store.put_bytes(&digest, &bytes).map_err(store_error)?;
    Ok(Imported {
        bytes,
        digest,
        format: Format::Legacy,
    })
}

/// A blocking reader over the chunks the export stream sends through a channel.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.chunk = chunk?,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
