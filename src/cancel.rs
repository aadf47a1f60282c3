//! Cooperative cancellation for blocking work. Ctrl-C or SIGTERM drops the async work
//! at once, but threads that hash, extract or compress run to their next check of this
//! flag; every file they read goes through [`Cancellable`], so they stop within one
//! read.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Asks all blocking work to stop.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::Relaxed)
}

/// A reader that fails once cancellation has been asked for.
pub struct Cancellable<R>(pub R);

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if is_cancelled() {
            // Not ErrorKind::Interrupted: io::copy would retry that forever.
            return Err(io::Error::other("interrupted"));
        }
        self.0.read(buf)
    }
}
