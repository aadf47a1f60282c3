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
        Command::Inspect(args) => tokio::task::spawn_blocking(move || inspect::run(args))
            .await
            .unwrap_or_else(|source| {
                Err(Error::Internal {
                    what: "inspecting the package",
                    source,
                })
            }),
        Command::Diff(args) => tokio::task::spawn_blocking(move || diff::run(args))
            .await
            .unwrap_or_else(|source| {
                Err(Error::Internal {
                    what: "comparing the packages",
                    source,
                })
            }),
    }
}
