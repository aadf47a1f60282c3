//! Cooperative cancellation for blocking work, and the signals that ask for it. Ctrl-C
//! or SIGTERM drops the async work at once, but threads that hash, extract or compress
//! run to their next check of this flag; every file they read goes through
//! [`Cancellable`], so they stop within one read.

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

/// A signal that asks the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM, which service managers and `timeout` send.
    Terminate,
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "Ctrl-C",
            Self::Terminate => "SIGTERM",
        })
    }
}

/// Resolves on the first Ctrl-C or SIGTERM. A signal whose handler cannot be installed
/// keeps its default action; that is no reason to refuse to run.
pub async fn stop_signal() -> StopSignal {
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => StopSignal::Interrupt,
        () = terminated() => StopSignal::Terminate,
    }
}

#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}
