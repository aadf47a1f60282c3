//! Shell completions and man pages, drawn from clap's own description of the command
//! line, so that they can never disagree with `--help`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;
use super::Error;

/// Writes the completion script for `shell` to standard output.
pub fn completions(shell: Shell) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pkgr", &mut script);
    let mut stdout = io::stdout().lock();
    // A reader that stops early (`| head`) is not an error.
    let _ = stdout.write_all(&script).and_then(|()| stdout.flush());
    Ok(())
}

/// Writes a man page for pkgr and one for each of its commands (`pkgr-create.1`,
/// `pkgr-cache-prune.1`, …) into `dir`, creating it if needed, and prints each path.
pub fn man_pages(dir: &Path) -> Result<(), Error> {
    let failed = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Built, so that each subcommand knows its full name (`pkgr-cache-prune`).
    cli.build();
    let mut written = Vec::new();
    write_pages(cli, dir, &mut written).map_err(failed)?;
    written.sort();
    let mut stdout = io::stdout().lock();
    for page in written {
        let _ = writeln!(stdout, "{}", page.display());
    }
    Ok(())
}

fn write_pages(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    written.push(clap_mangen::Man::new(command).generate_to(dir)?);
    Ok(())
}
