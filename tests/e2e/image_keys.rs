//! `--image-key`: images signed by the test with openssl, in cosign's `.sig` form and
//! as Sigstore bundles attached as referrers, are packaged; an unsigned image, one
//! signed by another key, one whose signature names another digest and one signed
//! keyless are refused by name before any of their blobs is fetched (counted at a
//! proxy). The offline check of a package judges the same way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use pkgr::image_trust::{check_package, ImageKeys, Refusal};
use pkgr::package::reader::PackageBytes;

use crate::support::definition::Definition;
use crate::support::images::{layer, simple_signing, Image, Pushed, Pusher, COSIGN_LAYER};
use crate::support::keys::key_pair;
use crate::support::measure::measure;
use crate::support::proxy::FaultProxy;
use crate::support::registry::TestRegistry;
use crate::support::{package_path, stderr, stdout, Workspace};

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// An ECDSA P-256 key pair made by openssl: `<name>.pem` and `<name>.pub`.
struct KeyPair {
    private: PathBuf,
    public: PathBuf,
}

impl KeyPair {
    fn new(dir: &Path, name: &str) -> Self {
        let (private, public) = key_pair(dir, name);
        Self { private, public }
    }

    /// The DER ECDSA signature over `message`, with SHA-256, as openssl makes it.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        openssl(&["dgst", "-sha256", "-sign"], &self.private, message)
    }

    fn sign_b64(&self, message: &[u8]) -> String {
        b64(&self.sign(message))
    }

    fn public(&self) -> &str {
        self.public.to_str().unwrap()
    }
}

/// Runs `openssl ARGS PATH` with `input` on stdin; its stdout.
fn openssl(args: &[&str], path: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The raw SHA-256 a `sha256:<hex>` digest holds.
fn raw(digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
        .collect()
}

/// A cosign `.sig` for `subject` whose payload names `named` (the subject's digest,
/// unless the test means otherwise), signed by `key`, with extra layer annotations.
fn push_sig(
    pusher: &Pusher,
    repo: &str,
    subject: &Pushed,
    named: &str,
    key: &KeyPair,
    extra: &[(&str, &str)],
) -> Image {
    let payload = simple_signing(repo, named);
    let signature = key.sign_b64(&payload);
    let payload = pusher.blob(repo, COSIGN_LAYER, payload);
    let mut annotations = serde_json::json!({"dev.cosignproject.cosign/signature": signature});
    for (k, v) in extra {
        annotations[*k] = (*v).into();
    }
    let mut layer = payload.descriptor();
    layer["annotations"] = annotations;
    let config = pusher.blob(
        repo,
        "application/vnd.oci.image.config.v1+json",
        b"{}".to_vec(),
    );
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::support::images::OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer],
    }))
    .unwrap();
    let tag = format!("{}.sig", subject.digest.replace(':', "-"));
    let manifest = pusher.manifest(repo, &tag, crate::support::images::OCI_MANIFEST, manifest);
    Image {
        manifest,
        config,
        layers: vec![payload],
    }
}

/// A bundle attached to `subject` as a referrer, listed by the referrers tag (the
/// test registry has no referrers API).
fn push_bundle(pusher: &Pusher, repo: &str, subject: &Pushed, bundle: serde_json::Value) -> Image {
    let bytes = serde_json::to_vec(&bundle).unwrap();
    let referrer = pusher.referrer(repo, subject, BUNDLE, &bytes);
    pusher.referrers_tag(repo, subject, &[(&referrer, BUNDLE)]);
    referrer
}

/// A bundle with a message signature over `subject`'s manifest bytes.
fn message_bundle(
    subject: &Pushed,
    key: &KeyPair,
    material: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "mediaType": BUNDLE,
        "verificationMaterial": material,
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(&raw(&subject.digest))},
            "signature": key.sign_b64(&subject.bytes),
        },
    })
}

/// A bundle with a DSSE envelope whose in-toto statement names `subject`.
fn dsse_bundle(repo: &str, subject: &Pushed, key: &KeyPair) -> serde_json::Value {
    let statement = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repo, "digest": {"sha256": subject.digest.trim_start_matches("sha256:")}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }))
    .unwrap();
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(&statement);
    serde_json::json!({
        "mediaType": BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": "test"}},
        "dsseEnvelope": {
            "payload": b64(&statement),
            "payloadType": payload_type,
            "signatures": [{"keyid": "", "sig": key.sign_b64(&pae)}],
        },
    })
}

/// `pkgr verify PACKAGE --image-key KEY… [--json]`: its output, and the image checks
/// its JSON document lists as (check, ok, detail).
fn verify(
    ws: &Workspace,
    package: &Path,
    keys: &[&KeyPair],
) -> (std::process::Output, Vec<(String, bool, String)>) {
    let args: Vec<&str> = keys
        .iter()
        .flat_map(|k| ["--image-key", k.public()])
        .collect();
    let run = |json: bool| {
        let mut cmd = ws.pkgr();
        cmd.arg("verify").arg(package).args(&args);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let lines = run(false);
    let json = run(true);
    assert_eq!(json.status.code(), lines.status.code(), "{}", stderr(&json));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let checks = document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"].as_str().unwrap().starts_with("image "))
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap().to_owned();
            (text("check"), c["ok"].as_bool().unwrap(), text("detail"))
        })
        .collect();
    (lines, checks)
}

fn image(pusher: &Pusher, repo: &str, content: &[u8]) -> Image {
    pusher.image(repo, "1", false, "amd64", &[layer(&[("file", content)])])
}

/// The verdicts of the offline check, by reference: the key that signed, or why not.
fn offline(package: &Path, keys: &[&KeyPair]) -> Vec<(String, Result<String, Refusal>)> {
    let paths: Vec<PathBuf> = keys.iter().map(|k| k.public.clone()).collect();
    let keys = ImageKeys::load(&paths).unwrap();
    let opened = PackageBytes::open(package).unwrap();
    check_package(&opened, &keys)
        .unwrap()
        .into_iter()
        .map(|verdict| {
            assert_eq!(verdict.manifests.len(), 1, "{verdict:?}");
            let (digest, result) = verdict.manifests.into_iter().next().unwrap();
            assert_eq!(digest, verdict.digest);
            (verdict.reference, result)
        })
        .collect()
}

#[test]
fn images_signed_as_cosign_sig_or_as_bundle_referrers_are_packaged_and_check_offline() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let ws = Workspace::new();
    let key = KeyPair::new(ws.dir.path(), "signer");
    let other = KeyPair::new(ws.dir.path(), "other");
    let sig = image(&pusher, "sig", b"sig");
    push_sig(
        &pusher,
        "sig",
        &sig.manifest,
        &sig.manifest.digest,
        &key,
        &[],
    );
    let message = image(&pusher, "message", b"message");
    let public_key = serde_json::json!({"publicKey": {"hint": "test"}});
    let bundle = push_bundle(
        &pusher,
        "message",
        &message.manifest,
        message_bundle(&message.manifest, &key, public_key),
    );
    let dsse = image(&pusher, "dsse", b"dsse");
    push_bundle(
        &pusher,
        "dsse",
        &dsse.manifest,
        dsse_bundle("dsse", &dsse.manifest, &key),
    );
    let at = |r: &str| format!("{}/{r}:1", registry.addr);
    ws.define(&Definition::new("signed").images(&[at("sig"), at("message"), at("dsse")]));

    // Any one of the keys will do.
    let out = ws.create(&["--image-key", other.public(), "--image-key", key.public()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = package_path(&out);
    let package = crate::support::package::Package::read(&path);
    assert_eq!(
        package.blob(&bundle.layers[0].digest),
        Some(&bundle.layers[0].bytes),
        "the bundle travels"
    );
    for image in [&sig, &message, &dsse] {
        assert_eq!(
            package.blob(&image.layers[0].digest),
            Some(&image.layers[0].bytes)
        );
    }

    let by_key = offline(&path, &[&key]);
    let expected: Vec<(String, Result<String, Refusal>)> = ["sig", "message", "dsse"]
        .iter()
        .map(|r| (at(r), Ok(key.public().to_owned())))
        .collect();
    assert_eq!(by_key, expected);
    let by_other = offline(&path, &[&other]);
    assert!(
        by_other.iter().all(|(_, r)| *r == Err(Refusal::OtherKey)),
        "{by_other:?}"
    );

    // pkgr verify says the same, a line per image, and in its JSON.
    let (out, checks) = verify(&ws, &path, &[&key]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for name in ["sig", "message", "dsse"] {
        let line = format!("ok    image {}: signed by {}\n", at(name), key.public());
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(checks.iter().all(|(_, ok, _)| *ok), "{checks:?}");
    let (out, checks) = verify(&ws, &path, &[&other]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!(
        "FAIL  image {}: signed by another key\n",
        at("sig")
    )));
    assert!(
        checks
            .iter()
            .all(|(_, ok, d)| !ok && d == "signed by another key"),
        "{checks:?}"
    );
}

#[test]
fn unsigned_misdirected_keyless_and_foreign_images_are_refused_by_name_before_any_blob_is_fetched()
{
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let ws = Workspace::new();
    let key = KeyPair::new(ws.dir.path(), "signer");
    let stranger = KeyPair::new(ws.dir.path(), "stranger");
    let good = image(&pusher, "good", b"good");
    push_sig(
        &pusher,
        "good",
        &good.manifest,
        &good.manifest.digest,
        &key,
        &[],
    );
    let unsigned = image(&pusher, "unsigned", b"unsigned");
    let foreign = image(&pusher, "foreign", b"foreign");
    push_sig(
        &pusher,
        "foreign",
        &foreign.manifest,
        &foreign.manifest.digest,
        &stranger,
        &[],
    );
    let misdirected = image(&pusher, "misdirected", b"misdirected");
    // A genuine signature of the good image, copied under this image's tag.
    push_sig(
        &pusher,
        "misdirected",
        &misdirected.manifest,
        &good.manifest.digest,
        &key,
        &[],
    );
    let keyless = image(&pusher, "keyless", b"keyless");
    let certificate = serde_json::json!({"certificate": {"rawBytes": "MIIBfake"}, "tlogEntries": [{"logIndex": "1"}]});
    push_bundle(
        &pusher,
        "keyless",
        &keyless.manifest,
        message_bundle(&keyless.manifest, &key, certificate),
    );
    let keyless_sig = image(&pusher, "keyless-sig", b"keyless-sig");
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
    push_sig(
        &pusher,
        "keyless-sig",
        &keyless_sig.manifest,
        &keyless_sig.manifest.digest,
        &key,
        &[("dev.sigstore.cosign/certificate", pem)],
    );

    let proxy = FaultProxy::start(&registry.addr, vec![]);
    let at = |r: &str| format!("{}/{r}:1", proxy.addr);
    let names = [
        "good",
        "unsigned",
        "foreign",
        "misdirected",
        "keyless",
        "keyless-sig",
    ];
    ws.define(&Definition::new("checked").images(names.map(at)));
    let out = ws.create(&["--image-key", key.public()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());
    let lines: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .collect();
    assert_eq!(
        lines[0], "error: 5 of 6 image references cannot be packaged, so nothing was downloaded:",
        "{err}"
    );
    let refused = |name: &str, why: &str| {
        format!(
            "  {} has no valid signature by an --image-key: {why}",
            at(name)
        )
    };
    let keyless_why = "keyless signature (certificate) is not supported; sign with a key";
    let expected = [
        refused("unsigned", "no signature found"),
        refused("foreign", "signed by another key"),
        refused(
            "misdirected",
            &format!("signature over another digest ({})", good.manifest.digest),
        ),
        refused("keyless", keyless_why),
        refused("keyless-sig", keyless_why),
    ];
    assert_eq!(
        lines[1..6],
        expected.iter().map(String::as_str).collect::<Vec<_>>()[..],
        "{err}"
    );

    // Signatures were read; no config or layer of any image was.
    let images = [
        &good,
        &unsigned,
        &foreign,
        &misdirected,
        &keyless,
        &keyless_sig,
    ];
    let fetched: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/blobs/"))
        .map(|s| s.path)
        .collect();
    for image in images {
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            assert!(
                !fetched.iter().any(|p| p.ends_with(&blob.digest)),
                "{} fetched: {fetched:?}",
                blob.digest
            );
        }
    }
    assert!(!fetched.is_empty(), "the signatures themselves were read");

    // The same images packaged with their signatures judge the same way offline.
    let out = ws.create(&["--with-signatures"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let verdicts = offline(&package_path(&out), &[&key]);
    let images: Vec<_> = verdicts
        .iter()
        .filter(|(r, _)| names.iter().any(|n| *r == at(n)))
        .cloned()
        .collect();
    let keyless_refusal = Err(Refusal::Keyless("certificate"));
    assert_eq!(
        images,
        vec![
            (at("good"), Ok(key.public().to_owned())),
            (at("unsigned"), Err(Refusal::NoSignature)),
            (at("foreign"), Err(Refusal::OtherKey)),
            (
                at("misdirected"),
                Err(Refusal::OtherDigest(good.manifest.digest.clone()))
            ),
            (at("keyless"), keyless_refusal.clone()),
            (at("keyless-sig"), keyless_refusal),
        ]
    );
    let (out, checks) = verify(&ws, &package_path(&out), &[&key]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let words = [
        ("good", true, format!("signed by {}", key.public())),
        ("unsigned", false, "no signature found".to_owned()),
        ("foreign", false, "signed by another key".to_owned()),
        (
            "misdirected",
            false,
            format!("signature over another digest ({})", good.manifest.digest),
        ),
        ("keyless", false, keyless_why.to_owned()),
        ("keyless-sig", false, keyless_why.to_owned()),
    ];
    for (name, ok, detail) in &words {
        let mark = if *ok { "ok  " } else { "FAIL" };
        let line = format!("{mark}  image {}: {detail}\n", at(name));
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    let listed: Vec<(String, bool, String)> = checks
        .into_iter()
        .filter(|(c, ..)| names.iter().any(|n| *c == format!("image {}", at(n))))
        .collect();
    let expected: Vec<(String, bool, String)> = words
        .iter()
        .map(|(n, ok, d)| (format!("image {}", at(n)), *ok, d.clone()))
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn an_image_key_that_cannot_be_used_is_one_sentence_and_nothing_is_written() {
    let ws = Workspace::new();
    ws.define(&Definition::new("keys").images(&["127.0.0.1:1/app:1".to_owned()]));
    let garbage = ws.path("garbage.pub");
    std::fs::write(&garbage, "not a key").unwrap();
    let missing = ws.path("missing.pub");
    // Read no further than a key's size: a 100 MiB file is refused, not loaded.
    let huge = ws.path("huge.pub");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    for (path, sentence) in [
        (
            &garbage,
            format!(
                "error: the --image-key {} is not a PEM ECDSA P-256 public key",
                garbage.display()
            ),
        ),
        (
            &huge,
            format!(
                "error: the --image-key {} is not a PEM ECDSA P-256 public key",
                huge.display()
            ),
        ),
        (
            &missing,
            format!("error: cannot read the --image-key {}", missing.display()),
        ),
    ] {
        let run = measure(
            &ws.create_command(&["--image-key", path.to_str().unwrap()]),
            ws.dir.path(),
        );
        let err = stderr(&run.out);
        assert_eq!(run.out.status.code(), Some(1), "{err}");
        assert!(err.starts_with(&sentence), "{err}");
        assert!(ws.output_files().is_empty());
        assert!(run.peak_rss_kib < 64 << 10, "{} KiB", run.peak_rss_kib);
        if path == &huge {
            assert!(
                err.contains("it is over 65536 bytes, too large for a key"),
                "{err}"
            );
        }
    }
}

#[test]
fn with_allow_index_the_index_and_every_platform_must_be_signed() {
    let registry = TestRegistry::start();
    let pusher = Pusher::new(&registry.addr);
    let ws = Workspace::new();
    let key = KeyPair::new(ws.dir.path(), "signer");
    let amd = pusher.image("multi", "amd", false, "amd64", &[layer(&[("a", b"amd")])]);
    let arm = pusher.image("multi", "arm", false, "arm64", &[layer(&[("a", b"arm")])]);
    let index = pusher.index(
        "multi",
        "1",
        false,
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    push_sig(&pusher, "multi", &index, &index.digest, &key, &[]);
    push_sig(
        &pusher,
        "multi",
        &amd.manifest,
        &amd.manifest.digest,
        &key,
        &[],
    );
    let reference = format!("{}/multi:1", registry.addr);
    ws.define(&Definition::new("multi").image(&reference));

    let out = ws.create(&["--allow-index", "--image-key", key.public()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: {reference} has no valid signature by an --image-key: its manifest {}: no signature found\n",
            arm.manifest.digest
        )),
        "{err}"
    );
    assert!(ws.output_files().is_empty(), "{:?}", ws.output_files());

    push_sig(
        &pusher,
        "multi",
        &arm.manifest,
        &arm.manifest.digest,
        &key,
        &[],
    );
    let out = ws.create(&["--allow-index", "--image-key", key.public()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let keys = ImageKeys::load(std::slice::from_ref(&key.public)).unwrap();
    let opened = PackageBytes::open(&package_path(&out)).unwrap();
    let verdicts = check_package(&opened, &keys).unwrap();
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    let signed: Vec<(String, Result<String, Refusal>)> = verdicts[0]
        .manifests
        .iter()
        .map(|(d, r)| (d.to_string(), r.clone()))
        .collect();
    let by_key = || Ok(key.public().to_owned());
    assert_eq!(
        signed,
        vec![
            (index.digest.clone(), by_key()),
            (amd.manifest.digest.clone(), by_key()),
            (arm.manifest.digest.clone(), by_key()),
        ]
    );
}
