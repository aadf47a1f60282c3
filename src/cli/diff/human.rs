//! `pkgr diff`'s table for people: the two packages, one row per image added, removed
//! or changed with the blobs and bytes it adds, and a total line in which each blob
//! counts once. Every text that comes from a package is escaped before it reaches the
//! terminal.

use std::io::Write;

use crate::package::diff::{Diff, PackageSide};
use crate::package::reader::shown;
use crate::progress::human_bytes;

pub fn write(out: &mut impl Write, diff: &Diff) -> std::io::Result<()> {
    write_side(out, "old", &diff.old)?;
    write_side(out, "new", &diff.new)?;
    let esc = |text: &str| shown(text.as_bytes());
    let references: Vec<String> = diff.images.iter().map(|i| esc(&i.reference)).collect();
    let width = references
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    if diff.images.is_empty() {
        writeln!(out, "\nno image was added, removed or changed")?;
    } else {
        writeln!(
            out,
            "\n{:<7}  {:<width$}  {:>9}  {:>10}  DIGEST",
            "CHANGE", "REFERENCE", "NEW BLOBS", "ADDS"
        )?;
    }
    for (image, reference) in diff.images.iter().zip(&references) {
        let (blobs, bytes, digest) = match &image.new_digest {
            Some(digest) => (
                image.new_blobs.to_string(),
                human_bytes(image.new_bytes),
                digest,
            ),
            None => (
                "-".into(),
                "-".into(),
                image.old_digest.as_ref().expect("a side"),
            ),
        };
        writeln!(
            out,
            "{:<7}  {reference:<width$}  {blobs:>9}  {bytes:>10}  {digest}",
            image.change.to_string()
        )?;
    }
    let t = &diff.totals;
    writeln!(
        out,
        "\n{} changed, {} added, {} removed, {} unchanged; NEW adds {} blob{}, {} ({} bytes), each blob counted once",
        t.changed,
        t.added,
        t.removed,
        t.unchanged,
        t.new_blobs,
        if t.new_blobs == 1 { "" } else { "s" },
        human_bytes(t.new_bytes),
        t.new_bytes
    )
}

/// `old: pkgr package NAME VERSION (ARCH), 3 images, 12 blobs, 10.0 MiB`
fn write_side(out: &mut impl Write, label: &str, side: &PackageSide) -> std::io::Result<()> {
    let esc = |text: &str| shown(text.as_bytes());
    write!(out, "{label}: {} package {}", side.format, esc(&side.name))?;
    if let Some(version) = &side.version {
        write!(out, " {}", esc(version))?;
    }
    if let Some(arch) = &side.architecture {
        write!(out, " ({})", esc(arch))?;
    }
    writeln!(
        out,
        ", {} images, {} blobs, {}",
        side.images,
        side.blobs,
        human_bytes(side.bytes)
    )
}
