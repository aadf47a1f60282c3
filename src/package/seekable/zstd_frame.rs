//! A zstd frame measured from its headers alone (RFC 8878): where it ends, and the
//! content size its header declares, without decoding a byte of its content. The seek
//! table's claims are checked against these measures before any read trusts them.

use std::io::{self, BufReader, Read, Seek};

const FRAME_MAGIC: u32 = 0xFD2F_B528;
/// The most a block may hold (RFC 8878's Block_Maximum_Size).
const MAX_BLOCK_BYTES: u64 = 128 * 1024;
/// The frame header descriptor's reserved bit, which a decoder must find clear.
const RESERVED_BIT: u8 = 0x08;
const SINGLE_SEGMENT_BIT: u8 = 0x20;
const CHECKSUM_BIT: u8 = 0x04;
const CHECKSUM_BYTES: u64 = 4;
const BLOCK_HEADER_BYTES: usize = 3;
/// No zstd frame is shorter: the magic, the frame header descriptor, one byte of
/// window descriptor or content size, and one block header.
pub const MIN_FRAME_BYTES: u64 = 9;

/// What a frame's headers say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The frame's length in the file: header, blocks and checksum.
    pub compressed: u64,
    /// The decompressed size its header declares, if it declares one; a decoder
    /// refuses a frame that decodes to another size.
    pub content_size: Option<u64>,
}

/// Why the bytes at a place are not a frame that fits where it was looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// No zstd frame starts there (another magic, or a header a decoder refuses).
    NotAFrame,
    /// The frame goes on past the bytes it was given.
    Overruns,
    /// A block header no decoder accepts.
    BadBlock,
}

/// Measures the frame starting at `reader`'s position, reading at most `limit` bytes
/// and leaving the reader where the frame ends.
pub fn measure<R: Read + Seek>(
    reader: &mut BufReader<R>,
    limit: u64,
) -> io::Result<Result<Shape, Misfit>> {
    let mut walk = Walk {
        reader,
        used: 0,
        limit,
    };
    Ok(walk.frame()?.map(|content_size| Shape {
        compressed: walk.used,
        content_size,
    }))
}

/// A frame being measured: `used` of its `limit` bytes passed so far.
struct Walk<'a, R> {
    reader: &'a mut BufReader<R>,
    used: u64,
    limit: u64,
}

impl<R: Read + Seek> Walk<'_, R> {
    /// Walks the frame's header, blocks and checksum; returns its declared size.
    fn frame(&mut self) -> io::Result<Result<Option<u64>, Misfit>> {
        let mut head = [0u8; 5];
        if !self.read(&mut head)? {
            return Ok(Err(Misfit::Overruns));
        }
        let descriptor = head[4];
        if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != FRAME_MAGIC
            || descriptor & RESERVED_BIT != 0
        {
            return Ok(Err(Misfit::NotAFrame));
        }
        let single_segment = descriptor & SINGLE_SEGMENT_BIT != 0;
        let window_bytes = u64::from(!single_segment);
        let dictionary_bytes = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
        let size_bytes = match descriptor >> 6 {
            0 if single_segment => 1,
            0 => 0,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        if !self.pass(window_bytes + dictionary_bytes)? {
            return Ok(Err(Misfit::Overruns));
        }
        let mut field = [0u8; 8];
        if !self.read(&mut field[..size_bytes])? {
            return Ok(Err(Misfit::Overruns));
        }
        let content_size = match size_bytes {
            0 => None,
            // The two-byte field counts from 256.
            2 => Some(u64::from_le_bytes(field) + 256),
            _ => Some(u64::from_le_bytes(field)),
        };
        if let Err(misfit) = self.blocks()? {
            return Ok(Err(misfit));
        }
        if descriptor & CHECKSUM_BIT != 0 && !self.pass(CHECKSUM_BYTES)? {
            return Ok(Err(Misfit::Overruns));
        }
        Ok(Ok(content_size))
    }

    /// Passes over every block, to the one marked last.
    fn blocks(&mut self) -> io::Result<Result<(), Misfit>> {
        loop {
            let mut header = [0u8; 4];
            if !self.read(&mut header[..BLOCK_HEADER_BYTES])? {
                return Ok(Err(Misfit::Overruns));
            }
            let header = u32::from_le_bytes(header);
            let last = header & 1 != 0;
            let size = u64::from(header >> 3);
            let stored = match (header >> 1) & 0x03 {
                // Raw and compressed blocks store `size` bytes; RLE stores one byte.
                0 | 2 => size,
                1 => 1,
                _ => return Ok(Err(Misfit::BadBlock)),
            };
            if size > MAX_BLOCK_BYTES {
                return Ok(Err(Misfit::BadBlock));
            }
            if !self.pass(stored)? {
                return Ok(Err(Misfit::Overruns));
            }
            if last {
                return Ok(Ok(()));
            }
        }
    }

    /// Reads `buf` whole, or says `false` when that would pass the limit.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if !self.fits(buf.len() as u64) {
            return Ok(false);
        }
        self.reader.read_exact(buf)?;
        Ok(true)
    }

    /// Moves `n` bytes on without reading them, or says `false` when that would pass
    /// the limit.
    fn pass(&mut self, n: u64) -> io::Result<bool> {
        if !self.fits(n) {
            return Ok(false);
        }
        // Within the limit, itself within the file: `n` fits in an i64.
        self.reader.seek_relative(n as i64)?;
        Ok(true)
    }

    fn fits(&mut self, n: u64) -> bool {
        if self.used.saturating_add(n) > self.limit {
            return false;
        }
        self.used += n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn measured(bytes: &[u8], limit: u64) -> Result<Shape, Misfit> {
        measure(&mut BufReader::with_capacity(16, Cursor::new(bytes)), limit).unwrap()
    }

    /// Frames of every kind pkgr may meet: with and without a content size, with a
    /// checksum, raw, RLE and compressed blocks, many blocks, and empty.
    fn frames() -> Vec<Vec<u8>> {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let noise: Vec<u8> = (0..300_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let zeros = vec![0u8; 1 << 20];
        let mut out = Vec::new();
        for data in [&b""[..], b"x", &text, &noise, &zeros] {
            let len = data.len() as u64;
            out.push(zstd::bulk::compress(data, 3).unwrap());
            // A streaming encoder that is not told the size writes none.
            let mut streamed = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
            streamed.include_checksum(true).unwrap();
            streamed.write_all(data).unwrap();
            out.push(streamed.finish().unwrap());
            let mut pledged = zstd::stream::Encoder::new(Vec::new(), 9).unwrap();
            pledged.set_pledged_src_size(Some(len)).unwrap();
            pledged.write_all(data).unwrap();
            out.push(pledged.finish().unwrap());
        }
        out
    }

    #[test]
    fn every_frame_measures_as_zstd_itself_measures_it() {
        let mut undeclared = 0;
        for frame in frames() {
            let expected = zstd::zstd_safe::find_frame_compressed_size(&frame).unwrap();
            let size = zstd::zstd_safe::get_frame_content_size(&frame).unwrap();
            undeclared += usize::from(size.is_none());
            let mut followed = frame.clone();
            followed.extend(b"next frame");
            assert_eq!(
                measured(&followed, followed.len() as u64),
                Ok(Shape {
                    compressed: expected as u64,
                    content_size: size,
                })
            );
            assert_eq!(
                measured(&frame, frame.len() as u64 - 1),
                Err(Misfit::Overruns)
            );
        }
        assert!(undeclared > 0, "no frame without a declared size was tried");
    }

    #[test]
    fn other_bytes_are_not_frames() {
        let frame = zstd::bulk::compress(b"abc", 3).unwrap();
        // A skippable frame, such as the seek table.
        let mut skippable = 0x184D_2A5Eu32.to_le_bytes().to_vec();
        skippable.extend([4, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(measured(&skippable, 12), Err(Misfit::NotAFrame));
        let mut reserved = frame.clone();
        reserved[4] |= RESERVED_BIT;
        assert_eq!(measured(&reserved, 100), Err(Misfit::NotAFrame));
        // A block of the reserved type.
        let mut bad = frame[..6].to_vec();
        bad.extend([0x07, 0, 0]);
        assert_eq!(measured(&bad, 100), Err(Misfit::BadBlock));
        assert_eq!(measured(&frame[..3], 3), Err(Misfit::Overruns));
    }
}
