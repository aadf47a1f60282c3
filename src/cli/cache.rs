//! `pkgr cache`: its arguments (with `--older-than`'s age parser), and the printing of
//! where the shared blob cache is, what it holds, and its upkeep (`verify`, `prune`),
//! which the library does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::error::ignore_broken_pipe;
use super::settings::{CacheAction, CacheSettings};
use super::Error;
use crate::progress::{self, human_bytes};
use crate::store::cache::{waiting_message, Pruned, Usage};
use crate::store::Cache;

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Blob cache directory [default: $PKGR_CACHE_DIR, $XDG_CACHE_HOME/pkgr, ~/.cache/pkgr]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache directory
    Path,
    /// Show how many blobs and partial downloads the cache holds, and their size
    Ls {
        /// Print one JSON object, with every blob's digest, size and last use
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob and remove each one whose bytes do not match its name
    Verify {
        /// Plain progress lines instead of progress bars
        #[arg(long)]
        no_progress: bool,
    },
    /// Remove stale partial downloads and locks; with --all or --older-than, blobs too
    Prune {
        /// Empty the cache
        #[arg(long, conflicts_with = "older_than")]
        all: bool,

        /// Also remove blobs no package has used for this long (e.g. 30d, 12h, 90m, 45s)
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<Duration>,
    },
}

/// A `--older-than` value that is not an age.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an age: write a number and a unit, such as 30d, 12h, 90m, 45s or 2w")]
pub struct InvalidAge(pub String);

/// Parses an age such as `30d`, `12h`, `90m`, `45s` or `2w` (humantime's syntax, so
/// `1h 30m` works too).
pub fn parse_age(text: &str) -> Result<Duration, InvalidAge> {
    humantime::parse_duration(text).map_err(|_| InvalidAge(text.to_owned()))
}

pub async fn run(args: CacheArgs) -> Result<(), Error> {
    // Waiting for the lock and hashing are blocking work: keep them off the runtime.
    tokio::task::spawn_blocking(move || CacheSettings::new(args).and_then(run_blocking))
        .await
        .unwrap_or_else(|source| {
            Err(Error::Internal {
                what: "looking after the cache",
                source,
            })
        })
}

fn run_blocking(settings: CacheSettings) -> Result<(), Error> {
    let root = settings.root;
    let mut out = std::io::stdout().lock();
    let written = match settings.action {
        CacheAction::Path => writeln!(out, "{}", root.display()),
        CacheAction::Ls { json } => {
            let usage = Cache::usage(&root)?;
            if json {
                write_json(&mut out, &root, &usage)
            } else {
                write_table(&mut out, &root, &usage)
            }
        }
        CacheAction::Verify { no_progress } => {
            let Some(cache) = Cache::open_exclusive(&root, say_waiting)? else {
                return ignore_broken_pipe(nothing_to_do(&mut out, &root, "verify"));
            };
            let verified = cache.verify(progress::reporter(no_progress).as_ref())?;
            let written = verified
                .damaged
                .iter()
                .try_for_each(|digest| writeln!(out, "{digest} damaged, removed"))
                .and_then(|()| {
                    writeln!(
                        out,
                        "checked {} ({}): {} damaged",
                        count(verified.blobs, "blob"),
                        human_bytes(verified.bytes),
                        verified.damaged.len()
                    )
                });
            ignore_broken_pipe(written)?;
            if !verified.damaged.is_empty() {
                return Err(Error::DamagedBlobs {
                    root,
                    damaged: verified.damaged,
                });
            }
            Ok(())
        }
        CacheAction::Prune(blobs) => {
            let Some(cache) = Cache::open_exclusive(&root, say_waiting)? else {
                return ignore_broken_pipe(nothing_to_do(&mut out, &root, "prune"));
            };
            let pruned = cache.prune(blobs)?;
            writeln!(out, "{}", removed(&pruned, &root))
        }
    };
    ignore_broken_pipe(written)
}

fn say_waiting(lock: &Path) {
    let _ = writeln!(std::io::stderr().lock(), "{}", waiting_message(lock));
}

fn nothing_to_do(out: &mut impl Write, root: &Path, action: &str) -> std::io::Result<()> {
    writeln!(out, "no cache at {}: nothing to {action}", root.display())
}

fn write_table(out: &mut impl Write, root: &Path, usage: &Usage) -> std::io::Result<()> {
    writeln!(out, "cache     {}", root.display())?;
    writeln!(
        out,
        "blobs     {} ({})",
        usage.blobs.len(),
        human_bytes(usage.blob_bytes())
    )?;
    writeln!(
        out,
        "partials  {} ({})",
        usage.partials,
        human_bytes(usage.partial_bytes)
    )
}

fn write_json(out: &mut impl Write, root: &Path, usage: &Usage) -> std::io::Result<()> {
    let entries: Vec<serde_json::Value> = usage
        .blobs
        .iter()
        .map(|blob| {
            serde_json::json!({
                "digest": blob.digest,
                "size": blob.size,
                "lastUsed": rfc3339(blob.last_used),
            })
        })
        .collect();
    let value = serde_json::json!({
        "root": root.display().to_string(),
        "blobs": usage.blobs.len(),
        "bytes": usage.blob_bytes(),
        "partials": usage.partials,
        "partialBytes": usage.partial_bytes,
        "entries": entries,
    });
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

fn removed(pruned: &Pruned, root: &Path) -> String {
    let mut line = format!(
        "removed {} ({}) and {} ({})",
        count(pruned.blobs, "blob"),
        human_bytes(pruned.blob_bytes),
        count(pruned.partials, "partial download"),
        human_bytes(pruned.partial_bytes),
    );
    if pruned.locks > 0 {
        line.push_str(&format!(", and {}", count(pruned.locks, "stale lock file")));
    }
    line.push_str(&format!(" from {}", root.display()));
    line
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` in UTC.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_reject() {
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_age("0d"), Ok(Duration::ZERO));
        assert_eq!(parse_age("1h 30m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("1.5h"), Ok(Duration::from_secs(90 * 60)));
        for bad in ["", "30", "d", "-1d", "1dd", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn times_print_as_utc() {
        let at = |secs| rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
