//! What reaches the terminal: `-v` logs every registry request with its credentials
//! kept out; `-q` leaves only the result; `NO_COLOR` and `--color never` leave no
//! escape codes even on a terminal.

use base64::Engine;

use crate::auth::docker_login;
use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Pusher};
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

/// Runs `cmd` under a pseudo-terminal (util-linux's `script`) with `env` added and
/// `NO_COLOR` removed unless `env` sets it; returns what the terminal received.
fn under_a_terminal(cmd: &std::process::Command, env: &[(&str, &str)]) -> String {
    let quote =
        |arg: &std::ffi::OsStr| format!("'{}'", arg.to_str().unwrap().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line.join(" "), "/dev/null"]);
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => script.env(name, value),
            None => script.env_remove(name),
        };
    }
    script.env_remove("NO_COLOR").envs(env.iter().copied());
    let out = script.output().unwrap_or_else(|e| {
        panic!("cannot run script ({e}): install it with `apt-get install bsdutils`")
    });
    assert!(out.status.success(), "{}", stdout(&out));
    stdout(&out)
}

#[test]
fn no_color_or_color_never_leaves_no_escape_code_on_a_terminal() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    pusher.image(
        "big",
        "1",
        false,
        "amd64",
        &[layer(&[("a", &noise(7, 8 << 20))])],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("colour").images(&[format!("{}/big:1", registry.addr)]));
    let create = |extra: &[&str]| {
        let mut cmd = ws.pkgr();
        cmd.arg("create")
            .arg(ws.path("def"))
            .arg("--no-cache")
            .arg("-o")
            .arg(ws.path("out"));
        cmd.args(extra);
        cmd
    };

    // Bars on a terminal draw with escape codes: the test can see them.
    let drawn = under_a_terminal(&create(&[]), &[]);
    assert!(drawn.contains('\x1b'), "no escape code with bars:\n{drawn}");
    for (env, extra) in [
        (&[("NO_COLOR", "1")][..], &[][..]),
        (&[][..], &["--color", "never"][..]),
    ] {
        let plain = under_a_terminal(&create(extra), env);
        assert!(!plain.contains('\x1b'), "{env:?} {extra:?}:\n{plain:?}");
        assert!(plain.contains("downloading finished"), "{plain}");
        assert!(
            plain.contains("pkgr-package-colour-amd64.tar.zst"),
            "{plain}"
        );
    }
    // NO_COLOR set but empty is not set, and --color always overrides it.
    let empty = under_a_terminal(&create(&[]), &[("NO_COLOR", "")]);
    assert!(empty.contains('\x1b'), "{empty}");
    let always = under_a_terminal(&create(&["--color", "always"]), &[("NO_COLOR", "1")]);
    assert!(always.contains('\x1b'), "{always}");
}
