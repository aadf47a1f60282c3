//! The command line, the edge of the program: clap's view of the arguments (`args`,
//! first stage), the settings built from them (`settings`, second stage), the top-level
//! error with its exit codes (`error`), and one module per command.

pub mod args;
pub mod cache;
pub mod create;
pub mod diff;
pub mod error;
pub mod inspect;
pub mod package_file;
pub mod push;
pub mod settings;

pub use args::{
    CacheArgs, CacheCommand, Cli, Command, CreateArgs, DiffArgs, InspectArgs, PushArgs,
    TransportArgs,
};
pub use error::Error;

pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Create(args) => create::run(args).await,
        Command::Push(args) => push::run(args).await,
        Command::Cache(args) => cache::run(args).await,
        Command::Inspect(args) => blocking("inspecting the package", || inspect::run(args)).await,
        Command::Diff(args) => blocking("comparing the packages", || diff::run(args)).await,
    }
}

/// A command that reads files without awaiting anything, run on a blocking thread.
async fn blocking(
    what: &'static str,
    run: impl FnOnce() -> Result<(), Error> + Send + 'static,
) -> Result<(), Error> {
    tokio::task::spawn_blocking(run)
        .await
        .unwrap_or_else(|source| Err(Error::Internal { what, source }))
}
