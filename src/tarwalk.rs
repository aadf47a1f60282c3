//! Walking a tar stream one header at a time, so that pkgr checks each header's
//! declared size before reading its body. The tar crate buffers PAX (`x`, `g`) and GNU
//! long-name (`L`, `K`) bodies whole before a caller sees the entry they describe, so
//! a few compressed kilobytes could claim gigabytes of memory; here those bodies are
//! capped and applied by pkgr. Only `tar::Header` is borrowed, to parse one block.
//!
//! Both tars pkgr reads from outside go through this walk: a package (`package::reader`)
//! and a Docker daemon's `docker save` stream (`daemon::save`). Its messages name the
//! package; the daemon's reader words its own from the same variants.

use std::io::{self, Read};

/// PAX and GNU long-name bodies larger than this are refused unread. Real ones hold a
/// path and a few numbers.
pub const MAX_EXTENDED_HEADER_BYTES: u64 = 64 * 1024;

const BLOCK: u64 = 512;

/// Why the stream is not a tar that pkgr reads. Entries are counted from 1 over every
/// header, extended ones included. Messages never quote bytes from the package.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("entry {entry} of the package has a {size}-byte extended header, over the {MAX_EXTENDED_HEADER_BYTES}-byte limit")]
    ExtendedTooLarge { entry: u64, size: u64 },
    #[error("the package is not a tar archive: its first header is not a tar header")]
    NotTar,
    #[error("entry {entry} of the package has a damaged tar header")]
    BadHeader { entry: u64 },
    #[error("entry {entry} of the package has a malformed extended header")]
    BadExtended { entry: u64 },
    #[error(
        "entry {entry} of the package is a second extended header of the same kind for one file"
    )]
    TwoExtended { entry: u64 },
    #[error("the package ends after an extended header, before the file it describes")]
    Dangling,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A file's header, with its extended headers applied.
#[derive(Debug)]
pub struct Member {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    /// From a PAX `size` record when there is one, which overrides the header (Go
    /// writes 0 in the header of files over 8 GiB).
    pub size: u64,
    /// Where the file's bytes start in the tar.
    pub offset: u64,
    /// What a link points at: from a GNU long-link or PAX `linkpath` record, else
    /// the header's own field; `None` when neither names anything.
    pub link_name: Option<Vec<u8>>,
}

/// A byte source the walk can move forward in without reading what it passes over,
/// where the source allows (a seekable package does).
pub trait Forward: Read {
    fn forward(&mut self, n: u64) -> io::Result<()> {
        let skipped = io::copy(&mut self.take(n), &mut io::sink())?;
        if skipped < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the package ends inside an entry",
            ));
        }
        Ok(())
    }
}

impl Forward for &[u8] {}
impl<A: Read, B: Read> Forward for io::Chain<A, B> {}

/// Extended headers seen since the last file.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Pax>,
}

#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
}

/// Reads members in order; between calls to `next_member`, reading `TarWalk` yields
/// the current member's bytes.
pub struct TarWalk<R> {
    inner: R,
    /// Bytes of the tar consumed so far.
    position: u64,
    headers: u64,
    /// Unread bytes of the current body, then its padding to the next block.
    left: u64,
    padding: u64,
}

impl<R: Forward> TarWalk<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            position: 0,
            headers: 0,
            left: 0,
            padding: 0,
        }
    }

    /// Reads what follows the end of the archive, to the end of the stream.
    pub fn drain(&mut self) -> std::io::Result<u64> {
        std::io::copy(&mut self.inner, &mut std::io::sink())
    }

    pub fn next_member(&mut self) -> Result<Option<Member>, TarError> {
        let mut pending = Pending::default();
        loop {
            self.skip_rest()?;
            let Some(header) = self.read_header()? else {
                if pending.long_name.is_some()
                    || pending.long_link.is_some()
                    || pending.pax.is_some()
                {
                    return Err(TarError::Dangling);
                }
                return Ok(None);
            };
            let entry = self.headers;
            let kind = header.entry_type();
            let size = header
                .entry_size()
                .map_err(|_| TarError::BadHeader { entry })?;
            let extended = kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions();
            if !extended {
                let pax = pending.pax.unwrap_or_default();
                let name = match (pending.long_name, pax.path) {
                    (Some(name), _) | (None, Some(name)) => name,
                    (None, None) => header.path_bytes().into_owned(),
                };
                let link_name = pending
                    .long_link
                    .or(pax.linkpath)
                    .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
                let size = pax.size.unwrap_or(size);
                self.start_body(size);
                return Ok(Some(Member {
                    name,
                    kind,
                    size,
                    offset: self.position,
                    link_name,
                }));
            }
            // Checked before a byte of the body is read, so a claim is never buffered.
            if size > MAX_EXTENDED_HEADER_BYTES {
                return Err(TarError::ExtendedTooLarge { entry, size });
            }
            self.start_body(size);
            let mut body = Vec::with_capacity(size as usize);
            self.read_to_end(&mut body)?;
            if body.len() as u64 != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the package ends inside an extended header",
                )
                .into());
            }
            let twice = TarError::TwoExtended { entry };
            if kind.is_gnu_longname() || kind.is_gnu_longlink() {
                // GNU tar ends the name with a NUL.
                if body.last() == Some(&0) {
                    body.pop();
                }
                let slot = match kind.is_gnu_longname() {
                    true => &mut pending.long_name,
                    false => &mut pending.long_link,
                };
                if slot.replace(body).is_some() {
                    return Err(twice);
                }
            } else if kind.is_pax_local_extensions() {
                let pax = parse_pax(&body).ok_or(TarError::BadExtended { entry })?;
                if pending.pax.replace(pax).is_some() {
                    return Err(twice);
                }
            }
            // A global PAX header (`g`) sets defaults for the whole archive; pkgr, like
            // the tar crate before it, uses none of them.
        }
    }

    fn start_body(&mut self, size: u64) {
        self.left = size;
        self.padding = padding(size);
    }

    /// Passes over what the caller left of the current body, and its padding.
    fn skip_rest(&mut self) -> io::Result<()> {
        let skip = self.left + self.padding;
        self.left = 0;
        self.padding = 0;
        if skip > 0 {
            self.inner.forward(skip)?;
            self.position += skip;
        }
        Ok(())
    }

    /// The next header, or `None` at the end: the stream's end or a zero block.
    fn read_header(&mut self) -> Result<Option<tar::Header>, TarError> {
        let mut block = [0u8; BLOCK as usize];
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        let entry = self.headers + 1;
        let damaged = if entry == 1 {
            TarError::NotTar
        } else {
            TarError::BadHeader { entry }
        };
        self.position += filled as u64;
        if filled == 0 {
            return Ok(None);
        }
        if filled < block.len() {
            return Err(damaged);
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let header = tar::Header::from_byte_slice(&block).clone();
        // The checksum counts its own field as spaces.
        let sum = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|b| u32::from(*b))
            .sum::<u32>()
            + 8 * u32::from(b' ');
        if header.cksum().ok() != Some(sum) {
            return Err(damaged);
        }
        self.headers = entry;
        Ok(Some(header))
    }
}

impl<R: Forward> Read for TarWalk<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        self.position += n as u64;
        Ok(n)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// The records pkgr applies; `None` when a record is malformed, so that pkgr never
/// reads a file differently from a stricter tool.
fn parse_pax(body: &[u8]) -> Option<Pax> {
    let mut pax = Pax::default();
    for record in tar::PaxExtensions::new(body) {
        let record = record.ok()?;
        match record.key_bytes() {
            b"path" => pax.path = Some(record.value_bytes().to_vec()),
            b"linkpath" => pax.linkpath = Some(record.value_bytes().to_vec()),
            b"size" => pax.size = Some(record.value().ok()?.parse().ok()?),
            _ => {}
        }
    }
    Some(pax)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &[u8], kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        header.as_bytes().to_vec()
    }

    fn padded(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        bytes
    }

    fn members(tar: &[u8]) -> Result<Vec<(String, u64, Vec<u8>)>, TarError> {
        let mut walk = TarWalk::new(tar);
        let mut out = Vec::new();
        while let Some(member) = walk.next_member()? {
            let mut body = Vec::new();
            walk.read_to_end(&mut body)?;
            out.push((String::from_utf8(member.name).unwrap(), member.size, body));
        }
        Ok(out)
    }

    #[test]
    fn a_gnu_long_name_within_the_cap_names_the_next_file() {
        let long = format!("components/{}.tar", "n".repeat(300));
        let mut builder = tar::Builder::new(Vec::new());
        for name in [long.as_str(), "pkgr.yaml"] {
            let mut header = tar::Header::new_ustar();
            header.set_size(3);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, &b"abc"[..]).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        // The builder had to use a GNU long-name entry, or this tests nothing.
        assert_eq!(tar[156], b'L');
        let got = members(&tar).unwrap();
        assert_eq!(
            got,
            [
                (long, 3, b"abc".to_vec()),
                ("pkgr.yaml".into(), 3, b"abc".to_vec())
            ]
        );
    }

    #[test]
    fn pax_path_and_size_override_the_header() {
        let records = padded(b"18 path=pkgr.yaml\n10 size=5\n".to_vec());
        let mut tar = header(b"PaxHeader", tar::EntryType::XHeader, 28);
        tar.extend(records);
        // Go writes 0 here for files over 8 GiB and the real size in the PAX record.
        tar.extend(header(b"short", tar::EntryType::Regular, 0));
        tar.extend(padded(b"hello".to_vec()));
        tar.extend(header(b"next", tar::EntryType::Regular, 1));
        tar.extend(padded(b"x".to_vec()));
        tar.extend([0u8; 1024]);
        let got = members(&tar).unwrap();
        assert_eq!(
            got,
            [
                ("pkgr.yaml".into(), 5, b"hello".to_vec()),
                ("next".into(), 1, b"x".to_vec())
            ]
        );
    }

    /// Fails any read: the body of an oversized header must not be touched.
    struct Untouchable;
    impl Read for Untouchable {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("the body of an oversized extended header was read");
        }
    }

    #[test]
    fn an_oversized_extended_header_is_refused_unread() {
        for kind in [
            tar::EntryType::XHeader,
            tar::EntryType::XGlobalHeader,
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
        ] {
            let mut head = header(b"pkgr.yaml", tar::EntryType::Regular, 0);
            head.extend(header(b"big", kind, 2 << 30));
            let mut walk = TarWalk::new(head.as_slice().chain(Untouchable));
            assert!(walk.next_member().unwrap().is_some());
            let err = walk.next_member().unwrap_err();
            assert_eq!(
                err.to_string(),
                "entry 2 of the package has a 2147483648-byte extended header, over the 65536-byte limit"
            );
        }
        let at_cap = header(b"big", tar::EntryType::GNULongName, 64 * 1024);
        let err = TarWalk::new(at_cap.as_slice()).next_member().unwrap_err();
        assert!(matches!(err, TarError::Io(_)), "{err}");
    }

    #[test]
    fn broken_extended_headers_are_refused() {
        let mut two = header(b"L", tar::EntryType::GNULongName, 1);
        two.extend(padded(b"a".to_vec()));
        two.extend(header(b"L", tar::EntryType::GNULongName, 1));
        two.extend(padded(b"b".to_vec()));
        two.extend(header(b"f", tar::EntryType::Regular, 0));
        assert!(matches!(
            members(&two),
            Err(TarError::TwoExtended { entry: 2 })
        ));

        let mut bad = header(b"x", tar::EntryType::XHeader, 9);
        bad.extend(padded(b"99 path=a".to_vec()));
        bad.extend(header(b"f", tar::EntryType::Regular, 0));
        assert!(matches!(
            members(&bad),
            Err(TarError::BadExtended { entry: 1 })
        ));

        let mut dangling = header(b"L", tar::EntryType::GNULongName, 1);
        dangling.extend(padded(b"a".to_vec()));
        dangling.extend([0u8; 1024]);
        assert!(matches!(members(&dangling), Err(TarError::Dangling)));

        let not_tar = b"hello\x1b[31m world\n".repeat(40);
        let err = members(&not_tar).unwrap_err();
        assert!(matches!(err, TarError::NotTar), "{err}");
    }
}
