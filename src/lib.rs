//! pkgr: package OCI content for air-gapped networks.
//!
//! The pipeline is `definition → pull (resolve, plan, fetch) → store (seal) → package`;
//! each stage is a module, and `cli` only wires them together.

pub mod cancel;
pub mod cli;
pub mod definition;
pub mod error;
pub mod manifest;
pub mod package;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry;
pub mod store;

pub use error::Error;
