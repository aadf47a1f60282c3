//! `pkgr serve`: its arguments and wiring only. The package is checked to be a file,
//! read (all of it under `--verify`), the address bound, one line says where it is
//! served, then the library's server runs until Ctrl-C or SIGTERM, which are serve's
//! normal end: it stops answering, says so, and exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::package_file::ensure_regular;
use super::Error;
use crate::reference::Target;
use crate::serve::{bind, ServeError, ServeRequest};

pub const SERVE_EXAMPLES: &str = "\
Examples:
  pkgr serve pkgr-package-demo-amd64.tar.zst              # at http://127.0.0.1:5000
  pkgr serve package.tar.zst --listen 0.0.0.0:5000 --verify
  pkgr serve package.tar.zst --tls-cert cert.pem --tls-key key.pem --prefix mirror";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The package (.tar.zst or .tar, or a split package's part000; pkgr or Zarf)
    pub package: PathBuf,

    /// The address to listen on; port 0 lets the system pick one (the line printed at
    /// start names it)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,

    /// Put PREFIX before every repository name, as `push REGISTRY/PREFIX` does
    #[arg(long, value_name = "PREFIX", value_parser = parse_prefix)]
    pub prefix: Option<String>,

    /// Verify the whole package before serving (refuse to start if it is damaged);
    /// otherwise serve listens at once and verifies every blob in the background, or on
    /// its first request if that comes sooner
    #[arg(long)]
    pub verify: bool,

    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A prefix is a repository path: lowercase components joined by `/`.
fn parse_prefix(text: &str) -> Result<String, String> {
    match Target::parse(&format!("serve/{text}")) {
        Ok(Target {
            prefix: Some(prefix),
            ..
        }) if !text.starts_with('/') => Ok(prefix),
        _ => Err(format!(
            "`{text}` is not a repository prefix (lowercase letters, digits, '.', '_', '-', joined by '/')"
        )),
    }
}

pub async fn run(args: ServeArgs) -> Result<(), Error> {
    ensure_regular(&args.package)?;
    let shown = args.package.display().to_string();
    let request = ServeRequest {
        package: args.package,
        listen: args.listen,
        prefix: args.prefix,
        verify: args.verify,
        tls: args.tls_cert.zip(args.tls_key),
        log_requests: !crate::progress::is_quiet(),
    };
    // One listener for the whole run, from before the package is read: a signal during
    // a long `--verify` scan ends serve as well as one while it serves.
    let mut stop = std::pin::pin!(crate::cancel::stop_signal());
    let bound = tokio::select! {
        bound = bind(request) => bound.map_err(|err| match err {
            ServeError::Package(e) => Error::Package(e),
            other => Error::Serve(other),
        })?,
        signal = &mut stop => {
            stopped(&shown, signal);
            return Ok(());
        }
    };
    let addr = bound.addr().map_err(|source| Error::Io {
        path: PathBuf::from(&shown),
        source,
    })?;
    for left_out in &bound.contents().left_out {
        eprintln!("warning: not served: {left_out}");
    }
    // Always said, even under -q: it is the one place the chosen port is told.
    eprintln!("serving {shown} at {}://{addr}", bound.scheme());
    let signal = tokio::select! {
        () = bound.run() => return Ok(()),
        signal = &mut stop => signal,
    };
    stopped(&shown, signal);
    Ok(())
}

/// Serve's normal end: blocking readers (a blob streaming, a `--verify` scan) stop at
/// their next read, and one line says why serve stopped.
fn stopped(shown: &str, signal: crate::cancel::StopSignal) {
    crate::cancel::cancel();
    eprintln!("stopped serving {shown} ({signal})");
}
