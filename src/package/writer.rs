//! Writing a package: a deterministic tar (fixed order, no timestamps, owners or host
//! paths), zstd-compressed on all cores in the seekable format (`framed`) unless asked
//! not to, written under a temporary name and renamed into place only when complete;
//! or, over a size, cut into Zarf's split parts as it streams out (`parts`).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::framed::{FramedEncoder, FRAME_BYTES};
use super::parts::{PartWriter, TooManyParts};
use super::writeback::WriteBack;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write the package {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    TooManyParts(TooManyParts),
}

impl WriteError {
    /// The package being written when its filesystem filled up, if that is what failed.
    pub fn no_space(&self) -> Option<&Path> {
        match self {
            Self::Io { path, source } if crate::space::is_out_of_space(source) => Some(path),
            _ => None,
        }
    }
}

/// One file of the package: its path inside the tar, and where its bytes are.
pub struct Entry {
    pub name: String,
    pub source: PathBuf,
}

/// Compression level: zstd's default, a good balance for multi-GB packages.
const ZSTD_LEVEL: i32 = 3;

/// Writes `entries`, in the given order, to `out`. A failure leaves nothing at `out`.
pub fn write_package(entries: &[Entry], out: &Path, compress: bool) -> Result<(), WriteError> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    write_package_via(entries, out, compress, dir)
}

/// The file a package is written into until it is complete: hidden, named as partial,
/// removed when dropped unless persisted.
pub fn partial_package_in(temp_dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".pkgr-package-").suffix(".partial");
    // tempfile creates 0600 files; a package is an ordinary file for the umask to shape.
    #[cfg(unix)]
    builder.permissions(std::fs::Permissions::from_mode(0o666));
    builder.tempfile_in(temp_dir)
}

/// As [`write_package`], with the file written in `temp_dir` (on `out`'s filesystem)
/// until it is complete.
pub fn write_package_via(
    entries: &[Entry],
    out: &Path,
    compress: bool,
    temp_dir: &Path,
) -> Result<(), WriteError> {
    let io_err = |source| WriteError::Io {
        path: out.to_owned(),
        source,
    };
    let temp = partial_package_in(temp_dir).map_err(io_err)?;
    let file = WriteBack::new(temp.as_file().try_clone().map_err(io_err)?);
    let file = encode(entries, file, compress).map_err(io_err)?;
    file.into_inner().sync_all().map_err(io_err)?;
    if crate::cancel::is_cancelled() {
        return Err(io_err(io::Error::other("interrupted")));
    }
    temp.persist(out).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// As [`write_package_via`], but a package over `max_part` bytes is written as Zarf's
/// split parts (`parts`), cut as it streams out. Returns the path to give a reader:
/// `out` itself when the package fits in one part, else `out.part000`.
pub fn write_package_in_parts_via(
    entries: &[Entry],
    out: &Path,
    compress: bool,
    temp_dir: &Path,
    max_part: u64,
) -> Result<PathBuf, WriteError> {
    let io_err = |source: io::Error| match source
        .get_ref()
        .and_then(|e| e.downcast_ref::<TooManyParts>())
    {
        Some(too_many) => WriteError::TooManyParts(TooManyParts {
            max_part: too_many.max_part,
        }),
        None => WriteError::Io {
            path: out.to_owned(),
            source,
        },
    };
    let parts = encode(entries, PartWriter::new(temp_dir, max_part), compress)
        .and_then(PartWriter::finish)
        .map_err(io_err)?;
    parts
        .persist(out, || !crate::cancel::is_cancelled())
        .map_err(io_err)
}

/// What the bytes this writer makes depend on besides the entries: a package written by
/// a writer with another identity may differ byte for byte. `pkgr pull` refuses to
/// rebuild a published package whose recorded identity is not its own.
pub fn identity(compress: bool) -> String {
    match compress {
        true => format!(
            "pkgr-tar/1 zstd-seekable/1 libzstd/{} level/{ZSTD_LEVEL} frame/{FRAME_BYTES}",
            zstd::zstd_safe::version_string()
        ),
        false => "pkgr-tar/1".to_owned(),
    }
}

/// Writes the package stream into `sink` and hands it back, flushed: the bytes
/// [`write_package`] puts in its file.
fn encode<W: Write>(entries: &[Entry], sink: W, compress: bool) -> io::Result<W> {
    encode_from(entries, sink, compress, &open_file)
}

/// An entry's bytes as the writer reads them: their length, which its tar header
/// declares, and a reader that yields exactly that many (or fails).
pub type Opened = (u64, Box<dyn Read>);

/// An entry's file, whole, as it is on disk now.
pub fn open_file(entry: &Entry) -> io::Result<Opened> {
    let file = File::open(&entry.source).map_err(|e| with_path(e, &entry.source))?;
    let len = file
        .metadata()
        .map_err(|e| with_path(e, &entry.source))?
        .len();
    // Unbuffered: the writer reads straight into its own buffer, in large reads.
    let reader = crate::cancel::Cancellable(file).take(len);
    Ok((len, Box::new(reader)))
}

/// As `encode`, with each entry's bytes read through `open`, so that a caller still
/// bringing the files in can hand out readers that wait for bytes not yet there
/// (`pkgr pull`). The bytes written are the same whatever the timing.
pub fn encode_from<W: Write>(
    entries: &[Entry],
    sink: W,
    compress: bool,
    open: &dyn Fn(&Entry) -> io::Result<Opened>,
) -> io::Result<W> {
    let buffered = BufWriter::with_capacity(1 << 20, sink);
    let buffered = if compress {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let encoder = FramedEncoder::new(buffered, ZSTD_LEVEL, workers)?;
        // Every entry starts a frame, so a reader can start at any entry.
        let encoder = write_tar(entries, encoder, FramedEncoder::cut, open)?;
        encoder.finish()?
    } else {
        write_tar(entries, buffered, |_| Ok(()), open)?
    };
    buffered.into_inner().map_err(|e| e.into_error())
}

/// Writes the tar, calling `entry_starts` on the writer before each entry's header.
fn write_tar<W: TakesBytes>(
    entries: &[Entry],
    writer: W,
    entry_starts: impl Fn(&mut W) -> io::Result<()>,
    open: &dyn Fn(&Entry) -> io::Result<Opened>,
) -> io::Result<W> {
    let mut builder = tar::Builder::new(writer);
    for entry in entries {
        let (len, mut reader) = open(entry)?;
        entry_starts(builder.get_mut())?;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(len);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        // The header alone (and a long name's extra entry): the tar crate would copy the
        // bytes through a buffer of its own, a copy more and a call per 8 KiB.
        builder.append_data(&mut header, &entry.name, io::empty())?;
        let out = builder.get_mut();
        let read = out.take_from(&mut reader, len)?;
        // The header declares `len`: a reader that ends early would leave an entry
        // shorter than its header says, and every entry after it misplaced.
        if read != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: {read} bytes, not {len}", entry.name),
            ));
        }
        let padding = (BLOCK - len % BLOCK) % BLOCK;
        out.write_all(&[0; BLOCK as usize][..padding as usize])?;
    }
    // The two zero blocks that end the archive get a frame of their own.
    entry_starts(builder.get_mut())?;
    // `finish` explicitly: dropping the builder would swallow a write error.
    builder.finish()?;
    builder.into_inner()
}

/// A tar block: entries are padded to a whole number of them.
const BLOCK: u64 = 512;

/// A writer that takes an entry's bytes from a reader into a buffer of its own,
/// without one in between.
trait TakesBytes: Write {
    /// Reads up to `len` bytes of `reader` in; returns how many, fewer only when
    /// `reader` ended.
    fn take_from(&mut self, reader: &mut dyn Read, len: u64) -> io::Result<u64>;
}

impl<W: Write> TakesBytes for FramedEncoder<W> {
    fn take_from(&mut self, reader: &mut dyn Read, len: u64) -> io::Result<u64> {
        self.read_from(reader, len)
    }
}

impl<W: Write> TakesBytes for BufWriter<W> {
    fn take_from(&mut self, reader: &mut dyn Read, len: u64) -> io::Result<u64> {
        // `io::copy` into a `BufWriter` reads straight into its buffer.
        io::copy(&mut reader.take(len), self)
    }
}

fn with_path(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use crate::testing::{fixture_dir, write_fixture_package};

    #[test]
    fn the_same_contents_give_the_same_bytes_in_a_fixed_order() {
        let (one, two) = (fixture_dir(), fixture_dir());
        let first = std::fs::read(write_fixture_package(one.path(), true)).unwrap();
        let second = std::fs::read(write_fixture_package(two.path(), true)).unwrap();
        assert_eq!(first, second, "two writes of the same contents differ");

        let tar = zstd::decode_all(&first[..]).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.mode().unwrap(), 0o644);
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            names.push((name, bytes));
        }
        let head: Vec<&str> = names.iter().take(4).map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            head,
            [
                "pkgr.yaml",
                "checksums.txt",
                "images/oci-layout",
                "images/index.json"
            ]
        );
        // Then 5 manifests, 3 configs and 5 layers: manifests parse as manifests with a
        // schemaVersion, configs are the JSON that the manifests name, layers are last.
        let kinds: Vec<&str> = names[4..]
            .iter()
            .map(|(_, bytes)| {
                let value: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
                match value {
                    Some(v) if v.get("schemaVersion").is_some() => "manifest",
                    Some(_) => "config",
                    None => "layer",
                }
            })
            .collect();
        let mut expected = vec!["manifest"; 5];
        expected.extend(["config"; 3]);
        expected.extend(["layer"; 5]);
        assert_eq!(kinds, expected);
    }

    #[test]
    fn parts_join_to_the_whole_package_and_one_that_fits_is_the_same_file() {
        let dir = fixture_dir();
        let whole = std::fs::read(write_fixture_package(dir.path(), true)).unwrap();
        let sealed = crate::store::seal::seal(&dir.path().join("images")).unwrap();
        let entries = crate::package::contents::entries(dir.path(), &sealed).unwrap();
        let (staging, output) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let out = output.path().join("p.tar.zst");

        let fits = whole.len() as u64;
        let path =
            super::write_package_in_parts_via(&entries, &out, true, staging.path(), fits).unwrap();
        assert_eq!(path, out);
        assert_eq!(std::fs::read(&out).unwrap(), whole);
        std::fs::remove_file(&out).unwrap();

        let max_part = fits.div_ceil(3);
        let first =
            super::write_package_in_parts_via(&entries, &out, true, staging.path(), max_part)
                .unwrap();
        assert_eq!(first, crate::package::parts::part_path(&out, 0));
        let joined: Vec<u8> = (1..=3)
            .flat_map(|n| std::fs::read(crate::package::parts::part_path(&out, n)).unwrap())
            .collect();
        assert_eq!(joined, whole);
        assert!(!out.exists());
    }

    #[test]
    fn a_package_over_zarfs_part_limit_is_refused_and_leaves_nothing() {
        let dir = fixture_dir();
        let sealed = crate::store::seal::seal(&dir.path().join("images")).unwrap();
        let entries = crate::package::contents::entries(dir.path(), &sealed).unwrap();
        let (staging, output) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let out = output.path().join("p.tar.zst");
        // The fixture is several KiB: far more than 999 parts of one byte.
        let err =
            super::write_package_in_parts_via(&entries, &out, true, staging.path(), 1).unwrap_err();
        assert!(matches!(err, super::WriteError::TooManyParts(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the package needs more than 999 parts of 1 B, more than Zarf's split format allows: give a larger part size"
        );
        assert_eq!(std::fs::read_dir(output.path()).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);
    }
}

#[cfg(test)]
mod tar_tests {
    use std::io::{self, Cursor};

    use super::{encode_from, Entry, Opened};

    /// Entries of the lengths around a tar block, and a name too long for a header.
    fn entries() -> Vec<(Entry, Vec<u8>)> {
        let long = format!("images/{}/blob", "n".repeat(150));
        [0, 1, 511, 512, 513, 3 * 512 + 7]
            .into_iter()
            .map(|len| (format!("file-{len}"), len))
            .chain([(long, 20)])
            .map(|(name, len)| {
                let data = (0..len).map(|i| (i % 7) as u8 + b'a').collect();
                let entry = Entry {
                    name,
                    source: Default::default(),
                };
                (entry, data)
            })
            .collect()
    }

    /// The archive the tar crate writes for `entries` by itself, data and all.
    fn by_the_tar_crate(entries: &[(Entry, Vec<u8>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (entry, data) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            builder
                .append_data(&mut header, &entry.name, &data[..])
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn written(
        entries: &[(Entry, Vec<u8>)],
        compress: bool,
        short_by: usize,
    ) -> io::Result<Vec<u8>> {
        let just_entries: Vec<Entry> = entries
            .iter()
            .map(|(e, _)| Entry {
                name: e.name.clone(),
                source: e.source.clone(),
            })
            .collect();
        let open = |entry: &Entry| -> io::Result<Opened> {
            let data = &entries
                .iter()
                .find(|(e, _)| e.name == entry.name)
                .unwrap()
                .1;
            let given = data[..data.len().saturating_sub(short_by)].to_vec();
            Ok((data.len() as u64, Box::new(Cursor::new(given))))
        };
        encode_from(&just_entries, Vec::new(), compress, &open)
    }

    #[test]
    fn entries_are_the_bytes_the_tar_crate_itself_writes() {
        let entries = entries();
        let expected = by_the_tar_crate(&entries);
        assert!(
            written(&entries, false, 0).unwrap() == expected,
            "plain tar differs"
        );
        let compressed = written(&entries, true, 0).unwrap();
        let tar = zstd::decode_all(&compressed[..]).unwrap();
        assert!(tar == expected, "the compressed package's tar differs");
    }

    #[test]
    fn an_entry_shorter_than_its_header_says_is_an_error() {
        let err = written(&entries(), true, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        let err = written(&entries(), false, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}
