//! How a request proves itself: the proof this run already knows a registry wants is
//! sent with the first try, and a 401 is answered once with what its challenge asks
//! for: the credentials (Basic), or a token from the challenge's realm for the scope
//! it names (Bearer), kept for the run. Proof goes only to the registry's own origin;
//! the credentials go to a token service only where [`realm`] allows (over HTTPS, or
//! over plain HTTP to a plain-HTTP registry's own host), and a token is asked for
//! anonymously from any.

pub(crate) mod challenge;
mod realm;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::refusal::{read_capped, unauthorized};
use super::{url, DirectClient};
use crate::registry::request_log::Sent;
use crate::registry::stall::{self, Progress};
use challenge::Challenge;
pub use realm::plain_http_realm;

/// The failure when a registry asks for credentials and the run has none for it,
/// told apart from credentials it refused.
pub const NO_CREDENTIALS: &str = "the registry asks for credentials and none are configured";

/// How much of a token service's answer is read.
const TOKEN_BYTES: u64 = 1024 * 1024;

/// What a request needs to be allowed to do with its repository.
#[derive(Clone, Copy)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    /// The token scope for the reference's repository.
    fn scope(self, reference: &Reference) -> String {
        let actions = match self {
            Self::Pull => "pull",
            Self::Push => "pull,push",
        };
        format!("repository:{}:{actions}", reference.repository())
    }
}

/// How the next request to a registry should prove itself.
#[derive(Default)]
pub struct Proofs {
    /// Registries that asked for Basic credentials.
    basic: HashSet<String>,
    /// Tokens by (registry, scope).
    tokens: HashMap<(String, String), String>,
    /// Held while a token for (registry, scope) is being fetched.
    fetching: HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>,
}

enum Proof {
    Basic(String, String),
    Bearer(String),
}

impl DirectClient {
    /// Sends the request that `build` makes (called again for a second try, so that a
    /// streamed body can be made afresh), answering one 401 with what its challenge
    /// asks for.
    pub async fn send(
        &self,
        reference: &Reference,
        access: Access,
        auth: &RegistryAuth,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, OciDistributionError> {
        self.send_watched(reference, access, auth, &Progress::default(), build)
            .await
    }

    /// As [`send`](Self::send), given up on when `progress` (which an upload's body
    /// touches) sees a whole timeout window pass without any.
    pub async fn send_watched(
        &self,
        reference: &Reference,
        access: Access,
        auth: &RegistryAuth,
        progress: &Progress,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, OciDistributionError> {
        let registry = reference.registry();
        let scope = access.scope(reference);
        let whole = reference.whole();
        let origin = Url::parse(&self.url(reference, "")).ok();
        let request = |proof| with_proof(build(), origin.as_ref(), proof);
        let known = self.known_proof(registry, &scope, auth);
        let sent_token = match &known {
            Some(Proof::Bearer(token)) => Some(token.clone()),
            _ => None,
        };
        let first = self.watched(request(known)?, Sent::First, progress).await?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(challenge::parse);
        let asked = Asked {
            registry,
            origin: origin.as_ref(),
            scope,
            refused: &whole,
            sent_token: sent_token.as_deref(),
        };
        let proof = self.answer_challenge(challenge, asked, auth).await?;
        let second = self
            .watched(request(Some(proof))?, Sent::WithProof, progress)
            .await?;
        if second.status() == StatusCode::UNAUTHORIZED {
            return Err(unauthorized(&whole));
        }
        Ok(second)
    }

    /// The proof a 401's challenge asks for: the credentials (Basic, remembered for
    /// the registry), or a token from the challenge's realm (Bearer).
    async fn answer_challenge(
        &self,
        challenge: Option<Challenge>,
        asked: Asked<'_>,
        auth: &RegistryAuth,
    ) -> Result<Proof, OciDistributionError> {
        match challenge {
            Some(Challenge::Basic) => match auth {
                RegistryAuth::Basic(user, password) => {
                    self.lock().basic.insert(asked.registry.to_owned());
                    Ok(Proof::Basic(user.clone(), password.clone()))
                }
                RegistryAuth::Anonymous => Err(OciDistributionError::AuthenticationFailure(
                    NO_CREDENTIALS.into(),
                )),
                RegistryAuth::Bearer(_) => Err(unauthorized(asked.refused)),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                keep_credentials_from(&realm, asked.origin, auth)?;
                let key = (asked.registry.to_owned(), scope.unwrap_or(asked.scope));
                let token = self
                    .shared_token(key, &realm, service.as_deref(), auth, asked.sent_token)
                    .await?;
                Ok(Proof::Bearer(token))
            }
            None => Err(unauthorized(asked.refused)),
        }
    }

    /// The token for `key` (registry, scope). One token request per scope: requests
    /// refused at the same moment (a run's first burst of downloads) wait for it
    /// instead of each asking.
    async fn shared_token(
        &self,
        key: (String, String),
        realm: &str,
        service: Option<&str>,
        auth: &RegistryAuth,
        sent_token: Option<&str>,
    ) -> Result<String, OciDistributionError> {
        let gate = self.lock().fetching.entry(key.clone()).or_default().clone();
        let _turn = gate.lock().await;
        let cached = self.lock().tokens.get(&key).cloned();
        match cached {
            // Fetched while this request waited: not the one just refused.
            Some(token) if Some(token.as_str()) != sent_token => Ok(token),
            _ => {
                let token = self.token(realm, service, &key.1, auth).await?;
                self.lock().tokens.insert(key, token.clone());
                Ok(token)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Proofs> {
        self.proofs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What this run already knows the registry wants, to send with the first try.
    fn known_proof(&self, registry: &str, scope: &str, auth: &RegistryAuth) -> Option<Proof> {
        let proofs = self.lock();
        if let Some(token) = proofs.tokens.get(&(registry.to_owned(), scope.to_owned())) {
            return Some(Proof::Bearer(token.clone()));
        }
        match auth {
            RegistryAuth::Basic(user, password) if proofs.basic.contains(registry) => {
                Some(Proof::Basic(user.clone(), password.clone()))
            }
            RegistryAuth::Bearer(token) => Some(Proof::Bearer(token.clone())),
            _ => None,
        }
    }

    /// A token from `realm` for `scope`, asked for with the credentials if there are
    /// any (anonymously otherwise, as public images on real registries are).
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        auth: &RegistryAuth,
    ) -> Result<String, OciDistributionError> {
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut request = self.client.get(realm).query(&query);
        if let RegistryAuth::Basic(user, password) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let request = request
            .build()
            .map_err(OciDistributionError::RequestError)?;
        let response = self
            .watched(request, Sent::TokenExchange, &Progress::default())
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(match auth {
                    RegistryAuth::Anonymous => {
                        OciDistributionError::AuthenticationFailure(NO_CREDENTIALS.into())
                    }
                    _ => unauthorized(realm),
                })
            }
            _ => return Err(self.refusal(response, realm).await),
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = tokio::time::timeout(self.timeout, read_capped(response, TOKEN_BYTES))
            .await
            .map_err(|_| OciDistributionError::IoError(stall::stalled(self.timeout)))??;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            OciDistributionError::AuthenticationFailure(format!(
                "the token service at {realm} answered without a token: {e}"
            ))
        })?;
        answer.token.or(answer.access_token).ok_or_else(|| {
            OciDistributionError::AuthenticationFailure(format!(
                "the token service at {realm} answered without a token"
            ))
        })
    }
}

/// What a refused request had asked for, for its answer to the challenge.
struct Asked<'a> {
    /// The registry as the reference names it.
    registry: &'a str,
    /// The registry's own origin, for where its credentials may go.
    origin: Option<&'a Url>,
    /// The scope the request needs.
    scope: String,
    /// The reference, for the error when no proof will do.
    refused: &'a str,
    /// The token the refused request carried, if any: it is not sent again.
    sent_token: Option<&'a str>,
}

/// Refuses a token request that would send the credentials to a `realm` that
/// [`realm::may_receive_credentials`] keeps them from. Anonymous requests carry no
/// secret and always go; a realm that is no URL goes on to fail as its request is built.
fn keep_credentials_from(
    realm: &str,
    origin: Option<&Url>,
    auth: &RegistryAuth,
) -> Result<(), OciDistributionError> {
    let Ok(service) = Url::parse(realm) else {
        return Ok(());
    };
    let carries_secret = matches!(auth, RegistryAuth::Basic(..));
    if carries_secret && !origin.is_some_and(|o| realm::may_receive_credentials(o, &service)) {
        return Err(OciDistributionError::AuthenticationFailure(realm::refused(
            realm,
        )));
    }
    Ok(())
}

/// The request `builder` makes, with `proof` in its Authorization header when it goes
/// to the registry's own origin, never to another host that an upload's Location
/// names.
fn with_proof(
    builder: RequestBuilder,
    origin: Option<&Url>,
    proof: Option<Proof>,
) -> Result<reqwest::Request, OciDistributionError> {
    let mut request = builder
        .build()
        .map_err(OciDistributionError::RequestError)?;
    let to_registry = origin.is_some_and(|o| url::same_origin(o, request.url()));
    if let Some(proof) = proof.filter(|_| to_registry) {
        let value = proof.header().ok_or_else(|| {
            OciDistributionError::AuthenticationFailure(
                "the credentials or token cannot be sent in a header".into(),
            )
        })?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    Ok(request)
}

impl Proof {
    /// The Authorization value; `None` if a token holds bytes a header cannot.
    fn header(&self) -> Option<HeaderValue> {
        let text = match self {
            Self::Basic(user, password) => {
                use base64::Engine;
                let pair = format!("{user}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            Self::Bearer(token) => format!("Bearer {token}"),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use oci_client::client::ClientProtocol;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A token service on 127.0.0.1 that hands out a token and keeps the head of each
    /// request it receives.
    async fn token_service() -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = vec![0u8; 4096];
                let n = socket.read(&mut head).await.unwrap_or(0);
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head[..n]).to_ascii_lowercase());
                let body = r#"{"token":"t"}"#;
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        (port, heads)
    }

    /// Answers a Bearer challenge naming `realm` for a plain-HTTP registry on
    /// 127.0.0.1:`port`.
    async fn answer(port: u16, realm: String, auth: &RegistryAuth) -> Result<Proof, String> {
        let registry = format!("127.0.0.1:{port}");
        crate::registry::install_tls_provider();
        let client = DirectClient::new(
            ClientProtocol::HttpsExcept(vec![registry.clone()]),
            reqwest::Client::new(),
            Duration::from_secs(5),
        );
        let origin = Url::parse(&format!("http://{registry}/v2/app/")).unwrap();
        let asked = Asked {
            registry: &registry,
            origin: Some(&origin),
            scope: "repository:app:pull".into(),
            refused: "app",
            sent_token: None,
        };
        let challenge = Challenge::Bearer {
            realm,
            service: None,
            scope: None,
        };
        client
            .answer_challenge(Some(challenge), asked, auth)
            .await
            .map_err(|e| match e {
                OciDistributionError::AuthenticationFailure(message) => message,
                other => other.to_string(),
            })
    }

    fn basic() -> RegistryAuth {
        RegistryAuth::Basic("ci".into(), "s3cret".into())
    }

    #[tokio::test]
    async fn credentials_are_kept_from_a_plain_http_token_service_on_another_host() {
        let (port, heads) = token_service().await;
        let realm = format!("http://localhost:{port}/token");
        let err = answer(port, realm.clone(), &basic()).await.err().unwrap();
        assert_eq!(plain_http_realm(&err), Some(realm.as_str()));
        assert!(heads.lock().unwrap().is_empty(), "the realm was asked");
    }

    #[tokio::test]
    async fn an_anonymous_token_is_asked_for_from_a_plain_http_service_anywhere() {
        let (port, heads) = token_service().await;
        let realm = format!("http://localhost:{port}/token");
        let proof = answer(port, realm, &RegistryAuth::Anonymous).await;
        assert!(matches!(proof, Ok(Proof::Bearer(ref t)) if t == "t"));
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 1);
        assert!(!heads[0].contains("authorization:"), "{}", heads[0]);
    }

    #[tokio::test]
    async fn a_plain_http_token_service_on_the_registry_s_host_gets_the_credentials() {
        let (port, heads) = token_service().await;
        // The registry on another port of the same host; it is not asked.
        let registry_port = 1;
        let realm = format!("http://127.0.0.1:{port}/token");
        let proof = answer(registry_port, realm, &basic()).await;
        assert!(matches!(proof, Ok(Proof::Bearer(_))));
        let heads = heads.lock().unwrap();
        assert!(heads[0].contains("authorization: basic "), "{}", heads[0]);
    }
}
