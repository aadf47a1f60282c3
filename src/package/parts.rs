//! Writing a package as Zarf's split parts: a `Write` that cuts the package stream into
//! part files of at most a given size in the staging directory as it passes, hashing the
//! whole stream, and the move of the finished parts into place. `<name>.part000` holds
//! `{"sha256Sum":"<hex>","bytes":N,"count":C}` (Zarf's field order, hex without a
//! prefix) and `.part001` to `.partC` hold the bytes in order; a stream that fits in
//! one part becomes one file under `<name>`, byte for byte what an unsplit write gives.
//!
//! The parts move only once all are complete, and part000 last: a reader sees either no
//! part000 or the whole new set, never an old part000 with new data. The parts an
//! earlier create left under the same name go first, because Zarf's reader counts
//! every `<name>.part*` beside part000 and would refuse a set with leftovers.

use std::fs::File;
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use super::writeback::WriteBack;
use crate::digest::Hasher;
use crate::progress::human_bytes;

/// The smallest part `--max-package-size` accepts: smaller parts buy nothing on any
/// medium and would hit Zarf's part limit at under 1 GiB.
pub const MIN_PART_BYTES: u64 = 1 << 20;
/// Zarf's limit on data parts, which its reader and ours enforce.
pub const MAX_PARTS: usize = 999;

/// The package needs more parts than Zarf's format allows.
#[derive(Debug, thiserror::Error)]
#[error(
    "the package needs more than {MAX_PARTS} parts of {}, more than Zarf's split format allows: give a larger part size",
    human_bytes(*max_part)
)]
pub struct TooManyParts {
    pub max_part: u64,
}

/// `<out>.partNNN`.
pub fn part_path(out: &Path, number: usize) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(format!(".part{number:03}"));
    PathBuf::from(name)
}

/// Cuts what is written into part files of at most `max_part` bytes in `dir`, all
/// synced to disk once the last is written; they are removed if this is dropped
/// unfinished.
pub struct PartWriter {
    dir: PathBuf,
    max_part: u64,
    full: Vec<TempPath>,
    current: Option<(WriteBack, TempPath)>,
    in_current: u64,
    hasher: Hasher,
}

impl PartWriter {
    pub fn new(dir: &Path, max_part: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            max_part: max_part.max(1),
            full: Vec::new(),
            current: None,
            in_current: 0,
            hasher: Hasher::default(),
        }
    }

    fn room(&self) -> u64 {
        match self.current {
            Some(_) => self.max_part - self.in_current,
            None => 0,
        }
    }

    /// Closes the part being written. It is synced only in `finish`, with the others,
    /// as a single package file is synced once when complete: syncing each part as it
    /// fills stalled the compression behind the disk (a warm-cache split create took
    /// 1.86 times as long as one file).
    fn close_current(&mut self) {
        if let Some((_file, path)) = self.current.take() {
            self.full.push(path);
        }
    }

    fn start_part(&mut self) -> io::Result<()> {
        self.close_current();
        if self.full.len() == MAX_PARTS {
            return Err(io::Error::other(TooManyParts {
                max_part: self.max_part,
            }));
        }
        let (file, path) = temp_file(&self.dir, ".pkgr-part-")?.into_parts();
        self.current = Some((WriteBack::new(file), path));
        self.in_current = 0;
        Ok(())
    }

    /// Syncs every part and hands them over with the whole stream's digest.
    pub fn finish(mut self) -> io::Result<Parts> {
        self.close_current();
        for part in &self.full {
            File::open(part)?.sync_all()?;
        }
        let bytes = self.hasher.bytes_hashed();
        Ok(Parts {
            dir: self.dir,
            data: std::mem::take(&mut self.full),
            sha256_hex: self.hasher.finish().hex().to_owned(),
            bytes,
        })
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.room() == 0 {
            self.start_part()?;
        }
        let take = buf
            .len()
            .min(usize::try_from(self.room()).unwrap_or(usize::MAX));
        let (file, _) = self.current.as_mut().ok_or_else(no_part)?;
        let written = file.write(&buf[..take])?;
        self.hasher.update(&buf[..written]);
        self.in_current += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((file, _)) => file.flush(),
            None => Ok(()),
        }
    }
}

fn no_part() -> io::Error {
    io::Error::other("no part is open")
}

/// A temp file in `dir` that the umask shapes like any other file (tempfile's are 0600).
fn temp_file(dir: &Path, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(".partial");
    #[cfg(unix)]
    builder.permissions(std::fs::Permissions::from_mode(0o666));
    builder.tempfile_in(dir)
}

/// Every part of a finished package, still in the staging directory.
pub struct Parts {
    dir: PathBuf,
    data: Vec<TempPath>,
    sha256_hex: String,
    bytes: u64,
}

/// part000, as Zarf's `ZarfSplitPackageData` marshals.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Header<'a> {
    sha256_sum: &'a str,
    bytes: u64,
    count: usize,
}

impl Parts {
    /// Moves the parts to `out` (one part: `out` itself; more: `out.part000` onwards)
    /// and returns the path a user gives to read it. `keep_going` is asked before each
    /// move; once it says no, the parts already moved are removed again.
    pub fn persist(self, out: &Path, keep_going: impl Fn() -> bool) -> io::Result<PathBuf> {
        let Self {
            dir,
            mut data,
            sha256_hex,
            bytes,
        } = self;
        if data.len() <= 1 {
            let only = match data.pop() {
                Some(only) => only,
                // Nothing was written: an empty file, as an unsplit write would leave.
                None => temp_file(&dir, ".pkgr-part-")?.into_temp_path(),
            };
            if !keep_going() {
                return Err(interrupted());
            }
            only.persist(out).map_err(|e| e.error)?;
            return Ok(out.to_owned());
        }
        let header = serde_json::to_vec(&Header {
            sha256_sum: &sha256_hex,
            bytes,
            count: data.len(),
        })
        .map_err(io::Error::other)?;
        let mut first = temp_file(&dir, ".pkgr-part-")?;
        first.write_all(&header)?;
        first.as_file().sync_all()?;
        let first = first.into_temp_path();

        remove_earlier_parts(out)?;
        let mut moved = Vec::with_capacity(data.len());
        let result = (|| {
            for (number, part) in (1..).zip(data) {
                if !keep_going() {
                    return Err(interrupted());
                }
                let target = part_path(out, number);
                part.persist(&target).map_err(|e| e.error)?;
                moved.push(target);
            }
            if !keep_going() {
                return Err(interrupted());
            }
            first.persist(part_path(out, 0)).map_err(|e| e.error)
        })();
        if let Err(err) = result {
            for path in moved {
                let _ = std::fs::remove_file(path);
            }
            return Err(err);
        }
        Ok(part_path(out, 0))
    }
}

fn interrupted() -> io::Error {
    io::Error::other("interrupted")
}

/// Removes every `<out>.partNNN` in `out`'s directory, part000 first so that no reader
/// takes the old first part for a set that is changing under it.
fn remove_earlier_parts(out: &Path) -> io::Result<()> {
    remove_if_present(&part_path(out, 0))?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(stem) = out.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix(stem))
            .and_then(|n| n.strip_prefix(".part"))
        else {
            continue;
        };
        if number.len() == 3 && number.bytes().all(|b| b.is_ascii_digit()) {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// The data parts that part000 at `first` counts, joined.
    fn joined(first: &Path) -> Vec<u8> {
        let header: serde_json::Value =
            serde_json::from_slice(&std::fs::read(first).unwrap()).unwrap();
        let out = first.with_extension("");
        let count = header["count"].as_u64().unwrap() as usize;
        let bytes: Vec<u8> = (1..=count)
            .flat_map(|n| std::fs::read(part_path(&out, n)).unwrap())
            .collect();
        assert_eq!(header["bytes"], bytes.len());
        assert_eq!(header["sha256Sum"], Digest::of(&bytes).hex());
        bytes
    }

    fn write_in_parts(dir: &Path, data: &[u8], max_part: u64) -> io::Result<Parts> {
        let mut writer = PartWriter::new(dir, max_part);
        // Odd-sized writes, so that part edges fall inside them.
        for chunk in data.chunks(7) {
            writer.write_all(chunk)?;
        }
        writer.finish()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn parts_hold_the_stream_in_order_and_part000_describes_it() {
        let (staging, output) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let out = output.path().join("p.tar.zst");
        let first = write_in_parts(staging.path(), &data, 300)
            .unwrap()
            .persist(&out, || true)
            .unwrap();
        assert_eq!(first, part_path(&out, 0));
        assert!(
            names(staging.path()).is_empty(),
            "{:?}",
            names(staging.path())
        );
        assert_eq!(
            names(output.path()),
            [0, 1, 2, 3, 4].map(|n| format!("p.tar.zst.part{n:03}"))
        );
        let sizes: Vec<u64> = (1..=4)
            .map(|n| std::fs::metadata(part_path(&out, n)).unwrap().len())
            .collect();
        assert_eq!(sizes, [300, 300, 300, 100]);
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            format!(
                r#"{{"sha256Sum":"{}","bytes":1000,"count":4}}"#,
                Digest::of(&data).hex()
            )
        );
        assert_eq!(joined(&first), data);
    }

    #[test]
    fn a_stream_that_fits_in_one_part_is_one_file() {
        let (staging, output) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let out = output.path().join("p.tar");
        for (data, max_part) in [(&b"exactly ten"[..10], 10), (b"short", 10)] {
            let path = write_in_parts(staging.path(), data, max_part)
                .unwrap()
                .persist(&out, || true)
                .unwrap();
            assert_eq!(path, out);
            assert_eq!(std::fs::read(&out).unwrap(), data);
            assert_eq!(names(output.path()), ["p.tar"]);
        }
    }

    #[test]
    fn an_earlier_sets_parts_are_replaced_not_mixed_in() {
        let (staging, output) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let out = output.path().join("p.tar.zst");
        write_in_parts(staging.path(), &[1u8; 50], 10)
            .unwrap()
            .persist(&out, || true)
            .unwrap();
        std::fs::write(output.path().join("p.tar.zst.partial"), b"not a part").unwrap();
        let first = write_in_parts(staging.path(), &[2u8; 25], 10)
            .unwrap()
            .persist(&out, || true)
            .unwrap();
        assert_eq!(
            names(output.path()),
            [
                "p.tar.zst.part000",
                "p.tar.zst.part001",
                "p.tar.zst.part002",
                "p.tar.zst.part003",
                "p.tar.zst.partial"
            ]
        );
        assert_eq!(joined(&first), [2u8; 25]);
    }

    #[test]
    fn a_stop_before_the_last_move_leaves_no_part_behind() {
        let (staging, output) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let out = output.path().join("p.tar.zst");
        let asked = std::cell::Cell::new(0);
        let err = write_in_parts(staging.path(), &[3u8; 30], 10)
            .unwrap()
            .persist(&out, || {
                asked.set(asked.get() + 1);
                asked.get() < 3
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "interrupted");
        assert!(
            names(output.path()).is_empty(),
            "{:?}",
            names(output.path())
        );
        assert!(
            names(staging.path()).is_empty(),
            "{:?}",
            names(staging.path())
        );
    }

    #[test]
    fn more_parts_than_zarf_allows_is_refused_and_leaves_nothing() {
        let staging = tempfile::tempdir().unwrap();
        let err = write_in_parts(staging.path(), &[0u8; MAX_PARTS + 1], 1)
            .err()
            .unwrap();
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<TooManyParts>());
        assert!(inner.is_some(), "{err}");
        assert_eq!(
            err.to_string(),
            "the package needs more than 999 parts of 1 B, more than Zarf's split format allows: give a larger part size"
        );
        assert!(names(staging.path()).is_empty());
    }
}
