//! Retries with exponential backoff for failures that may pass: connection errors,
//! timeouts and stalls, bodies cut off, 429 (or `TOOMANYREQUESTS`) and 5xx. A
//! connection refused by a registry that has not answered once in this run is not
//! retried: nothing listens there, and waiting out the backoff (3.75 s) would only
//! delay the error, or the Docker daemon's copy of the image. One that has answered
//! before may be restarting, and is retried.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciErrorCode};

pub const MAX_ATTEMPTS: u32 = 5;

/// The wait before attempt `attempt` (1-based): 250 ms, 500 ms, 1 s, 2 s, …
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.saturating_sub(1).min(6))
}

pub fn is_transient(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RequestError(e) => {
            e.is_connect() || e.is_timeout() || e.is_body() || e.is_request()
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

/// The registries (by `host[:port]`) that have answered at least once in this run.
#[derive(Debug, Default)]
pub struct Answered(Mutex<HashSet<String>>);

impl Answered {
    fn knows(&self, registry: &str) -> bool {
        self.0.lock().is_ok_and(|known| known.contains(registry))
    }

    fn note(&self, registry: &str) {
        if let Ok(mut known) = self.0.lock() {
            if !known.contains(registry) {
                known.insert(registry.to_owned());
            }
        }
    }
}

/// Whether the connection was refused: the host answered that nothing listens there.
fn is_refused(err: &OciDistributionError) -> bool {
    let OciDistributionError::RequestError(e) = err else {
        return false;
    };
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
            Err(err) if is_refused(&err) && !answered.knows(registry) => return Err(err),
            Err(err) if attempt < MAX_ATTEMPTS && is_transient(&err) => {
                super::request_log::retry(attempt, MAX_ATTEMPTS, backoff(attempt), &err);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}
