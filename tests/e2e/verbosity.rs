//! `-v` logs every registry request with its credentials kept out; `-q` leaves only
//! the result.

use base64::Engine;

use crate::auth::docker_login;
use crate::support::definition::Definition;
use crate::support::images::{layer, Pusher};
use crate::support::proxy::{Fault, FaultProxy, TokenGate};
use crate::support::registry::TestRegistry;
use crate::support::{package_path, stderr, stdout, Workspace};

const PASSWORD: &str = "s3cret-pass-9d1";
/// What the test proxy's token service hands out (tests/support/proxy.rs).
const TOKEN: &str = "pkgr-test-token";

#[test]
fn verbose_logs_the_401_the_token_exchange_and_the_retry_and_never_a_secret() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let app = pusher.image("app", "1", false, "amd64", &[layer(&[("a", b"one")])]);
    let config = app.config.digest.clone();
    let gate = FaultProxy::start_gated(
        &registry.addr,
        vec![(format!("GET /v2/app/blobs/{config}"), Fault::Status(503))],
        Some(TokenGate {
            credentials: Some(("ci".into(), PASSWORD.into())),
        }),
    );
    let ws = Workspace::new();
    docker_login(&ws, &gate.addr, "ci", PASSWORD);
    ws.define(&Definition::new("verbose").images(&[format!("{}/app:1", gate.addr)]));

    let out = ws.create(&["-v"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let requests: Vec<&str> = err.lines().filter(|l| l.starts_with("request: ")).collect();
    let manifest = format!("GET http://{}/v2/app/manifests/1", gate.addr);
    let expected = [
        format!("request: {manifest} -> 401, "),
        format!(
            "request: GET http://{}/token?scope=repository%3Aapp%3Apull",
            gate.addr
        ),
        format!("request: {manifest} (again, with the proof the 401 asked for) -> 200, "),
        format!(
            "request: GET http://{}/v2/app/blobs/{config} -> 503, ",
            gate.addr
        ),
        "request: retry 1 of 4 in 250 ms, after: ".to_owned(),
    ];
    for start in &expected {
        assert!(
            requests.iter().any(|l| l.starts_with(start.as_str())),
            "no line starting {start:?} in:\n{err}"
        );
    }
    let token_exchange = requests
        .iter()
        .find(|l| l.contains("/token?"))
        .expect("the token exchange is logged");
    assert!(
        token_exchange.contains("(token exchange) -> 200, "),
        "{token_exchange}"
    );
    assert!(
        requests
            .iter()
            .filter(|l| l.contains(&format!("/v2/app/blobs/{config} -> 20")))
            .count()
            == 1,
        "the config once more, after the retry:\n{err}"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ci:{PASSWORD}"));
    for secret in [PASSWORD, TOKEN, basic.as_str()] {
        assert!(!err.contains(secret), "{secret} in stderr:\n{err}");
        assert!(!stdout(&out).contains(secret), "{secret} in stdout");
    }
}

#[test]
fn quiet_prints_the_package_path_and_nothing_else_and_still_every_error() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    pusher.image("app", "1", false, "amd64", &[layer(&[("a", b"one")])]);
    let ws = Workspace::new();
    ws.define(&Definition::new("quiet").images(&[format!("{}/app:1", registry.addr)]));

    let out = ws.create(&["-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(package_path(&out).is_file());

    let pushed_into = TestRegistry::start();
    let out = ws.push(&package_path(&out), &pushed_into.addr, &["--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    ws.define(&Definition::new("quiet").images(&[format!("{}/app:no-such-tag", registry.addr)]));
    let out = ws.create(&["-q", "--no-daemon-fallback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));

    let out = ws.create(&["-q", "-v"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
