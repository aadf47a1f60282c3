//! Retries with exponential backoff for failures that may pass: connection errors
//! (but a TLS handshake that will fail alike every time: plain HTTP on the port, an
//! untrusted certificate), timeouts and stalls, bodies cut off, 429 (or
//! `TOOMANYREQUESTS`) and 5xx.
//!
//! One exception, only where another source stands behind the registries (create's
//! Docker daemon): a connection refused by the registry's own host, before it has
//! answered once in this run, is not retried. Nothing listens there, and waiting out
//! the backoff (3.75 s) would only delay the daemon's copy of the image. A registry
//! that has answered before may be restarting; a refusal from another host (its token
//! service) says nothing of the registry; and a push or a publish, with nothing behind
//! the registry, rides out one that is still starting. All of those are retried.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciErrorCode};

use super::direct::url;

pub const MAX_ATTEMPTS: u32 = 5;

/// The wait before attempt `attempt` (1-based): 250 ms, 500 ms, 1 s, 2 s, …
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.saturating_sub(1).min(6))
}

pub fn is_transient(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RequestError(e) => {
            (e.is_connect() || e.is_timeout() || e.is_body() || e.is_request())
                && super::classify::handshake_failure(e).is_none()
        }
        OciDistributionError::ServerError { code, .. } => *code == 429 || *code >= 500,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Toomanyrequests)),
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// The registries (by `host[:port]`) that have answered at least once in this run, and
/// whether a refusal before that is final.
#[derive(Debug, Default)]
pub struct Answered {
    known: Mutex<HashSet<String>>,
    /// Another source stands behind the registries (see the module's doc).
    fallback_behind: bool,
}

impl Answered {
    /// Refusals from registries that have not answered yet are final from now on.
    pub fn fallback_behind(&mut self) {
        self.fallback_behind = true;
    }

    fn knows(&self, registry: &str) -> bool {
        self.known
            .lock()
            .is_ok_and(|known| known.contains(registry))
    }

    fn note(&self, registry: &str) {
        if let Ok(mut known) = self.known.lock() {
            if !known.contains(registry) {
                known.insert(registry.to_owned());
            }
        }
    }

    /// Whether `err` ends the call at once: see the module's doc.
    fn is_final(&self, err: &OciDistributionError, registry: &str) -> bool {
        self.fallback_behind && refused_by(err, registry) && !self.knows(registry)
    }
}

/// Whether the connection was refused by `registry`'s own host: it answered that
/// nothing listens there.
fn refused_by(err: &OciDistributionError, registry: &str) -> bool {
    let OciDistributionError::RequestError(e) = err else {
        return false;
    };
    if !e.url().is_some_and(|url| url::is_served_at(url, registry)) {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// `call` to `registry`, tried again while its failures may pass (see the module's
/// doc for a refused connection).
pub async fn with_retry<T, F, Fut>(
    answered: &Answered,
    registry: &str,
    mut call: F,
) -> Result<T, OciDistributionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OciDistributionError>>,
{
    let mut attempt = 1;
    loop {
        let result = call().await;
        let unanswered =
            matches!(&result, Err(OciDistributionError::RequestError(e)) if e.is_connect());
        if !unanswered {
            answered.note(registry);
        }
        match result {
            Ok(value) => return Ok(value),
            Err(err) if answered.is_final(&err, registry) => return Err(err),
            Err(err) if attempt < MAX_ATTEMPTS && is_transient(&err) => {
                super::request_log::retry(attempt, MAX_ATTEMPTS, backoff(attempt), &err);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback `host:port` nothing listens on.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
    }

    /// How many times `with_retry` asks `refusing` (a closed port) on behalf of
    /// `registry`, each ask refused.
    async fn attempts(answered: &Answered, registry: &str, refusing: &str) -> u32 {
        crate::registry::install_tls_provider();
        let client = reqwest::Client::new();
        let mut asked = 0;
        let outcome = with_retry(answered, registry, || {
            asked += 1;
            let request = client.get(format!("http://{refusing}/v2/")).send();
            async { request.await.map_err(OciDistributionError::RequestError) }
        })
        .await;
        assert!(outcome.is_err(), "a closed port answered");
        asked
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_first_refusal_by_the_registry_itself_with_a_fallback_behind_is_final() {
        let registry = closed_port();
        let mut backed = Answered::default();
        backed.fallback_behind();
        assert_eq!(attempts(&backed, &registry, &registry).await, 1);
        // Its token service (another port) refusing says nothing of the registry.
        assert_eq!(
            attempts(&backed, &registry, &closed_port()).await,
            MAX_ATTEMPTS
        );
        // A registry that has answered may be restarting.
        backed.note(&registry);
        assert_eq!(attempts(&backed, &registry, &registry).await, MAX_ATTEMPTS);
        // With nothing behind it (push, publish), a registry may be still starting.
        let alone = Answered::default();
        assert_eq!(attempts(&alone, &registry, &registry).await, MAX_ATTEMPTS);
    }
}
