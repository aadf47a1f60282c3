//! `pull` of a published package: its layers downloaded (each digest once, in the
//! package's order, each checked against its size as it arrives) while the package
//! writer writes the package again in the artifact's order. A layer arrives through
//! `arrivals`: into a staging directory beside the output while the writer is
//! elsewhere, straight to the writer in memory once it reads that layer. Downloads
//! start in order within a window of bytes that widens whenever the writer is kept
//! waiting (see [`download_all`]). The package is hashed as it is written, on a thread
//! of its own, and kept only when that hash is the one published (synced and renamed
//! into place): one hash that covers every layer, so the layers are not hashed on
//! their own. When it differs, the staged layers are hashed to name the one that is
//! wrong, those that went over in memory fetched and hashed again, and the file is
//! removed. A package published by a writer other than this pkgr's is refused before
//! anything is fetched.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::address::Address;
use super::arrivals::{Arrivals, Growing, Staging};
use super::artifact::{Artifact, Facts, PackageFile};
use super::behind::HashBehind;
use super::fetch::{artifact, fetch, Check};
use super::{blocking, PublishError};
use crate::digest::hash_reader;
use crate::package::staging_dir::StagingDir;
use crate::package::writer::{self, encode_from, identity, Entry, Opened};
use crate::progress::Reporter;
use crate::push::order::largest_first;
use crate::registry::{Credentials, Registry, Transport};
use crate::space::{room_for, Place};

/// A pull to run.
pub struct PullRequest {
    /// With a tag or digest.
    pub address: Address,
    /// The directory the package file is written into.
    pub output: PathBuf,
    pub transport: Transport,
    pub credentials: Credentials,
    /// Downloads in flight.
    pub concurrency: usize,
}

/// The package file a pull wrote.
#[derive(Debug)]
pub struct PulledPackage {
    pub path: PathBuf,
    pub facts: Facts,
}

pub async fn pull_package(
    request: PullRequest,
    reporter: &dyn Reporter,
) -> Result<PulledPackage, PublishError> {
    let PullRequest {
        address,
        output,
        transport,
        credentials,
        concurrency,
    } = request;
    let registries = [address.registry().to_owned()].into();
    let registry = Registry::connect(&transport, &registries, credentials).await?;
    let artifact = artifact(&registry, &address).await?;
    let ours = identity(artifact.facts.compressed);
    if artifact.facts.writer != ours {
        return Err(PublishError::OtherWriter {
            address: address.to_string(),
            theirs: artifact.facts.writer,
            ours,
        });
    }
    let out_error = |source| PublishError::Output {
        path: output.clone(),
        source,
    };
    std::fs::create_dir_all(&output).map_err(out_error)?;
    // Each digest once, in the package's order: the writer reads each in turn.
    let mut seen = HashSet::new();
    let unique: Vec<&PackageFile> = artifact
        .files
        .iter()
        .filter(|f| seen.insert(&f.digest))
        .collect();
    let bytes = unique.iter().fold(0u64, |a, f| a.saturating_add(f.size));
    // The staged layers and the package sit side by side until the package is whole.
    let place = Place {
        dir: output.clone(),
        flag: "--output",
    };
    room_for(place, bytes.saturating_add(artifact.facts.size)).map_err(out_error)??;
    // Removed when dropped, Ctrl-C included; swept by a later create after a crash.
    let staging = StagingDir::create(&output).map_err(out_error)?;
    reporter.blobs_planned("pulling", unique.len(), bytes);
    let path = output.join(&artifact.facts.file_name);
    let staged = staged_files(&artifact, &unique, staging.path());
    let arrivals = Arc::new(Arrivals::new(staged.read_once()));
    // However this function ends (an error, a panic, Ctrl-C dropping it), the writer
    // is told to stop waiting for bytes.
    let _stop_writer = GiveUpOnDrop(arrivals.clone());
    let writing = {
        let (temp_dir, out) = (staging.path().to_owned(), path.clone());
        let (facts, shown, arrivals) = (
            artifact.facts.clone(),
            address.to_string(),
            arrivals.clone(),
        );
        blocking("writing the package", move || {
            let open = |entry: &Entry| -> io::Result<Opened> {
                let size = staged.sizes[&entry.source];
                // Unbuffered: bytes handed over in memory are copied once, straight
                // into the frame being filled.
                let growing = Growing::new(&entry.source, size, arrivals.clone());
                Ok((size, Box::new(growing)))
            };
            let in_file = |path: &Path| !arrivals.handed_over(path);
            write_verified(&staged, &temp_dir, &out, &facts, &shown, &open, &in_file)?;
            Ok(facts)
        })
    };
    let fetches: Vec<_> = unique
        .iter()
        .map(|file| {
            let path = staged_path(staging.path(), file);
            let fetch = fetch_file(&registry, &address, file, path, &arrivals, reporter);
            (file.size, fetch)
        })
        .collect();
    let downloads = download_all(fetches, concurrency, &arrivals);
    let (mut downloads, mut writing) = (std::pin::pin!(downloads), std::pin::pin!(writing));
    // A writer that fails (no room for the package, say) stops the downloads at once.
    let written = tokio::select! {
        fetched = &mut downloads => match fetched {
            Ok(()) => {
                arrivals.all_written();
                reporter.finish();
                reporter.step(&format!("writing {}", path.display()));
                writing.await
            }
            Err(err) => {
                arrivals.give_up();
                let _ = writing.await;
                return Err(as_package_write(err, &path));
            }
        },
        written = &mut writing => {
            // The writer cannot end well before the last byte is in: only its error
            // gets here, or a race with the last download's end (a wrong hash too,
            // which the downloads' end must not hide).
            if written.is_ok() || matches!(written, Err(PublishError::Rebuilt { .. })) {
                downloads.await?;
            }
            reporter.finish();
            written
        }
    };
    let facts = match written {
        Err(PublishError::Rebuilt { .. }) => {
            // No layer whole in its staged file is to blame: one that went to the
            // writer in memory is, and only fetching it again can tell which.
            let handed: Vec<&PackageFile> = unique
                .iter()
                .copied()
                .filter(|f| arrivals.handed_over(&staged_path(staging.path(), f)))
                .collect();
            fetch_again(&registry, &address, &handed, concurrency, reporter).await?;
            written?
        }
        other => other?,
    };
    drop(staging);
    Ok(PulledPackage { path, facts })
}

/// A staged layer is part of the package being written: a write that fails there (a
/// full disk, say) is told as the package's, not as a hidden staging file's.
fn as_package_write(err: PublishError, package: &Path) -> PublishError {
    match err {
        PublishError::Output { source, .. } => PublishError::Output {
            path: package.to_owned(),
            source,
        },
        other => other,
    }
}

/// Tells the writer to stop waiting when dropped.
struct GiveUpOnDrop(Arc<Arrivals>);

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        self.0.give_up();
    }
}

/// One layer into a file of the staging directory, and on to the writer.
async fn fetch_file(
    registry: &Registry,
    address: &Address,
    file: &PackageFile,
    path: PathBuf,
    arrivals: &Arrivals,
    reporter: &dyn Reporter,
) -> Result<(), PublishError> {
    let file_handle = File::create(&path).map_err(|source| PublishError::Output {
        path: path.clone(),
        source,
    })?;
    let mut sink = Staging::new(file_handle, path, arrivals);
    reporter.blob_start(&file.digest, file.size);
    fetch(registry, address, file, &mut sink, Check::Size, reporter).await?;
    sink.done();
    reporter.blob_done(&file.digest);
    Ok(())
}

/// Fetches `files` again and hashes them, to name a damaged one: the first in the
/// package's order whose bytes are not its digest's, if any.
async fn fetch_again(
    registry: &Registry,
    address: &Address,
    files: &[&PackageFile],
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<(), PublishError> {
    let bytes = files.iter().fold(0u64, |a, f| a.saturating_add(f.size));
    reporter.step(&format!(
        "the package does not hash as published: fetching {} layer(s) again to find the damaged one",
        files.len()
    ));
    reporter.blobs_planned("checking again", files.len(), bytes);
    let checked = largest_first(
        files,
        true,
        concurrency,
        |f| f.size,
        |file| async move {
            let mut hashed_only = io::sink();
            fetch(
                registry,
                address,
                file,
                &mut hashed_only,
                Check::Digest,
                reporter,
            )
            .await
        },
    )
    .await;
    reporter.finish();
    checked.into_iter().collect()
}

/// Where a downloaded layer is staged: one file per digest.
fn staged_path(staging: &Path, file: &PackageFile) -> PathBuf {
    staging.join(file.digest.hex())
}

/// Runs `fetches` (each with its layer's size), started in their order: a new one
/// once none runs, or while fewer than `concurrency` run and the bytes of those
/// running stay within a window. The window starts small, so that on a fast link the
/// writer takes most layers as they arrive rather than from staged files, and doubles
/// each time the writer is kept waiting, so that a slow link gets the downloads it
/// needs.
async fn download_all<F>(
    fetches: Vec<(u64, F)>,
    concurrency: usize,
    arrivals: &Arrivals,
) -> Result<(), PublishError>
where
    F: std::future::Future<Output = Result<(), PublishError>>,
{
    let mut waiting = fetches.into_iter().peekable();
    let mut running = FuturesUnordered::new();
    let (mut in_flight, mut window) = (0u64, FIRST_WINDOW);
    loop {
        while let Some((size, _)) = waiting.peek() {
            let fits =
                running.len() < concurrency.max(1) && in_flight.saturating_add(*size) <= window;
            if !running.is_empty() && !fits {
                break;
            }
            let (size, fetch) = waiting.next().expect("peeked");
            in_flight += size;
            running.push(async move { fetch.await.map(|()| size) });
        }
        if running.is_empty() {
            return Ok(());
        }
        tokio::select! {
            done = running.next() => in_flight -= done.expect("some are running")?,
            () = arrivals.starved() => window = window.saturating_mul(2),
        }
    }
}

/// The bytes of the downloads running at once before the writer is first kept
/// waiting: enough to hide each request's round trip behind small layers.
const FIRST_WINDOW: u64 = 16 << 20;

/// The package's entries, in the artifact's order, from the staged layers, with each
/// entry's digest; and each staged file's size, as its download was told to expect.
struct Staged {
    entries: Vec<Entry>,
    digests: Vec<crate::digest::Digest>,
    sizes: HashMap<PathBuf, u64>,
}

/// `downloaded`: the files fetched, one per digest. Another file with the same digest
/// shares its staged file and its size (if the artifact declares another size for it,
/// the rebuilt package differs from the published one, and is refused as such).
fn staged_files(artifact: &Artifact, downloaded: &[&PackageFile], staging: &Path) -> Staged {
    let source = |file: &PackageFile| staged_path(staging, file);
    Staged {
        entries: artifact
            .files
            .iter()
            .map(|file| Entry {
                name: file.name.clone(),
                source: source(file),
            })
            .collect(),
        digests: artifact.files.iter().map(|f| f.digest.clone()).collect(),
        sizes: downloaded.iter().map(|f| (source(f), f.size)).collect(),
    }
}

impl Staged {
    /// The staged files that only one entry reads.
    fn read_once(&self) -> HashSet<PathBuf> {
        let mut readers: HashMap<&Path, usize> = HashMap::new();
        for entry in &self.entries {
            *readers.entry(&entry.source).or_default() += 1;
        }
        readers
            .into_iter()
            .filter(|(_, n)| *n == 1)
            .map(|(path, _)| path.to_owned())
            .collect()
    }
}

/// Writes the package into a temp file in `temp_dir`, hashing it as it goes, and
/// renames it to `out` only if it hashes to the published sha256 and size.
fn write_verified(
    staged: &Staged,
    temp_dir: &Path,
    out: &Path,
    facts: &Facts,
    address: &str,
    open: &dyn Fn(&Entry) -> io::Result<Opened>,
    in_file: &dyn Fn(&Path) -> bool,
) -> Result<(), PublishError> {
    let failed = |source| PublishError::Output {
        path: out.to_owned(),
        source,
    };
    let temp = writer::partial_package_in(temp_dir).map_err(failed)?;
    let file = temp.as_file().try_clone().map_err(failed)?;
    let hashing = encode_from(
        &staged.entries,
        HashBehind::new(file),
        facts.compressed,
        open,
    )
    .map_err(failed)?;
    let (inner, hasher) = hashing.finish().map_err(failed)?;
    let (size, actual) = (hasher.bytes_hashed(), hasher.finish());
    if actual != facts.sha256 || size != facts.size {
        if let Some((name, found)) = wrong_layer(staged, in_file) {
            return Err(PublishError::Damaged {
                address: address.to_owned(),
                name,
                found,
            });
        }
        return Err(PublishError::Rebuilt {
            address: address.to_owned(),
            expected: facts.sha256.clone(),
            actual,
        });
    }
    inner.sync_all().map_err(failed)?;
    if crate::cancel::is_cancelled() {
        return Err(failed(io::Error::other("interrupted")));
    }
    temp.persist(out).map_err(|e| failed(e.error))?;
    Ok(())
}

/// The first layer whole in its staged file (`in_file`) whose bytes do not hash to
/// its digest, with what they hash to.
fn wrong_layer(staged: &Staged, in_file: &dyn Fn(&Path) -> bool) -> Option<(String, String)> {
    let mut hashed = HashSet::new();
    staged
        .entries
        .iter()
        .zip(&staged.digests)
        .filter(|(entry, digest)| in_file(&entry.source) && hashed.insert(*digest))
        .find_map(|(entry, digest)| {
            let file = File::open(&entry.source).ok()?;
            match hash_reader(crate::cancel::Cancellable(file)) {
                Ok((actual, _)) if &actual != digest => {
                    Some((entry.name.clone(), format!("its bytes hash to {actual}")))
                }
                _ => None,
            }
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// The most downloads of `sizes` (in MiB) that ran at once, each taking 10 ms.
    async fn most_at_once(sizes: &[u64], concurrency: usize, arrivals: &Arrivals) -> usize {
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let fetches = sizes
            .iter()
            .map(|mib| {
                let (running, most) = (&running, &most);
                let fetch = async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                };
                (mib << 20, fetch)
            })
            .collect();
        download_all(fetches, concurrency, arrivals).await.unwrap();
        most.into_inner()
    }

    #[tokio::test(start_paused = true)]
    async fn downloads_run_at_once_within_the_window_and_the_concurrency() {
        let arrivals = Arrivals::new(HashSet::new());
        // Small layers: as many as the concurrency allows.
        assert_eq!(most_at_once(&[1; 20], 8, &arrivals).await, 8);
        // Large ones: one at a time, the writer taking each as it arrives.
        assert_eq!(most_at_once(&[100; 3], 8, &arrivals).await, 1);
        assert_eq!(most_at_once(&[8; 6], 8, &arrivals).await, 2);
        // A writer kept waiting widens the window: twice the bytes at once.
        arrivals.kept_waiting();
        assert_eq!(most_at_once(&[8; 6], 8, &arrivals).await, 4);
    }
}
