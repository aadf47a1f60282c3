//! Zarf's split packages, read as one stream without joining them on disk.
//! `<package>.part000` holds JSON with the whole file's sha256, its size and the number
//! of parts; `.part001` onwards hold the bytes, in order. The parts are checked up front
//! (all present, sizes adding up to the declared size), and the bytes are hashed as
//! they pass: reaching the end with another digest is an error.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::Hasher;

/// Zarf writes at most 999 parts after the first.
const MAX_PARTS: usize = 999;
/// part000 is a small JSON object.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("{} is a later part of a split package: give its first part, {}", given.display(), first.display())]
    NotFirst { given: PathBuf, first: PathBuf },
    #[error("{} is not a split package's first part: {reason}", path.display())]
    BadHeader { path: PathBuf, reason: String },
    #[error("the split package is missing part {number} ({})", path.display())]
    MissingPart { number: usize, path: PathBuf },
    #[error("the split package's parts hold {actual} bytes, but {} says {declared}", first.display())]
    WrongSize {
        first: PathBuf,
        declared: u64,
        actual: u64,
    },
    #[error("the split package's parts hash to sha256:{actual}, but {} says sha256:{declared}", first.display())]
    WrongDigest {
        first: PathBuf,
        declared: String,
        actual: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    sha256_sum: String,
    bytes: u64,
    count: usize,
}

/// The part number of `path` if its name ends in `.partNNN`.
fn part_number(path: &Path) -> Option<(usize, String)> {
    let name = path.file_name()?.to_str()?;
    let (stem, number) = name.rsplit_once(".part")?;
    if number.len() != 3 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, stem.to_owned()))
}

/// Whether `path` names a part of a split package.
pub fn is_split(path: &Path) -> bool {
    part_number(path).is_some()
}

/// Opens the split package whose first part is `first`, checking every part.
pub fn open(first: &Path) -> Result<SplitReader, SplitError> {
    let (number, stem) = part_number(first).ok_or_else(|| SplitError::BadHeader {
        path: first.to_owned(),
        reason: "its name does not end in .partNNN".into(),
    })?;
    let part_path = |n: usize| first.with_file_name(format!("{stem}.part{n:03}"));
    if number != 0 {
        return Err(SplitError::NotFirst {
            given: first.to_owned(),
            first: part_path(0),
        });
    }
    let bad = |reason: String| SplitError::BadHeader {
        path: first.to_owned(),
        reason,
    };
    let mut text = Vec::new();
    File::open(first)
        .and_then(|f| f.take(MAX_HEADER_BYTES + 1).read_to_end(&mut text))
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MAX_HEADER_BYTES {
        return Err(bad(format!("it is over {MAX_HEADER_BYTES} bytes")));
    }
    let header: Header = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if header.count == 0 || header.count > MAX_PARTS {
        return Err(bad(format!(
            "it says {} parts, not 1 to {MAX_PARTS}",
            header.count
        )));
    }
    let declared = header
        .sha256_sum
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    if declared.len() != 64 || !declared.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("its sha256Sum is not a sha256 digest".into()));
    }
    let mut parts = Vec::with_capacity(header.count);
    let mut actual = 0u64;
    for n in 1..=header.count {
        let path = part_path(n);
        let size = std::fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .ok_or_else(|| SplitError::MissingPart {
                number: n,
                path: path.clone(),
            })?
            .len();
        actual = actual.saturating_add(size);
        parts.push(path);
    }
    if actual != header.bytes {
        return Err(SplitError::WrongSize {
            first: first.to_owned(),
            declared: header.bytes,
            actual,
        });
    }
    Ok(SplitReader {
        first: first.to_owned(),
        parts: parts.into_iter(),
        current: None,
        hasher: Some(Hasher::default()),
        declared,
    })
}

/// The parts' bytes in order, hashed as they pass.
pub struct SplitReader {
    first: PathBuf,
    parts: std::vec::IntoIter<PathBuf>,
    current: Option<File>,
    /// Taken when the end is reached and the digest checked.
    hasher: Option<Hasher>,
    declared: String,
}

impl SplitReader {
    /// The `sha256Sum` part000 declares, as 64 lowercase hex digits.
    pub fn declared_sha256(&self) -> &str {
        &self.declared
    }
}

impl Read for SplitReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(file) = &mut self.current {
                let n = file.read(buf)?;
                if n > 0 {
                    if let Some(hasher) = &mut self.hasher {
                        hasher.update(&buf[..n]);
                    }
                    return Ok(n);
                }
                self.current = None;
            }
            match self.parts.next() {
                Some(path) => self.current = Some(File::open(path)?),
                None => {
                    if let Some(hasher) = self.hasher.take() {
                        let actual = hasher.finish().hex().to_owned();
                        if actual != self.declared {
                            return Err(io::Error::other(SplitError::WrongDigest {
                                first: self.first.clone(),
                                declared: self.declared.clone(),
                                actual,
                            }));
                        }
                    }
                    return Ok(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// Writes `data` as a split package of `parts` parts; returns part000's path.
    fn split(dir: &Path, data: &[u8], parts: usize) -> PathBuf {
        let chunk = data.len().div_ceil(parts);
        for (i, piece) in data.chunks(chunk).enumerate() {
            std::fs::write(dir.join(format!("p.tar.zst.part{:03}", i + 1)), piece).unwrap();
        }
        let first = dir.join("p.tar.zst.part000");
        let header = format!(
            r#"{{"sha256Sum":"{}","bytes":{},"count":{parts}}}"#,
            Digest::of(data).hex(),
            data.len()
        );
        std::fs::write(&first, header).unwrap();
        first
    }

    #[test]
    fn the_parts_read_as_one_stream_and_a_damaged_one_fails_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let first = split(dir.path(), &data, 3);
        let mut read = Vec::new();
        open(&first).unwrap().read_to_end(&mut read).unwrap();
        assert_eq!(read, data);

        let second = dir.path().join("p.tar.zst.part002");
        let mut bytes = std::fs::read(&second).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&second, bytes).unwrap();
        let err = open(&first)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("parts hash to sha256:"), "{err}");
    }

    #[test]
    fn missing_parts_later_parts_and_wrong_sizes_are_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let first = split(dir.path(), &[7u8; 3000], 3);
        let err = open(&dir.path().join("p.tar.zst.part002")).err().unwrap();
        assert!(matches!(err, SplitError::NotFirst { .. }), "{err}");

        std::fs::write(dir.path().join("p.tar.zst.part003"), [7u8; 10]).unwrap();
        let err = open(&first).err().unwrap();
        assert!(matches!(err, SplitError::WrongSize { .. }), "{err}");

        std::fs::remove_file(dir.path().join("p.tar.zst.part003")).unwrap();
        let err = open(&first).err().unwrap();
        assert!(
            matches!(err, SplitError::MissingPart { number: 3, .. }),
            "{err}"
        );
    }
}
