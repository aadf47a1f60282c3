//! `pkgr create` on bad input: one clear sentence, exit 1, and no package left behind.

use crate::support::definition::Definition;
use crate::support::images::{layer, Pusher};
use crate::support::registry::TestRegistry;
use crate::support::{stderr, Workspace};

/// Runs create and checks the common contract of every failure.
fn fails(ws: &Workspace, extra: &[&str]) -> String {
    let out = ws.create(extra);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: "),
        "{err}"
    );
    assert!(
        ws.output_files().is_empty(),
        "a failed create left {:?}",
        ws.output_files()
    );
    err
}

/// The one `error:` line of a failed create's stderr.
fn error_line(err: &str) -> &str {
    let mut lines = err.lines().filter(|l| l.starts_with("error: "));
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    assert_eq!(lines.next(), None, "more than one error line in:\n{err}");
    line
}

/// Checks that the lines under the error line start as `expected` does, one for one.
fn assert_listed(err: &str, expected: &[String]) {
    let listed: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(listed.len(), expected.len(), "{err}");
    for (line, start) in listed.iter().zip(expected) {
        assert!(
            line.starts_with(start.as_str()),
            "{line:?} should start {start:?}"
        );
    }
}

/// `error: <the workspace's pkgr.yaml>:<rest>`, as create names a definition's fault.
fn definition_error(ws: &Workspace, rest: &str) -> String {
    format!(
        "error: {}:{rest}",
        ws.path("def").join("pkgr.yaml").display()
    )
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let ws = Workspace::new();
    ws.write_definition("kind: PkgrPackage\nmetadata:\n  name: x\ncomponents:\n  - name: a\n    images: [unclosed\n");
    let err = fails(&ws, &[]);
    assert_eq!(
        error_line(&err),
        definition_error(&ws, "7:1: did not find expected ',' or ']'"),
        "{err}"
    );
}

#[test]
fn unknown_field_names_line_and_field() {
    let ws = Workspace::new();
    ws.write_definition("kind: PkgrPackage\nmetadata:\n  name: x\ncomponents:\n  - name: a\n    imagez:\n      - nginx\n");
    let err = fails(&ws, &[]);
    assert_eq!(
        error_line(&err),
        definition_error(
            &ws,
            "6:5: components[0]: unknown field `imagez`, expected `name` or `images`"
        ),
        "{err}"
    );
}

#[test]
fn bad_reference_is_refused_before_any_pull() {
    let ws = Workspace::new();
    ws.write_definition(
        "kind: PkgrPackage\nmetadata:\n  name: x\ncomponents:\n  - name: a\n    images:\n      - 127.0.0.1:1/ok:1\n      - UPPER/Case:tag\n",
    );
    let err = fails(&ws, &[]);
    assert_eq!(
        error_line(&err),
        definition_error(
            &ws,
            "8:9: `components[0].images[1]`: `UPPER/Case:tag` is not a valid image reference (invalid reference format)"
        ),
        "{err}"
    );
}

#[test]
fn bad_package_name_is_refused() {
    let ws = Workspace::new();
    ws.write_definition("kind: PkgrPackage\nmetadata:\n  name: My_Package\ncomponents:\n  - name: a\n    images: [nginx]\n");
    let err = fails(&ws, &[]);
    assert_eq!(
        error_line(&err),
        definition_error(
            &ws,
            "3:9: `metadata.name`: `My_Package` is not a valid package name (use lowercase letters, digits and '-', starting with a letter or digit)"
        ),
        "{err}"
    );
}

#[test]
fn missing_definition() {
    let ws = Workspace::new();
    let err = fails(&ws, &[]);
    assert_eq!(
        error_line(&err),
        definition_error(&ws, " no pkgr.yaml (or zarf.yaml) in this directory"),
        "{err}"
    );
}

#[test]
fn unknown_image_names_the_reference() {
    let registry = TestRegistry::start();
    Pusher::new(&registry.addr).image("exists", "1", false, "amd64", &[layer(&[("a", b"a")])]);
    let ws = Workspace::new();
    ws.define(
        &Definition::new("x")
            .image(format!("{}/exists:1", registry.addr))
            .image(format!("{}/exists:nope", registry.addr)),
    );
    // Without the daemon fallback: the registry's answer alone is the error.
    let err = fails(&ws, &["--no-daemon-fallback"]);
    assert!(
        err.contains(&format!(
            "error: {}/exists:nope was not found in its registry\n",
            registry.addr
        )),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn unreachable_registry_is_one_clear_error() {
    // A port that nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ws = Workspace::new();
    ws.define(&Definition::new("x").image(format!("127.0.0.1:{port}/app:1")));
    // The workspace's DOCKER_HOST names a socket nobody has: the daemon fallback
    // fails too, and the one sentence names both.
    let err = fails(&ws, &["-v"]);
    assert!(
        err.contains(&format!(
            "error: cannot reach the registry 127.0.0.1:{port}, and the Docker daemon cannot serve it either: the Docker daemon at unix://"
        )),
        "{err}"
    );
    // A registry that refuses the first connection of the run is not there: waiting
    // out the backoff would only delay this error (or the daemon's copy).
    assert!(
        !err.contains("request: retry"),
        "a refused first connection was retried:\n{err}"
    );
}

#[test]
fn missing_platform_lists_the_platforms() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let arm = pusher.image("only-arm", "", false, "arm64", &[layer(&[("a", b"a")])]);
    pusher.index("only-arm", "1", true, &[("linux/arm64", &arm)]);
    let ws = Workspace::new();
    ws.define(&Definition::new("x").image(format!("{}/only-arm:1", registry.addr)));
    let err = fails(&ws, &[]);
    assert!(
        err.contains("has no linux/amd64 image (it has linux/arm64)"),
        "{err}"
    );
}

#[test]
fn deeply_nested_yaml_is_refused_before_it_is_parsed() {
    let ws = Workspace::new();
    let levels = 100_000;
    ws.write_definition(&format!(
        "kind: PkgrPackage\nmetadata:\n  name: x\n  architecture: amd64\ncomponents: []\nunknown: {}{}\n",
        "[".repeat(levels),
        "]".repeat(levels)
    ));
    let err = fails(&ws, &[]);
    assert_eq!(
        error_line(&err),
        definition_error(
            &ws,
            "6:74: nested more than 64 levels deep, more than any definition needs"
        ),
        "{err}"
    );
}

#[test]
fn layers_that_declare_more_than_2_63_bytes_in_all_are_refused_at_plan_time() {
    use crate::support::images::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let config = pusher.blob(
        "huge",
        OCI_CONFIG,
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
    );
    // Each size is the largest int64, which the registry takes; three of them wrap a
    // u64 total (to "3 blobs (91 B)" in release builds) unless the sum is checked.
    let layers: Vec<serde_json::Value> = (0..3u8)
        .map(|i| {
            let blob = pusher.blob("huge", OCI_LAYER_GZIP, layer(&[("f", &[i])]));
            let mut descriptor = blob.descriptor();
            descriptor["size"] = serde_json::json!(i64::MAX);
            descriptor
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers,
    }))
    .unwrap();
    pusher.manifest("huge", "1", OCI_MANIFEST, manifest);
    let ws = Workspace::new();
    ws.define(&Definition::new("x").image(format!("{}/huge:1", registry.addr)));
    // Past the bound on one blob (which would refuse each layer first), to the totals.
    let err = fails(&ws, &["--no-cache", "--max-blob-size", "8EiB"]);
    assert!(
        err.contains(&format!(
            "error: the blobs of {}/huge:1 declare more than 2^63 bytes in all",
            registry.addr
        )),
        "{err}"
    );
}

#[test]
fn an_index_with_too_many_entries_is_refused() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let image = pusher.image("many", "one", false, "amd64", &[layer(&[("f", b"f")])]);
    let mut entry = image.manifest.descriptor();
    entry["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let index = pusher.raw_index("many", "1", vec![entry; 10_001]);
    let ws = Workspace::new();
    ws.define(&Definition::new("x").image(format!("{}/many:1", registry.addr)));
    let err = fails(&ws, &[]);
    assert!(
        err.contains(&format!(
            "error: the manifest {} of {}/many:1 cannot be read: it lists more than 10000 entries, more than pkgr accepts",
            index.digest,
            registry.addr
        )),
        "{err}"
    );
}

/// `--max-referrers` outside 1 to 1,000,000, or not a number, is a usage error before
/// anything is read or pulled.
#[test]
fn a_max_referrers_that_is_no_count_is_a_usage_error() {
    let ws = Workspace::new();
    ws.define(&Definition::new("x").image("127.0.0.1:1/never/asked:1"));
    for bad in ["0", "1000001", "many"] {
        let out = ws.create(&["--max-referrers", bad]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains(&format!("invalid value '{bad}' for '--max-referrers <N>'")),
            "{bad}: {err}"
        );
        assert!(
            ws.output_files().is_empty(),
            "{bad}: {:?}",
            ws.output_files()
        );
    }
}

#[test]
fn every_reference_that_cannot_be_packaged_is_named_at_once_and_no_blob_is_fetched() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let one = pusher.image("one", "1", false, "amd64", &[layer(&[("a", b"one")])]);
    pusher.image("two", "1", false, "amd64", &[layer(&[("b", b"two")])]);
    let arm = pusher.image("multi", "arm", false, "arm64", &[layer(&[("c", b"arm")])]);
    let index = pusher.index("multi", "1", false, &[("linux/arm64", &arm)]);
    let proxy = crate::support::proxy::FaultProxy::start(&registry.addr, vec![]);
    let at = |r: &str| format!("{}/{r}", proxy.addr);
    let unreachable = "127.0.0.1:1/three:1".to_owned();
    let pinned_index = at(&format!("multi@{}", index.digest));
    let ws = Workspace::new();
    ws.define(&Definition::new("many").images(&[
        at("one:1"),
        at("one:no-such-tag"),
        at("two:1"),
        at("ghost:1"),
        unreachable.clone(),
        pinned_index.clone(),
    ]));

    let err = fails(&ws, &["--no-daemon-fallback"]);
    let line = error_line(&err);
    assert_eq!(
        line,
        "error: 4 of 6 image references cannot be packaged, so nothing was downloaded:"
    );
    let expected = [
        format!("  {} was not found in its registry", at("one:no-such-tag")),
        format!("  {} was not found in its registry", at("ghost:1")),
        format!("  {unreachable}: cannot reach the registry 127.0.0.1:1"),
        format!("  {pinned_index} is an image index of 1 platform"),
    ];
    assert_listed(&err, &expected);
    assert!(
        err.contains("hint: check the repository name and tag")
            && err.contains("check the host and port"),
        "{err}"
    );
    // Resolution asked for manifests; not one blob was fetched.
    let blobs: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/blobs/"))
        .collect();
    assert!(blobs.is_empty(), "blobs fetched: {blobs:?}");
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.path.contains("/one/manifests/1")),
        "the good references were resolved"
    );
    let _ = one;
}

#[test]
fn one_reference_that_cannot_be_packaged_is_reported_as_itself() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    pusher.image("one", "1", false, "amd64", &[layer(&[("a", b"one")])]);
    let ws = Workspace::new();
    let missing = format!("{}/one:no-such-tag", registry.addr);
    ws.define(
        &Definition::new("one").images(&[format!("{}/one:1", registry.addr), missing.clone()]),
    );
    let err = fails(&ws, &["--no-daemon-fallback"]);
    assert_eq!(
        error_line(&err),
        format!("error: {missing} was not found in its registry")
    );
}

#[test]
fn every_fault_of_a_definition_is_named_at_once_with_line_and_column() {
    let ws = Workspace::new();
    ws.write_definition(
        "kind: PkgrPackage\nmetadata:\n  name: Bad_Name\n  version: \"1 0\"\n  architecture: amd64\ncomponents:\n  - name: web\n    images:\n      - 127.0.0.1:5000/ok:1\n      - UPPER/Case:tag\n  - name: web\n    images:\n      - also bad!\n",
    );
    let err = fails(&ws, &[]);
    let path = ws.path("def").join("pkgr.yaml").display().to_string();
    assert_eq!(error_line(&err), format!("error: {path} has 5 problems:"));
    let expected = [
        format!("  {path}:3:9: `metadata.name`: `Bad_Name` is not a valid package name"),
        format!("  {path}:4:13: `metadata.version`: `1 0` is not a valid version"),
        format!("  {path}:10:9: `components[0].images[1]`: `UPPER/Case:tag` is not a valid image reference"),
        format!("  {path}:11:5: `components[1].name`: component `web` is defined twice"),
        format!("  {path}:13:9: `components[1].images[0]`: `also bad!` is not a valid image reference"),
    ];
    assert_listed(&err, &expected);
}
