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
            _ = terminated() => {
                pkgr::cancel::cancel();
                Err(Error::Terminated)
            }
        }
    });
    // Dropping the runtime waits for blocking tasks; after a signal they stop at their
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

/// Resolves on SIGTERM, which service managers and `timeout` send: it must clean up
/// like Ctrl-C rather than die with a half-written package and staging left behind.
#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        // Without a handler SIGTERM keeps its default action; that is no reason to
        // refuse to run.
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}
