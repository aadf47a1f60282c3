//! Where requests go: a registry's scheme and host, the URL of an endpoint, the next
//! page a `Link` header names, and whether two URLs share an origin (proof goes only
//! to the registry's own) or a host (see `proof::realm` for what that allows).

use oci_client::client::ClientProtocol;
use oci_client::Reference;

/// `https://host/v2/<repository>/<path>` for the reference's registry.
pub fn endpoint(protocol: &ClientProtocol, reference: &Reference, path: &str) -> String {
    format!(
        "{}://{}/v2/{}/{path}",
        scheme(protocol, reference.registry()),
        host(reference.registry()),
        reference.repository()
    )
}

/// `http` for every registry when the whole run is plain HTTP, and for those in the
/// exception list, matched as `host[:port]` exactly as references write it; `https`
/// otherwise.
fn scheme(protocol: &ClientProtocol, registry: &str) -> &'static str {
    match protocol {
        ClientProtocol::Http => "http",
        ClientProtocol::HttpsExcept(plain) if plain.iter().any(|p| p == registry) => "http",
        _ => "https",
    }
}

/// Where a registry named in a reference is served, as oci-client's
/// `Reference::resolve_registry` has it.
fn host(registry: &str) -> &str {
    if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    }
}

/// Whether `url` is on the host and port that serve `registry` (`host[:port]`, a port
/// left out being the URL's scheme's default).
pub fn is_served_at(url: &reqwest::Url, registry: &str) -> bool {
    let served = host(registry);
    let (name, port) = match served.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') => match port.parse::<u16>() {
            Ok(port) => (name, Some(port)),
            Err(_) => (served, None),
        },
        _ => (served, None),
    };
    url.host_str() == Some(name)
        && url.port_or_known_default() == port.or(url.port_or_known_default())
}

/// The `rel="next"` target of a `Link` header (`<url>; rel="next"`), resolved against
/// the URL it came with. Only a page on the same origin is followed: credentials go
/// with it.
pub fn next_page(current: &reqwest::Url, link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let url = current.join(target).ok()?;
        (next && same_origin(current, &url)).then(|| url.to_string())
    })
}

/// Whether `a` and `b` have one scheme, host and port.
pub fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Whether `a` and `b` name one host, as written (a name is not resolved; the URL
/// parser has lowercased it), whatever their schemes and ports.
pub fn same_host(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.host_str().is_some() && a.host_str() == b.host_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_served_at_the_registry_of_its_own_host_and_port() {
        let at =
            |url: &str, registry: &str| is_served_at(&reqwest::Url::parse(url).unwrap(), registry);
        assert!(at("http://127.0.0.1:5000/v2/a/blobs/x", "127.0.0.1:5000"));
        assert!(at(
            "https://index.docker.io/v2/library/a/manifests/1",
            "docker.io"
        ));
        assert!(at("https://[::1]:5000/v2/", "[::1]:5000"));
        assert!(at("https://[::1]/v2/", "[::1]"));
        // A port written out that is the scheme's own.
        assert!(at("https://registry.example/v2/", "registry.example:443"));
        assert!(!at("http://registry.example/v2/", "registry.example:443"));
        // A token service on another port or host is not the registry.
        assert!(!at("http://127.0.0.1:5001/token", "127.0.0.1:5000"));
        assert!(!at("https://auth.example/token", "registry.example"));
    }

    #[test]
    fn the_next_page_of_referrers_is_the_link_header_s_rel_next_on_the_same_origin() {
        let current =
            reqwest::Url::parse("http://127.0.0.1:5000/v2/app/referrers/sha256:ab").unwrap();
        assert_eq!(
            next_page(
                &current,
                r#"</v2/app/referrers/sha256:ab?n=1&last=x>; rel="next""#
            )
            .as_deref(),
            Some("http://127.0.0.1:5000/v2/app/referrers/sha256:ab?n=1&last=x")
        );
        assert_eq!(next_page(&current, r#"</elsewhere>; rel="prev""#), None);
        assert_eq!(
            next_page(&current, r#"<http://other.example/v2/x>; rel="next""#),
            None
        );
    }

    #[test]
    fn proof_goes_to_the_registry_s_own_scheme_host_and_port_only() {
        let registry = reqwest::Url::parse("https://registry.example/v2/app/").unwrap();
        let same =
            reqwest::Url::parse("https://registry.example:443/v2/app/blobs/uploads/1").unwrap();
        assert!(same_origin(&registry, &same));
        for other in [
            "https://storage.example/upload/1",
            "http://registry.example/v2/app/blobs/uploads/1",
            "https://registry.example:5000/v2/app/blobs/uploads/1",
        ] {
            assert!(
                !same_origin(&registry, &reqwest::Url::parse(other).unwrap()),
                "{other}"
            );
        }
    }
}
