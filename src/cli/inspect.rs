//! `pkgr inspect`: what a package holds, from its head; `--verify` reads it all.

use std::io::Write;

use super::error::ignore_broken_pipe;
use super::package_file::ensure_regular;
use super::{Error, InspectArgs};
use crate::package::reader::shown;
use crate::package::scan::scan;
use crate::package::summary::{summarize, OtherKind, Summary};
use crate::progress::human_bytes;

pub fn run(args: InspectArgs) -> Result<(), Error> {
    ensure_regular(&args.package)?;
    let verification = if args.verify {
        Some(scan(&args.package)?)
    } else {
        None
    };
    let summary = match summarize(&args.package) {
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
            return Err(Error::Verification {
                problems,
                refused_push: false,
            });
        }
        Err(err) => return Err(err.into()),
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut value = serde_json::to_value(&summary).expect("the summary serializes");
        if let Some(scan) = &verification {
            value["verification"] = serde_json::json!({
                "ok": scan.problems.is_empty(),
                "files": scan.files.len(),
                "problems": scan.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
        }
        serde_json::to_writer_pretty(&mut out, &value)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        print_human(&mut out, &summary).and_then(|()| match &verification {
            Some(scan) if scan.problems.is_empty() => writeln!(
                out,
                "\nverified: {} files; every checksum and every blob digest matches",
                scan.files.len()
            ),
            Some(scan) => {
                writeln!(out, "\nverification failed:")?;
                for problem in &scan.problems {
                    writeln!(out, "  {problem}")?;
                }
                Ok(())
            }
            None => Ok(()),
        })
    };
    ignore_broken_pipe(written)?;
    match verification {
        Some(scan) if !scan.problems.is_empty() => Err(Error::Verification {
            problems: scan.problems,
            refused_push: false,
        }),
        _ => Ok(()),
    }
}

fn print_human(out: &mut impl Write, summary: &Summary) -> std::io::Result<()> {
    // Everything below but the numbers and digests comes from the package, which may
    // have been written to move the cursor or recolour the terminal.
    let esc = |text: &str| shown(text.as_bytes());
    let meta = &summary.metadata;
    write!(out, "{} package {}", summary.format, esc(&meta.name))?;
    if let Some(version) = &meta.version {
        write!(out, " {}", esc(version))?;
    }
    if let Some(arch) = &meta.architecture {
        write!(out, " ({})", esc(arch))?;
    }
    writeln!(out)?;
    if let Some(description) = &meta.description {
        writeln!(out, "  {}", esc(description))?;
    }
    writeln!(out, "\ncomponents:")?;
    for component in &summary.components {
        let n = component.images.len();
        writeln!(
            out,
            "  {} ({n} image{})",
            esc(&component.name),
            if n == 1 { "" } else { "s" }
        )?;
    }
    let rows: Vec<(String, String)> = summary
        .images
        .iter()
        .map(|i| (esc(&i.reference), esc(i.platform.as_deref().unwrap_or("-"))))
        .collect();
    let width = rows
        .iter()
        .map(|(reference, _)| reference.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    writeln!(
        out,
        "\n{:<width$}  {:<15}  {:<14}  {:>10}  DIGEST",
        "REFERENCE", "KIND", "PLATFORM", "SIZE"
    )?;
    for (image, (reference, platform)) in summary.images.iter().zip(&rows) {
        writeln!(
            out,
            "{:<width$}  {:<15}  {:<14}  {:>10}  {}",
            reference,
            image.kind.to_string(),
            platform,
            human_bytes(image.size),
            image.digest
        )?;
    }
    let signed = summary.signed();
    if !signed.is_empty() {
        writeln!(
            out,
            "\nsigned or attested (artifacts listed above, linked by digest):"
        )?;
        for (subject, relations) in &signed {
            writeln!(out, "  {}  {}", esc(subject), esc(&relations.join(", ")))?;
        }
    }
    if !summary.other_files.is_empty() {
        writeln!(out, "\nother files (verified, never pushed):")?;
        for file in &summary.other_files {
            let note = match file.kind {
                OtherKind::Component => "component",
                OtherKind::Sboms => "SBOMs",
                OtherKind::Signature => "signature present, not verified",
            };
            writeln!(
                out,
                "  {:<40}  {:>10}  {note}",
                esc(&file.name),
                human_bytes(file.size)
            )?;
        }
    }
    let totals = &summary.totals;
    writeln!(
        out,
        "\n{} images, {} blobs, {}; {} shared between images",
        totals.images,
        totals.blobs,
        human_bytes(totals.bytes),
        human_bytes(totals.shared_bytes)
    )
}
