//! The hand-over between `pull`'s downloads and its package writer. Each layer's
//! download writes into a staged file, which the writer reads as it grows; once the
//! writer reads that layer, the download hands the rest of it straight to the writer
//! in memory, a few MiB at most at a time, and the staged file stops growing: the
//! writer reads the file to its end, then the bytes handed over. On a fast link the
//! layer being written thus goes from the network into the package without a round
//! trip through the page cache (the staged copy was a third of pull's CPU); layers
//! that arrive ahead of the writer are staged as before. The writer also says when it
//! has waited through most of a stretch, for the downloads' scheduler to start more at
//! once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::sync::Notify;

use super::fetch::Sink;

/// Bytes a download writes into its file between two words to the writer.
const TELL_EVERY: u64 = 1 << 20;
/// Bytes handed over in memory and not yet taken, per layer: no more is handed over
/// while this many wait (so at most this and one chunk).
const HANDED_BYTES: usize = 4 << 20;
/// The writer is starved when it waited for more than half of such a stretch: the
/// downloads are too few for the link.
const STRETCH: Duration = Duration::from_millis(100);
/// How often a wait looks again at Ctrl-C, whatever else happens.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// What the downloads and the writer know of each other.
pub(super) struct Arrivals {
    state: Mutex<State>,
    /// For the writer: bytes arrived, or the downloads ended.
    changed: Condvar,
    /// For a download that hands bytes over: the writer took some.
    room: Notify,
    /// For the scheduler: the writer waited through most of a [`STRETCH`].
    starved: Notify,
    /// The layers the writer reads once: only those may be handed over, since a
    /// layer read twice must be whole in its file.
    streamable: HashSet<PathBuf>,
}

#[derive(Default)]
struct State {
    layers: HashMap<PathBuf, Layer>,
    /// The layer the writer reads.
    reading: Option<PathBuf>,
    /// Every download ended well: no layer grows any more.
    all_written: bool,
    /// The downloads stopped on an error, or the pull ended.
    stopped: bool,
    /// Since when the writer's waits are counted, and how long they were.
    stretch: Option<(Instant, Duration)>,
}

impl State {
    /// Counts a wait of the writer; true once it waited through most of a stretch.
    fn waited(&mut self, wait: Duration) -> bool {
        let now = Instant::now();
        let (since, waited) = self.stretch.get_or_insert((now, Duration::ZERO));
        *waited += wait;
        if now.duration_since(*since) < STRETCH {
            return false;
        }
        let starved = *waited * 2 > now.duration_since(*since);
        self.stretch = Some((now, Duration::ZERO));
        starved
    }
}

#[derive(Default)]
struct Layer {
    /// Bytes in the staged file the writer may read.
    in_file: u64,
    /// The bytes past `in_file`, in order, once the download hands them over.
    handed: Option<VecDeque<Bytes>>,
    handed_bytes: usize,
}

impl Arrivals {
    pub fn new(streamable: HashSet<PathBuf>) -> Self {
        Self {
            state: Mutex::default(),
            changed: Condvar::new(),
            room: Notify::new(),
            starved: Notify::new(),
            streamable,
        }
    }

    pub fn all_written(&self) {
        self.lock().all_written = true;
        self.changed.notify_all();
    }

    pub fn give_up(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
        self.room.notify_waiters();
    }

    /// Resolves once the writer has waited through most of a stretch (a wake-up may
    /// be left over from an earlier one).
    pub async fn starved(&self) {
        self.starved.notified().await;
    }

    /// Tells the scheduler that the writer waited through most of a stretch.
    pub fn kept_waiting(&self) {
        self.starved.notify_one();
    }

    /// Whether some of the layer in `path` went to the writer in memory only: its
    /// staged file is not the whole layer.
    pub fn handed_over(&self, path: &Path) -> bool {
        self.lock()
            .layers
            .get(path)
            .is_some_and(|layer| layer.handed.is_some())
    }

    /// The download of `path` has `in_file` bytes in its file: tells the writer, and,
    /// when `more` are coming, says whether the writer reads this layer already (and
    /// takes the rest in memory from now on, once it has read the file).
    fn grew_to(&self, path: &Path, in_file: u64, more: bool) -> Handover {
        let mut state = self.lock();
        let being_read =
            more && self.streamable.contains(path) && state.reading.as_deref() == Some(path);
        let layer = state.layers.entry(path.to_owned()).or_default();
        layer.in_file = in_file;
        if being_read {
            layer.handed = Some(VecDeque::new());
        }
        self.changed.notify_all();
        match being_read {
            true => Handover::InMemory,
            false => Handover::InFile,
        }
    }

    /// Whether the writer reads `path`.
    fn being_read(&self, path: &Path) -> bool {
        self.lock().reading.as_deref() == Some(path)
    }

    /// Hands `bytes` of `path` to the writer, waiting while [`HANDED_BYTES`] wait for it.
    async fn hand(&self, path: &Path, bytes: Bytes) -> io::Result<()> {
        let mut bytes = Some(bytes);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if crate::cancel::is_cancelled() {
                    return Err(io::Error::other("interrupted"));
                }
                if state.stopped {
                    return Err(io::Error::other("the package's writer stopped"));
                }
                let layer = state.layers.entry(path.to_owned()).or_default();
                if layer.handed_bytes < HANDED_BYTES {
                    let bytes = bytes.take().expect("handed once");
                    layer.handed_bytes += bytes.len();
                    layer
                        .handed
                        .get_or_insert_with(VecDeque::new)
                        .push_back(bytes);
                    self.changed.notify_all();
                    return Ok(());
                }
            }
            let _ = tokio::time::timeout(LOOK_EVERY, room).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Handover {
    InFile,
    InMemory,
}

/// A layer as its download brings it: into its staged file, then, once the writer
/// reads it, to the writer in memory.
pub(super) struct Staging<'a> {
    file: File,
    path: PathBuf,
    /// Bytes of the layer given so far, to the file or to the writer.
    given: u64,
    told: u64,
    in_memory: bool,
    /// Bytes of a body sent again from its start that were given already.
    skip: u64,
    arrivals: &'a Arrivals,
}

impl<'a> Staging<'a> {
    pub fn new(file: File, path: PathBuf, arrivals: &'a Arrivals) -> Self {
        Self {
            file,
            path,
            given: 0,
            told: 0,
            in_memory: false,
            skip: 0,
            arrivals,
        }
    }

    /// Tells the writer that the download is over, with every byte in place.
    pub fn done(&mut self) {
        if !self.in_memory {
            self.arrivals.grew_to(&self.path, self.given, false);
        }
    }
}

impl Sink for Staging<'_> {
    async fn put(&mut self, mut bytes: Bytes) -> io::Result<()> {
        let repeated = self.skip.min(bytes.len() as u64);
        bytes.advance(repeated as usize);
        self.skip -= repeated;
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.in_memory && self.arrivals.being_read(&self.path) {
            self.told = self.given;
            let handover = self.arrivals.grew_to(&self.path, self.given, true);
            self.in_memory = matches!(handover, Handover::InMemory);
        }
        let len = bytes.len() as u64;
        if self.in_memory {
            self.arrivals.hand(&self.path, bytes).await?;
            self.given += len;
            return Ok(());
        }
        self.file.write_all(&bytes)?;
        self.given += len;
        if self.given - self.told >= TELL_EVERY {
            self.told = self.given;
            // Only told: the hand-over is decided at the next bytes, once the writer
            // has read these.
            self.arrivals.grew_to(&self.path, self.told, false);
        }
        Ok(())
    }

    /// What was given stays given: the bytes sent again are the same (the package's
    /// hash says if they are not), so as many of them are skipped.
    fn restart(&mut self) -> io::Result<()> {
        self.skip = self.given;
        Ok(())
    }
}

/// A layer as the writer reads it: from its staged file as that grows, then from the
/// bytes handed over; each read waits for bytes past its position, and the layer ends
/// at its declared size.
pub(super) struct Growing {
    path: PathBuf,
    file: Option<File>,
    at: u64,
    size: u64,
    arrivals: Arc<Arrivals>,
}

impl Growing {
    pub fn new(path: &Path, size: u64, arrivals: Arc<Arrivals>) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            at: 0,
            size,
            arrivals,
        }
    }

    fn read_file(&mut self, buf: &mut [u8], in_file: u64) -> io::Result<usize> {
        let file = match &mut self.file {
            Some(file) => file,
            // Opened once a byte is in it: the download has created it by then.
            None => self.file.insert(File::open(&self.path)?),
        };
        let want = (in_file.min(self.size) - self.at).min(buf.len() as u64) as usize;
        // The file's own position is always `at`: it moves only by what is read.
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ends after {} bytes", self.path.display(), self.at),
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}

impl Read for Growing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let arrivals = self.arrivals.clone();
        let mut state = arrivals.lock();
        if state.reading.as_deref() != Some(&self.path) {
            state.reading = Some(self.path.clone());
        }
        loop {
            let layer = state.layers.entry(self.path.clone()).or_default();
            if self.at < layer.in_file {
                let in_file = layer.in_file;
                drop(state);
                return self.read_file(buf, in_file);
            }
            let taken = layer
                .handed
                .as_mut()
                .map_or(0, |handed| take_handed(handed, buf));
            if taken > 0 {
                layer.handed_bytes -= taken;
                drop(state);
                self.at += taken as u64;
                arrivals.room.notify_waiters();
                return Ok(taken);
            }
            if state.all_written {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} ends after {} bytes", self.path.display(), self.at),
                ));
            }
            if state.stopped || crate::cancel::is_cancelled() {
                return Err(io::Error::other("the downloads stopped"));
            }
            let started = Instant::now();
            state = match arrivals.changed.wait_timeout(state, LOOK_EVERY) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
            if state.waited(started.elapsed()) {
                arrivals.kept_waiting();
            }
        }
    }
}

/// Moves handed bytes into `buf`, oldest first; returns how many.
fn take_handed(handed: &mut VecDeque<Bytes>, buf: &mut [u8]) -> usize {
    let mut taken = 0;
    while let Some(front) = handed.front_mut() {
        let n = front.len().min(buf.len() - taken);
        buf[taken..taken + n].copy_from_slice(&front[..n]);
        front.advance(n);
        taken += n;
        if front.is_empty() {
            handed.pop_front();
        }
        if taken == buf.len() {
            break;
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that tell their offsets apart.
    fn layer_bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        arrivals: Arc<Arrivals>,
    }

    fn fixture(streamable: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer");
        let read_once = match streamable {
            true => HashSet::from([path.clone()]),
            false => HashSet::new(),
        };
        Fixture {
            path,
            arrivals: Arc::new(Arrivals::new(read_once)),
            _dir: dir,
        }
    }

    /// A writer reading the whole layer on a thread of its own.
    fn reader(f: &Fixture, size: usize) -> std::thread::JoinHandle<io::Result<Vec<u8>>> {
        let mut growing = Growing::new(&f.path, size as u64, f.arrivals.clone());
        std::thread::spawn(move || {
            let mut read = Vec::new();
            growing.read_to_end(&mut read)?;
            Ok(read)
        })
    }

    async fn put_in_pieces(staging: &mut Staging<'_>, bytes: &[u8]) {
        for piece in bytes.chunks(64 << 10) {
            staging.put(Bytes::copy_from_slice(piece)).await.unwrap();
        }
    }

    /// Puts `head` before the writer starts, then the rest once it reads; returns what
    /// it read and the length of the staged file. `cut`, a point where the body stops
    /// and the registry sends the layer again from its start (before or after the
    /// writer started).
    async fn staged_then_read(
        f: &Fixture,
        bytes: &[u8],
        head: usize,
        cut: Option<usize>,
    ) -> (Vec<u8>, u64) {
        let file = File::create(&f.path).unwrap();
        let mut staging = Staging::new(file, f.path.clone(), &f.arrivals);
        let mut sent = 0;
        let mut send_to = async |staging: &mut Staging<'_>, end: usize| {
            if let Some(cut) = cut.filter(|cut| (sent..end).contains(cut)) {
                put_in_pieces(staging, &bytes[sent..cut]).await;
                staging.restart().unwrap();
                sent = 0;
            }
            put_in_pieces(staging, &bytes[sent..end]).await;
            sent = end;
        };
        send_to(&mut staging, head).await;
        let reading = reader(f, bytes.len());
        while !f.arrivals.being_read(&f.path) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        send_to(&mut staging, bytes.len()).await;
        staging.done();
        f.arrivals.all_written();
        let read = reading.join().unwrap().unwrap();
        (read, std::fs::metadata(&f.path).unwrap().len())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_the_writer_reads_a_layer_the_rest_comes_in_memory() {
        let f = fixture(true);
        let bytes = layer_bytes(3 * HANDED_BYTES + 12345);
        let head = (1 << 20) + 1000;
        let (read, in_file) = staged_then_read(&f, &bytes, head, None).await;
        assert!(read == bytes, "the layer read is not the layer sent");
        assert_eq!(
            in_file, head as u64,
            "bytes went to the file after the hand-over"
        );
        assert!(f.arrivals.handed_over(&f.path));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_layer_sent_again_before_or_after_the_hand_over_is_read_once() {
        let bytes = layer_bytes(HANDED_BYTES + 777);
        // Cut while staged, before the writer reads; and mid-layer after the hand-over.
        for cut in [3000, 5000 + HANDED_BYTES / 2] {
            let f = fixture(true);
            let (read, _) = staged_then_read(&f, &bytes, 5000, Some(cut)).await;
            assert!(
                read == bytes,
                "cut at {cut}: the layer read is not the layer sent"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_layer_read_twice_is_kept_whole_in_its_file() {
        let f = fixture(false);
        let bytes = layer_bytes(2 * HANDED_BYTES);
        let (read, in_file) = staged_then_read(&f, &bytes, 1000, None).await;
        assert!(read == bytes, "the layer read is not the layer sent");
        assert_eq!(in_file, bytes.len() as u64);
        assert!(!f.arrivals.handed_over(&f.path));
    }

    #[test]
    fn a_writer_that_waited_through_most_of_a_stretch_is_starved() {
        let mut state = State::default();
        // Waits are counted as they end: one as long as a stretch, ended at its start.
        assert!(!state.waited(STRETCH), "a stretch just begun ended");
        std::thread::sleep(STRETCH);
        assert!(
            state.waited(Duration::ZERO),
            "waiting through a stretch is not starving"
        );
        state.waited(STRETCH / 10);
        std::thread::sleep(STRETCH);
        assert!(
            !state.waited(Duration::ZERO),
            "waiting 10% of a stretch is starving"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_layer_that_ends_short_is_an_error_for_the_writer() {
        let f = fixture(true);
        let reading = reader(&f, 100);
        let mut staging = Staging::new(File::create(&f.path).unwrap(), f.path.clone(), &f.arrivals);
        staging.put(Bytes::from_static(&[7; 60])).await.unwrap();
        staging.done();
        f.arrivals.all_written();
        let err = reading.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}
