//! The zstd seekable format, as pkgr writes and reads it: the package is a run of
//! independent zstd frames, each tar entry starting a new one, followed by a
//! skippable frame holding the seek table (every frame's compressed and decompressed
//! size). Any zstd decoder reads such a file as usual and skips the table; pkgr uses
//! the table to start reading at an entry without decompressing what comes before.
//!
//! The table is a hint for speed, never a second truth: before it is used, every
//! frame it lists is found where it says, measured from its headers (`zstd_frame`),
//! and must have the length it gives and declare the size it gives (a decoder refuses
//! a frame that decodes to another size than it declares). A table that a frame
//! contradicts, or that lists more frames than the file could hold, is refused; one
//! that cannot be checked cheaply (a frame that declares no size) or is not worth
//! using (a frame over [`MAX_RANDOM_ACCESS_FRAME_BYTES`], or over `MAX_FRAMES`
//! frames) is ignored, and the file is read as one stream. Either way every reader
//! sees what a plain `zstd -dc` shows.
//!
//! Layout of the table (all numbers little-endian), from the format's description in
//! zstd's `contrib/seekable_format`: skippable-frame magic `0x184D2A5E`, the frame's
//! length, one 8-byte record per frame (compressed size, decompressed size; pkgr
//! writes no per-frame checksums but reads tables that have them), then a 9-byte
//! footer: the frame count, a descriptor byte, and the magic `0x8F92EAB1`.

mod frame_reader;
mod zstd_frame;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

pub use frame_reader::FrameReader;
use zstd_frame::{Misfit, Shape, MIN_FRAME_BYTES};

const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
const FOOTER_BYTES: u64 = 9;
/// The skippable frame's own header: its magic and its length.
const FRAME_HEADER_BYTES: u64 = 8;
const CHECKSUM_FLAG: u8 = 0x80;
/// A table for more frames than this is not used (the file is read as one stream):
/// at 4 MiB a frame it describes 4 TiB, and it costs 24 MiB of memory.
const MAX_FRAMES: u64 = 1 << 20;
/// A frame larger than this makes the file be read as one stream: a read that starts
/// inside a frame decodes it from its start, and twice what pkgr writes
/// (`framed::FRAME_BYTES`) is as much as that may waste.
pub const MAX_RANDOM_ACCESS_FRAME_BYTES: u32 = 8 << 20;
/// How much of the file is read at once while the frames are measured: a block
/// header and what usually follows it.
const MEASURE_BUFFER_BYTES: usize = 8 * 1024;

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

/// A seek table that claims what its frames belie: the package is refused, since a
/// reader that trusted it would see other contents than a plain zstd decoder does.
#[derive(Debug, thiserror::Error)]
pub enum SeekTableError {
    #[error("the package's seek table lists {count} frames, more than its {data_bytes} bytes of frames could hold")]
    TooManyFrames { count: u64, data_bytes: u64 },
    #[error("the package's seek table disagrees with its frames: frame {number} (at byte {offset}) {disagreement}")]
    Disagrees {
        /// Counted from 1.
        number: u64,
        offset: u64,
        disagreement: Disagreement,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How a frame differs from its record in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Disagreement {
    #[error("is not a zstd frame")]
    NotAFrame,
    #[error("has a malformed block")]
    BadBlock,
    #[error("runs past the {table} bytes the table gives it")]
    Longer { table: u32 },
    #[error("is {actual} bytes long, not the {table} the table says")]
    Shorter { actual: u64, table: u32 },
    #[error("decompresses to {actual} bytes, not the {table} the table says")]
    Decompressed { actual: u64, table: u32 },
}

/// Every data frame of a seekable file, in order, each checked against the frame it
/// describes.
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

    /// The table at the end of `file`, once every frame it lists has been found where
    /// and as it says. `None` when the file is to be read as one stream: it does not
    /// end with a table that accounts for every byte before it, the table lists too
    /// many frames to be worth holding, or a frame is too large for random access or
    /// does not declare its size. A table that a frame contradicts is an error.
    pub fn read(file: &mut File) -> Result<Option<Self>, SeekTableError> {
        let Some(layout) = Layout::find(file)? else {
            return Ok(None);
        };
        if layout.count.saturating_mul(MIN_FRAME_BYTES) > layout.data_end {
            return Err(SeekTableError::TooManyFrames {
                count: layout.count,
                data_bytes: layout.data_end,
            });
        }
        if layout.count > MAX_FRAMES {
            return Ok(None);
        }
        let Some(table) = layout.load(file)? else {
            return Ok(None);
        };
        let too_large = |frame: &Frame| frame.decompressed_size > MAX_RANDOM_ACCESS_FRAME_BYTES;
        if table.frames.iter().any(too_large) {
            return Ok(None);
        }
        Ok(table.check_frames(file)?.then_some(table))
    }

    /// Measures every frame from its headers. `false` when one does not declare its
    /// size, so that the table cannot be checked without decoding the file.
    fn check_frames(&self, file: &File) -> Result<bool, SeekTableError> {
        let mut reader = BufReader::with_capacity(MEASURE_BUFFER_BYTES, file.try_clone()?);
        reader.seek(SeekFrom::Start(0))?;
        for (index, frame) in self.frames.iter().enumerate() {
            let disagrees = |disagreement| SeekTableError::Disagrees {
                number: index as u64 + 1,
                offset: frame.compressed_offset,
                disagreement,
            };
            let shape = zstd_frame::measure(&mut reader, u64::from(frame.compressed_size))?;
            let content_size = match shape {
                Err(Misfit::NotAFrame) => return Err(disagrees(Disagreement::NotAFrame)),
                Err(Misfit::BadBlock) => return Err(disagrees(Disagreement::BadBlock)),
                Err(Misfit::Overruns) => {
                    return Err(disagrees(Disagreement::Longer {
                        table: frame.compressed_size,
                    }))
                }
                Ok(Shape { compressed, .. }) if compressed != u64::from(frame.compressed_size) => {
                    return Err(disagrees(Disagreement::Shorter {
                        actual: compressed,
                        table: frame.compressed_size,
                    }))
                }
                Ok(Shape { content_size, .. }) => content_size,
            };
            match content_size {
                None => return Ok(false),
                Some(actual) if actual != u64::from(frame.decompressed_size) => {
                    return Err(disagrees(Disagreement::Decompressed {
                        actual,
                        table: frame.decompressed_size,
                    }))
                }
                Some(_) => {}
            }
        }
        Ok(true)
    }

    /// The frame holding decompressed byte `offset`, or `None` past the end.
    fn frame_at(&self, offset: u64) -> Option<usize> {
        let index = self
            .frames
            .partition_point(|frame| frame.decompressed_end() <= offset);
        (index < self.frames.len()).then_some(index)
    }

    /// The length of the decompressed stream.
    fn decompressed_len(&self) -> u64 {
        self.frames.last().map_or(0, Frame::decompressed_end)
    }

    #[cfg(test)]
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }
}

/// Where a seek table lies in its file, from its footer and skippable-frame header.
struct Layout {
    count: u64,
    /// 8, or 12 with per-frame checksums.
    record_bytes: u64,
    data_end: u64,
}

impl Layout {
    /// `None` when the file does not end with a seek table.
    fn find(file: &mut File) -> io::Result<Option<Self>> {
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
        let record_bytes = if footer[4] & CHECKSUM_FLAG != 0 {
            12
        } else {
            8
        };
        let length = count * record_bytes + FOOTER_BYTES;
        if length + FRAME_HEADER_BYTES > len {
            return Ok(None);
        }
        let data_end = len - length - FRAME_HEADER_BYTES;
        let mut header = [0u8; FRAME_HEADER_BYTES as usize];
        file.seek(SeekFrom::Start(data_end))?;
        file.read_exact(&mut header)?;
        if u32_at(&header, 0) != SKIPPABLE_MAGIC || u64::from(u32_at(&header, 4)) != length {
            return Ok(None);
        }
        Ok(Some(Self {
            count,
            record_bytes,
            data_end,
        }))
    }

    /// The records, or `None` when their frames do not fill the file up to the table
    /// exactly: then the table does not describe this file.
    fn load(&self, file: &mut File) -> io::Result<Option<SeekTable>> {
        file.seek(SeekFrom::Start(self.data_end + FRAME_HEADER_BYTES))?;
        let mut records = BufReader::new(file);
        let mut frames = Vec::with_capacity(self.count as usize);
        let (mut compressed_offset, mut decompressed_offset) = (0u64, 0u64);
        let mut record = [0u8; 12];
        for _ in 0..self.count {
            records.read_exact(&mut record[..self.record_bytes as usize])?;
            let frame = Frame {
                compressed_offset,
                compressed_size: u32_at(&record, 0),
                decompressed_offset,
                decompressed_size: u32_at(&record, 4),
            };
            compressed_offset += u64::from(frame.compressed_size);
            decompressed_offset += u64::from(frame.decompressed_size);
            frames.push(frame);
        }
        Ok((compressed_offset == self.data_end).then_some(SeekTable {
            frames,
            data_end: self.data_end,
        }))
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

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

    /// `frames` as they are, then a table of `sizes` (compressed, decompressed).
    fn with_table(frames: &[&[u8]], sizes: &[(u32, u32)]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for frame in frames {
            file.write_all(frame).unwrap();
        }
        file.write_all(&SeekTable::encode(sizes)).unwrap();
        file
    }

    fn read_table(file: &tempfile::NamedTempFile) -> Result<Option<SeekTable>, SeekTableError> {
        SeekTable::read(&mut File::open(file.path()).unwrap())
    }

    fn refusal(file: &tempfile::NamedTempFile) -> String {
        match read_table(file) {
            Err(e @ (SeekTableError::Disagrees { .. } | SeekTableError::TooManyFrames { .. })) => {
                e.to_string()
            }
            other => panic!("the table was not refused: {other:?}"),
        }
    }

    fn parts() -> Vec<Vec<u8>> {
        [&b"first part"[..], b"the second, longer part", b"third"]
            .iter()
            .map(|part| part.to_vec())
            .collect()
    }

    fn compressed(parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
        parts
            .iter()
            .map(|part| zstd::bulk::compress(part, 3).unwrap())
            .collect()
    }

    #[test]
    fn a_table_hiding_a_frame_is_refused() {
        // A whole package A in frame 1, said to hold nothing; package B after it. A
        // reader trusting the table would show B where `zstd -dc` shows A then B.
        let (a, b) = (b"package A".to_vec(), b"package B".to_vec());
        let frames = compressed(&[a.clone(), b.clone()]);
        let file = with_table(
            &[&frames[0], &frames[1]],
            &[(frames[0].len() as u32, 0), (frames[1].len() as u32, 9)],
        );
        assert_eq!(
            refusal(&file),
            "the package's seek table disagrees with its frames: frame 1 (at byte 0) decompresses to 9 bytes, not the 0 the table says"
        );

        // The same hidden frame without a declared size cannot be checked from its
        // header: the file is read as one stream, as `zstd -dc` reads it.
        let mut streamed = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        streamed.write_all(&a).unwrap();
        let streamed = streamed.finish().unwrap();
        let file = with_table(
            &[&streamed, &frames[1]],
            &[(streamed.len() as u32, 0), (frames[1].len() as u32, 9)],
        );
        assert_eq!(read_table(&file).unwrap(), None);
    }

    #[test]
    fn tables_with_wrong_decompressed_sizes_are_refused() {
        let parts = parts();
        let frames = compressed(&parts);
        let frame_refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let honest: Vec<(u32, u32)> = frames
            .iter()
            .zip(&parts)
            .map(|(f, p)| (f.len() as u32, p.len() as u32))
            .collect();
        assert!(read_table(&with_table(&frame_refs, &honest))
            .unwrap()
            .is_some());

        let mut rotated = honest.clone();
        let sizes: Vec<u32> = honest.iter().map(|(_, d)| *d).collect();
        for (i, record) in rotated.iter_mut().enumerate() {
            record.1 = sizes[(i + 1) % sizes.len()];
        }
        assert_eq!(
            refusal(&with_table(&frame_refs, &rotated)),
            "the package's seek table disagrees with its frames: frame 1 (at byte 0) decompresses to 10 bytes, not the 23 the table says"
        );

        let ones: Vec<(u32, u32)> = honest.iter().map(|(c, _)| (*c, 1)).collect();
        assert!(refusal(&with_table(&frame_refs, &ones)).contains("frame 1 (at byte 0)"));

        // Only the last record wrong.
        let mut last = honest.clone();
        last[2].1 += 1;
        let offset = frames[0].len() + frames[1].len();
        assert_eq!(
            refusal(&with_table(&frame_refs, &last)),
            format!("the package's seek table disagrees with its frames: frame 3 (at byte {offset}) decompresses to 5 bytes, not the 6 the table says")
        );
    }

    #[test]
    fn tables_with_wrong_compressed_sizes_are_refused() {
        let parts = parts();
        let frames = compressed(&parts);
        let frame_refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let (c0, c1, c2) = (
            frames[0].len() as u32,
            frames[1].len() as u32,
            frames[2].len() as u32,
        );
        // The sums still fill the file; the boundaries are moved.
        let shorter = [(c0 - 1, 10), (c1 + 1, 23), (c2, 5)];
        assert_eq!(
            refusal(&with_table(&frame_refs, &shorter)),
            format!("the package's seek table disagrees with its frames: frame 1 (at byte 0) runs past the {} bytes the table gives it", c0 - 1)
        );
        let longer = [(c0 + 1, 10), (c1 - 1, 23), (c2, 5)];
        assert_eq!(
            refusal(&with_table(&frame_refs, &longer)),
            format!("the package's seek table disagrees with its frames: frame 1 (at byte 0) is {c0} bytes long, not the {} the table says", c0 + 1)
        );
        // Two frames said to be one.
        let merged = [(c0 + c1, 33), (c2, 5)];
        assert!(refusal(&with_table(&frame_refs, &merged)).contains("is "));

        // A record for a skippable frame among the data frames.
        let mut skippable = SKIPPABLE_MAGIC.to_le_bytes().to_vec();
        skippable.extend([1, 0, 0, 0, 0]);
        let file = with_table(
            &[&frames[0], &skippable],
            &[(c0, 10), (skippable.len() as u32, 0)],
        );
        assert_eq!(
            refusal(&file),
            format!("the package's seek table disagrees with its frames: frame 2 (at byte {c0}) is not a zstd frame")
        );
    }

    #[test]
    fn a_table_of_more_frames_than_the_file_could_hold_is_refused_unread() {
        let frames = compressed(&parts());
        let frame_refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let data: usize = frames.iter().map(Vec::len).sum();
        let count = data / MIN_FRAME_BYTES as usize + 1;
        let records = vec![(0u32, 0u32); count];
        assert_eq!(
            refusal(&with_table(&frame_refs, &records)),
            format!("the package's seek table lists {count} frames, more than its {data} bytes of frames could hold")
        );
    }

    #[test]
    fn a_table_of_too_many_frames_to_hold_is_not_used() {
        // Frames enough for the count (the data is sparse zeros, never read).
        let count = MAX_FRAMES + 1;
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(count * MIN_FRAME_BYTES).unwrap();
        let records = vec![(MIN_FRAME_BYTES as u32, 0u32); count as usize];
        let mut handle = file.reopen().unwrap();
        handle.seek(SeekFrom::End(0)).unwrap();
        handle.write_all(&SeekTable::encode(&records)).unwrap();
        assert_eq!(read_table(&file).unwrap(), None);
    }

    #[test]
    fn frames_too_large_for_random_access_make_the_file_a_stream() {
        let big = vec![0u8; MAX_RANDOM_ACCESS_FRAME_BYTES as usize + 1];
        let frames = compressed(&[b"head".to_vec(), big.clone()]);
        let sizes = [
            (frames[0].len() as u32, 4),
            (frames[1].len() as u32, big.len() as u32),
        ];
        let file = with_table(&[&frames[0], &frames[1]], &sizes);
        assert_eq!(read_table(&file).unwrap(), None);
    }

    #[test]
    fn a_frame_that_decodes_to_another_size_than_it_declares_fails_to_decode() {
        // The table is checked against each frame's declared size; zstd holds each
        // frame to it as it decodes.
        let mut frame = zstd::bulk::compress(b"abc", 3).unwrap();
        assert_eq!(frame[5], 3, "a single-segment frame with a one-byte size");
        frame[5] = 4;
        assert!(zstd::decode_all(&frame[..]).is_err());
        frame[5] = 2;
        assert!(zstd::decode_all(&frame[..]).is_err());
    }
}
