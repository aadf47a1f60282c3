//! Connecting to the Docker engine with bollard: `DOCKER_HOST`, else the default
//! socket, with the API version negotiated (dockerd 20.10 speaks 1.41), and each
//! failure classified as "cannot be reached", "has no such image" or another error.

use bollard::errors::Error as BollardError;
use bollard::Docker;
use bytes::Bytes;
use futures_util::Stream;

use super::DaemonError;

/// Where bollard connects when `DOCKER_HOST` is not set.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// A connected Docker engine.
#[derive(Clone)]
pub struct Daemon {
    docker: Docker,
    host: String,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Daemon({})", self.host)
    }
}

impl Daemon {
    /// Where the daemon is looked for, as messages name it.
    pub fn host_from_env() -> String {
        std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_owned())
    }

    /// Connects and negotiates the API version. An absent daemon, a socket nobody
    /// listens on and a refused connection are all `Unreachable`.
    pub async fn connect() -> Result<Self, DaemonError> {
        let host = Self::host_from_env();
        let unreachable = |source| DaemonError::Unreachable {
            host: host.clone(),
            source,
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        Ok(Self { docker, host })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Checks that the daemon has `image`, so a missing one is a clear "not found"
    /// rather than an error in the middle of a save stream; gives the size the daemon
    /// reports for it (its layers uncompressed, about what its save holds).
    pub async fn has(&self, image: &str) -> Result<u64, DaemonError> {
        self.docker
            .inspect_image(image)
            .await
            .map(|inspected| inspected.size.map_or(0, |s| s.max(0) as u64))
            .map_err(|e| self.classify(image, "inspect", e))
    }

    /// The `docker save` tar of `image`, as it arrives.
    pub fn export(&self, image: &str) -> impl Stream<Item = Result<Bytes, BollardError>> + 'static {
        self.docker.export_image(image)
    }

    pub fn classify(&self, image: &str, action: &'static str, err: BollardError) -> DaemonError {
        match err {
            BollardError::DockerResponseServerError {
                status_code: 404, ..
            } => DaemonError::NotFound {
                image: image.to_owned(),
                host: self.host.clone(),
            },
            BollardError::DockerResponseServerError { .. } => DaemonError::Api {
                host: self.host.clone(),
                action,
                image: image.to_owned(),
                source: err,
            },
            other => DaemonError::Unreachable {
                host: self.host.clone(),
                source: other,
            },
        }
    }
}
