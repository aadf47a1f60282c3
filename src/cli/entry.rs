//! The process around a command: the async runtime, the signals (Ctrl-C and SIGTERM
//! stop every command but `serve`, which takes them as its normal end), the one error
//! report and the exit status (see `error` for the codes). It lives in the library,
//! not in `main.rs`: a binary compiles again, in its own crate, whatever of the
//! library's generic code it instantiates (the runtime, the task that runs the
//! command, clap's parser), and with this code in `main.rs` the release build spent
//! 21.5 s on the binary after 51.3 s on the library; now it spends 57.5 s on the
//! library and under half a second on the binary.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use super::{error, run, Cli, Error};
use crate::cancel::{self, StopSignal};

/// How long cleanup after Ctrl-C or SIGTERM may take, per stage, before the process
/// exits regardless.
const CLEANUP_GRACE: Duration = Duration::from_millis(500);

/// The whole process: parse the arguments, run the command on a runtime of its own,
/// print any error once and give the exit status.
pub fn main() -> ExitCode {
    let args = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    // serve treats a stop signal as its normal end; every other command is stopped by one.
    let stops_itself = args.stops_itself_on_signal();
    let (result, leave_blocking_work) = runtime.block_on(async {
        // The command runs as a task, not on this thread, so that a command stuck in a
        // blocking call (a password read from a pipe nobody writes to, a hung network
        // mount) cannot keep the signals from being seen.
        let mut command = tokio::spawn(run(args));
        let joined = |joined: Result<_, _>| {
            joined.unwrap_or_else(|source| {
                Err(Error::Internal {
                    what: "running the command",
                    source,
                })
            })
        };
        // serve's blocking readers are told to stop when it ends; none is worth waiting
        // for past the grace period.
        if stops_itself {
            return (joined((&mut command).await), true);
        }
        let signalled = tokio::select! {
            result = &mut command => return (joined(result), false),
            signal = cancel::stop_signal() => match signal {
                StopSignal::Interrupt => Error::Interrupted,
                StopSignal::Terminate => Error::Terminated,
            },
        };
        cancel::cancel();
        command.abort();
        // Aborting drops the command's state, which removes its staging directory and
        // partial package. A second signal, or a task that does not let go within the
        // grace period, ends the wait.
        tokio::select! {
            _ = command => {}
            _ = cancel::stop_signal() => {}
            _ = tokio::time::sleep(CLEANUP_GRACE) => {}
        }
        (Err(signalled), true)
    });
    // Without a signal, blocking work is waited for as usual. After one, blocking
    // threads stop at their next read and remove their temporary files on the way
    // out; one stuck in the kernel, or waiting in Store::begin for another process's
    // lock on a digest, is not waited for: the process exits and the kernel releases
    // its locks.
    if leave_blocking_work {
        runtime.shutdown_timeout(CLEANUP_GRACE);
    } else {
        drop(runtime);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error::report(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
