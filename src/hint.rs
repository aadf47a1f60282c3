//! Hints: the fix a user can try, supplied by the error that knows it, printed by the
//! command line as a `hint:` line. Library errors implement [`Hint`]; only `cli`
//! decides how a hint is shown.

/// The hint of an error that only a bug in pkgr can cause (a worker thread panicked).
pub const REPORT_BUG: &str =
    "this is a bug in pkgr: please report it with the command you ran and this output";

/// An error that may know what the user can do about it.
pub trait Hint {
    fn hint(&self) -> Option<String> {
        None
    }
}
