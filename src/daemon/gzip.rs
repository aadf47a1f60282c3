//! Gzip for the uncompressed layers of a daemon-made manifest (`--daemon-layers
//! gzip`), on every core even for one large layer: each layer is cut into fixed
//! 4 MiB pieces, each piece becomes one gzip member (flate2 on zlib-rs), pieces are
//! compressed a few per core at a time with `parallel::try_map`, and the members are
//! joined in order, as `pigz --independent` and `bgzip` do. Joined members are one
//! gzip file (RFC 1952 §2.2); Go's, zlib's and flate2's multi-member readers read them
//! all. The compressed bytes stream into the store, named by their hash; only the
//! pieces of one round are held in memory.
//!
//! The output is deterministic: the piece size and the level are fixed (the number of
//! cores decides only how many pieces run at once), and flate2's gzip header has no
//! file name and mtime 0, so the same layer gives the same digest on every machine.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::digest::Digest;
use crate::parallel::{self, Stopped};
use crate::store::{Store, StoreError};

/// The uncompressed bytes of one gzip member. Large enough that the members cost
/// little ratio (about 0.01% against one stream), small enough that a round of them
/// stays a few tens of MiB. Unit tests cut smaller pieces, so that several rounds run
/// in moments on an unoptimized build.
const PIECE: u64 = if cfg!(test) { 64 << 10 } else { 4 << 20 };

/// Pieces per core in one round, so that a slow piece leaves the other cores busy.
const PIECES_PER_WORKER: usize = 2;

/// The gzip of each layer, in order, as (digest, size) in the store.
pub fn compress_all(store: &Store, layers: &[Digest]) -> Result<Vec<(Digest, u64)>, StoreError> {
    layers.iter().map(|layer| compress(store, layer)).collect()
}

fn compress(store: &Store, layer: &Digest) -> Result<(Digest, u64), StoreError> {
    let path = store.blob_path(layer);
    let file = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StoreError::io("read", &path, e))?
        .len();
    store.put_unnamed(crate::cancel::Cancellable(Members {
        file,
        len,
        next: 0,
        ready: Vec::new(),
        at: 0,
    }))
}

/// The gzip members of one file, compressed a round at a time and read in order.
struct Members {
    file: File,
    len: u64,
    /// Where the next round's first piece starts.
    next: u64,
    ready: Vec<u8>,
    at: usize,
}

impl Members {
    /// Compresses the next round of pieces; false when there are none left. An empty
    /// file still gets one (empty) member: zero bytes are not a gzip file.
    fn refill(&mut self) -> io::Result<bool> {
        let per_round = (parallel::workers() * PIECES_PER_WORKER) as u64;
        let first = self.next == 0;
        let starts: Vec<u64> = (0..per_round)
            .map(|i| self.next + i * PIECE)
            .take_while(|&start| start < self.len || (first && start == 0))
            .collect();
        if starts.is_empty() {
            return Ok(false);
        }
        let (file, len) = (&self.file, self.len);
        let members = parallel::try_map(&starts, |&start| {
            member(file, start, PIECE.min(len - start))
        })
        .map_err(Stopped::or_resume_panic)?;
        self.next += starts.len() as u64 * PIECE;
        self.ready = members.concat();
        self.at = 0;
        Ok(true)
    }
}

impl Read for Members {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.ready.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.ready.len() - self.at);
        buf[..n].copy_from_slice(&self.ready[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// One gzip member of the `len` bytes of `file` from `start`.
fn member(file: &File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut plain = vec![0u8; len as usize];
    file.read_exact_at(&mut plain, start)?;
    let mut gzip = GzEncoder::new(
        Vec::with_capacity(plain.len() / 2 + 64),
        Compression::default(),
    );
    gzip.write_all(&plain)?;
    gzip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unzipped(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut plain)
            .unwrap();
        plain
    }

    /// Bytes that do not repeat, as a layer of binaries mostly does not.
    fn varied(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half noise, half text, so that gzip has something to gain.
                if i % 2 == 0 {
                    x as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    #[test]
    fn layers_are_compressed_in_order_and_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let piece = PIECE as usize;
        // Empty, small, exactly one piece, a round and a bit (several members).
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![7; 100_001],
            varied(piece, 1),
            varied(
                piece * (parallel::workers() * PIECES_PER_WORKER) + 12_345,
                2,
            ),
        ];
        let layers: Vec<Digest> = inputs
            .iter()
            .map(|b| store.put_unnamed(&b[..]).unwrap().0)
            .collect();
        let first = compress_all(&store, &layers).unwrap();
        assert_eq!(compress_all(&store, &layers).unwrap(), first);
        for ((digest, size), input) in first.iter().zip(&inputs) {
            let bytes = std::fs::read(store.blob_path(digest)).unwrap();
            assert_eq!(bytes.len() as u64, *size);
            assert_eq!(&Digest::of(&bytes), digest);
            assert_eq!(&unzipped(&bytes), input);
            // Each piece is its own member: gzip's magic at each member's start.
            assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        }
        // The large layer shrank, and is the pieces' members joined, exactly.
        let large = &inputs[3];
        let (digest, size) = &first[3];
        assert!((*size as usize) < large.len());
        let joined: Vec<u8> = large
            .chunks(piece)
            .flat_map(|chunk| {
                let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
                gzip.write_all(chunk).unwrap();
                gzip.finish().unwrap()
            })
            .collect();
        assert_eq!(&Digest::of(&joined), digest);
    }
}
