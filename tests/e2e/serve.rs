//! `pkgr serve`: a package served as a read-only registry. skopeo copies every kind of
//! image out of it into a real registry keeping every digest, a real dockerd pulls
//! from it, curl sees ranges, errors and referrers, and a damaged layer is never sent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::definition::Definition;
use crate::support::dockerd::TestDockerd;
use crate::support::images::{layer, noise, sha256, Image, Pushed, Pusher};
use crate::support::registry::{self_signed, TestRegistry};
use crate::support::{package_path, run_within, stderr, wait_until, Workspace};

const REPORT: &str = "application/vnd.example.report+json";

/// A running `pkgr serve`, its address read from the line it prints at start, and
/// every line of its stderr. Stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(ws: &Workspace, package: &Path, extra: &[&str]) -> Self {
        let mut child = ws
            .pkgr()
            .arg("serve")
            .arg(package)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = BufReader::new(child.stderr.take().unwrap());
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let mut served = Self {
            child,
            addr: String::new(),
            lines,
        };
        wait_until("serve to say where it listens", || {
            served.addr = served
                .log()
                .iter()
                .find_map(|l| l.split_once(" at http").map(|(_, a)| a.to_owned()))
                .map(|a| {
                    a.trim_start_matches("s")
                        .trim_start_matches("://")
                        .to_owned()
                })
                .unwrap_or_default();
            !served.addr.is_empty()
        });
        served
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits for the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// `curl` of `url` with `args`: (status, headers, body).
fn curl(url: &str, args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-o"])
        .arg(dir.path().join("body"))
        .arg("-D")
        .arg(&headers)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {url}: {}", stderr(&out));
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let body = std::fs::read(dir.path().join("body")).unwrap_or_default();
    (status, std::fs::read_to_string(headers).unwrap(), body)
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn skopeo_copy(from: &str, to: &str) -> Output {
    run_within(
        Command::new("skopeo")
            .args(["copy", "--all", "--preserve-digests", "--retry-times", "0"])
            .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("docker://{from}"))
            .arg(format!("docker://{to}")),
        Duration::from_secs(120),
    )
}

/// A package of a docker image, an OCI image, a multi-platform index (under
/// `--allow-index`), a Helm chart and a signed image with a referrer.
struct Fixture {
    _source: TestRegistry,
    ws: Workspace,
    package: PathBuf,
    /// (repository:tag, manifest digest) of every tag the package holds.
    tags: Vec<(String, String)>,
    web: Image,
    app: Image,
    signature: Image,
    referrer: Image,
}

fn fixture() -> Fixture {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let base = layer(&[("base", &noise(42, 1 << 20))]);
    let web = pusher.image(
        "team/web",
        "1.0",
        true,
        "amd64",
        &[base.clone(), layer(&[("w", b"web")])],
    );
    let api = pusher.image(
        "team/api",
        "2.0",
        false,
        "amd64",
        &[base, layer(&[("a", b"api")])],
    );
    let chart = pusher.helm_chart("charts/web", "0.1.0");
    let amd = pusher.image("multi", "", false, "amd64", &[layer(&[("m", b"amd")])]);
    let arm = pusher.image("multi", "", false, "arm64", &[layer(&[("m", b"arm")])]);
    let multi = pusher.index(
        "multi",
        "3",
        false,
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let app = pusher.image(
        "team/app",
        "1.0",
        false,
        "amd64",
        &[layer(&[("app", b"app")])],
    );
    let signature = pusher.cosign_signature("team/app", &app.manifest);
    let referrer = pusher.referrer("team/app", &app.manifest, REPORT, br#"{"report":1}"#);
    pusher.referrers_tag("team/app", &app.manifest, &[(&referrer, REPORT)]);
    let sig_tag = format!("{}.sig", app.manifest.digest.replace(':', "-"));
    let tags = vec![
        ("team/web:1.0".to_owned(), web.manifest.digest.clone()),
        ("team/api:2.0".to_owned(), api.manifest.digest.clone()),
        ("charts/web:0.1.0".to_owned(), chart.manifest.digest.clone()),
        ("multi:3".to_owned(), multi.digest.clone()),
        ("team/app:1.0".to_owned(), app.manifest.digest.clone()),
        (
            format!("team/app:{sig_tag}"),
            signature.manifest.digest.clone(),
        ),
    ];
    let ws = Workspace::new();
    let images = [
        "team/web:1.0",
        "team/api:2.0",
        "charts/web:0.1.0",
        "multi:3",
        "team/app:1.0",
    ];
    ws.define(
        &Definition::new("served")
            .component("all", images.iter().map(|r| format!("{}/{r}", source.addr))),
    );
    let created = ws.create(&["--allow-index", "--with-signatures"]);
    assert!(created.status.success(), "{}", stderr(&created));
    Fixture {
        _source: source,
        package: package_path(&created),
        ws,
        tags,
        web,
        app,
        signature,
        referrer,
    }
}

/// The digest of `repo:tag`'s manifest in `registry`, from its bytes.
fn digest_in(registry: &TestRegistry, reference: &str) -> String {
    let (repo, tag) = reference.split_once(':').unwrap();
    sha256(&Pusher::new(&registry.addr).get_manifest(repo, tag))
}

#[test]
fn skopeo_copies_every_kind_of_image_out_of_serve_keeping_every_digest() {
    let fixture = fixture();
    let served = Served::start(&fixture.ws, &fixture.package, &[]);
    let target = TestRegistry::start();
    for (reference, digest) in &fixture.tags {
        let out = skopeo_copy(
            &format!("{}/{reference}", served.addr),
            &format!("{}/copied/{reference}", target.addr),
        );
        assert!(out.status.success(), "{reference}: {}", stderr(&out));
        assert_eq!(
            &digest_in(&target, &format!("copied/{reference}")),
            digest,
            "{reference}"
        );
    }
    // Every config and layer of the signed image arrived byte-exact.
    let copied = Pusher::new(&target.addr);
    let blobs = [&fixture.app, &fixture.signature].map(|image| image.all().split_off(1));
    for blob in blobs.iter().flatten() {
        assert_eq!(copied.get_blob("copied/team/app", &blob.digest), blob.bytes);
    }
    let log = served.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /v2/team/web/manifests/1.0 200 ")),
        "one line per request: {log:?}"
    );
}

#[test]
fn curl_sees_ranges_read_only_errors_and_the_referrers_of_a_signed_image() {
    let fixture = fixture();
    let served = Served::start(&fixture.ws, &fixture.package, &[]);
    let app = &fixture.app;
    let config: &Pushed = &app.config;

    let blob = |digest: &str| served.url(&format!("/v2/team/app/blobs/{digest}"));
    let (status, headers, body) = curl(&blob(&config.digest), &["-H", "Range: bytes=5-14"]);
    assert_eq!(status, 206);
    assert_eq!(body, config.bytes[5..15]);
    let range = format!("bytes 5-14/{}", config.bytes.len());
    assert_eq!(header(&headers, "Content-Range"), Some(range.as_str()));
    let far = format!("Range: bytes={}-", config.bytes.len());
    assert_eq!(curl(&blob(&config.digest), &["-H", &far]).0, 416);
    let (status, headers, body) = curl(&blob(&config.digest), &[]);
    assert_eq!((status, body), (200, config.bytes.clone()));
    assert_eq!(
        header(&headers, "Docker-Content-Digest"),
        Some(config.digest.as_str())
    );

    let (status, _, body) = curl(
        &served.url("/v2/team/app/manifests/1.0"),
        &["-X", "PUT", "-d", "{}"],
    );
    assert_eq!(status, 405);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED");

    let unknown = format!("sha256:{}", "0".repeat(64));
    let (status, _, body) = curl(&blob(&unknown), &[]);
    assert_eq!(status, 404);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["code"], "BLOB_UNKNOWN");
    let (status, _, body) = curl(&served.url("/v2/no/such/manifests/1"), &[]);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("NAME_UNKNOWN"));

    let (status, headers, _) = curl(&served.url("/v2/team/app/manifests/1.0"), &["-I"]);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "Docker-Content-Digest"),
        Some(app.manifest.digest.as_str())
    );
    let length = app.manifest.bytes.len().to_string();
    assert_eq!(header(&headers, "Content-Length"), Some(length.as_str()));

    let referrers = served.url(&format!("/v2/team/app/referrers/{}", app.manifest.digest));
    let (status, headers, body) = curl(&referrers, &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "OCI-Filters-Applied"), None);
    let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let digests: Vec<&str> = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert!(
        digests.contains(&fixture.signature.manifest.digest.as_str()),
        "{listed}"
    );
    assert!(
        digests.contains(&fixture.referrer.manifest.digest.as_str()),
        "{listed}"
    );
    let (_, headers, body) = curl(&format!("{referrers}?artifactType={REPORT}"), &[]);
    assert_eq!(
        header(&headers, "OCI-Filters-Applied"),
        Some("artifactType")
    );
    let listed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(listed["manifests"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        listed["manifests"][0]["digest"],
        fixture.referrer.manifest.digest
    );

    let (_, headers, body) = curl(&served.url("/v2/_catalog?n=2"), &[]);
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        page["repositories"],
        serde_json::json!(["charts/web", "multi"])
    );
    assert_eq!(
        header(&headers, "Link"),
        Some("</v2/_catalog?last=multi&n=2>; rel=\"next\"")
    );
    let (_, headers, body) = curl(&served.url("/v2/_catalog?n=2&last=multi"), &[]);
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        page["repositories"],
        serde_json::json!(["team/api", "team/app"])
    );
    assert!(header(&headers, "Link").is_some());
    let (_, _, body) = curl(&served.url("/v2/team/app/tags/list"), &[]);
    let tags: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 3, "{tags}");
}

#[test]
fn a_real_dockerd_pulls_an_image_out_of_serve() {
    let fixture = fixture();
    let served = Served::start(&fixture.ws, &fixture.package, &[]);
    let dockerd = TestDockerd::start();
    // dockerd treats 127.0.0.0/8 as an insecure registry by default: plain HTTP.
    let image = format!("{}/team/web:1.0", served.addr);
    let out = run_within(
        dockerd.docker().args(["pull", &image]),
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "docker pull: {}", stderr(&out));
    assert_eq!(dockerd.image_id(&image), fixture.web.config.digest);
}

/// A package (uncompressed, so its bytes can be found) whose one large layer has a
/// byte flipped: (workspace, package, the layer's digest, the layer's bytes).
fn damaged_package() -> (TestRegistry, Workspace, PathBuf, String, Vec<u8>) {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let big = layer(&[("big", &noise(7, 512 << 10))]);
    let image = pusher.image(
        "team/hurt",
        "1",
        false,
        "amd64",
        &[big, layer(&[("s", b"small")])],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("hurt").image(format!("{}/team/hurt:1", source.addr)));
    let created = ws.create(&["--uncompressed"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let package = package_path(&created);
    let mut bytes = std::fs::read(&package).unwrap();
    let layer = &image.layers[0];
    let at = bytes
        .windows(layer.bytes.len())
        .position(|w| w == &layer.bytes[..])
        .expect("the layer's bytes in the tar");
    bytes[at + layer.bytes.len() / 2] ^= 1;
    std::fs::write(&package, &bytes).unwrap();
    (
        source,
        ws,
        package,
        layer.digest.clone(),
        layer.bytes.clone(),
    )
}

#[test]
fn a_damaged_layer_is_never_sent_and_its_digest_is_logged() {
    let (_source, ws, package, digest, layer) = damaged_package();
    let mut served = Served::start(&ws, &package, &[]);
    let url = served.url(&format!("/v2/team/hurt/blobs/{digest}"));
    for _ in 0..2 {
        let (status, _, body) = curl(&url, &[]);
        assert_eq!(status, 500);
        assert!(String::from_utf8_lossy(&body).contains(&digest));
        assert!(body.len() < 1024 && !body.windows(64).any(|w| layer.windows(64).any(|l| l == w)));
    }
    let (status, _, body) = curl(&url, &["-H", "Range: bytes=0-99"]);
    assert_eq!(status, 500);
    assert!(!body.starts_with(&layer[..16]));
    let log = served.log();
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("blob {digest} is damaged"))),
        "{log:?}"
    );
    let stopped = served.stop();
    assert_eq!(stopped.code(), Some(0), "SIGTERM is serve's normal end");
    wait_until("serve to say it stopped", || {
        served
            .log()
            .iter()
            .any(|l| l.starts_with("stopped serving") && l.ends_with("(SIGTERM)"))
    });
}

#[test]
fn serve_verify_refuses_a_damaged_package_before_listening() {
    let (_source, ws, package, digest, _) = damaged_package();
    let out = run_within(
        ws.pkgr()
            .arg("serve")
            .arg(&package)
            .args(["--verify", "--listen", "127.0.0.1:0"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.starts_with("error: the package failed verification, so it is not served: "),
        "{text}"
    );
    assert!(
        text.contains(digest.trim_start_matches("sha256:")),
        "{text}"
    );
    assert!(!text.contains("serving"), "{text}");
}

#[test]
fn a_split_package_is_served_over_tls_under_a_prefix() {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let big = layer(&[("big", &noise(9, 3 << 20))]);
    let web = pusher.image("team/web", "1.0", true, "amd64", &[big]);
    let ws = Workspace::new();
    ws.define(&Definition::new("split").image(format!("{}/team/web:1.0", source.addr)));
    let created = ws.create(&["--max-package-size", "1MiB"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let first = package_path(&created);
    assert!(first.to_string_lossy().ends_with(".part000"));

    let certs = tempfile::tempdir().unwrap();
    self_signed(certs.path());
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let refused = run_within(
        ws.pkgr()
            .arg("serve")
            .arg(&first)
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(certs.path().join("leaf.ext"))
            .arg("--tls-key")
            .arg(&key),
        Duration::from_secs(60),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).starts_with("error: cannot use "),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("for TLS"), "{}", stderr(&refused));

    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let served = Served::start(
        &ws,
        &first,
        &[
            "--prefix",
            "mirror",
            "--tls-cert",
            cert_arg,
            "--tls-key",
            key_arg,
        ],
    );
    assert!(
        served.log().iter().any(|l| l.contains(" at https://")),
        "{:?}",
        served.log()
    );
    let url = format!("https://{}/v2/mirror/team/web/manifests/1.0", served.addr);
    let ca = certs.path().join("ca.pem");
    let (status, headers, body) = curl(&url, &["--cacert", ca.to_str().unwrap()]);
    assert_eq!((status, body), (200, web.manifest.bytes.clone()));
    assert_eq!(
        header(&headers, "Docker-Content-Digest"),
        Some(web.manifest.digest.as_str())
    );
    let unprefixed = format!("https://{}/v2/team/web/manifests/1.0", served.addr);
    assert_eq!(
        curl(&unprefixed, &["--cacert", ca.to_str().unwrap()]).0,
        404
    );

    let target = TestRegistry::start();
    let out = skopeo_copy(
        &format!("{}/mirror/team/web:1.0", served.addr),
        &format!("{}/team/web:1.0", target.addr),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(digest_in(&target, "team/web:1.0"), web.manifest.digest);
    assert_eq!(
        Pusher::new(&target.addr).get_blob("team/web", &web.layers[0].digest),
        web.layers[0].bytes
    );
}

#[test]
fn an_address_in_use_or_a_path_that_is_no_package_is_refused_in_one_sentence() {
    let (_source, ws, package, _, _) = damaged_package();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_within(
        ws.pkgr()
            .arg("serve")
            .arg(&package)
            .args(["--listen", &addr]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("error: cannot listen on {addr}\n")),
        "{}",
        stderr(&out)
    );
    let dir = ws.path("def");
    let out = run_within(
        ws.pkgr()
            .arg("serve")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not a regular file"),
        "{}",
        stderr(&out)
    );
}
