//! The command line, the edge of the program: the process around a command (`entry`:
//! runtime, signals, exit status), clap's view of the arguments (`args`, first stage),
//! the settings built from them (`settings`, second stage), the top-level error with its
//! exit codes (`error`), one module per command (`serve` keeps its arguments beside its
//! wiring; `pull_package` is `pkgr pull` and `inspect oci://…`, named apart from the
//! library's image `pull`), and the completions and man pages drawn from the same
//! definition (`generate`).

pub mod args;
pub mod cache;
pub mod create;
pub mod diff;
mod entry;
pub mod error;
pub mod generate;
pub mod inspect;
pub mod package_file;
pub mod publish;
pub mod pull_package;
pub mod push;
pub mod serve;
pub mod settings;
pub mod verify;

pub use args::{
    CacheArgs, CacheCommand, Cli, Command, CreateArgs, DiffArgs, InspectArgs, PushArgs,
    TransportArgs, VerifyArgs,
};
pub use entry::main;
pub use error::Error;

pub async fn run(cli: Cli) -> Result<(), Error> {
    if cli.verbose {
        crate::registry::request_log::enable();
        // Bars redrawn between log lines would garble both.
        crate::progress::set_mode(crate::progress::Mode::Lines);
    }
    let colour = crate::progress::colour_wanted(cli.color, std::env::var_os("NO_COLOR").as_deref());
    if !colour {
        crate::progress::set_mode(crate::progress::Mode::Lines);
    }
    if cli.quiet {
        crate::progress::set_mode(crate::progress::Mode::Quiet);
    }
    match cli.command {
        Command::Create(args) => create::run(args).await,
        Command::Push(args) => push::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Cache(args) => cache::run(args).await,
        Command::Completions { shell } => generate::completions(shell),
        Command::ManPages { dir } => generate::man_pages(&dir),
        Command::Publish(args) => publish::run(args).await,
        Command::Pull(args) => pull_package::run(args).await,
        Command::Inspect(args) if crate::publish::is_address(args.package.as_os_str()) => {
            pull_package::inspect(args).await
        }
        Command::Inspect(args) => blocking("inspecting the package", || inspect::run(args)).await,
        Command::Diff(args) => blocking("comparing the packages", || diff::run(args)).await,
        Command::Verify(args) => blocking("verifying the package", || verify::run(args)).await,
    }
}

/// A command, or a step of one, that reads files without awaiting anything, run on a
/// blocking thread.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    run: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(run)
        .await
        .unwrap_or_else(|source| Err(Error::Internal { what, source }))
}
