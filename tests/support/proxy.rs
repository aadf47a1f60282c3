//! A fault-injecting HTTP proxy in front of a real registry, for the failures a real
//! server will not produce on demand: a body cut mid-way, a corrupted byte, an error
//! status, a server that ignores Range requests, or a request held until the test lets
//! it go. Its token gate plays a registry's token service, itself or as a
//! [`TokenService`] of its own that the challenge names elsewhere. Both run on the
//! shared [`Server`](super::http::Server).

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{header, read_head, Request, Server};

#[derive(Clone, Debug)]
pub enum Fault {
    /// Send the head and this many body bytes, then close the connection.
    CutAfter(usize),
    /// Flip the body byte at this offset.
    Corrupt(usize),
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer with this status and this JSON body.
    Answer(u16, String),
    /// Answer 307 with this Location (`SELF` stands for the request's own URL).
    Redirect(String),
    /// Send the head, then hold the body back for this long.
    Stall(Duration),
    /// Answer 200 with a manifest body that goes on (up to 1 GiB) until the client
    /// hangs up.
    EndlessBody,
    /// Send the head and this many body bytes, then hold the connection open without
    /// sending more, for a minute.
    StallAfter(usize),
    /// Send the head, then the body one byte per this interval.
    Trickle(Duration),
    /// Read the request's body 16 KiB per this interval, as a slow link would.
    SlowUpload(Duration),
    /// Read the request and never answer it (for a minute), as a hung server would.
    Hang,
    /// Forward the request without its Range header, so the registry answers 200 with
    /// the whole body, as a server that does not do ranges would.
    IgnoreRange,
    /// Hold the request, neither forwarded nor answered, until the flag is set: the
    /// test acts while the client is known to be waiting there.
    Hold(Arc<AtomicBool>),
    /// Send the body at this many bytes a second, as a slow link would; the proxy
    /// counts how many such bodies it sends at once.
    Throttle(u64),
}

/// One logged request: method, path and Range header.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

pub struct FaultProxy {
    pub addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    throttled: Arc<Throttled>,
    _server: Server,
}

/// Throttled bodies being sent now, and the most sent at once.
#[derive(Default)]
struct Throttled {
    now: AtomicUsize,
    most: AtomicUsize,
}

type Rules = Mutex<Vec<(String, Fault)>>;

/// A gate, and the realm its challenges name (`None`: the proxy's own `/token`).
struct Gated {
    gate: TokenGate,
    realm: Option<String>,
}

/// A token service in front of the registry, as real registries have: `/v2/` answers
/// without a challenge, every repository request without the token gets a 401 with a
/// Bearer challenge for its repository's scope, and `/token` hands the token out, to
/// anyone or only to these Basic credentials.
#[derive(Clone, Debug)]
pub struct TokenGate {
    pub credentials: Option<(String, String)>,
}

const TOKEN: &str = "pkgr-test-token";

impl FaultProxy {
    /// Proxies to `upstream`. Each rule `(pattern, fault)` applies once, to the first
    /// request whose line (`METHOD /path`) contains the pattern.
    pub fn start(upstream: &str, rules: Vec<(String, Fault)>) -> Self {
        Self::start_gated(upstream, rules, None)
    }

    /// As [`start`](Self::start), on this loopback port: a server that appears there
    /// at once, for a client that is already trying it.
    pub fn start_on(port: u16, upstream: &str) -> Self {
        Self::serve_gated(port, upstream, vec![], None)
    }

    /// As [`start`](Self::start), with repository requests behind a token service. The
    /// gate comes before the rules: a rule applies to the request that carries the token.
    pub fn start_gated(
        upstream: &str,
        rules: Vec<(String, Fault)>,
        gate: Option<TokenGate>,
    ) -> Self {
        Self::serve_gated(
            0,
            upstream,
            rules,
            gate.map(|gate| Gated { gate, realm: None }),
        )
    }

    /// As [`start_gated`](Self::start_gated), with the challenges naming `realm` (a
    /// [`TokenService`], as the test writes its URL) instead of the proxy's own
    /// `/token`. The gate lets through what carries the token that service hands out.
    pub fn start_gated_with_realm(upstream: &str, gate: TokenGate, realm: &str) -> Self {
        let realm = Some(realm.to_owned());
        Self::serve_gated(0, upstream, vec![], Some(Gated { gate, realm }))
    }

    fn serve_gated(
        port: u16,
        upstream: &str,
        rules: Vec<(String, Fault)>,
        gate: Option<Gated>,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let throttled = Arc::new(Throttled::default());
        let rules = Mutex::new(rules);
        let upstream = upstream.to_owned();
        let server = {
            let (seen, throttled) = (seen.clone(), throttled.clone());
            Server::start_on(port, move |request| {
                let faults = Faults {
                    rules: &rules,
                    throttled: &throttled,
                };
                serve(request, &upstream, &faults, &seen, gate.as_ref())
            })
        };
        Self {
            addr: server.addr.clone(),
            seen,
            throttled,
            _server: server,
        }
    }

    /// The most bodies under [`Fault::Throttle`] that were being sent at once.
    pub fn most_throttled_at_once(&self) -> usize {
        self.throttled.most.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A registry's token service on a port of its own, for a gate whose challenges name
/// it ([`FaultProxy::start_gated_with_realm`]): it hands out the gate's token, to
/// anyone or only to these Basic credentials, and keeps the Authorization header of
/// every request it receives.
pub struct TokenService {
    pub port: u16,
    received: Arc<Mutex<Vec<Option<String>>>>,
    _server: Server,
}

impl TokenService {
    pub fn start(credentials: Option<(String, String)>) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let received = received.clone();
            Server::start(move |mut request| {
                let authorization = request.header("authorization").map(str::to_owned);
                received.lock().unwrap().push(authorization);
                answer_token(&mut request.client, credentials.as_ref(), &request.head)
            })
        };
        Self {
            port: server.addr.rsplit_once(':').unwrap().1.parse().unwrap(),
            received,
            _server: server,
        }
    }

    /// The Authorization header of each request received so far (`None` for one
    /// without).
    pub fn received(&self) -> Vec<Option<String>> {
        self.received.lock().unwrap().clone()
    }
}

fn refuse(client: &mut TcpStream, challenge: Option<String>) -> std::io::Result<()> {
    let challenge = challenge
        .map(|c| format!("WWW-Authenticate: {c}\r\n"))
        .unwrap_or_default();
    write!(
        client,
        "HTTP/1.1 401 Unauthorized\r\n{challenge}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// Answers a token request: the token, if `credentials` are none or the request
/// carries them; a 401 otherwise.
fn answer_token(
    client: &mut TcpStream,
    credentials: Option<&(String, String)>,
    head: &[String],
) -> std::io::Result<()> {
    let expected = credentials.map(|(user, password)| {
        use base64::Engine;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    });
    if expected.is_some() && header(head, "authorization") != expected.as_deref() {
        return refuse(client, None);
    }
    let body = format!(r#"{{"token":"{TOKEN}"}}"#);
    write!(
        client,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Plays the token service for `path`: hands out the token at `/token`, and refuses a
/// repository request without it, with a challenge naming the gate's realm. Returns
/// whether it answered.
fn answered_by_gate(
    client: &mut TcpStream,
    gated: &Gated,
    head: &[String],
    method: &str,
    path: &str,
) -> std::io::Result<bool> {
    if path.starts_with("/token") {
        answer_token(client, gated.gate.credentials.as_ref(), head)?;
        return Ok(true);
    }
    let Some(rest) = path.strip_prefix("/v2/").filter(|rest| !rest.is_empty()) else {
        return Ok(false);
    };
    if header(head, "authorization") == Some(format!("Bearer {TOKEN}").as_str()) {
        return Ok(false);
    }
    let repository = ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .find_map(|marker| rest.split_once(marker).map(|(repo, _)| repo))
        .unwrap_or(rest);
    let host = header(head, "host").unwrap_or("127.0.0.1");
    let realm = gated
        .realm
        .clone()
        .unwrap_or_else(|| format!("http://{host}/token"));
    let actions = if matches!(method, "GET" | "HEAD") {
        "pull"
    } else {
        "pull,push"
    };
    refuse(
        client,
        Some(format!(
            r#"Bearer realm="{realm}",service="pkgr-test",scope="repository:{repository}:{actions}""#
        )),
    )?;
    Ok(true)
}

/// The head with its Connection header replaced by `Connection: close`.
fn closing(head: &[String]) -> String {
    let mut out = String::new();
    for line in head {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

/// The rules still to apply, and the count of throttled bodies.
struct Faults<'a> {
    rules: &'a Rules,
    throttled: &'a Throttled,
}

/// Counts a throttled body as sent from its creation to its drop.
struct Sending<'a>(&'a Throttled);

impl<'a> Sending<'a> {
    fn start(throttled: &'a Throttled) -> Self {
        let now = throttled.now.fetch_add(1, Ordering::SeqCst) + 1;
        throttled.most.fetch_max(now, Ordering::SeqCst);
        Self(throttled)
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(
    request: Request,
    upstream: &str,
    faults: &Faults,
    seen: &Mutex<Vec<Seen>>,
    gate: Option<&Gated>,
) -> std::io::Result<()> {
    let Request {
        method,
        path,
        head,
        reader: mut client_reader,
        mut client,
    } = request;
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        range: header(&head, "range").map(str::to_owned),
    });
    if let Some(gate) = gate {
        if answered_by_gate(&mut client, gate, &head, &method, &path)? {
            return Ok(());
        }
    }
    let line = format!("{method} {path}");
    let fault = {
        let mut rules = faults.rules.lock().unwrap();
        rules
            .iter()
            .position(|(pattern, _)| line.contains(pattern.as_str()))
            .map(|i| rules.remove(i).1)
    };
    if let Some(Fault::Status(code)) = fault {
        write!(
            client,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    if let Some(Fault::Answer(code, body)) = &fault {
        write!(
            client,
            "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    if let Some(Fault::Redirect(location)) = &fault {
        let host = header(&head, "host").unwrap_or("127.0.0.1");
        let location = location.replace("SELF", &format!("http://{host}{path}"));
        write!(
            client,
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    if let Some(Fault::Hang) = fault {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    }
    if let Some(Fault::EndlessBody) = fault {
        write!(
            client,
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n{{\"schemaVersion\":2,\"padding\":\""
        )?;
        let padding = vec![b'x'; 64 * 1024];
        for _ in 0..(1 << 14) {
            client.write_all(&padding)?;
        }
        return Ok(());
    }

    let mut body = Vec::new();
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        match &fault {
            Some(Fault::SlowUpload(every)) => {
                for piece in body.chunks_mut(16 * 1024) {
                    client_reader.read_exact(piece)?;
                    std::thread::sleep(*every);
                }
            }
            _ => client_reader.read_exact(&mut body)?,
        }
    }
    if let Some(Fault::Hold(gate)) = &fault {
        while !gate.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let forwarded: Vec<String> = match fault {
        Some(Fault::IgnoreRange) => head
            .iter()
            .filter(|line| !line.to_ascii_lowercase().starts_with("range:"))
            .cloned()
            .collect(),
        _ => head.clone(),
    };
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(closing(&forwarded).as_bytes())?;
    server.write_all(&body)?;
    let mut server_reader = BufReader::new(server);
    let response_head = read_head(&mut server_reader)?;
    client.write_all(closing(&response_head).as_bytes())?;
    if let Some(Fault::Stall(pause)) = fault {
        client.flush()?;
        std::thread::sleep(pause);
    }

    let _sending =
        matches!(fault, Some(Fault::Throttle(_))).then(|| Sending::start(faults.throttled));
    let mut sent = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = server_reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        match fault {
            Some(Fault::CutAfter(limit)) if sent + n >= limit => {
                client.write_all(&chunk[..limit - sent])?;
                client.flush()?;
                return client.shutdown(std::net::Shutdown::Both);
            }
            Some(Fault::StallAfter(limit)) if sent + n >= limit => {
                client.write_all(&chunk[..limit - sent])?;
                client.flush()?;
                std::thread::sleep(Duration::from_secs(60));
                return Ok(());
            }
            Some(Fault::Trickle(every)) => {
                for byte in chunk.iter() {
                    client.write_all(&[*byte])?;
                    client.flush()?;
                    std::thread::sleep(every);
                }
                sent += n;
                continue;
            }
            Some(Fault::Corrupt(at)) if (sent..sent + n).contains(&at) => {
                chunk[at - sent] ^= 0xff;
            }
            Some(Fault::Throttle(per_second)) => {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / per_second as f64));
            }
            _ => {}
        }
        client.write_all(chunk)?;
        sent += n;
    }
    Ok(())
}
