//! Reading a `docker save` tar as it arrives. Every file that may be a blob streams
//! straight into the store and is named there by its own hash; the save's file
//! names are kept only as keys for finding those digests again once the save's
//! metadata (`index.json`, `manifest.json`: the legacy format writes it last) has
//! been read. Nothing is held in memory but that metadata.

use std::collections::HashMap;
use std::io::Read;

use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::store::Store;

/// What one save held.
#[derive(Debug, Default)]
pub struct Saved {
    /// Each stored file by its path in the save, with the digest and size of its bytes.
    files: HashMap<String, (Digest, u64)>,
    /// Symbolic links (the legacy format links a repeated layer to its first copy),
    /// each resolved to the path it points at.
    links: HashMap<String, String>,
    pub index_json: Option<Vec<u8>>,
    pub manifest_json: Option<Vec<u8>>,
}

impl Saved {
    /// The stored bytes at `path` in the save, following links.
    pub fn lookup(&self, path: &str) -> Option<&(Digest, u64)> {
        let mut path = normalize(path);
        // A bound on the links followed, so a loop of links is "missing", not a hang.
        for _ in 0..8 {
            if let Some(found) = self.files.get(&path) {
                return Some(found);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }

    /// Whether any stored file has these bytes (found by content, not by name).
    pub fn size_of(&self, digest: &Digest) -> Option<u64> {
        self.files
            .values()
            .find(|(d, _)| d == digest)
            .map(|&(_, size)| size)
    }
}

/// Why a save could not be read.
#[derive(Debug)]
pub enum ReadError {
    Format(String),
    Store(crate::store::StoreError),
}

/// Reads a whole save from `reader`, putting every possible blob into `store`.
pub fn read(reader: impl Read, store: &Store) -> Result<Saved, ReadError> {
    let mut saved = Saved::default();
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| ReadError::Format(format!("not a tar stream ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ReadError::Format(format!("a tar entry ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| ReadError::Format(format!("a tar entry's name ({e})")))?
            .to_string_lossy()
            .into_owned();
        let path = normalize(&path);
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                let target = target.to_string_lossy().into_owned();
                // A symlink is relative to its own directory; a hard link to the root.
                let resolved = match path.rsplit_once('/') {
                    Some((dir, _)) if kind.is_symlink() => resolve(dir, &target),
                    _ => normalize(&target),
                };
                saved.links.insert(path, resolved);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        match path.as_str() {
            "index.json" => saved.index_json = Some(small(&mut entry, &path)?),
            "manifest.json" => saved.manifest_json = Some(small(&mut entry, &path)?),
            // Metadata that no manifest names: read past, not stored.
            "oci-layout" | "repositories" => {}
            p if p.ends_with("/VERSION") || p.ends_with("/json") => {}
            _ => {
                let stored = store.put_unnamed(&mut entry).map_err(ReadError::Store)?;
                saved.files.insert(path, stored);
            }
        }
    }
    Ok(saved)
}

/// A metadata file, read whole under the manifest size limit.
fn small(entry: &mut impl Read, path: &str) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Format(format!("{path} cannot be read ({e})")))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ReadError::Format(format!(
            "{path} is over the {MAX_MANIFEST_BYTES}-byte limit"
        )));
    }
    Ok(bytes)
}

/// `./a//b/` and `a/b` are the same name.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// `target` as seen from `dir`, with `..` applied.
fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_relative_to_their_directory() {
        assert_eq!(resolve("b", "../a/layer.tar"), "a/layer.tar");
        assert_eq!(resolve("b", "/a/layer.tar"), "a/layer.tar");
        assert_eq!(normalize("./blobs//sha256/x"), "blobs/sha256/x");
    }
}
