//! Signed packages: `create --signing-key` (an openssl PEM key, or cosign's encrypted
//! key), checked by `pkgr verify`, `inspect --key` and `push --key`, and by openssl
//! itself on the files as they sit in the package; one changed byte anywhere, or the
//! wrong key, fails and pushes nothing. Zarf packages verify from their own signature.

use std::path::Path;
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::support::definition::Definition;
use crate::support::images::{layer, sha256, Pusher};
use crate::support::keys::key_pair;
use crate::support::registry::TestRegistry;
use crate::support::tarfix::{read_entries, write_raw_tar, RawEntry};
use crate::support::{package_path, stderr, stdout, Workspace};

/// Runs openssl, which must succeed.
fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    out
}

/// Whether openssl verifies the DER `signature` over `file` with `public`.
fn openssl_verifies(public: &Path, signature: &[u8], file: &Path) -> bool {
    let sig = file.with_extension("der-sig");
    std::fs::write(&sig, signature).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(&sig)
        .arg(file)
        .output()
        .unwrap();
    out.status.success() && stdout(&out).contains("Verified OK")
}

/// Images in a registry and a definition naming them; the workspace is ready to create.
fn define(ws: &Workspace, registry: &TestRegistry) {
    let pusher = Pusher::new(&registry.addr);
    pusher.image("app", "1", false, "amd64", &[layer(&[("a", b"app")])]);
    pusher.helm_chart("chart", "0.2.0");
    ws.define(
        &Definition::new("signed")
            .version("0.1.0")
            .description("two things")
            .component("app", [format!("{}/app:1", registry.addr)])
            .component("chart", [format!("{}/chart:0.2.0", registry.addr)]),
    );
}

fn verify(ws: &Workspace, package: &Path, extra: &[&str]) -> Output {
    ws.pkgr()
        .arg("verify")
        .arg(package)
        .args(extra)
        .output()
        .unwrap()
}

/// Extracts a package with `zstd -dc | tar x` (or `tar x` for a plain tar) into `dir`.
fn extract(package: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = if package.extension().is_some_and(|e| e == "zst") {
        "zstd -dc \"$0\" | tar x -C \"$1\""
    } else {
        "tar xf \"$0\" -C \"$1\""
    };
    let out = Command::new("sh")
        .args(["-c", script])
        .arg(package)
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_signed_package_verifies_with_pkgr_and_with_openssl_and_is_deterministic() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    define(&ws, &registry);
    let (private, public) = key_pair(ws.dir.path(), "signer");
    let key = private.to_str().unwrap();
    let package = package_path(&ws.create(&["--signing-key", key]));

    let out = verify(&ws, &package, &["--key", public.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let lines = stdout(&out);
    for expected in [
        "ok    contents: ",
        "ok    pkgr.yaml covers checksums.txt: ",
        "ok    signature pkgr.bundle.sig: verifies pkgr.yaml with the key",
        "ok    signature pkgr.yaml.sig: verifies pkgr.yaml with the key",
        "verified: all 4 checks passed",
    ] {
        assert!(lines.contains(expected), "{expected:?} in {lines}");
    }
    let out = verify(
        &ws,
        &package,
        &["--key", public.to_str().unwrap(), "--json"],
    );
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["schemaVersion"], 1);
    assert_eq!(document["verified"], true);
    assert_eq!(document["checks"].as_array().unwrap().len(), 4);

    // The files as they sit in the package, checked by openssl alone.
    let files = ws.path("extracted");
    extract(&package, &files);
    let definition = std::fs::read(files.join("pkgr.yaml")).unwrap();
    let checksums = std::fs::read(files.join("checksums.txt")).unwrap();
    let recorded = format!(
        "aggregateChecksum: {}",
        sha256(&checksums).trim_start_matches("sha256:")
    );
    assert!(String::from_utf8_lossy(&definition).contains(&recorded));
    let listed = String::from_utf8(checksums).unwrap();
    for unlisted in [
        "pkgr.yaml",
        "pkgr.yaml.sig",
        "pkgr.bundle.sig",
        "checksums.txt",
    ] {
        assert!(!listed.contains(&format!(" {unlisted}\n")), "{listed}");
    }
    assert!(listed.contains(" images/index.json\n"), "{listed}");
    let detached = std::fs::read(files.join("pkgr.yaml.sig")).unwrap();
    let der = STANDARD.decode(&detached).unwrap();
    assert!(openssl_verifies(&public, &der, &files.join("pkgr.yaml")));
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files.join("pkgr.bundle.sig")).unwrap()).unwrap();
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let digest = &bundle["messageSignature"]["messageDigest"];
    assert_eq!(digest["algorithm"], "SHA2_256");
    let hex = sha256(&definition);
    let expected = STANDARD.encode(
        (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[7 + i..9 + i], 16).unwrap())
            .collect::<Vec<u8>>(),
    );
    assert_eq!(digest["digest"], expected.as_str());
    assert!(bundle["verificationMaterial"]["publicKey"]["hint"].is_string());
    assert!(bundle["verificationMaterial"]
        .get("tlogEntries")
        .is_none_or(|entries| entries.as_array().unwrap().is_empty()));
    let signature = bundle["messageSignature"]["signature"].as_str().unwrap();
    let der = STANDARD.decode(signature).unwrap();
    assert!(openssl_verifies(&public, &der, &files.join("pkgr.yaml")));
    assert!(!openssl_verifies(
        &public,
        &der,
        &files.join("checksums.txt")
    ));

    // The same inputs and key give the same bytes.
    let again = ws.path("again");
    let out = ws
        .create_command_into(&again, &["--signing-key", key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(package_path(&out)).unwrap(),
        std::fs::read(&package).unwrap()
    );

    // Inspect says it is signed; with the key, that it verifies.
    let out = ws.inspect(&package, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("signature: signed, not verified (pass --key)"));
    let out = ws.inspect(&package, &["--verify", "--key", public.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("signature: verified with the key"));
    let out = ws.inspect(&package, &["--json", "--key", public.to_str().unwrap()]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["signature"]["verified"], true);

    // Push without a key pushes, and warns once; with the key, pushes too.
    let target = TestRegistry::start();
    let out = ws.push(&package, &target.addr, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out)
            .matches("the package is signed, but its signature was not checked (pass --key)")
            .count(),
        1,
        "{}",
        stderr(&out)
    );
    let target = TestRegistry::start();
    let out = ws.push(&package, &target.addr, &["--key", public.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not checked"), "{}", stderr(&out));
    assert_eq!(target.catalog().len(), 2);
}

/// `entries` with one byte of `name` changed by `change`.
fn changed(entries: &[RawEntry], name: &str, change: impl Fn(&mut Vec<u8>)) -> Vec<RawEntry> {
    let mut found = false;
    let out = entries
        .iter()
        .map(|entry| {
            let mut copy = RawEntry::file(std::str::from_utf8(&entry.name).unwrap(), &entry.data);
            if entry.name == name.as_bytes() {
                change(&mut copy.data);
                found = true;
            }
            copy
        })
        .collect();
    assert!(found, "{name} is not in the package");
    out
}

/// Flips a character to another of the same kind (a hex digit to another, a base64
/// letter to another), so that only the meaning changes.
fn flip(data: &mut [u8], at: usize) {
    data[at] = match data[at] {
        b'a' => b'b',
        b'0'..=b'8' => data[at] + 1,
        b'9' => b'0',
        b'A'..=b'Y' | b'b'..=b'y' => data[at] + 1,
        other => other ^ 1,
    };
}

#[test]
fn one_changed_byte_or_the_wrong_key_fails_verify_and_push_sends_nothing() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    define(&ws, &registry);
    let (private, public) = key_pair(ws.dir.path(), "signer");
    let (_, other) = key_pair(ws.dir.path(), "other");
    let package =
        package_path(&ws.create(&["--uncompressed", "--signing-key", private.to_str().unwrap()]));
    let entries = read_entries(&package);
    let layer_name = String::from_utf8(entries.last().unwrap().name.clone()).unwrap();
    let middle = |data: &mut Vec<u8>| {
        let at = data.len() / 2;
        flip(data, at)
    };
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        ("a blob", changed(&entries, &layer_name, middle)),
        (
            "checksums.txt",
            changed(&entries, "checksums.txt", |d| flip(d, 0)),
        ),
        (
            "pkgr.yaml",
            changed(&entries, "pkgr.yaml", |d| {
                let at = String::from_utf8_lossy(d).find("two things").unwrap();
                flip(d, at)
            }),
        ),
        ("pkgr.yaml.sig", changed(&entries, "pkgr.yaml.sig", middle)),
        (
            "pkgr.bundle.sig",
            changed(&entries, "pkgr.bundle.sig", |d| {
                let at = String::from_utf8_lossy(d)
                    .rfind("\"signature\":\"")
                    .unwrap()
                    + 20;
                flip(d, at)
            }),
        ),
        (
            "an oversized signature",
            changed(&entries, "pkgr.yaml.sig", |d| {
                d.extend(std::iter::repeat_n(b'A', 70_000))
            }),
        ),
    ];
    let target = TestRegistry::start();
    let key = public.to_str().unwrap();
    for (label, entries) in cases {
        let path = ws.path(&format!("{}.tar", label.replace(' ', "-")));
        write_raw_tar(&path, &entries);
        let out = verify(&ws, &path, &["--key", key]);
        assert_eq!(out.status.code(), Some(1), "{label}: {}", stdout(&out));
        let out = ws.push(&path, &target.addr, &["--key", key]);
        assert_eq!(out.status.code(), Some(1), "{label}: {}", stderr(&out));
        assert!(target.catalog().is_empty(), "{label}: something was pushed");
    }

    // The wrong key fails the same way, and says why.
    let other = other.to_str().unwrap();
    let out = verify(&ws, &package, &["--key", other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("FAIL  signature pkgr.yaml.sig: the signature does not verify with this key"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("NOT verified: 2 of 4 checks failed"));
    let out = ws.push(&package, &target.addr, &["--key", other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("error: the package signature does not verify: the signature does not verify with this key"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: nothing was pushed"),
        "{}",
        stderr(&out)
    );
    let out = ws.inspect(&package, &["--key", other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("signature: does not verify"));
    assert!(target.catalog().is_empty());

    // A key for an unsigned package is refused too.
    let unsigned = package_path(
        &ws.create_command_into(&ws.path("unsigned"), &["--uncompressed"])
            .output()
            .unwrap(),
    );
    for out in [
        verify(&ws, &unsigned, &["--key", key]),
        ws.push(&unsigned, &target.addr, &["--key", key]),
        ws.inspect(&unsigned, &["--key", key]),
    ] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            format!("{}{}", stdout(&out), stderr(&out)).contains(
                "the package is not signed (pkgr.yaml has no signature), but a key was given"
            ),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    assert!(target.catalog().is_empty());
    // Without a key, an unsigned package verifies as before.
    let out = verify(&ws, &unsigned, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("ok    package signature: the package is not signed"));
}

/// `der` (a PKCS#8 private key) encrypted as `cosign generate-key-pair` writes it,
/// under `label`: scrypt (N 32768, r 8, p 1) and NaCl secretbox, in the PEM-wrapped JSON.
fn cosign_encrypted(der: &[u8], password: &[u8], label: &str) -> String {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let salt = [7u8; 32];
    let nonce = [9u8; 24];
    let params = scrypt::Params::new(15, 8, 1, 32).unwrap();
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).unwrap();
    let ciphertext = crypto_secretbox::XSalsa20Poly1305::new(&key.into())
        .encrypt(&nonce.into(), der)
        .unwrap();
    let json = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": STANDARD.encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": STANDARD.encode(nonce)},
        "ciphertext": STANDARD.encode(ciphertext),
    });
    let body = STANDARD.encode(serde_json::to_vec(&json).unwrap());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[test]
fn a_cosign_encrypted_key_signs_as_the_same_key_in_pem_does() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    define(&ws, &registry);
    let (private, public) = key_pair(ws.dir.path(), "signer");
    let der = openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-outform",
        "DER",
        "-in",
        private.to_str().unwrap(),
    ])
    .stdout;
    let plain = package_path(&ws.create(&["--signing-key", private.to_str().unwrap()]));

    for label in [
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        "ENCRYPTED COSIGN PRIVATE KEY",
    ] {
        let cosign_key = ws.path("cosign.key");
        std::fs::write(&cosign_key, cosign_encrypted(&der, b"s3cret", label)).unwrap();
        let output = ws.path(&format!("cosign-{}", label.len()));
        let out = ws
            .create_command_into(&output, &["--signing-key", cosign_key.to_str().unwrap()])
            .env("PKGR_SIGNING_KEY_PASSWORD", "s3cret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{label}: {}", stderr(&out));
        let signed = package_path(&out);
        assert_eq!(
            std::fs::read(&signed).unwrap(),
            std::fs::read(&plain).unwrap(),
            "{label}"
        );
        let out = verify(&ws, &signed, &["--key", public.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stdout(&out));
    }

    // A wrong password, and no password with no terminal: one sentence, nothing written.
    let cosign_key = ws.path("cosign.key");
    let cases = [
        (
            Some("wrong"),
            "the password is wrong, or the file is damaged",
        ),
        (
            None,
            "is a cosign key encrypted with a password: set PKGR_SIGNING_KEY_PASSWORD",
        ),
    ];
    for (password, expected) in cases {
        let output = ws.path("refused");
        let mut cmd =
            ws.create_command_into(&output, &["--signing-key", cosign_key.to_str().unwrap()]);
        cmd.env_remove("PKGR_SIGNING_KEY_PASSWORD")
            .stdin(std::process::Stdio::null());
        if let Some(password) = password {
            cmd.env("PKGR_SIGNING_KEY_PASSWORD", password);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
        assert!(!output.exists() || std::fs::read_dir(&output).unwrap().next().is_none());
    }
    // A key that is no key.
    let out = ws.create(&["--signing-key", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not an ECDSA P-256 private key"),
        "{}",
        stderr(&out)
    );
}

/// A Zarf-shaped package made from an unsigned pkgr package: `zarf.yaml` records the
/// sha256 of `checksums.txt` and is signed by openssl as a detached signature, a
/// bundle, or both.
fn zarf_signed(
    addr: &str,
    package: &Path,
    private: &Path,
    dir: &Path,
    detached: bool,
    bundle: bool,
) -> Vec<RawEntry> {
    let entries = crate::inspect::as_zarf(package, "");
    let checksums = &entries
        .iter()
        .find(|e| e.name == b"checksums.txt")
        .unwrap()
        .data;
    let zarf_yaml = format!(
        "kind: ZarfPackageConfig\nmetadata:\n  name: signed-zarf\n  architecture: amd64\nbuild:\n  aggregateChecksum: {}\ncomponents:\n  - name: app\n    images:\n      - {addr}/app:1\n      - {addr}/chart:0.2.0\n",
        sha256(checksums).trim_start_matches("sha256:")
    );
    let yaml_path = dir.join("zarf.yaml");
    std::fs::write(&yaml_path, &zarf_yaml).unwrap();
    let der = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        private.to_str().unwrap(),
        yaml_path.to_str().unwrap(),
    ])
    .stdout;
    let mut entries: Vec<RawEntry> = entries
        .into_iter()
        .map(|e| match e.name == b"zarf.yaml" {
            true => RawEntry::file("zarf.yaml", zarf_yaml.as_bytes()),
            false => e,
        })
        .collect();
    if detached {
        entries.push(RawEntry::file(
            "zarf.yaml.sig",
            STANDARD.encode(&der).as_bytes(),
        ));
    }
    if bundle {
        let hex = sha256(zarf_yaml.as_bytes());
        let digest: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[7 + i..9 + i], 16).unwrap())
            .collect();
        let document = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "test"}},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode(digest)},
                "signature": STANDARD.encode(&der),
            },
        });
        entries.push(RawEntry::file(
            "zarf.bundle.sig",
            &serde_json::to_vec(&document).unwrap(),
        ));
    }
    entries
}

#[test]
fn zarf_packages_verify_from_their_bundle_or_their_detached_signature() {
    let registry = TestRegistry::start();
    let ws = Workspace::new();
    define(&ws, &registry);
    let (private, public) = key_pair(ws.dir.path(), "zarf");
    let (_, other) = key_pair(ws.dir.path(), "other");
    let package = package_path(&ws.create(&["--uncompressed"]));
    let key = public.to_str().unwrap();
    for (detached, bundle) in [(true, false), (false, true), (true, true)] {
        let label = format!("detached {detached}, bundle {bundle}");
        let path = ws.path(&format!("zarf-{detached}-{bundle}.tar"));
        let entries = zarf_signed(
            &registry.addr,
            &package,
            &private,
            ws.dir.path(),
            detached,
            bundle,
        );
        write_raw_tar(&path, &entries);
        let out = verify(&ws, &path, &["--key", key]);
        assert!(out.status.success(), "{label}: {}", stdout(&out));
        let checked = if bundle {
            "zarf.bundle.sig"
        } else {
            "zarf.yaml.sig"
        };
        assert!(
            stdout(&out).contains(&format!(
                "ok    signature {checked}: verifies zarf.yaml with the key"
            )),
            "{label}: {}",
            stdout(&out)
        );
        assert!(stdout(&out).contains("ok    zarf.yaml covers checksums.txt"));

        let out = ws.inspect(&path, &[]);
        assert!(out.status.success(), "{label}: {}", stderr(&out));
        assert!(stdout(&out).contains("signature: signed, not verified (pass --key)"));
        let out = ws.inspect(&path, &["--key", key]);
        assert!(out.status.success(), "{label}: {}", stderr(&out));
        let listing = stdout(&out);
        assert!(
            listing.contains(
                "signature: verified with the key (the files it covers are re-hashed by --verify)"
            ),
            "{listing}"
        );
        let row = listing.lines().find(|l| l.contains(checked)).unwrap();
        assert!(row.ends_with("signature, verified with the key"), "{row}");

        let out = verify(&ws, &path, &["--key", other.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{label}");
        let tampered = changed(&entries, "zarf.yaml", |d| {
            let at = String::from_utf8_lossy(d).find("signed-zarf").unwrap();
            flip(d, at)
        });
        write_raw_tar(&path, &tampered);
        let out = verify(&ws, &path, &["--key", key]);
        assert_eq!(out.status.code(), Some(1), "{label}: {}", stdout(&out));
        let target = TestRegistry::start();
        let out = ws.push(&path, &target.addr, &["--key", key]);
        assert_eq!(out.status.code(), Some(1), "{label}");
        assert!(target.catalog().is_empty());
    }
}
