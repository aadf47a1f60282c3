//! A blob's bytes, read from the package at their offset on a blocking thread and sent
//! in chunks of at most 1 MiB (buffers shared by every stream and used again; one made
//! anew for a small blob is only its size) through a channel that holds two, so a
//! slow client holds back the reader rather than filling memory. At most
//! [`MAX_READERS`] readers (streams and hashes) are open at once, whatever the number
//! of clients; others wait for one to finish. So memory is bounded by the readers'
//! buffers (a zstd frame's window each) and not by the package's size or the number
//! of clients.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::answer::Body;
use crate::chunks::ChunkPool;
use crate::package::reader::PackageBytes;

/// Package readers open at once.
pub const MAX_READERS: usize = 8;
const CHUNK_BYTES: usize = 1024 * 1024;
const CHUNKS_IN_FLIGHT: usize = 2;

/// The package, the permits to read it, and the chunk buffers every stream shares.
#[derive(Clone)]
pub struct Readers {
    package: Arc<PackageBytes>,
    permits: Arc<Semaphore>,
    chunks: ChunkPool,
}

impl Readers {
    pub fn new(package: Arc<PackageBytes>) -> Self {
        Self {
            package,
            permits: Arc::new(Semaphore::new(MAX_READERS)),
            chunks: ChunkPool::new(CHUNK_BYTES),
        }
    }

    pub fn package(&self) -> Arc<PackageBytes> {
        self.package.clone()
    }

    pub async fn permit(&self) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// `len` bytes of the tar from `offset`, as a body. The reader starts once a permit
    /// is free; it stops when the client goes away.
    pub fn body(&self, offset: u64, len: u64) -> Body {
        let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let readers = self.clone();
        tokio::spawn(async move {
            let permit = readers.permit().await;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                send_chunks(&readers, offset, len, &sender);
            });
        });
        Body::chunks(receiver, len)
    }
}

fn send_chunks(
    readers: &Readers,
    offset: u64,
    len: u64,
    sender: &mpsc::Sender<std::io::Result<Bytes>>,
) {
    let mut reader = match readers.package.read_at(offset, len) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = sender.blocking_send(Err(e));
            return;
        }
    };
    let mut left = len;
    while left > 0 {
        let want = left.min(CHUNK_BYTES as u64);
        let chunk = match readers.chunks.fill(&mut reader, want as usize) {
            Ok(chunk) if chunk.len() as u64 == want => chunk,
            Ok(_) => {
                let short = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                let _ = sender.blocking_send(Err(short));
                return;
            }
            Err(e) => {
                let _ = sender.blocking_send(Err(e));
                return;
            }
        };
        left -= want;
        if sender.blocking_send(Ok(chunk)).is_err() {
            return; // The client went away.
        }
    }
}
