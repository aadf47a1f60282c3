//! Responses: the body type every answer uses (whole bytes, or chunks a blocking
//! reader sends, counted for the request's log line), JSON answers, and the
//! distribution spec's error bodies (`{"errors":[{"code":…,"message":…}]}`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;

use super::log::Pending;

pub type Response = hyper::Response<Body>;

/// A response body: bytes in memory, or a blob's chunks as a reader thread sends them.
/// When dropped, sent or not, it writes the request's log line with the bytes it gave.
pub struct Body {
    kind: Kind,
    sent: u64,
    log: Option<Pending>,
}

enum Kind {
    Whole(Option<Bytes>),
    Chunks {
        receiver: mpsc::Receiver<std::io::Result<Bytes>>,
        left: u64,
    },
}

impl Body {
    pub fn empty() -> Self {
        Self::whole(Bytes::new())
    }

    pub fn whole(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Whole(Some(bytes.into())),
            sent: 0,
            log: None,
        }
    }

    /// `len` bytes, arriving on `receiver`.
    pub fn chunks(receiver: mpsc::Receiver<std::io::Result<Bytes>>, len: u64) -> Self {
        Self {
            kind: Kind::Chunks {
                receiver,
                left: len,
            },
            sent: 0,
            log: None,
        }
    }

    pub fn logged(mut self, log: Pending) -> Self {
        self.log = Some(log);
        self
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.finish(self.sent);
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Whole(bytes) => Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(Ok)),
            Kind::Chunks { receiver, left } => match receiver.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    *left = left.saturating_sub(chunk.len() as u64);
                    Poll::Ready(Some(Ok(chunk)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if *left > 0 => Poll::Ready(Some(Err(std::io::Error::other(
                    "the package reader stopped early",
                )))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        };
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            this.sent += chunk.len() as u64;
        }
        polled.map(|frame| frame.map(|chunk| chunk.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Whole(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Chunks { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Chunks { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

/// A response of `status` with `body`, its type and length set.
pub fn bytes_response(status: StatusCode, body: impl Into<Bytes>, media_type: &str) -> Response {
    let body: Bytes = body.into();
    let mut response = hyper::Response::new(Body::empty());
    *response.status_mut() = status;
    set_type(&mut response, media_type);
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    *response.body_mut() = Body::whole(body);
    response
}

pub fn json_response(status: StatusCode, body: &serde_json::Value, media_type: &str) -> Response {
    bytes_response(status, body.to_string(), media_type)
}

fn set_type(response: &mut Response, media_type: &str) {
    if let Ok(value) = HeaderValue::from_str(media_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
}

/// The distribution spec's error codes pkgr answers with.
#[derive(Debug, Clone, Copy)]
pub enum Code {
    NameUnknown,
    ManifestUnknown,
    BlobUnknown,
    DigestInvalid,
    PaginationNumberInvalid,
    Unsupported,
    /// A blob or manifest whose bytes do not hash to its digest: a server fault, 500.
    Unknown,
}

impl Code {
    fn parts(self) -> (StatusCode, &'static str) {
        match self {
            Self::NameUnknown => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            Self::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            Self::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            Self::DigestInvalid => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            Self::PaginationNumberInvalid => (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"),
            Self::Unsupported => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            Self::Unknown => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }
}

/// A distribution-style error answer.
pub fn error(code: Code, message: &str) -> Response {
    let (status, name) = code.parts();
    let body = json!({"errors": [{"code": name, "message": message}]});
    let mut response = json_response(status, &body, "application/json");
    if let Code::Unsupported = code {
        response
            .headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}
