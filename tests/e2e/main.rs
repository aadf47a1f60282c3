//! End-to-end tests: the `pkgr` binary against real registries on loopback.

#[path = "../support/mod.rs"]
mod support;

mod cache;
mod create;
mod create_errors;
mod disk;
mod faults;
mod fetch;
mod index;
mod inspect;
mod push;
mod snapshots;
mod tar_headers;
