//! The small HTTP/1.1 server the stand-ins in front of a real registry share: it
//! accepts on loopback, reads each request's head, and hands the request to the
//! stand-in's handler on a thread of its own. One request per connection; handlers
//! answer with `Connection: close`. The server stops accepting when dropped.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A request as read so far: its head, and the connection, whose reader is positioned
/// at the body.
pub struct Request {
    pub method: String,
    pub path: String,
    /// The request line, then one entry per header line.
    pub head: Vec<String>,
    pub reader: BufReader<TcpStream>,
    pub client: TcpStream,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }
}

pub struct Server {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves on a free loopback port; `handle` answers each request. An error from
    /// it (most often the client hanging up) ends that connection only.
    pub fn start<F>(handle: F) -> Self
    where
        F: Fn(Request) -> std::io::Result<()> + Send + Sync + 'static,
    {
        Self::start_on(0, handle)
    }

    /// As [`start`](Self::start), on this loopback port (0: a free one).
    pub fn start_on<F>(port: u16, handle: F) -> Self
    where
        F: Fn(Request) -> std::io::Result<()> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let handle = handle.clone();
                            std::thread::spawn(move || {
                                if let Ok(Some(request)) = read_request(client) {
                                    let _ = handle(request);
                                }
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self { addr, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads the head of the one request on `client`; `None` if it closed first.
fn read_request(client: TcpStream) -> std::io::Result<Option<Request>> {
    client.set_nonblocking(false)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let head = read_head(&mut reader)?;
    let Some(request_line) = head.first() else {
        return Ok(None);
    };
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    Ok(Some(Request {
        method,
        path,
        head,
        reader,
        client,
    }))
}

/// Reads an HTTP head (up to the blank line) as lines.
pub fn read_head(reader: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    Ok(lines)
}

/// The value of header `name` in `head` (whose first line is the start line).
pub fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}
