//! End-to-end tests: the `pkgr` binary against real registries on loopback.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod cache;
mod crashes;
mod create;
mod create_errors;
mod daemon;
mod diff;
mod differential;
mod disk;
mod fan_out;
mod faults;
mod fetch;
mod image_keys;
mod index;
mod inspect;
mod manual;
mod publish;
mod push;
mod scale;
mod seek_table;
mod serve;
mod signals;
mod signatures;
mod signing;
mod snapshots;
mod split;
mod tar_headers;
mod verbosity;
