//! A stand-in for the Docker engine API on a unix socket, for `docker save` streams
//! that a real daemon can never produce: `docker load` refuses a broken tar, and
//! `docker save` writes its own. It answers `/version` (API 1.41), says it has any
//! image (`/images/<name>/json`), and answers `/images/<name>/get` with the test's
//! bytes followed by a [`Tail`]. Each answer says `Connection: close`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What follows the stream's head.
#[derive(Clone, Copy, Debug)]
pub enum Tail {
    /// The stream ends: a save cut short.
    End,
    /// Zeros, for as long as the client reads (up to 3 GiB): a body as large as a
    /// header claims, which a reader that does not refuse the header would take in.
    Zeros,
}

/// The most zeros one answer sends, so that a reader that never refuses still ends.
const MOST_ZEROS: u64 = 3 << 30;

pub struct SaveStandIn {
    /// `unix:///…/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

impl SaveStandIn {
    pub fn start(head: Vec<u8>, tail: Tail) -> Self {
        // Short: a unix socket's path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("pkgr-save-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let head = Arc::new(head);
        {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let (head, sent) = (head.clone(), sent.clone());
                            std::thread::spawn(move || {
                                let _ = serve(client, &head, tail, &sent);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            host: format!("unix://{}", socket.display()),
            stop,
            sent,
            _dir: dir,
        }
    }

    /// Bytes of save streams written to clients so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for SaveStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(client: UnixStream, head: &[u8], tail: Tail, sent: &AtomicU64) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request.split(' ').nth(1).unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let mut client = client;
    let json = |client: &mut UnixStream, body: &str| {
        write!(
            client,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if path.ends_with("/version") {
        return json(&mut client, r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#);
    }
    if path.ends_with("/json") {
        return json(&mut client, "{}");
    }
    if !path.ends_with("/get") {
        return write!(
            client,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    // No length: the body runs to the end of the connection, as a stream may.
    write!(
        client,
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nConnection: close\r\n\r\n"
    )?;
    client.write_all(head)?;
    sent.fetch_add(head.len() as u64, Ordering::Relaxed);
    if let Tail::Zeros = tail {
        let zeros = vec![0u8; 1 << 20];
        // Until the client hangs up.
        for _ in 0..MOST_ZEROS / zeros.len() as u64 {
            client.write_all(&zeros)?;
            sent.fetch_add(zeros.len() as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}
