//! `pkgr push`: verify the whole package, refuse it if anything is wrong, then push
//! every image straight from the package and print a summary. Nothing is copied to
//! disk on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use super::error::{causes, ignore_broken_pipe};
use super::package_file::ensure_regular;
use super::settings::PushSettings;
use super::{Error, PushArgs};
use crate::hint::Hint;
use crate::package::reader::{classify, Known, PackageBytes};
use crate::package::scan::scan_package;
use crate::package::PackageError;
use crate::progress::human_bytes;
use crate::push::{push, Layout, PushReport};
use crate::registry::Registry;

pub async fn run(args: PushArgs) -> Result<(), Error> {
    // Before the settings: they may read a password from stdin, and a path that is no
    // package should be refused before that is asked for.
    ensure_regular(&args.package)?;
    let settings = PushSettings::new(args)?;
    push_package(settings).await
}

async fn push_package(settings: PushSettings) -> Result<(), Error> {
    let target = &settings.target;
    let reporter = settings.reporter.as_ref();

    reporter.step(&format!("verifying {}", settings.package.display()));
    let (package, scanned) = {
        let path = settings.package.clone();
        tokio::task::spawn_blocking(move || {
            let package = PackageBytes::open(&path)?;
            let scanned = scan_package(&package)?;
            Ok::<_, PackageError>((package, scanned))
        })
        .await
        .map_err(|source| Error::Internal {
            what: "verifying the package",
            source,
        })??
    };
    if !scanned.problems.is_empty() {
        return Err(Error::Verification {
            problems: scanned.problems,
            refused_push: true,
        });
    }
    let others = scanned
        .files
        .keys()
        .filter(|name| classify(name).is_ok_and(|k| k == Known::ZarfExtra))
        .count();
    if others > 0 {
        reporter.step(&format!(
            "push loads images only: the package's {others} other file(s) (components, SBOMs, signature) are not pushed"
        ));
    }
    let index = scanned.index.as_ref().ok_or(PackageError::NoIndex)?;
    let sizes = scanned
        .files
        .iter()
        .filter(|(name, _)| name.starts_with("images/blobs/"))
        .map(|(_, (digest, size))| (digest.clone(), *size))
        .collect::<BTreeMap<_, _>>();

    let registry = Registry::connect(
        &settings.transport,
        &BTreeSet::from([target.registry.clone()]),
        settings.credentials,
    )
    .await?;
    let layout = Layout {
        index,
        manifests: &scanned.manifests,
        package: &package,
        offsets: &scanned.offsets,
        sizes: &sizes,
    };
    let report = push(&registry, &layout, target, settings.concurrency, reporter).await;
    print_summary(&report, &target.to_string())?;
    if report.failed.is_empty() {
        return Ok(());
    }
    for (image, err) in &report.failed {
        let mut message = format!("{image} was not pushed: {err}");
        for cause in causes(err) {
            message.push_str(": ");
            message.push_str(&cause);
        }
        reporter.warn(&message);
    }
    let hint = report.failed.iter().find_map(|(_, e)| e.hint());
    Err(Error::PushFailed {
        failed: report.failed.into_iter().map(|(image, _)| image).collect(),
        hint,
    })
}

fn print_summary(report: &PushReport, target: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    let total = report.pushed.len() + report.failed.len();
    let written = writeln!(
        out,
        "pushed {} of {total} images to {target}; blobs: {} uploaded ({}), {} skipped ({}), {} mounted ({})",
        report.pushed.len(),
        report.uploaded.count,
        human_bytes(report.uploaded.bytes),
        report.skipped.count,
        human_bytes(report.skipped.bytes),
        report.mounted.count,
        human_bytes(report.mounted.bytes),
    );
    ignore_broken_pipe(written)
}
