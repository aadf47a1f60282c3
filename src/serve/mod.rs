//! `pkgr serve`: a package served as a read-only OCI distribution registry, straight
//! from its file. `contents` reads what the package offers (repositories, tags,
//! manifests, blob offsets, referrers) from its head, or from a full scan under
//! `--verify`; `verified` remembers which blobs hashed right, hashing each once, in a
//! background pass or on its first request; `routes` reads a request's method and
//! path; `answer` builds the responses and the distribution-style errors; `manifests`,
//! `blobs`, `listing` and `referrers` answer their endpoints; `stream` reads a blob's
//! bytes in bounded chunks on a blocking thread; `log` writes a line per request; `tls`
//! loads a certificate; `state` is what every request reads; `server` accepts
//! connections until serve is stopped.

mod answer;
mod blobs;
mod contents;
mod listing;
mod log;
mod manifests;
mod referrers;
mod routes;
mod server;
mod state;
mod stream;
mod tls;
mod verified;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use contents::Contents;
pub use server::{bind, Bound};

use crate::package::scan::Problem;
use crate::package::PackageError;

/// What to serve, and how.
pub struct ServeRequest {
    pub package: PathBuf,
    pub listen: SocketAddr,
    /// Put before every repository name, as push's `REGISTRY/PREFIX` does.
    pub prefix: Option<String>,
    /// Verify the whole package before serving anything.
    pub verify: bool,
    /// The certificate chain and key, both PEM, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Log a line per request on stderr.
    pub log_requests: bool,
}

/// Why the registry did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(
        "the package failed verification, so it is not served: {}",
        describe(problems)
    )]
    Verification { problems: Vec<Problem> },
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use {} for TLS: {reason}", path.display())]
    Tls { path: PathBuf, reason: String },
    /// A thread reading the package panicked: a bug in pkgr.
    #[error("internal error while reading the package")]
    Internal(#[source] tokio::task::JoinError),
}

fn describe(problems: &[Problem]) -> String {
    match problems {
        [] => "no problem recorded".to_owned(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}
