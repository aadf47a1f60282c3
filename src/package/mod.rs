//! The package file: what its `pkgr.yaml` records, and the deterministic tar writer.

pub mod built;
pub mod writer;

/// Paths inside a package.
pub const DEFINITION: &str = "pkgr.yaml";
pub const CHECKSUMS: &str = "checksums.txt";
pub const LAYOUT_DIR: &str = "images";
