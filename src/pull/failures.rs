//! Every reference that failed, at once: resolution goes on past a failed reference so
//! that one run names them all (not found, refused credentials, unreachable, an index
//! digest…), each on its own line, before any blob is fetched.

use std::fmt;

use super::PullError;
use crate::hint::{Fix, Hint};

/// Lines shown; the rest are counted.
const MAX_SHOWN: usize = 20;

/// The references of a definition that could not be resolved, in definition order.
#[derive(Debug)]
pub struct ReferenceFailures {
    pub failed: Vec<(String, PullError)>,
    /// References in the definition, failed or not.
    pub total: usize,
}

impl fmt::Display for ReferenceFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} image references cannot be packaged, so nothing was downloaded:",
            self.failed.len(),
            self.total
        )?;
        for (reference, err) in self.failed.iter().take(MAX_SHOWN) {
            write!(f, "\n  {}", line(reference, err))?;
        }
        if self.failed.len() > MAX_SHOWN {
            write!(f, "\n  … and {} more", self.failed.len() - MAX_SHOWN)?;
        }
        Ok(())
    }
}

/// One failure on one line: the error and its causes, led by the reference unless the
/// error already names it.
fn line(reference: &str, err: &PullError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = source.and_then(std::error::Error::source);
    }
    let text = text.replace('\n', " ");
    if text.contains(reference) {
        text
    } else {
        format!("{reference}: {text}")
    }
}

impl std::error::Error for ReferenceFailures {}

impl Hint for ReferenceFailures {
    /// Each distinct fix, in the order the failures that need them are listed; the
    /// alternatives of an `Either` count one by one, so the daemon's fix shared by
    /// several failures is given once.
    fn hint(&self) -> Option<Fix> {
        let mut fixes: Vec<Fix> = Vec::new();
        for fix in self.failed.iter().filter_map(|(_, err)| err.hint()) {
            for fix in alternatives(fix) {
                if !fixes.contains(&fix) {
                    fixes.push(fix);
                }
            }
        }
        match fixes.len() {
            0 => None,
            1 => fixes.pop(),
            _ => Some(Fix::Each(fixes)),
        }
    }
}

fn alternatives(fix: Fix) -> Vec<Fix> {
    match fix {
        Fix::Either(first, second) => {
            let mut all = alternatives(*first);
            all.extend(alternatives(*second));
            all
        }
        other => vec![other],
    }
}
