//! A stand-in for the OCI 1.1 referrers API, in front of Debian's docker-registry 2.8,
//! which lacks it. `GET /v2/<name>/referrers/<digest>` is answered from the registry's
//! own content: each manifest the test names as a candidate (2.8 cannot list manifests
//! pushed by digest only) is read from the registry, and those whose `subject` is the
//! digest are listed, as the API lists them, a page at a time if asked to (the next
//! page named by a `Link: <…>; rel="next"` header). Every other GET or HEAD is
//! forwarded. A hostile registry's answers can be given as they stand instead
//! ([`Answers`]): one listing for every referrers request, and manifests served from
//! memory by tag or digest. It runs on the shared [`Server`](super::http::Server).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Request, Server};

pub struct ReferrersStandIn {
    pub addr: String,
    asked: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
    _server: Server,
}

/// What the stand-in answers itself.
#[derive(Clone)]
pub struct Answers {
    /// `(repository, digest)` of the manifests that may be referrers.
    pub candidates: Vec<(String, String)>,
    /// The most referrers listed per answer.
    pub page_size: usize,
    /// Descriptors listed, as they stand, for every referrers request (instead of
    /// the candidates that name the digest).
    pub listing: Option<Vec<serde_json::Value>>,
    /// Manifests served from memory: `<repository>/manifests/<tag or digest>` to its
    /// media type and bytes.
    pub manifests: HashMap<String, (String, Vec<u8>)>,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            candidates: Vec::new(),
            page_size: usize::MAX,
            listing: None,
            manifests: HashMap::new(),
        }
    }
}

impl ReferrersStandIn {
    /// Serves `upstream`'s content; `candidates` are `(repository, digest)` of the
    /// manifests that may be referrers.
    pub fn start(upstream: &str, candidates: Vec<(String, String)>) -> Self {
        Self::start_paged(upstream, candidates, usize::MAX)
    }

    /// As [`start`](Self::start), listing at most `page_size` referrers per answer.
    pub fn start_paged(
        upstream: &str,
        candidates: Vec<(String, String)>,
        page_size: usize,
    ) -> Self {
        Self::start_answering(
            upstream,
            Answers {
                candidates,
                page_size,
                ..Answers::default()
            },
        )
    }

    /// Serves `upstream`'s content, answering what `answers` names itself.
    pub fn start_answering(upstream: &str, answers: Answers) -> Self {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let upstream = format!("http://{upstream}");
        let server = {
            let (asked, requests) = (asked.clone(), requests.clone());
            Server::start(move |request| {
                requests.lock().unwrap().push(request.path.clone());
                serve(request, &upstream, &answers, &asked)
            })
        };
        Self {
            addr: server.addr.clone(),
            asked,
            requests,
            _server: server,
        }
    }

    /// The paths of the referrers requests answered so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// The paths of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn client() -> reqwest::blocking::Client {
    crate::support::http_client()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn serve(
    request: Request,
    upstream: &str,
    answers: &Answers,
    asked: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let (method, path) = (request.method.clone(), request.path.clone());
    let mut out = request.client.try_clone()?;
    if let Some((media_type, body)) = path
        .strip_prefix("/v2/")
        .and_then(|rest| answers.manifests.get(rest))
    {
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        if method != "HEAD" {
            out.write_all(body)?;
        }
        return out.flush();
    }
    let page_size = answers.page_size;
    if let Some((name, digest)) = path
        .strip_prefix("/v2/")
        .and_then(|rest| rest.split_once("/referrers/"))
    {
        asked.lock().unwrap().push(path.clone());
        let (digest, page): (&str, usize) = match digest.split_once("?page=") {
            Some((digest, page)) => (digest, page.parse().unwrap_or(0)),
            None => (digest, 0),
        };
        let all = match &answers.listing {
            Some(listed) => listed.clone(),
            None => listing(upstream, name, digest, &answers.candidates),
        };
        let start = page.saturating_mul(page_size).min(all.len());
        let end = start.saturating_add(page_size).min(all.len());
        let link = if end < all.len() {
            format!(
                "Link: </v2/{name}/referrers/{digest}?page={}>; rel=\"next\"\r\n",
                page + 1
            )
        } else {
            String::new()
        };
        let body = serde_json::to_string(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": &all[start..end],
        }))
        .unwrap();
        return write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let mut forwarded = match method.as_str() {
        "HEAD" => client().head(format!("{upstream}{path}")),
        _ => client().get(format!("{upstream}{path}")),
    };
    for name in ["accept", "range", "authorization"] {
        if let Some(value) = request.header(name) {
            forwarded = forwarded.header(name, value);
        }
    }
    let mut response = match forwarded.send() {
        Ok(response) => response,
        Err(_) => {
            return write!(
                out,
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        }
    };
    let mut body = Vec::new();
    if method != "HEAD" {
        response.read_to_end(&mut body)?;
    }
    let status = response.status();
    write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )?;
    for (name, value) in response.headers() {
        if ["connection", "transfer-encoding", "content-length"].contains(&name.as_str()) {
            continue;
        }
        write!(out, "{name}: {}\r\n", value.to_str().unwrap_or_default())?;
    }
    let length = if method == "HEAD" {
        response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_owned()
    } else {
        body.len().to_string()
    };
    write!(out, "Content-Length: {length}\r\nConnection: close\r\n\r\n")?;
    out.write_all(&body)?;
    out.flush()
}

/// The referrers index of `digest` in `name`: the candidates there whose `subject` is
/// `digest`, each described by its artifact type and annotations.
fn listing(
    upstream: &str,
    name: &str,
    digest: &str,
    candidates: &[(String, String)],
) -> Vec<serde_json::Value> {
    let mut manifests = Vec::new();
    for (repo, candidate) in candidates.iter().filter(|(repo, _)| repo == name) {
        let response = client()
            .get(format!("{upstream}/v2/{repo}/manifests/{candidate}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        if !response.status().is_success() {
            continue;
        }
        let bytes = response.bytes().unwrap().to_vec();
        let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if manifest["subject"]["digest"] != digest {
            continue;
        }
        let artifact_type = manifest
            .get("artifactType")
            .or_else(|| manifest["config"].get("mediaType"))
            .cloned()
            .unwrap_or_default();
        let mut descriptor = serde_json::json!({
            "mediaType": manifest["mediaType"],
            "digest": candidate,
            "size": bytes.len(),
            "artifactType": artifact_type,
        });
        if let Some(annotations) = manifest.get("annotations") {
            descriptor["annotations"] = annotations.clone();
        }
        manifests.push(descriptor);
    }
    manifests
}
