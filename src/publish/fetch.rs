//! One layer of a published package brought from the registry into a sink (a file, or
//! memory for the small ones inspect reads): bytes past the declared size stop it at
//! once, and, when it is hashed as it arrives, a whole that does not hash to the
//! layer's digest is an error naming the file. (`pull` leaves the hashing to the
//! package it rebuilds, which must hash to the published sha256.) A body cut short is
//! resumed from where it stopped (or started over when the registry ignores the
//! range), a few times.

use std::io;

use bytes::Bytes;

use futures_util::StreamExt;

use super::address::Address;
use super::artifact::{Artifact, PackageFile};
use super::PublishError;
use crate::digest::Hasher;
use crate::progress::Reporter;
use crate::registry::{backoff, Registry, MAX_ATTEMPTS};

/// Where a layer's bytes go.
pub(super) trait Sink {
    /// Takes the next bytes of the layer; may wait (for a reader to make room).
    async fn put(&mut self, bytes: Bytes) -> io::Result<()>;
    /// The registry sends the layer again from its first byte.
    fn restart(&mut self) -> io::Result<()>;
}

impl Sink for Vec<u8> {
    async fn put(&mut self, bytes: Bytes) -> io::Result<()> {
        self.extend_from_slice(&bytes);
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
}

/// Bytes only hashed (by [`fetch`]) and dropped: a layer checked again.
impl Sink for io::Sink {
    async fn put(&mut self, _: Bytes) -> io::Result<()> {
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether a layer is hashed as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Against its digest and size.
    Digest,
    /// Against its size only: its bytes are checked later, as part of a larger whole.
    Size,
}

/// Brings `file`'s layer from `address`'s repository into `sink`, checked as `check`
/// says.
pub(super) async fn fetch(
    registry: &Registry,
    address: &Address,
    file: &PackageFile,
    sink: &mut impl Sink,
    check: Check,
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
    let mut received: u64 = 0;
    let mut attempt = 0;
    loop {
        let from = received;
        let (mut body, ranged) = registry
            .blob(address.reference(), &file.digest, from)
            .await?;
        if !ranged && from > 0 {
            sink.restart().map_err(output)?;
            reporter.blob_discarded(&file.digest, from);
            hasher = Hasher::default();
            received = 0;
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
            if received + chunk.len() as u64 > file.size {
                return Err(damaged(format!("it runs past its {} bytes", file.size)));
            }
            if check == Check::Digest {
                hasher.update(&chunk);
            }
            let len = chunk.len() as u64;
            received += len;
            sink.put(chunk).await.map_err(output)?;
            reporter.blob_progress(&file.digest, len);
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
    if received != file.size {
        return Err(damaged(format!(
            "it holds {received} bytes, not {}",
            file.size
        )));
    }
    if check == Check::Size {
        return Ok(());
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
    fetch(registry, address, file, &mut bytes, Check::Digest, reporter).await?;
    Ok(bytes)
}
