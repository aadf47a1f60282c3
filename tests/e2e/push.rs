//! `pkgr push`: round trips through real registries, skips and mounts, auth and TLS.

use std::io::{BufRead, BufReader, Write};
use std::process::{Output, Stdio};

use crate::support::definition::Definition;
use crate::support::images::{layer, noise, Image, Pusher};
use crate::support::package::Package;
use crate::support::proxy::FaultProxy;
use crate::support::registry::{free_port, Options, TestRegistry};
use crate::support::{package_path, spawn, stderr, stdout, Workspace};

/// A source registry with two images sharing a base layer in different repositories,
/// a Helm chart and a multi-platform tag; and a package of them.
struct Fixture {
    source: TestRegistry,
    ws: Workspace,
    package: std::path::PathBuf,
    images: Vec<(String, Image)>,
}

fn fixture() -> Fixture {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let base = layer(&[("base", &noise(42, 2 << 20))]);
    let mut images = vec![
        (
            "team/web:1.0".to_owned(),
            pusher.image(
                "team/web",
                "1.0",
                true,
                "amd64",
                &[base.clone(), layer(&[("w", b"web")])],
            ),
        ),
        (
            "team/api:2.0".to_owned(),
            pusher.image(
                "team/api",
                "2.0",
                false,
                "amd64",
                &[base, layer(&[("a", b"api")])],
            ),
        ),
        (
            "charts/web:0.1.0".to_owned(),
            pusher.helm_chart("charts/web", "0.1.0"),
        ),
    ];
    let amd = pusher.image("multi", "", false, "amd64", &[layer(&[("m", b"amd")])]);
    let arm = pusher.image("multi", "", false, "arm64", &[layer(&[("m", b"arm")])]);
    pusher.index(
        "multi",
        "3",
        false,
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    images.push(("multi:3".to_owned(), amd));

    let ws = Workspace::new();
    ws.define(
        &Definition::new("roundtrip").component(
            "all",
            images
                .iter()
                .map(|(reference, _)| format!("{}/{reference}", source.addr)),
        ),
    );
    let package = package_path(&ws.create(&[]));
    Fixture {
        source,
        ws,
        package,
        images,
    }
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "push failed\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// The manifest bytes a registry serves for `repo:reference`.
/// `path` is `repo:tag` or `repo@digest`.
fn manifest(addr: &str, path: &str) -> Vec<u8> {
    let (repo, reference) = path
        .split_once('@')
        .unwrap_or_else(|| path.rsplit_once(':').unwrap());
    let url = format!("http://{addr}/v2/{repo}/manifests/{reference}");
    let response = crate::support::http_client()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.bytes().unwrap().to_vec()
}

#[test]
fn round_trip_keeps_every_digest_and_tag() {
    let f = fixture();
    let target = TestRegistry::start();
    let out = f.ws.push(&f.package, &target.addr, &[]);
    assert_ok(&out);
    let summary = stdout(&out);
    assert!(
        summary.starts_with(&format!("pushed 4 of 4 images to {}", target.addr)),
        "{summary}"
    );
    assert!(
        summary.contains("1 mounted"),
        "the shared base must be mounted, not uploaded: {summary}"
    );

    for (path, image) in &f.images {
        assert_eq!(manifest(&target.addr, path), image.manifest.bytes, "{path}");
        let raw = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{path}", target.addr))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run skopeo ({e}): install it with `apt-get install skopeo`")
            });
        assert!(raw.status.success(), "{}", stderr(&raw));
        assert_eq!(
            raw.stdout, image.manifest.bytes,
            "skopeo sees other bytes for {path}"
        );
    }

    // A package made from the pushed copy has the same manifests and blobs.
    let again = Workspace::new();
    again.define(
        &Definition::new("roundtrip").component(
            "all",
            f.images
                .iter()
                .map(|(reference, _)| format!("{}/{reference}", target.addr)),
        ),
    );
    let first = Package::read(&f.package);
    let second = Package::read(&package_path(&again.create(&[])));
    let digests = |p: &Package| {
        p.index()
            .iter()
            .map(|e| e["digest"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&first), digests(&second));
    assert_eq!(first.blob_names(), second.blob_names());
    drop(f.source);
}

#[test]
fn pushing_twice_uploads_nothing_and_a_prefix_is_honoured() {
    let f = fixture();
    let target = TestRegistry::start();
    let dest = format!("{}/mirror", target.addr);
    assert_ok(&f.ws.push(&f.package, &dest, &[]));
    let out = f.ws.push(&f.package, &dest, &[]);
    assert_ok(&out);
    let summary = stdout(&out);
    assert!(summary.contains("blobs: 0 uploaded (0 B)"), "{summary}");
    assert!(summary.contains("0 mounted"), "{summary}");
    let mut catalog = target.catalog();
    catalog.sort();
    assert_eq!(
        catalog,
        [
            "mirror/charts/web",
            "mirror/multi",
            "mirror/team/api",
            "mirror/team/web"
        ]
    );
    assert_eq!(
        manifest(&target.addr, "mirror/team/web:1.0"),
        f.images[0].1.manifest.bytes
    );
}

#[test]
fn a_push_rides_out_a_registry_that_is_still_starting() {
    let source = TestRegistry::start();
    let image =
        Pusher::new(&source.addr).image("app", "1", true, "amd64", &[layer(&[("a", b"app")])]);
    let ws = Workspace::new();
    ws.define(&Definition::new("starting").image(format!("{}/app:1", source.addr)));
    let package = package_path(&ws.create(&[]));
    let target = TestRegistry::start();
    // Nothing listens on the port the push is given yet: its first requests are refused.
    let port = free_port();
    let mut push = spawn(ws.push_command(&package, &format!("127.0.0.1:{port}"), &["-v"]));
    let mut log = BufReader::new(push.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("request: retry"))
    {
        match log.next() {
            Some(line) => seen.push(line.unwrap()),
            None => panic!(
                "the push ended before its first retry:\n{}",
                seen.join("\n")
            ),
        }
    }
    // Then the registry appears there, at once (a proxy to one already running), well
    // within the retries' 3.75 s.
    let _appeared = FaultProxy::start_on(port, &target.addr);
    seen.extend(log.map(Result::unwrap));
    let status = push.wait().unwrap();
    assert!(status.success(), "push failed:\n{}", seen.join("\n"));
    assert_eq!(manifest(&target.addr, "app:1"), image.manifest.bytes);
}

#[test]
fn htpasswd_registry_needs_credentials() {
    let f = fixture();
    let target = TestRegistry::start_with(Options {
        htpasswd: Some(("ci".into(), "s3cret".into())),
        tls: false,
    });

    let out = f.ws.push(&f.package, &target.addr, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{} asks for credentials for", target.addr)),
        "{err}"
    );
    assert!(err.contains("4 image(s) failed to push"), "{err}");

    // Docker's config.json.
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"ci:s3cret");
    std::fs::write(
        f.ws.path("docker").join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, target.addr),
    )
    .unwrap();
    assert_ok(&f.ws.push(&f.package, &target.addr, &[]));

    // A credential helper named by credHelpers, found on PATH.
    let bin = f.ws.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-pkgrtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"s3cret\"}' \"$server\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &helper,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        f.ws.path("docker").join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"pkgrtest"}}}}"#, target.addr),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out =
        f.ws.push_command(&f.package, &format!("{}/helper", target.addr), &[])
            .env("PATH", path)
            .output()
            .unwrap();
    assert_ok(&out);
    std::fs::remove_file(f.ws.path("docker").join("config.json")).unwrap();

    // --username with --password-stdin, into another prefix so blobs move again.
    let mut child =
        f.ws.push_command(
            &f.package,
            &format!("{}/second", target.addr),
            &["--username", "ci", "--password-stdin"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    assert_ok(&child.wait_with_output().unwrap());

    // create pulls from the guarded registry with config.json credentials too.
    let pull = Workspace::new();
    pull.define(&Definition::new("guarded").image(format!("{}/team/web:1.0", target.addr)));
    let out = pull.create(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("asks for credentials for"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        pull.path("docker").join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"username":"ci","password":"s3cret"}}}}}}"#,
            target.addr
        ),
    )
    .unwrap();
    let package = Package::read(&package_path(&pull.create(&[])));
    let entry = package.entry(&format!("{}/team/web:1.0", target.addr));
    assert_eq!(entry["digest"], f.images[0].1.manifest.digest);
}

#[test]
fn tls_registry_with_a_self_signed_ca() {
    let f = fixture();
    let target = TestRegistry::start_with(Options {
        htpasswd: None,
        tls: true,
    });
    let out = f.ws.push(&f.package, &target.addr, &[]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an untrusted certificate must be refused: {err}"
    );
    assert!(
        err.contains(&format!(
            "the TLS certificate of {} is not trusted",
            target.addr
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: pass --ca-file with the CA that signed it"),
        "{err}"
    );
    // A certificate no root signed stays so: it is not tried again.
    assert!(
        stderr(&f.ws.push(&f.package, &target.addr, &["-v"]))
            .lines()
            .all(|l| !l.starts_with("request: retry")),
        "an untrusted certificate was retried"
    );

    let ca = target.ca_file();
    assert_ok(&f.ws.push(
        &f.package,
        &target.addr,
        &["--ca-file", ca.to_str().unwrap()],
    ));
    let out = f.ws.push(
        &f.package,
        &format!("{}/other", target.addr),
        &["--insecure-skip-tls-verify"],
    );
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("pushed 4 of 4 images"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_whole_index_is_pushed_children_first() {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    let amd = pusher.image("multi", "", true, "amd64", &[layer(&[("m", b"amd")])]);
    let arm = pusher.image("multi", "", true, "arm64", &[layer(&[("m", b"arm")])]);
    let index = pusher.index(
        "multi",
        "4",
        true,
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("whole").image(format!("{}/multi:4", source.addr)));
    let package = package_path(&ws.create(&["--allow-index"]));
    let target = TestRegistry::start();
    assert_ok(&ws.push(&package, &target.addr, &[]));
    assert_eq!(manifest(&target.addr, "multi:4"), index.bytes);
    for child in [&amd, &arm] {
        let hex = child.manifest.digest.clone();
        assert_eq!(
            manifest(&target.addr, &format!("multi@{hex}")),
            child.manifest.bytes
        );
    }
}

#[test]
fn one_failing_image_does_not_stop_the_others() {
    let f = fixture();
    let target = TestRegistry::start();
    let proxy = crate::support::proxy::FaultProxy::start(
        &target.addr,
        vec![(
            "PUT /v2/team/api/manifests/".to_owned(),
            crate::support::proxy::Fault::Status(400),
        )],
    );
    let out = f.ws.push(&f.package, &proxy.addr, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        stdout(&out).starts_with("pushed 3 of 4 images"),
        "{}",
        stdout(&out)
    );
    assert!(
        err.contains(&format!(
            "1 image(s) failed to push: {}/team/api:2.0",
            f.source.addr
        )),
        "{err}"
    );
    assert_eq!(
        manifest(&target.addr, "team/web:1.0"),
        f.images[0].1.manifest.bytes
    );
    assert_eq!(
        manifest(&target.addr, "charts/web:0.1.0"),
        f.images[2].1.manifest.bytes
    );
}

/// The seekable package pkgr writes, an uncompressed one, and the same tar as one
/// plain zstd frame (as Zarf and other tools write): each is verified and pushed from
/// where it lies, and a changed byte inside a large layer is caught in each.
#[test]
fn every_form_of_package_is_verified_and_pushed_from_where_it_lies() {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    // Layers over 4 MiB are hashed in parallel where the package allows it.
    let big = layer(&[("big", &noise(11, 6 << 20))]);
    let app = pusher.image(
        "forms/app",
        "1",
        false,
        "amd64",
        &[big.clone(), layer(&[("other", &noise(12, 5 << 20))])],
    );
    let tool = pusher.image(
        "forms/tool",
        "1",
        false,
        "amd64",
        &[big.clone(), layer(&[("t", b"tool")])],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("forms").component(
        "all",
        [
            format!("{}/forms/app:1", source.addr),
            format!("{}/forms/tool:1", source.addr),
        ],
    ));
    let seekable = package_path(&ws.create(&[]));
    let seekable_bytes = std::fs::read(&seekable).unwrap();
    // The seek table's magic ends the file.
    assert_eq!(
        seekable_bytes[seekable_bytes.len() - 4..],
        [0xb1, 0xea, 0x92, 0x8f]
    );
    let plain = package_path(&ws.create(&["--uncompressed"]));
    let plain_bytes = std::fs::read(&plain).unwrap();
    assert_eq!(zstd::decode_all(&seekable_bytes[..]).unwrap(), plain_bytes);
    let one_pass = ws.path("one-pass.tar.zst");
    std::fs::write(&one_pass, zstd::encode_all(&plain_bytes[..], 3).unwrap()).unwrap();

    for (form, path) in [
        ("seekable", &seekable),
        ("uncompressed", &plain),
        ("one pass", &one_pass),
    ] {
        let out = ws.inspect(path, &["--verify"]);
        assert!(out.status.success(), "{form}: {}", stderr(&out));
        let target = TestRegistry::start();
        let out = ws.push(path, &target.addr, &[]);
        assert_ok(&out);
        let summary = stdout(&out);
        // Two layers and a config of app, the small layer and config of tool; the big
        // layer is mounted into the second repository.
        assert!(
            summary.contains("pushed 2 of 2 images"),
            "{form}: {summary}"
        );
        assert!(summary.contains("1 mounted"), "{form}: {summary}");
        assert_eq!(
            manifest(&target.addr, "forms/app:1"),
            app.manifest.bytes,
            "{form}"
        );
        assert_eq!(
            manifest(&target.addr, "forms/tool:1"),
            tool.manifest.bytes,
            "{form}"
        );
        let again = stdout(&ws.push(path, &target.addr, &[]));
        assert!(again.contains("blobs: 0 uploaded (0 B)"), "{form}: {again}");
    }

    // One byte inside the big layer, wherever it lies in each form.
    let window = &big[(1 << 20) + 7..(1 << 20) + 71];
    let flipped = |bytes: &[u8]| {
        let at = bytes
            .windows(window.len())
            .position(|w| w == window)
            .expect("the layer's bytes are stored as they are");
        let mut changed = bytes.to_vec();
        changed[at + 30] ^= 0x20;
        changed
    };
    let changed_plain = flipped(&plain_bytes);
    let tampered = [
        ("seekable", flipped(&seekable_bytes), "tampered.tar.zst"),
        ("uncompressed", changed_plain.clone(), "tampered.tar"),
        (
            "one pass",
            zstd::encode_all(&changed_plain[..], 3).unwrap(),
            "tampered-one-pass.tar.zst",
        ),
    ];
    let big_digest = crate::support::images::sha256(&big);
    for (form, bytes, name) in tampered {
        let path = ws.path(name);
        std::fs::write(&path, bytes).unwrap();
        let out = ws.inspect(&path, &["--verify"]);
        assert_eq!(out.status.code(), Some(1), "{form}: {}", stderr(&out));
        let expected = format!(
            "images/blobs/sha256/{} holds bytes whose digest is",
            big_digest.trim_start_matches("sha256:")
        );
        assert!(stderr(&out).contains(&expected), "{form}: {}", stderr(&out));
        let target = TestRegistry::start();
        let out = ws.push(&path, &target.addr, &[]);
        assert_eq!(out.status.code(), Some(1), "{form}: {}", stderr(&out));
        assert!(
            target.catalog().is_empty(),
            "{form}: {:?}",
            target.catalog()
        );
    }
}

#[test]
fn push_json_names_every_image_and_what_became_of_each_blob_in_each_repository() {
    let f = fixture();
    let target = TestRegistry::start();
    let out = f.ws.push(&f.package, &target.addr, &["--json"]);
    assert_ok(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("push --json is not JSON ({e}): {}", stdout(&out)));
    assert_eq!(doc["schemaVersion"], 1);
    assert_eq!(doc["target"], target.addr.as_str());
    let mut pushed: Vec<(String, String, String)> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["pushed"], true, "{i}");
            let field = |name: &str| i[name].as_str().unwrap().to_owned();
            (field("target"), field("source"), field("digest"))
        })
        .collect();
    pushed.sort();
    let mut expected: Vec<(String, String, String)> = f
        .images
        .iter()
        .map(|(path, image)| {
            (
                format!("{}/{path}", target.addr),
                format!("{}/{path}", f.source.addr),
                image.manifest.digest.clone(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(pushed, expected);

    // Each config and layer of each image, in its image's repository, once; the shared
    // base is sent once and mounted into the other repository.
    let mut wanted: Vec<(String, String)> = f
        .images
        .iter()
        .flat_map(|(path, image)| {
            let repo = format!("{}/{}", target.addr, path.split(':').next().unwrap());
            std::iter::once(&image.config)
                .chain(&image.layers)
                .map(move |blob| (blob.digest.clone(), repo.clone()))
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    let blobs = doc["blobs"].as_array().unwrap();
    let mut listed: Vec<(String, String)> = blobs
        .iter()
        .map(|b| {
            let digest = b["digest"].as_str().unwrap().to_owned();
            let blob = Pusher::new(&target.addr).get_blob(
                b["repository"].as_str().unwrap().split_once('/').unwrap().1,
                &digest,
            );
            assert_eq!(b["bytes"], blob.len() as u64, "{b}");
            (digest, b["repository"].as_str().unwrap().to_owned())
        })
        .collect();
    // Listed in the package's order, whichever upload finished first.
    let package = Package::read(&f.package);
    let place = |blob: &serde_json::Value| {
        let hex = blob["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let name = format!("images/blobs/sha256/{hex}");
        package
            .order
            .iter()
            .position(|entry| *entry == name)
            .unwrap()
    };
    let places: Vec<usize> = blobs.iter().map(place).collect();
    assert!(
        places.is_sorted(),
        "blobs out of the package's order: {doc:#}"
    );
    listed.sort();
    assert_eq!(listed, wanted);
    let outcomes = |o: &str| blobs.iter().filter(|b| b["outcome"] == o).count();
    assert_eq!(outcomes("mounted"), 1, "{doc:#}");
    assert_eq!(outcomes("sent"), wanted.len() - 1, "{doc:#}");
    assert_eq!(doc["totals"]["mounted"]["blobs"], 1);
    assert!(doc["elapsedSeconds"].as_f64().unwrap() > 0.0);

    let again = f.ws.push(&f.package, &target.addr, &["--json"]);
    assert_ok(&again);
    let doc: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        doc["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["outcome"] == "present"),
        "{doc:#}"
    );
    assert_eq!(doc["totals"]["sent"]["blobs"], 0);
}

/// `bytes` with one byte flipped inside the first place `window` is found.
fn flipped_within(bytes: &[u8], window: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(window.len())
        .position(|w| w == window)
        .expect("the bytes are stored as they are");
    let mut changed = bytes.to_vec();
    changed[at + window.len() / 2] ^= 0x20;
    changed
}

#[test]
fn a_push_to_a_registry_that_holds_every_blob_reads_none_of_them() {
    let source = TestRegistry::start();
    let pusher = Pusher::new(&source.addr);
    // Noise is stored as it is, so a byte of it can be found in the package.
    let big = layer(&[("big", &noise(21, 6 << 20))]);
    let app = pusher.image(
        "held/app",
        "1",
        false,
        "amd64",
        &[big.clone(), layer(&[("s", b"small")])],
    );
    let ws = Workspace::new();
    ws.define(&Definition::new("held").component("all", [format!("{}/held/app:1", source.addr)]));
    let seekable = package_path(&ws.create(&[]));
    let plain = package_path(&ws.create(&["--uncompressed"]));
    let window = &big[(1 << 20) + 7..(1 << 20) + 71];

    for (form, path) in [("seekable", &seekable), ("uncompressed", &plain)] {
        let target = TestRegistry::start();
        assert_ok(&ws.push(path, &target.addr, &[]));
        // A byte of the big layer changed: the whole-file check refuses the package.
        let damaged = ws.path(&format!("damaged-{form}"));
        std::fs::write(
            &damaged,
            flipped_within(&std::fs::read(path).unwrap(), window),
        )
        .unwrap();
        let out = ws.inspect(&damaged, &["--verify"]);
        assert_eq!(out.status.code(), Some(1), "{form}: {}", stderr(&out));

        // The target holds the config and both layers: none is read, so the damage is
        // not seen, and the registry serves its own bytes by their digest.
        let out = ws.push(&damaged, &target.addr, &[]);
        assert_ok(&out);
        let summary = stdout(&out);
        assert!(
            summary.contains("blobs: 0 uploaded (0 B)"),
            "{form}: {summary}"
        );
        assert!(
            summary.contains("\n3 blob(s) (")
                && summary.contains(") were already on the target and were not read"),
            "{form}: {summary}"
        );
        assert_eq!(manifest(&target.addr, "held/app:1"), app.manifest.bytes);
        let out = ws.push(&damaged, &target.addr, &["--json"]);
        assert_ok(&out);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["totals"]["notRead"]["blobs"], 3, "{form}: {doc:#}");

        // Where the damaged blob would be sent, it is refused before anything is sent.
        let empty = TestRegistry::start();
        let out = ws.push(&damaged, &empty.addr, &[]);
        assert_eq!(out.status.code(), Some(1), "{form}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the package failed verification"),
            "{form}: {}",
            stderr(&out)
        );
        assert!(empty.catalog().is_empty(), "{form}: {:?}", empty.catalog());
    }

    // A damaged manifest is refused even where the target holds every blob.
    let target = TestRegistry::start();
    assert_ok(&ws.push(&plain, &target.addr, &[]));
    let damaged = ws.path("damaged-manifest.tar");
    let manifest_bytes = &app.manifest.bytes;
    std::fs::write(
        &damaged,
        flipped_within(&std::fs::read(&plain).unwrap(), manifest_bytes),
    )
    .unwrap();
    let out = ws.push(&damaged, &target.addr, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the package failed verification"),
        "{}",
        stderr(&out)
    );
}
