//! Progress reporting behind one small trait: indicatif bars on a terminal, plain
//! periodic lines elsewhere, nothing under `-q`. Core logic only calls the trait, or,
//! where it cannot hold the reporter (the daemon fallback), sends it [`Note`]s.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::Digest;

pub trait Reporter: Send + Sync {
    /// A step worth a line of its own ("resolving 4 images").
    fn step(&self, message: &str);
    fn warn(&self, message: &str);
    /// More blobs must move (`action` is "downloading" or "pushing"); called as the
    /// work is discovered, so totals grow while transfers run.
    fn blobs_planned(&self, action: &str, blobs: usize, bytes: u64);
    /// A planned blob was already in place.
    fn blob_cached(&self, bytes: u64);
    fn blob_start(&self, digest: &Digest, size: u64);
    fn blob_progress(&self, digest: &Digest, bytes: u64);
    /// Bytes already reported for a blob were thrown away and will move again (a
    /// server ignored a Range request, or the content was wrong): take them back.
    fn blob_discarded(&self, digest: &Digest, bytes: u64);
    fn blob_done(&self, digest: &Digest);
    fn finish(&self);
    /// An import of `bytes` (as far as known beforehand) began; `label` names it in
    /// the calls that follow. Imports are not blobs: they leave the tallies alone.
    fn import_start(&self, _label: &str, _bytes: u64) {}
    /// `done` of the import's bytes are in, of `total` (`done` may pass it).
    fn import_progress(&self, _label: &str, _done: u64, _total: u64) {}
    /// The import ended, `done` bytes in `elapsed`.
    fn import_done(&self, _label: &str, _done: u64, _elapsed: Duration) {}
}

/// How every reporter of the process reports, as `-v`, `-q`, `--color` and
/// `NO_COLOR` ask: set once, before any command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a terminal, lines elsewhere.
    Auto = 0,
    /// Plain lines even on a terminal: no escape code of any kind.
    Lines = 1,
    /// Nothing: only errors, and the command's result on stdout.
    Quiet = 2,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Auto as u8);

pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// Whether colour and other terminal escapes are wanted, from `--color` (`always`,
/// `never`, or `auto`: as `NO_COLOR` says, where set and not empty). Bars are drawn
/// with escapes, so no colour means plain lines.
pub fn colour_wanted(choice: ColourChoice, no_color: Option<&std::ffi::OsStr>) -> bool {
    match choice {
        ColourChoice::Always => true,
        ColourChoice::Never => false,
        ColourChoice::Auto => no_color.is_none_or(|v| v.is_empty()),
    }
}

/// `--color`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColourChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether `-q` asked for nothing but errors and the result.
pub fn is_quiet() -> bool {
    mode() == Mode::Quiet
}

fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Lines,
        2 => Mode::Quiet,
        _ => Mode::Auto,
    }
}

/// Picks bars on a terminal unless `plain` is asked for, and nothing under `-q`.
pub fn reporter(plain: bool) -> Box<dyn Reporter> {
    use std::io::IsTerminal;
    match mode() {
        Mode::Quiet => Box::new(Quiet),
        Mode::Auto if !plain && std::io::stderr().is_terminal() => Box::new(Bars::new()),
        _ => Box::new(Lines::new()),
    }
}

/// The reporter of `-q`: says nothing.
struct Quiet;

impl Reporter for Quiet {
    fn step(&self, _message: &str) {}
    fn warn(&self, _message: &str) {}
    fn blobs_planned(&self, _action: &str, _blobs: usize, _bytes: u64) {}
    fn blob_cached(&self, _bytes: u64) {}
    fn blob_start(&self, _digest: &Digest, _size: u64) {}
    fn blob_progress(&self, _digest: &Digest, _bytes: u64) {}
    fn blob_discarded(&self, _digest: &Digest, _bytes: u64) {}
    fn blob_done(&self, _digest: &Digest) {}
    fn finish(&self) {}
}

fn short(digest: &Digest) -> &str {
    &digest.hex()[..12]
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The end of a closing line: `in 1.2 s (85.3 MiB/s)`, the rate of `bytes` over
/// `elapsed`.
pub fn took(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = bytes as f64 / secs.max(0.001);
    format!("in {secs:.1} s ({}/s)", human_bytes(rate as u64))
}

/// Adds to a byte counter without wrapping (sizes come from other people's
/// descriptors); returns the new value.
fn saturating_add(counter: &AtomicU64, bytes: u64) -> u64 {
    let previous = counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_add(bytes))
        })
        .unwrap_or_else(|n| n);
    previous.saturating_add(bytes)
}

/// Blobs planned and found cached, for the summary of a transfer.
#[derive(Default)]
struct Tally {
    inner: Mutex<TallyCounts>,
}

#[derive(Default, Clone, Copy)]
struct TallyCounts {
    blobs: usize,
    bytes: u64,
    cached_blobs: usize,
    cached_bytes: u64,
}

impl Tally {
    fn planned(&self, blobs: usize, bytes: u64) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        counts.blobs += blobs;
        counts.bytes = counts.bytes.saturating_add(bytes);
    }

    fn cached(&self, bytes: u64) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        counts.cached_blobs += 1;
        counts.cached_bytes = counts.cached_bytes.saturating_add(bytes);
    }

    fn counts(&self) -> TallyCounts {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn message(&self) -> String {
        let c = self.counts();
        format!(
            "({} blobs; {} cached, {})",
            c.blobs,
            c.cached_blobs,
            human_bytes(c.cached_bytes)
        )
    }
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    active: Mutex<HashMap<Digest, ProgressBar>>,
    imports: Mutex<HashMap<String, ProgressBar>>,
    tally: Tally,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Self {
            multi,
            overall,
            active: Mutex::new(HashMap::new()),
            imports: Mutex::new(HashMap::new()),
            tally: Tally::default(),
        }
    }
}

impl Reporter for Bars {
    fn step(&self, message: &str) {
        let _ = self.multi.println(message);
    }

    fn warn(&self, message: &str) {
        let _ = self.multi.println(format!("warning: {message}"));
    }

    fn blobs_planned(&self, action: &str, blobs: usize, bytes: u64) {
        self.overall.set_prefix(action.to_owned());
        self.overall.inc_length(bytes);
        self.tally.planned(blobs, bytes);
        self.overall.set_message(self.tally.message());
    }

    fn blob_cached(&self, bytes: u64) {
        // Cached bytes were counted as planned: they are done at once.
        self.overall.inc(bytes);
        self.tally.cached(bytes);
        self.overall.set_message(self.tally.message());
    }

    fn blob_start(&self, digest: &Digest, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {bytes}/{total_bytes}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(short(digest).to_owned());
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.clone(), bar);
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        self.overall.inc(bytes);
        if let Some(bar) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            bar.inc(bytes);
        }
    }

    fn blob_discarded(&self, digest: &Digest, bytes: u64) {
        self.overall.dec(bytes);
        if let Some(bar) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            bar.dec(bytes);
        }
    }

    fn blob_done(&self, digest: &Digest) {
        if let Some(bar) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest)
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn finish(&self) {
        self.overall.finish_and_clear();
    }

    fn import_start(&self, label: &str, bytes: u64) {
        let bar = self.multi.add(ProgressBar::new(bytes));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix("importing");
        bar.set_message(label.to_owned());
        self.imports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(label.to_owned(), bar);
    }

    fn import_progress(&self, label: &str, done: u64, total: u64) {
        if let Some(bar) = self
            .imports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(label)
        {
            bar.set_length(total.max(done));
            bar.set_position(done);
        }
    }

    fn import_done(&self, label: &str, done: u64, elapsed: Duration) {
        let bar = self
            .imports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(label);
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.println(imported_line(label, done, elapsed));
    }
}

fn imported_line(label: &str, done: u64, elapsed: Duration) -> String {
    format!(
        "imported {label}: {} {}",
        human_bytes(done),
        took(done, elapsed)
    )
}

/// Plain lines for logs and CI: one every few seconds at most while downloading.
struct Lines {
    started: Instant,
    action: Mutex<String>,
    total: AtomicU64,
    done: AtomicU64,
    last_line: Mutex<Instant>,
    tally: Tally,
}

const LINE_INTERVAL: Duration = Duration::from_secs(2);

impl Lines {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            action: Mutex::new(String::new()),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
            tally: Tally::default(),
        }
    }

    fn line(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{message}");
    }
}

impl Reporter for Lines {
    fn step(&self, message: &str) {
        self.line(message);
    }

    fn warn(&self, message: &str) {
        self.line(&format!("warning: {message}"));
    }

    fn blobs_planned(&self, action: &str, blobs: usize, bytes: u64) {
        action.clone_into(&mut self.action.lock().unwrap_or_else(|e| e.into_inner()));
        saturating_add(&self.total, bytes);
        self.tally.planned(blobs, bytes);
    }

    fn blob_cached(&self, bytes: u64) {
        saturating_add(&self.done, bytes);
        self.tally.cached(bytes);
    }

    fn blob_start(&self, _digest: &Digest, _size: u64) {}

    fn blob_progress(&self, _digest: &Digest, bytes: u64) {
        let done = saturating_add(&self.done, bytes);
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LINE_INTERVAL {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            self.line(&format!(
                "{} of {} ({}/s)",
                human_bytes(done),
                human_bytes(self.total.load(Ordering::Relaxed)),
                human_bytes((done as f64 / secs) as u64)
            ));
        }
    }

    fn blob_discarded(&self, _digest: &Digest, bytes: u64) {
        let _ = self
            .done
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(bytes))
            });
    }

    fn blob_done(&self, _digest: &Digest) {}

    fn finish(&self) {
        let c = self.tally.counts();
        if c.blobs == 0 {
            return;
        }
        let action = self
            .action
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut line = format!(
            "{action} finished: {} blobs ({}) in {:.1} s",
            c.blobs - c.cached_blobs.min(c.blobs),
            human_bytes(c.bytes.saturating_sub(c.cached_bytes)),
            self.started.elapsed().as_secs_f64()
        );
        if c.cached_blobs > 0 {
            line.push_str(&format!(
                "; {} blobs ({}) were already in place",
                c.cached_blobs,
                human_bytes(c.cached_bytes)
            ));
        }
        self.line(&line);
    }

    fn import_start(&self, label: &str, bytes: u64) {
        self.line(&format!("importing {label} ({})", human_bytes(bytes)));
    }

    fn import_progress(&self, label: &str, done: u64, total: u64) {
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LINE_INTERVAL {
            *last = Instant::now();
            self.line(&format!(
                "importing {label}: {} of {}",
                human_bytes(done),
                human_bytes(total)
            ));
        }
    }

    fn import_done(&self, label: &str, done: u64, elapsed: Duration) {
        self.line(&imported_line(label, done, elapsed));
    }
}

/// What work running apart from the reporter (the daemon fallback, during a pull)
/// has it say, through a channel: [`notes_meanwhile`] passes each on.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Warning(String),
    ImportStart {
        label: String,
        bytes: u64,
    },
    ImportProgress {
        label: String,
        done: u64,
        total: u64,
    },
    ImportDone {
        label: String,
        done: u64,
        elapsed: Duration,
    },
}

impl Note {
    fn tell(self, reporter: &dyn Reporter) {
        match self {
            Self::Warning(message) => reporter.warn(&message),
            Self::ImportStart { label, bytes } => reporter.import_start(&label, bytes),
            Self::ImportProgress { label, done, total } => {
                reporter.import_progress(&label, done, total)
            }
            Self::ImportDone {
                label,
                done,
                elapsed,
            } => reporter.import_done(&label, done, elapsed),
        }
    }
}

/// Runs `work`, telling `reporter` each note as it arrives on `notes`, and those left
/// once it ends.
pub async fn notes_meanwhile<T>(
    work: impl std::future::Future<Output = T>,
    notes: Option<tokio::sync::mpsc::UnboundedReceiver<Note>>,
    reporter: &dyn Reporter,
) -> T {
    let Some(mut notes) = notes else {
        return work.await;
    };
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => {
                while let Ok(note) = notes.try_recv() {
                    note.tell(reporter);
                }
                return done;
            }
            Some(note) = notes.recv() => note.tell(reporter),
        }
    }
}
