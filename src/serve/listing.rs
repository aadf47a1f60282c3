//! `/v2/_catalog` and `/v2/<name>/tags/list`, in lexical order, paged with `n` (at most
//! that many) and `last` (only those after it); a page that leaves some out carries a
//! `Link: <…?last=…&n=…>; rel="next"` header, as the distribution spec pages.

use hyper::header::{HeaderValue, LINK};
use hyper::StatusCode;
use serde_json::json;

use super::answer::{error, json_response, Code, Response};
use super::state::State;

/// `GET /v2/_catalog`.
pub fn catalog(state: &State, query: Option<&str>) -> Response {
    let names: Vec<&str> = state
        .contents
        .repositories
        .keys()
        .map(String::as_str)
        .collect();
    paged(
        &names,
        query,
        "/v2/_catalog",
        |page| json!({"repositories": page}),
    )
}

/// `GET /v2/<name>/tags/list`.
pub fn tags(state: &State, name: &str, query: Option<&str>) -> Response {
    let Some(repository) = state.contents.repositories.get(name) else {
        return error(
            Code::NameUnknown,
            &format!("repository {name} is not in the package"),
        );
    };
    let tags: Vec<&str> = repository.tags.keys().map(String::as_str).collect();
    let path = format!("/v2/{name}/tags/list");
    paged(
        &tags,
        query,
        &path,
        |page| json!({"name": name, "tags": page}),
    )
}

/// One page of `sorted`, as `query` asks, wrapped by `document`.
fn paged(
    sorted: &[&str],
    query: Option<&str>,
    path: &str,
    document: impl Fn(&[&str]) -> serde_json::Value,
) -> Response {
    let (mut n, mut last) = (None, None);
    for (key, value) in query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        match key {
            "n" => match value.parse::<usize>() {
                Ok(count) => n = Some(count),
                Err(_) => {
                    return error(
                        Code::PaginationNumberInvalid,
                        &format!("n={value} is not a count"),
                    )
                }
            },
            "last" => last = Some(percent_decoded(value)),
            _ => {}
        }
    }
    let after: Vec<&str> = sorted
        .iter()
        .copied()
        .filter(|item| last.as_deref().is_none_or(|last| *item > last))
        .collect();
    let page = &after[..n.unwrap_or(after.len()).min(after.len())];
    let mut response = json_response(StatusCode::OK, &document(page), "application/json");
    if let (Some(n), Some(last)) = (n, page.last()) {
        if page.len() < after.len() {
            let link = format!("<{path}?last={last}&n={n}>; rel=\"next\"");
            if let Ok(value) = HeaderValue::from_str(&link) {
                response.headers_mut().insert(LINK, value);
            }
        }
    }
    response
}

/// `%XX` escapes decoded (a name's `/` may come as `%2F`); a bad escape is kept as it is.
pub(super) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
