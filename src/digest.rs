//! Validated `sha256:<hex>` digests and the streaming hasher that produces them.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A content digest that is known to be `sha256:` followed by 64 lowercase hex
/// characters, so it is always safe to use as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a valid sha256 digest (expected `sha256:` and 64 lowercase hex characters)")]
pub struct InvalidDigest(pub String);

impl Digest {
    /// The 64 hex characters, used as the blob's file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    pub fn from_hex(hex: &str) -> Result<Self, InvalidDigest> {
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self {
                hex: hex.to_owned(),
            })
        } else {
            Err(InvalidDigest(hex.to_owned()))
        }
    }

    /// The digest of a byte slice held in memory (manifests, configs).
    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = Hasher::default();
        hasher.update(bytes);
        hasher.finish()
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("sha256:") {
            Some(hex) => Self::from_hex(hex).map_err(|_| InvalidDigest(s.to_owned())),
            None => Err(InvalidDigest(s.to_owned())),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes bytes as they stream past, counting them too.
#[derive(Default, Clone)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Hashes everything `reader` yields through `buf`, handing each chunk to `each`
    /// as well (to keep or copy it).
    pub fn update_from(
        &mut self,
        reader: &mut dyn std::io::Read,
        buf: &mut [u8],
        mut each: impl FnMut(&[u8]),
    ) -> std::io::Result<()> {
        loop {
            let n = reader.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            self.update(&buf[..n]);
            each(&buf[..n]);
        }
    }

    pub fn bytes_hashed(&self) -> u64 {
        self.len
    }

    pub fn finish(self) -> Digest {
        let out = self.inner.finalize();
        let mut hex = String::with_capacity(64);
        for byte in out.iter() {
            use fmt::Write;
            let _ = write!(hex, "{byte:02x}");
        }
        Digest { hex }
    }
}

/// Hashes everything `reader` yields with a large buffer, returning its digest and
/// length. Callers that must stop on Ctrl-C pass a cancellable reader: this module sits
/// below the one that knows about cancellation.
pub fn hash_reader(mut reader: impl std::io::Read) -> std::io::Result<(Digest, u64)> {
    thread_local! {
        // One per thread, not one per call: zeroing a fresh megabyte for each of a
        // thousand small blobs costs more than hashing them.
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    let mut hasher = Hasher::default();
    BUFFER.with_borrow_mut(|buffer| hasher.update_from(&mut reader, buffer, |_| {}))?;
    let len = hasher.bytes_hashed();
    Ok((hasher.finish(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(Digest::of(b"").to_string(), empty);
        assert_eq!(empty.parse::<Digest>().unwrap().to_string(), empty);
        for bad in [
            "sha256:../../etc/passwd",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} accepted");
        }
    }
}
