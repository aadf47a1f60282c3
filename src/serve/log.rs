//! The line per request on stderr: method, path, status, bytes sent and time taken,
//! written once the response body is done (or dropped by a client that went away).
//! Also the lines that name a damaged blob.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether request lines are written (`-q` turns them off).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// A request whose line is written when its response is done.
pub struct Pending {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub started: Instant,
}

impl Pending {
    pub fn finish(self, bytes: u64) {
        if ENABLED.load(Ordering::Relaxed) {
            let ms = self.started.elapsed().as_secs_f64() * 1000.0;
            eprintln!(
                "{} {} {} {bytes} {ms:.1}ms",
                self.method, self.path, self.status
            );
        }
    }
}

/// A blob that failed its check: always said, whatever `-q`, since it is the reason
/// clients get errors.
pub fn damaged(digest: &crate::digest::Digest, why: &str) {
    eprintln!("blob {digest} is damaged in the package ({why}); it is not served");
}
