//! A full pass over a package: every file hashed, every blob checked against its name,
//! `checksums.txt` compared both ways, and every descriptor reachable from
//! `index.json` found with its size. Optionally extracts the blobs into a store on the
//! way, which is how `push` gets a verified copy before it sends anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use super::reader::{for_each_entry, read_bounded, Flow, Known, MAX_METADATA_BYTES};
use crate::manifest::{is_manifest_media_type, Manifest, MAX_MANIFEST_BYTES};
use crate::store::digest::Hasher;
use crate::store::layout::LayoutIndex;
use crate::store::{Digest, Ingest, Store, StoreError};
use crate::Error;

/// Manifests and configs kept in memory to walk the graph, in all: a package that
/// needs more is refused rather than allowed to exhaust memory.
const MAX_KEPT_BYTES: u64 = 256 * 1024 * 1024;

/// What a full pass found.
#[derive(Debug, Default)]
pub struct Scan {
    pub zarf: bool,
    pub definition: Option<Vec<u8>>,
    pub index: Option<LayoutIndex>,
    /// Every file: its true digest and size.
    pub files: BTreeMap<String, (Digest, u64)>,
    /// Blobs small enough to be manifests, kept to walk the graph.
    pub manifests: BTreeMap<Digest, Vec<u8>>,
    pub problems: Vec<String>,
    checksums: Option<String>,
}

/// Reads the whole package. With `extract_into`, blobs are written (verified) into it.
pub fn scan(path: &Path, extract_into: Option<&Store>) -> Result<Scan, Error> {
    let mut scan = Scan::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut kept_bytes = 0u64;
    for_each_entry(path, |known, name, size, reader| {
        match &known {
            Known::PkgrDefinition
            | Known::ZarfDefinition
            | Known::Checksums
            | Known::Index
            | Known::OciLayout => {
                let bytes = read_bounded(reader, name, size, MAX_METADATA_BYTES)?;
                scan.files
                    .insert(name.to_owned(), (Digest::of(&bytes), bytes.len() as u64));
                match known {
                    Known::PkgrDefinition => scan.definition = Some(bytes),
                    Known::ZarfDefinition => {
                        scan.zarf = true;
                        scan.definition = Some(bytes);
                    }
                    Known::Checksums => {
                        scan.checksums = Some(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    Known::Index => match serde_json::from_slice(&bytes) {
                        Ok(index) => scan.index = Some(index),
                        Err(e) => scan
                            .problems
                            .push(format!("images/index.json cannot be read: {e}")),
                    },
                    _ => {}
                }
            }
            Known::Blob(digest) => {
                let keep = size <= MAX_MANIFEST_BYTES;
                let mut kept = Vec::new();
                let (actual, read) = match extract_into {
                    Some(store) => extract_blob(
                        store,
                        digest,
                        size,
                        reader,
                        &mut buf,
                        keep.then_some(&mut kept),
                    )?,
                    None => hash_stream(reader, &mut buf, keep.then_some(&mut kept), name)?,
                };
                if &actual != digest {
                    scan.problems
                        .push(format!("{name} holds bytes whose digest is {actual}"));
                }
                if keep && kept.first() == Some(&b'{') {
                    kept_bytes += kept.len() as u64;
                    if kept_bytes > MAX_KEPT_BYTES {
                        return Err(Error::BadPackage {
                            message: format!("its JSON blobs exceed {MAX_KEPT_BYTES} bytes in all"),
                        });
                    }
                    scan.manifests.insert(digest.clone(), kept);
                }
                scan.files.insert(name.to_owned(), (actual, read));
            }
            Known::ZarfExtra => {
                let (actual, read) = hash_stream(reader, &mut buf, None, name)?;
                scan.files.insert(name.to_owned(), (actual, read));
            }
        }
        Ok(Flow::Continue)
    })?;
    scan.check_checksums();
    scan.check_graph();
    Ok(scan)
}

/// Hashes an entry to its end; returns its digest and how many bytes it really had.
fn hash_stream(
    reader: &mut dyn Read,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
    name: &str,
) -> Result<(Digest, u64), Error> {
    let mut hasher = Hasher::default();
    hasher
        .update_from(reader, buf, |chunk| {
            if let Some(kept) = keep.as_deref_mut() {
                kept.extend_from_slice(chunk);
            }
        })
        .map_err(|e| StoreError::io("read", Path::new(name), e))?;
    let read = hasher.bytes_hashed();
    Ok((hasher.finish(), read))
}

/// Writes a blob into the store, which verifies it; returns its true digest and
/// length (a mismatch is a problem for the caller to report, and nothing is left in
/// the store).
fn extract_blob(
    store: &Store,
    digest: &Digest,
    size: u64,
    reader: &mut dyn Read,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
) -> Result<(Digest, u64), Error> {
    let mut writer = match store.begin(digest, size)? {
        Ingest::Present => return hash_stream(reader, buf, keep, &format!("blob {digest}")),
        Ingest::Writer(writer) => writer,
    };
    let mut read = 0u64;
    loop {
        let n = reader
            .read(buf)
            .map_err(|e| StoreError::io("read", Path::new("package"), e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        writer.write(&buf[..n])?;
        if let Some(kept) = keep.as_deref_mut() {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    match writer.commit() {
        Ok(()) => Ok((digest.clone(), read)),
        Err(StoreError::DigestMismatch { actual, .. }) => Ok((actual, read)),
        Err(err) => Err(err.into()),
    }
}

impl Scan {
    fn check_checksums(&mut self) {
        let Some(text) = self.checksums.clone() else {
            self.problems.push("checksums.txt is missing".into());
            return;
        };
        let mut listed = BTreeSet::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((hex, name)) = line.split_once(' ') else {
                self.problems
                    .push(format!("checksums.txt line {} cannot be read", number + 1));
                continue;
            };
            let name = name.trim();
            listed.insert(name.to_owned());
            match self.files.get(name) {
                None => self
                    .problems
                    .push(format!("{name} is listed in checksums.txt but missing")),
                Some((digest, _)) if digest.hex() != hex => self.problems.push(format!(
                    "{name} does not match its checksum in checksums.txt"
                )),
                Some(_) => {}
            }
        }
        // Zarf signs and sums its definition separately.
        let exempt: &[&str] = if self.zarf {
            &["checksums.txt", "zarf.yaml", "zarf.yaml.sig"]
        } else {
            &["checksums.txt"]
        };
        for name in self.files.keys() {
            if !listed.contains(name) && !exempt.contains(&name.as_str()) {
                self.problems
                    .push(format!("{name} is not listed in checksums.txt"));
            }
        }
    }

    fn check_graph(&mut self) {
        if self.definition.is_none() {
            self.problems
                .push("the package has no pkgr.yaml or zarf.yaml".into());
        }
        let Some(index) = &self.index else {
            if !self
                .problems
                .iter()
                .any(|p| p.starts_with("images/index.json"))
            {
                self.problems.push("images/index.json is missing".into());
            }
            return;
        };
        // A worklist, so a hostile chain of nested indexes cannot overflow the stack.
        // An index's children are manifests whatever media type they claim.
        let mut problems = Vec::new();
        let mut visited = BTreeSet::new();
        for entry in &index.manifests {
            let reference = entry.reference().unwrap_or("(unnamed)");
            let root_is_manifest = is_manifest_media_type(&entry.media_type);
            let mut queue = vec![(entry.digest.clone(), entry.size, root_is_manifest)];
            while let Some((digest, size, is_manifest)) = queue.pop() {
                let name = format!("images/blobs/sha256/{}", digest.hex());
                match self.files.get(&name) {
                    None => {
                        problems.push(format!("{reference}: blob {digest} is missing"));
                        continue;
                    }
                    Some((_, actual)) if *actual != size => {
                        problems.push(format!(
                            "{reference}: blob {digest} is {actual} bytes, but its descriptor says {size}"
                        ));
                        continue;
                    }
                    Some(_) => {}
                }
                if !is_manifest || !visited.insert(digest.clone()) {
                    continue;
                }
                let Some(manifest) = self
                    .manifests
                    .get(&digest)
                    .and_then(|b| Manifest::parse(b).ok())
                else {
                    problems.push(format!("{reference}: manifest {digest} cannot be read"));
                    continue;
                };
                for child in &manifest.manifests {
                    queue.push((child.digest.clone(), child.size, true));
                }
                for blob in manifest.blobs() {
                    queue.push((blob.digest.clone(), blob.size, false));
                }
            }
        }
        self.problems.extend(problems);
    }
}
