//! Reading a seekable file's decompressed bytes from any offset, through a seek table
//! whose every record was checked against its frame: a read starts at the frame that
//! holds its offset and decodes on from there, across frames, as a plain zstd
//! decoder would.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use super::SeekTable;

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
        // The frames were checked against the table when it was read; this catches a
        // file that changed since.
        let end = self.table.decompressed_len();
        if self.position > end {
            return Err(io::Error::other(
                "the package's frames hold more bytes than its seek table says",
            ));
        }
        if n == 0 && !buf.is_empty() && self.position < end {
            return Err(ended_early());
        }
        Ok(n)
    }
}
