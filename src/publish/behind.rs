//! The package's bytes hashed and written behind the thread that makes them: a stage
//! is a thread of its own fed through a short bounded channel, and [`HashBehind`] is
//! two of them, one hashing and one writing the file, so that neither the hash nor the
//! writes hold up the tar and the compression. Memory stays bounded: each channel holds
//! [`BUFFERS_BEHIND`] buffers of at most [`PIECE_BYTES`].

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::digest::Hasher;
use crate::package::writeback::WriteBack;

/// Buffers waiting for each stage.
const BUFFERS_BEHIND: usize = 2;
/// The most a buffer holds: a whole 4 MiB frame per buffer would keep 20 MiB in flight.
const PIECE_BYTES: usize = 1 << 20;

/// A thread that takes buffers in order and ends with a result.
struct Stage<T> {
    sender: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<T>>>,
}

impl<T: Send + 'static> Stage<T> {
    fn spawn(work: impl FnOnce(Receiver<Vec<u8>>) -> io::Result<T> + Send + 'static) -> Self {
        let (sender, receiver) = sync_channel(BUFFERS_BEHIND);
        Self {
            sender: Some(sender),
            thread: Some(std::thread::spawn(move || work(receiver))),
        }
    }

    fn send(&mut self, buffer: Vec<u8>) -> io::Result<()> {
        if let Some(sender) = &self.sender {
            if sender.send(buffer).is_ok() {
                return Ok(());
            }
        }
        // The thread stopped on an error (a full disk, say): that error is the one to tell.
        match self.finish() {
            Err(err) => Err(err),
            Ok(_) => Err(io::Error::other("the package's writer stopped early")),
        }
    }

    /// Waits for every buffer sent to be taken, and for the thread's result.
    fn finish(&mut self) -> io::Result<T> {
        self.sender = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("a thread writing the package panicked")),
            None => Err(io::Error::other("the package was already finished")),
        }
    }
}

/// A package that failed on the way is let go only once its threads are done with it,
/// so none writes into a file already removed.
impl<T> Drop for Stage<T> {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A writer whose bytes are hashed on one thread and written to `file` on another.
pub struct HashBehind {
    hashing: Stage<(File, Hasher)>,
    /// Buffers the file has taken, to be filled again: a fresh one per piece would be
    /// memory touched for the first time, which on a VM costs a fault on the host too.
    spare: Receiver<Vec<u8>>,
}

impl HashBehind {
    pub fn new(file: File) -> Self {
        let (spare_back, spare) = std::sync::mpsc::channel();
        let hashing = Stage::spawn(move |to_hash| {
            let mut writing = Stage::spawn(move |to_write| {
                let mut file = WriteBack::new(file);
                for buffer in to_write {
                    file.write_all(&buffer)?;
                    // Gone only once the package is finished or given up.
                    let _ = spare_back.send(buffer);
                }
                Ok(file.into_inner())
            });
            let mut hasher = Hasher::default();
            for buffer in to_hash {
                hasher.update(&buffer);
                writing.send(buffer)?;
            }
            Ok((writing.finish()?, hasher))
        });
        Self { hashing, spare }
    }

    /// Waits for everything written to be hashed and in the file.
    pub fn finish(mut self) -> io::Result<(File, Hasher)> {
        self.hashing.finish()
    }
}

impl Write for HashBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let piece = &buf[..buf.len().min(PIECE_BYTES)];
        let mut buffer = self.spare.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(piece);
        self.hashing.send(buffer)?;
        Ok(piece.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
