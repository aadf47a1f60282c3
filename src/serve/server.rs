//! The server: the package opened and read (`bind`), the address bound, then every
//! connection served on its own task (`Bound::run`) until the process is stopped
//! (Ctrl-C or SIGTERM end the task that runs it; see `main`). Only `GET` and `HEAD`
//! are answered; every other method gets 405 `UNSUPPORTED`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::answer::{error, json_response, Code, Response};
use super::contents::Contents;
use super::log::Pending;
use super::routes::{route, Route};
use super::state::State;
use super::stream::Readers;
use super::verified::Verified;
use super::{blobs, listing, manifests, ServeError, ServeRequest};
use crate::package::reader::PackageBytes;
use crate::package::PackageError;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A package read and an address bound: ready to serve.
pub struct Bound {
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
}

/// Opens and reads the package (all of it under `--verify`), loads the certificate and
/// binds the address. Nothing is served before all of that succeeded.
pub async fn bind(request: ServeRequest) -> Result<Bound, ServeError> {
    super::log::set_enabled(request.log_requests);
    let tls = match &request.tls {
        Some((cert, key)) => Some(super::tls::acceptor(cert, key)?),
        None => None,
    };
    let (package, prefix, verify) = (request.package, request.prefix, request.verify);
    let (package, contents) = tokio::task::spawn_blocking(move || {
        let package = PackageBytes::open(&package).map_err(PackageError::from)?;
        let contents = Contents::read(&package, prefix, verify)?;
        Ok::<_, ServeError>((package, contents))
    })
    .await
    .map_err(ServeError::Internal)??;
    let listener =
        TcpListener::bind(request.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: request.listen,
                source,
            })?;
    let state = Arc::new(State {
        verified: Verified::new(contents.all_verified),
        contents,
        readers: Readers::new(Arc::new(package)),
    });
    Ok(Bound {
        listener,
        state,
        tls,
    })
}

impl Bound {
    /// The address bound (its port chosen by the system when asked for port 0).
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn contents(&self) -> &Contents {
        &self.state.contents
    }

    /// Serves connections until the task running it is dropped. The blobs not verified
    /// yet are hashed in the background meanwhile.
    pub async fn run(self) {
        let state = self.state.clone();
        let _background = AbortOnDrop(tokio::spawn(async move {
            let places = &state.contents.places;
            state.verified.check_all(places, &state.readers).await;
        }));
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: wait for connections to close.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = self.state.clone();
            match &self.tls {
                None => {
                    tokio::spawn(serve_connection(stream, state));
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream));
                        if let Ok(Ok(stream)) = handshake.await {
                            serve_connection(stream, state).await;
                        }
                    });
                }
            }
        }
    }
}

/// Stops a spawned task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve_connection<S>(stream: S, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, request).await) }
    });
    // A client that goes away mid-answer is no error of the server's.
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Answers one request and attaches its log line to the response's body.
async fn handle(state: &State, request: Request<Incoming>) -> Response {
    let started = Instant::now();
    let mut response = answer(state, &request).await;
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    let pending = Pending {
        method: request.method().to_string(),
        path: request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path().to_owned(), |p| p.to_string()),
        status: response.status().as_u16(),
        started,
    };
    response.map(|body| body.logged(pending))
}

async fn answer(state: &State, request: &Request<Incoming>) -> Response {
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            return error(
                Code::Unsupported,
                "this registry is read-only: pkgr serve answers GET and HEAD only",
            )
        }
    };
    let query = request.uri().query();
    match route(request.uri().path()) {
        Route::Base => json_response(StatusCode::OK, &serde_json::json!({}), "application/json"),
        Route::Catalog => listing::catalog(state, query),
        Route::Tags { name } => listing::tags(state, name, query),
        Route::Manifest { name, reference } => manifests::answer(state, name, reference, head),
        Route::Blob { name, digest } => {
            let range = request
                .headers()
                .get(hyper::header::RANGE)
                .and_then(|v| v.to_str().ok());
            blobs::answer(state, name, digest, range, head).await
        }
        Route::Referrers { name, digest } => referrers(state, name, digest, query),
        Route::Unknown => error(Code::NameUnknown, "no such endpoint in the registry API"),
    }
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=…]`.
fn referrers(state: &State, name: &str, digest: &str, query: Option<&str>) -> Response {
    let Some(repository) = state.contents.repositories.get(name) else {
        return error(
            Code::NameUnknown,
            &format!("repository {name} is not in the package"),
        );
    };
    let Ok(subject) = digest.parse() else {
        return error(
            Code::DigestInvalid,
            &format!("{digest} is not a sha256 digest"),
        );
    };
    let artifact_type = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("artifactType="))
        .map(listing::percent_decoded);
    repository
        .referrers
        .answer(&subject, artifact_type.as_deref())
}
