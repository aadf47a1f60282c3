//! Content addressing: digests, the verified blob store, the OCI layout and its seal.

pub mod cas;
pub mod digest;
pub mod layout;
pub mod seal;

pub use cas::{Ingest, Store, StoreError};
pub use digest::Digest;
