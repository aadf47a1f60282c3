//! Two packages compared from their heads alone (their summaries, read side by side):
//! which images NEW adds, removes or changes (the same reference, another digest)
//! against OLD, and the blobs and bytes each image of NEW brings that OLD does not hold.
//! OLD holds a blob when any of its images reaches it (manifests, configs and layers,
//! by digest), whether or not it carries the bytes: a differential package describes
//! every blob it leaves out. No blob is read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::summary::{summarize, Summary, SummaryImage};
use super::PackageError;
use crate::digest::Digest;
use crate::hint::{Fix, Hint};
use crate::manifest::Kind;
use crate::parallel::{self, Panicked, Stopped};

/// The version of the JSON document a [`Diff`] serializes to; raised when a field
/// changes meaning or goes away (new fields may come without it).
pub const SCHEMA_VERSION: u32 = 1;

/// What the summary calls an `index.json` entry that names no reference.
const UNNAMED: &str = "(unnamed)";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    pub schema_version: u32,
    pub old: PackageSide,
    pub new: PackageSide,
    /// The changed images, then the added, then the removed, each in package order.
    pub images: Vec<ImageDiff>,
    pub totals: DiffTotals,
}

/// One of the two packages, as `inspect` names and counts it.
#[derive(Debug, Serialize)]
pub struct PackageSide {
    pub format: &'static str,
    pub name: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub images: usize,
    /// Blobs its images reach, each once, and their bytes.
    pub blobs: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The same reference in both, with another digest in NEW.
    Changed,
    /// A reference only NEW has.
    Added,
    /// A reference only OLD has.
    Removed,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Changed => "changed",
            Self::Added => "added",
            Self::Removed => "removed",
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDiff {
    pub change: Change,
    pub reference: String,
    /// NEW's image, or OLD's for a removed one.
    pub kind: Kind,
    pub platform: Option<String>,
    pub old_digest: Option<Digest>,
    pub new_digest: Option<Digest>,
    /// Blobs the image reaches in NEW that OLD does not hold, each once for this image
    /// (a blob two images share counts in both), and their bytes; 0 for a removed one.
    pub new_blobs: usize,
    pub new_bytes: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffTotals {
    pub changed: usize,
    pub added: usize,
    pub removed: usize,
    /// References whose digest is the same in both.
    pub unchanged: usize,
    /// Blobs NEW reaches that OLD does not hold, each digest once across all images.
    pub new_blobs: usize,
    pub new_bytes: u64,
}

/// Which of the two packages an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Old,
    New,
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Old => "old",
            Self::New => "new",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The error `inspect` gives for this package, with which one and where it is.
    #[error("{which} package {}: {source}", path.display())]
    Package {
        which: Which,
        path: PathBuf,
        #[source]
        source: Box<PackageError>,
    },
    /// A reading thread panicked: a bug in pkgr.
    #[error("internal error while reading the packages to compare")]
    Panicked(#[source] Panicked),
}

impl Hint for DiffError {
    fn hint(&self) -> Option<Fix> {
        match self {
            Self::Package { source, .. } => source.hint(),
            Self::Panicked(_) => Some(Fix::ReportBug),
        }
    }
}

/// Reads both packages' heads, side by side, and compares them. When both fail, the
/// error is OLD's.
pub fn diff(old: &Path, new: &Path) -> Result<Diff, DiffError> {
    let packages = [(Which::Old, old), (Which::New, new)];
    let read = parallel::try_map(&packages, |&(which, path)| {
        summarize(path).map_err(|source| DiffError::Package {
            which,
            path: path.to_owned(),
            source: Box::new(source),
        })
    });
    match read {
        Ok(summaries) => match <[Summary; 2]>::try_from(summaries) {
            Ok([old, new]) => Ok(compare(&old, &new)),
            Err(_) => unreachable!("one summary per package"),
        },
        Err(Stopped::Failed(err)) => Err(err),
        Err(Stopped::Panicked(panicked)) => Err(DiffError::Panicked(panicked)),
    }
}

/// The comparison of two summaries.
pub fn compare<'a>(old: &'a Summary, new: &'a Summary) -> Diff {
    let held: BTreeSet<&Digest> = old.images.iter().flat_map(|i| i.blobs.keys()).collect();
    let mut images = Vec::new();
    let mut unchanged = 0;
    for Group {
        old: olds,
        new: news,
    } in by_reference(old, new)
    {
        let only =
            |these: &[&'a SummaryImage], others: &[&SummaryImage]| -> Vec<&'a SummaryImage> {
                let kept = |i: &&SummaryImage| !others.iter().any(|o| o.digest == i.digest);
                these.iter().copied().filter(kept).collect()
            };
        let gone = only(&olds, &news);
        let came = only(&news, &olds);
        unchanged += news.len() - came.len();
        // One reference with several digests (several platforms' entries): each gone
        // digest is paired with a new one in order, the rest are removed or added.
        for i in 0..gone.len().max(came.len()) {
            images.push(image_diff(
                gone.get(i).copied(),
                came.get(i).copied(),
                &held,
            ));
        }
    }
    images.sort_by_key(|i| i.change);
    let mut added = BTreeMap::new();
    for image in &new.images {
        added.extend(image.blobs.iter().filter(|(d, _)| !held.contains(d)));
    }
    let count = |change| images.iter().filter(|i| i.change == change).count();
    let totals = DiffTotals {
        changed: count(Change::Changed),
        added: count(Change::Added),
        removed: count(Change::Removed),
        unchanged,
        new_blobs: added.len(),
        new_bytes: added.values().fold(0u64, |a, b| a.saturating_add(**b)),
    };
    Diff {
        schema_version: SCHEMA_VERSION,
        old: side(old),
        new: side(new),
        images,
        totals,
    }
}

/// One key's images in OLD and in NEW, each digest once.
#[derive(Default)]
struct Group<'a> {
    old: Vec<&'a SummaryImage>,
    new: Vec<&'a SummaryImage>,
}

/// The images grouped by key (a reference, or the digest of an entry that has none),
/// keys in NEW's order, then OLD's.
fn by_reference<'a>(old: &'a Summary, new: &'a Summary) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    let images = (new.images.iter().map(|i| (Which::New, i)))
        .chain(old.images.iter().map(|i| (Which::Old, i)));
    for (which, image) in images {
        let index = *at.entry(key(image)).or_insert_with(|| {
            groups.push(Group::default());
            groups.len() - 1
        });
        let group = &mut groups[index];
        let list = match which {
            Which::Old => &mut group.old,
            Which::New => &mut group.new,
        };
        if !list.iter().any(|i| i.digest == image.digest) {
            list.push(image);
        }
    }
    groups
}

fn key(image: &SummaryImage) -> String {
    match image.reference.as_str() {
        UNNAMED => image.digest.to_string(),
        reference => reference.to_owned(),
    }
}

fn image_diff(
    old: Option<&SummaryImage>,
    new: Option<&SummaryImage>,
    held: &BTreeSet<&Digest>,
) -> ImageDiff {
    let change = match (old, new) {
        (Some(_), Some(_)) => Change::Changed,
        (None, _) => Change::Added,
        (Some(_), None) => Change::Removed,
    };
    let shown = new.or(old).expect("an image on one side at least");
    let brought: Vec<u64> = new
        .map(|n| {
            n.blobs
                .iter()
                .filter(|(d, _)| !held.contains(d))
                .map(|(_, size)| *size)
                .collect()
        })
        .unwrap_or_default();
    ImageDiff {
        change,
        reference: shown.reference.clone(),
        kind: shown.kind,
        platform: shown.platform.clone(),
        old_digest: old.map(|o| o.digest.clone()),
        new_digest: new.map(|n| n.digest.clone()),
        new_blobs: brought.len(),
        new_bytes: brought.iter().fold(0u64, |a, b| a.saturating_add(*b)),
    }
}

fn side(summary: &Summary) -> PackageSide {
    let meta = &summary.metadata;
    PackageSide {
        format: summary.format,
        name: meta.name.clone(),
        version: meta.version.clone(),
        architecture: meta.architecture.clone(),
        images: summary.totals.images,
        blobs: summary.totals.blobs,
        bytes: summary.totals.bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::summary::{SummaryMetadata, Totals};
    use crate::testing::{fixture_dir, write_fixture_package};

    fn digest(n: u8) -> Digest {
        Digest::from_hex(&format!("{n:02x}").repeat(32)).unwrap()
    }

    /// An image whose manifest is digest `manifest`, reaching it and `blobs` (digest
    /// number, size).
    fn image(reference: &str, manifest: u8, blobs: &[(u8, u64)]) -> SummaryImage {
        let mut reached: BTreeMap<Digest, u64> = BTreeMap::new();
        reached.insert(digest(manifest), 100);
        reached.extend(blobs.iter().map(|&(n, size)| (digest(n), size)));
        SummaryImage {
            reference: reference.to_owned(),
            digest: digest(manifest),
            media_type: crate::manifest::OCI_MANIFEST.to_owned(),
            kind: Kind::ContainerImage,
            platform: Some("linux/amd64".to_owned()),
            size: reached.values().sum(),
            component: None,
            subject: None,
            relation: None,
            from_index: None,
            blobs: std::sync::Arc::new(reached),
        }
    }

    fn summary(images: Vec<SummaryImage>) -> Summary {
        Summary {
            format: "pkgr",
            metadata: SummaryMetadata {
                name: "p".to_owned(),
                ..SummaryMetadata::default()
            },
            components: Vec::new(),
            images,
            other_files: Vec::new(),
            differential: None,
            signed: Default::default(),
            totals: Totals {
                images: 0,
                blobs: 0,
                bytes: 0,
                shared_bytes: 0,
            },
        }
    }

    #[test]
    fn changed_added_and_removed_images_with_the_bytes_each_adds() {
        let old = summary(vec![
            image("r/app:1", 1, &[(10, 1000), (11, 2000)]),
            image("r/gone:1", 2, &[(12, 3000)]),
            image("r/same:1", 3, &[(10, 1000)]),
        ]);
        let new = summary(vec![
            image("r/same:1", 3, &[(10, 1000)]),
            // Base layer 10 stays, top layer 11 becomes 20; the new image shares 20.
            image("r/app:1", 4, &[(10, 1000), (20, 5000)]),
            image("r/new:1", 5, &[(20, 5000), (21, 7000), (12, 3000)]),
        ]);
        let diff = compare(&old, &new);
        type Row<'a> = (Change, &'a str, Option<Digest>, Option<Digest>, usize, u64);
        let rows: Vec<Row> = diff
            .images
            .iter()
            .map(|i| {
                let (old, new) = (i.old_digest.clone(), i.new_digest.clone());
                (
                    i.change,
                    i.reference.as_str(),
                    old,
                    new,
                    i.new_blobs,
                    i.new_bytes,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    Change::Changed,
                    "r/app:1",
                    Some(digest(1)),
                    Some(digest(4)),
                    2,
                    5100
                ),
                (Change::Added, "r/new:1", None, Some(digest(5)), 3, 12_100),
                (Change::Removed, "r/gone:1", Some(digest(2)), None, 0, 0),
            ]
        );
        // Layer 20 counts in both images, once in the total; layer 12 was in OLD.
        let t = &diff.totals;
        assert_eq!((t.changed, t.added, t.removed, t.unchanged), (1, 1, 1, 1));
        assert_eq!((t.new_blobs, t.new_bytes), (4, 100 + 5000 + 100 + 7000));
        let json = serde_json::to_value(&diff).unwrap();
        assert_eq!(json["schemaVersion"], SCHEMA_VERSION);
        assert_eq!(json["images"][1]["change"], "added");
        assert_eq!(json["images"][1]["oldDigest"], serde_json::Value::Null);
        assert_eq!(json["totals"]["newBytes"], 12_200);
    }

    #[test]
    fn unnamed_entries_are_told_apart_by_digest_and_repeats_count_once() {
        let old = summary(vec![image(UNNAMED, 1, &[]), image("r/a:1", 2, &[])]);
        let new = summary(vec![
            image(UNNAMED, 3, &[]),
            image("r/a:1", 2, &[]),
            image("r/a:1", 2, &[]),
        ]);
        let diff = compare(&old, &new);
        let changes: Vec<Change> = diff.images.iter().map(|i| i.change).collect();
        assert_eq!(changes, vec![Change::Added, Change::Removed]);
        assert_eq!(diff.totals.unchanged, 1);
        assert_eq!((diff.totals.new_blobs, diff.totals.new_bytes), (1, 100));
    }

    #[test]
    fn a_package_against_itself_differs_in_nothing() {
        let dir = fixture_dir();
        let package = write_fixture_package(dir.path(), true);
        let diff = diff(&package, &package).unwrap();
        assert!(diff.images.is_empty(), "{:?}", diff.images);
        assert_eq!(diff.totals.unchanged, 3);
        assert_eq!((diff.totals.new_blobs, diff.totals.new_bytes), (0, 0));
        assert_eq!(diff.old.name, "fixture");
        assert_eq!(diff.new.blobs, 13);
    }

    #[test]
    fn an_unreadable_package_is_named_as_old_or_new() {
        let dir = fixture_dir();
        let package = write_fixture_package(dir.path(), false);
        let junk = dir.path().join("junk.tar");
        std::fs::write(&junk, b"not a package").unwrap();
        for (old, new, which) in [(&junk, &package, Which::Old), (&package, &junk, Which::New)] {
            let err = diff(old, new).unwrap_err();
            assert!(
                matches!(&err, DiffError::Package { which: w, path, .. } if *w == which && path == &junk),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("{which} package {}: ", junk.display())),
                "{err}"
            );
        }
    }
}
