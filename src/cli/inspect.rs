//! `pkgr inspect`: wiring only. Settings → the package's summary, read from its head,
//! and with `--verify` a scan of it all → one JSON object, or the table of `human`.
//! A differential package's left-out blobs are listed as expected on the target. A
//! signed package says so; with `--key` its signature is checked (a failure, or a key
//! for an unsigned package, is exit 1).
//! A published package (`oci://…`) is summarized by `pull_package` and printed by
//! [`print`], the same way.

mod human;

use std::io::Write;
use std::time::Instant;

use super::error::ignore_broken_pipe;
use super::settings::InspectSettings;
use super::{Error, InspectArgs};
use crate::package::scan::{scan, Problem, Scan};
use crate::package::signature::{Check, SignedParts};
use crate::package::summary::{summarize, Summary};
use crate::trust::PublicKey;

/// What inspect says of the package's signature.
pub enum SignatureState {
    /// Unsigned, and no key given: nothing is said.
    Unsigned,
    /// Signed, and no key given.
    NotVerified,
    /// Checked with `--key`; `signed` says whether there was a signature to check.
    Checked { signed: bool, checks: Vec<Check> },
}

impl SignatureState {
    fn of(parts: &SignedParts, key: Option<&PublicKey>) -> Self {
        match key {
            Some(key) => Self::Checked {
                signed: parts.is_signed(),
                checks: parts.check(key),
            },
            None if parts.is_signed() => Self::NotVerified,
            None => Self::Unsigned,
        }
    }

    fn failed(&self) -> Vec<Check> {
        match self {
            Self::Checked { checks, .. } => checks.iter().filter(|c| !c.ok).cloned().collect(),
            _ => Vec::new(),
        }
    }
}

pub fn run(args: InspectArgs) -> Result<(), Error> {
    let settings = InspectSettings::new(args)?;
    let started = Instant::now();
    let verification = match settings.verify {
        true => Some(scan(&settings.package)?),
        false => None,
    };
    if let Some(scan) = &verification {
        human::say_verified(scan, started.elapsed());
    }
    let mut summary = match summarize(&settings.package) {
        Ok(summary) => summary,
        // A package too damaged to summarize still gets its list of problems.
        Err(_)
            if verification
                .as_ref()
                .is_some_and(|s| !s.problems.is_empty()) =>
        {
            let problems = verification.map(|s| s.problems).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let written = problems
                .iter()
                .try_for_each(|problem| writeln!(out, "{problem}"));
            ignore_broken_pipe(written)?;
            return Err(refused(problems));
        }
        Err(err) => return Err(err.into()),
    };
    let parts = match &verification {
        Some(scan) => SignedParts::of_scan(scan),
        None => std::mem::take(&mut summary.signed),
    };
    let signature = SignatureState::of(&parts, settings.key.as_ref());
    let mut out = std::io::stdout().lock();
    let written = match settings.json {
        true => write_json(&mut out, &summary, verification.as_ref(), &signature),
        false => human::write(&mut out, &summary, verification.as_ref(), &signature),
    };
    ignore_broken_pipe(written)?;
    match verification {
        Some(scan) if !scan.problems.is_empty() => return Err(refused(scan.problems)),
        _ => {}
    }
    signature_outcome(&signature)
}

/// A summary as `inspect` prints it without `--verify`, its signature said or checked
/// with `key` as for a file: for a published package, so that its table is the file's.
pub(super) fn print(
    mut summary: Summary,
    json: bool,
    key: Option<&PublicKey>,
) -> Result<(), Error> {
    let parts = std::mem::take(&mut summary.signed);
    let signature = SignatureState::of(&parts, key);
    let mut out = std::io::stdout().lock();
    let written = match json {
        true => write_json(&mut out, &summary, None, &signature),
        false => human::write(&mut out, &summary, None, &signature),
    };
    ignore_broken_pipe(written)?;
    signature_outcome(&signature)
}

/// Exit 1 when the signature was checked and failed, or a key met an unsigned package.
fn signature_outcome(signature: &SignatureState) -> Result<(), Error> {
    let failed = signature.failed();
    match failed.is_empty() {
        true => Ok(()),
        false => Err(Error::Signature {
            failed,
            refused_push: false,
        }),
    }
}

fn refused(problems: Vec<Problem>) -> Error {
    Error::Verification {
        problems,
        refused_push: false,
    }
}

/// The version of `inspect --json`'s shape, raised only when a field changes meaning or
/// goes away.
const INSPECT_SCHEMA_VERSION: u32 = 1;

/// The summary as one JSON object, with the verification's outcome when there was one.
fn write_json(
    out: &mut impl Write,
    summary: &Summary,
    verification: Option<&Scan>,
    signature: &SignatureState,
) -> std::io::Result<()> {
    let mut value = serde_json::to_value(summary).expect("the summary serializes");
    value["schemaVersion"] = INSPECT_SCHEMA_VERSION.into();
    match signature {
        SignatureState::Unsigned => {}
        SignatureState::NotVerified => {
            value["signature"] = serde_json::json!({ "signed": true, "verified": false });
        }
        SignatureState::Checked { signed, checks } => {
            value["signature"] = serde_json::json!({
                "signed": signed,
                "verified": checks.iter().all(|c| c.ok),
                "checks": checks,
            });
        }
    }
    if let Some(scan) = verification {
        value["verification"] = serde_json::json!({
            "ok": scan.problems.is_empty(),
            "files": scan.files.len(),
            "problems": scan.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        if scan.differential.is_some() {
            value["verification"]["leftOut"] = scan
                .left_out
                .iter()
                .map(|(digest, size)| serde_json::json!({ "digest": digest, "size": size }))
                .collect();
        }
    }
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}
