//! Which blobs may be served: every blob is hashed in full once, and its outcome
//! remembered. From the start a background pass hashes them one after another in the
//! package's order, so that the first client seldom waits; a request for a blob that
//! pass has not reached yet hashes it there and then. Whoever comes second waits for
//! that one hash. A read that fails (not a wrong hash) is not remembered, so the next
//! request tries again. Under `--verify` every blob was hashed before the server
//! started, and nothing is hashed again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::contents::Place;
use super::stream::Readers;
use crate::digest::{hash_reader, Digest};

/// What hashing a blob found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    Good,
    /// Its bytes hash to another digest, or there are not as many as its entry says.
    Damaged(String),
}

pub struct Verified {
    all: bool,
    cells: Mutex<HashMap<Digest, Arc<OnceCell<Checked>>>>,
}

impl Verified {
    /// `all`: every blob was verified already.
    pub fn new(all: bool) -> Self {
        Self {
            all,
            cells: Mutex::default(),
        }
    }

    /// Hashes every blob not hashed yet, in the order of their places in the package
    /// (one sequential read of the file), one at a time so that requests keep the
    /// other readers. Returns at once under `--verify`.
    pub async fn check_all(&self, places: &BTreeMap<Digest, Place>, readers: &Readers) {
        if self.all {
            return;
        }
        let mut in_order: Vec<(&Digest, &Place)> = places.iter().collect();
        in_order.sort_by_key(|(_, place)| place.offset);
        for (digest, place) in in_order {
            if crate::cancel::is_cancelled() {
                return;
            }
            // A read that fails is not remembered: the request that wants the blob
            // tries again and reports it.
            let _ = self.check(digest, *place, readers).await;
        }
    }

    /// Whether `digest`'s bytes at `place` hash to it, hashing them once across all
    /// requests. `Err` is a read that failed, said in words.
    pub async fn check(
        &self,
        digest: &Digest,
        place: Place,
        readers: &Readers,
    ) -> Result<Checked, String> {
        if self.all {
            return Ok(Checked::Good);
        }
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(digest.clone()).or_default().clone()
        };
        let checked = cell
            .get_or_try_init(|| hash(digest.clone(), place, readers))
            .await?;
        if let Checked::Damaged(why) = checked {
            super::log::damaged(digest, why);
        }
        Ok(checked.clone())
    }
}

async fn hash(digest: Digest, place: Place, readers: &Readers) -> Result<Checked, String> {
    let package = readers.package();
    let permit = readers.permit().await;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let reader = package
            .read_at(place.offset, place.size)
            .map_err(|e| format!("cannot read blob {digest}: {e}"))?;
        match hash_reader(crate::cancel::Cancellable(reader)) {
            Ok((actual, _)) if actual == digest => Ok(Checked::Good),
            Ok((actual, _)) => Ok(Checked::Damaged(format!("its bytes hash to {actual}"))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Ok(Checked::Damaged("the package ends inside it".to_owned()))
            }
            Err(e) => Err(format!("cannot read blob {digest}: {e}")),
        }
    })
    .await
    .map_err(|e| format!("internal error while hashing {}: {e}", "the blob"))?
}
