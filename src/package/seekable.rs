//! The zstd seekable format, as pkgr writes and reads it: the package is a run of
//! independent zstd frames, each tar entry starting a new one, followed by a
//! skippable frame holding the seek table (every frame's compressed and decompressed
//! size). Any zstd decoder reads such a file as usual and skips the table; pkgr uses
//! the table to start reading at an entry without decompressing what comes before.
//!
//! Layout of the table (all numbers little-endian), from the format's description in
//! zstd's `contrib/seekable_format`: skippable-frame magic `0x184D2A5E`, the frame's
//! length, one 8-byte record per frame (compressed size, decompressed size; pkgr
//! writes no per-frame checksums but reads tables that have them), then a 9-byte
//! footer: the frame count, a descriptor byte, and the magic `0x8F92EAB1`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
const FOOTER_BYTES: u64 = 9;
/// The skippable frame's own header: its magic and its length.
const FRAME_HEADER_BYTES: u64 = 8;
const CHECKSUM_FLAG: u8 = 0x80;
/// A table for more frames than this is refused: at 4 MiB a frame it describes 16 TiB.
const MAX_FRAMES: u64 = 1 << 22;

/// One frame's place in the file and in the decompressed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub compressed_offset: u64,
    pub compressed_size: u32,
    pub decompressed_offset: u64,
    pub decompressed_size: u32,
}

impl Frame {
    fn decompressed_end(&self) -> u64 {
        self.decompressed_offset + u64::from(self.decompressed_size)
    }
}

/// Every data frame of a seekable file, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct SeekTable {
    frames: Vec<Frame>,
    /// Where the data frames end and the table's skippable frame begins.
    data_end: u64,
}

impl SeekTable {
    /// The skippable frame that describes frames of the given (compressed,
    /// decompressed) sizes.
    pub fn encode(sizes: &[(u32, u32)]) -> Vec<u8> {
        let records = sizes.len() as u64 * 8;
        let length = records + FOOTER_BYTES;
        let mut out = Vec::with_capacity((FRAME_HEADER_BYTES + length) as usize);
        out.extend(SKIPPABLE_MAGIC.to_le_bytes());
        out.extend((length as u32).to_le_bytes());
        for (compressed, decompressed) in sizes {
            out.extend(compressed.to_le_bytes());
            out.extend(decompressed.to_le_bytes());
        }
        out.extend((sizes.len() as u32).to_le_bytes());
        out.push(0);
        out.extend(SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    /// The table at the end of `file`, or `None` when the file does not end with one
    /// that accounts for every byte before it.
    pub fn read(file: &mut File) -> io::Result<Option<Self>> {
        let len = file.metadata()?.len();
        if len < FOOTER_BYTES + FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let mut footer = [0u8; FOOTER_BYTES as usize];
        file.seek(SeekFrom::Start(len - FOOTER_BYTES))?;
        file.read_exact(&mut footer)?;
        if u32_at(&footer, 5) != SEEKABLE_MAGIC || footer[4] & !CHECKSUM_FLAG != 0 {
            return Ok(None);
        }
        let count = u64::from(u32_at(&footer, 0));
        let record = if footer[4] & CHECKSUM_FLAG != 0 {
            12
        } else {
            8
        };
        let length = count * record + FOOTER_BYTES;
        if count > MAX_FRAMES || length + FRAME_HEADER_BYTES > len {
            return Ok(None);
        }
        let data_end = len - length - FRAME_HEADER_BYTES;
        let mut table = vec![0u8; (length + FRAME_HEADER_BYTES) as usize];
        file.seek(SeekFrom::Start(data_end))?;
        file.read_exact(&mut table)?;
        if u32_at(&table, 0) != SKIPPABLE_MAGIC || u64::from(u32_at(&table, 4)) != length {
            return Ok(None);
        }
        let mut frames = Vec::with_capacity(count as usize);
        let (mut compressed_offset, mut decompressed_offset) = (0u64, 0u64);
        for record in table[8..8 + (count * record) as usize].chunks_exact(record as usize) {
            let frame = Frame {
                compressed_offset,
                compressed_size: u32_at(record, 0),
                decompressed_offset,
                decompressed_size: u32_at(record, 4),
            };
            compressed_offset += u64::from(frame.compressed_size);
            decompressed_offset += u64::from(frame.decompressed_size);
            frames.push(frame);
        }
        // The frames must fill the file up to the table exactly, or the table does not
        // describe this file.
        if compressed_offset != data_end {
            return Ok(None);
        }
        Ok(Some(Self { frames, data_end }))
    }

    /// The frame holding decompressed byte `offset`, or `None` past the end.
    fn frame_at(&self, offset: u64) -> Option<usize> {
        let index = self
            .frames
            .partition_point(|frame| frame.decompressed_end() <= offset);
        (index < self.frames.len()).then_some(index)
    }

    #[cfg(test)]
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

type FrameDecoder = zstd::stream::read::Decoder<'static, BufReader<io::Take<File>>>;

/// The decompressed bytes of a seekable file from any offset: it starts decoding at
/// the frame that holds the offset, and [`forward`](Self::forward) jumps over whole
/// frames without decoding them.
pub struct FrameReader {
    file: File,
    table: Arc<SeekTable>,
    position: u64,
    decoder: Option<FrameDecoder>,
}

impl FrameReader {
    /// Reads `file` (described by `table`) from decompressed byte `position`.
    pub fn new(file: File, table: Arc<SeekTable>, position: u64) -> Self {
        Self {
            file,
            table,
            position,
            decoder: None,
        }
    }

    /// Moves `n` bytes forward. Within the frame being decoded it reads past them;
    /// further on it drops the decoder, and the next read starts at the right frame.
    pub fn forward(&mut self, n: u64) -> io::Result<()> {
        let target = self.position.saturating_add(n);
        let same_frame = self.decoder.is_some()
            && self.table.frame_at(self.position) == self.table.frame_at(target);
        if same_frame {
            let copied = io::copy(&mut self.by_ref().take(n), &mut io::sink())?;
            if copied < n {
                return Err(ended_early());
            }
        } else {
            self.decoder = None;
            self.position = target;
        }
        Ok(())
    }

    fn start_decoder(&mut self) -> io::Result<Option<&mut FrameDecoder>> {
        if self.decoder.is_none() {
            let Some(index) = self.table.frame_at(self.position) else {
                return Ok(None);
            };
            let frame = self.table.frames[index];
            let mut file = self.file.try_clone()?;
            file.seek(SeekFrom::Start(frame.compressed_offset))?;
            let frames = file.take(self.table.data_end - frame.compressed_offset);
            let mut decoder = zstd::stream::read::Decoder::with_buffer(BufReader::new(frames))?;
            let skip = self.position - frame.decompressed_offset;
            let skipped = io::copy(&mut (&mut decoder).take(skip), &mut io::sink())?;
            if skipped < skip {
                return Err(ended_early());
            }
            self.decoder = Some(decoder);
        }
        Ok(self.decoder.as_mut())
    }
}

fn ended_early() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the package's frames hold fewer bytes than its seek table says",
    )
}

impl Read for FrameReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(decoder) = self.start_decoder()? else {
            return Ok(0);
        };
        let n = decoder.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Frames of the given texts, then their table.
    fn seekable(parts: &[&[u8]]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let mut sizes = Vec::new();
        for part in parts {
            let frame = zstd::bulk::compress(part, 3).unwrap();
            file.write_all(&frame).unwrap();
            sizes.push((frame.len() as u32, part.len() as u32));
        }
        file.write_all(&SeekTable::encode(&sizes)).unwrap();
        file
    }

    fn read_from(file: &tempfile::NamedTempFile, at: u64) -> Vec<u8> {
        let mut handle = File::open(file.path()).unwrap();
        let table = Arc::new(SeekTable::read(&mut handle).unwrap().unwrap());
        let mut out = Vec::new();
        FrameReader::new(handle, table, at)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn any_offset_reads_the_rest_of_the_stream() {
        let file = seekable(&[b"hello ", b"", b"seekable ", b"world"]);
        let whole = b"hello seekable world";
        for at in 0..=whole.len() {
            assert_eq!(read_from(&file, at as u64), &whole[at..], "from {at}");
        }
        // Any zstd reader sees the same bytes and skips the table.
        let plain = zstd::decode_all(File::open(file.path()).unwrap()).unwrap();
        assert_eq!(plain, whole);
    }

    #[test]
    fn forward_jumps_frames_and_reads_within_one() {
        let file = seekable(&[b"0123456789", b"abcdefghij", b"ABCDEFGHIJ"]);
        let mut handle = File::open(file.path()).unwrap();
        let table = Arc::new(SeekTable::read(&mut handle).unwrap().unwrap());
        let mut reader = FrameReader::new(handle, table, 0);
        let mut two = [0u8; 2];
        reader.read_exact(&mut two).unwrap();
        reader.forward(3).unwrap();
        reader.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"56");
        reader.forward(14).unwrap();
        reader.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"BC");
    }

    #[test]
    fn a_table_that_does_not_fit_the_file_is_not_used() {
        let plain = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(plain.path(), zstd::bulk::compress(b"x", 3).unwrap()).unwrap();
        assert_eq!(
            SeekTable::read(&mut File::open(plain.path()).unwrap()).unwrap(),
            None
        );

        // A table that claims one more compressed byte than its frame has.
        let frame = zstd::bulk::compress(b"abc", 3).unwrap();
        let mut bytes = frame.clone();
        bytes.extend(SeekTable::encode(&[(frame.len() as u32 + 1, 3)]));
        std::fs::write(plain.path(), &bytes).unwrap();
        assert_eq!(
            SeekTable::read(&mut File::open(plain.path()).unwrap()).unwrap(),
            None
        );

        let mut bytes = frame.clone();
        bytes.extend(SeekTable::encode(&[(frame.len() as u32, 3)]));
        std::fs::write(plain.path(), &bytes).unwrap();
        let table = SeekTable::read(&mut File::open(plain.path()).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(table.frames().len(), 1);
    }
}
