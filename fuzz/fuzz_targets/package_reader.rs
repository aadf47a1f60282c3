//! Arbitrary bytes as a package file, read as `inspect` and `inspect --verify` read it.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One file per fuzzing process, rewritten for each input; in /dev/shm when it exists,
/// so that the disk is not the bottleneck.
fn package_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = ["/dev/shm", "/tmp"]
            .iter()
            .map(PathBuf::from)
            .find(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        dir.join(format!("pkgr-fuzz-{}.tar", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = package_path();
    std::fs::write(path, data).expect("the fuzz input can be written");
    let _ = pkgr::package::summary::summarize(path);
    let _ = pkgr::package::scan::scan(path, None);
});
