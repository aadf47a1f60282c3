//! Content addressing: the verified blob store, the OCI layout and its seal.

pub mod cas;
pub mod layout;
pub mod seal;

pub use cas::{link_or_copy, Ingest, Store, StoreError};
