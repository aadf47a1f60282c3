//! Which token services may be sent the configured credentials, and the refusal when
//! one may not.

use reqwest::Url;

use crate::registry::direct::url;

/// How a refusal to send the credentials to a token service starts; the realm follows.
const PLAIN_HTTP_REALM: &str = "the credentials are not sent over plain HTTP to the token service ";

/// Whether the credentials for the registry at `registry` may go to the token service
/// at `realm`, which the registry's challenge named. Anonymous token requests carry no
/// secret and are not asked about: they go to any realm, so public images keep working.
///
/// - Over HTTPS, to any host: TLS keeps them off the wire, and the registry chose the
///   service.
/// - Over plain HTTP, only to the registry's own host, and only when the registry
///   itself is reached over plain HTTP (a loopback registry without TLS, or
///   `--plain-http`). Such a registry is sent Basic credentials in the clear anyway
///   when it asks for them, so a token service on its host puts nothing new on the
///   wire. Over plain HTTP, any other host is a new party reading them in the clear,
///   and a plain-HTTP service beside an HTTPS registry would undo the registry's TLS.
/// - "Its own host" is the host as the two URLs write it; the port is not compared.
///   A registry and its token service on two ports of one host (registry:2 beside its
///   auth server, loopback test registries) are one machine, on one network path:
///   whoever can read one port's plain HTTP can read the other's. Names are not
///   resolved, as a DNS answer proves nothing about who serves a name: `localhost`
///   and `127.0.0.1` are two hosts, as are `127.0.0.1` and `127.0.0.2`.
pub fn may_receive_credentials(registry: &Url, realm: &Url) -> bool {
    match realm.scheme() {
        "https" => true,
        "http" => registry.scheme() == "http" && url::same_host(registry, realm),
        _ => false,
    }
}

/// The error for credentials kept from the token service at `realm`.
pub fn refused(realm: &str) -> String {
    format!("{PLAIN_HTTP_REALM}{realm}")
}

/// The realm a [`refused`] message names; `None` for any other message.
pub fn plain_http_realm(message: &str) -> Option<&str> {
    message.strip_prefix(PLAIN_HTTP_REALM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn may(registry: &str, realm: &str) -> bool {
        may_receive_credentials(&Url::parse(registry).unwrap(), &Url::parse(realm).unwrap())
    }

    #[test]
    fn an_https_token_service_gets_the_credentials_wherever_it_is() {
        for registry in ["https://registry.example/v2/", "http://127.0.0.1:5000/v2/"] {
            for realm in [
                "https://auth.example/token",
                "https://registry.example:5001/token",
                "https://localhost:5001/token",
            ] {
                assert!(may(registry, realm), "{registry} -> {realm}");
            }
        }
    }

    #[test]
    fn a_plain_http_token_service_on_a_plain_http_registry_s_host_gets_them_on_any_port() {
        for realm in [
            "http://127.0.0.1:5000/token",
            "http://127.0.0.1:5001/token",
            "http://127.0.0.1/token",
        ] {
            assert!(may("http://127.0.0.1:5000/v2/app/", realm), "{realm}");
        }
        assert!(may(
            "http://registry.internal:5000/v2/",
            "http://REGISTRY.internal:5001/auth"
        ));
    }

    #[test]
    fn a_plain_http_token_service_on_another_host_gets_none() {
        for realm in [
            "http://127.0.0.2:5000/token",
            "http://localhost:5000/token",
            "http://auth.example/token",
            "http://[::1]:5000/token",
        ] {
            assert!(!may("http://127.0.0.1:5000/v2/app/", realm), "{realm}");
        }
        assert!(!may(
            "http://localhost:5000/v2/app/",
            "http://127.0.0.1:5000/token"
        ));
    }

    #[test]
    fn a_plain_http_token_service_beside_an_https_registry_gets_none() {
        assert!(!may(
            "https://registry.example/v2/",
            "http://registry.example/token"
        ));
        assert!(!may(
            "https://127.0.0.1:5000/v2/",
            "http://127.0.0.1:5001/token"
        ));
    }

    #[test]
    fn a_token_service_on_any_other_scheme_gets_none() {
        assert!(!may("http://127.0.0.1:5000/v2/", "ftp://127.0.0.1/token"));
    }

    #[test]
    fn a_refusal_names_its_realm_and_nothing_else_is_taken_for_one() {
        let message = refused("http://localhost:5001/token");
        assert_eq!(
            plain_http_realm(&message),
            Some("http://localhost:5001/token")
        );
        assert_eq!(
            plain_http_realm("the registry asks for credentials and none are configured"),
            None
        );
    }
}
