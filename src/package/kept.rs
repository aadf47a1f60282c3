//! The one cap on what a read of a package holds in memory to walk its graph: the
//! manifests and configs kept by `inspect`'s summary, the scan and push's early head.

use super::PackageError;

/// Manifests and configs kept in memory, in all: a package that needs more is refused
/// rather than allowed to exhaust memory.
pub const MAX_KEPT_BYTES: u64 = 256 * 1024 * 1024;

/// The bytes one read has kept so far.
#[derive(Debug, Default)]
pub struct Kept(u64);

impl Kept {
    /// Counts `size` more bytes, or refuses them once the total passes the cap.
    pub fn add(&mut self, size: u64) -> Result<(), PackageError> {
        self.0 = self.0.saturating_add(size);
        if self.0 > MAX_KEPT_BYTES {
            return Err(PackageError::TooMuchMetadata {
                limit: MAX_KEPT_BYTES,
            });
        }
        Ok(())
    }
}
