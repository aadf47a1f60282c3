//! An image imported from the Docker daemon, as a [`Source`]: [`DaemonImage`] serves
//! it from the store, where the import put every blob under its own hash, so the
//! fetcher finds its blobs present and downloads nothing. Deciding when to import
//! is `fallback`'s job.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use oci_client::Reference;

use super::{PullError, Source};
use crate::daemon::{DaemonError, Imported};
use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::registry::BlobStream;
use crate::store::Store;

/// An image imported from the daemon, served from the store.
pub struct DaemonImage {
    reference: Reference,
    root: (Vec<u8>, Digest),
    store: Store,
    host: String,
}

impl DaemonImage {
    /// The image `imported` put into `store`, as a source.
    pub fn open(
        reference: Reference,
        imported: &Imported,
        store: Store,
        host: &str,
    ) -> Arc<dyn Source> {
        Arc::new(Self {
            reference,
            root: (imported.bytes.clone(), imported.digest.clone()),
            store,
            host: host.to_owned(),
        })
    }

    fn missing(&self, digest: &Digest) -> PullError {
        PullError::Daemon(Box::new(DaemonError::Missing {
            image: self.reference.whole(),
            host: self.host.clone(),
            digest: digest.clone(),
        }))
    }
}

impl Source for DaemonImage {
    fn reference(&self) -> &Reference {
        &self.reference
    }

    fn manifest<'a>(
        &'a self,
        digest: Option<&'a Digest>,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>> {
        Box::pin(async move {
            let Some(digest) = digest else {
                return Ok(self.root.clone());
            };
            let path = self.store.blob_path(digest);
            let read = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut bytes = Vec::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes))
                    .map(|_| bytes)
            })
            .await;
            match read {
                Ok(Ok(bytes)) if Digest::of(&bytes) == *digest => Ok((bytes, digest.clone())),
                _ => Err(self.missing(digest)),
            }
        })
    }

    fn blob<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
    ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>> {
        Box::pin(async move {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let path = self.store.blob_path(digest);
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(|_| self.missing(digest))?;
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|_| self.missing(digest))?;
            let stream = futures_util::stream::unfold(Some(file), |file| async move {
                let mut file = file?;
                let mut buf = vec![0u8; 256 << 10];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Bytes::from(buf)), Some(file)))
                    }
                    // One error, then the end: a reader must not loop on it.
                    Err(e) => Some((Err(e), None)),
                }
            });
            Ok((Box::pin(stream) as BlobStream, true))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::{from_save, DaemonLayers, Format};
    use crate::pull::{resolve, ResolveOptions};

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/daemon")
            .join(name)
    }

    /// Reads a fixture save into a fresh store, as the daemon's stream would be read.
    fn import(name: &str) -> (tempfile::TempDir, Store, Imported) {
        import_as(name, DaemonLayers::Tar)
    }

    fn import_as(name: &str, layers: DaemonLayers) -> (tempfile::TempDir, Store, Imported) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let file = std::fs::File::open(fixture(name)).unwrap();
        let bound = crate::space::DEFAULT_MAX_BLOB_SIZE;
        let image = "registry.invalid/fixtures/x:1";
        let imported = from_save(file, &store, image, bound, layers).unwrap();
        (dir, store, imported)
    }

    /// Every blob in the store is named by the sha256 of its bytes.
    fn assert_content_named(dir: &std::path::Path) {
        for entry in std::fs::read_dir(dir.join("blobs")).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                Digest::of(&bytes).hex(),
                path.file_name().unwrap().to_str().unwrap(),
                "{} is not named by its bytes",
                path.display()
            );
        }
    }

    /// A file of the fixture tar, by name.
    fn entry(name: &str, path: &str) -> Vec<u8> {
        use std::io::Read;
        let mut archive = tar::Archive::new(std::fs::File::open(fixture(name)).unwrap());
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(path) {
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                return bytes;
            }
        }
        panic!("{name} has no {path}");
    }

    /// Resolves the imported image as create would, then checks that every blob the
    /// walker reaches is in the store with its declared size and its own name.
    async fn resolve_all(store: &Store, imported: &Imported) -> super::super::ResolvedImage {
        let reference: Reference = "registry.invalid/fixtures/x:1".parse().unwrap();
        let source = DaemonImage::open(reference, imported, store.clone(), "unix:///test.sock");
        let options = ResolveOptions {
            architecture: "amd64".into(),
            allow_index: false,
            platform_from_index: false,
        };
        let image = resolve(source, store, &options).await.unwrap();
        for (digest, size) in &image.manifests {
            assert!(store.contains(digest, *size), "manifest {digest} missing");
        }
        for blob in image.blobs.iter() {
            assert!(
                store.contains(&blob.digest, blob.size),
                "blob {} missing",
                blob.digest
            );
        }
        image
    }

    /// The daemon's own manifest in the classic-store fixture.
    fn daemon_manifest() -> serde_json::Value {
        let index: serde_json::Value =
            serde_json::from_slice(&entry("oci-classic.tar", "index.json")).unwrap();
        let hex = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_owned();
        serde_json::from_slice(&entry("oci-classic.tar", &format!("blobs/sha256/{hex}"))).unwrap()
    }

    #[tokio::test]
    async fn classic_store_save_gets_a_pkgr_manifest_with_the_layers_as_saved() {
        let (dir, store, imported) = import("oci-classic.tar");
        assert_eq!(imported.format, Format::OciDaemonMade);
        assert_content_named(dir.path());
        let manifest: serde_json::Value = serde_json::from_slice(&imported.bytes).unwrap();
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        // The config and the layers are the daemon's bytes, exactly.
        let daemon_manifest = daemon_manifest();
        assert_eq!(manifest["config"], daemon_manifest["config"]);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        for (ours, theirs) in layers
            .iter()
            .zip(daemon_manifest["layers"].as_array().unwrap())
        {
            assert_eq!(ours["mediaType"], "application/vnd.oci.image.layer.v1.tar");
            assert_eq!(ours["digest"], theirs["digest"]);
            assert_eq!(ours["size"], theirs["size"]);
        }
        let image = resolve_all(&store, &imported).await;
        assert_eq!(image.digest, imported.digest);
        assert_eq!(image.blobs.len(), 3);
        // The same save gives the same manifest, byte for byte.
        assert_eq!(import("oci-classic.tar").2.bytes, imported.bytes);
    }

    #[tokio::test]
    async fn classic_store_save_gets_gzip_layers_when_asked() {
        let (dir, store, imported) = import_as("oci-classic.tar", DaemonLayers::Gzip);
        assert_content_named(dir.path());
        let manifest: serde_json::Value = serde_json::from_slice(&imported.bytes).unwrap();
        let daemon_manifest = daemon_manifest();
        assert_eq!(manifest["config"], daemon_manifest["config"]);
        // Each layer is the gzip of the daemon's uncompressed layer.
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        for (ours, theirs) in layers
            .iter()
            .zip(daemon_manifest["layers"].as_array().unwrap())
        {
            assert_eq!(
                ours["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            let digest: Digest = ours["digest"].as_str().unwrap().parse().unwrap();
            let gz = std::fs::read(store.blob_path(&digest)).unwrap();
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut plain)
                .unwrap();
            assert_eq!(
                format!("sha256:{}", Digest::of(&plain).hex()),
                theirs["digest"].as_str().unwrap()
            );
        }
        let image = resolve_all(&store, &imported).await;
        assert_eq!(image.digest, imported.digest);
        assert_eq!(image.blobs.len(), 3);
        let again = import_as("oci-classic.tar", DaemonLayers::Gzip).2;
        assert_eq!(again.bytes, imported.bytes);
    }

    #[tokio::test]
    async fn containerd_store_save_keeps_the_registry_blobs_and_names_nothing_by_the_image_id() {
        let (dir, store, imported) = import("oci-containerd.tar");
        assert_eq!(imported.format, Format::OciOriginal);
        assert_content_named(dir.path());
        // The root is the nested index, byte for byte.
        let index: serde_json::Value =
            serde_json::from_slice(&entry("oci-containerd.tar", "index.json")).unwrap();
        let root = index["manifests"][0]["digest"].as_str().unwrap();
        assert_eq!(imported.digest.to_string(), root);
        assert_eq!(
            imported.bytes,
            entry(
                "oci-containerd.tar",
                &format!("blobs/sha256/{}", imported.digest.hex())
            )
        );
        // The image ID (the amd64 manifest's digest) names a config in the save; in
        // the store that name holds the manifest, and the config has its own.
        let legacy: serde_json::Value =
            serde_json::from_slice(&entry("oci-containerd.tar", "manifest.json")).unwrap();
        let config_file = legacy[0]["Config"].as_str().unwrap();
        let image_id = config_file.trim_end_matches(".json");
        let config = entry("oci-containerd.tar", config_file);
        let at_id = std::fs::read(store.blob_path(&Digest::from_hex(image_id).unwrap())).unwrap();
        assert_ne!(at_id, config);
        assert_eq!(Digest::of(&at_id).hex(), image_id);
        assert_eq!(
            std::fs::read(store.blob_path(&Digest::of(&config))).unwrap(),
            config
        );

        let image = resolve_all(&store, &imported).await;
        assert_eq!(image.digest.hex(), image_id, "linux/amd64 is picked");
        let layer = image
            .blobs
            .iter()
            .find(|b| b.media_type.ends_with("tar+gzip"))
            .unwrap();
        let gz = std::fs::read(store.blob_path(&layer.digest)).unwrap();
        assert_eq!(
            gz,
            entry(
                "oci-containerd.tar",
                &format!("blobs/sha256/{}", layer.digest.hex())
            )
        );
    }

    #[tokio::test]
    async fn an_index_digest_from_the_daemon_follows_the_registry_rules() {
        let (_dir, store, imported) = import("oci-containerd.tar");
        let pinned: Reference = format!("registry.invalid/fixtures/x@{}", imported.digest)
            .parse()
            .unwrap();
        let source = DaemonImage::open(pinned, &imported, store.clone(), "unix:///test.sock");
        let mut options = ResolveOptions {
            architecture: "amd64".into(),
            allow_index: false,
            platform_from_index: false,
        };
        // Refused with the listing, as from a registry: two platforms, one attestation.
        match resolve(source.clone(), &store, &options).await {
            Err(PullError::IndexRefused { platforms, .. }) => {
                assert_eq!(platforms.len(), 2);
                assert_eq!(platforms[0].0.attestations.len(), 1);
            }
            other => panic!("expected the index to be refused, got {other:?}"),
        }
        // --allow-index asks for every platform, and the daemon never pulled arm64.
        options.allow_index = true;
        match resolve(source, &store, &options).await {
            Err(PullError::Daemon(missing)) => {
                assert!(matches!(*missing, DaemonError::Missing { .. }), "{missing}")
            }
            other => panic!("expected a missing manifest, got {other:?}"),
        }
    }
}
