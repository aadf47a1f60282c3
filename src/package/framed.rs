//! The writing half of the seekable format: a `Write` that cuts the tar stream into
//! frames (a new one at every entry, and every [`FRAME_BYTES`] within one),
//! compresses them on all cores, writes them in order and ends with the seek table.
//! Each frame depends only on its own bytes, so the output is the same for any
//! number of workers. Every frame declares its decompressed size in its header, which
//! is how a reader checks the seek table before trusting it. The frames' buffers are
//! reused, frame after frame, rather than allocated anew.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use super::seekable::SeekTable;

/// The most a frame holds: small enough that a reader starting inside a blob wastes
/// little, large enough that compression loses nothing measurable to frame edges.
pub const FRAME_BYTES: usize = 4 << 20;

/// A frame to compress, the buffer to compress it into, and where to send both back.
type Job = (Vec<u8>, Vec<u8>, mpsc::Sender<io::Result<Buffers>>);

/// A frame's bytes and, compressed, its output: handed back to be written and reused.
struct Buffers {
    frame: Vec<u8>,
    compressed: Vec<u8>,
}

pub struct FramedEncoder<W: Write> {
    /// `None` only once `finish` has handed it back.
    out: Option<W>,
    current: Vec<u8>,
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
                let Ok(Ok((frame, mut compressed, reply))) = job else {
                    return;
                };
                compressed.clear();
                // Room for zstd's worst case, so the compression cannot run out of it.
                compressed.reserve(zstd::zstd_safe::compress_bound(frame.len()));
                let done = compressor
                    .compress_to_buffer(&frame, &mut compressed)
                    .map(|_| Buffers { frame, compressed });
                // The writer may have gone (an error elsewhere); nothing to tell then.
                let _ = reply.send(done);
            }));
        }
        Ok(Self {
            out: Some(out),
            current: Vec::with_capacity(FRAME_BYTES),
            pending: VecDeque::new(),
            spare: Vec::new(),
            jobs: Some(jobs),
            workers: handles,
            sizes: Vec::new(),
        })
    }

    /// Ends the current frame: the next byte written starts a new one.
    pub fn cut(&mut self) -> io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let Buffers {
            mut frame,
            compressed,
        } = self.spare.pop().unwrap_or_else(|| Buffers {
            frame: Vec::with_capacity(FRAME_BYTES),
            compressed: Vec::new(),
        });
        frame.clear();
        let bytes = std::mem::replace(&mut self.current, frame);
        let decompressed = bytes.len() as u32;
        let (reply, answer) = mpsc::channel();
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send((bytes, compressed, reply))
            .map_err(|_| stopped())?;
        self.pending.push_back((decompressed, answer));
        while self.pending.len() > self.workers.len() + 1 {
            self.write_oldest()?;
        }
        Ok(())
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
            let room = FRAME_BYTES - self.current.len();
            let (now, rest) = buf.split_at(room.min(buf.len()));
            self.current.extend_from_slice(now);
            buf = rest;
            if self.current.len() == FRAME_BYTES {
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
}
