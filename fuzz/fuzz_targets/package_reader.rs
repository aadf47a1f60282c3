//! Arbitrary bytes as a package file, read as `inspect` and `inspect --verify` read it,
//! and held to the reference reader: every entry pkgr reads, in order (sequentially,
//! and again by offset through `PackageBytes::read_at`, as the parallel hashing and
//! push read blobs), must be one that `zstd -dc | tar` shows, with the same name and
//! bytes, and none may be missing; or pkgr must refuse the package (any `Err`). A
//! mismatch panics: a finding.

#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pkgr::package::reader::{for_each_entry, Flow, PackageBytes};
use pkgr_fuzz::{package_tar, regular_files, scratch, tar_members, Reference};

fuzz_target!(|data: &[u8]| {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| scratch("package.tar.zst"));
    let reference = package_tar(data).map(|tar| tar_members(&tar));
    if reference == Reference::TooLarge {
        return;
    }
    std::fs::write(path, data).expect("the fuzz input can be written");
    let _ = pkgr::package::summary::summarize(path);
    let _ = pkgr::package::scan::scan(path);

    let Ok(package) = PackageBytes::open(path) else {
        return;
    };
    let Some(sequential) = read_sequentially(&package) else {
        return;
    };
    let shown: Vec<(String, Vec<u8>)> = sequential
        .iter()
        .map(|(name, _, bytes)| (name.clone(), bytes.clone()))
        .collect();
    let expected = match &reference {
        Reference::Read(members) => regular_files(members),
        Reference::Refused(why) => {
            panic!(
                "pkgr read {} entries from a package standard tools refuse ({why})",
                shown.len()
            )
        }
        Reference::TooLarge => unreachable!("returned above"),
    };
    assert_eq!(
        shown, expected,
        "pkgr's entries differ from `zstd -dc | tar`'s"
    );

    // By offset, last entry first, as deferred hashing and push may read them.
    for (name, (offset, size), bytes) in sequential.iter().rev() {
        let mut again = Vec::new();
        package
            .read_at(*offset, *size)
            .and_then(|mut reader| reader.read_to_end(&mut again))
            .unwrap_or_else(|e| panic!("`{name}` read in order but not at its offset: {e}"));
        assert_eq!(&again, bytes, "`{name}` differs when read at its offset");
    }
});

/// Each entry's name, place (offset, size) and bytes, read in order; `None` when pkgr
/// refuses the package.
#[allow(clippy::type_complexity)]
fn read_sequentially(package: &PackageBytes) -> Option<Vec<(String, (u64, u64), Vec<u8>)>> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    for_each_entry(package, |entry| {
        // The reference decoded to at most this much: pkgr producing more is a
        // mismatch, and reading it all would only cost memory.
        let budget = pkgr_fuzz::MAX_REFERENCE_BYTES - total;
        let mut bytes = Vec::new();
        entry
            .reader
            .take(entry.size.min(budget + 1))
            .read_to_end(&mut bytes)
            .map_err(|source| pkgr::package::reader::ReadError::Io {
                path: package.path().to_owned(),
                source,
            })?;
        let read = bytes.len() as u64;
        assert!(
            read <= budget,
            "pkgr reads more entry bytes than `zstd -dc` decodes"
        );
        // An entry cut short must fail the walk when it moves on; if it does not, the
        // comparison with the reference (which refuses it) finds it.
        total += read;
        entries.push((entry.name.to_owned(), (entry.offset, entry.size), bytes));
        Ok(Flow::Continue)
    })
    .ok()?;
    Some(entries)
}
