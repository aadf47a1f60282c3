//! `pkgr push`: verify the whole package into a temporary store, refuse it if anything
//! is wrong, then push every image and print a summary.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use super::PushArgs;
use crate::package::scan::scan;
use crate::progress::{self, human_bytes};
use crate::push::{push, Layout, PushReport};
use crate::registry::{Credentials, Registry, RegistryError};
use crate::store::Store;
use crate::Error;

pub async fn run(args: PushArgs) -> Result<(), Error> {
    let target = &args.target;
    let credentials = credentials(&args)?;
    let reporter = progress::reporter(args.no_progress);

    // The verified copy needs as much room as the package's blobs.
    let work_root = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("pkgr-push-")
        .tempdir_in(&work_root)
        .map_err(|source| Error::Output {
            path: work_root.clone(),
            source,
        })?;
    let store = Store::at(work.path().join("blobs"), work.path().join("ingest"))?;
    reporter.step(&format!("verifying {}", args.package.display()));
    let scanned = {
        let (package, store) = (args.package.clone(), store.clone());
        tokio::task::spawn_blocking(move || scan(&package, Some(&store)))
            .await
            .expect("the scan does not panic")?
    };
    if !scanned.problems.is_empty() {
        return Err(Error::Verification {
            problems: scanned.problems,
            refused_push: true,
        });
    }
    let index = scanned.index.as_ref().ok_or_else(|| Error::BadPackage {
        message: "it has no images/index.json".into(),
    })?;
    let sizes = scanned
        .files
        .iter()
        .filter(|(name, _)| name.starts_with("images/blobs/"))
        .map(|(_, (digest, size))| (digest.clone(), *size))
        .collect::<BTreeMap<_, _>>();

    let registry = Registry::connect(
        &args.transport.transport(),
        &BTreeSet::from([target.registry.clone()]),
        credentials,
    )
    .await?;
    let layout = Layout {
        index,
        manifests: &scanned.manifests,
        blobs: &store,
        sizes: &sizes,
    };
    let report = push(
        &registry,
        &layout,
        target,
        usize::from(args.concurrency),
        reporter.as_ref(),
    )
    .await;
    print_summary(&report, &target.to_string())?;
    if report.failed.is_empty() {
        Ok(())
    } else {
        for (image, err) in &report.failed {
            let mut message = format!("{image} was not pushed: {err}");
            for cause in crate::error::causes(err) {
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
}

fn credentials(args: &PushArgs) -> Result<Credentials, Error> {
    let from_config = Credentials::from_docker_config().map_err(RegistryError::from)?;
    match (&args.username, args.password_stdin) {
        (Some(user), true) => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|source| Error::Output {
                    path: "stdin".into(),
                    source,
                })?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            Ok(from_config.with_explicit(user.clone(), password))
        }
        _ => Ok(from_config),
    }
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
    super::ignore_broken_pipe(written)
}
