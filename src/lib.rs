//! pkgr: package OCI content for air-gapped networks.
//!
//! The pipeline is `definition → pull (resolve, discover, plan, fetch) → package (seal,
//! write)`, and back: `package (read, scan) → inspect / push`. Each stage is a module of
//! this library; `cli` is the edge that parses arguments, builds settings, wires the
//! stages together, words hints and decides exit codes. Imports run down: `digest`,
//! `cancel`, `chunks`, `parallel`, `tarwalk` and `nesting` are the ground floor, then
//! `hint`, `trust`, `progress`, `manifest`, `reference`, `space`, `registry`,
//! `definition`, `store`, `daemon`, `pull`, `package`, `push`, `image_trust`, `serve`,
//! `publish`, and `cli` last (ARCHITECTURE.md's code map).

pub mod cancel;
pub mod chunks;
pub mod cli;
pub mod daemon;
pub mod definition;
pub mod digest;
pub mod hint;
pub mod image_trust;
pub mod manifest;
pub mod nesting;
pub mod package;
pub mod parallel;
pub mod progress;
pub mod publish;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod serve;
pub mod space;
pub mod store;
pub mod tarwalk;
#[cfg(test)]
mod testing;
pub mod trust;

/// Private parsers, reachable by the fuzz crate (`fuzz/`) and nothing else: not API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::daemon::save::{read as read_save, ReadError as SaveError, Saved};
    pub use crate::registry::direct::proof::challenge::{parse as parse_challenge, Challenge};
    pub use crate::registry::direct::url::next_page;
}
