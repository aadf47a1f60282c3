//! A request's path read as a distribution endpoint. Repository names may hold
//! slashes, so an endpoint is told by its last segments: `<name>/manifests/<ref>`,
//! `<name>/blobs/<digest>`, `<name>/tags/list`, `<name>/referrers/<digest>`.

/// The endpoint a path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    Manifest {
        name: &'a str,
        reference: &'a str,
    },
    Blob {
        name: &'a str,
        digest: &'a str,
    },
    Tags {
        name: &'a str,
    },
    Referrers {
        name: &'a str,
        digest: &'a str,
    },
    /// Anything else, blob uploads included.
    Unknown,
}

/// Reads `path` (without its query).
pub fn route(path: &str) -> Route<'_> {
    let Some(rest) = path
        .strip_prefix("/v2/")
        .or_else(|| (path == "/v2").then_some(""))
    else {
        return Route::Unknown;
    };
    match rest {
        "" => return Route::Base,
        "_catalog" => return Route::Catalog,
        _ => {}
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return named(name, Route::Tags { name });
    }
    let mut parts = rest.rsplitn(3, '/');
    let (Some(last), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Route::Unknown;
    };
    if last.is_empty() {
        return Route::Unknown;
    }
    let found = match kind {
        "manifests" => Route::Manifest {
            name,
            reference: last,
        },
        "blobs" => Route::Blob { name, digest: last },
        "referrers" => Route::Referrers { name, digest: last },
        _ => return Route::Unknown,
    };
    named(name, found)
}

/// `found`, if `name` has no empty segment.
fn named<'a>(name: &str, found: Route<'a>) -> Route<'a> {
    if name.is_empty() || name.split('/').any(str::is_empty) {
        return Route::Unknown;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_are_routed_by_their_last_segments() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(route("/v2"), Route::Base);
        assert_eq!(route("/v2/_catalog"), Route::Catalog);
        assert_eq!(
            route("/v2/team/app/manifests/1.0"),
            Route::Manifest {
                name: "team/app",
                reference: "1.0"
            }
        );
        assert_eq!(
            route("/v2/a/blobs/b/blobs/sha256:00"),
            Route::Blob {
                name: "a/blobs/b",
                digest: "sha256:00"
            }
        );
        assert_eq!(route("/v2/a/b/c/tags/list"), Route::Tags { name: "a/b/c" });
        assert_eq!(
            route("/v2/x/referrers/sha256:00"),
            Route::Referrers {
                name: "x",
                digest: "sha256:00"
            }
        );
        assert_eq!(route("/v2/x/blobs/uploads/"), Route::Unknown);
        assert_eq!(route("/v2//manifests/1"), Route::Unknown);
        assert_eq!(route("/v2/manifests/1"), Route::Unknown);
        assert_eq!(route("/other"), Route::Unknown);
    }
}
