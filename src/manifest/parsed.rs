//! Manifests as the per-image walks of one run see them: each parsed once, on first
//! use, with repeated children listed once, and the walks' work counted against one
//! budget. Without this, a package whose thousands of `index.json` entries share one
//! large index re-parses and re-reads that index for every entry; measured on a 4.5 MB
//! package of that shape, `inspect` ran for over two minutes.

use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, HashMap, HashSet};

use super::walk::WalkError;
use super::Manifest;
use crate::digest::Digest;

/// Nodes that all the walks of one run may visit together. Honest packages visit a
/// few per image, so this allows hundreds of thousands of images' worth, while a
/// package built to make each walk large is refused in well under a second.
pub const WALK_BUDGET: usize = 1 << 22;

/// Lazily parsed manifests, keyed by digest.
pub struct ParsedManifests<'a> {
    parsed: HashMap<&'a Digest, (&'a [u8], OnceCell<Option<Manifest>>)>,
    spent: Cell<usize>,
}

impl<'a> ParsedManifests<'a> {
    pub fn new(docs: &'a BTreeMap<Digest, Vec<u8>>) -> Self {
        Self {
            parsed: docs
                .iter()
                .map(|(digest, bytes)| (digest, (bytes.as_slice(), OnceCell::new())))
                .collect(),
            spent: Cell::new(0),
        }
    }

    /// The manifest with `digest` for walking: `None` if it is absent or does not
    /// parse. Its `manifests` and `layers` keep the first of each repeated
    /// (digest, size), which walks one child as the repeats would; a repeat with
    /// another size stays, so that the walker still reports the conflict.
    pub fn get(&self, digest: &Digest) -> Option<&Manifest> {
        let (bytes, cell) = self.parsed.get(digest)?;
        cell.get_or_init(|| {
            let mut manifest = Manifest::parse(bytes).ok()?;
            let mut kept = HashSet::new();
            manifest
                .manifests
                .retain(|d| kept.insert((d.digest.clone(), d.size)));
            kept.clear();
            manifest
                .layers
                .retain(|d| kept.insert((d.digest.clone(), d.size)));
            Some(manifest)
        })
        .as_ref()
    }

    /// Counts `steps` of walking against [`WALK_BUDGET`].
    pub fn spend(&self, steps: usize) -> Result<(), WalkError> {
        let spent = self.spent.get().saturating_add(steps);
        self.spent.set(spent);
        if spent > WALK_BUDGET {
            return Err(WalkError::OverBudget { limit: WALK_BUDGET });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    #[test]
    fn repeated_children_are_kept_once_unless_their_sizes_differ() {
        let entry = |c: char, size: u64| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{size}}}"#,
                digest(c)
            )
        };
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{},{},{},{}]}}"#,
            entry('a', 1),
            entry('b', 2),
            entry('a', 1),
            entry('a', 3)
        );
        let docs = BTreeMap::from([(digest('f'), index.into_bytes())]);
        let parsed = ParsedManifests::new(&docs);
        let children: Vec<(String, u64)> = parsed
            .get(&digest('f'))
            .unwrap()
            .manifests
            .iter()
            .map(|d| (d.digest.to_string(), d.size))
            .collect();
        assert_eq!(
            children,
            vec![
                (digest('a').to_string(), 1),
                (digest('b').to_string(), 2),
                (digest('a').to_string(), 3)
            ]
        );
        assert!(parsed.get(&digest('0')).is_none());
    }

    #[test]
    fn the_budget_is_shared_by_every_walk() {
        let docs = BTreeMap::new();
        let parsed = ParsedManifests::new(&docs);
        assert!(parsed.spend(WALK_BUDGET - 1).is_ok());
        assert!(parsed.spend(1).is_ok());
        assert!(parsed.spend(1).is_err());
    }
}
