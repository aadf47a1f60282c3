//! Arbitrary text as a pkgr.yaml or zarf.yaml, parsed and validated as `create` does.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = pkgr::definition::parse(Path::new("pkgr.yaml"), text, None);
    let _ = pkgr::definition::parse(Path::new("zarf.yaml"), text, Some("arm64"));
});
