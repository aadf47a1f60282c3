//! Telling a stalled registry from a slow one. A registry that accepts a connection and
//! then sends nothing, or trickles a byte every few seconds, would hold a download for
//! ever under an idle timeout alone (each byte resets it). A body must instead bring
//! at least [`MIN_PROGRESS`] bytes, or end, within every window of the run's timeout;
//! otherwise it fails with a `TimedOut` error that the retries resume from. A request
//! waiting for its answer is given up on once its [`Progress`] (which an upload's body
//! touches as it goes) sees a whole window pass without any.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

use super::BlobStream;

/// Bytes a body must bring per timeout window: 16 KiB in 30 s is about 550 B/s, below
/// any link worth downloading over, and far above a trickle.
pub const MIN_PROGRESS: u64 = 16 * 1024;

/// The error a stalled body ends with.
pub fn stalled(window: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the registry sent less than {} KiB in {} s",
            MIN_PROGRESS / 1024,
            window.as_secs_f64()
        ),
    )
}

/// When a request last made progress: an upload's body touches it as each chunk goes
/// out. A request is given up on once a whole window passes without progress, which
/// bounds the wait for an answer without cutting off a long upload.
#[derive(Debug)]
pub struct Progress {
    base: Instant,
    /// Milliseconds after `base`.
    last: AtomicU64,
    /// Windows of quiet allowed after the last progress.
    windows: AtomicU32,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            last: AtomicU64::new(0),
            windows: AtomicU32::new(1),
        }
    }
}

impl Progress {
    pub fn touch(&self) {
        let now = self.base.elapsed().as_millis() as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    /// Allows `windows` windows of quiet from now on. An upload's body is handed over
    /// faster than a slow link carries it (the kernel buffers megabytes), so once all
    /// of it is handed over, the registry gets longer to take the rest and answer.
    pub fn allow_windows(&self, windows: u32) {
        self.windows.store(windows.max(1), Ordering::Relaxed);
    }

    /// Resolves once the allowed windows have passed since the last progress.
    pub async fn idle_for(&self, window: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = self.base + last + window * self.windows.load(Ordering::Relaxed);
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// `body`, failing once a window of `window` passes with less than [`MIN_PROGRESS`]
/// bytes in it.
pub fn guard(body: BlobStream, window: Duration) -> BlobStream {
    struct State {
        body: BlobStream,
        window_start: Instant,
        in_window: u64,
        done: bool,
    }
    let state = State {
        body,
        window_start: Instant::now(),
        in_window: 0,
        done: false,
    };
    stream::unfold(state, move |mut state| async move {
        if state.done {
            return None;
        }
        let deadline = state.window_start + window;
        match tokio::time::timeout_at(deadline, state.body.next()).await {
            Ok(Some(Ok(chunk))) => {
                state.in_window += chunk.len() as u64;
                if state.in_window >= MIN_PROGRESS {
                    state.window_start = Instant::now();
                    state.in_window = 0;
                }
                Some((Ok(chunk), state))
            }
            // The client's own idle timeout may fire first; it is the same stall.
            Ok(Some(Err(err))) if is_timeout(&err) => {
                state.done = true;
                Some((Err(stalled(window)), state))
            }
            Ok(Some(Err(err))) => Some((Err(err), state)),
            Ok(None) => None,
            Err(_) => {
                state.done = true;
                Some((Err(stalled(window)), state))
            }
        }
    })
    .boxed()
}

/// Whether `err` is, or wraps, a timeout.
fn is_timeout(err: &io::Error) -> bool {
    if err.kind() == io::ErrorKind::TimedOut {
        return true;
    }
    let mut cause = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(e) = cause {
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A body that sends `chunk` bytes every `every`, `count` times.
    fn paced(chunk: usize, every: Duration, count: usize) -> BlobStream {
        stream::iter(0..count)
            .then(move |_| async move {
                tokio::time::sleep(every).await;
                Ok(Bytes::from(vec![0u8; chunk]))
            })
            .boxed()
    }

    async fn drain(body: BlobStream) -> Result<u64, io::Error> {
        let mut body = body;
        let mut total = 0;
        while let Some(chunk) = body.next().await {
            total += chunk?.len() as u64;
        }
        Ok(total)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_fails_and_a_slow_steady_body_does_not() {
        let window = Duration::from_secs(30);
        let trickle = drain(guard(paced(1, Duration::from_secs(5), 100), window)).await;
        assert_eq!(trickle.unwrap_err().kind(), io::ErrorKind::TimedOut);

        // 4 KiB a second: slow, but 16 KiB arrives well within each window.
        let slow = drain(guard(paced(4096, Duration::from_secs(1), 100), window)).await;
        assert_eq!(slow.unwrap(), 4096 * 100);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_pushes_the_deadline_back() {
        let window = Duration::from_secs(30);
        let progress = std::sync::Arc::new(Progress::default());
        let toucher = {
            let progress = progress.clone();
            tokio::spawn(async move {
                for _ in 0..4 {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    progress.touch();
                }
            })
        };
        let started = Instant::now();
        progress.idle_for(window).await;
        toucher.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(80) + window);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_fails_after_one_window() {
        let window = Duration::from_secs(30);
        let silent = stream::pending().boxed();
        let started = Instant::now();
        let err = drain(guard(silent, window)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), window);
    }
}
