//! `pkgr diff`: wiring only. Settings → the comparison of the two packages' heads →
//! one JSON document, or the table of `human`.

mod human;

use std::io::Write;

use super::error::ignore_broken_pipe;
use super::settings::DiffSettings;
use super::{DiffArgs, Error};
use crate::package::diff::{diff, Diff};

pub fn run(args: DiffArgs) -> Result<(), Error> {
    let settings = DiffSettings::new(args)?;
    let compared = diff(&settings.old, &settings.new)?;
    let mut out = std::io::stdout().lock();
    let written = match settings.json {
        true => write_json(&mut out, &compared),
        false => human::write(&mut out, &compared),
    };
    ignore_broken_pipe(written)
}

fn write_json(out: &mut impl Write, compared: &Diff) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, compared)?;
    writeln!(out)
}
