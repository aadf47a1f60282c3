//! `inspect oci://…`: the summary of a published package, the one `inspect` gives of
//! the file, from the artifact's manifest and its small layers alone: the definition,
//! `index.json`, the signature files, and the manifests and configs the summary needs,
//! asked for round by round as the manifests read so far name them. No image layer is
//! downloaded.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::address::Address;
use super::artifact::{Artifact, PackageFile};
use super::fetch::{artifact, small};
use super::PublishError;
use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::package::reader::{classify, Known, MAX_METADATA_BYTES, MAX_SIGNATURE_BYTES};
use crate::package::signature::SignedParts;
use crate::package::summary::{documents_needed, summarize_documents, Summary};
use crate::package::PackageError;
use crate::progress::Reporter;
use crate::registry::{Credentials, Registry, Transport};
use crate::store::layout::LayoutIndex;

/// The most manifests and configs read in all, as a package reader keeps at most.
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;
/// Documents asked for at once.
const IN_FLIGHT: usize = 8;

pub async fn summarize_published(
    address: &Address,
    transport: &crate::registry::Transport,
    credentials: Credentials,
    reporter: &dyn Reporter,
) -> Result<Summary, PublishError> {
    let registry = connect(address, transport, credentials).await?;
    let artifact = artifact(&registry, address).await?;
    let (zarf, definition) = match (artifact.file("pkgr.yaml"), artifact.file("zarf.yaml")) {
        (Some(file), _) => (false, file),
        (None, Some(file)) => (true, file),
        (None, None) => return Err(PackageError::NoDefinition.into()),
    };
    let definition = small(&registry, address, definition, MAX_METADATA_BYTES, reporter).await?;
    let index_file = artifact
        .file("images/index.json")
        .ok_or(PackageError::NoIndex)?;
    let index_bytes = small(&registry, address, index_file, MAX_METADATA_BYTES, reporter).await?;
    let index: LayoutIndex =
        serde_json::from_slice(&index_bytes).map_err(PackageError::BadIndex)?;
    let blobs: HashMap<&Digest, &PackageFile> = artifact
        .files
        .iter()
        .filter(|f| f.name.starts_with("images/blobs/"))
        .map(|f| (&f.digest, f))
        .collect();
    let mut docs = BTreeMap::new();
    let mut asked = HashSet::new();
    let mut kept = 0u64;
    loop {
        let wanted: Vec<&PackageFile> = documents_needed(zarf, &definition, &index, &docs)
            .into_iter()
            .filter(|digest| asked.insert(digest.clone()))
            .filter_map(|digest| blobs.get(&digest).copied())
            .collect();
        if wanted.is_empty() {
            break;
        }
        kept = wanted.iter().fold(kept, |a, f| a.saturating_add(f.size));
        if kept > MAX_DOCUMENT_BYTES {
            return Err(PackageError::TooMuchMetadata {
                limit: MAX_DOCUMENT_BYTES,
            }
            .into());
        }
        // The futures made first, as in `pull`.
        let fetches: Vec<_> = wanted
            .into_iter()
            .map(|file| document(&registry, address, file, reporter))
            .collect();
        let fetched: Vec<(Digest, Vec<u8>)> = stream::iter(fetches)
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        docs.extend(fetched);
    }
    let mut summary = summarize_documents(zarf, &definition, &index, &docs)?;
    summary.signed =
        signed_parts(&registry, address, &artifact, zarf, definition, reporter).await?;
    Ok(summary)
}

/// What a check of the package's signature needs: the definition, the digest of
/// `checksums.txt` as the manifest names it (so that file is not downloaded), and the
/// signature files, small enough to fetch.
async fn signed_parts(
    registry: &Registry,
    address: &Address,
    artifact: &Artifact,
    zarf: bool,
    definition: Vec<u8>,
    reporter: &dyn Reporter,
) -> Result<SignedParts, PublishError> {
    let mut signed = SignedParts {
        zarf,
        definition: Some(definition),
        ..SignedParts::default()
    };
    for file in &artifact.files {
        match classify(&file.name) {
            Ok(Known::Checksums) => signed.checksums = Some(file.digest.clone()),
            Ok(Known::Signature) => {
                let bytes = small(registry, address, file, MAX_SIGNATURE_BYTES, reporter).await?;
                signed.signatures.insert(file.name.clone(), bytes);
            }
            _ => {}
        }
    }
    Ok(signed)
}

/// A manifest or config, with its digest.
async fn document(
    registry: &Registry,
    address: &Address,
    file: &PackageFile,
    reporter: &dyn Reporter,
) -> Result<(Digest, Vec<u8>), PublishError> {
    let bytes = small(registry, address, file, MAX_MANIFEST_BYTES, reporter).await?;
    Ok((file.digest.clone(), bytes))
}

async fn connect(
    address: &Address,
    transport: &Transport,
    credentials: Credentials,
) -> Result<Registry, PublishError> {
    let registries = [address.registry().to_owned()].into();
    Ok(Registry::connect(transport, &registries, credentials).await?)
}
