//! Hints: the fix a user can try, supplied by the error that knows it, printed by the
//! command line as a `hint:` line. Library errors implement [`Hint`]; only `cli`
//! decides how a hint is shown.

/// An error that may know what the user can do about it.
pub trait Hint {
    fn hint(&self) -> Option<String> {
        None
    }
}
