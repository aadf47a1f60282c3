//! Gzip for the uncompressed layers that a daemon-made manifest lists: each layer is
//! read from the store and its compressed bytes stream back into it, named by their
//! hash. Layers are compressed in parallel, one per core (flate2 on zlib-rs, the
//! fastest pure-Rust backend); a single large layer still takes one core.
//!
//! The output is deterministic: flate2's gzip header has no file name and mtime 0,
//! and the level is fixed, so the same layer gives the same digest every run.

use std::fs::File;
use std::io::BufReader;

use flate2::read::GzEncoder;
use flate2::Compression;

use crate::digest::Digest;
use crate::parallel::{self, Stopped};
use crate::store::{Store, StoreError};

/// The gzip of each layer, in order, as (digest, size) in the store.
pub fn compress_all(store: &Store, layers: &[Digest]) -> Result<Vec<(Digest, u64)>, StoreError> {
    parallel::try_map(layers, |layer| compress(store, layer))
        // The save is read on a blocking task, whose join reports a panic as an
        // internal error.
        .map_err(Stopped::or_resume_panic)
}

fn compress(store: &Store, layer: &Digest) -> Result<(Digest, u64), StoreError> {
    let path = store.blob_path(layer);
    let file = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
    let gzip = GzEncoder::new(
        crate::cancel::Cancellable(BufReader::with_capacity(256 << 10, file)),
        Compression::default(),
    );
    store.put_unnamed(gzip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn layers_are_compressed_in_order_and_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let inputs: Vec<Vec<u8>> = (0..5u8)
            .map(|i| vec![i; 100_000 + usize::from(i)])
            .collect();
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
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(&plain, input);
        }
    }
}
