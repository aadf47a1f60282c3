//! `pkgr push`: wiring only. Settings → the library's push (verify the package but for
//! the blobs the target already holds, refuse it if anything is wrong, push every image
//! straight from it) → a summary line,
//! a warning per image not pushed, and the exit decision.

use std::io::Write;
use std::time::{Duration, Instant};

use super::error::{causes, ignore_broken_pipe};
use super::package_file::ensure_regular;
use super::settings::PushSettings;
use super::{Error, PushArgs};
use crate::hint::Hint;
use crate::progress::{human_bytes, took, Reporter};
use crate::push::{push_package, PushPackageError, PushReport};

pub async fn run(args: PushArgs) -> Result<(), Error> {
    // Before the settings: they may read a password from stdin, and a path that is no
    // package should be refused before that is asked for.
    ensure_regular(&args.package)?;
    let settings = PushSettings::new(args)?;
    let target = settings.request.target.to_string();
    let reporter = settings.reporter;
    let started = Instant::now();
    let report = push_package(settings.request, reporter.as_ref()).await?;
    if settings.json {
        print_json(&report, &target, started.elapsed())?;
    } else {
        print_summary(&report, &target, started.elapsed())?;
    }
    if report.failed.is_empty() {
        return Ok(());
    }
    warn_failures(&report, reporter.as_ref());
    let hint = report.failed.iter().find_map(|(_, e)| e.hint());
    Err(Error::PushFailed {
        failed: report.failed.into_iter().map(|(image, _)| image).collect(),
        hint,
    })
}

impl From<PushPackageError> for Error {
    fn from(err: PushPackageError) -> Self {
        match err {
            PushPackageError::Package(e) => Self::Package(e),
            PushPackageError::Registry(e) => Self::Registry(e),
            PushPackageError::Verification { problems } => Self::Verification {
                problems,
                refused_push: true,
            },
            missing @ PushPackageError::BaseMissing { .. } => Self::Push(missing),
            PushPackageError::Signature { failed } => Self::Signature {
                failed,
                refused_push: true,
            },
            PushPackageError::Internal(source) => Self::Internal {
                what: "verifying the package",
                source,
            },
        }
    }
}

/// The closing line: what went where, the blobs by outcome, how long, and the rate of
/// the bytes uploaded; then, if any, how many blobs the target already held, which push
/// did not read.
fn print_summary(report: &PushReport, target: &str, elapsed: Duration) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let total = report.pushed.len() + report.failed.len();
    let written = writeln!(
        out,
        "pushed {} of {total} images to {target}; blobs: {} uploaded ({}), {} skipped ({}), {} mounted ({}); {}",
        report.pushed.len(),
        report.uploaded.count,
        human_bytes(report.uploaded.bytes),
        report.skipped.count,
        human_bytes(report.skipped.bytes),
        report.mounted.count,
        human_bytes(report.mounted.bytes),
        took(report.uploaded.bytes, elapsed),
    )
    .and_then(|()| match report.not_read.count {
        0 => Ok(()),
        count => writeln!(
            out,
            "{count} blob(s) ({}) were already on the target and were not read",
            human_bytes(report.not_read.bytes)
        ),
    });
    ignore_broken_pipe(written)
}

fn print_json(report: &PushReport, target: &str, elapsed: Duration) -> Result<(), Error> {
    let document = crate::push::document(report, target, elapsed);
    let mut out = std::io::stdout().lock();
    ignore_broken_pipe(writeln!(out, "{document:#}"))
}

/// One warning per image not pushed, with every cause of its error.
fn warn_failures(report: &PushReport, reporter: &dyn Reporter) {
    for (image, err) in &report.failed {
        let mut message = format!("{image} was not pushed: {err}");
        for cause in causes(err) {
            message.push_str(": ");
            message.push_str(&cause);
        }
        reporter.warn(&message);
    }
}
