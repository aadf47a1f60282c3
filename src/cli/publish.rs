//! `pkgr publish`: wiring only. Settings → the library's publish (verify the whole
//! package, then send its files as one artifact) → a summary line or `--json`.

use std::io::Write;
use std::time::{Duration, Instant};

use super::error::ignore_broken_pipe;
use super::package_file::ensure_regular;
use super::settings::PublishSettings;
use super::Error;
use crate::cli::args::PublishArgs;
use crate::progress::{human_bytes, took};
use crate::publish::{publish_package, PublishError, PublishReport};

/// Raised only when a field of `--json` changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

pub async fn run(args: PublishArgs) -> Result<(), Error> {
    // Before the settings: they may read a password from stdin.
    ensure_regular(&args.package)?;
    let settings = PublishSettings::new(args)?;
    let started = Instant::now();
    let report = publish_package(settings.request, settings.reporter.as_ref()).await?;
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    let written = match settings.json {
        true => writeln!(out, "{:#}", document(&report, elapsed)),
        false => writeln!(out, "{}", summary_line(&report, elapsed)),
    };
    ignore_broken_pipe(written)
}

impl From<PublishError> for Error {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Verification { problems } => Self::Verification {
                problems,
                refused_push: true,
            },
            PublishError::Package(e) => Self::Package(e),
            PublishError::Registry(e) => Self::Registry(e),
            other => Self::Publish(other),
        }
    }
}

fn summary_line(report: &PublishReport, elapsed: Duration) -> String {
    format!(
        "published {} ({} files) to {} ({}); blobs: {} uploaded ({}), {} skipped ({}), {} mounted ({}); {}",
        report.facts.file_name,
        report.files,
        report.address,
        report.digest,
        report.uploaded.count,
        human_bytes(report.uploaded.bytes),
        report.skipped.count,
        human_bytes(report.skipped.bytes),
        report.mounted.count,
        human_bytes(report.mounted.bytes),
        took(report.uploaded.bytes, elapsed),
    )
}

fn document(report: &PublishReport, elapsed: Duration) -> serde_json::Value {
    let tally = |t: &crate::push::Tally| serde_json::json!({ "blobs": t.count, "bytes": t.bytes });
    serde_json::json!({
        "schemaVersion": SCHEMA_VERSION,
        "address": report.address.to_string(),
        "digest": report.digest,
        "package": {
            "file": report.facts.file_name,
            "sha256": report.facts.sha256,
            "bytes": report.facts.size,
            "files": report.files,
        },
        "uploaded": tally(&report.uploaded),
        "skipped": tally(&report.skipped),
        "mounted": tally(&report.mounted),
        "seconds": elapsed.as_secs_f64(),
    })
}
