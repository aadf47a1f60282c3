//! `pkgr push`: verify the whole package, refuse it if anything is wrong, then push
//! every image straight from the package and print a summary. Nothing is copied to
//! disk on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use super::error::{causes, ignore_broken_pipe};
use super::package_file::ensure_regular;
use super::settings::PushSettings;
use super::{Error, PushArgs};
use crate::hint::Hint;
use crate::package::reader::{classify, Known, PackageBytes};
use crate::package::scan::{head, scan_package, Head};
use crate::package::PackageError;
use crate::progress::human_bytes;
use crate::push::{ask_early, push, Layout, Present, PushReport};
use crate::registry::Registry;

pub async fn run(args: PushArgs) -> Result<(), Error> {
    // Before the settings: they may read a password from stdin, and a path that is no
    // package should be refused before that is asked for.
    ensure_regular(&args.package)?;
    let settings = PushSettings::new(args)?;
    push_package(settings).await
}

async fn push_package(mut settings: PushSettings) -> Result<(), Error> {
    let credentials = std::mem::take(&mut settings.credentials);
    let target = &settings.target;
    let reporter = settings.reporter.as_ref();

    reporter.step(&format!("verifying {}", settings.package.display()));
    let package = {
        let path = settings.package.clone();
        Arc::new(blocking(move || PackageBytes::open(&path).map_err(PackageError::from)).await?)
    };
    let verified = {
        let package = package.clone();
        blocking(move || scan_package(&package))
    };
    // While the package is verified: connect, and ask the registry what it already
    // has of what the package's (still unverified) head says it needs. No content is
    // sent before the package verifies.
    let asked = async {
        let registry = Registry::connect(
            &settings.transport,
            &BTreeSet::from([target.registry.clone()]),
            credentials,
        )
        .await?;
        let mut present = Present::default();
        if package.is_random_access() {
            let head = {
                let package = package.clone();
                blocking(move || head(&package)).await
            };
            if let Ok(Head {
                index: Some(index),
                manifests,
            }) = head
            {
                present =
                    ask_early(&registry, &index, &manifests, target, settings.concurrency).await;
            }
        }
        Ok::<_, Error>((registry, present))
    };
    // A package that fails verification is the error, at once, whatever the registry
    // says or has yet to say.
    tokio::pin!(verified, asked);
    let mut answered = None;
    let scanned = loop {
        tokio::select! {
            scanned = &mut verified => break scanned?,
            connected = &mut asked, if answered.is_none() => answered = Some(connected),
        }
    };
    if !scanned.problems.is_empty() {
        return Err(Error::Verification {
            problems: scanned.problems,
            refused_push: true,
        });
    }
    let (registry, present) = match answered {
        Some(connected) => connected?,
        None => asked.await?,
    };
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

    let layout = Layout {
        index,
        manifests: &scanned.manifests,
        package: &package,
        offsets: &scanned.offsets,
        sizes: &sizes,
    };
    let report = push(
        &registry,
        &layout,
        target,
        settings.concurrency,
        reporter,
        present,
    )
    .await;
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

/// Runs blocking package work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PackageError> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| Error::Internal {
            what: "verifying the package",
            source,
        })?
        .map_err(Error::from)
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
