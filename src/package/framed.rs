//! The writing half of the seekable format: a `Write` that cuts the tar stream into
//! frames (a new one at every entry, and every [`FRAME_BYTES`] within one),
//! compresses them on all cores, writes them in order and ends with the seek table.
//! Each frame depends only on its own bytes, so the output is the same for any
//! number of workers. Every frame declares its decompressed size in its header, which
//! is how a reader checks the seek table before trusting it. The frames' buffers are
//! reused, frame after frame, rather than allocated anew.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use super::seekable::SeekTable;

/// The most a frame holds: small enough that a reader starting inside a blob wastes
/// little, large enough that compression loses nothing measurable to frame edges.
pub const FRAME_BYTES: usize = 4 << 20;

/// A frame to compress (a buffer and how much of it is the frame), the buffer to
/// compress it into, and where to send both back.
type Job = (Vec<u8>, usize, Vec<u8>, mpsc::Sender<io::Result<Buffers>>);

/// A frame's bytes and, compressed, its output: handed back to be written and reused.
struct Buffers {
    frame: Vec<u8>,
    compressed: Vec<u8>,
}

pub struct FramedEncoder<W: Write> {
    /// `None` only once `finish` has handed it back.
    out: Option<W>,
    /// The frame being filled: always [`FRAME_BYTES`] long, its first `used` bytes the
    /// frame's, so that a reader can read into it directly without each read zeroing
    /// the space it is given first.
    current: Vec<u8>,
    used: usize,
    /// Frames being compressed, oldest first: one per worker and one waiting, so that
    /// a worker that finishes always finds the next frame, and no more (each holds
    /// 4 MiB in and out).
    pending: VecDeque<(u32, mpsc::Receiver<io::Result<Buffers>>)>,
    /// Buffers written out, kept for the next frames rather than allocated anew for
    /// each (at most one per worker and two more are ever in use).
    spare: Vec<Buffers>,
    jobs: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    sizes: Vec<(u32, u32)>,
}

impl<W: Write> FramedEncoder<W> {
    pub fn new(out: W, level: i32, workers: usize) -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut handles = Vec::new();
        for _ in 0..workers.max(1) {
            let queue = queue.clone();
            let mut compressor = zstd::bulk::Compressor::new(level)?;
            // zstd's default, made explicit: readers check the seek table against the
            // size each frame declares, and read a frame that declares none as a stream.
            compressor.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
            handles.push(std::thread::spawn(move || loop {
                let job = queue.lock().map(|q| q.recv());
                let Ok(Ok((frame, used, mut compressed, reply))) = job else {
                    return;
                };
                compressed.clear();
                // Room for zstd's worst case, so the compression cannot run out of it.
                compressed.reserve(zstd::zstd_safe::compress_bound(used));
                let done = compressor
                    .compress_to_buffer(&frame[..used], &mut compressed)
                    .map(|_| Buffers { frame, compressed });
                // The writer may have gone (an error elsewhere); nothing to tell then.
                let _ = reply.send(done);
            }));
        }
        Ok(Self {
            out: Some(out),
            current: vec![0; FRAME_BYTES],
            used: 0,
            pending: VecDeque::new(),
            spare: Vec::new(),
            jobs: Some(jobs),
            workers: handles,
            sizes: Vec::new(),
        })
    }

    /// Ends the current frame: the next byte written starts a new one.
    pub fn cut(&mut self) -> io::Result<()> {
        if self.used == 0 {
            return Ok(());
        }
        let Buffers { frame, compressed } = self.spare.pop().unwrap_or_else(|| Buffers {
            frame: vec![0; FRAME_BYTES],
            compressed: Vec::new(),
        });
        let bytes = std::mem::replace(&mut self.current, frame);
        let used = std::mem::take(&mut self.used);
        let (reply, answer) = mpsc::channel();
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send((bytes, used, compressed, reply))
            .map_err(|_| stopped())?;
        self.pending.push_back((used as u32, answer));
        while self.pending.len() > self.workers.len() + 1 {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Reads up to `len` bytes of `reader` straight into the frames, cut at the cap as
    /// `write` cuts them; returns how many it read, fewer only when `reader` ended.
    pub fn read_from(&mut self, reader: &mut dyn Read, len: u64) -> io::Result<u64> {
        let mut read = 0;
        while read < len {
            let want =
                (FRAME_BYTES - self.used).min(usize::try_from(len - read).unwrap_or(usize::MAX));
            let n = match reader.read(&mut self.current[self.used..self.used + want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.used += n;
            read += n as u64;
            if self.used == FRAME_BYTES {
                self.cut()?;
            }
        }
        Ok(read)
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some((decompressed, answer)) = self.pending.pop_front() else {
            return Ok(());
        };
        let buffers = answer.recv().map_err(|_| stopped())??;
        let frame = &buffers.compressed;
        self.out.as_mut().ok_or_else(stopped)?.write_all(frame)?;
        self.sizes.push((frame.len() as u32, decompressed));
        self.spare.push(buffers);
        Ok(())
    }

    /// Writes what is left and the seek table, and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.cut()?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut out = self.out.take().ok_or_else(stopped)?;
        out.write_all(&SeekTable::encode(&self.sizes))?;
        out.flush()?;
        Ok(out)
    }
}

fn stopped() -> io::Error {
    io::Error::other("a compression worker stopped")
}

impl<W: Write> Write for FramedEncoder<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let taken = buf.len();
        while !buf.is_empty() {
            let room = FRAME_BYTES - self.used;
            let (now, rest) = buf.split_at(room.min(buf.len()));
            self.current[self.used..self.used + now.len()].copy_from_slice(now);
            self.used += now.len();
            buf = rest;
            if self.used == FRAME_BYTES {
                self.cut()?;
            }
        }
        Ok(taken)
    }

    /// Frames are written as they are compressed; a flush does not end one, so that
    /// where frames end never depends on how the caller buffers.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for FramedEncoder<W> {
    fn drop(&mut self) {
        // Closing the queue ends every worker's loop.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_where_asked_and_at_the_cap_whatever_the_workers() {
        let big = vec![7u8; FRAME_BYTES + 10];
        let encode = |workers| {
            let mut encoder = FramedEncoder::new(Vec::new(), 3, workers).unwrap();
            encoder.write_all(b"header").unwrap();
            encoder.cut().unwrap();
            encoder.write_all(&big).unwrap();
            encoder.cut().unwrap();
            encoder.cut().unwrap();
            encoder.write_all(b"tail").unwrap();
            encoder.finish().unwrap()
        };
        let one = encode(1);
        assert_eq!(one, encode(3), "the bytes depend on the worker count");

        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&one).unwrap();
        let table = SeekTable::read(&mut file).unwrap().unwrap();
        let sizes: Vec<u32> = table.frames().iter().map(|f| f.decompressed_size).collect();
        assert_eq!(sizes, [6, FRAME_BYTES as u32, 10, 4]);
        let whole = zstd::decode_all(&one[..]).unwrap();
        assert_eq!(whole.len(), 6 + big.len() + 4);
    }

    #[test]
    fn bytes_read_in_make_the_frames_bytes_written_make() {
        let big: Vec<u8> = (0..FRAME_BYTES * 2 + 77).map(|i| (i % 253) as u8).collect();
        let written = {
            let mut encoder = FramedEncoder::new(Vec::new(), 3, 2).unwrap();
            encoder.write_all(b"head").unwrap();
            encoder.write_all(&big).unwrap();
            encoder.finish().unwrap()
        };
        let read_in = {
            let mut encoder = FramedEncoder::new(Vec::new(), 3, 2).unwrap();
            encoder.write_all(b"head").unwrap();
            // A reader that yields odd pieces, and a length it runs short of.
            let mut pieces = io::Cursor::new(&big).take(u64::MAX);
            let mut reader = Chunky(&mut pieces);
            let len = big.len() as u64;
            assert_eq!(encoder.read_from(&mut reader, len + 5).unwrap(), len);
            encoder.finish().unwrap()
        };
        assert!(
            written == read_in,
            "reading in made other frames than writing"
        );
    }

    /// Yields at most 1,000 bytes a read.
    struct Chunky<'a>(&'a mut dyn Read);

    impl Read for Chunky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1000);
            self.0.read(&mut buf[..n])
        }
    }
}
