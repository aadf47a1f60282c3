//! Reading a `docker save` tar as it arrives, under the rules a package is read by.
//! Headers are walked by `tarwalk` (extended headers over 64 KiB refused unread, PAX
//! `path` and `size` applied); every entry that declares more than `--max-blob-size`
//! is refused from its header, and `index.json` or `manifest.json` over 4 MiB from
//! their declared size, before any of their bytes are read.
//!
//! Every file that may be a blob streams straight into the store and is named there
//! by its own hash; a file the stream cuts short fails, and its temp file is removed
//! (as `Store::put_unnamed` removes any it did not finish). Files completed before a
//! later failure stay: each is whole and named by its hash, as a failed pull's
//! downloaded blobs stay, and the shared cache cannot tell whether another run
//! already counts on the same blob; `cache prune` reclaims them. The save's file
//! names are kept only as keys for finding those digests again once the save's
//! metadata (`index.json`, `manifest.json`: the legacy format writes it last) has
//! been read.
//! Nothing is held in memory but that metadata.

use std::collections::HashMap;
use std::io::{self, Read};

use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::store::{Store, StoreError};
use crate::tarwalk::{Forward, TarError, TarWalk, MAX_EXTENDED_HEADER_BYTES};

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
    /// An entry declares more than `--max-blob-size`; `name` is escaped for messages.
    TooLarge {
        name: String,
        size: u64,
        limit: u64,
    },
    Store(StoreError),
}

/// Reads a whole save from `reader`, putting every possible blob into `store`; an
/// entry declaring more than `max_blob_size` bytes is refused before it is read.
pub fn read(reader: impl Read, store: &Store, max_blob_size: u64) -> Result<Saved, ReadError> {
    let mut saved = Saved::default();
    let mut walk = TarWalk::new(Stream(reader));
    while let Some(member) = walk.next_member().map_err(tar_failure)? {
        let path = normalize(&String::from_utf8_lossy(&member.name));
        // Every entry, whatever it is: a body is read (or passed over) only within it.
        if member.size > max_blob_size {
            return Err(ReadError::TooLarge {
                name: shown(&path),
                size: member.size,
                limit: max_blob_size,
            });
        }
        let kind = member.kind;
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = &member.link_name {
                let target = String::from_utf8_lossy(target);
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
        let body = Whole {
            walk: &mut walk,
            left: member.size,
        };
        match path.as_str() {
            "index.json" => saved.index_json = Some(small(body, &path, member.size)?),
            "manifest.json" => saved.manifest_json = Some(small(body, &path, member.size)?),
            // Metadata that no manifest names: read past, not stored.
            "oci-layout" | "repositories" => {}
            p if p.ends_with("/VERSION") || p.ends_with("/json") => {}
            _ => {
                let stored = store.put_unnamed(body).map_err(|e| match e {
                    StoreError::Read(source) => ReadError::Format(unreadable(&source)),
                    other => ReadError::Store(other),
                })?;
                saved.files.insert(path, stored);
            }
        }
    }
    Ok(saved)
}

/// A metadata file, refused by its declared size before a byte of it is read.
fn small(mut body: impl Read, path: &str, size: u64) -> Result<Vec<u8>, ReadError> {
    if size > MAX_MANIFEST_BYTES {
        return Err(ReadError::Format(format!(
            "its {path} declares {size} bytes, over the {MAX_MANIFEST_BYTES}-byte limit"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    body.read_to_end(&mut bytes)
        .map_err(|e| ReadError::Format(unreadable(&e)))?;
    Ok(bytes)
}

/// The daemon's stream as the walk reads it.
struct Stream<R>(R);

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Forward for Stream<R> {
    fn forward(&mut self, n: u64) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.0).take(n), &mut io::sink())?;
        match skipped < n {
            true => Err(ends_inside()),
            false => Ok(()),
        }
    }
}

/// The current entry's bytes, all of them: a stream that ends early is an error
/// here, where the walk alone would end the entry quietly, so a file cut short never
/// reaches the store as if it were whole.
struct Whole<'a, R> {
    walk: &'a mut TarWalk<R>,
    left: u64,
}

impl<R: Forward> Read for Whole<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = self.walk.read(buf)?;
        if n == 0 {
            return Err(ends_inside());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn ends_inside() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the stream ends inside an entry",
    )
}

/// A failure to read the stream, as a message.
fn unreadable(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "it ends inside an entry".into(),
        _ => format!("it cannot be read ({e})"),
    }
}

/// The walk's refusal, worded for the daemon's stream rather than a package.
fn tar_failure(e: TarError) -> ReadError {
    ReadError::Format(match e {
        TarError::ExtendedTooLarge { entry, size } => format!(
            "entry {entry} has a {size}-byte extended header, over the {MAX_EXTENDED_HEADER_BYTES}-byte limit"
        ),
        TarError::NotTar => "it is not a tar stream".into(),
        TarError::BadHeader { entry } => format!("entry {entry} has a damaged tar header"),
        TarError::BadExtended { entry } => {
            format!("entry {entry} has a malformed extended header")
        }
        TarError::TwoExtended { entry } => format!(
            "entry {entry} is a second extended header of the same kind for one file"
        ),
        TarError::Dangling => {
            "it ends after an extended header, before the file it describes".into()
        }
        TarError::Io(e) => unreadable(&e),
    })
}

/// A name from the stream, fit for a message: escaped, and cut short if long.
fn shown(name: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out: String = name
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
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
    use crate::daemon::{from_save, DaemonError, DaemonLayers};
    use crate::space::DEFAULT_MAX_BLOB_SIZE;

    const IMAGE: &str = "registry.invalid/hostile/x:1";

    fn header(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        // Over 8 GiB this is GNU's base-256 size, as Docker's Go writer would put it.
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        header.as_bytes().to_vec()
    }

    fn file(name: &str, body: &[u8]) -> Vec<u8> {
        let mut tar = header(name, tar::EntryType::Regular, body.len() as u64);
        tar.extend(file_body(body));
        tar
    }

    /// `body`, padded to whole blocks.
    fn file_body(body: &[u8]) -> Vec<u8> {
        let mut padded = body.to_vec();
        padded.resize(body.len().div_ceil(512) * 512, 0);
        padded
    }

    /// A store in a fresh directory, and a way to list what its ingest dir holds.
    struct Cache {
        dir: tempfile::TempDir,
        store: Store,
    }

    impl Cache {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
            Self { dir, store }
        }

        fn files(&self, sub: &str) -> Vec<String> {
            std::fs::read_dir(self.dir.path().join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        }
    }

    /// Panics on any read: what follows a refused header must stay unread.
    struct Untouchable;
    impl Read for Untouchable {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("the body of a refused entry was read");
        }
    }

    /// Imports `head` followed by `rest`, expecting a refusal; checks that it came at
    /// once, names the image, and left nothing in the ingest dir.
    fn refused(head: Vec<u8>, rest: impl Read, bound: u64) -> (Cache, DaemonError) {
        let cache = Cache::new();
        let started = std::time::Instant::now();
        let err = from_save(
            head.as_slice().chain(rest),
            &cache.store,
            IMAGE,
            bound,
            DaemonLayers::Tar,
        )
        .unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(err.to_string().contains(IMAGE), "{err}");
        assert!(
            cache.files("ingest").is_empty(),
            "{:?}",
            cache.files("ingest")
        );
        (cache, err)
    }

    #[test]
    fn a_save_starting_with_a_2_gib_pax_header_is_refused_unread() {
        for kind in [tar::EntryType::XHeader, tar::EntryType::GNULongName] {
            let head = header("PaxHeader", kind, 2 << 30);
            let (_, err) = refused(head, Untouchable, DEFAULT_MAX_BLOB_SIZE);
            assert_eq!(
                err.to_string(),
                format!("the docker save stream of {IMAGE} is not one pkgr can read: entry 1 has a 2147483648-byte extended header, over the 65536-byte limit")
            );
        }
    }

    #[test]
    fn an_entry_over_the_blob_bound_is_refused_from_its_header() {
        let name = format!("blobs/sha256/{}", "0".repeat(64));
        let head = header(&name, tar::EntryType::Regular, 8_600_000_000);
        let (_, err) = refused(head, Untouchable, 1 << 30);
        assert_eq!(
            err.to_string(),
            format!("`{name}` in the docker save stream of {IMAGE} declares 8600000000 bytes (8.0 GiB), more than the 1.0 GiB allowed for one blob")
        );
        // The bound is the user's to raise, and the hint says how.
        use crate::hint::{Fix, Hint};
        assert_eq!(err.hint(), Some(Fix::RaiseMaxBlobSize));
        // Skipped metadata is bounded too: the stream is never read past it.
        let head = header("repositories", tar::EntryType::Regular, 2 << 30);
        let (_, err) = refused(head, Untouchable, 1 << 30);
        assert!(matches!(err, DaemonError::EntryTooLarge { .. }), "{err}");
    }

    #[test]
    fn an_entry_the_stream_cuts_short_leaves_nothing_in_the_store() {
        // Within the default bound, so its bytes are read: the stream has a few only.
        let mut head = header("blobs/sha256/zeros", tar::EntryType::Regular, 8_600_000_000);
        head.extend([0u8; 4096]);
        let (cache, err) = refused(head, io::empty(), DEFAULT_MAX_BLOB_SIZE);
        assert_eq!(
            err.to_string(),
            format!("the docker save stream of {IMAGE} is not one pkgr can read: it ends inside an entry")
        );
        assert!(
            cache.files("blobs").is_empty(),
            "{:?}",
            cache.files("blobs")
        );
    }

    #[test]
    fn metadata_over_its_cap_is_refused_from_its_declared_size() {
        for name in ["manifest.json", "index.json"] {
            let head = header(name, tar::EntryType::Regular, 1 << 30);
            let (_, err) = refused(head, Untouchable, DEFAULT_MAX_BLOB_SIZE);
            assert_eq!(
                err.to_string(),
                format!("the docker save stream of {IMAGE} is not one pkgr can read: its {name} declares 1073741824 bytes, over the 4194304-byte limit")
            );
        }
    }

    #[test]
    fn a_long_link_name_and_a_pax_path_are_applied() {
        let dir = "d".repeat(120);
        let mut tar = file("a/layer.tar", b"layer");
        // A symlink whose target is longer than the header's 100 bytes.
        let target = format!("../{dir}/../a/layer.tar");
        let mut long = header(
            "././@LongLink",
            tar::EntryType::GNULongLink,
            target.len() as u64 + 1,
        );
        // GNU tar ends the name with a NUL.
        long.extend(file_body(format!("{target}\0").as_bytes()));
        tar.extend(long);
        let mut link = tar::Header::new_gnu();
        link.set_path("b/layer.tar").unwrap();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_cksum();
        tar.extend(link.as_bytes());
        let records = b"24 path=c/pax-named.tar\n";
        let mut pax = header("PaxHeader", tar::EntryType::XHeader, records.len() as u64);
        pax.extend(records);
        pax.resize(1024, 0);
        tar.extend(pax);
        tar.extend(file("short", b"pax"));
        tar.extend([0u8; 1024]);
        let cache = Cache::new();
        let saved = read(tar.as_slice(), &cache.store, DEFAULT_MAX_BLOB_SIZE).unwrap();
        let layer = (Digest::of(b"layer"), 5);
        assert_eq!(saved.lookup("b/layer.tar"), Some(&layer));
        assert_eq!(
            saved.lookup("c/pax-named.tar"),
            Some(&(Digest::of(b"pax"), 3))
        );
        assert_eq!(saved.lookup("short"), None);
    }

    #[test]
    fn links_resolve_relative_to_their_directory() {
        assert_eq!(resolve("b", "../a/layer.tar"), "a/layer.tar");
        assert_eq!(resolve("b", "/a/layer.tar"), "a/layer.tar");
        assert_eq!(normalize("./blobs//sha256/x"), "blobs/sha256/x");
    }
}
