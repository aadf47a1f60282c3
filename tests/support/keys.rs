//! ECDSA P-256 key pairs made by openssl, as a user would make them for
//! `--signing-key`, `--key` and `--image-key`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A key pair in `dir`: `<name>.pem` (private, PEM PKCS#8) and `<name>.pub` (public,
/// PEM SPKI), in that order.
pub fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (private, public) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.pub")),
    );
    let genpkey = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ];
    run(Command::new("openssl")
        .args(genpkey)
        .arg("-out")
        .arg(&private));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public));
    (private, public)
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
