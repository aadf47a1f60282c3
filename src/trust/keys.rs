//! The keys: an ECDSA P-256 private key from a PEM file (PKCS#8 as `openssl genpkey`
//! writes it, or cosign's encrypted key file, whose password comes from
//! [`PASSWORD_ENV`] or a prompt on a terminal, never from an argument), and a PEM SPKI
//! public key as `openssl` and `cosign` write them.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};

use super::cosign_key::{decrypt, is_cosign_key};
use super::TrustError;

/// The variable that holds a cosign key's password.
pub const PASSWORD_ENV: &str = "PKGR_SIGNING_KEY_PASSWORD";

/// A private key to sign packages with.
pub struct SigningKey(pub(super) p256::ecdsa::SigningKey);

/// A public key to check signatures against.
#[derive(Debug, Clone)]
pub struct PublicKey(pub(super) p256::ecdsa::VerifyingKey);

impl SigningKey {
    /// Loads the key at `path`. A cosign key's password is read from [`PASSWORD_ENV`],
    /// else asked for when standard input is a terminal.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let pem = read_pem(path, PRIVATE_KEY)?;
        let der = if is_cosign_key(&pem) {
            let password = password_for(path)?;
            decrypt(&pem, password.as_bytes()).map_err(|fault| match fault {
                None => TrustError::WrongPassword {
                    path: path.to_owned(),
                },
                Some(reason) => not_a_key(path, PRIVATE_KEY, reason),
            })?
        } else {
            let (label, der) = p256::pkcs8::der::pem::decode_vec(pem.as_bytes())
                .map_err(|e| not_a_key(path, PRIVATE_KEY, format!("it is not PEM ({e})")))?;
            if label != "PRIVATE KEY" {
                return Err(not_a_key(
                    path,
                    PRIVATE_KEY,
                    format!("its PEM block is `{label}`, not `PRIVATE KEY` (PKCS#8)"),
                ));
            }
            der
        };
        p256::ecdsa::SigningKey::from_pkcs8_der(&der)
            .map(Self)
            .map_err(|e| {
                not_a_key(
                    path,
                    PRIVATE_KEY,
                    format!("it holds no ECDSA P-256 key ({e})"),
                )
            })
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }
}

impl PublicKey {
    /// Loads a PEM SPKI public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let pem = read_pem(path, PUBLIC_KEY)?;
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
            .map(Self)
            .map_err(|e| not_a_key(path, PUBLIC_KEY, e.to_string()))
    }

    /// A PEM SPKI public key held in memory.
    pub fn from_pem(pem: &str) -> Option<Self> {
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
            .ok()
            .map(Self)
    }

    /// Whether the DER `signature` verifies over `message`. A high `s` is taken as its
    /// low twin: ECDSA accepts either half, and some signers (openssl among them) leave
    /// it high.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        parse_der(signature).is_some_and(|s| self.0.verify(message, &s).is_ok())
    }

    /// As [`Self::verifies`], for a message known only by its SHA-256 `digest`.
    pub fn verifies_prehash(&self, digest: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        parse_der(signature).is_some_and(|s| self.0.verify_prehash(digest, &s).is_ok())
    }

    /// The key's SPKI DER bytes.
    pub fn to_der(&self) -> Vec<u8> {
        self.0
            .to_public_key_der()
            .expect("a P-256 public key always encodes")
            .into_vec()
    }
}

fn parse_der(der: &[u8]) -> Option<p256::ecdsa::Signature> {
    let signature = p256::ecdsa::Signature::from_der(der).ok()?;
    Some(signature.normalize_s().unwrap_or(signature))
}

/// A key file is small; anything larger is not one.
const MAX_KEY_BYTES: u64 = 64 * 1024;

/// What a key file was expected to hold, as its errors say.
const PRIVATE_KEY: &str = "an ECDSA P-256 private key (PEM PKCS#8, or cosign's encrypted key)";
const PUBLIC_KEY: &str = "an ECDSA P-256 public key in PEM (SPKI)";

fn read_pem(path: &Path, expected: &'static str) -> Result<String, TrustError> {
    let io = |source| TrustError::Io {
        path: path.to_owned(),
        source,
    };
    // Read through a bound, not after a look at the size: a pipe or a growing file has
    // none to look at.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_BYTES {
        return Err(not_a_key(
            path,
            expected,
            format!("it is over {MAX_KEY_BYTES} bytes, too large for a key"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| not_a_key(path, expected, "it is not text".to_owned()))
}

fn not_a_key(path: &Path, expected: &'static str, reason: String) -> TrustError {
    TrustError::NotAKey {
        path: path.to_owned(),
        expected,
        reason,
    }
}

/// The password from the environment, else from the terminal (echo is left on only
/// where the terminal cannot be asked to stop it: none is asked for without one).
fn password_for(path: &Path) -> Result<String, TrustError> {
    if let Some(password) = std::env::var_os(PASSWORD_ENV) {
        return password
            .into_string()
            .map_err(|_| not_a_key(path, PRIVATE_KEY, format!("{PASSWORD_ENV} is not UTF-8")));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(TrustError::NoPassword {
            path: path.to_owned(),
        });
    }
    let unreadable = |source| TrustError::PasswordUnreadable {
        path: path.to_owned(),
        source,
    };
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "password for {}: ", path.display()).map_err(unreadable)?;
    stderr.flush().map_err(unreadable)?;
    let echo = EchoOff::new(&stdin);
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(unreadable)?;
    drop(echo);
    let _ = writeln!(stderr);
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Turns the terminal's echo off while it lives, and back on when dropped.
struct EchoOff<'a> {
    stdin: &'a std::io::Stdin,
    before: Option<rustix::termios::Termios>,
}

impl<'a> EchoOff<'a> {
    fn new(stdin: &'a std::io::Stdin) -> Self {
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        let before = tcgetattr(stdin).ok();
        if let Some(before) = &before {
            let mut quiet = before.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(stdin, OptionalActions::Now, &quiet);
        }
        Self { stdin, before }
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            let _ = rustix::termios::tcsetattr(
                self.stdin,
                rustix::termios::OptionalActions::Now,
                before,
            );
        }
    }
}
