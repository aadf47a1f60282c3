//! Sealing a staged layout before it ships: every blob is re-hashed in parallel, a
//! misnamed file is renamed to its true digest, and every descriptor reachable from
//! `index.json` must then be present with the right size. Only reachable blobs stay.
//! Blobs this process has just hashed as it wrote them into the store (see
//! [`crate::store::Store::hashed_here`]) are not hashed twice: the cache's blobs from
//! earlier runs, which a crash or a peer may have damaged since, are what the seal
//! is for.
//!
//! A differential package's layout leaves out the configs and layers its base holds:
//! [`seal_leaving_out`] is told which, with their sizes, and finds them expected rather
//! than missing.
//!
//! A misnamed file is not the end: [`SealError::Misnamed`] lists each one with its true
//! digest, after the rename, so the caller can evict the bad source (a cache entry),
//! fetch the named digest again and seal once more.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::graph::{self, Blobs, Fault, Faults};
use super::layout::LayoutIndex;
use crate::cancel::Cancellable;
use crate::digest::{hash_reader, Digest};
use crate::manifest::walk::{Role, WalkError};
use crate::manifest::Manifest;
use crate::parallel::{self, Stopped};

/// A blob whose bytes did not match its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misnamed {
    /// The digest it was stored under, which the package still needs.
    pub named: Digest,
    /// The digest of the bytes it held; the file now has this name.
    pub actual: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{reference}: blob {digest} is missing from the package")]
    Missing { reference: String, digest: Digest },
    #[error("{reference}: blob {digest} holds {actual} bytes, but its descriptor says {expected}")]
    WrongSize {
        reference: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{reference}: manifest {digest} cannot be read: {message}")]
    BadManifest {
        reference: String,
        digest: Digest,
        message: String,
    },
    #[error("{reference}: the manifest graph cannot be followed")]
    Walk {
        reference: String,
        #[source]
        source: WalkError,
    },
    #[error("{} blob(s) did not hold the bytes their names say: {}", misnamed.len(), names(misnamed))]
    Misnamed { misnamed: Vec<Misnamed> },
    #[error("{} has a file whose name is not a sha256 digest", path.display())]
    StrayFile { path: PathBuf },
}

fn names(misnamed: &[Misnamed]) -> String {
    let names: Vec<String> = misnamed.iter().map(|m| m.named.to_string()).collect();
    names.join(", ")
}

/// What the seal proved: each blob's digest and size, and which blobs are manifests
/// or configs rather than layers.
#[derive(Debug, Default)]
pub struct Sealed {
    pub blobs: BTreeMap<Digest, u64>,
    /// Manifests and indexes.
    pub manifests: BTreeSet<Digest>,
    /// Configs.
    pub configs: BTreeSet<Digest>,
}

/// Seals the layout rooted at `root` (holding `index.json` and `blobs/sha256`).
pub fn seal(root: &Path) -> Result<Sealed, SealError> {
    seal_leaving_out(root, &BTreeMap::new(), &BTreeSet::new())
}

/// Seals the layout rooted at `root`, in which the configs and layers of `left_out`
/// (digest and size) are expected to be absent; the blobs of `hashed_here` are
/// taken to hold the bytes their names say, and are only measured.
pub fn seal_leaving_out(
    root: &Path,
    left_out: &BTreeMap<Digest, u64>,
    hashed_here: &BTreeSet<Digest>,
) -> Result<Sealed, SealError> {
    let blobs_dir = root.join("blobs").join("sha256");
    let blobs = rename_misnamed(&blobs_dir, hash_all(&blobs_dir, hashed_here)?)?;
    let index = read_index(&root.join("index.json"))?;
    let checked = graph::check(
        &index,
        &StagedBlobs {
            dir: &blobs_dir,
            blobs: &blobs,
            left_out,
        },
        Faults::First,
    );
    if let Some(fault) = checked.faults.into_iter().next() {
        return Err(fault_error(fault));
    }
    let reached = checked.reached;
    // Only what index.json reaches is packaged: a stored root index whose platform
    // manifest was picked must not ride along.
    for digest in blobs.keys().filter(|d| !reached.contains_key(*d)) {
        let _ = fs::remove_file(blobs_dir.join(digest.hex()));
    }
    let with_role = |role| {
        reached
            .iter()
            .filter(move |(_, r)| **r == role)
            .map(|(digest, _)| digest.clone())
    };
    Ok(Sealed {
        manifests: with_role(Role::Manifest).collect(),
        configs: with_role(Role::Config).collect(),
        blobs: blobs
            .into_iter()
            .filter(|(digest, _)| reached.contains_key(digest))
            .collect(),
    })
}

/// Gives each hashed file (name → true digest and size) the name of its bytes; returns
/// every blob's digest and size, or the misnamed ones as the error.
fn rename_misnamed(
    blobs_dir: &Path,
    hashed: BTreeMap<String, (Digest, u64)>,
) -> Result<BTreeMap<Digest, u64>, SealError> {
    let mut blobs = BTreeMap::new();
    let mut misnamed = Vec::new();
    for (name, (actual, size)) in hashed {
        if name != actual.hex() {
            let from = blobs_dir.join(&name);
            let to = blobs_dir.join(actual.hex());
            // The bytes are good content under the wrong name: keep them under the right
            // one, where the package may need them, and free the name for a refetch.
            if to.exists() {
                fs::remove_file(&from).map_err(|source| SealError::Io { path: from, source })?;
            } else {
                fs::rename(&from, &to).map_err(|source| SealError::Io { path: from, source })?;
            }
            if let Ok(named) = Digest::from_hex(&name) {
                misnamed.push(Misnamed {
                    named,
                    actual: actual.clone(),
                });
            }
        }
        blobs.insert(actual, size);
    }
    if !misnamed.is_empty() {
        return Err(SealError::Misnamed { misnamed });
    }
    Ok(blobs)
}

fn read_index(path: &Path) -> Result<LayoutIndex, SealError> {
    let bytes = fs::read(path).map_err(|source| SealError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| SealError::Io {
        path: path.to_owned(),
        source: e.into(),
    })
}

/// The staged blobs, hashed: sizes from the hashing, manifests read from their files.
struct StagedBlobs<'a> {
    dir: &'a Path,
    blobs: &'a BTreeMap<Digest, u64>,
    left_out: &'a BTreeMap<Digest, u64>,
}

/// Why a staged manifest could not be read.
enum Unreadable {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Parse(String),
}

impl Blobs for StagedBlobs<'_> {
    type Unreadable = Unreadable;

    fn size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).copied()
    }

    fn manifest(&self, digest: &Digest) -> Result<Manifest, Unreadable> {
        let path = self.dir.join(digest.hex());
        let bytes = fs::read(&path).map_err(|source| Unreadable::Io { path, source })?;
        Manifest::parse(&bytes).map_err(|e| Unreadable::Parse(e.to_string()))
    }

    fn left_out(&self, digest: &Digest) -> Option<u64> {
        self.left_out.get(digest).copied()
    }
}

fn fault_error(fault: Fault<Unreadable>) -> SealError {
    match fault {
        Fault::Missing { reference, digest } => SealError::Missing { reference, digest },
        Fault::WrongSize {
            reference,
            digest,
            declared,
            actual,
        } => SealError::WrongSize {
            reference,
            digest,
            expected: declared,
            actual,
        },
        Fault::ManifestUnreadable {
            reason: Unreadable::Io { path, source },
            ..
        } => SealError::Io { path, source },
        Fault::ManifestUnreadable {
            reference,
            digest,
            reason: Unreadable::Parse(message),
        } => SealError::BadManifest {
            reference,
            digest,
            message,
        },
        Fault::Unfollowable { reference, source } => SealError::Walk { reference, source },
    }
}

/// Hashes every file of `dir` on all cores but those of `hashed_here`, which are
/// only measured; returns name → (true digest, size).
fn hash_all(
    dir: &Path,
    hashed_here: &BTreeSet<Digest>,
) -> Result<BTreeMap<String, (Digest, u64)>, SealError> {
    let io = |source| SealError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if Digest::from_hex(&name).is_err() {
            return Err(SealError::StrayFile { path: entry.path() });
        }
        names.push(name);
    }
    let hashed = parallel::try_map(&names, |name| {
        let path = dir.join(name);
        let known = Digest::from_hex(name)
            .ok()
            .filter(|digest| hashed_here.contains(digest));
        match known {
            Some(digest) => fs::metadata(&path).map(|meta| (digest, meta.len())),
            None => fs::File::open(&path).and_then(|file| hash_reader(Cancellable(file))),
        }
        .map_err(|source| SealError::Io { path, source })
    })
    // The seal runs on a blocking task, whose join reports a panic as an internal error.
    .map_err(Stopped::or_resume_panic)?;
    Ok(names.into_iter().zip(hashed).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{blob_path, digest, digests, fixture_dir};

    #[test]
    fn seals_the_fixture_and_sorts_its_blobs() {
        let dir = fixture_dir();
        let sealed = seal(&dir.path().join("images")).unwrap();
        assert_eq!(sealed.blobs.len(), 13);
        // web, chart, the index and its two platform manifests.
        assert_eq!(sealed.manifests.len(), 5);
        assert!(sealed.manifests.contains(&digest(digests::MULTI)));
        // web and multi/amd64 share one config; arm64 and the chart have their own.
        assert_eq!(sealed.configs.len(), 3);
    }

    #[test]
    fn only_reachable_blobs_stay() {
        let dir = fixture_dir();
        let stray = Digest::of(b"not reachable from index.json");
        std::fs::write(
            blob_path(dir.path(), &stray.to_string()),
            b"not reachable from index.json",
        )
        .unwrap();
        let sealed = seal(&dir.path().join("images")).unwrap();
        assert!(!sealed.blobs.contains_key(&stray));
        assert!(!blob_path(dir.path(), &stray.to_string()).exists());
    }

    #[test]
    fn a_misnamed_blob_is_renamed_to_its_true_digest_and_reported() {
        let dir = fixture_dir();
        // The chart's manifest file now holds the web manifest's bytes, and the web
        // manifest's own file is gone: only the rename can bring it back.
        let web = blob_path(dir.path(), digests::WEB);
        let chart = blob_path(dir.path(), digests::CHART);
        std::fs::rename(&web, &chart).unwrap();
        let err = seal(&dir.path().join("images")).unwrap_err();
        let SealError::Misnamed { misnamed } = err else {
            panic!("expected Misnamed, got {err}");
        };
        assert_eq!(
            misnamed,
            vec![Misnamed {
                named: digest(digests::CHART),
                actual: digest(digests::WEB),
            }]
        );
        assert_eq!(
            Digest::of(&std::fs::read(&web).unwrap()),
            digest(digests::WEB),
            "the bytes are kept under their true name"
        );
        assert!(!chart.exists(), "the wrong name is freed for a fetch");
    }

    /// A layer of the sealed fixture: neither a manifest nor a config.
    fn some_layer(sealed: &Sealed) -> Digest {
        sealed
            .blobs
            .keys()
            .find(|d| !sealed.manifests.contains(*d) && !sealed.configs.contains(*d))
            .unwrap()
            .clone()
    }

    #[test]
    fn blobs_hashed_here_are_measured_not_hashed_again() {
        let dir = fixture_dir();
        let root = dir.path().join("images");
        let sealed = seal(&root).unwrap();
        let layer = some_layer(&sealed);
        // The same size, other bytes: only a hash tells them apart.
        let path = blob_path(dir.path(), &layer.to_string());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let hashed_here = BTreeSet::from([layer.clone()]);
        let trusted = seal_leaving_out(&root, &BTreeMap::new(), &hashed_here).unwrap();
        assert_eq!(trusted.blobs[&layer], bytes.len() as u64);
        let err = seal(&root).unwrap_err();
        assert!(
            matches!(&err, SealError::Misnamed { misnamed } if misnamed[0].named == layer),
            "{err}"
        );
    }

    #[test]
    fn a_missing_blob_names_its_image() {
        let dir = fixture_dir();
        std::fs::remove_file(blob_path(dir.path(), digests::CHART)).unwrap();
        let err = seal(&dir.path().join("images")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "registry.test/charts/demo:0.1.0: blob {} is missing from the package",
                digests::CHART
            )
        );
    }

    #[test]
    fn a_left_out_layer_is_expected_but_a_left_out_manifest_is_still_missing() {
        let dir = fixture_dir();
        let root = dir.path().join("images");
        let sealed = seal(&root).unwrap();
        let layer = some_layer(&sealed);
        let size = sealed.blobs[&layer];
        std::fs::remove_file(blob_path(dir.path(), &layer.to_string())).unwrap();
        let left_out = BTreeMap::from([(layer.clone(), size)]);
        let sealed = seal_leaving_out(&root, &left_out, &BTreeSet::new()).unwrap();
        assert!(!sealed.blobs.contains_key(&layer));
        assert_eq!(sealed.blobs.len(), 12);
        // Listed with another size than its descriptor's: a fault, not a pass.
        let wrong = BTreeMap::from([(layer.clone(), size + 1)]);
        assert!(matches!(
            seal_leaving_out(&root, &wrong, &BTreeSet::new()),
            Err(SealError::WrongSize { .. })
        ));
        // A manifest is never left out.
        std::fs::remove_file(blob_path(dir.path(), digests::CHART)).unwrap();
        let with_chart = BTreeMap::from([(layer, size), (digest(digests::CHART), 1)]);
        assert!(matches!(
            seal_leaving_out(&root, &with_chart, &BTreeSet::new()),
            Err(SealError::Missing { .. })
        ));
    }

    #[test]
    fn a_blob_of_the_wrong_size_is_refused() {
        let dir = fixture_dir();
        let index_path = dir.path().join("images/index.json");
        let index = std::fs::read_to_string(&index_path).unwrap();
        // The web entry declares one byte more than its manifest has.
        let web = std::fs::metadata(blob_path(dir.path(), digests::WEB))
            .unwrap()
            .len();
        let needle = format!("\"digest\": \"{}\",\n      \"size\": {web}", digests::WEB);
        assert!(index.contains(&needle), "fixture layout changed");
        let wrong = format!(
            "\"digest\": \"{}\",\n      \"size\": {}",
            digests::WEB,
            web + 1
        );
        std::fs::write(&index_path, index.replace(&needle, &wrong)).unwrap();
        let err = seal(&dir.path().join("images")).unwrap_err();
        assert!(
            matches!(err, SealError::WrongSize { expected, actual, .. } if expected == web + 1 && actual == web),
            "{err}"
        );
    }
}
