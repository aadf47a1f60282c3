//! `pkgr verify`: wiring only. Settings → the whole package re-hashed through the scan
//! `inspect --verify` runs → its signature checked with `--key` → each image's own
//! signatures checked with `--image-key` ([`image_checks`], `image_trust`) → one line
//! per check and a verdict, or one JSON document (versioned by [`SCHEMA_VERSION`]).
//! Any failed check is exit 1.

use std::io::Write;

use super::error::ignore_broken_pipe;
use super::settings::VerifySettings;
use super::{Error, VerifyArgs};
use crate::image_trust::{check_package, ImageKeys};
use crate::package::reader::{shown, PackageBytes};
use crate::package::scan::{scan_package, Scan};
use crate::package::signature::{Check, SignedParts};
use crate::package::PackageError;
use crate::trust::PublicKey;

/// Raised only when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

pub fn run(args: VerifyArgs) -> Result<(), Error> {
    let settings = VerifySettings::new(args)?;
    let package = PackageBytes::open(&settings.package).map_err(PackageError::from)?;
    let scanned = scan_package(&package)?;
    let mut checks = contents_checks(&scanned);
    checks.extend(signature_checks(&scanned, settings.key.as_ref()));
    checks.extend(image_checks(&package, settings.image_keys.as_ref()));
    let failed = checks.iter().filter(|check| !check.ok).count();
    let mut out = std::io::stdout().lock();
    let written = match settings.json {
        true => {
            let document = serde_json::json!({
                "schemaVersion": SCHEMA_VERSION,
                "package": settings.package,
                "verified": failed == 0,
                "checks": checks,
            });
            writeln!(out, "{document:#}")
        }
        false => write_lines(&mut out, &checks, failed),
    };
    ignore_broken_pipe(written)?;
    match failed {
        0 => Ok(()),
        failed => Err(Error::VerifyFailed {
            failed,
            checks: checks.len(),
        }),
    }
}

/// The re-hash of every file, as `inspect --verify` does it: one line when all is
/// well, else one per problem.
fn contents_checks(scan: &Scan) -> Vec<Check> {
    if scan.problems.is_empty() {
        return vec![Check::passed(
            "contents",
            format!(
                "{} files re-hashed; every checksum and every blob digest matches",
                scan.files.len()
            ),
        )];
    }
    scan.problems
        .iter()
        .map(|problem| Check::failed("contents", problem.to_string()))
        .collect()
}

/// The package's signature: checked with the key when one is given.
fn signature_checks(scan: &Scan, key: Option<&PublicKey>) -> Vec<Check> {
    let parts = SignedParts::of_scan(scan);
    match key {
        Some(key) => parts.check(key),
        None if parts.is_signed() => vec![Check::passed(
            "package signature",
            "signed, not verified (pass --key)",
        )],
        None => vec![Check::passed(
            "package signature",
            "the package is not signed",
        )],
    }
}

/// Each image's own signatures, checked with `--image-key` when given: a line per
/// image. A package too damaged to judge them is one failed line, not an abort, so
/// the other checks are still shown.
fn image_checks(package: &PackageBytes, keys: Option<&ImageKeys>) -> Vec<Check> {
    let Some(keys) = keys else {
        return Vec::new();
    };
    match check_package(package, keys) {
        Ok(verdicts) => verdicts
            .iter()
            .map(|verdict| {
                let check = format!("image {}", verdict.reference);
                match verdict.passed() {
                    true => Check::passed(check, verdict.detail()),
                    false => Check::failed(check, verdict.detail()),
                }
            })
            .collect(),
        Err(err) => vec![Check::failed("image signatures", err.to_string())],
    }
}

fn write_lines(out: &mut impl Write, checks: &[Check], failed: usize) -> std::io::Result<()> {
    for check in checks {
        // Details may quote the package (a bundle's parse error, a problem's name).
        let mark = if check.ok { "ok  " } else { "FAIL" };
        writeln!(
            out,
            "{mark}  {}: {}",
            check.check,
            shown(check.detail.as_bytes())
        )?;
    }
    match failed {
        0 => writeln!(out, "verified: all {} checks passed", checks.len()),
        n => writeln!(out, "NOT verified: {n} of {} checks failed", checks.len()),
    }
}
