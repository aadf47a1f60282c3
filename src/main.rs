//! The `pkgr` binary: parse arguments, run the command, print any error once and map
//! it to the exit status (0 success, 1 failure, 2 usage).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pkgr::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = pkgr::cli::run(cli) => result,
            _ = tokio::signal::ctrl_c() => {
                pkgr::cancel::cancel();
                Err(pkgr::Error::Interrupted)
            }
        }
    });
    // Dropping the runtime waits for blocking tasks; after Ctrl-C they stop at their
    // next read and remove their temporary files on the way out.
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            if matches!(err, pkgr::Error::Interrupted) {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn report(err: &pkgr::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    for cause in pkgr::error::causes(err) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}
