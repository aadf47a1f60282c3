//! Content addressing: the verified blob store, the shared cache around it, the OCI
//! layout, its graph check and its seal.

pub mod cache;
pub mod cas;
pub mod graph;
pub mod layout;
pub mod seal;

pub use cache::{Cache, CacheError};
pub use cas::{link_or_copy, BlobWriter, Ingest, Store, StoreError};
