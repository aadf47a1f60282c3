//! Arbitrary bytes as a Zarf split package: the input is part000's JSON header, then
//! each part, separated by `\n--part--\n` (at most 8 parts). pkgr's split reader must
//! refuse it (any `Err`) or give exactly the joined parts (decoded when they are zstd,
//! as `zstd -dc` does), and only when the parts are all there, add up to the declared
//! size and hash to the declared digest.

#![no_main]

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pkgr::package::reader::PackageBytes;
use pkgr_fuzz::{package_tar, scratch, Reference, MAX_REFERENCE_BYTES};

const SEPARATOR: &[u8] = b"\n--part--\n";
const MAX_PARTS: usize = 8;

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| scratch("split"));
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("the scratch dir");
    let segments = split_on(data, SEPARATOR);
    let (header, parts) = segments.split_first().expect("at least one segment");
    let parts = &parts[..parts.len().min(MAX_PARTS)];
    let first = dir.join("p.tar.zst.part000");
    std::fs::write(&first, header).unwrap();
    for (n, part) in parts.iter().enumerate() {
        std::fs::write(dir.join(format!("p.tar.zst.part{:03}", n + 1)), part).unwrap();
    }

    let expected = match declared_whole(header, parts) {
        Some(joined) => package_tar(&joined),
        None => Reference::Refused("the header does not describe the parts".into()),
    };
    if expected == Reference::TooLarge {
        return;
    }
    let Ok(package) = PackageBytes::open(&first) else {
        return;
    };
    let Some(read) = read_all(&package) else {
        return;
    };
    let expected = match expected {
        Reference::Read(bytes) => bytes,
        // Refused for its digest, which is checked only at the end of the bytes.
        Reference::Refused(_) if read.len() as u64 > MAX_REFERENCE_BYTES => return,
        Reference::Refused(why) => panic!("pkgr read a split package it should refuse: {why}"),
        Reference::TooLarge => unreachable!("returned above"),
    };
    assert_eq!(
        read, expected,
        "the split package reads otherwise than its joined parts"
    );
    let len = expected.len() as u64;
    for offset in [len / 2, len.saturating_sub(1), 0] {
        let mut rest = Vec::new();
        package
            .read_at(offset, len - offset)
            .and_then(|mut r| r.read_to_end(&mut rest))
            .unwrap_or_else(|e| panic!("read whole, but not from {offset}: {e}"));
        assert_eq!(rest, expected[offset as usize..], "differs from {offset}");
    }
});

/// The joined parts when part000 is a header that describes them exactly.
fn declared_whole(header: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    let header: serde_json::Value = serde_json::from_slice(header).ok()?;
    let count = usize::try_from(header.get("count")?.as_u64()?).ok()?;
    let bytes = header.get("bytes")?.as_u64()?;
    let digest = header.get("sha256Sum")?.as_str()?;
    if count == 0 || count > parts.len() {
        return None;
    }
    let joined = parts[..count].concat();
    let hex = digest.trim_start_matches("sha256:").to_ascii_lowercase();
    (joined.len() as u64 == bytes && pkgr::digest::Digest::of(&joined).hex() == hex)
        .then_some(joined)
}

fn read_all(package: &PackageBytes) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    package
        .tar()
        .ok()?
        .take(MAX_REFERENCE_BYTES + 1)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fn split_on<'a>(data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
        out.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    out.push(rest);
    out
}
