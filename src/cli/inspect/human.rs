//! `pkgr inspect`'s table for people: the package's metadata, components, images (with
//! their platform, size and digest), the platforms taken from indexes (each with the
//! index's digest), what is signed or attested, the other files, the totals, and the
//! outcome of `--verify` (with its closing line on stderr); for a differential
//! package, its base and what it leaves out (with `--verify`, each blob expected on
//! the target). Every text that comes from the package is escaped before it reaches
//! the terminal.

use std::io::Write;
use std::time::Duration;

use crate::package::reader::shown;
use crate::package::scan::Scan;
use crate::package::summary::{OtherKind, Summary};

use super::SignatureState;
use crate::progress::{human_bytes, took};

/// The summary, then the verification's outcome when there was one.
pub fn write(
    out: &mut impl Write,
    summary: &Summary,
    verification: Option<&Scan>,
    signature: &SignatureState,
) -> std::io::Result<()> {
    write_summary(out, summary, signature)?;
    write_signature(out, signature, verification.is_some())?;
    match verification {
        Some(scan) if scan.problems.is_empty() => {
            writeln!(
                out,
                "\nverified: {} files; every checksum and every blob digest matches",
                scan.files.len()
            )?;
            write_left_out(out, scan)
        }
        Some(scan) => {
            writeln!(out, "\nverification failed:")?;
            for problem in &scan.problems {
                writeln!(out, "  {problem}")?;
            }
            Ok(())
        }
        None => Ok(()),
    }
}

/// What a verified differential package leaves out: expected on the target, not missing.
fn write_left_out(out: &mut impl Write, scan: &Scan) -> std::io::Result<()> {
    if scan.differential.is_none() {
        return Ok(());
    }
    let bytes = scan
        .left_out
        .values()
        .fold(0u64, |a, b| a.saturating_add(*b));
    writeln!(
        out,
        "left out, expected on the target (the base holds them): {} blobs, {}",
        scan.left_out.len(),
        human_bytes(bytes)
    )?;
    for (digest, size) in &scan.left_out {
        writeln!(out, "  {digest}  {:>10}", human_bytes(*size))?;
    }
    Ok(())
}

/// The package's signature, when it has one or a key was given. Without `--verify`,
/// a signature that holds says nothing of the bytes it covers: the line says so.
fn write_signature(
    out: &mut impl Write,
    signature: &SignatureState,
    contents_checked: bool,
) -> std::io::Result<()> {
    let checks = match signature {
        SignatureState::Unsigned => return Ok(()),
        SignatureState::NotVerified => {
            return writeln!(out, "\nsignature: signed, not verified (pass --key)")
        }
        SignatureState::Checked { checks, .. } => checks,
    };
    match (checks.iter().all(|check| check.ok), contents_checked) {
        (true, true) => writeln!(out, "\nsignature: verified with the key")?,
        (true, false) => writeln!(
            out,
            "\nsignature: verified with the key (the files it covers are re-hashed by --verify)"
        )?,
        (false, _) => writeln!(out, "\nsignature: does not verify")?,
    }
    for check in checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        // Details may quote the package (a bundle's parse error).
        let detail = shown(check.detail.as_bytes());
        writeln!(out, "  {mark}  {}: {detail}", check.check)?;
    }
    Ok(())
}

fn write_summary(
    out: &mut impl Write,
    summary: &Summary,
    signature: &SignatureState,
) -> std::io::Result<()> {
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
    if let Some(differential) = &summary.differential {
        let base = &differential.base;
        let version = base.version.as_deref().map(esc);
        writeln!(
            out,
            "differential against {}{} ({}): {} blobs, {} left out",
            esc(&base.name),
            version.map(|v| format!(" {v}")).unwrap_or_default(),
            base.sha256,
            differential.left_out_blobs,
            human_bytes(differential.left_out_bytes)
        )?;
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
    let from_indexes: Vec<_> = summary
        .images
        .iter()
        .zip(&rows)
        .filter_map(|(image, row)| Some((image.from_index.as_deref()?, row)))
        .collect();
    if !from_indexes.is_empty() {
        writeln!(out, "\nplatforms taken from indexes:")?;
        for (index, (reference, platform)) in from_indexes {
            writeln!(
                out,
                "  {reference:<width$}  {platform} from index {}",
                esc(index)
            )?;
        }
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
                OtherKind::Signature if verified_file(signature, &file.name) => {
                    "signature, verified with the key"
                }
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

/// Whether `name`, a signature file, was checked with the key and every check held.
fn verified_file(signature: &SignatureState, name: &str) -> bool {
    let SignatureState::Checked { checks, .. } = signature else {
        return false;
    };
    checks.iter().all(|check| check.ok)
        && checks
            .iter()
            .any(|check| check.check == format!("signature {name}"))
}

/// The closing line of `--verify`, on stderr so that the table and the JSON stay as
/// they are: how many files, how many bytes, how long, the rate.
pub fn say_verified(scan: &Scan, elapsed: Duration) {
    if crate::progress::is_quiet() {
        return;
    }
    let bytes = scan
        .files
        .values()
        .fold(0u64, |a, (_, size)| a.saturating_add(*size));
    let outcome = match scan.problems.len() {
        0 => "no problem".to_owned(),
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "verified {} files ({}) {}: {outcome}",
        scan.files.len(),
        human_bytes(bytes),
        took(bytes, elapsed)
    );
}
