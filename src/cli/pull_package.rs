//! `pkgr pull oci://…` and `pkgr inspect oci://…`: wiring only. Settings → the
//! library's pull (the package file written again, byte for byte, and checked) or its
//! remote summary → a closing line, or the same table or JSON that `inspect` prints
//! for the file. Named apart from the library's `pull`, which pulls images.

use std::io::Write;
use std::time::Instant;

use super::error::ignore_broken_pipe;
use super::settings::{InspectPublishedSettings, PullPackageSettings};
use super::Error;
use crate::cli::args::{InspectArgs, PullPackageArgs};
use crate::progress::{human_bytes, took};
use crate::publish::{pull_package, summarize_published};

pub async fn run(args: PullPackageArgs) -> Result<(), Error> {
    let settings = PullPackageSettings::new(args)?;
    let address = settings.request.address.to_string();
    let started = Instant::now();
    // A full disk is named with the option that moves the package (and its staging).
    let places = [(settings.request.output.clone(), "--output")];
    let pulled = pull_package(settings.request, settings.reporter.as_ref())
        .await
        .map_err(|err| Error::from(err).out_of_space(&places))?;
    let mut out = std::io::stdout().lock();
    let written = writeln!(
        out,
        "pulled {address} into {} ({}, {}, as published); {}",
        pulled.path.display(),
        human_bytes(pulled.facts.size),
        pulled.facts.sha256,
        took(pulled.facts.size, started.elapsed()),
    );
    ignore_broken_pipe(written)
}

pub async fn inspect(args: InspectArgs) -> Result<(), Error> {
    let settings = InspectPublishedSettings::new(args)?;
    let reporter = crate::progress::reporter(true);
    let summary = summarize_published(
        &settings.address,
        &settings.transport,
        settings.credentials,
        reporter.as_ref(),
    )
    .await?;
    super::inspect::print(summary, settings.json, settings.key.as_ref())
}
