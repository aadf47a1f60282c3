//! The package file: what its `pkgr.yaml` records, the deterministic writer, and the
//! safe streaming reader behind `inspect` and `push`.

pub mod built;
pub mod reader;
pub mod scan;
pub mod summary;
pub mod writer;

/// Paths inside a package.
pub const DEFINITION: &str = "pkgr.yaml";
pub const CHECKSUMS: &str = "checksums.txt";
pub const LAYOUT_DIR: &str = "images";
