//! One layer of a published package brought from the registry into a sink (a file, or
//! memory for the small ones inspect reads), hashed as it arrives: bytes past the
//! declared size stop it at once, and a whole that does not hash to the layer's digest
//! is an error naming the file. A body cut short is resumed from where it stopped (or
//! started over when the registry ignores the range), a few times.

use std::io::{self, Seek, Write};

use futures_util::StreamExt;

use super::address::Address;
use super::artifact::{Artifact, PackageFile};
use super::PublishError;
use crate::digest::Hasher;
use crate::progress::Reporter;
use crate::registry::{backoff, Registry, MAX_ATTEMPTS};

/// Where a layer's bytes go.
pub(super) trait Sink {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Forgets every byte put so far.
    fn restart(&mut self) -> io::Result<()>;
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl Sink for std::fs::File {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn restart(&mut self) -> io::Result<()> {
        self.set_len(0)?;
        self.rewind()
    }
}

/// Brings `file`'s layer from `address`'s repository into `sink`, checked against its
/// digest and size.
pub(super) async fn fetch(
    registry: &Registry,
    address: &Address,
    file: &PackageFile,
    sink: &mut (dyn Sink + Send),
    reporter: &dyn Reporter,
) -> Result<(), PublishError> {
    let damaged = |found: String| PublishError::Damaged {
        address: address.to_string(),
        name: file.name.clone(),
        found,
    };
    let output = |source| PublishError::Output {
        path: file.name.clone().into(),
        source,
    };
    let mut hasher = Hasher::default();
    let mut attempt = 0;
    loop {
        let from = hasher.bytes_hashed();
        let (mut body, ranged) = registry
            .blob(address.reference(), &file.digest, from)
            .await?;
        if !ranged && from > 0 {
            sink.restart().map_err(output)?;
            reporter.blob_discarded(&file.digest, from);
            hasher = Hasher::default();
        }
        let mut cut = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    cut = Some(err);
                    break;
                }
            };
            if hasher.bytes_hashed() + chunk.len() as u64 > file.size {
                return Err(damaged(format!("it runs past its {} bytes", file.size)));
            }
            hasher.update(&chunk);
            sink.put(&chunk).map_err(output)?;
            reporter.blob_progress(&file.digest, chunk.len() as u64);
        }
        match cut {
            None => break,
            Some(_) if attempt + 1 < MAX_ATTEMPTS && !crate::cancel::is_cancelled() => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            Some(source) => {
                return Err(PublishError::Download {
                    address: address.to_string(),
                    name: file.name.clone(),
                    source,
                })
            }
        }
    }
    if hasher.bytes_hashed() != file.size {
        let read = hasher.bytes_hashed();
        return Err(damaged(format!("it holds {read} bytes, not {}", file.size)));
    }
    let actual = hasher.finish();
    if actual != file.digest {
        return Err(damaged(format!("its bytes hash to {actual}")));
    }
    Ok(())
}

/// The artifact at `address`: its manifest read and checked to be a package pkgr
/// published.
pub(super) async fn artifact(
    registry: &Registry,
    address: &Address,
) -> Result<Artifact, PublishError> {
    let (bytes, _) = registry.manifest(address.reference()).await?;
    Artifact::from_manifest(&bytes).map_err(|reason| PublishError::NotAPackage {
        address: address.to_string(),
        reason,
    })
}

/// A layer small enough to hold in memory: refused unread when it declares more than
/// `limit` bytes.
pub(super) async fn small(
    registry: &Registry,
    address: &Address,
    file: &PackageFile,
    limit: u64,
    reporter: &dyn Reporter,
) -> Result<Vec<u8>, PublishError> {
    if file.size > limit {
        return Err(PublishError::TooLarge {
            address: address.to_string(),
            name: file.name.clone(),
            size: file.size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(file.size as usize);
    fetch(registry, address, file, &mut bytes, reporter).await?;
    Ok(bytes)
}
