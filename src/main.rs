//! The `pkgr` binary: parse arguments, run the command, print any error once and map
//! it to the exit status (see `cli::error` for the codes).

use std::process::ExitCode;

use clap::Parser;
use pkgr::cli::{self, Error};

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(cli::error::EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = cli::run(args) => result,
            _ = tokio::signal::ctrl_c() => {
                pkgr::cancel::cancel();
                Err(Error::Interrupted)
            }
        }
    });
    // Dropping the runtime waits for blocking tasks; after Ctrl-C they stop at their
    // next read and remove their temporary files on the way out. A thread waiting in
    // Store::begin for another process's lock on a digest waits that out first.
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            cli::error::report(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
