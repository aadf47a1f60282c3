//! cosign's encrypted private key file (`cosign generate-key-pair`): a PEM block
//! (`ENCRYPTED SIGSTORE PRIVATE KEY`, or `ENCRYPTED COSIGN PRIVATE KEY` from older
//! cosign) holding JSON: scrypt's parameters and salt, NaCl secretbox's nonce, and the
//! ciphertext of the PKCS#8 DER key. The key is scrypt(password, salt) and secretbox
//! opens the ciphertext with it: both from RustCrypto.

use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use serde::Deserialize;

const LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// scrypt's cost is the file's to choose; one that would take minutes or gigabytes is
/// refused rather than run (cosign writes N = 32768, r = 8, p = 1).
const MAX_LOG_N: u8 = 20;
const MAX_R: u32 = 32;
const MAX_P: u32 = 16;

#[derive(Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Whether `pem` is a cosign encrypted key.
pub fn is_cosign_key(pem: &str) -> bool {
    LABELS
        .iter()
        .any(|label| pem.contains(&format!("-----BEGIN {label}-----")))
}

/// The PKCS#8 DER key inside. `Err(None)` is a wrong password (or a damaged
/// ciphertext: secretbox cannot tell them apart); `Err(Some(reason))` a file that is
/// not a cosign key.
pub fn decrypt(pem: &str, password: &[u8]) -> Result<Vec<u8>, Option<String>> {
    let (label, json) = p256::pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| Some(format!("its PEM cannot be read ({e})")))?;
    if !LABELS.contains(&label) {
        return Err(Some(format!("its PEM block is `{label}`")));
    }
    let envelope: Envelope = serde_json::from_slice(&json)
        .map_err(|e| Some(format!("its encrypted key cannot be read ({e})")))?;
    if envelope.kdf.name != "scrypt" || envelope.cipher.name != "nacl/secretbox" {
        return Err(Some(format!(
            "it is encrypted with {} and {}, not scrypt and nacl/secretbox",
            envelope.kdf.name, envelope.cipher.name
        )));
    }
    let ScryptParams { n, r, p } = envelope.kdf.params;
    let log_n = n.trailing_zeros() as u8;
    if !n.is_power_of_two() || log_n > MAX_LOG_N || r > MAX_R || p > MAX_P {
        return Err(Some(format!(
            "its scrypt parameters (N {n}, r {r}, p {p}) are not ones pkgr accepts"
        )));
    }
    let base64 = |field: &str, text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| Some(format!("its {field} is not base64")))
    };
    let salt = base64("salt", &envelope.kdf.salt)?;
    let nonce = base64("nonce", &envelope.cipher.nonce)?;
    let ciphertext = base64("ciphertext", &envelope.ciphertext)?;
    if nonce.len() != 24 {
        return Err(Some("its nonce is not 24 bytes".to_owned()));
    }
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| Some(format!("its scrypt parameters are invalid ({e})")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key)
        .map_err(|e| Some(format!("its scrypt parameters are invalid ({e})")))?;
    XSalsa20Poly1305::new(&key.into())
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .map_err(|_| None)
}
