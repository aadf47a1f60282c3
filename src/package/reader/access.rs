//! Where a package's tar bytes come from, and how to read them from an offset. An
//! uncompressed tar is read at any offset by seeking, and a seekable `.tar.zst` (what
//! pkgr writes) through its seek table once every frame has been checked against it,
//! so entries can be read in parallel; a table that its frames contradict refuses the
//! package. Any other zstd file (a seekable one whose table cannot be checked or has
//! frames too large for random access among them), and a split package, is one
//! stream: reading it from an offset goes on from where the last read ended when that
//! is not past the offset, and otherwise starts again from the beginning.
//!
//! The form is told by the first bytes as `zstd -dc` tells it: any frame it reads
//! (skippable and legacy ones too) makes the file zstd, and another compression it
//! decodes (gzip, xz, lzma, lz4) refuses the file; only the rest is a tar. So no file
//! shows one package to a tar reader and another to `zstd -dc | tar`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::split;
use super::{read_failure, ReadError, ZSTD_MAGIC};
use crate::cancel::is_cancelled;
use crate::package::seekable::{FrameReader, SeekTable, SeekTableError};

/// A package file, ready to be read from any offset of its tar.
pub struct PackageBytes {
    path: PathBuf,
    kind: Kind,
}

enum Kind {
    Plain,
    Framed(Arc<SeekTable>),
    /// The stream where the last read left it, when no read holds it.
    Stream(Arc<Mutex<Option<Cursor>>>),
}

struct Cursor {
    reader: Box<dyn Read + Send>,
    position: u64,
}

impl PackageBytes {
    /// Finds out how `path` (a package, or a split package's first part) can be read:
    /// by its content, whatever its name.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let io_err = |source| read_failure(path, source);
        let kind = if split::is_split(path) {
            // Checks the parts before anything else reads them.
            split::open(path)?;
            Kind::Stream(Arc::default())
        } else {
            let mut file = File::open(path).map_err(io_err)?;
            let mut magic = [0u8; 4];
            let head = file.read(&mut magic).map_err(io_err)?;
            if head == 4 && starts_as_zstd(&magic) {
                match SeekTable::read(&mut file) {
                    Ok(Some(table)) => Kind::Framed(Arc::new(table)),
                    Ok(None) => Kind::Stream(Arc::default()),
                    Err(SeekTableError::Io(source)) => return Err(io_err(source)),
                    Err(refused) => return Err(ReadError::SeekTable(refused)),
                }
            } else if let Some(format) = other_compression(&magic[..head]) {
                return Err(io_err(not_read(format)));
            } else {
                Kind::Plain
            }
        };
        Ok(Self {
            path: path.to_owned(),
            kind,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether reads at different offsets cost no more than the bytes they read, so
    /// that entries may be read in parallel and in any order.
    pub fn is_random_access(&self) -> bool {
        !matches!(self.kind, Kind::Stream(_))
    }

    /// The tar from its start, for walking its headers.
    pub fn tar(&self) -> Result<TarBytes, ReadError> {
        let io_err = |source| read_failure(&self.path, source);
        Ok(match &self.kind {
            Kind::Plain => TarBytes::File(BufReader::with_capacity(
                1 << 20,
                File::open(&self.path).map_err(io_err)?,
            )),
            Kind::Framed(table) => TarBytes::Frames(FrameReader::new(
                File::open(&self.path).map_err(io_err)?,
                table.clone(),
                0,
            )),
            Kind::Stream(_) => TarBytes::Stream(stream(&self.path).map_err(io_err)?),
        })
    }

    /// `len` bytes of the tar from `offset`. A read that ends early is an error of the
    /// reader's, not a short read.
    pub fn read_at(&self, offset: u64, len: u64) -> io::Result<Box<dyn Read + Send>> {
        let reader: Box<dyn Read + Send> = match &self.kind {
            Kind::Plain => {
                let mut file = File::open(&self.path)?;
                file.seek(SeekFrom::Start(offset))?;
                Box::new(BufReader::with_capacity(1 << 20, file))
            }
            Kind::Framed(table) => Box::new(FrameReader::new(
                File::open(&self.path)?,
                table.clone(),
                offset,
            )),
            Kind::Stream(home) => Box::new(Lease::take(&self.path, home, offset)?),
        };
        Ok(Box::new(Exactly {
            inner: reader,
            left: len,
        }))
    }
}

/// The package's decompressed bytes from the start, as one stream.
fn stream(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let source: Box<dyn Read + Send> = if split::is_split(path) {
        Box::new(split::open(path).map_err(io::Error::other)?)
    } else {
        Box::new(File::open(path)?)
    };
    let mut file = BufReader::with_capacity(1 << 20, source);
    let head = file.fill_buf()?;
    if starts_as_zstd(head) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(file)?))
    } else if let Some(format) = other_compression(head) {
        Err(not_read(format))
    } else {
        Ok(Box::new(file))
    }
}

/// Whether `head` starts a zstd stream as `zstd -dc` reads one: with a data frame (of
/// this format, or of a legacy one, magics `0xFD2FB51E` to `0xFD2FB527`, which zstd
/// and pkgr's decoder still read), or with a skippable frame (magics `0x184D2A50` to
/// `0x184D2A5F`), which it passes over. Bytes that make both such a start and a tar
/// header are read as zstd, never as a tar: a tar reader would see what the frames
/// hide from `zstd -dc`.
fn starts_as_zstd(head: &[u8]) -> bool {
    let Some(magic) = head.get(..4) else {
        return false;
    };
    let legacy = (0x1e..=0x27).contains(&magic[0]) && magic[1..] == ZSTD_MAGIC[1..];
    let skippable = magic[0] & 0xf0 == 0x50 && magic[1..] == [0x2a, 0x4d, 0x18];
    magic == ZSTD_MAGIC || legacy || skippable
}

/// The other formats `zstd -dc` decodes (gzip, xz, lzma, lz4), by their first bytes. A
/// package starting as one is refused, not read as a tar: `zstd -dc` would show what
/// that stream decodes to, and a tar reader what its bytes hide.
fn other_compression(head: &[u8]) -> Option<&'static str> {
    match head {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0xfd, 0x37, ..] => Some("xz"),
        [0x5d, 0x00, ..] => Some("lzma"),
        [0x04, 0x22, 0x4d, 0x18, ..] => Some("lz4"),
        _ => None,
    }
}

fn not_read(format: &str) -> io::Error {
    io::Error::other(format!(
        "it starts as a {format} stream; pkgr reads a package as a tar or as zstd"
    ))
}

/// The tar bytes a walk reads, able to move forward without reading what it passes
/// where the source allows.
pub enum TarBytes {
    File(BufReader<File>),
    Frames(FrameReader),
    Stream(Box<dyn Read + Send>),
}

impl TarBytes {
    pub fn forward(&mut self, n: u64) -> io::Result<()> {
        check_cancelled()?;
        match self {
            Self::File(file) => {
                let end = file.get_ref().metadata()?.len();
                let here = file.stream_position()?;
                if here.saturating_add(n) > end {
                    return Err(ends_inside());
                }
                file.seek_relative(n as i64)
            }
            Self::Frames(frames) => frames.forward(n),
            Self::Stream(stream) => skip(stream, n),
        }
    }
}

impl Read for TarBytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        check_cancelled()?;
        match self {
            Self::File(file) => file.read(buf),
            Self::Frames(frames) => frames.read(buf),
            Self::Stream(stream) => stream.read(buf),
        }
    }
}

fn check_cancelled() -> io::Result<()> {
    if is_cancelled() {
        // Not ErrorKind::Interrupted: io::copy would retry that forever.
        return Err(io::Error::other("interrupted"));
    }
    Ok(())
}

fn ends_inside() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the package ends inside an entry",
    )
}

/// Reads and discards `n` bytes.
fn skip(reader: &mut dyn Read, n: u64) -> io::Result<()> {
    let skipped = io::copy(&mut reader.take(n), &mut io::sink())?;
    if skipped < n {
        return Err(ends_inside());
    }
    Ok(())
}

/// A stream package's reader, borrowed from where the last read left it; it goes
/// back there when dropped, so reads at rising offsets make one pass.
struct Lease {
    cursor: Option<Cursor>,
    home: Arc<Mutex<Option<Cursor>>>,
}

impl Lease {
    fn take(path: &Path, home: &Arc<Mutex<Option<Cursor>>>, offset: u64) -> io::Result<Self> {
        let parked = home.lock().map_or(None, |mut slot| slot.take());
        let mut cursor = match parked {
            Some(cursor) if cursor.position <= offset => cursor,
            _ => Cursor {
                reader: stream(path)?,
                position: 0,
            },
        };
        skip(&mut cursor.reader, offset - cursor.position)?;
        cursor.position = offset;
        Ok(Self {
            cursor: Some(cursor),
            home: home.clone(),
        })
    }
}

impl Read for Lease {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let cursor = self.cursor.as_mut().expect("held until dropped");
        let n = cursor.reader.read(buf)?;
        cursor.position += n as u64;
        Ok(n)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(cursor), Ok(mut slot)) = (self.cursor.take(), self.home.lock()) {
            *slot = Some(cursor);
        }
    }
}

/// Exactly `left` bytes: the end of the inner reader before them is an error.
struct Exactly {
    inner: Box<dyn Read + Send>,
    left: u64,
}

impl Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        check_cancelled()?;
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(ends_inside());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::reader::{for_each_entry, read_bounded, Flow};
    use crate::package::seekable::{SeekTable, MAX_RANDOM_ACCESS_FRAME_BYTES};
    use std::io::Write;

    /// A tar of `pkgr.yaml` and `checksums.txt` holding the given texts.
    fn tar_of(definition: &[u8], checksums: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("pkgr.yaml", definition), ("checksums.txt", checksums)] {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// `frames`, then a seek table of `sizes`, as a package file.
    fn package(frames: &[Vec<u8>], sizes: &[(u32, u32)]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for frame in frames {
            file.write_all(frame).unwrap();
        }
        file.write_all(&SeekTable::encode(sizes)).unwrap();
        file
    }

    /// Each entry's name and bytes, as the package reader hands them out.
    fn entries(package: &PackageBytes) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for_each_entry(package, |entry| {
            let bytes = read_bounded(entry.reader, entry.name, entry.size, 1 << 24)?;
            out.push((entry.name.to_owned(), bytes));
            Ok(Flow::Continue)
        })
        .unwrap();
        out
    }

    /// Asserts that every way of reading `path` sees what a plain zstd decoder sees.
    fn reads_as_zstd_dc(path: &Path) -> PackageBytes {
        let plain = zstd::decode_all(File::open(path).unwrap()).unwrap();
        let package = PackageBytes::open(path).unwrap();
        let mut whole = Vec::new();
        package.tar().unwrap().read_to_end(&mut whole).unwrap();
        assert_eq!(whole, plain);
        for (offset, len) in [(512u64, 10u64), (1536, 1), (0, 2048)] {
            let mut bytes = Vec::new();
            let mut reader = package.read_at(offset, len).unwrap();
            reader.read_to_end(&mut bytes).unwrap();
            assert_eq!(bytes, plain[offset as usize..(offset + len) as usize]);
        }
        package
    }

    #[test]
    fn a_table_hiding_a_package_refuses_it() {
        let (a, b) = (tar_of(b"A", b"a"), tar_of(b"B", b"b"));
        let frames = [
            zstd::bulk::compress(&a, 3).unwrap(),
            zstd::bulk::compress(&b, 3).unwrap(),
        ];
        let file = package(
            &frames,
            &[
                (frames[0].len() as u32, 0),
                (frames[1].len() as u32, b.len() as u32),
            ],
        );
        let err = PackageBytes::open(file.path()).err().unwrap();
        assert!(matches!(err, ReadError::SeekTable(_)), "{err}");
        assert!(
            err.to_string().starts_with("the package's seek table disagrees with its frames: frame 1 (at byte 0) decompresses to"),
            "{err}"
        );
    }

    #[test]
    fn a_table_that_cannot_be_checked_is_read_past() {
        // Package A in a frame that declares no size, said to hold nothing: the file
        // is read as one stream, so every reader sees A, as `zstd -dc | tar` does.
        let (a, b) = (tar_of(b"A", b"a"), tar_of(b"B", b"b"));
        let mut streamed = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        streamed.write_all(&a).unwrap();
        let frames = [
            streamed.finish().unwrap(),
            zstd::bulk::compress(&b, 3).unwrap(),
        ];
        let file = package(
            &frames,
            &[
                (frames[0].len() as u32, 0),
                (frames[1].len() as u32, b.len() as u32),
            ],
        );
        let package = reads_as_zstd_dc(file.path());
        assert!(!package.is_random_access());
        assert_eq!(
            entries(&package),
            [
                ("pkgr.yaml".to_owned(), b"A".to_vec()),
                ("checksums.txt".to_owned(), b"a".to_vec())
            ]
        );
    }

    /// A PAX header and its one record (1,024 bytes): a tar reader takes what follows
    /// as the next entry, whatever the header's first bytes are made to say.
    fn pax_lead_in() -> Vec<u8> {
        let record = b"18 path=pkgr.yaml\n";
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        let mut bytes = pax.as_bytes().to_vec();
        bytes.extend(record);
        bytes.resize(1024, 0);
        bytes
    }

    /// The first header's checksum, made right again after its first bytes changed.
    fn reseal_first_header(bytes: &mut [u8]) {
        let mut header = tar::Header::from_byte_slice(&bytes[..512]).clone();
        header.set_cksum();
        bytes[..512].copy_from_slice(header.as_bytes());
    }

    /// `hidden` behind a PAX header whose first bytes are `prefix` (frames that decode to
    /// nothing), then a skippable frame's magic and length covering the rest of `hidden`;
    /// then `shown` in a zstd frame. A tar reader sees `hidden`; `zstd -dc`, `shown`.
    fn polyglot(prefix: &[u8], hidden: &[u8], shown: &[u8]) -> Vec<u8> {
        let mut bytes = pax_lead_in();
        bytes.extend(hidden);
        let skippable_at = prefix.len();
        let skipped = (bytes.len() - skippable_at - 8) as u32;
        bytes[..skippable_at].copy_from_slice(prefix);
        bytes[skippable_at..skippable_at + 4].copy_from_slice(&0x184D_2A50u32.to_le_bytes());
        bytes[skippable_at + 4..skippable_at + 8].copy_from_slice(&skipped.to_le_bytes());
        reseal_first_header(&mut bytes);
        bytes.extend(zstd::bulk::compress(shown, 3).unwrap());
        bytes
    }

    #[test]
    fn a_tar_hidden_behind_leading_frames_is_passed_over_as_zstd_dc_does() {
        // Found against the fuzzers' reference reader: a file that is both a tar
        // (package A) and a zstd stream (package B). Read as a tar it showed A, verified;
        // `zstd -dc | tar` shows B. It starts with a skippable frame, or with an empty
        // frame of the legacy v0.7 format that zstd 1.5 still decodes.
        let (a, b) = (tar_of(b"A", b"a"), tar_of(b"B", b"b"));
        let legacy_empty_frame = [0x27, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0xc0, 0x00, 0x00];
        for prefix in [&[][..], &legacy_empty_frame] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), polyglot(prefix, &a, &b)).unwrap();
            let package = reads_as_zstd_dc(file.path());
            assert_eq!(
                entries(&package),
                [
                    ("pkgr.yaml".to_owned(), b"B".to_vec()),
                    ("checksums.txt".to_owned(), b"b".to_vec())
                ],
                "behind {prefix:x?}"
            );
        }
    }

    #[test]
    fn a_tar_that_starts_as_another_compression_is_refused() {
        // Found as the ones above: `zstd -dc` (as `gzip -dc`) decodes gzip, and shows
        // package B deflated after a gzip header whose extra field holds package A,
        // which a tar reader shows (and pkgr showed, verified).
        let (a, b) = (tar_of(b"A", b"a"), tar_of(b"B", b"b"));
        let mut bytes = pax_lead_in();
        bytes.extend(&a);
        let extra = u16::try_from(bytes.len() - 12).unwrap().to_le_bytes();
        bytes[..12].copy_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra[0], extra[1]]);
        reseal_first_header(&mut bytes);
        let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
        deflated.write_all(&b).unwrap();
        bytes.extend(deflated.finish().unwrap());
        let mut crc = flate2::Crc::new();
        crc.update(&b);
        bytes.extend(crc.sum().to_le_bytes());
        bytes.extend((b.len() as u32).to_le_bytes());
        let mut gunzipped = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut gunzipped)
            .unwrap();
        assert_eq!(gunzipped, b);

        let refusal = |bytes: &[u8]| {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), bytes).unwrap();
            let err = PackageBytes::open(file.path()).err().expect("refused");
            std::error::Error::source(&err).unwrap().to_string()
        };
        assert_eq!(
            refusal(&bytes),
            "it starts as a gzip stream; pkgr reads a package as a tar or as zstd"
        );
        for (magic, format) in [
            (&[0xfd, 0x37, 0x7a, 0x58][..], "xz"),
            (&[0x5d, 0x00, 0x00, 0x80], "lzma"),
            (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
        ] {
            let mut bytes = magic.to_vec();
            bytes.extend(&a);
            assert!(refusal(&bytes).contains(format), "{format}");
        }
    }

    #[test]
    fn a_package_cut_inside_an_entry_is_refused_by_the_walk() {
        // The fuzzers' first catch, in their own harness: an entry's reader ends early
        // without an error (as any `Read` may); the walk refuses the package when it
        // moves past the entry, so no caller goes on with a short entry.
        let mut tar = tar_of(b"A", b"the checksums");
        tar.truncate(3 * 512 + 4);
        for bytes in [tar.clone(), zstd::bulk::compress(&tar, 3).unwrap()] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &bytes).unwrap();
            let package = PackageBytes::open(file.path()).unwrap();
            let mut lengths = Vec::new();
            let err = for_each_entry(&package, |entry| {
                let mut body = Vec::new();
                entry.reader.read_to_end(&mut body).unwrap();
                lengths.push(body.len());
                Ok(Flow::Continue)
            })
            .unwrap_err();
            assert_eq!(lengths, [1, 4]);
            assert!(
                format!("{err:?}").contains("ends inside an entry"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_frame_too_large_for_random_access_makes_the_package_a_stream() {
        let big = vec![b'x'; MAX_RANDOM_ACCESS_FRAME_BYTES as usize];
        let tar = tar_of(b"A", &big);
        let frame = zstd::bulk::compress(&tar, 1).unwrap();
        let file = package(
            std::slice::from_ref(&frame),
            &[(frame.len() as u32, tar.len() as u32)],
        );
        let package = reads_as_zstd_dc(file.path());
        assert!(!package.is_random_access());
        assert_eq!(entries(&package)[1].1.len(), big.len());
    }

    #[test]
    fn a_checked_table_reads_as_zstd_dc_does() {
        let tar = tar_of(b"A", b"a");
        // A frame per 512-byte block, as the writer cuts at every entry.
        let frames: Vec<Vec<u8>> = tar
            .chunks(512)
            .map(|block| zstd::bulk::compress(block, 3).unwrap())
            .collect();
        let sizes: Vec<(u32, u32)> = frames.iter().map(|f| (f.len() as u32, 512)).collect();
        let file = package(&frames, &sizes);
        let package = reads_as_zstd_dc(file.path());
        assert!(package.is_random_access());
        assert_eq!(
            entries(&package)[0],
            ("pkgr.yaml".to_owned(), b"A".to_vec())
        );
    }

    #[test]
    fn a_package_pkgr_writes_is_read_through_its_table() {
        // Its frames declare their sizes and hold at most 4 MiB: the table is used.
        let dir = crate::testing::fixture_dir();
        let path = crate::testing::write_fixture_package(dir.path(), true);
        let package = reads_as_zstd_dc(&path);
        assert!(package.is_random_access());
    }
}
