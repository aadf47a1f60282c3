//! `HEAD`/`GET /v2/<name>/manifests/<reference>`: a manifest by tag or by digest, with
//! the exact bytes the package holds, the media type they declare and their digest.

use hyper::header::HeaderValue;
use hyper::StatusCode;

use super::answer::{bytes_response, error, Body, Code, Response};
use super::state::State;
use crate::digest::Digest;

pub fn answer(state: &State, name: &str, reference: &str, head: bool) -> Response {
    let Some(repository) = state.contents.repositories.get(name) else {
        return error(
            Code::NameUnknown,
            &format!("repository {name} is not in the package"),
        );
    };
    let digest = if reference.contains(':') {
        match reference.parse::<Digest>() {
            Ok(digest) => digest,
            Err(_) => {
                return error(
                    Code::DigestInvalid,
                    &format!("{reference} is not a sha256 digest"),
                )
            }
        }
    } else {
        match repository.tags.get(reference) {
            Some(digest) => digest.clone(),
            None => {
                return error(
                    Code::ManifestUnknown,
                    &format!("{name} has no tag {reference} in the package"),
                )
            }
        }
    };
    let Some(media_type) = repository.manifests.get(&digest) else {
        return error(
            Code::ManifestUnknown,
            &format!("{name} has no manifest {digest} in the package"),
        );
    };
    let Some(bytes) = state.contents.manifests.get(&digest) else {
        super::log::damaged(&digest, "a manifest whose bytes do not hash to its digest");
        return error(
            Code::Unknown,
            &format!("manifest {digest} is damaged in the package; it is not served"),
        );
    };
    let mut response = bytes_response(StatusCode::OK, bytes.clone(), media_type);
    if let Ok(value) = HeaderValue::from_str(&digest.to_string()) {
        response
            .headers_mut()
            .insert("Docker-Content-Digest", value);
    }
    if head {
        *response.body_mut() = Body::empty();
    }
    response
}
