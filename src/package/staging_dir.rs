//! The staging directory beside the output: locked for as long as its create lives,
//! so that the next create in the same output directory can sweep the ones whose
//! creator was killed (SIGKILL, a power cut) and would otherwise stay for ever.
//!
//! A directory is made under a name sweeps ignore, locked, and only then renamed to
//! `.pkgr-staging-*`: a sweep can never take a live create's directory in the moment
//! between its creation and its lock.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

const PREFIX: &str = ".pkgr-staging-";
const UNLOCKED_PREFIX: &str = ".pkgr-new-";

/// A locked staging directory, removed when dropped.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
    /// Holds the directory's lock; the kernel drops it with the process.
    _lock: File,
}

impl StagingDir {
    /// Makes a fresh staging directory in `output`, after sweeping the abandoned ones.
    pub fn create(output: &Path) -> io::Result<Self> {
        sweep(output);
        let fresh = tempfile::Builder::new()
            .prefix(UNLOCKED_PREFIX)
            .tempdir_in(output)?;
        let lock = File::open(fresh.path())?;
        lock.try_lock().map_err(io::Error::other)?;
        let suffix = fresh
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(UNLOCKED_PREFIX))
            .unwrap_or_default()
            .to_owned();
        let path = output.join(format!("{PREFIX}{suffix}"));
        fs::rename(fresh.path(), &path)?;
        // Renamed away: the TempDir must not remove a path that no longer exists.
        let _ = fresh.keep();
        Ok(Self { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes each staging directory in `output` that no live create holds. Best effort:
/// what cannot be removed now is tried again by the next create.
fn sweep(output: &Path) {
    let Ok(entries) = fs::read_dir(output) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(PREFIX) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(dir) = File::open(entry.path()) else {
            continue;
        };
        if dir.try_lock().is_ok() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staging_dirs(output: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(output)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(PREFIX))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_abandoned_staging_dir_is_swept_and_a_live_one_is_kept() {
        let output = tempfile::tempdir().unwrap();
        let abandoned = output.path().join(format!("{PREFIX}dead"));
        fs::create_dir_all(abandoned.join("images/blobs")).unwrap();
        fs::write(abandoned.join("images/blobs/x"), b"left by a killed create").unwrap();

        let live = StagingDir::create(output.path()).unwrap();
        assert_eq!(
            staging_dirs(output.path()),
            vec![live.path().file_name().unwrap().to_str().unwrap()]
        );
        let second = StagingDir::create(output.path()).unwrap();
        assert!(live.path().is_dir(), "a live staging dir was swept");
        assert_eq!(staging_dirs(output.path()).len(), 2);

        let (first, second_path) = (live.path().to_owned(), second.path().to_owned());
        drop(live);
        drop(second);
        assert!(!first.exists() && !second_path.exists());
    }
}
