//! Which manifests and configs a summary still needs, kept up to date as the package's
//! entries stream past. Each manifest is read for its children once, when it arrives,
//! so the bookkeeping stays linear in the package however its graph is shared (it was
//! re-walked from `index.json` for every blob entry). A config a differential package
//! leaves out is never awaited.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::digest::Digest;
use crate::manifest::walk::LIMITS;
use crate::manifest::{Kind, Manifest};
use crate::store::layout::LayoutIndex;

#[derive(Debug, Default)]
pub struct Needed {
    /// Reached from `index.json` but not yet read.
    pub manifests: BTreeSet<Digest>,
    /// Configs of container images read so far, not yet read themselves.
    pub configs: BTreeSet<Digest>,
    /// Manifests whose children have been taken into account.
    followed: HashSet<Digest>,
    /// Configs left out of a differential package: they never arrive.
    left_out: BTreeSet<Digest>,
    /// Set when the graph outgrows the walker's bounds: the summary's own walk reports
    /// that, so tracking stops here.
    given_up: bool,
}

impl Needed {
    /// What `index` needs, given the documents read so far and the blobs left out of
    /// the package.
    pub fn from_index(
        index: &LayoutIndex,
        docs: &BTreeMap<Digest, Vec<u8>>,
        left_out: BTreeSet<Digest>,
    ) -> Self {
        let mut needed = Self {
            left_out,
            ..Self::default()
        };
        for entry in &index.manifests {
            needed.reach(entry.digest.clone(), docs);
        }
        needed
    }

    /// Takes `digest`, just read into `docs`, into account.
    pub fn arrived(&mut self, digest: &Digest, docs: &BTreeMap<Digest, Vec<u8>>) {
        self.configs.remove(digest);
        if self.manifests.remove(digest) {
            self.reach(digest.clone(), docs);
        }
    }

    /// Whether `digest` is a manifest or config that is still needed.
    pub fn wants(&self, digest: &Digest) -> bool {
        self.manifests.contains(digest) || self.configs.contains(digest)
    }

    /// Whether nothing more is needed (or tracking gave up).
    pub fn is_complete(&self) -> bool {
        self.given_up || (self.manifests.is_empty() && self.configs.is_empty())
    }

    /// Whether some manifest is still to come, so any small blob may be its config.
    pub fn awaits_manifests(&self) -> bool {
        !self.given_up && !self.manifests.is_empty()
    }

    /// Follows the manifest `root` and every manifest below it that is already in
    /// `docs`, recording what is missing.
    fn reach(&mut self, root: Digest, docs: &BTreeMap<Digest, Vec<u8>>) {
        let mut stack = vec![root];
        while let Some(digest) = stack.pop() {
            if self.given_up || self.followed.contains(&digest) {
                continue;
            }
            if self.followed.len() + self.manifests.len() + self.configs.len() >= LIMITS.nodes {
                self.given_up = true;
                return;
            }
            let Some(bytes) = docs.get(&digest) else {
                self.manifests.insert(digest);
                continue;
            };
            self.followed.insert(digest);
            // A manifest that does not parse is reported by the summary's walk.
            let Ok(manifest) = Manifest::parse(bytes) else {
                continue;
            };
            if manifest.kind() == Kind::ContainerImage {
                if let Some(config) = &manifest.config {
                    if !docs.contains_key(&config.digest) && !self.left_out.contains(&config.digest)
                    {
                        self.configs.insert(config.digest.clone());
                    }
                }
            }
            stack.extend(
                manifest
                    .manifests
                    .iter()
                    .map(|d| d.digest.clone())
                    .filter(|d| !self.followed.contains(d)),
            );
        }
    }
}
