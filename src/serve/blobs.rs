//! `HEAD`/`GET /v2/<name>/blobs/<digest>`: a blob read from the package at its offset,
//! whole or one byte range (206 with `Content-Range`, 416 when the range is outside
//! it), only once its bytes hashed to its digest. A damaged blob is answered with 500
//! and an `UNKNOWN` error naming it, and logged; its bytes are never sent.

use hyper::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use hyper::StatusCode;

use super::answer::{error, Body, Code, Response};
use super::state::State;
use super::verified::Checked;
use crate::digest::Digest;

pub async fn answer(
    state: &State,
    name: &str,
    digest: &str,
    range: Option<&str>,
    head: bool,
) -> Response {
    let Some(repository) = state.contents.repositories.get(name) else {
        return error(
            Code::NameUnknown,
            &format!("repository {name} is not in the package"),
        );
    };
    let Ok(digest) = digest.parse::<Digest>() else {
        return error(
            Code::DigestInvalid,
            &format!("{digest} is not a sha256 digest"),
        );
    };
    let in_repository =
        repository.blobs.contains(&digest) || repository.manifests.contains_key(&digest);
    let place = state.contents.places.get(&digest).copied();
    let (true, Some(place)) = (in_repository, place) else {
        return error(
            Code::BlobUnknown,
            &format!("{name} has no blob {digest} in the package"),
        );
    };
    match state.verified.check(&digest, place, &state.readers).await {
        Ok(Checked::Good) => {}
        Ok(Checked::Damaged(_)) => {
            return error(
                Code::Unknown,
                &format!("blob {digest} is damaged in the package; it is not served"),
            )
        }
        Err(why) => return error(Code::Unknown, &why),
    }
    let (status, start, len) = match range.map(|r| parse_range(r, place.size)) {
        None | Some(Ranged::Whole) => (StatusCode::OK, 0, place.size),
        Some(Ranged::Part { start, end }) => (StatusCode::PARTIAL_CONTENT, start, end + 1 - start),
        Some(Ranged::Unsatisfiable) => return unsatisfiable(place.size),
    };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        state.readers.body(place.offset + start, len)
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("Docker-Content-Digest", value);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{}", start + len - 1, place.size);
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(CONTENT_RANGE, value);
        }
    }
    response
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = hyper::Response::new(Body::empty());
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(CONTENT_RANGE, value);
    }
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// No range pkgr reads (several ranges, another unit): the whole blob, as RFC 9110
    /// allows a server to answer.
    Whole,
    /// Bytes `start..=end`.
    Part {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

fn parse_range(header: &str, size: u64) -> Ranged {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |text: &str| text.parse::<u64>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        (true, false) => match number(last) {
            Some(0) | None => return Ranged::Unsatisfiable,
            Some(suffix) => (size.saturating_sub(suffix), size.saturating_sub(1)),
        },
        (false, _) => {
            let Some(start) = number(first) else {
                return Ranged::Whole;
            };
            let end = if last.is_empty() { None } else { number(last) };
            if !last.is_empty() && end.is_none_or(|end| end < start) {
                return Ranged::Whole;
            }
            (start, end.unwrap_or(u64::MAX).min(size.saturating_sub(1)))
        }
        (true, true) => return Ranged::Whole,
    };
    if size == 0 || start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_reads_them() {
        let part = |start, end| Ranged::Part { start, end };
        assert_eq!(parse_range("bytes=0-9", 100), part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), part(90, 99));
        assert_eq!(parse_range("bytes=90-200", 100), part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), part(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ranged::Whole);
        assert_eq!(parse_range("items=0-1", 100), Ranged::Whole);
    }
}
