//! What `create` made, as a script reads it (`create --json`): the package's path,
//! its size and sha256 (of the whole package: a split one's parts joined), and each
//! image with its digest and platform (and the index it was taken from, if any), from
//! the package's own head. Versioned by [`SCHEMA_VERSION`], raised only when a field
//! changes meaning or goes away.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::parts::part_path;
use super::reader::{is_split, open_split, ReadError};
use super::summary::summarize;
use super::PackageError;
use crate::digest::hash_reader;

pub const SCHEMA_VERSION: u32 = 1;

/// Describes the package at `path` (a file, or a split package's `part000`). Reads the
/// whole package once, to hash it.
pub fn describe(path: &Path) -> Result<serde_json::Value, PackageError> {
    let summary = summarize(path)?;
    let (bytes, sha256) = hash_whole(path)?;
    let images: Vec<serde_json::Value> = summary
        .images
        .iter()
        .map(|image| {
            let mut described = serde_json::json!({
                "reference": image.reference,
                "digest": image.digest,
                "kind": image.kind,
                "platform": image.platform,
                "component": image.component,
            });
            // Only where `platformFromIndex` took the image from an index.
            if let Some(index) = &image.from_index {
                described["fromIndex"] = index.as_str().into();
            }
            described
        })
        .collect();
    Ok(serde_json::json!({
        "schemaVersion": SCHEMA_VERSION,
        "package": path,
        "split": is_split(path),
        "bytes": bytes,
        "sha256": sha256,
        "images": images,
    }))
}

/// The size and sha256 hex of the whole package: a split one's parts joined, as its
/// part000 records them (and checked against it on the way).
fn hash_whole(path: &Path) -> Result<(u64, String), PackageError> {
    let failed = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let reader: Box<dyn Read> = if is_split(path) {
        Box::new(open_split(path).map_err(ReadError::Split)?)
    } else {
        Box::new(File::open(path).map_err(failed)?)
    };
    let (digest, bytes) = hash_reader(crate::cancel::Cancellable(reader)).map_err(failed)?;
    Ok((bytes, digest.hex().to_owned()))
}

/// The size of the package at `path`: a split one's parts added up (from their sizes
/// on disk, nothing read).
pub fn package_bytes(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    if !is_split(path) {
        return size(path);
    }
    let whole = path.with_extension("");
    (1..)
        .map(|n| part_path(&whole, n))
        .take_while(|part| part.is_file())
        .map(|part| size(&part))
        .sum()
}
