//! What the fuzz targets share: the reference reader (a plain sequential zstd decode,
//! as `zstd -dc` does, then a plain tar parse by the `tar` crate) that pkgr's readers
//! are held to, and a scratch file per fuzzing process.

use std::io::{self, Read};
use std::path::PathBuf;

/// The most decompressed bytes the reference reader produces: an input that decodes to
/// more is not compared (a 256 KiB input can claim terabytes).
pub const MAX_REFERENCE_BYTES: u64 = 64 << 20;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Skippable frames, as the zstd format defines them: magics 0x184D2A50 to 0x184D2A5F.
const SKIPPABLE_MAGIC_HIGH: [u8; 3] = [0x2a, 0x4d, 0x18];

/// What the reference reader makes of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Reference<T> {
    /// Standard tools read it, and this is what they see.
    Read(T),
    /// Standard tools refuse it.
    Refused(String),
    /// Over [`MAX_REFERENCE_BYTES`] once decoded: not compared.
    TooLarge,
}

impl<T> Reference<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> Reference<U>) -> Reference<U> {
        match self {
            Self::Read(value) => f(value),
            Self::Refused(why) => Reference::Refused(why),
            Self::TooLarge => Reference::TooLarge,
        }
    }
}

/// Whether `bytes` start as `zstd -dc` reads a zstd file: a data frame of this format or
/// a legacy one (magics 0xFD2FB51E to 0xFD2FB527), or a skippable frame.
pub fn is_zstd(bytes: &[u8]) -> bool {
    let Some(magic) = bytes.get(..4) else {
        return false;
    };
    let legacy = (0x1e..=0x27).contains(&magic[0]) && magic[1..] == ZSTD_MAGIC[1..];
    let skippable = magic[0] & 0xf0 == 0x50 && magic[1..] == SKIPPABLE_MAGIC_HIGH;
    magic == ZSTD_MAGIC || legacy || skippable
}

/// `zstd -dc` of `bytes`: every frame decoded in order, skippable frames passed over;
/// any malformed or truncated frame, or trailing bytes that are no frame, refuse it.
pub fn zstd_dc(bytes: &[u8]) -> Reference<Vec<u8>> {
    let decoder = match zstd::stream::read::Decoder::with_buffer(bytes) {
        Ok(decoder) => decoder,
        Err(e) => return Reference::Refused(e.to_string()),
    };
    let mut out = Vec::new();
    match decoder.take(MAX_REFERENCE_BYTES + 1).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > MAX_REFERENCE_BYTES => Reference::TooLarge,
        Ok(_) => Reference::Read(out),
        Err(e) => Reference::Refused(e.to_string()),
    }
}

/// The tar bytes pkgr must read from a package file's bytes: decoded when they start as
/// zstd, as they are otherwise; a file that `zstd -dc` reads as another compression is
/// one pkgr must refuse.
pub fn package_tar(bytes: &[u8]) -> Reference<Vec<u8>> {
    let other = [
        &[0x1f, 0x8b][..],
        &[0xfd, 0x37],
        &[0x5d, 0x00],
        &[0x04, 0x22, 0x4d, 0x18],
    ];
    if is_zstd(bytes) {
        zstd_dc(bytes)
    } else if other.iter().any(|magic| bytes.starts_with(magic)) {
        Reference::Refused("gzip, xz, lzma or lz4, which pkgr does not read".into())
    } else {
        Reference::Read(bytes.to_vec())
    }
}

/// One tar member as `tar -t` lists it, with its bytes when it is a regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    pub bytes: Vec<u8>,
}

/// Every member of a tar, by the `tar` crate (GNU long names and PAX headers applied),
/// up to its end-of-archive block; a member cut short refuses it.
pub fn tar_members(tar_bytes: &[u8]) -> Reference<Vec<Member>> {
    let refused = |e: io::Error| Reference::Refused(e.to_string());
    let mut archive = tar::Archive::new(tar_bytes);
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => return refused(e),
    };
    let mut members = Vec::new();
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => return refused(e),
        };
        let name = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let size = entry.size();
        let mut bytes = Vec::new();
        if let Err(e) = entry.read_to_end(&mut bytes) {
            return refused(e);
        }
        if bytes.len() as u64 != size {
            return Reference::Refused(format!("a member of {size} bytes is cut short"));
        }
        members.push(Member { name, kind, bytes });
    }
    Reference::Read(members)
}

/// The entries pkgr may show, from the reference's members, named as pkgr names them
/// (no leading `./`, no trailing `/`); directories and global PAX headers (which
/// `tar -t` does not list) are passed over.
pub fn regular_files(members: &[Member]) -> Vec<(String, Vec<u8>)> {
    members
        .iter()
        .filter(|m| {
            !matches!(
                m.kind,
                tar::EntryType::Directory | tar::EntryType::XGlobalHeader
            )
        })
        .map(|m| {
            let name = String::from_utf8_lossy(&m.name);
            let name = name.trim_start_matches("./").trim_end_matches('/');
            (name.to_owned(), m.bytes.clone())
        })
        .collect()
}

/// A path for this process's scratch files, in /dev/shm when it exists so that the
/// disk is not the bottleneck.
pub fn scratch(name: &str) -> PathBuf {
    let dir = ["/dev/shm", "/tmp"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("pkgr-fuzz-{}-{name}", std::process::id()))
}
