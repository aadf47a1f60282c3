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
                let actual = match extract_into {
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
                    scan.manifests.insert(digest.clone(), kept);
                }
                scan.files.insert(name.to_owned(), (actual, size));
            }
            Known::ZarfExtra => {
                let actual = hash_stream(reader, &mut buf, None, name)?;
                scan.files.insert(name.to_owned(), (actual, size));
            }
        }
        Ok(Flow::Continue)
    })?;
    scan.check_checksums();
    scan.check_graph();
    Ok(scan)
}

fn hash_stream(
    reader: &mut dyn Read,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
    name: &str,
) -> Result<Digest, Error> {
    let mut hasher = Hasher::default();
    loop {
        let n = reader
            .read(buf)
            .map_err(|e| StoreError::io("read", Path::new(name), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(kept) = keep.as_deref_mut() {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    Ok(hasher.finish())
}

/// Writes a blob into the store, returning its true digest (a mismatch is a problem
/// for the caller to report, and nothing is left in the store).
fn extract_blob(
    store: &Store,
    digest: &Digest,
    size: u64,
    reader: &mut dyn Read,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
) -> Result<Digest, Error> {
    let mut writer = match store.begin(digest, size)? {
        Ingest::Present => {
            // Already extracted by an earlier run: hash what the package holds anyway.
            return hash_stream(reader, buf, keep, &format!("blob {digest}"));
        }
        Ingest::Writer(writer) => writer,
    };
    writer.restart()?;
    let mut hasher = Hasher::default();
    loop {
        let n = reader
            .read(buf)
            .map_err(|e| StoreError::io("read", Path::new("package"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer.write(&buf[..n])?;
        if let Some(kept) = keep.as_deref_mut() {
            kept.extend_from_slice(&buf[..n]);
        }
    }
    let actual = hasher.finish();
    if &actual == digest {
        writer.commit()?;
    } else {
        writer.restart()?;
    }
    Ok(actual)
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
        let mut problems = Vec::new();
        let mut visited = BTreeSet::new();
        for entry in &index.manifests {
            let reference = entry.reference().unwrap_or("(unnamed)");
            self.walk(
                reference,
                &entry.digest,
                entry.size,
                &entry.media_type,
                &mut visited,
                &mut problems,
            );
        }
        self.problems.extend(problems);
    }

    fn walk(
        &self,
        reference: &str,
        digest: &Digest,
        size: u64,
        media_type: &str,
        visited: &mut BTreeSet<Digest>,
        problems: &mut Vec<String>,
    ) {
        let name = format!("images/blobs/sha256/{}", digest.hex());
        match self.files.get(&name) {
            None => {
                problems.push(format!("{reference}: blob {digest} is missing"));
                return;
            }
            Some((_, actual)) if *actual != size => {
                problems.push(format!(
                    "{reference}: blob {digest} is {actual} bytes, but its descriptor says {size}"
                ));
                return;
            }
            Some(_) => {}
        }
        if !is_manifest_media_type(media_type) || !visited.insert(digest.clone()) {
            return;
        }
        let Some(manifest) = self
            .manifests
            .get(digest)
            .and_then(|b| Manifest::parse(b).ok())
        else {
            problems.push(format!("{reference}: manifest {digest} cannot be read"));
            return;
        };
        for child in manifest.manifests.iter().chain(manifest.blobs()) {
            self.walk(
                reference,
                &child.digest,
                child.size,
                &child.media_type,
                visited,
                problems,
            );
        }
    }
}
