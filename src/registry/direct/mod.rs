//! Every registry request, pulls and pushes alike, as plain HTTP through one reqwest
//! client: the client itself, and its rooms for the endpoints, the answers to
//! challenges, the URLs and the shape of a refusal.
//!
//! oci-client's own client is not used: it reads a manifest whole before its size can
//! be checked (an endless body took all of memory), probes `/v2/` before requests, and
//! starts its token flow only when `/v2/` itself asks. Here a request goes out as it
//! is, and a 401 on any request is answered once (see [`proof`]). Failures take the
//! shapes of oci-client's `OciDistributionError`, so that retries and error sentences
//! read them as before.

mod endpoints;
pub(crate) mod proof;
mod refusal;
pub(crate) mod url;

use std::sync::Mutex;
use std::time::Duration;

use oci_client::client::ClientProtocol;
use oci_client::errors::OciDistributionError;
use oci_client::Reference;
use reqwest::Response;

use super::request_log::{self, Sent};
use super::stall::{self, Progress};
pub use endpoints::ManifestBody;
pub use proof::{plain_http_realm, Access, NO_CREDENTIALS};

/// The HTTP side of a run's registry client: one reqwest client, and the proofs the
/// registries have asked for so far.
pub struct DirectClient {
    protocol: ClientProtocol,
    client: reqwest::Client,
    /// The window in which a body must make progress (see `stall`).
    timeout: Duration,
    proofs: Mutex<proof::Proofs>,
}

impl DirectClient {
    pub fn new(protocol: ClientProtocol, client: reqwest::Client, timeout: Duration) -> Self {
        Self {
            protocol,
            client,
            timeout,
            proofs: Mutex::default(),
        }
    }

    /// The plain client, for the requests that `send` makes.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// `https://host/v2/<repository>/<path>` for the reference's registry.
    pub fn url(&self, reference: &Reference, path: &str) -> String {
        url::endpoint(&self.protocol, reference, path)
    }

    /// Sends `request`, failing as stalled once `progress` has been idle for a window.
    /// reqwest's own read timeout is not used: it also runs while a long upload is
    /// still being sent, and would cut it off.
    async fn watched(
        &self,
        request: reqwest::Request,
        sent: Sent,
        progress: &Progress,
    ) -> Result<Response, OciDistributionError> {
        let logged = request_log::Logged::of(&request, sent);
        let started = std::time::Instant::now();
        let answer = tokio::select! {
            answer = self.client.execute(request) => Ok(answer),
            () = progress.idle_for(self.timeout) => Err(stall::stalled(self.timeout)),
        };
        if let Some(logged) = logged {
            logged.answered(answer.as_ref().map(Result::as_ref), started.elapsed());
        }
        answer
            .map_err(OciDistributionError::IoError)?
            .map_err(OciDistributionError::RequestError)
    }
}
