//! Pulling from and pushing to registries that want proof: Basic credentials, tokens
//! that a registry asks for only on repository requests (its `/v2/` answers without a
//! challenge), and token services elsewhere, which get the credentials only where they
//! cannot travel in the clear to another host. Credentials come from the workspace's
//! Docker config.json.

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Pusher};
use crate::support::package::Package;
use crate::support::proxy::{Fault, FaultProxy, TokenGate, TokenService};
use crate::support::registry::{Options, TestRegistry};
use crate::support::{package_path, stderr, Workspace};

pub(crate) fn docker_login(ws: &Workspace, registry: &str, user: &str, password: &str) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        ws.path("docker").join("config.json"),
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
}

#[test]
fn a_registry_asking_for_a_token_only_on_repositories_is_pulled_with_one() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let gate = FaultProxy::start_gated(
        &registry.addr,
        vec![],
        Some(TokenGate { credentials: None }),
    );
    // Eight tags of one repository: their manifests are asked for at once, and each
    // of those requests is refused until one token arrives.
    let pusher = Pusher::new(&registry.addr);
    let tags: Vec<String> = (2..=8).map(|i| i.to_string()).collect();
    for tag in &tags {
        pusher.image(
            "app",
            tag,
            false,
            "amd64",
            &[layer(&[("t", tag.as_bytes())])],
        );
    }
    let ws = Workspace::new();
    ws.define(
        &Definition::new("auth").images(
            std::iter::once("1".to_owned())
                .chain(tags)
                .map(|tag| format!("{}/app:{tag}", gate.addr)),
        ),
    );
    let package = Package::read(&package_path(&ws.create(&[])));
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
    let token_requests: Vec<String> = gate
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/token"))
        .map(|s| s.path)
        .collect();
    assert_eq!(
        token_requests.len(),
        1,
        "one token for the run, however many requests were refused at once: {token_requests:?}"
    );
    assert!(
        token_requests[0].contains("scope=repository%3Aapp%3Apull"),
        "the token is asked for with the challenge's scope: {token_requests:?}"
    );
}

#[test]
fn a_token_service_refusing_the_credentials_is_one_clear_error() {
    let registry = TestRegistry::start();
    Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let gate = FaultProxy::start_gated(
        &registry.addr,
        vec![],
        Some(TokenGate {
            credentials: Some(("ci".into(), "s3cret".into())),
        }),
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("auth").image(format!("{}/app:1", gate.addr)));
    docker_login(&ws, &gate.addr, "ci", "wrong");
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: {0} refused the credentials for {0}/app:1",
            gate.addr
        )),
        "{err}"
    );

    docker_login(&ws, &gate.addr, "ci", "s3cret");
    package_path(&ws.create(&[]));
}

#[test]
fn a_basic_auth_registry_is_pulled_with_the_configured_credentials() {
    let registry = TestRegistry::start_with(Options {
        htpasswd: Some(("ci".into(), "s3cret".into())),
        tls: false,
    });
    let ws = Workspace::new();
    ws.define(&Definition::new("auth").image(format!("{}/app:1", registry.addr)));
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: {0} asks for credentials for {0}/app:1, and none are configured for it",
            registry.addr
        )),
        "{err}"
    );
    docker_login(&ws, &registry.addr, "ci", "wrong");
    let err = stderr(&ws.create(&[]));
    assert!(
        err.contains(&format!(
            "error: {0} refused the credentials for {0}/app:1",
            registry.addr
        )),
        "{err}"
    );

    docker_login(&ws, &registry.addr, "ci", "s3cret");
    // The registry needs credentials to be written to as well.
    let image = {
        let pusher = Pusher::with_credentials(&registry.addr, "ci", "s3cret");
        pusher.image(
            "app",
            "1",
            false,
            "amd64",
            &[layer(&[("a", &noise(3, 1 << 16))])],
        )
    };
    let package = Package::read(&package_path(&ws.create(&[])));
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
}

#[test]
fn an_endless_manifest_behind_a_token_is_refused_at_the_limit() {
    let registry = TestRegistry::start();
    Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let gate = FaultProxy::start_gated(
        &registry.addr,
        vec![("GET /v2/app/manifests/1".to_owned(), Fault::EndlessBody)],
        Some(TokenGate { credentials: None }),
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("auth").image(format!("{}/app:1", gate.addr)));
    let report = ws.path("rss.txt");
    let create = ws.create_command(&[]);
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(create.get_program())
        .args(create.get_args())
        .envs(create.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .expect("/usr/bin/time runs pkgr (apt install time)");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: the manifest of {}/app:1 is over the 4194304-byte limit",
            gate.addr
        )),
        "{err}"
    );
    let peak_kib: u64 = std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn a_push_into_a_registry_asking_for_a_token_only_on_repositories_succeeds() {
    let source = TestRegistry::start();
    let image =
        Pusher::new(&source.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let ws = Workspace::new();
    ws.define(&Definition::new("auth").image(format!("{}/app:1", source.addr)));
    let package = package_path(&ws.create(&[]));

    let target = TestRegistry::start();
    let gate = FaultProxy::start_gated(
        &target.addr,
        vec![],
        Some(TokenGate {
            credentials: Some(("ci".into(), "s3cret".into())),
        }),
    );
    docker_login(&ws, &gate.addr, "ci", "s3cret");
    let out = ws.push(&package, &gate.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed = Pusher::new(&target.addr).get_manifest("app", "1");
    assert_eq!(pushed, image.manifest.bytes);
    let scopes: Vec<String> = gate
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/token"))
        .map(|s| s.path)
        .collect();
    assert!(
        scopes
            .iter()
            .any(|p| p.contains("scope=repository%3Aapp%3Apull%2Cpush")),
        "push asks for a push scope: {scopes:?}"
    );
    assert_eq!(scopes.len(), 2, "one token per scope: {scopes:?}");
}

/// The error and hint for credentials kept from `realm`, the token service of `registry`.
fn kept_from(registry: &str, realm: &str) -> [String; 2] {
    [
        format!(
            "error: the credentials for {registry} were not sent to its token service {realm}: over plain HTTP they go only to the registry's own host, when the registry itself is plain HTTP"
        ),
        "hint: the registry's token service must use HTTPS, or be on the registry's own host"
            .to_owned(),
    ]
}

#[test]
fn credentials_are_kept_from_a_plain_http_token_service_on_another_host() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    // The registry is 127.0.0.1; its challenge names the service as localhost: the same
    // machine, but another host by name, which is all a client can go by.
    let service = TokenService::start(None);
    let realm = format!("http://localhost:{}/token", service.port);
    let gate =
        FaultProxy::start_gated_with_realm(&registry.addr, TokenGate { credentials: None }, &realm);
    let ws = Workspace::new();
    ws.define(&Definition::new("auth").image(format!("{}/app:1", gate.addr)));
    docker_login(&ws, &gate.addr, "ci", "s3cret");
    let out = ws.create(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for line in kept_from(&gate.addr, &realm) {
        assert!(err.contains(&line), "{err}");
    }
    assert_eq!(
        service.received(),
        Vec::<Option<String>>::new(),
        "the token service is not asked at all"
    );
    assert_eq!(ws.output_files(), Vec::<String>::new());

    // Without credentials the same service is asked anonymously: public images work.
    std::fs::write(ws.path("docker").join("config.json"), "{}").unwrap();
    let package = Package::read(&package_path(&ws.create(&[])));
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
    let received = service.received();
    assert!(!received.is_empty());
    assert!(received.iter().all(Option::is_none), "{received:?}");
}

#[test]
fn a_push_keeps_the_credentials_from_a_plain_http_token_service_on_another_host() {
    let source = TestRegistry::start();
    Pusher::new(&source.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let ws = Workspace::new();
    ws.define(&Definition::new("auth").image(format!("{}/app:1", source.addr)));
    let package = package_path(&ws.create(&[]));

    let target = TestRegistry::start();
    let service = TokenService::start(Some(("ci".into(), "s3cret".into())));
    let realm = format!("http://localhost:{}/token", service.port);
    let gate = FaultProxy::start_gated_with_realm(
        &target.addr,
        TokenGate {
            credentials: Some(("ci".into(), "s3cret".into())),
        },
        &realm,
    );
    docker_login(&ws, &gate.addr, "ci", "s3cret");
    let out = ws.push(&package, &gate.addr, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let [sentence, hint] = kept_from(&gate.addr, &realm);
    let sentence = sentence.trim_start_matches("error: ");
    assert!(
        err.contains(&format!("{}/app:1 was not pushed: {sentence}", source.addr)),
        "{err}"
    );
    assert!(err.contains(&hint), "{err}");
    assert_eq!(service.received(), Vec::<Option<String>>::new());
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());
}

#[test]
fn a_token_service_on_the_registry_s_host_at_another_port_gets_the_credentials() {
    let registry = TestRegistry::start();
    let image =
        Pusher::new(&registry.addr).image("app", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let service = TokenService::start(Some(("ci".into(), "s3cret".into())));
    let realm = format!("http://127.0.0.1:{}/token", service.port);
    let gate =
        FaultProxy::start_gated_with_realm(&registry.addr, TokenGate { credentials: None }, &realm);
    let ws = Workspace::new();
    ws.define(&Definition::new("auth").image(format!("{}/app:1", gate.addr)));
    docker_login(&ws, &gate.addr, "ci", "s3cret");
    let package = Package::read(&package_path(&ws.create(&[])));
    for blob in image.all() {
        assert_eq!(package.blob(&blob.digest), Some(&blob.bytes));
    }
    let received = service.received();
    assert!(
        !received.is_empty()
            && received
                .iter()
                .all(|a| a.as_deref().is_some_and(|a| a.starts_with("Basic "))),
        "{received:?}"
    );
}
