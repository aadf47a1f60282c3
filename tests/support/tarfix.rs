//! Rewrites packages for tamper tests and writes hostile tars byte by byte, with names
//! and entry types that the tar crate's safe builders would refuse to produce.

use std::path::Path;

/// One entry of a hand-made tar.
pub struct RawEntry {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
    pub link: Option<Vec<u8>>,
}

impl RawEntry {
    pub fn file(name: &str, data: &[u8]) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            link: None,
        }
    }
}

/// One GNU tar header block declaring `size` bytes, whatever follows it: hostile
/// tests claim gigabytes and send a few bytes (over 8 GiB the size is base-256, as
/// Go's writer puts it).
pub fn header(name: &[u8], kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    header.as_bytes().to_vec()
}

/// Writes an uncompressed tar holding exactly `entries`, names unchecked.
pub fn write_raw_tar(path: &Path, entries: &[RawEntry]) {
    let mut out = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().unwrap();
            assert!(entry.name.len() < 100, "keep hostile names short");
            gnu.name[..entry.name.len()].copy_from_slice(&entry.name);
            if let Some(link) = &entry.link {
                gnu.linkname[..link.len()].copy_from_slice(link);
            }
        }
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&entry.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    std::fs::write(path, out).unwrap();
}

/// Reads a package (zstd or plain) into its entries, in order.
pub fn read_entries(path: &Path) -> Vec<RawEntry> {
    let package = super::package::Package::read(path);
    package
        .order
        .iter()
        .map(|name| RawEntry::file(name, &package.files[name]))
        .collect()
}
