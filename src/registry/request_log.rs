//! The request log of `-v`: one line on stderr for every registry request (method,
//! URL, status, bytes, time, and whether it carried a proof, fetched a token or was a
//! retry), for troubleshooting registries. Credentials never reach it: headers are not
//! logged, and a URL's user information and any query value that may be a secret
//! (tokens, signatures, upload state) are shown as `REDACTED`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::progress::human_bytes;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the log on for the rest of the process.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why a request was sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sent {
    /// As the caller asked, with whatever proof was already known.
    First,
    /// Again, with the proof that the registry's 401 asked for.
    WithProof,
    /// To a token service, for the proof a 401 asked for.
    TokenExchange,
}

/// What the log says of a request, taken before it is sent (which consumes it).
pub(crate) struct Logged {
    method: String,
    url: String,
    /// The body's size, when it is known before it is sent.
    body: Option<u64>,
    sent: Sent,
}

impl Logged {
    /// `None` unless the log is on.
    pub(crate) fn of(request: &reqwest::Request, sent: Sent) -> Option<Self> {
        enabled().then(|| Self {
            method: request.method().to_string(),
            url: redacted(request.url()),
            body: request
                .body()
                .and_then(reqwest::Body::as_bytes)
                .map(|b| b.len() as u64)
                .or_else(|| {
                    request
                        .headers()
                        .get(reqwest::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                })
                .filter(|&n| n > 0),
            sent,
        })
    }

    /// Logs the request and what came of it: a status, the error it failed with, or
    /// (the outer error) the stall it was given up for.
    pub(crate) fn answered(
        self,
        answer: Result<Result<&reqwest::Response, &reqwest::Error>, &std::io::Error>,
        elapsed: Duration,
    ) {
        let why = match self.sent {
            Sent::First => "",
            Sent::WithProof => " (again, with the proof the 401 asked for)",
            Sent::TokenExchange => " (token exchange)",
        };
        let body = self
            .body
            .map(|n| format!(", sent {}", human_bytes(n)))
            .unwrap_or_default();
        let outcome = match answer {
            Err(stalled) => format!("given up: {stalled}"),
            Ok(Err(err)) => format!("failed: {}", redacted_in(&err.to_string())),
            Ok(Ok(response)) => {
                let bytes = response
                    .content_length()
                    .map_or_else(|| "streamed".to_owned(), human_bytes);
                format!("{}, {bytes}", response.status().as_u16())
            }
        };
        line(&format!(
            "request: {} {}{why} -> {outcome}{body}, {} ms",
            self.method,
            self.url,
            elapsed.as_millis()
        ));
    }
}

/// Logs that the request that failed on `attempt` (of at most `attempts`) is tried
/// again after `wait`.
pub(crate) fn retry(attempt: u32, attempts: u32, wait: Duration, err: &dyn std::fmt::Display) {
    if enabled() {
        line(&format!(
            "request: retry {attempt} of {} in {} ms, after: {}",
            attempts - 1,
            wait.as_millis(),
            redacted_in(&err.to_string())
        ));
    }
}

fn line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Query parameters whose values may be secrets, by a part of their name.
const SECRET_PARAMETERS: [&str; 6] = [
    "token",
    "state",
    "signature",
    "password",
    "secret",
    "credential",
];

/// `text` with every URL in it redacted: error messages quote the URL they failed on.
fn redacted_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest
        .find("http://")
        .into_iter()
        .chain(rest.find("https://"))
        .min()
    {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || c == ')' || c == '"')
            .map_or(rest.len(), |n| at + n);
        match reqwest::Url::parse(&rest[at..end]) {
            Ok(url) => out.push_str(&redacted(&url)),
            Err(_) => out.push_str("REDACTED"),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn redacted(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("REDACTED");
        let _ = url.set_password(None);
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let lower = name.to_ascii_lowercase();
                let secret = SECRET_PARAMETERS.iter().any(|s| lower.contains(s));
                let value = if secret {
                    "REDACTED".into()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_are_redacted_and_the_rest_kept() {
        let url = reqwest::Url::parse(
            "https://user:pw@registry.example/v2/app/blobs/uploads/abc?_state=s3cr3t&digest=sha256%3Aaa&X-Amz-Signature=sig&access_token=tok&scope=repository%3Aapp%3Apull",
        )
        .unwrap();
        let shown = redacted(&url);
        for secret in ["user", "pw", "s3cr3t", "sig", "tok"] {
            assert!(
                !shown.contains(&format!("={secret}")) && !shown.contains(&format!("{secret}@")),
                "{shown}"
            );
        }
        assert!(
            shown.starts_with("https://REDACTED@registry.example/v2/app/blobs/uploads/abc?"),
            "{shown}"
        );
        assert!(shown.contains("digest=sha256%3Aaa"), "{shown}");
        assert!(shown.contains("scope=repository%3Aapp%3Apull"), "{shown}");
        assert_eq!(shown.matches("REDACTED").count(), 4, "{shown}");
    }

    #[test]
    fn urls_quoted_in_messages_are_redacted() {
        let message =
            "error sending request for url (https://u:p@r.example/v2/a?_state=xyz&n=1): refused";
        assert_eq!(
            redacted_in(message),
            "error sending request for url (https://REDACTED@r.example/v2/a?_state=REDACTED&n=1): refused"
        );
        assert_eq!(redacted_in("no url here"), "no url here");
    }
}
