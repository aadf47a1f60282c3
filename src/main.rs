//! The `pkgr` binary: parse arguments, run the command, print any error once and map
//! it to the exit status (see `cli::error` for the codes).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pkgr::cli::{self, Error};

/// How long cleanup after Ctrl-C or SIGTERM may take, per stage, before the process
/// exits regardless.
const CLEANUP_GRACE: Duration = Duration::from_millis(500);

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
    let (result, signalled) = runtime.block_on(async {
        // The command runs as a task, not on this thread, so that a command stuck in a
        // blocking call (a password read from a pipe nobody writes to, a hung network
        // mount) cannot keep the signals from being seen.
        let mut command = tokio::spawn(cli::run(args));
        let signalled = tokio::select! {
            joined = &mut command => return (joined.unwrap_or_else(|source| {
                Err(Error::Internal { what: "running the command", source })
            }), false),
            _ = tokio::signal::ctrl_c() => Error::Interrupted,
            _ = terminated() => Error::Terminated,
        };
        pkgr::cancel::cancel();
        command.abort();
        // Aborting drops the command's state, which removes its staging directory and
        // partial package. A second signal, or a task that does not let go within the
        // grace period, ends the wait.
        tokio::select! {
            _ = command => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated() => {}
            _ = tokio::time::sleep(CLEANUP_GRACE) => {}
        }
        (Err(signalled), true)
    });
    // Without a signal, blocking work is waited for as usual. After one, blocking
    // threads stop at their next read and remove their temporary files on the way
    // out; one stuck in the kernel, or waiting in Store::begin for another process's
    // lock on a digest, is not waited for: the process exits and the kernel releases
    // its locks.
    if signalled {
        runtime.shutdown_timeout(CLEANUP_GRACE);
    } else {
        drop(runtime);
    }
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
