//! A registry's refusal in the shapes oci-client's `OciDistributionError` gives it
//! (an error envelope, a server error, unauthorized), and bodies read only as far as
//! a cap.

use oci_client::errors::{OciDistributionError, OciEnvelope};
use reqwest::{Response, StatusCode};

use super::DirectClient;

/// How much of a refusal's body is read for its message.
const ERROR_BODY_BYTES: u64 = 64 * 1024;

impl DirectClient {
    /// A registry's refusal, in the shape oci-client gives it; the body is read only
    /// as far as a message needs.
    pub async fn refusal(&self, response: Response, url: &str) -> OciDistributionError {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return unauthorized(url);
        }
        // A body that does not come within a window is left out of the message.
        let body = tokio::time::timeout(self.timeout, read_capped(response, ERROR_BODY_BYTES))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        if status.is_client_error() {
            if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(&body) {
                return OciDistributionError::RegistryError {
                    envelope,
                    url: url.to_owned(),
                };
            }
        }
        OciDistributionError::ServerError {
            code: status.as_u16(),
            url: url.to_owned(),
            message: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

pub fn unauthorized(url: &str) -> OciDistributionError {
    OciDistributionError::UnauthorizedError {
        url: url.to_owned(),
    }
}

/// At most `limit` bytes of a body.
pub async fn read_capped(
    mut response: Response,
    limit: u64,
) -> Result<Vec<u8>, OciDistributionError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(OciDistributionError::RequestError)?
    {
        body.extend_from_slice(&chunk);
        if body.len() as u64 >= limit {
            body.truncate(limit as usize);
            break;
        }
    }
    Ok(body)
}
