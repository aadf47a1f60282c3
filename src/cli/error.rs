//! The error a command ends with, at the edge: each library error as it came, plus the
//! failures only the command line knows (verification refused, images not pushed,
//! Ctrl-C, SIGTERM). Here alone are exit codes decided and hints gathered for printing;
//! `hints` turns the fixes library errors suggest into words.

mod hints;

use std::io::Write;
use std::path::PathBuf;

use crate::definition::DefinitionError;
use crate::digest::Digest;
use crate::hint::{Fix, Hint};
use crate::package::diff::DiffError;
use crate::package::scan::Problem;
use crate::package::PackageError;
use crate::pull::PullError;
use crate::registry::RegistryError;
use crate::store::{CacheError, StoreError};

/// Exit statuses, in one place: clap exits with 2 on a usage error by itself.
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;
/// 128 + SIGTERM, as a shell reports a process that SIGTERM killed.
pub const EXIT_TERMINATED: u8 = 143;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Base(#[from] crate::package::base::BaseError),
    /// A push refused for a reason of its own (a differential package's base missing
    /// from the target); nothing was sent.
    #[error(transparent)]
    Push(crate::push::PushPackageError),
    /// `pkgr serve` did not start.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),

    /// A publish, a pull or an inspect of a published package; a package that failed
    /// verification is `Verification` instead.
    #[error(transparent)]
    Publish(crate::publish::PublishError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    ImageKey(#[from] crate::image_trust::KeyError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{} damaged blob(s) in the cache {} were removed", damaged.len(), root.display())]
    DamagedBlobs { root: PathBuf, damaged: Vec<Digest> },
    #[error("the package failed verification: {}", describe(problems))]
    Verification {
        problems: Vec<Problem>,
        /// Whether push refused the package (so nothing was sent).
        refused_push: bool,
    },
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// A package signature that does not verify, or a key given for an unsigned
    /// package: the first failed check says which.
    #[error("{}", describe_signature(failed))]
    Signature {
        failed: Vec<crate::package::signature::Check>,
        /// Whether push refused the package (so nothing was sent).
        refused_push: bool,
    },
    /// `verify` found at least one check failing; its lines say which.
    #[error("the package failed {failed} of {checks} checks")]
    VerifyFailed { failed: usize, checks: usize },
    #[error("cannot use {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} image(s) failed to push: {}", failed.len(), failed.join(", "))]
    PushFailed {
        failed: Vec<String>,
        hint: Option<Fix>,
    },
    #[error("{} is not a regular file (it is {kind})", path.display())]
    NotARegularFile { path: PathBuf, kind: &'static str },
    /// A write found its filesystem full; `flag` is the option that moves the
    /// directory it was writing in.
    #[error(
        "no space left on device while writing {} (the filesystem at {} is full)",
        path.display(),
        filesystem.display()
    )]
    NoSpace {
        path: PathBuf,
        filesystem: PathBuf,
        flag: Option<&'static str>,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("terminated")]
    Terminated,
    /// A worker thread panicked: a bug in pkgr, never the user's doing.
    #[error("internal error while {what}")]
    Internal {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

fn describe(problems: &[Problem]) -> String {
    match problems {
        [] => "no problem recorded".to_owned(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

fn describe_signature(failed: &[crate::package::signature::Check]) -> String {
    match failed.first() {
        Some(check) => format!("the package signature does not verify: {}", check.detail),
        None => "the package signature does not verify".to_owned(),
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Interrupted => EXIT_INTERRUPTED,
            Self::Terminated => EXIT_TERMINATED,
            _ => EXIT_FAILURE,
        }
    }

    /// The path being written when its filesystem filled up, if that is what failed,
    /// however deep in the library's errors.
    fn no_space(&self) -> Option<&std::path::Path> {
        match self {
            Self::Pull(e) => e.no_space(),
            Self::Package(e) => e.no_space(),
            Self::Store(e) => e.no_space(),
            Self::Cache(e) => e.no_space(),
            Self::Publish(e) => e.no_space(),
            Self::Io { path, source } if crate::space::is_out_of_space(source) => Some(path),
            _ => None,
        }
    }

    /// A full disk, wherever it was met, becomes one sentence naming the path and its
    /// filesystem; `places` pairs the directories a command writes in with the option
    /// that moves each, for the hint. Any other error is returned as it is.
    pub fn out_of_space(self, places: &[(PathBuf, &'static str)]) -> Self {
        let Some(path) = self.no_space() else {
            return self;
        };
        let flag = places
            .iter()
            .find(|(dir, _)| path.starts_with(dir))
            .map(|&(_, flag)| flag);
        Self::NoSpace {
            filesystem: crate::space::filesystem_of(path),
            path: path.to_owned(),
            flag,
        }
    }

    /// The hint line's text: the library's fix in words, or the command line's own.
    pub fn hint(&self) -> Option<String> {
        let fix = match self {
            Self::Definition(e) => e.hint(),
            Self::Pull(e) => e.hint(),
            Self::Registry(e) => e.hint(),
            Self::Package(e) => e.hint(),
            Self::Diff(e) => e.hint(),
            Self::Base(e) => e.hint(),
            Self::Cache(e) => e.hint(),
            Self::Publish(e) => e.hint(),
            Self::PushFailed { hint, .. } => hint.clone(),
            Self::Internal { .. } => Some(Fix::ReportBug),
            _ => return self.own_hint(),
        };
        fix.as_ref().map(hints::words)
    }

    /// The hints of the failures only the command line knows.
    fn own_hint(&self) -> Option<String> {
        match self {
            Self::DamagedBlobs { .. } => {
                Some("the next pkgr create fetches them again from their registries".into())
            }
            Self::NoSpace {
                filesystem, flag, ..
            } => Some(match flag {
                Some(flag) => format!(
                    "free some space on {}, or pass {flag} a directory on a filesystem with more room",
                    filesystem.display()
                ),
                None => format!("free some space on {}", filesystem.display()),
            }),
            Self::Signature {
                refused_push: true, ..
            } => Some("nothing was pushed".into()),
            Self::Verification {
                refused_push: true, ..
            } => Some(
                "the package was changed or damaged after it was built; nothing was pushed".into(),
            ),
            _ => None,
        }
    }
}

/// Prints an error once: its sentence, each distinct cause, and a hint.
pub fn report(err: &Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", printable(&err.to_string(), usize::MAX));
    for cause in causes(err) {
        let _ = writeln!(
            stderr,
            "  caused by: {}",
            printable(&cause, MAX_CAUSE_CHARS)
        );
    }
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "hint: {}", printable(&hint.to_string(), usize::MAX));
    }
}

/// Characters of one cause shown: causes may quote a registry's error body.
const MAX_CAUSE_CHARS: usize = 500;

/// `text` with control characters other than line breaks escaped, and cut after
/// `max_chars`: messages quote registries and packages, which may hold bytes meant to
/// move the cursor or recolour the terminal.
fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for (shown, c) in text.chars().enumerate() {
        if shown == max_chars {
            out.push_str(&format!("… ({} bytes in all)", text.len()));
            break;
        }
        match c {
            '\n' => out.push(c),
            c if c.is_control() => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out
}

/// The distinct messages below an error's own: wrappers that repeat their inner
/// message (`#[error(transparent)]`, or a message ending with the cause) add nothing.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut causes = Vec::new();
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if text != last && !last.ends_with(&text) {
            causes.push(text.clone());
        }
        last = text;
        source = cause.source();
    }
    causes
}

/// A closed pipe (`pkgr inspect … | head`) is not an error worth a message.
pub fn ignore_broken_pipe(result: std::io::Result<()>) -> Result<(), Error> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Io {
            path: "stdout".into(),
            source: e,
        }),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_and_cuts_long_text() {
        assert_eq!(
            printable("a\x1b[2Jb\u{7}\nc", usize::MAX),
            "a\\u{1b}[2Jb\\u{7}\nc"
        );
        assert_eq!(printable("abcdef", 3), "abc… (6 bytes in all)");
    }

    /// The error tokio gives for a blocking task that panicked.
    fn panicked_task() -> tokio::task::JoinError {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(async {
                tokio::task::spawn_blocking(|| panic!("a deliberate panic in a test worker")).await
            })
            .unwrap_err()
    }

    #[test]
    fn a_panicked_worker_is_a_bug_to_report_not_an_interruption() {
        let pulled = Error::Pull(PullError::Internal {
            what: "storing blob sha256:0".into(),
            source: panicked_task(),
        });
        let inspected = Error::Internal {
            what: "inspecting the package",
            source: panicked_task(),
        };
        for (err, message) in [
            (&pulled, "internal error while storing blob sha256:0"),
            (&inspected, "internal error while inspecting the package"),
        ] {
            assert_eq!(err.exit_code(), EXIT_FAILURE, "{err}");
            assert_eq!(err.to_string(), message);
            assert!(
                causes(err).iter().any(|c| c.contains("panicked")),
                "{:?}",
                causes(err)
            );
            assert_eq!(
                err.hint().as_deref(),
                Some("this is a bug in pkgr: please report it with the command you ran and this output")
            );
        }
    }
}
