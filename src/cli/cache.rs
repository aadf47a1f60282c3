//! `pkgr cache`: wiring and printing. Settings → the library's cache upkeep (`ls`,
//! `verify`, `prune`) → where the shared blob cache is, what it holds, and what its
//! upkeep found or removed.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::error::ignore_broken_pipe;
use super::settings::{CacheAction, CacheSettings};
use super::{CacheArgs, Error};
use crate::progress::{self, human_bytes};
use crate::store::cache::{waiting_message, Pruned, Usage};
use crate::store::Cache;

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
    if crate::progress::is_quiet() {
        return;
    }
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

/// The version of `cache ls --json`'s shape, raised only when a field changes meaning or
/// goes away.
const LS_SCHEMA_VERSION: u32 = 1;

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
        "schemaVersion": LS_SCHEMA_VERSION,
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
    fn times_print_as_utc() {
        let at = |secs| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
