//! `pkgr inspect`: wiring only. Settings → the package's summary, read from its head,
//! and with `--verify` a scan of it all → one JSON object, or the table of `human`.
//! A published package (`oci://…`) is summarized by `pull_package` and printed by
//! [`print`], the same way.
//! A differential package's left-out blobs are listed as expected on the target.

mod human;

use std::io::Write;
use std::time::Instant;

use super::error::ignore_broken_pipe;
use super::settings::InspectSettings;
use super::{Error, InspectArgs};
use crate::package::scan::{scan, Problem, Scan};
use crate::package::summary::{summarize, Summary};

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
    let summary = match summarize(&settings.package) {
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
    let mut out = std::io::stdout().lock();
    let written = match settings.json {
        true => write_json(&mut out, &summary, verification.as_ref()),
        false => human::write(&mut out, &summary, verification.as_ref()),
    };
    ignore_broken_pipe(written)?;
    match verification {
        Some(scan) if !scan.problems.is_empty() => Err(refused(scan.problems)),
        _ => Ok(()),
    }
}

/// A summary alone, as `inspect` prints it without `--verify`: for a published
/// package, so that its table is the file's.
pub(super) fn print(summary: &Summary, json: bool) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let written = match json {
        true => write_json(&mut out, summary, None),
        false => human::write(&mut out, summary, None),
    };
    ignore_broken_pipe(written)
}

fn refused(problems: Vec<Problem>) -> Error {
    Error::Verification {
        problems,
        refused_push: false,
    }
}

/// The summary as one JSON object, with the verification's outcome when there was one.
fn write_json(
    out: &mut impl Write,
    summary: &Summary,
    verification: Option<&Scan>,
) -> std::io::Result<()> {
    let mut value = serde_json::to_value(summary).expect("the summary serializes");
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
